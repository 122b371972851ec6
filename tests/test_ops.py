"""Registry-parametrized: for every op, the static shape, params, buffers and MACs equal what
its lowered PyTorch module really does on a real tensor (MACs by FlopCounterMode / 2)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.ops import stochastic_depth

from archspec.analysis.passes import receptive_fields
from archspec.backends.torch import to_torch
from archspec.lang.diagnostics import ArchspecError
from archspec.lang.expander import expand
from archspec.lang.syntax.loader import loads
from archspec.ops import REGISTRY, Ctx

# (op call, input shape per sample) - at least one case per registered op.
CASES: list[tuple[str, tuple[int, ...]]] = [
    ("conv1d(8, 3, stride=2, padding=1)", (4, 17)),
    ("conv2d(8, 3, stride=2, padding=1, groups=2)", (4, 15, 16)),
    ("conv2d(6, (3, 5), padding=\"same\", dilation=2, bias=false)", (3, 12, 13)),
    ("conv2d(4, 3, padding=1, padding_mode=\"reflect\")", (2, 9, 9)),
    ("conv2d(4, 3, padding=2, padding_mode=\"circular\")", (2, 9, 9)),
    ("conv2d(4, 4, padding=\"same\", padding_mode=\"replicate\")", (2, 9, 9)),
    ("conv3d(4, 3, stride=(1, 2, 2))", (2, 5, 9, 9)),
    # leading per-sample dims: a batch of maps per sample (EfficientViT's windows)
    ("conv2d(6, 3, stride=2, padding=1, groups=2)", (2, 4, 9, 9)),
    ("conv2d(4, 5, padding=2, groups=4, bias=false)", (3, 2, 4, 7, 7)),
    ("conv3d(4, 3, stride=(1, 2, 2), padding=1, groups=4, bias=false)", (2, 4, 3, 6, 6)),
    ("scaled_std_conv2d(6, 3, stride=2, padding=1, groups=2, gamma=1.7, eps=0.00001)",
     (4, 9, 9)),
    ("maxpool1d(3, stride=2, ceil=true)", (3, 10)),
    ("maxpool2d(3, stride=2, padding=1, ceil=true)", (3, 14, 15)),
    ("maxpool3d(2)", (2, 4, 6, 6)),
    ("avgpool1d(2)", (3, 9)),
    ("avgpool2d(3, stride=2, padding=1, ceil=true, count_include_pad=false)", (3, 11, 11)),
    ("avgpool3d(2, stride=1)", (2, 3, 4, 4)),
    ("adaptive_avgpool1d(4)", (3, 9)),
    ("adaptive_avgpool2d((2, 3))", (3, 7, 8)),
    ("adaptive_avgpool3d(1)", (2, 3, 4, 5)),
    ("adaptive_maxpool1d(2)", (3, 9)),
    ("adaptive_maxpool2d(3)", (3, 7, 8)),
    ("adaptive_maxpool3d(2)", (2, 3, 4, 5)),
    ("global_avgpool1d", (3, 9)),
    ("global_avgpool2d", (3, 7, 8)),
    ("global_avgpool3d", (2, 3, 4, 5)),
    ("global_maxpool1d", (3, 9)),
    ("global_maxpool2d", (3, 7, 8)),
    ("global_maxpool3d", (2, 3, 4, 5)),
    ("batchnorm1d", (5,)),
    ("batchnorm1d(eps=0.01)", (5, 7)),
    ("batchnorm2d(affine=false)", (4, 3, 3)),
    ("batchnorm3d", (2, 3, 3, 3)),
    ("batchnorm2d", (2, 3, 4, 4)), ("batchnorm2d(affine=false, eps=0.001)", (3, 2, 4, 2, 2)),
    ("lrn(5, k=2.0)", (8, 5, 5)),
    ("local_response_norm(3)", (8, 5, 5)),
    ("relu", (3, 4)), ("leaky_relu(0.2)", (3, 4)), ("sigmoid", (5,)), ("tanh", (5,)),
    ("gelu(\"tanh\")", (5,)), ("silu", (2, 3, 3)), ("softmax(0)", (7,)),
    ("linear(7)", (12,)), ("linear(3, bias=false)", (4,)),
    ("flatten", (3, 4, 5)), ("flatten(1)", (3, 4, 5)), ("dropout(0.3)", (6,)),
    ("identity", (2, 2)),
    ("relu6", (3, 4)), ("hardswish", (2, 3, 3)), ("hardsigmoid", (5,)),
    ("stochastic_depth(0.2)", (3, 4, 4)), ("stochastic_depth(0.5, \"batch\")", (6,)),
    ("groupnorm(2)", (4, 3, 3)), ("groupnorm(3, affine=false)", (6, 5)), ("groupnorm(1)", (4,)),
    ("conv_transpose1d(4, 3, stride=2)", (3, 7)),
    ("conv_transpose2d(6, 3, stride=2, padding=1, output_padding=1, groups=2)", (4, 5, 6)),
    ("conv_transpose2d(3, (2, 4), stride=(2, 1), dilation=2, bias=false)", (2, 4, 5)),
    ("conv_transpose3d(2, 2, stride=2)", (2, 3, 3, 3)),
    ("upsample(2)", (3, 4, 5)), ("upsample((2, 3), mode=\"bilinear\")", (2, 4, 4)),
    ("upsample(size=(5, 7), mode=\"bilinear\", align_corners=true)", (2, 4, 4)),
    ("upsample(size=9, mode=\"bicubic\")", (2, 4, 4)), ("upsample(3, mode=\"linear\")", (2, 5)),
    ("upsample(2, mode=\"trilinear\")", (2, 3, 3, 3)), ("upsample(2)", (2, 3, 3, 3)),
    ("interpolate(size=(7, 3), mode=\"nearest-exact\")", (2, 4, 5)),
    ("center_crop(size=3)", (2, 5, 6)), ("center_crop(size=(4, 2))", (2, 7, 5)),
    ("channel_shuffle(2)", (4, 3, 3)), ("channel_shuffle(3)", (6, 5)),
    ("mean([1, 2])", (3, 4, 5)), ("mean(0, keepdim=true)", (3, 4, 5)), ("mean(-1)", (3, 4)),
    ("slice(0, 1, 3)", (4, 5)), ("slice(1, 0, none, 2)", (3, 7, 4)), ("slice(-1, -3)", (2, 6)),
    ("select(1, -1)", (3, 4, 5)), ("select(0, 2)", (3, 4)),
    ("shifted_window_attention(2, 4, 2)", (6, 7, 8)), ("patch_merging", (5, 4, 6)),
    ("shifted_window_attention_v2(2, (3, 4), (1, 2))", (6, 8, 4)),
    ("patch_merging_v2", (3, 3, 2)), ("swin_block_v2(2, 4, 2, 0.2)", (5, 6, 4)),
    ("relative_attention(4)", (2, 9, 8)), ("window_partition(2)", (3, 4, 6)),
    ("window_departition(2, 1, 3)", (3, 4, 5)),
    ("linear(5)", (3, 4, 7)), ("linear(6, bias=false)", (9, 8)),
    ("layernorm", (4, 6)), ("layernorm(eps=0.000001, affine=false)", (2, 3, 5)),
    ("layernorm2d(eps=0.000001)", (6, 3, 4)), ("layernorm2d(affine=false)", (4, 2, 2)),
    ("permute([1, 2, 0])", (3, 4, 5)), ("permute([-1, 0])", (3, 4)),
    ("transpose(0, 1)", (3, 4)), ("transpose(-1, 0)", (2, 3, 4)),
    ("reshape([6, -1])", (3, 4, 2)), ("reshape([2, 3, 4])", (24,)),
    ("mhsa(2)", (5, 8)), ("self_attention(4, bias=false, dropout=0.1)", (3, 8)),
    ("class_token", (3, 4)), ("position_embedding(0.5)", (3, 4)),
    ("layer_scale(0.1)", (3, 4, 4)), ("layer_scale(2.0)", (5, 7)),
    # tensor primitives: element-wise arithmetic, activations, reductions
    ("scale(0.5)", (3, 4)), ("shift(-1.5)", (2, 3, 3)), ("pow(3.0)", (5,)), ("exp", (3, 4)),
    ("log", (3, 4)), ("sqrt", (5,)), ("rsqrt", (2, 3, 3)), ("abs", (3, 4)), ("neg", (5,)),
    ("reciprocal", (3, 4)), ("clamp(min=-0.5)", (3, 4)), ("clamp(max=1.0)", (5,)),
    ("clamp(-1.0, 1.0)", (2, 3, 3)),
    ("mish", (3, 4)), ("elu", (5,)), ("elu(0.5)", (2, 3, 3)), ("selu", (3, 4)),
    ("softplus", (5,)), ("softplus(2.0, 1.0)", (3, 4)), ("hardtanh", (3, 4)),
    ("hardtanh(-2.0, 0.5)", (5,)), ("quick_gelu", (2, 3, 3)), ("prelu", (3, 4, 4)),
    ("prelu(3, 0.1)", (3, 4, 4)), ("prelu(4)", (4,)),
    ("sum([1, 2])", (3, 4, 5)), ("sum(0, keepdim=true)", (3, 4)), ("amax(-1)", (3, 4, 5)),
    ("amin([0, -1], true)", (3, 4, 5)), ("var([1, 2])", (3, 4, 5)),
    ("var(0, correction=0, keepdim=true)", (3, 4)), ("std(-1)", (3, 4, 5)),
    ("std([0, 1], 2)", (3, 4)), ("norm(dims=[1, 2])", (3, 4, 5)), ("norm(1, 0)", (3, 4)),
    ("norm(\"inf\", -1, true)", (3, 4)), ("normalize", (3, 4)),
    ("normalize(1.0, 0, 0.001)", (3, 4, 5)), ("normalize(p=\"inf\", dim=1)", (2, 3, 3)),
    # tensor primitives: data movement (ops/movement.py) and reshape's -1
    ("pad([1, 2, 0, 1])", (2, 4, 5)), ("pad([1, 1], value=0.5)", (3, 4)),
    ("pad([1, 2, 3, 0], mode=\"reflect\")", (2, 4, 5)), ("pad([3, 1], \"reflect\")", (2, 5)),
    ("pad([2, 1, 1, 2], mode=\"replicate\")", (2, 3, 4)),
    ("pad([1, 1, 1, 1, 1, 1], mode=\"replicate\")", (2, 3, 3, 3)),
    ("pad([4, 1, 0, 3], mode=\"circular\")", (2, 3, 4)), ("roll(2, 1)", (2, 4, 5)),
    ("roll([1, -2], [0, -1])", (2, 4, 5)), ("roll(7, -1)", (3, 5)),
    ("pixel_shuffle(2)", (8, 3, 4)), ("pixel_shuffle(3)", (2, 9, 2, 3)),
    ("pixel_unshuffle(2)", (2, 4, 6)), ("pixel_unshuffle(3)", (2, 1, 3, 6)),
    ("expand([3, -1, 4])", (1, 2, 1)), ("expand([-1, 5])", (3, 1)),
    ("tile([2, 3])", (2, 3, 4)), ("tile(2)", (2, 3)), ("tile([2, 1, 3])", (2, 3, 1)),
    ("reshape([-1, 4, 2])", (3, 4, 2)), ("reshape([2, -1])", (24,)),
]


def _check(call: str, shape: tuple[int, ...]) -> None:
    dims = ", ".join(map(str, shape))
    spec = loads(f"network t\ninput x: [{dims}]\nlayer: {call}\n")
    graph = expand(spec)
    (node,) = graph.nodes.values()
    op = REGISTRY[node.op]
    cost = op.cost(Ctx(node.in_shapes, node.shape, node.attrs))
    module = to_torch(graph).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        y = module(x)
    assert tuple(y.shape) == (2, *node.shape), call
    assert cost.params == sum(p.numel() for p in module.parameters()), call
    assert cost.buffers == sum(b.numel() for b in module.buffers()), call
    # On the meta device, as torchvision counts its _ops: on CPU, eval-mode attention runs a
    # fused kernel that FlopCounterMode does not count.
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module.to("meta")(x.to("meta"))
    once = cost.once.macs if cost.once is not None else 0  # per forward, not per sample
    assert 2 * cost.macs + once == counter.get_total_flops() // 2, call


@pytest.mark.parametrize(("call", "shape"), CASES, ids=[c for c, _ in CASES])
def test_op_matches_torch(call: str, shape: tuple[int, ...]) -> None:
    _check(call, shape)


# conv2d, conv3d and batchnorm2d on (*G, C, H, W) or (*G, C, D, H, W) per sample, and the
# torch module that computes the same on the (N * G, C, ...) batch of maps.
FOLDED: list[tuple[str, tuple[int, ...], Callable[[], nn.Module]]] = [
    ("conv2d(6, 3, stride=2, padding=1, groups=2)", (2, 4, 9, 9),
     lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)),
    ("conv2d(4, 5, padding=2, groups=4, bias=false)", (3, 2, 4, 7, 7),
     lambda: nn.Conv2d(4, 4, 5, padding=2, groups=4, bias=False)),
    ("conv2d(3, 3, padding=1, padding_mode=\"reflect\")", (4, 2, 5, 6),
     lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")),
    ("conv3d(4, 3, stride=(1, 2, 2), padding=1, groups=4, bias=false)", (2, 4, 3, 6, 6),
     lambda: nn.Conv3d(4, 4, 3, stride=(1, 2, 2), padding=1, groups=4, bias=False)),
    ("batchnorm2d", (2, 3, 4, 4), lambda: nn.BatchNorm2d(3)),
    ("batchnorm2d(affine=false, eps=0.001)", (3, 2, 4, 2, 2),
     lambda: nn.BatchNorm2d(4, eps=0.001, affine=False)),
]


@pytest.mark.parametrize(("call", "shape", "reference"), FOLDED, ids=[c for c, _, _ in FOLDED])
@pytest.mark.parametrize("training", [False, True])
def test_leading_dims_are_a_batch_of_maps(call: str, shape: tuple[int, ...],
                                          reference: Callable[[], nn.Module],
                                          training: bool) -> None:
    """The compiled layer loads the state_dict of the plain torch module and gives its output
    on the folded (N * G, C, H, W) batch, unfolded; in training mode batch norm's statistics
    (and its running averages) are those of all N * G maps."""
    spec = loads(f"network t\ninput x: [{', '.join(map(str, shape))}]\ny: {call}\n")
    model, theirs = to_torch(spec), reference()
    ours = model.get_submodule("y")
    torch.manual_seed(0)
    for p in theirs.parameters():
        p.data.normal_()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    model.train(training)
    theirs.train(training)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        maps = 4 if isinstance(theirs, nn.Conv3d) else 3  # dims of one map, channels first
        got, want = model(x), theirs(x.flatten(0, len(shape) - maps))
    assert tuple(got.shape) == (2, *expand(spec).nodes["y"].shape)
    torch.testing.assert_close(got, want.reshape(got.shape))
    for key, value in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value)


def test_plain_maps_keep_the_plain_torch_modules() -> None:
    """A (C, H, W) input compiles to nn.Conv2d / nn.BatchNorm2d themselves; only leading
    dims bring the folding subclasses."""
    for shape, kinds in (("[3, 8, 8]", (nn.Conv2d, nn.BatchNorm2d)),
                         ("[2, 3, 8, 8]", ("FoldedConv2d", "FoldedBatchNorm2d"))):
        model = to_torch(loads(f"network t\ninput x: {shape}\nconv: conv2d(4, 3)\n"
                               "bn: batchnorm2d\n"))
        found = (type(model.get_submodule("conv")), type(model.get_submodule("bn")))
        if isinstance(kinds[0], str):
            assert tuple(k.__name__ for k in found) == kinds
            assert issubclass(found[0], nn.Conv2d) and issubclass(found[1], nn.BatchNorm2d)
        else:
            assert found == kinds


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any = 0.0,
               scale: float | None = None, causal: bool = False) -> torch.Tensor:
    """softmax(q k^T x scale + mask) v, composed of plain torch ops (tensor primitives)."""
    logits = q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5 if scale is None else scale) + mask
    if causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        logits = logits.masked_fill(~keep, float("-inf"))
    return logits.softmax(-1) @ v


# Tensor primitives with several inputs: call, input shapes per sample, hand-written torch.
PRIMITIVE_MERGES: list[tuple[str, list[tuple[int, ...]], Callable[..., torch.Tensor]]] = [
    ("matmul(a, b)", [(3, 4), (4, 5)], torch.matmul),
    ("matmul(a, b)", [(2, 3, 4), (2, 4, 5)], torch.matmul),
    ("matmul(b, a)", [(2, 4, 5), (1, 3, 4)], lambda a, b: b @ a),
    ("einsum(\"ld,sd->ls\")(a, b)", [(3, 4), (5, 4)], lambda a, b: a @ b.transpose(1, 2)),
    ("einsum(\"hld,hsd->hls\")(a, b)", [(2, 3, 4), (2, 5, 4)],
     lambda a, b: torch.einsum("nhld,nhsd->nhls", a, b)),
    ("einsum(\"ij,jk,kl->il\")(a, b, c)", [(3, 4), (4, 2), (2, 5)], lambda a, b, c: a @ b @ c),
    ("einsum(\"ij,ij->ij\")(a, b)", [(3, 4), (3, 4)], torch.mul),
    ("einsum(equation=\"ij, jk -> k\")(a, b)", [(3, 4), (4, 5)],
     lambda a, b: torch.einsum("nij,njk->nk", a, b)),
    ("scaled_dot_product_attention(a, b, c)", [(2, 5, 4), (2, 6, 4), (2, 6, 3)], _attention),
    ("scaled_dot_product_attention(a, b, c, scale=0.3, causal=true)",
     [(5, 4), (6, 4), (6, 2)], lambda q, k, v: _attention(q, k, v, scale=0.3, causal=True)),
    ("scaled_dot_product_attention(a, b, c, d)", [(2, 5, 4), (2, 6, 4), (2, 6, 4), (1, 5, 6)],
     _attention),
    ("stack(a, b)", [(2, 3), (2, 3)], lambda a, b: torch.stack([a, b], dim=1)),
    ("stack(a, b, c, dim=-1)", [(2, 3)] * 3, lambda *xs: torch.stack(xs, dim=-1)),
    ("stack(2)(a, b)", [(2, 3, 4)] * 2, lambda *xs: torch.stack(xs, dim=3)),
]

MERGE_CASES = [
    ("add(a, b)", [(3, 4, 4), (3, 4, 4)]), ("add(a, b, c)", [(5,), (5,), (5,)]),
    ("concat(a, b)", [(2, 4, 4), (3, 4, 4)]), ("concat(a, b, dim=1)", [(2, 4), (2, 3)]),
    ("mul(a, b)", [(3, 1, 1), (3, 4, 4)]), ("mul(a, b, c)", [(1, 5), (4, 1), (4, 5)]),
    ("upsample(mode=\"bilinear\")(a, b)", [(2, 3, 3), (5, 6, 7)]),
    ("center_crop(a, b)", [(2, 7, 8), (3, 4, 4)]),
    # tensor primitives: binary element-wise arithmetic
    ("sub(a, b)", [(3, 4, 4), (3, 1, 1)]), ("div(a, b)", [(1, 5), (4, 5)]),
    ("maximum(a, b)", [(2, 3), (2, 3)]), ("minimum(a, b)", [(3, 1, 4), (1, 2, 4)]),
    # tensor primitives: products of activations (ops/linalg.py) and stack
    *((call, shapes) for call, shapes, _ in PRIMITIVE_MERGES),
]

# Ops with several results, `names = call(x)`: names, call, input shape, torch's results.
MULTI_CASES: list[tuple[str, str, tuple[int, ...], Callable[[torch.Tensor], Any]]] = [
    ("p, q", "split(2)", (4, 3), lambda x: torch.split(x, 2, dim=1)),
    ("p, q, r", "split([1, 2, 3], dim=1)", (2, 6, 2), lambda x: torch.split(x, [1, 2, 3], 2)),
    ("p, q, r", "split(3, dim=-1)", (2, 2, 7), lambda x: torch.split(x, 3, dim=-1)),
    ("p, q, r", "chunk(3)", (9, 2), lambda x: torch.chunk(x, 3, dim=1)),
    ("p, q", "chunk(2, dim=1)", (2, 5, 3), lambda x: torch.chunk(x, 2, dim=2)),
    ("p, q", "chunk(3, dim=0)", (4,), lambda x: torch.chunk(x, 3, dim=1)),
]


def test_every_registered_op_has_a_case() -> None:
    calls = [c for c, _ in CASES + MERGE_CASES] + [c for _, c, _, _ in MULTI_CASES]
    constants = {"parameter", "buffer", "take"}  # no input to vary: tests/test_constants.py
    assert set(REGISTRY) <= {c.split("(")[0] for c in calls} | constants


def _merge_spec(call: str, shapes: list[tuple[int, ...]]) -> str:
    lines = [f"input {n}: [{', '.join(map(str, s))}]" for n, s in zip("abcd", shapes)]
    return "network t\n" + "\n".join(lines) + f"\ny = {call}\n"


def _reference(call: str, xs: list[torch.Tensor]) -> torch.Tensor:
    """What hand-written PyTorch computes for a merge case."""
    if call.startswith("add"):
        return sum(xs[1:], xs[0])
    if call.startswith("mul"):
        return math.prod(xs[1:], start=xs[0])
    if call.startswith("concat"):
        return torch.cat(xs, dim=2 if "dim=1" in call else 1)
    if call.startswith("upsample"):
        return F.interpolate(xs[0], size=xs[1].shape[2:], mode="bilinear")
    binary = {"sub": torch.sub, "div": torch.div, "maximum": torch.maximum,  # tensor primitives
              "minimum": torch.minimum}
    if call.split("(")[0] in binary:
        return binary[call.split("(")[0]](*xs)
    primitives = {call: ref for call, _, ref in PRIMITIVE_MERGES}  # tensor primitives
    if call in primitives:
        return primitives[call](*xs)
    return TF.center_crop(xs[0], list(xs[1].shape[2:]))


@pytest.mark.parametrize(("call", "shapes"), MERGE_CASES)
def test_merge_ops_match_torch(call: str, shapes: list[tuple[int, ...]]) -> None:
    spec = loads(_merge_spec(call, shapes))
    xs = [torch.randn(2, *s) for s in shapes]
    out = to_torch(spec)(*xs)
    assert tuple(out.shape) == (2, *expand(spec).nodes["y"].shape)
    torch.testing.assert_close(out, _reference(call, xs))


@pytest.mark.parametrize(("names", "call", "shape", "reference"), MULTI_CASES,
                         ids=[c for _, c, _, _ in MULTI_CASES])
def test_multi_result_ops_match_torch(names: str, call: str, shape: tuple[int, ...],
                                      reference: Callable[[torch.Tensor], Any]) -> None:
    """Each result is its own node (attrs.index) and equals torch.split / torch.chunk's."""
    spec = loads(f"network t\ninput x: [{', '.join(map(str, shape))}]\noutput {names}\n"
                 f"{names} = {call}(x)\n")
    graph = expand(spec)
    x = torch.randn(2, *shape)
    out, want = to_torch(spec)(x), reference(x)
    assert len(want) == len(graph.nodes) == len(out)
    for i, (node, got, ref) in enumerate(zip(graph, out.values(), want)):
        assert node.attrs.index == i and tuple(got.shape) == (2, *node.shape)
        torch.testing.assert_close(got, ref)
        cost = REGISTRY[node.op].cost(Ctx(node.in_shapes, node.shape, node.attrs))
        assert (cost.params, cost.macs, cost.flops) == (0, 0, 0)


@settings(max_examples=60, deadline=None)
@given(rank=st.integers(1, 3), cin=st.integers(1, 6), groups=st.integers(1, 3),
       out_per_group=st.integers(1, 4), k=st.integers(1, 4), s=st.integers(1, 3),
       p=st.integers(0, 2), d=st.integers(1, 2), n=st.integers(6, 12), bias=st.booleans())
def test_random_convolutions(rank, cin, groups, out_per_group, k, s, p, d, n, bias) -> None:
    cin *= groups
    if n + 2 * p < d * (k - 1) + 1:
        return
    call = (f"conv{rank}d({out_per_group * groups}, {k}, stride={s}, padding={p}, "
            f"dilation={d}, groups={groups}, bias={'true' if bias else 'false'})")
    _check(call, (cin, *([n] * rank)))


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["max", "avg"]), rank=st.integers(1, 3), k=st.integers(1, 4),
       s=st.integers(1, 3), p=st.integers(0, 2), n=st.integers(4, 11), ceil=st.booleans())
def test_random_pools(kind, rank, k, s, p, n, ceil) -> None:
    if 2 * p > k:
        return
    call = f"{kind}pool{rank}d({k}, stride={s}, padding={p}, ceil={'true' if ceil else 'false'})"
    _check(call, (2, *([n] * rank)))


@settings(max_examples=30, deadline=None)
@given(rank=st.integers(1, 3), cin=st.integers(1, 4), groups=st.integers(1, 3),
       out_per_group=st.integers(1, 3), k=st.integers(1, 4), s=st.integers(1, 3),
       p=st.integers(0, 2), d=st.integers(1, 2), extra=st.integers(0, 2), n=st.integers(2, 6),
       bias=st.booleans())
def test_random_transposed_convolutions(rank, cin, groups, out_per_group, k, s, p, d, extra, n,
                                        bias) -> None:
    out_pad = min(extra, max(s, d) - 1)
    if (n - 1) * s - 2 * p + d * (k - 1) + out_pad + 1 < 1:
        return
    call = (f"conv_transpose{rank}d({out_per_group * groups}, {k}, stride={s}, padding={p}, "
            f"output_padding={out_pad}, dilation={d}, groups={groups}, "
            f"bias={'true' if bias else 'false'})")
    _check(call, (cin * groups, *([n] * rank)))


_MODES = {1: ["nearest", "nearest-exact", "linear"], 2: ["nearest", "bilinear", "bicubic"],
          3: ["nearest", "trilinear"]}


@settings(max_examples=30, deadline=None)
@given(rank=st.integers(1, 3), mode=st.integers(0, 2), n=st.integers(1, 6),
       scale=st.integers(1, 3), size=st.integers(1, 9), by_size=st.booleans(),
       corners=st.sampled_from([None, True, False]))
def test_random_resizes(rank, mode, n, scale, size, by_size, corners) -> None:
    """Shape and (zero) counts of upsample, and its values against F.interpolate."""
    mode_name = _MODES[rank][mode % len(_MODES[rank])]
    corners = corners if mode_name not in ("nearest", "nearest-exact") else None
    target = f"size={size}" if by_size else f"scale={scale}"
    flag = "" if corners is None else f", align_corners={'true' if corners else 'false'}"
    call = f"upsample({target}, mode=\"{mode_name}\"{flag})"
    _check(call, (2, *([n] * rank)))
    x = torch.randn(1, 2, *([n] * rank))
    spec = loads(f"network t\ninput x: [{', '.join(map(str, x.shape[1:]))}]\ny: {call}\n")
    kwargs = {"size": size} if by_size else {"scale_factor": scale}
    torch.testing.assert_close(to_torch(spec)(x), F.interpolate(x, mode=mode_name,
                                                                 align_corners=corners, **kwargs))


@settings(max_examples=30, deadline=None)
@given(c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), dh=st.integers(0, 5),
       dw=st.integers(0, 5))
def test_random_center_crops(c, h, w, dh, dw) -> None:
    """Both forms crop as torchvision's center_crop (round half to even)."""
    x, ref = torch.randn(2, c, h + dh, w + dw), torch.randn(2, 1, h, w)
    want = TF.center_crop(x, [h, w])
    sized = loads(f"network t\ninput x: [{c}, {h + dh}, {w + dw}]\ny: center_crop(size=({h}, "
                  f"{w}))\n")
    torch.testing.assert_close(to_torch(sized)(x), want)
    spec = loads(_merge_spec("center_crop(a, b)", [tuple(x.shape[1:]), tuple(ref.shape[1:])]))
    assert expand(spec).nodes["y"].shape == tuple(want.shape[1:])
    torch.testing.assert_close(to_torch(spec)(x, ref), want)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), masks=st.lists(
    st.lists(st.booleans(), min_size=3, max_size=3), min_size=2, max_size=3))
def test_random_broadcast_products(shape, masks) -> None:
    """mul's output shape is torch's broadcast shape; its values torch's product."""
    shapes = [tuple(1 if m else d for d, m in zip(shape, mask)) for mask in masks]
    spec = loads(_merge_spec(f"mul({', '.join('abc'[:len(shapes)])})", shapes))
    xs = [torch.randn(2, *s) for s in shapes]
    out = to_torch(spec)(*xs)
    assert tuple(out.shape) == (2, *expand(spec).nodes["y"].shape)
    torch.testing.assert_close(out, math.prod(xs[1:], start=xs[0]))


def test_mul_rejects_shapes_that_do_not_broadcast() -> None:
    """Mismatched dims fail in torch too; different ranks would silently broadcast the batch
    into a feature dim there, so archspec rejects them."""
    for shapes in ([(3, 4), (4, 3)], [(3, 1, 1), (3,)]):
        with pytest.raises(ArchspecError) as info:
            expand(loads(_merge_spec("mul(a, b)", shapes)))
        assert info.value.diagnostic.code == "E305"
    with pytest.raises(RuntimeError):
        torch.randn(2, 3, 4) * torch.randn(2, 4, 3)
    assert (torch.randn(2, 3, 1, 1) * torch.randn(2, 3)).shape == (2, 3, 2, 3)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), dim=st.integers(-4, 3),
       start=st.integers(-6, 6), end=st.one_of(st.none(), st.integers(-6, 6)),
       step=st.integers(1, 3), keep=st.booleans())
def test_random_tensor_ops(shape, dim, start, end, step, keep) -> None:
    """slice, select and mean against torch indexing and torch.mean."""
    x = torch.randn(2, *shape)
    if not -len(shape) <= dim < len(shape):
        return
    axis = dim % len(shape) + 1
    index = [slice(None)] * axis
    cases = [(f"mean({dim}, keepdim={'true' if keep else 'false'})",
              x.mean(dim=axis, keepdim=keep))]
    if x[(*index, slice(start, end, step))].numel():
        end_text = "none" if end is None else end
        cases.append((f"slice({dim}, {start}, {end_text}, {step})",
                      x[(*index, slice(start, end, step))]))
    if -shape[axis - 1] <= start < shape[axis - 1]:
        cases.append((f"select({dim}, {start})", x.select(axis, start)))
    for call, want in cases:
        spec = loads(f"network t\ninput x: [{', '.join(map(str, shape))}]\ny: {call}\n")
        assert expand(spec).nodes["y"].shape == tuple(want.shape[1:]), call
        torch.testing.assert_close(to_torch(spec)(x), want)


@settings(max_examples=30, deadline=None)
@given(groups=st.integers(1, 4), per_group=st.integers(1, 3), spatial=st.lists(
    st.integers(1, 4), min_size=0, max_size=3), affine=st.booleans())
def test_random_group_norms_and_shuffles(groups, per_group, spatial, affine) -> None:
    shape = (groups * per_group, *spatial)
    _check(f"groupnorm({groups}, affine={'true' if affine else 'false'})", shape)
    if spatial:
        x = torch.randn(2, *shape)
        spec = loads(f"network t\ninput x: [{', '.join(map(str, shape))}]\n"
                     f"y: channel_shuffle({groups})\n")
        torch.testing.assert_close(to_torch(spec)(x), nn.ChannelShuffle(groups)(x))


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_trains_as_torchvision(mode: str) -> None:
    """Same seed, same drops and scaling as torchvision.ops.stochastic_depth; eval: identity."""
    spec = loads(f"network t\ninput x: [3, 4, 4]\ny: stochastic_depth(0.4, \"{mode}\")\n")
    model = to_torch(spec).train()
    x = torch.randn(16, 3, 4, 4)
    torch.manual_seed(7)
    got = model(x)
    torch.manual_seed(7)
    torch.testing.assert_close(got, stochastic_depth(x, 0.4, mode, training=True))
    assert torch.equal(model.eval()(x), x)


def _measured_field(spec_text: str) -> int:
    """The most input positions along the first spatial axis that one output element depends
    on, from autograd (every other axis summed over)."""
    spec = loads(spec_text)
    shape = next(iter(expand(spec).inputs.values()))
    model = to_torch(spec).double().eval()
    x = torch.randn(1, *shape, dtype=torch.float64, requires_grad=True)
    y = model(x)
    widest = 0
    for o in range(y.shape[2]):
        (grad,) = torch.autograd.grad(y[:, :, o].sum(), x, retain_graph=True)
        rows = grad.abs().sum(dim=[d for d in range(grad.ndim) if d != 2]).nonzero()
        if len(rows):  # a dilated transposed convolution leaves some outputs bias-only
            widest = max(widest, int(rows.max() - rows.min()) + 1)
    return widest


@pytest.mark.parametrize(("body", "shape"), [
    ("conv_transpose1d(2, 3, stride=2)", (2, 8)), ("conv_transpose1d(2, 4, stride=2)", (2, 8)),
    ("conv_transpose1d(2, 5, stride=2, dilation=2)", (2, 8)),
    ("conv_transpose2d(2, 3, stride=3, padding=1)", (2, 6, 5)),
    ("conv_transpose1d(2, 3, stride=2) -> conv1d(2, 3)", (2, 8)),
    ("upsample(3)", (2, 6)), ("upsample(2, mode=\"linear\")", (2, 6)),
    ("upsample(2, mode=\"bicubic\")", (2, 6, 5)),
    ("conv1d(2, 3) -> upsample(2, mode=\"linear\") -> conv1d(2, 3)", (2, 9)),
    ("slice(1, 0, none, 2) -> conv2d(2, 3)", (2, 12, 5)),
])
def test_receptive_fields_of_resampling_ops(body: str, shape: tuple[int, ...]) -> None:
    """The static receptive field equals the widest input support autograd finds."""
    text = f"network t\ninput x: [{', '.join(map(str, shape))}]\ny: {body}\n"
    graph = expand(loads(text))
    field = receptive_fields(graph)[list(graph.nodes)[-1]]
    assert field.size == _measured_field(text)


# ------------------------------------------------------------------------ tensor primitives
# matmul, einsum, scaled_dot_product_attention (ops/linalg.py); pad, roll, pixel (un)shuffle,
# stack, expand, tile (ops/movement.py); reshape's -1.


@pytest.mark.parametrize(("call", "shapes"), [(c, s) for c, s, _ in PRIMITIVE_MERGES])
def test_primitive_products_count_as_torch(call: str, shapes: list[tuple[int, ...]]) -> None:
    """MACs (all of them activation products) equal FlopCounterMode's on the meta device."""
    graph = expand(loads(_merge_spec(call, shapes)))
    node = graph.nodes["y"]
    cost = REGISTRY[node.op].cost(Ctx(node.in_shapes, node.shape, node.attrs))
    assert cost.products == cost.macs and cost.params == 0
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        to_torch(graph).to("meta")(*(torch.randn(2, *s, device="meta") for s in shapes))
    assert 2 * cost.macs == counter.get_total_flops() // 2, call


MOVE_REFERENCES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "pad([1, 2, 0, 1])": lambda x: F.pad(x, (1, 2, 0, 1)),
    "pad([1, 1], value=0.5)": lambda x: F.pad(x, (1, 1), value=0.5),
    "pad([1, 2, 3, 0], mode=\"reflect\")": lambda x: F.pad(x, (1, 2, 3, 0), mode="reflect"),
    "pad([2, 1, 1, 2], mode=\"replicate\")": lambda x: F.pad(x, (2, 1, 1, 2), "replicate"),
    "pad([4, 1, 0, 3], mode=\"circular\")": lambda x: F.pad(x, (4, 1, 0, 3), mode="circular"),
    "roll([1, -2], [0, -1])": lambda x: torch.roll(x, (1, -2), (1, -1)),
    "roll(7, -1)": lambda x: torch.roll(x, 7, 2),
    "pixel_shuffle(3)": lambda x: F.pixel_shuffle(x, 3),
    "pixel_unshuffle(3)": lambda x: F.pixel_unshuffle(x, 3),
    "expand([3, -1, 4])": lambda x: x.expand(-1, 3, 2, 4),
    "tile([2, 3])": lambda x: x.repeat(1, 1, 2, 3),
    "reshape([-1, 4, 2])": lambda x: x.reshape(2, 3, 4, 2),
}


@pytest.mark.parametrize("call", MOVE_REFERENCES)
def test_movement_ops_match_torch(call: str) -> None:
    shape = dict(CASES)[call]
    x = torch.randn(2, *shape)
    spec = loads(f"network t\ninput x: [{', '.join(map(str, shape))}]\ny: {call}\n")
    torch.testing.assert_close(to_torch(spec)(x), MOVE_REFERENCES[call](x), rtol=0, atol=0)


def _qkv_spec(attrs: str = "", mask: bool = False) -> str:
    extra = "input m: [1, 5, 6]\n" if mask else ""
    return (f"network t\ninput q: [2, 5, 4]\ninput k: [2, 6, 4]\ninput v: [2, 6, 3]\n{extra}"
            f"y = scaled_dot_product_attention(q, k, v{', m' if mask else ''}{attrs})\n")


@pytest.mark.parametrize(("attrs", "mask", "kwargs"), [
    ("", False, {}), (", scale=0.25", False, {"scale": 0.25}),
    (", causal=true", False, {"causal": True}), ("", True, {}),
])
def test_attention_is_the_fused_functional(attrs: str, mask: bool, kwargs: dict) -> None:
    """One fx node calls F.scaled_dot_product_attention (its fused kernels on GPU), and it
    equals softmax(q k^T x scale + mask) v composed of plain ops."""
    model = to_torch(loads(_qkv_spec(attrs, mask))).eval()
    targets = [n.target for n in model.graph.nodes if n.op == "call_function"]
    assert targets == [F.scaled_dot_product_attention]
    xs = [torch.randn(3, *s) for s in [(2, 5, 4), (2, 6, 4), (2, 6, 3), (1, 5, 6)][:3 + mask]]
    want = _attention(*xs[:3], xs[3] if mask else 0.0, **kwargs)
    torch.testing.assert_close(model(*xs), want)


def test_attention_dropout_drops_only_while_training() -> None:
    model = to_torch(loads(_qkv_spec(", dropout=0.5")))
    xs = [torch.randn(3, *s) for s in [(2, 5, 4), (2, 6, 4), (2, 6, 3)]]
    torch.manual_seed(0)
    assert not torch.allclose(model.train()(*xs), _attention(*xs))
    torch.testing.assert_close(model.eval()(*xs), _attention(*xs))


def test_reshape_minus_one_with_block_parameters() -> None:
    """`reshape([heads, -1, head_dim])` with sizes from block parameters, as attention splits
    heads; -1 that does not divide is a located error."""
    spec = loads("network t(heads: int = 2)\ninput x: [5, 8]\n"
                 "block heads_of(heads: int, head_dim: int) {\n"
                 "    reshape([-1, heads, head_dim]) -> permute([1, 0, 2])\n}\n"
                 "y: heads_of(heads, in.features // heads)\n")
    graph = expand(spec)
    assert graph.nodes["y.1"].shape == (2, 5, 4)
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(to_torch(spec)(x), x.reshape(3, 5, 2, 4).permute(0, 2, 1, 3))
    with pytest.raises(ArchspecError) as info:
        expand(loads("network t\ninput x: [5, 8]\ny: reshape([3, -1])\n"))
    d = info.value.diagnostic
    assert d.code == "E301" and d.span.line == 3 and "[3, -1]" in d.message
    assert "40 elements" in d.message and "divide" in d.message


@pytest.mark.parametrize(("body", "code", "words"), [
    ("y = einsum(\"ij,jk->il\")(a, b)", "E235", ["`equation`", "'ij,jk->il'", "'l'"]),
    ("y = einsum(\"ij,jk\")(a, b)", "E235", ["`equation`", "'->'"]),
    ("y = einsum(\"i...j,jk->ik\")(a, b)", "E235", ["`equation`", "'.'"]),
    ("y = einsum(\"ijk,jk->ik\")(a, b)", "E303", ["operand 1", "'ijk'", "3x4"]),
    ("y = einsum(\"ij,jk->ik\")(a, b)", "E301", ["index 'j'", "4", "3"]),
    ("y = einsum(\"ij,jk,kl->il\")(a, b)", "E214", ["3 operand", "2 input"]),
    ("y = matmul(a, b)", "E301", ["inner dims", "3x4", "3x4"]),
    ("y = matmul(a, c)", "E305", ["ranks", "3x4", "2x4x3"]),
    ("y: pad([4, 0], mode=\"reflect\")(a)", "E301", ["`pads`", "[4, 0]", "dim 1", "4"]),
    ("y: pad([5, 0], mode=\"circular\")(a)", "E301", ["`pads`", "[5, 0]", "at most once"]),
    ("y: pad([1, 1], mode=\"reflect\")(c)", "E303", ["\"reflect\"", "2x4x3"]),
    ("y: pad([1, 1], mode=\"replicate\", value=1.0)(a)", "E235", ["`value`", "replicate"]),
    ("y = scaled_dot_product_attention(a, d, d)", "E301", ["(..., S, E)", "3x4", "4x3"]),
    ("y = scaled_dot_product_attention(a, a, a, a, causal=true)", "E301", ["`causal`"]),
    ("y: pixel_shuffle(2)(c)", "E301", ["`factor`", "4", "2 channels"]),
    ("y: expand([3, 5])(a)", "E301", ["`sizes`", "dim 1", "size-1"]),
    ("y = stack(a, c)", "E305", ["different shapes"]),
])
def test_primitive_errors_are_located_and_named(body: str, code: str, words: list[str]) -> None:
    """A bad equation, a pad too large for its mode, mismatched products: the code, at the
    call's line, the message naming the attribute (and its value) or the shapes."""
    spec = loads("network t\ninput a: [3, 4]\ninput b: [3, 4]\ninput c: [2, 4, 3]\n"
                 f"input d: [4, 3]\noutput y\n{body}\n")
    with pytest.raises(ArchspecError) as info:
        expand(spec)
    d = info.value.diagnostic
    assert d.code == code and d.span.line == 7, (d.code, d.message)
    assert all(w in d.message for w in words), d.message


@pytest.mark.parametrize(("equation", "shapes"), [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk,kl->il", [(30, 40), (40, 2), (2, 50)]),
    ("ij,jk,kl->i", [(3, 4), (4, 4), (4, 4)]), ("ab,bc,cd,de->ae", [(9, 2), (2, 8), (8, 3),
                                                                   (3, 7)]),
    ("ij,kl->ijkl", [(2, 3), (4, 5)]), ("iij,j->i", [(3, 3, 4), (4,)]),
])
def test_einsum_path_flops_are_numpys(equation: str, shapes: list[tuple[int, ...]]) -> None:
    """The count fvcore reads (numpy's cheapest contraction order) without numpy."""
    import numpy as np

    from archspec.ops.linalg import parse_equation, path_flops

    terms, out = parse_equation(equation)
    sizes = {i: n for t, s in zip(terms, shapes) for i, n in zip(t, s)}
    report = np.einsum_path(equation, *(np.zeros(s) for s in shapes), optimize="optimal")[1]
    printed = next(ln for ln in report.splitlines() if "Optimized FLOP" in ln).split(":")[1]
    assert float(printed) == float(f"{path_flops(terms, out, sizes) + 1:.3e}")


@pytest.mark.parametrize(("body", "shape"), [
    ("pixel_unshuffle(2) -> conv2d(4, 3)", (2, 12, 12)),
    ("conv2d(8, 3) -> pixel_shuffle(2) -> conv2d(2, 3)", (2, 9, 9)),
    ("pad([1, 1, 2, 2], \"reflect\") -> conv2d(2, 3)", (2, 8, 8)),
])
def test_receptive_fields_of_movement_ops(body: str, shape: tuple[int, ...]) -> None:
    """pixel_unshuffle is a window of `factor` with stride `factor`, pixel_shuffle an upsampling
    by it, padding leaves the field as it is (as autograd measures it)."""
    text = f"network t\ninput x: [{', '.join(map(str, shape))}]\ny: {body}\n"
    graph = expand(loads(text))
    assert receptive_fields(graph)[list(graph.nodes)[-1]].size == _measured_field(text)


def test_primitives_eject_to_the_same_network() -> None:
    """`archspec compile` writes every new op (the einsum and attention helpers travel with
    the file) and the ejected network computes what the compiled one does."""
    import types

    from archspec.backends.eject.standalone import eject

    spec = loads("network t\ninput x: [2, 4, 6]\ninput r: [2, 6, 4]\noutput y, z, w\n"
                 "s = einsum(\"hld,hdk->hlk\")(x, r) -> softmax(-1)\n"
                 "a = scaled_dot_product_attention(x, x, x, dropout=0.1)\n"
                 "b = scaled_dot_product_attention(a, x, x, scale=0.5, causal=true)\n"
                 "y = matmul(s, b) -> pad([1, 1, 0, 2], \"replicate\") -> roll(1, -1)"
                 " -> tile([1, 2])\n"
                 "z = stack(x, a) -> pixel_unshuffle(2) -> pixel_shuffle(2)\n"
                 "w = select(0, 0)(x) -> reshape([1, 4, 6]) -> expand([3, -1, -1])\n")
    module = types.ModuleType("ejected")
    code = compile(eject(spec), "ejected.py", "exec", dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102
    xs = [torch.randn(3, 2, 4, 6), torch.randn(3, 2, 6, 4)]
    ours, theirs = module.build().eval()(*xs), to_torch(spec).eval()(*xs)
    assert ours.keys() == theirs.keys() == {"y", "z", "w"}
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key])
