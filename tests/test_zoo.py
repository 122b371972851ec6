"""The torchvision zoo (tests/zoo_models.py), checked against live torchvision.

STATIC, every row (torchvision's model built on the meta device; segmentation builders with
`weights_backbone=None`): params, buffers, MACs (FlopCounterMode / 2) and state_dict keys and
shapes equal torchvision's, every module with weights or dropout has torchvision's class and
hyperparameters, and the spec's header quotes the published weights' numbers.

The FULL checks, layer by layer, are in tests/test_zoo_full.py.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from typing import Any
from unittest import mock

import pytest
import torch
import torchvision
from conftest import ROOT
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.regnet import BlockParams
from zoo_build import graph_of, report_of, spec_of, torchvision_of
from zoo_models import SPECS, TORCHVISION, ZOO, ZooModel

import archspec

# ---------------------------------------------------------------------------------- STATIC

def test_every_torchvision_spec_is_in_the_zoo() -> None:
    """A spec named after a torchvision classification, segmentation or video builder is checked
    here, against that builder."""
    builders = {task: set(torchvision.models.list_models(module=module)) for task, module in
                (("classification", torchvision.models),
                 ("segmentation", torchvision.models.segmentation),
                 ("video", torchvision.models.video))}
    specs = {p.stem for p in SPECS.glob("*.arch")}
    assert {(m.name, m.task) for m in TORCHVISION} == \
        {(name, task) for task, names in builders.items() for name in specs & names}


@pytest.mark.parametrize("model", [m for m in ZOO if not m.torchvision], ids=lambda m: m.id)
def test_other_zoo_specs_are_checked_by_the_tests_they_name(model: ZooModel) -> None:
    """A spec of no torchvision builder names the test file that checks it, which loads it."""
    assert model.path.exists()
    assert f'"{model.path.name}"' in (ROOT / "tests" / model.tests).read_text()


HEADER = re.compile(r"Reproduces torchvision 0\.29\.1 (?P<builder>\w+)(\([^)]*\))?"
                    r"( at 3x((?P<frames>\d+)x)?(?P<size>\d+)x(?P=size))?: "
                    r"(?P<params>[\d,]+) params, "
                    r"(?P<gmacs>\d+\.\d+) GMACs")


def _header(model: ZooModel) -> str:
    lines = model.path.read_text().splitlines()
    comment = [line[1:].strip() for line in lines[:next(
        i for i, line in enumerate(lines) if not line.startswith("#"))]]
    return " ".join(comment)


@pytest.mark.parametrize("model", [m for m in TORCHVISION if m.published], ids=lambda m: m.id)
def test_header_quotes_torchvision_published_numbers(model: ZooModel) -> None:
    """The header names the builder and quotes its weights' metadata (`num_params`, `_ops`
    GMACs), which the spec's static analysis, with the row's parameters, reproduces."""
    match = HEADER.search(_header(model))
    assert match, f"{model.path.name}: no `Reproduces torchvision ...` header"
    meta = torchvision.models.get_model_weights(model.name).DEFAULT.meta
    assert match["builder"] == model.name
    assert match["size"] in (None, str(model.size))
    assert match["frames"] == (None if model.frames is None else str(model.frames))
    assert int(match["params"].replace(",", "")) == meta["num_params"]
    assert match["gmacs"] == str(meta["_ops"])
    assert report_of(model).totals["params"] == meta["num_params"]
    decimals = len(match["gmacs"].split(".")[1])
    assert f"{_eval_macs(model) / 1e9:.{decimals}f}" == match["gmacs"]


def _eval_macs(model: ZooModel) -> int:
    """MACs of the layers torchvision's eval forward runs, which `_ops` counts: a classifier's
    first output only (its auxiliary heads run in training mode only), every output of a
    segmentation model."""
    graph = graph_of(model)
    outputs = list(graph.outputs.values())
    needed: set[str] = set()
    todo = outputs if model.task == "segmentation" else outputs[:1]
    while todo:
        name = todo.pop()
        if name in graph.nodes and name not in needed:
            needed.add(name)
            todo.extend(graph.nodes[name].inputs)
    return sum(r.macs for r in report_of(model).layers if r.name in needed)


_block_params = BlockParams.from_init_params.__func__


def _block_params_on_cpu(cls: type[BlockParams], *args: Any, **kwargs: Any) -> BlockParams:
    with torch.device("cpu"):
        return _block_params(cls, *args, **kwargs)


@functools.cache
def _meta_torchvision(model: ZooModel) -> nn.Module:
    """torchvision's model on the meta device, except RegNet's stage widths, which its builder
    computes with tensors and reads back (`.tolist()`, impossible on meta): on the CPU."""
    with mock.patch.object(BlockParams, "from_init_params", classmethod(_block_params_on_cpu)), \
            torch.device("meta"):
        return torchvision_of(model)


@pytest.mark.parametrize("model", TORCHVISION, ids=lambda m: m.id)
def test_static_params_buffers_and_macs_equal_torchvision(model: ZooModel) -> None:
    """Counted on the live model: parameters, buffers, and MACs as FlopCounterMode / 2 of an
    eval forward (without the auxiliary heads torchvision runs in training mode only, which
    the specs mark `train`) of two samples at the spec's input size, against the analysis at
    batch 2 (work done once per forward, Swin v2's position-bias MLP, counts once)."""
    theirs = _meta_torchvision(model).eval()
    totals = report_of(model).totals
    assert totals["params"] == sum(p.numel() for p in theirs.parameters())
    assert totals["buffers"] == sum(b.numel() for b in theirs.buffers())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        theirs(torch.empty(2, *model.shape(), device="meta"))
    batch2 = archspec.analyze(spec_of(model), batch=2, graph=graph_of(model)).totals["macs"]
    assert batch2 == counter.get_total_flops() // 2


@pytest.mark.parametrize("model", TORCHVISION, ids=lambda m: m.id)
def test_static_state_dict_keys_and_shapes_equal_torchvision(model: ZooModel) -> None:
    """Same keys in the same order, same shapes; and every module that holds weights, and every
    dropout, is, at the same path, of the same class with the same hyperparameters (stride,
    padding, dilation, groups, BatchNorm eps and momentum, ...: its `extra_repr`; a dropout's
    probability)."""
    ours = archspec.to_torch(spec_of(model), device="meta")
    theirs = _meta_torchvision(model)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in theirs.state_dict().items()]
    described = {name: m for name, m in theirs.named_modules()
                 if _described(m) and not _plain(ours.get_submodule(name))}
    pairs = {n: _hyperparameters(m, ours.get_submodule(n)) for n, m in described.items()}
    assert {n: theirs for n, (theirs, _) in pairs.items()} == \
        {n: mine for n, (_, mine) in pairs.items()}


def _described(module: nn.Module) -> bool:
    """Whether the class check covers a torchvision module: a dropout, or a module holding
    weights itself (composite ones too: Swin's window attention)."""
    return isinstance(module, nn.Dropout) or \
        next(module.parameters(recurse=False), None) is not None


def _plain(module: nn.Module) -> bool:
    """A plain container of archspec's (a scope), which holds learnable tensors where
    torchvision has a class of its own (ViT's class token, ConvNeXt's layer scale): the key and
    shape check covers those."""
    return type(module) is nn.Module or isinstance(module, torch.fx.GraphModule)


def _class(module: nn.Module) -> object:
    """A torch.nn class itself; a class defined elsewhere (torchvision's ConvNeXt LayerNorm2d,
    archspec's re-implementation of it, which the FULL checks run) by its name and its
    torch.nn base class; a subclass that computes and describes itself as its base does, only
    fixing the constructor's arguments (torchvision's video Conv3DSimple), as that base."""
    cls = type(module)
    if cls.__module__.startswith("torch."):
        return cls
    base = next(c for c in cls.__mro__ if c.__module__.startswith("torch."))
    if cls.forward is base.forward and cls.extra_repr is base.extra_repr:
        return base
    return cls.__name__, base


def _hyperparameters(theirs: nn.Module, ours: nn.Module) -> tuple[object, object]:
    """The class and its `extra_repr` of both, or a dropout's probability alone (torchvision
    drops some in place, which computes the same). A class with no `extra_repr` (Swin's and
    MaxViT's attention) is described by the public settings torchvision's keeps (window and
    shift sizes, heads, ...), read from both."""
    if isinstance(theirs, nn.Dropout):
        return (type(theirs), f"p={theirs.p}"), (type(ours), f"p={getattr(ours, 'p', None)}")
    if theirs.extra_repr():
        return (_class(theirs), theirs.extra_repr()), (_class(ours), ours.extra_repr())
    names = [k for k, v in vars(theirs).items() if not k.startswith("_") and k != "training"
             and isinstance(v, int | float | str | list)]
    return ((_class(theirs), {k: getattr(theirs, k) for k in names}),
            (_class(ours), {k: getattr(ours, k, None) for k in names}))


# ------------------------------------------------------------------------------------ docs

def test_docs_zoo_md_is_generated_from_the_table() -> None:
    loader = importlib.util.spec_from_file_location("bench_zoo", ROOT / "bench" / "zoo.py")
    assert loader is not None and loader.loader is not None
    bench = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(bench)
    assert (ROOT / "docs" / "zoo.md").read_text() == bench.markdown(
        lambda model: report_of(model).totals)
