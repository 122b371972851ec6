"""Values as a spec writes them: literals (`show`), type names, and op call signatures, for
messages, hints, the printer and the op reference."""

from __future__ import annotations

from typing import Any

from archspec.ops.base import OpDef


def type_name(value: Any) -> str:
    """The spec-language name of a Python value's type."""
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", tuple: "list",
            type(None): "none"}.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    """A value as the user would write it in a spec."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(show, value)) + "]"
    return repr(value)


def signature(op: OpDef) -> str:
    """``conv2d(out, kernel, stride=1, ...)``: an op's call signature, defaults shown."""
    parts = []
    for name, f in op.attrs.model_fields.items():
        if op.outputs is not None and name == "index":
            continue  # set per result by the expander, never by the user
        parts.append(name if f.is_required() else f"{name}={show(f.default)}")
    return f"{op.name}({', '.join(parts)})"
