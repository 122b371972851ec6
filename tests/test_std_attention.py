"""std/blocks/attention.arch: attention written from tensor primitives, against timm's
Attention module (same state_dict keys, same outputs, same MACs) and against archspec's own
`mhsa` op (nn.MultiheadAttention), whose weights it takes under its own names."""

from __future__ import annotations

import os
from collections.abc import Callable

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

def _map_spec(shape: str, body: str) -> archspec.Spec:
    return archspec.loads(f'import "std/blocks/attention.arch"\nnetwork t\n'
                          f"input x: {shape}\n{body}\n")


def _bespoke_pair(shape: str, bespoke: str, block: str, keys: dict[str, str],
                  edit: Callable[[nn.Module], None] | None = None,
                  ) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    """The bespoke op at `b` and the primitive block at `a` on an input of `shape`, the block
    loaded with the bespoke layer's state_dict through ``keys`` (block key: bespoke key), after
    ``edit`` has changed the bespoke layer's randomised weights."""
    def spec(body: str) -> archspec.Spec:
        return _map_spec(shape, body)

    torch.manual_seed(0)
    reference = archspec.to_torch(spec(f"b: {bespoke}")).eval()
    randomise(reference, torch.Generator().manual_seed(5))
    if edit is not None:
        edit(reference)
    state = reference.state_dict()
    ours = archspec.to_torch(spec(f"a: {block}")).eval()
    ours.load_state_dict({f"a.{k}": state[f"b.{v}"] for k, v in keys.items()}, strict=True)
    dims = [int(d) for d in shape.split("x")]
    x = torch.randn(2, *dims, generator=torch.Generator().manual_seed(6))
    return ours, reference, x


_SWIN_KEYS = {f"attn.{k}": k for k in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias",
                                       "relative_position_bias_table")}


# a map of whole windows, shifted or not; one padded to whole windows; one a window covers
_MAPS = [("14x14x32", 0), ("14x14x32", 3), ("10x9x32", 3), ("7x7x32", 3)]


@pytest.mark.parametrize(("shape", "shift"), _MAPS)
def test_shifted_window_attention_op_equals_its_primitive_block(shape: str, shift: int) -> None:
    """The bespoke `shifted_window_attention` (torchvision's ShiftedWindowAttention module and
    keys) computes what std `swin_window_attention` (pad, roll, reshape/permute windows,
    relative bias by `take`, the shifted-window mask as a constant, crop) computes with the
    same weights."""
    ours, reference, x = _bespoke_pair(
        shape, f"shifted_window_attention(4, 7, {shift})",
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


def test_maxvit_window_partition_ops_equal_window_split_and_merge() -> None:
    """`window_partition(p)` is `permute([1, 2, 0]) -> window_split(p)` and
    `window_departition(p, h, w)` is `window_merge(p, h p, w p) -> permute([2, 0, 1])`: each
    moves elements as torchvision's WindowPartition / WindowDepartition do. The control, a
    map transposed before its split, does not."""
    tv_maxvit = pytest.importorskip("torchvision.models.maxvit")
    spec = archspec.loads(
        'import "std/blocks/attention.arch"\nnetwork t\ninput x: 16x14x21\ninput g: 6x49x16\n'
        "output op, written, control, op_back, written_back\n"
        "op = window_partition(7)(x)\nwritten = permute([1, 2, 0])(x) -> window_split(7)\n"
        "control = permute([2, 1, 0])(x) -> window_split(7)\n"
        "op_back = window_departition(7, 2, 3)(g)\n"
        "written_back = window_merge(7, 14, 21)(g) -> permute([2, 0, 1])\n")
    gen = torch.Generator().manual_seed(7)
    x, g = torch.randn(2, 16, 14, 21, generator=gen), torch.randn(2, 6, 49, 16, generator=gen)
    out = archspec.to_torch(spec)(x, g)
    want = tv_maxvit.WindowPartition()(x, 7)
    assert torch.equal(out["op"], want) and torch.equal(out["written"], want)
    assert out["control"].shape == want.shape and not torch.equal(out["control"], want)
    want_back = tv_maxvit.WindowDepartition()(g, 7, 2, 3)
    assert torch.equal(out["op_back"], want_back) and torch.equal(out["written_back"], want_back)


# ----------------------------------------------------- Swin v2 and patch merging (bespoke ops)

tv_swin = pytest.importorskip("torchvision.models.swin_transformer")

_SWIN_V2_ATTN = ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias", "logit_scale",
                 "cpb_mlp.0.weight", "cpb_mlp.0.bias", "cpb_mlp.2.weight")
_SWIN_V2_KEYS = {f"attn.{k}": k for k in _SWIN_V2_ATTN}
_BLOCK_V2_KEYS = {k: k for k in (*_SWIN_V2_KEYS, "norm1.weight", "norm1.bias", "mlp.0.weight",
                                 "mlp.0.bias", "mlp.3.weight", "mlp.3.bias", "norm2.weight",
                                 "norm2.bias")}


def _v2_extremes(reference: nn.Module) -> None:
    """What Swin v2's attention must ignore or cap made to matter: the k third of each
    `qkv.bias` non-zero (torchvision zeroes it in every forward) and head 0's `logit_scale`
    above log 100 (torchvision clamps it there)."""
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name.endswith("qkv.bias"):
                third = p.numel() // 3
                p[third:2 * third] = torch.linspace(-1.0, 1.0, third)
            elif name.endswith("logit_scale"):
                p[0] = 6.0


def _torchvision(module: nn.Module, reference: nn.Module) -> nn.Module:
    """torchvision's ``module`` holding the bespoke layer's (at `b`) state_dict, strictly."""
    state = {k[2:]: v for k, v in reference.state_dict().items() if k.startswith("b.")}
    module.load_state_dict(state, strict=True)
    return module.eval()


def _assert_three_equal(ours: nn.Module, reference: nn.Module, theirs: nn.Module,
                        x: torch.Tensor) -> None:
    """The primitive block and the bespoke op each give torchvision's output on ``x``; a
    perturbed weight of the block does not (the negative control)."""
    with torch.no_grad():
        want = theirs(x)
        torch.testing.assert_close(reference(x), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours(x), want, rtol=1e-5, atol=1e-5)
    with perturbed(ours), torch.no_grad():
        assert not torch.allclose(ours(x), want, rtol=1e-5, atol=1e-5)


def _macs(module: nn.Module, x: torch.Tensor) -> int:
    """torch's count of the multiply-accumulates of one sample (FlopCounterMode / 2)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x[:1])
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(("shape", "shift"), _MAPS)
def test_shifted_window_attention_v2_op_equals_its_primitive_block(shape: str,
                                                                    shift: int) -> None:
    """The bespoke `shifted_window_attention_v2` and std `swin_window_attention(v2=true)`
    (cosine attention, the clamped logit scale, the position-bias MLP over the log-spaced
    coordinates `buffer`, the k bias scaled by 0) both compute torchvision's
    ShiftedWindowAttentionV2 with the same weights."""
    ours, reference, x = _bespoke_pair(
        shape, f"shifted_window_attention_v2(4, 7, {shift})",
        f"swin_window_attention(4, 7, {shift}, v2=true)", _SWIN_V2_KEYS, edit=_v2_extremes)
    theirs = _torchvision(tv_swin.ShiftedWindowAttentionV2(32, [7, 7], [shift, shift], 4),
                          reference)
    _assert_three_equal(ours, reference, theirs, x)


def test_a_map_one_window_covers_is_not_shifted() -> None:
    """Negative control of the covered-map rule: the block forced to shift a 7 x 7 map by 3
    in 7 x 7 windows (`s=3`) no longer computes torchvision's unshifted attention."""
    ours, reference, x = _bespoke_pair(
        "7x7x32", "shifted_window_attention_v2(4, 7, 3)",
        "swin_window_attention(4, 7, 3, v2=true, s=3)", _SWIN_V2_KEYS)
    with torch.no_grad():
        assert not torch.allclose(ours(x), reference(x), rtol=1e-3, atol=1e-3)


def test_primitive_v2_attention_counts_torchvisions_params_and_macs() -> None:
    """Params equal torchvision's; MACs its FlopCounterMode count (projections, both
    products, the position-bias MLP once)."""
    theirs = tv_swin.ShiftedWindowAttentionV2(32, [7, 7], [3, 3], 4)
    report = archspec.analyze(_map_spec("14x14x32", "a: swin_window_attention(4, 7, 3, v2=true)"))
    assert report.totals["params"] == sum(p.numel() for p in theirs.parameters())
    assert report.totals["macs"] == _macs(theirs, torch.randn(1, 14, 14, 32))


def test_primitive_v2_attention_exports_to_onnx(tmp_path) -> None:
    """The ONNX export of the block (its coordinates table made by the exporter) computes what
    the compiled block computes, in onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    ours, _, x = _bespoke_pair("14x14x32", "shifted_window_attention_v2(4, 7, 3)",
                               "swin_window_attention(4, 7, 3, v2=true)", _SWIN_V2_KEYS)
    path = tmp_path / "v2.onnx"
    archspec.export_onnx(_map_spec("14x14x32", "a: swin_window_attention(4, 7, 3, v2=true)"),
                         path, weights=ours.state_dict())
    (got,) = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), ours(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("shape", ["8x6x16", "7x9x16"])
def test_patch_merging_ops_equal_their_primitive_block(v2: bool, shape: str) -> None:
    """The bespoke `patch_merging` / `patch_merging_v2` and std `swin_patch_merging` (pad,
    2 x 2 gather by reshape/permute, norm and reduction in v1's or v2's order) compute
    torchvision's PatchMerging / PatchMergingV2, odd sides padded as torchvision pads them."""
    keys = {k: k for k in ("reduction.weight", "norm.weight", "norm.bias")}
    ours, reference, x = _bespoke_pair(shape, "patch_merging_v2" if v2 else "patch_merging",
                                       f"swin_patch_merging(v2={str(v2).lower()})", keys)
    theirs = _torchvision((tv_swin.PatchMergingV2 if v2 else tv_swin.PatchMerging)(16),
                          reference)
    _assert_three_equal(ours, reference, theirs, x)
    report = archspec.analyze(_map_spec(shape, f"a: swin_patch_merging(v2={str(v2).lower()})"))
    assert report.totals["macs"] == _macs(theirs, x)


@pytest.mark.parametrize("shift", [0, 4])
def test_swin_block_v2_op_equals_its_primitive_block(shift: int) -> None:
    """The bespoke `swin_block_v2` and std `swin_v2_block` (res-post-norm residuals around
    the primitive v2 attention and the MLP) compute torchvision's SwinTransformerBlockV2 with
    the same weights, under torchvision's keys; params and MACs are torchvision's."""
    ours, reference, x = _bespoke_pair("16x16x32", f"swin_block_v2(4, 8, {shift})",
                                       f"swin_v2_block(4, 8, {shift})", _BLOCK_V2_KEYS,
                                       edit=_v2_extremes)
    theirs = _torchvision(tv_swin.SwinTransformerBlockV2(32, 4, [8, 8], [shift, shift]),
                          reference)
    _assert_three_equal(ours, reference, theirs, x)
    if shift:
        report = archspec.analyze(_map_spec("16x16x32", "a: swin_v2_block(4, 8, 4)"))
        assert report.totals["params"] == sum(p.numel() for p in theirs.parameters())
        assert report.totals["macs"] == _macs(theirs, x)
