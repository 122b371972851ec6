"""Registry-parametrized: for every op, the static shape, params, buffers and MACs equal what
its lowered PyTorch module really does on a real tensor (MACs by FlopCounterMode / 2)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from archspec.backends.torch import to_torch
from archspec.expander import expand
from archspec.ops import REGISTRY, Ctx
from archspec.syntax.loader import loads

# (op call, input shape per sample) - at least one case per registered op.
CASES: list[tuple[str, tuple[int, ...]]] = [
    ("conv1d(8, 3, stride=2, padding=1)", (4, 17)),
    ("conv2d(8, 3, stride=2, padding=1, groups=2)", (4, 15, 16)),
    ("conv2d(6, (3, 5), padding=\"same\", dilation=2, bias=false)", (3, 12, 13)),
    ("conv2d(4, 3, padding=1, padding_mode=\"reflect\")", (2, 9, 9)),
    ("conv2d(4, 3, padding=2, padding_mode=\"circular\")", (2, 9, 9)),
    ("conv2d(4, 4, padding=\"same\", padding_mode=\"replicate\")", (2, 9, 9)),
    ("conv3d(4, 3, stride=(1, 2, 2))", (2, 5, 9, 9)),
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
    ("lrn(5, k=2.0)", (8, 5, 5)),
    ("local_response_norm(3)", (8, 5, 5)),
    ("relu", (3, 4)), ("leaky_relu(0.2)", (3, 4)), ("sigmoid", (5,)), ("tanh", (5,)),
    ("gelu(\"tanh\")", (5,)), ("silu", (2, 3, 3)), ("softmax(0)", (7,)),
    ("linear(7)", (12,)), ("linear(3, bias=false)", (4,)),
    ("flatten", (3, 4, 5)), ("flatten(1)", (3, 4, 5)), ("dropout(0.3)", (6,)),
    ("identity", (2, 2)),
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
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        y = module(x)
    assert tuple(y.shape) == (2, *node.shape), call
    assert cost.params == sum(p.numel() for p in module.parameters()), call
    assert cost.buffers == sum(b.numel() for b in module.buffers()), call
    assert 2 * cost.macs == counter.get_total_flops() // 2, call


@pytest.mark.parametrize(("call", "shape"), CASES, ids=[c for c, _ in CASES])
def test_op_matches_torch(call: str, shape: tuple[int, ...]) -> None:
    _check(call, shape)


MERGE_CASES = [
    ("add(a, b)", [(3, 4, 4), (3, 4, 4)]), ("add(a, b, c)", [(5,), (5,), (5,)]),
    ("concat(a, b)", [(2, 4, 4), (3, 4, 4)]), ("concat(a, b, dim=1)", [(2, 4), (2, 3)]),
]


def test_every_registered_op_has_a_case() -> None:
    covered = {c.split("(")[0] for c, _ in CASES + MERGE_CASES}
    assert set(REGISTRY) <= covered


@pytest.mark.parametrize(("call", "shapes"), MERGE_CASES)
def test_merge_ops_match_torch(call: str, shapes: list[tuple[int, ...]]) -> None:
    names = "abc"[:len(shapes)]
    lines = [f"input {n}: [{', '.join(map(str, s))}]" for n, s in zip(names, shapes)]
    spec = loads("network t\n" + "\n".join(lines) + f"\ny = {call}\n")
    model = to_torch(spec)
    out = model(*[torch.randn(2, *s) for s in shapes])
    assert tuple(out.shape) == (2, *expand(spec).nodes["y"].shape)


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
