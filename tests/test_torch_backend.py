"""The PyTorch backend: torchvision equality (weights, logits, initialisation), fx code,
and the module features a training user relies on (meta device, channels_last, autocast)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import SPECS, TORCHVISION

import archspec


def _tv(name: str, **extra: object) -> torch.nn.Module:
    kwargs = {"aux_logits": False, **extra} if name == "googlenet" else dict(extra)
    return getattr(torchvision.models, name)(weights=None, **kwargs)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_same_seed_same_weights_as_torchvision(name: str) -> None:
    """The spec's `init` rules reproduce torchvision's initialisation exactly: built after
    the same seed, every tensor of the state_dict is equal."""
    torch.manual_seed(0)
    theirs = _tv(name, **({"init_weights": True} if name == "googlenet" else {})).state_dict()
    torch.manual_seed(0)
    ours = archspec.to_torch(archspec.load(SPECS / f"{name}.arch")).state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_state_dict_loads_strictly_and_logits_match(name: str) -> None:
    torch.manual_seed(1)
    reference = _tv(name).eval()
    model = archspec.to_torch(archspec.load(SPECS / f"{name}.arch")).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)


def test_code_is_a_readable_forward() -> None:
    model = archspec.to_torch(archspec.load(SPECS / "resnet18.arch"))
    assert "def forward(self, x):" in model.code
    assert "self.conv1(x)" in model.code
    assert " += " in model.code or " + " in model.code


def test_meta_device_builds_a_huge_spec_without_memory() -> None:
    spec = archspec.loads("network big(width: int = 65536)\ninput x: [width]\n"
                          "repeat 24 { linear(width) -> relu }\n")
    model = archspec.to_torch(spec, device="meta")
    assert sum(p.numel() for p in model.parameters()) > 100e9
    assert next(model.parameters()).device.type == "meta"


def test_channels_last_autocast_and_backward() -> None:
    model = archspec.to_torch(archspec.load(SPECS / "resnet18.arch", num_classes=5))
    model = model.to(memory_format=torch.channels_last).train()
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (2, 5) and out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert model.fc.weight.grad is not None


def test_torch_compile_matches_eager() -> None:
    spec = archspec.load(SPECS / "examples" / "cnn1.arch", size=32)
    model = archspec.to_torch(spec).eval()
    compiled = torch.compile(model, backend="eager")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
