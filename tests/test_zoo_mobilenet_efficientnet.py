"""MobileNet V2/V3 and EfficientNet V1/V2 specs: what tests/test_zoo.py cannot see.

test_zoo.py compares the modules that hold weights; here the parameter-free ones (activation
classes, dropout and per-block stochastic-depth probabilities, pooling) are compared with live
torchvision's for every spec of the families. The MobileNetV3 backbones' `dilated` and
`reduced_tail` options (which torchvision's segmentation models build on) are checked against
torchvision's, and EfficientNet's stochastic depth draws as torchvision's does under the same
seed in training.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchvision
from conftest import SPECS
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archspec

MODELS = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
          *(f"efficientnet_b{i}" for i in range(8)),
          "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l")

ATTRS = ("kernel_size", "stride", "padding", "dilation", "groups", "eps", "momentum", "p",
         "mode", "output_size")
WEIGHTED = {"Conv2d", "BatchNorm2d", "Linear"}


def _leaves(model: nn.Module) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every leaf module's class name and hyperparameters, by path."""
    return {name: (type(m).__name__, {a: getattr(m, a) for a in ATTRS if hasattr(m, a)})
            for name, m in model.named_modules() if not list(m.children())}


def _parameter_free(leaves: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return {k: v for k, v in leaves.items() if v[0] not in WEIGHTED}


def _used(model: nn.Module) -> dict[str, tuple[str, dict[str, Any]]]:
    """torchvision's leaves less the stochastic depth of blocks without a residual connection,
    which forward() never calls."""
    unused = {f"{name}.stochastic_depth" for name, m in model.named_modules()
              if getattr(m, "use_res_connect", True) is False}
    return {k: v for k, v in _leaves(model).items() if k not in unused}


def _meta(builder: str, **kwargs: Any) -> nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, builder)(weights=None, **kwargs)


@pytest.mark.parametrize("name", MODELS)
def test_parameter_free_modules_equal_torchvision(name: str) -> None:
    """Same class (activations), dropout and stochastic-depth probability and mode, pooling
    size at every torchvision path; the spec adds only the flatten (and MobileNetV2 a pooling
    module where torchvision calls a function)."""
    ours = _parameter_free(_leaves(archspec.to_torch(archspec.load(SPECS / f"{name}.arch"),
                                                     device="meta")))
    theirs = _parameter_free(_used(_meta(name)))
    assert {k: ours.get(k) for k in theirs} == theirs
    assert {ours[k][0] for k in ours.keys() - theirs.keys()} <= {"Flatten", "AdaptiveAvgPool2d"}


BACKBONES = [(arch, dilated, reduced_tail) for arch in ("mobilenet_v3_small", "mobilenet_v3_large")
             for dilated, reduced_tail in ((True, False), (False, True), (True, True))]


@pytest.mark.parametrize(("name", "dilated", "reduced_tail"), BACKBONES)
def test_mobilenet_v3_backbone_options_equal_torchvision(name: str, dilated: bool,
                                                         reduced_tail: bool) -> None:
    """`dilated` (dilation 2 instead of the last stride) and `reduced_tail` (half-width last
    stage): state_dict, every module's hyperparameters (dilations, paddings, strides), params
    and MACs equal torchvision's."""
    spec = archspec.load(SPECS / f"{name}.arch", dilated=dilated, reduced_tail=reduced_tail)
    theirs = _meta(name, dilated=dilated, reduced_tail=reduced_tail).eval()
    ours = archspec.to_torch(spec, device="meta")
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in theirs.state_dict().items()}
    leaves = _leaves(ours)
    assert {k: leaves.get(k) for k in _used(theirs)} == _used(theirs)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        theirs(torch.empty(1, 3, 224, 224, device="meta"))
    totals = archspec.analyze(spec).totals
    assert totals["params"] == sum(p.numel() for p in theirs.parameters())
    assert totals["macs"] == counter.get_total_flops() // 2


def test_dilated_mobilenet_v3_small_gives_torchvision_outputs() -> None:
    """The dilated backbone computes as torchvision's, with its weights and randomised
    BatchNorm statistics."""
    spec = archspec.load(SPECS / "mobilenet_v3_small.arch", dilated=True, size=64)
    theirs = torchvision.models.mobilenet_v3_small(weights=None, dilated=True)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    ours = archspec.to_torch(spec)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = 3 * torch.randn(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=1e-5, atol=1e-5)


def test_efficientnet_stochastic_depth_draws_as_torchvision_in_training() -> None:
    """In training mode, with the same seed before each forward, the spec drops the same
    residual branches of the same rows (and dropout the same features) as torchvision; another
    seed gives other outputs, so the draws count."""
    overrides = {"stochastic_depth_prob": 0.5, "dropout": 0.5}
    spec = archspec.load(SPECS / "efficientnet_b0.arch", size=32, num_classes=10, **overrides)
    theirs = torchvision.models.efficientnet_b0(weights=None, num_classes=10, **overrides)
    ours = archspec.to_torch(spec)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def forward(model: nn.Module, seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        with torch.no_grad():
            return model.train()(x)

    want = forward(theirs, 1)
    torch.testing.assert_close(forward(ours, 1), want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(forward(theirs, 2), want)
