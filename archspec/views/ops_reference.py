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


BESPOKE = (
    "Most ops are primitives (`matmul`, `softmax`, `reshape`, ...), and a family such as an "
    "attention is a block of them in the shipped library: `std/blocks/attention.arch` holds "
    "timm's multi-head attention (fused `qkv`, `proj`), tested equal to timm's `Attention` and "
    "to the `mhsa` op with the same weights; Swin's windowed attention with its relative-"
    "position bias (`window_attention`, and `swin_window_attention` with the cyclic shift by "
    "`roll`, the windows by `reshape`/`permute` and the shifted-window mask as a constant "
    "`buffer`), tested equal to `shifted_window_attention`; and MaxViT's relative attention "
    "(`relative_window_attention`), tested equal to `relative_attention`, each with the bespoke "
    "layer's weights loaded through its keys (tests/test_std_attention.py). The timm specs "
    "(specs/timm/) use these blocks. An op of its own stays where it is one framework module "
    "whose class and state_dict layout a reproduced model needs: `mhsa` (torchvision's "
    "`nn.MultiheadAttention`, packed `in_proj_weight`), `shifted_window_attention`, "
    "`shifted_window_attention_v2`, `swin_block_v2`, `patch_merging`, `patch_merging_v2` "
    "(torchvision's Swin classes, whose `relative_position_index` is a persistent buffer in "
    "the state_dict, and whose v2 blocks register their post-norms before the layers they "
    "follow), `relative_attention`, `window_partition`, `window_departition` (torchvision's "
    "MaxViT classes), and `class_token`, `position_embedding`, `layer_scale` (a learnable "
    "tensor at the layer's own key, as torchvision names it)."
)
"""The paragraph on bespoke ops and their primitive forms that opens docs/ops.md."""


def markdown() -> str:
    """The op reference (docs/ops.md), generated from the registry."""
    lines = ["# Op reference", "",
             "Generated from the registry by `archspec ops --markdown`; do not edit by hand.",
             "Positional arguments bind in the order of the signature's first parameters "
             "(listed under *positional*). Shapes are per sample (no batch).", "",
             BESPOKE, ""]
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
