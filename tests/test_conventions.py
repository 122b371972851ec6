"""Counting conventions of other tools, against their published ResNet-50 numbers
(references.md) and against torchinfo and fvcore run live on torchvision models."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import SPECS

import archspec
from archspec.analysis.conventions import CONVENTIONS
from archspec.ops import REGISTRY, Category


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_every_convention_decides_every_category(convention: str) -> None:
    """No category is missing or both counted and uncounted: a new category (or op family)
    fails here until each tool's way of counting it is written down."""
    table = CONVENTIONS[convention]
    assert set(table.rules) | table.uncounted == set(Category)
    assert not set(table.rules) & table.uncounted


def test_every_op_has_a_closed_category() -> None:
    assert all(isinstance(op.category, Category) for op in REGISTRY.values())


def _macs(name: str, convention: str) -> int:
    spec = archspec.load(SPECS / f"{name}.arch")
    return archspec.analyze(spec, convention=convention).totals["macs"]


@pytest.mark.parametrize(("convention", "published"), [
    ("torchvision", "4.089"), ("torchinfo", "4.0892"), ("fvcore", "4.1115"),
    ("ptflops", "4.1324"), ("thop", "4.1337"),
])
def test_resnet50_published_numbers_per_tool(convention: str, published: str) -> None:
    decimals = len(published.split(".")[1])
    assert f"{_macs('resnet50', convention) / 1e9:.{decimals}f}" == published


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet121", "vgg16_bn"])
def test_torchinfo_mult_adds_live(name: str) -> None:
    torchinfo = pytest.importorskip("torchinfo")
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    model = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    stats = torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0)
    assert _macs(name, "torchinfo") == stats.total_mult_adds


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet121", "vgg16_bn"])
def test_fvcore_live(name: str) -> None:
    fvcore = pytest.importorskip("fvcore.nn")
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    model = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    analysis = fvcore.FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert _macs(name, "fvcore") == analysis.total()


def _models(name: str) -> list[torch.nn.Module]:
    """torchvision's model and archspec's compiled one. ptflops and thop count module calls
    (ptflops also functional calls), so where torchvision calls F.relu instead of a module
    (GoogLeNet, DenseNet) only the compiled module has the spec's exact structure."""
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    compiled = archspec.to_torch(archspec.load(SPECS / f"{name}.arch")).eval()
    if name in ("googlenet", "densenet121"):
        return [compiled]
    return [getattr(torchvision.models, name)(weights=None, **kwargs).eval(), compiled]


LIVE = ["resnet50", "alexnet", "vgg16_bn", "googlenet", "densenet121"]


@pytest.mark.parametrize("name", LIVE)
def test_ptflops_live(name: str) -> None:
    ptflops = pytest.importorskip("ptflops")
    for model in _models(name):
        macs, _ = ptflops.get_model_complexity_info(model, (3, 224, 224), as_strings=False,
                                                    print_per_layer_stat=False,
                                                    backend="pytorch")
        assert _macs(name, "ptflops") == macs


@pytest.mark.parametrize("name", LIVE)
def test_thop_live(name: str) -> None:
    thop = pytest.importorskip("thop")
    for model in _models(name):
        macs, _ = thop.profile(model, inputs=(torch.zeros(1, 3, 224, 224),), verbose=False)
        assert _macs(name, "thop") == int(macs)


@pytest.mark.parametrize(("name", "torchinfo_mb", "fvcore_acts"), [
    ("resnet18", "39.75", 2_484_712), ("resnet50", "177.83", 11_114_984),
    ("vgg16", "108.45", 13_556_712)])
def test_memory_figures_of_other_tools(name: str, torchinfo_mb: str, fvcore_acts: int) -> None:
    """references.md: torchinfo's forward/backward pass size and fvcore's activation count."""
    totals = archspec.analyze(archspec.load(SPECS / f"{name}.arch")).totals
    assert f"{totals['torchinfo_forward_backward_bytes'] / 1e6:.2f}" == torchinfo_mb
    assert totals["fvcore_activations"] == fvcore_acts


def test_memory_figures_live() -> None:
    torchinfo = pytest.importorskip("torchinfo")
    fvcore = pytest.importorskip("fvcore.nn")
    model = torchvision.models.googlenet(weights=None, aux_logits=False,
                                         init_weights=False).eval()
    totals = archspec.analyze(archspec.load(SPECS / "googlenet.arch")).totals
    stats = torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0)
    assert totals["torchinfo_forward_backward_bytes"] == stats.total_output_bytes
    acts = fvcore.ActivationCountAnalysis(model, torch.zeros(1, 3, 224, 224))
    acts.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert totals["fvcore_activations"] == acts.total()
