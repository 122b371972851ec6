"""The op and diagnostic-code catalogues as plain text, one entry a line (``archspec ops``,
``archspec errors``), and one entry in full. The Markdown references are
:func:`archspec.views.ops_reference.markdown` and
:func:`archspec.lang.diagnostics.codes_markdown`."""

from __future__ import annotations

from archspec.lang.diagnostics import CODES
from archspec.lang.plugins import PLUGINS
from archspec.lang.values import signature
from archspec.ops.base import OpDef
from archspec.views.ops_reference import unique_ops


def op_lines() -> list[str]:
    """Every op's signature, with its aliases, sorted by name (plugins included)."""
    lines = []
    for op in unique_ops():
        alias = f" (alias: {', '.join(op.aliases)})" if op.aliases else ""
        lines.append(f"{signature(op)}{alias}")
    return lines


def op_entry(op: OpDef) -> str:
    """``op`` in full: signature, documentation, category, and the plugin that brings it."""
    origin = f"\nplugin: from the `{PLUGINS[op.name]}` package" if op.name in PLUGINS else ""
    return f"{signature(op)}\n\n{op.doc}\n\ncategory: {op.category.value}{origin}"


def code_lines() -> list[str]:
    """Every diagnostic code with its title, in the order of :data:`CODES`."""
    return [f"{key}  {title}" for key, title in CODES.items()]


def code_entry(code: str) -> str:
    """One diagnostic code (a key of :data:`CODES`, upper case) and what it means."""
    return f"{code}: {CODES[code]}"
