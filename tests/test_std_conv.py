"""scaled_std_conv2d against timm's ScaledStdConv2d (the same state_dict, the same output) and
its ONNX lowering against onnxruntime, at the opsets where ReduceMean's axes move."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import archspec
from archspec.backends.onnx import to_onnx

timm_layers = pytest.importorskip("timm.layers")

# (attributes, timm's keyword arguments, input shape per sample)
CASES = [
    ("16, 3, stride=2, padding=1, gamma=1.7881293296813965, eps=0.00001",
     {"kernel_size": 3, "stride": 2, "gamma": 1.7881293296813965, "eps": 1e-5}, (3, 11, 11)),
    ("8, 3, padding=1, groups=2", {"kernel_size": 3, "groups": 2}, (4, 6, 7)),
    ("5, 1, bias=false", {"kernel_size": 1, "bias": False}, (6, 5, 5)),
]


def _spec(attrs: str, shape: tuple[int, ...]) -> archspec.Spec:
    return archspec.loads(f"network t\ninput x: [{', '.join(map(str, shape))}]\n"
                          f"conv: scaled_std_conv2d({attrs})\n")


def _timm_conv(kwargs: dict[str, object], shape: tuple[int, ...], out: int) -> torch.nn.Module:
    torch.manual_seed(0)
    conv = timm_layers.ScaledStdConv2d(shape[0], out, **kwargs)
    with torch.no_grad():
        conv.gain.uniform_(0.5, 1.5)  # away from its constant initialisation
    return conv.eval()


@pytest.mark.parametrize(("attrs", "kwargs", "shape"), CASES, ids=[c for c, _, _ in CASES])
def test_equals_timm_scaled_std_conv2d(attrs: str, kwargs: dict[str, object],
                                       shape: tuple[int, ...]) -> None:
    """timm's state_dict (weight, bias, gain) loads strictly at the layer's path, and the
    layer computes timm's output; a perturbed gain changes it."""
    spec = _spec(attrs, shape)
    ours = archspec.to_torch(spec).eval()
    theirs = _timm_conv(kwargs, shape, int(attrs.split(",")[0]))
    ours.load_state_dict({f"conv.{k}": v for k, v in theirs.state_dict().items()}, strict=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        want = theirs(x)
        torch.testing.assert_close(ours(x), want)
        ours.get_submodule("conv").gain[0] *= 1.001
        assert not torch.allclose(ours(x), want)
    totals = archspec.analyze(spec).totals
    assert totals["params"] == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize(("attrs", "kwargs", "shape"), CASES, ids=[c for c, _, _ in CASES])
@pytest.mark.parametrize("opset", [13, 17, 18])
def test_onnx_matches_torch(attrs: str, kwargs: dict[str, object], shape: tuple[int, ...],
                            opset: int) -> None:
    """The exported model is valid, and onnxruntime computes what the torch module does."""
    spec = _spec(attrs, shape)
    model = archspec.to_torch(spec).eval()
    with torch.no_grad():
        model.get_submodule("conv").gain.uniform_(0.5, 1.5)
    exported = to_onnx(spec, weights=model.state_dict(), opset=opset)
    onnx.checker.check_model(exported, full_check=True)
    session = ort.InferenceSession(exported.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    x = torch.randn(3, *shape)
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
