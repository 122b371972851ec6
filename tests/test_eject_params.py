"""Ejected code takes the network parameters that only change layer arguments as constructor
arguments with the spec's defaults; checked against torchvision's constructors."""

from __future__ import annotations

import inspect

import torch
import torchvision
from conftest import ROOT
from test_eject import _load_source

import archspec
from archspec.backends.eject import MAX_PROBED_PARAMS, eject


def _network(spec: archspec.lang.ir.Spec) -> type:
    """The ejected network class (what the generated ``build()`` returns)."""
    return inspect.signature(_load_source(eject(spec)).build).return_annotation


def test_resnet18_takes_num_classes_like_torchvision() -> None:
    """Resnet18(num_classes=10) loads torchvision's resnet18(num_classes=10) strictly and
    gives its outputs."""
    cls = _network(archspec.load(ROOT / "specs" / "resnet18.arch"))
    params = inspect.signature(cls).parameters
    assert list(params) == ["num_classes"] and params["num_classes"].default == 1000
    torch.manual_seed(0)
    theirs = torchvision.models.resnet18(num_classes=10).eval()
    ours = cls(num_classes=10).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_googlenet_takes_dropout_but_not_structure() -> None:
    """`dropout` and `num_classes` only change layer arguments; `aux_logits` adds layers, so
    it keeps the spec's value."""
    cls = _network(archspec.load(ROOT / "specs" / "googlenet.arch"))
    params = inspect.signature(cls).parameters
    assert {"num_classes", "dropout"} <= set(params) and "aux_logits" not in params
    assert params["dropout"].default == 0.2
    ours = cls(num_classes=5, dropout=0.5)
    theirs = torchvision.models.googlenet(num_classes=5, dropout=0.5, aux_logits=False,
                                          init_weights=False)
    assert ours.dropout.p == theirs.dropout.p == 0.5
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}


def test_inferred_channels_follow_a_channels_parameter() -> None:
    """cnn3's `channels` sets the first conv's in_channels; `size` changes no layer argument,
    so it is not a constructor argument. Cnn3(channels=1, num_classes=7) equals the spec
    compiled with those values."""
    spec = archspec.load(ROOT / "specs" / "examples" / "cnn3.arch")
    cls = _network(spec)
    assert list(inspect.signature(cls).parameters) == ["channels", "num_classes"]
    compiled = archspec.to_torch(archspec.load(ROOT / "specs" / "examples" / "cnn3.arch",
                                               channels=1, num_classes=7), device="meta")
    assert {k: v.shape for k, v in cls(channels=1, num_classes=7).state_dict().items()} == {
        k: v.shape for k, v in compiled.state_dict().items()}


def test_derived_widths_keep_their_value() -> None:
    spec = archspec.loads("network w(width: int = 8)\ninput x: 3x8x8\n"
                          "a: conv2d(width * 2, 3)\nb: conv2d(width, 1)\n")
    cls = _network(spec)
    assert list(inspect.signature(cls).parameters) == []
    assert cls().a.out_channels == 16 and cls().b.out_channels == 8


def test_probing_is_bounded() -> None:
    """Only the first MAX_PROBED_PARAMS number parameters are probed (each probe builds the
    network again); the rest keep their values in the code."""
    n = MAX_PROBED_PARAMS + 1
    head = ", ".join(f"w{i}: int = {i + 1}" for i in range(n))
    body = "\n".join(f"l{i}: linear(w{i})" for i in range(n))
    cls = _network(archspec.loads(f"network many({head})\ninput x: 4\n{body}\n"))
    assert list(inspect.signature(cls).parameters) == [f"w{i}" for i in range(n - 1)]
    assert cls(w0=5).l0.out_features == 5 and cls(w0=5).l1.in_features == 5
    assert getattr(cls(), f"l{n - 1}").out_features == n


def test_a_parameter_used_inside_a_block_is_passed_on() -> None:
    """Inception-v3's `num_classes` sizes the auxiliary head's block too: the network class
    passes it to that block's class, and both heads match torchvision's at 10 classes."""
    cls = _network(archspec.load(ROOT / "specs" / "inception_v3.arch"))
    assert inspect.signature(cls).parameters["num_classes"].default == 1000
    ours = cls(num_classes=10)
    theirs = torchvision.models.inception_v3(num_classes=10, aux_logits=True,
                                             init_weights=False)
    for head in ("fc", "AuxLogits.fc"):
        assert ours.get_submodule(head).weight.shape == theirs.get_submodule(head).weight.shape
    assert ours.get_submodule("AuxLogits.fc").out_features == 10


def test_a_parameter_two_classes_deep_keeps_its_value() -> None:
    """A class built by another block's class cannot receive the network's argument: the
    value stays in the code, and the network takes no such parameter."""
    spec = archspec.loads("network n(num_classes: int = 3)\ninput x: 8\n"
                          "block head() {\n    fc: linear(num_classes)\n    act: relu\n}\n"
                          "block wrap() {\n    h: head\n    out: linear(4)\n}\nw: wrap\n")
    cls = _network(spec)
    assert list(inspect.signature(cls).parameters) == []
    assert cls().w.h.fc.out_features == 3
