"""std/blocks/attention.arch: attention written from tensor primitives, against timm's
Attention module (same state_dict keys, same outputs, same MACs) and against archspec's own
`mhsa` op (nn.MultiheadAttention), whose weights it takes under its own names."""

from __future__ import annotations

import os

import pytest
import torch
from layerwise import compare_layers, perturbed, randomise
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archspec

os.environ.setdefault("TIMM_FUSED_ATTN", "0")  # FlopCounterMode does not see the fused kernel
timm_layers = pytest.importorskip("timm.layers")

TOKENS, DIM, HEADS = 16, 64, 4


def _spec(body: str) -> archspec.Spec:
    return archspec.loads(f'import "std/blocks/attention.arch"\nnetwork t\n'
                          f"input x: {TOKENS}x{DIM}\n{body}\n")


class _Timm(nn.Module):
    """timm's Attention at the path `a`, as the spec names it."""

    def __init__(self, qkv_bias: bool = True) -> None:
        super().__init__()
        self.a = timm_layers.Attention(DIM, num_heads=HEADS, qkv_bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x)


@pytest.fixture(scope="module")
def pair() -> tuple[nn.Module, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    reference = _Timm().eval()
    randomise(reference, torch.Generator().manual_seed(1))
    ours = archspec.to_torch(_spec("a: attention(4)")).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, TOKENS, DIM, generator=torch.Generator().manual_seed(2))
    return ours, reference, x


@pytest.mark.parametrize("fused", [False, True])
def test_primitive_attention_equals_timm_attention(pair, fused: bool) -> None:
    """timm's state_dict loads strictly; qkv and proj give timm's outputs, as does the whole,
    with timm's fused kernel and with its written-out softmax."""
    ours, reference, x = pair
    reference.a.fused_attn = fused
    compare_layers(ours, reference, x).assert_equal()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_negative_control_a_perturbed_projection_is_caught(pair) -> None:
    ours, reference, x = pair
    with perturbed(ours) as key:
        assert key.rsplit(".", 1)[0] in compare_layers(ours, reference, x).differing


def test_primitive_attention_counts_timm_macs() -> None:
    """MACs equal FlopCounterMode / 2 on timm's module with its written-out attention."""
    reference = _Timm()
    reference.a.fused_attn = False
    with FlopCounterMode(display=False) as counter:
        reference(torch.randn(1, TOKENS, DIM))
    report = archspec.analyze(_spec("a: attention(4)"))
    assert report.totals["macs"] == counter.get_total_flops() // 2
    assert report.totals["params"] == sum(p.numel() for p in reference.parameters())


def test_compiled_primitive_attention_runs_the_fused_kernel() -> None:
    model = archspec.to_torch(_spec("a: attention(4)"))
    targets = {n.target for n in model.graph.nodes if n.op == "call_function"}
    assert torch.nn.functional.scaled_dot_product_attention in targets


def test_written_out_products_equal_the_fused_block(pair) -> None:
    """attention_explicit (two matmuls, a scale and a softmax) with the same weights."""
    ours, _, x = pair
    explicit = archspec.to_torch(_spec("a: attention_explicit(4)")).eval()
    explicit.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(explicit(x), ours(x), rtol=1e-5, atol=1e-5)


def test_mhsa_op_equals_its_primitive_form() -> None:
    """The bespoke `mhsa` op (nn.MultiheadAttention, kept for torchvision's module class and
    keys) computes what the primitive block computes with the same weights: its packed
    in_proj is the block's qkv, its out_proj the block's proj."""
    torch.manual_seed(0)
    bespoke = archspec.to_torch(_spec("m: mhsa(4)")).eval()
    randomise(bespoke, torch.Generator().manual_seed(3))
    state = bespoke.state_dict()
    primitive = archspec.to_torch(_spec("a: attention(4)")).eval()
    primitive.load_state_dict({"a.qkv.weight": state["m.in_proj_weight"],
                               "a.qkv.bias": state["m.in_proj_bias"],
                               "a.proj.weight": state["m.out_proj.weight"],
                               "a.proj.bias": state["m.out_proj.bias"]}, strict=True)
    x = torch.randn(2, TOKENS, DIM, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(primitive(x), bespoke(x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------- windowed and relative attention (bespoke ops)

def _bespoke_pair(shape: str, bespoke: str, block: str,
                  keys: dict[str, str]) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    """The bespoke op at `b` and the primitive block at `a` on an input of `shape`, the block
    loaded with the bespoke layer's state_dict through ``keys`` (block key: bespoke key)."""
    def spec(body: str) -> archspec.Spec:
        return archspec.loads(f'import "std/blocks/attention.arch"\nnetwork t\n'
                              f"input x: {shape}\n{body}\n")

    torch.manual_seed(0)
    reference = archspec.to_torch(spec(f"b: {bespoke}")).eval()
    randomise(reference, torch.Generator().manual_seed(5))
    state = reference.state_dict()
    ours = archspec.to_torch(spec(f"a: {block}")).eval()
    ours.load_state_dict({f"a.{k}": state[f"b.{v}"] for k, v in keys.items()}, strict=True)
    dims = [int(d) for d in shape.split("x")]
    x = torch.randn(2, *dims, generator=torch.Generator().manual_seed(6))
    return ours, reference, x


_SWIN_KEYS = {f"attn.{k}": k for k in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias",
                                       "relative_position_bias_table")}


@pytest.mark.parametrize("shift", [0, 3])
def test_shifted_window_attention_op_equals_its_primitive_block(shift: int) -> None:
    """The bespoke `shifted_window_attention` (torchvision's ShiftedWindowAttention module and
    keys) computes what std `swin_window_attention` (roll, reshape/permute windows, relative
    bias by `take`, the shifted-window mask as a constant) computes with the same weights."""
    ours, reference, x = _bespoke_pair(
        "14x14x32", f"shifted_window_attention(4, 7, {shift})",
        f"swin_window_attention(4, 7, {shift})", _SWIN_KEYS)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
    with perturbed(ours), torch.no_grad():
        assert not torch.allclose(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_relative_attention_op_equals_its_primitive_block() -> None:
    """The bespoke `relative_attention` (torchvision's RelativePositionalMultiHeadAttention
    module and keys) computes what std `relative_window_attention` computes with the same
    weights, over 4 groups of 7 x 7 tokens."""
    keys = {k: k for k in ("to_qkv.weight", "to_qkv.bias", "merge.weight", "merge.bias",
                           "relative_position_bias_table")}
    ours, reference, x = _bespoke_pair("4x49x64", "relative_attention(16)",
                                       "relative_window_attention(16)", keys)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
