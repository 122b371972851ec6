"""The op reference of `archspec ops` and docs/ops.md, generated from the registry."""

from __future__ import annotations

from archspec.lang.plugins import PLUGINS, load_plugins
from archspec.lang.values import signature
from archspec.ops.base import REGISTRY, OpDef


def unique_ops() -> list[OpDef]:
    """Registered ops (built-in and plugins) without alias duplicates, sorted by name."""
    load_plugins()
    seen: dict[str, OpDef] = {}
    for op in REGISTRY.values():
        seen.setdefault(op.name, op)
    return [seen[k] for k in sorted(seen)]


def markdown() -> str:
    """The op reference (docs/ops.md), generated from the registry."""
    lines = ["# Op reference", "",
             "Generated from the registry by `archspec ops --markdown`; do not edit by hand.",
             "Positional arguments bind in the order of the signature's first parameters "
             "(listed under *positional*). Shapes are per sample (no batch).", ""]
    for op in unique_ops():
        lines += [f"## `{op.name}`", "", f"`{signature(op)}`", "", op.doc, ""]
        extra = [f"positional: {', '.join(op.positional) or '(none)'}",
                 f"category: {op.category.value}",
                 f"ONNX opset: {op.min_opset}+"]
        if op.aliases:
            extra.append(f"aliases: {', '.join(op.aliases)}")
        if op.name in PLUGINS:
            extra.append(f"plugin: from the `{PLUGINS[op.name]}` package")
        if op.inputs != (1, 1):
            extra.append(f"inputs: {op.inputs[0]}{'+' if op.inputs[1] is None else ''}")
        lines += [f"- {e}" for e in extra] + [""]
    return "\n".join(lines)
