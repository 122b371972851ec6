"""Tensor primitives (ops/arith.py, ops/reduce.py, the newer activations): values against
the torch functions they stand for, the located errors of bad attributes and shapes, which
ops keep their output for backward, PReLU's weights, and `archspec compile`."""

from __future__ import annotations

import math
import types
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import archspec
from archspec.analysis.passes import receptive_fields
from archspec.backends.eject import eject
from archspec.backends.onnx import to_onnx
from archspec.ops import REGISTRY

Reference = Callable[[torch.Tensor], torch.Tensor]

# (op call, input shape per sample, what torch computes on the batched input)
VALUES: list[tuple[str, tuple[int, ...], Reference]] = [
    ("scale(-2.5)", (3, 4), lambda x: x * -2.5), ("shift(0.25)", (3, 4), lambda x: x + 0.25),
    ("pow(3.0)", (3, 4), lambda x: x**3), ("exp", (5,), torch.exp),
    ("abs", (3, 4), torch.abs), ("neg", (3, 4), torch.neg),
    ("reciprocal", (3, 4), torch.reciprocal),
    ("clamp(min=-0.5)", (3, 4), lambda x: x.clamp(min=-0.5)),
    ("clamp(max=0.5)", (3, 4), lambda x: x.clamp(max=0.5)),
    ("clamp(-0.5, 0.5)", (3, 4), lambda x: x.clamp(-0.5, 0.5)),
    ("mish", (3, 4), F.mish), ("elu(0.5)", (3, 4), lambda x: F.elu(x, 0.5)),
    ("selu", (3, 4), F.selu), ("softplus(2.0, 1.0)", (3, 4), lambda x: F.softplus(x, 2.0, 1.0)),
    ("hardtanh(-0.5, 1.5)", (3, 4), lambda x: F.hardtanh(x, -0.5, 1.5)),
    ("quick_gelu", (3, 4), lambda x: x * torch.sigmoid(1.702 * x)),
    ("prelu(3, 0.1)", (3, 4, 4), lambda x: F.prelu(x, torch.full((3,), 0.1))),
    ("sum([1, 2])", (3, 4, 5), lambda x: x.sum(dim=(2, 3))),
    ("amax(-1, true)", (3, 4, 5), lambda x: x.amax(dim=-1, keepdim=True)),
    ("amin(0)", (3, 4), lambda x: x.amin(dim=1)),
    ("var([0, 2], correction=0)", (3, 4, 5), lambda x: x.var(dim=(1, 3), correction=0)),
    ("std(1, keepdim=true)", (3, 4), lambda x: x.std(dim=2, keepdim=True)),
    ("norm(dims=[0, 1])", (3, 4), lambda x: torch.linalg.vector_norm(x, dim=(1, 2))),
    ("norm(1, -1)", (3, 4), lambda x: x.abs().sum(dim=-1)),
    ("norm(\"inf\", 0)", (3, 4), lambda x: x.abs().amax(dim=1)),
    ("normalize", (3, 4), lambda x: F.normalize(x, dim=-1)),
    ("normalize(1.0, 0, 0.5)", (3, 4), lambda x: F.normalize(x, 1.0, 1, 0.5)),
]

POSITIVE = [("log", (3, 4), torch.log), ("sqrt", (3, 4), torch.sqrt),
            ("rsqrt", (3, 4), torch.rsqrt), ("pow(0.5)", (5,), torch.sqrt)]


REDUCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "sum": torch.sum, "amax": torch.amax, "amin": torch.amin, "var": torch.var,
    "std": torch.std, "norm": lambda x, dim, keepdim: torch.linalg.vector_norm(
        x, dim=dim, keepdim=keepdim)}


def _spec(body: str, shapes: list[tuple[int, ...]]) -> archspec.Spec:
    inputs = "".join(f"input {n}: [{', '.join(map(str, s))}]\n" for n, s in zip("xr", shapes))
    return archspec.loads(f"network t\n{inputs}{body}\n")


@pytest.mark.parametrize(("call", "shape", "reference"), VALUES + POSITIVE,
                         ids=[c for c, _, _ in VALUES + POSITIVE])
def test_values_match_torch(call: str, shape: tuple[int, ...], reference: Reference) -> None:
    spec = _spec(f"y: {call}", [shape])
    positive = call in {c for c, _, _ in POSITIVE}  # their domain
    x = torch.rand(2, *shape) + 0.1 if positive else torch.randn(2, *shape)
    got = archspec.to_torch(spec)(x)
    assert tuple(got.shape) == (2, *archspec.expand(spec).nodes["y"].shape)
    torch.testing.assert_close(got, reference(x))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), op=st.sampled_from(
    sorted(REDUCTIONS)), picks=st.lists(st.integers(-3, 2), min_size=1, max_size=3,
                                        unique=True), keep=st.booleans())
def test_random_reductions_match_torch(shape: list[int], op: str, picks: list[int],
                                       keep: bool) -> None:
    """Any dims in range, negative or not, reduce as torch does, with or without keepdim."""
    rank = len(shape)
    if any(not -rank <= d < rank for d in picks) or len({d % rank for d in picks}) < len(picks):
        return
    axes = tuple(d % rank + 1 for d in picks)
    if op in ("var", "std") and math.prod(shape[a - 1] for a in axes) < 2:
        return  # no degrees of freedom: a located error (test above)
    call = f"{op}(dims={list(picks)}, keepdim={'true' if keep else 'false'})"
    spec = _spec(f"y: {call}", [tuple(shape)])
    x = torch.randn(2, *shape)
    want = REDUCTIONS[op](x, dim=axes, keepdim=keep)
    assert archspec.expand(spec).nodes["y"].shape == tuple(want.shape[1:]), call
    torch.testing.assert_close(archspec.to_torch(spec)(x), want)


@pytest.mark.parametrize(("body", "shapes", "code", "names"), [
    ("y: sum(3)", [(3, 4, 4)], "E301", "`dims` (=3)"),
    ("y: amax([0, -3])", [(3, 4, 4)], "E301", "`dims` (=[0, -3])"),
    ("y: var([])", [(3, 4)], "E301", "`dims` (=[])"),
    ("y: norm(dims=-3)", [(3, 4)], "E301", "`dims` (=-3)"),
    ("y: normalize(dim=2)", [(3, 4)], "E301", "`dim` (=2)"),
    ("y: clamp", [(3, 4)], "E235", "`min` and `max`"),
    ("y: clamp(1.0, 0.5)", [(3, 4)], "E235", "`min` (=1.0)"),
    ("y: prelu(4)", [(3, 4, 4)], "E301", "`num_parameters` (=4)"),
    ("y: prelu(0)", [(3, 4, 4)], "E235", "`num_parameters` (=0)"),
    ("y: norm(3, 0)", [(3, 4)], "E235", "`p` (=3)"),
    ("y: var(0, correction=3)", [(3, 4)], "E301", "`correction` (=3)"),
    ("y: std(0, correction=-1)", [(3, 4)], "E235", "`correction` (=-1)"),
    ("y: hardtanh(1.0, -1.0)", [(3, 4)], "E235", "`min_val` (=1.0)"),
    ("y: softplus(beta=0.0)", [(3, 4)], "E235", "`beta` (=0.0)"),
    ("y: normalize(eps=0.0)", [(3, 4)], "E235", "`eps` (=0.0)"),
    ("y: scale", [(3, 4)], "E234", "`factor`"),
    ("y = sub(x, r, x)", [(3, 4), (3, 4)], "E214", "`sub` takes two inputs"),
    ("y = div(x, r)", [(3, 4), (4, 3)], "E305", "`div` inputs do not broadcast"),
    ("y = maximum(x, r)", [(3, 1, 1), (3,)], "E305", "`maximum` inputs have different ranks"),
])
def test_bad_attributes_and_shapes_are_located_errors(body: str, shapes: list[tuple[int, ...]],
                                                      code: str, names: str) -> None:
    """The diagnostic has its code, points at the call's line and names the attribute."""
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.expand(_spec(body, shapes))
    diag = info.value.diagnostic
    assert diag.code == code and names in diag.message, diag.message
    assert diag.span.line == len(shapes) + 2 and diag.hint


@pytest.mark.parametrize(("call", "shape"), [(c, s) for c, s, _ in VALUES + POSITIVE],
                         ids=[c for c, _, _ in VALUES + POSITIVE])
def test_keeps_output_says_whether_backward_reads_the_result(call: str,
                                                             shape: tuple[int, ...]) -> None:
    """``keeps_output`` is set exactly where torch's backward saves the op's result (so a
    later in-place op must not overwrite it)."""
    spec = _spec(f"y: {call}", [shape])
    x = torch.rand(2, *shape, requires_grad=True)
    grad_fn = archspec.to_torch(spec)(x).grad_fn
    assert REGISTRY[call.split("(")[0]].keeps_output == hasattr(grad_fn, "_saved_result")


def test_prelu_weight_is_the_layers_own_key_and_loads() -> None:
    spec = _spec("act: prelu(3)\nscalar: prelu", [(3, 4, 4)])
    model = archspec.to_torch(spec)
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {"act.weight": (3,),
                                                             "scalar.weight": (1,)}
    assert torch.equal(state["act.weight"], torch.full((3,), 0.25))
    model.load_state_dict({"act.weight": torch.tensor([0.1, 0.2, 0.3]),
                           "scalar.weight": torch.tensor([1.0])})
    x = -torch.ones(1, 3, 4, 4)
    assert model(x)[0, :, 0, 0].tolist() == pytest.approx([-0.1, -0.2, -0.3])
    assert archspec.analyze(spec).totals["params"] == 4


def test_prelu_init_rules_see_a_one_dimensional_weight() -> None:
    """`init` sets the slopes; a fan-based scheme is a located error, not torch's ValueError."""
    text = "network t\ninput x: 3x4x4\nact: prelu(3)\ninit prelu: {}\n"
    state = archspec.to_torch(archspec.loads(text.format("constant(0.1)"))).state_dict()
    assert torch.equal(state["act.weight"], torch.full((3,), 0.1))
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.to_torch(archspec.loads(text.format("kaiming_normal")))
    assert info.value.diagnostic.code == "E116" and "1-D weight of `act`" in str(info.value)


def test_compile_writes_the_same_network() -> None:
    """The ejected source computes what the compiled spec does: sub and div as operators,
    the helper modules carried, an infinite norm order spelt ``torch.inf``."""
    spec = _spec("output y\nd = sub(x, r)\nq = div(d, r) -> scale(0.5) -> shift(1.0)\n"
                 "y = maximum(q, x) -> quick_gelu -> prelu(3) -> norm(\"inf\", 0, true) "
                 "-> normalize(dim=1)", [(3, 4, 5), (3, 1, 1)])
    text = eject(spec)
    assert " - " in text and " / " in text and "torch.inf" in text
    module = types.ModuleType("ejected")
    exec(compile(text, "ejected.py", "exec", dont_inherit=True), module.__dict__)  # noqa: S102
    torch.manual_seed(0)
    ejected = module.build().eval()
    torch.manual_seed(0)
    compiled = archspec.to_torch(spec).eval()
    xs = [torch.randn(2, 3, 4, 5), torch.rand(2, 3, 1, 1) + 0.5]
    with torch.no_grad():
        torch.testing.assert_close(ejected(*xs), compiled(*xs))


def test_costs_and_receptive_fields() -> None:
    """FLOPs as the docs state; reducing or normalising the first spatial dim is global."""
    graph = archspec.expand(_spec("a: var([1, 2], keepdim=true)\nb = normalize(dim=1)(x)\n"
                                  "c = normalize(dim=0)(x)\nd = clamp(max=1.0)(x)",
                                  [(3, 4, 5)]))
    analysis = archspec.analyze(_spec("y: std([1, 2]) -> rsqrt", [(3, 4, 5)]))
    assert analysis.totals["flops"] == 4 * 60 + 3 + 2 * 3 and analysis.totals["macs"] == 0
    fields = receptive_fields(graph)
    assert fields["a"].size is None and fields["b"].size is None
    assert fields["c"].size == 1 and fields["d"].size == 1


@pytest.mark.parametrize("shapes", [[(3, 4, 5), (3, 1, 1)], [(1, 4, 5), (3, 4, 1)]])
def test_add_broadcasts_as_torch_and_onnxruntime(shapes: list[tuple[int, ...]]) -> None:
    """`add` of inputs of equal rank that broadcast (a C x 1 x 1 bias) gives torch's `x + r`,
    in the compiled module and in onnxruntime; its FLOPs are one per output element."""
    ort = pytest.importorskip("onnxruntime")
    spec = _spec("output y\ny = add(x, r)", shapes)
    x, r = (torch.randn(2, *s) for s in shapes)
    torch.testing.assert_close(archspec.to_torch(spec)(x, r), x + r)
    session = ort.InferenceSession(to_onnx(spec).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy(), "r": r.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), x + r)
    flops = archspec.analyze(spec).totals["flops"]
    assert flops == math.prod(torch.broadcast_shapes(x.shape[1:], r.shape[1:]))


def test_a_residual_whose_paths_only_broadcast_is_refused() -> None:
    """A residual branch that ends in one channel would broadcast onto the shortcut's eight;
    torch would add them silently, archspec refuses it at the residual (E305)."""
    spec = archspec.loads("network t\ninput x: 8x4x4\nresidual { conv2d(1, 1) }\n")
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.expand(spec)
    diag = info.value.diagnostic
    assert diag.code == "E305" and "different shapes" in diag.message
    assert diag.span.line == 3 and "projection shortcut" in (diag.hint or "")
