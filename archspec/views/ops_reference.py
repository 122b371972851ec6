"""The op reference of `archspec ops` and docs/ops.md, generated from the registry."""

from __future__ import annotations

from archspec.lang.plugins import PLUGINS, load_plugins
from archspec.lang.values import signature
from archspec.ops.base import OpDef
from archspec.ops.registry import REGISTRY


def unique_ops() -> list[OpDef]:
    """Registered ops (built-in and plugins) without alias duplicates, sorted by name."""
    load_plugins()
    seen: dict[str, OpDef] = {}
    for op in REGISTRY.values():
        seen.setdefault(op.name, op)
    return [seen[k] for k in sorted(seen)]


BESPOKE = (
    "Most ops are primitives (`matmul`, `softmax`, `reshape`, ...), and a family such as an "
    "attention is a block of them in the shipped library, `std/blocks/attention.arch`, which "
    "the timm specs (specs/timm/) use; adding a variant is a new block, not new Python. Where a "
    "bespoke op computes the same, a test shows it equals its block on random inputs, the "
    "bespoke layer's weights loaded into the block through its keys, and (Swin v2, patch "
    "merging, MaxViT's windows) both equal torchvision's class (tests/test_std_attention.py). "
    "The op stays where it is one framework module whose class and state_dict layout a "
    "reproduced model needs: the torchvision specs (specs/*.arch) use these ops, and their "
    "state_dicts load torchvision's strictly, persistent buffers included, which a block's "
    "`buffer` keeps out of its state_dict.\n\n"
    "| bespoke op | its std block | why the op stays |\n"
    "|---|---|---|\n"
    "| `mhsa` | `attention` (`qkv` is `in_proj_*`, `proj` is `out_proj`) | torchvision's "
    "`nn.MultiheadAttention` (packed `in_proj_weight`) |\n"
    "| `shifted_window_attention` | `swin_window_attention` (`window_attention` within the "
    "windows) | torchvision's `ShiftedWindowAttention` (its `relative_position_index` a "
    "persistent buffer) |\n"
    "| `shifted_window_attention_v2` | `swin_window_attention(v2=true)` "
    "(`cosine_window_attention` within the windows) | torchvision's `ShiftedWindowAttentionV2` "
    "(`relative_coords_table`, `relative_position_index` persistent buffers) |\n"
    "| `swin_block_v2` | `swin_v2_block` | torchvision's `SwinTransformerBlockV2`, which "
    "registers each post-norm before the layer it follows, and its attention's buffers |\n"
    "| `patch_merging`, `patch_merging_v2` | `swin_patch_merging`, `swin_patch_merging(v2=true)` "
    "| torchvision's `PatchMerging` (which registers `reduction` before the norm it computes "
    "first) and `PatchMergingV2` classes |\n"
    "| `relative_attention` | `relative_window_attention` | torchvision's MaxViT "
    "`RelativePositionalMultiHeadAttention` (its `relative_position_index` a persistent "
    "buffer) |\n"
    "| `window_partition`, `window_departition` | `permute([1, 2, 0]) -> window_split(p)`, "
    "`window_merge(p, h p, w p) -> permute([2, 0, 1])` | torchvision's MaxViT `WindowPartition` "
    "and `WindowDepartition` modules |\n"
    "| `class_token`, `position_embedding`, `layer_scale` | none: a `parameter` with `concat`, "
    "`add` or `mul` | a learnable tensor at the layer's own key, as torchvision names it |"
)
"""The text on bespoke ops and their primitive forms (a paragraph and a table, one row per
bespoke op) that opens docs/ops.md."""


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
