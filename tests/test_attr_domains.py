"""Attribute domains: whatever `check` accepts, `compile` and `export` accept.

Every attribute is checked by its op's attrs model (or, where the input rank matters, by the
shape rule), so a random call is either a located error at expansion, or a network that builds
in PyTorch, runs, and lowers to an ONNX model that passes onnx.checker's full check.
"""

from __future__ import annotations

import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.backends.onnx import to_onnx

SMALL = st.integers(-2, 4)
POSITIVE = st.integers(-1, 4)


def _kw(**strategies: st.SearchStrategy) -> st.SearchStrategy[str]:
    """Keyword arguments ``a=1, b=(2, 0)`` for some of ``strategies`` (each value an int or a
    pair of ints)."""
    def render(values: dict[str, object]) -> str:
        return ", ".join(f"{k}={v}" for k, v in values.items())

    pairs = {k: st.one_of(s, st.tuples(s, s)) for k, s in strategies.items()}
    return st.fixed_dictionaries({}, optional=pairs).map(render)


def _call(op: str, positional: st.SearchStrategy, **kw: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(positional, _kw(**kw)).map(
        lambda t: f"{op}({', '.join(x for x in (t[0], t[1]) if x)})")


WINDOW = {"stride": POSITIVE, "padding": SMALL, "dilation": POSITIVE}
CALLS = st.one_of(
    _call("conv2d", st.tuples(POSITIVE, POSITIVE).map(lambda t: f"{t[0]}, {t[1]}"),
          groups=POSITIVE, **WINDOW),
    _call("conv_transpose2d", st.tuples(POSITIVE, POSITIVE).map(lambda t: f"{t[0]}, {t[1]}"),
          output_padding=SMALL, groups=POSITIVE, **WINDOW),
    _call("maxpool2d", POSITIVE.map(str), **WINDOW),
    _call("avgpool2d", POSITIVE.map(str), **WINDOW),
    _call("adaptive_avgpool2d", POSITIVE.map(str)),
    _call("upsample", POSITIVE.map(str)),
    _call("upsample", st.just(""), size=POSITIVE),
    _call("softmax", st.just(""), dim=st.integers(-5, 5)),
    _call("slice", st.integers(-5, 5).map(lambda d: f"dim={d}"), start=SMALL, end=SMALL,
          step=POSITIVE),
    _call("flatten -> linear", POSITIVE.map(str)),
)


def _outcome(call: str) -> str:
    """'error' for a located rejection; otherwise builds, runs and exports ``call``. The one
    refusal allowed after `check` is E602, a located "ONNX cannot express this" (adaptive
    pooling with uneven windows)."""
    spec = archspec.loads(f"network t\ninput x: 4x6x6\nl: {call}\n")
    try:
        archspec.expand(spec)
    except archspec.ArchspecError as exc:
        assert exc.diagnostic.span.line == 3, str(exc)
        return "error"
    model = archspec.to_torch(spec).eval()
    with torch.no_grad():
        model(torch.randn(2, 4, 6, 6))
    try:
        exported = to_onnx(spec, weights=model.state_dict())
    except archspec.ArchspecError as exc:
        assert exc.diagnostic.code == "E602" and exc.diagnostic.span.line == 3, str(exc)
        return "not expressible in ONNX"
    onnx.checker.check_model(exported, full_check=True)
    return "ok"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CALLS)
def test_what_check_accepts_compiles_and_exports(call: str) -> None:
    _outcome(call)


@pytest.mark.parametrize("call, message", [
    ("conv2d(4, 0)", "`kernel` (=0) must be positive"),
    ("conv2d(4, 3, stride=0)", "`stride` (=0) must be positive"),
    ("conv2d(4, 3, padding=-1)", "`padding` (=-1) must be non-negative"),
    ("conv2d(4, 3, dilation=(1, 0))", "`dilation` (=(1, 0)) must be positive"),
    ("conv2d(2**30, 3)", "must be at most 16,777,216"),
    ("conv_transpose2d(4, 3, output_padding=-1)",
     "`output_padding` (=-1) must be non-negative"),
    ("maxpool2d(2, 0)", "`stride` (=0) must be positive"),
    ("avgpool2d(0)", "`kernel` (=0) must be positive"),
    ("avgpool2d(2, dilation=2)", "average pooling has none"),
    ("adaptive_avgpool2d(-1)", "`output` (=-1) must be positive"),
    ("softmax(dim=100)", "dim 100 is out of range"),
    ("flatten -> linear(2**30)", "must be positive and at most 16,777,216"),
    ("batchnorm2d(eps=0)", "`eps` (=0.0) must be a positive number"),
    ("batchnorm2d(momentum=2)", "`momentum` (=2.0) must be between 0 and 1"),
    ("groupnorm(2, eps=-1)", "`eps` (=-1.0) must be a positive number"),
    ("lrn(0)", "`size` (=0) must be positive"),
])
def test_out_of_domain_attributes_are_located_errors(call: str, message: str) -> None:
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.expand(archspec.loads(f"network t\ninput x: 4x6x6\nl: {call}\n"))
    assert info.value.diagnostic.span.line == 3
    assert message in info.value.diagnostic.message
