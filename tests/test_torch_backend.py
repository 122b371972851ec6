"""The PyTorch backend: fx code and the module features a training user relies on (meta
device, channels_last, autocast, torch.compile). Torchvision equality (weights, outputs,
initialisation) is test_zoo_full.py's."""

from __future__ import annotations

import torch
from conftest import SPECS

import archspec


def test_code_is_a_readable_forward() -> None:
    model = archspec.to_torch(archspec.load(SPECS / "resnet18.arch"))
    assert "def forward(self, x):" in model.code
    assert "self.conv1(x)" in model.code
    assert " += " in model.code or " + " in model.code


def test_meta_device_builds_a_huge_spec_without_memory() -> None:
    spec = archspec.loads("network big(width: int = 65000)\ninput x: [width]\n"
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


def test_the_state_layout_is_the_compiled_modules_state_dict() -> None:
    """What a weights file is checked against (keys in order, shapes, dtypes, buffers and
    learnable tensors included) is the state_dict of the compiled module, for networks with
    BatchNorm counters, class tokens and position tables, relative-position buffers and
    training-only heads."""
    from archspec.backends.torch import state_layout, to_torch

    for name in ("resnet18", "vit_b_16", "swin_v2_t", "maxvit_t", "inception_v3"):
        graph = archspec.expand(archspec.load(SPECS / f"{name}.arch"))
        compiled = to_torch(graph, device="meta").state_dict()
        layout = state_layout(graph)
        assert [(k, v.shape, v.dtype) for k, v in layout.items()] == \
            [(k, v.shape, v.dtype) for k, v in compiled.items()]
