"""The torchvision zoo (tests/zoo_models.py), checked against live torchvision and onnxruntime.

STATIC, every row (torchvision's model built on the meta device; segmentation builders with
`weights_backbone=None`): params, buffers, MACs (FlopCounterMode / 2) and state_dict keys and
shapes equal torchvision's, every module with weights or dropout has torchvision's class and
hyperparameters, and the spec's header quotes the published weights' numbers.

FULL, the smallest member of each family (at a small input where the architecture allows):
torchvision's state_dict loads strictly and every module with parameters gives the output of
torchvision's module at the same path (tests/layerwise.py), as does the input-dependent part of
the output, y(x1) - y(x2), with a perturbed weight as negative control; every output
(with randomised BatchNorm statistics, affine parameters and biases, and a scaled input, so that
biases and saturating activations count); the same seed gives the same weights (a strict xfail
for segmentation models: SEEDED_INIT_DIFFERS); the ejected source and the ONNX export (in
onnxruntime) give the same outputs.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import re
import types
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision
from conftest import ROOT
from layerwise import (
    Capture,
    assert_input_dependent_parts_equal,
    compare_layers,
    input_dependent_part,
    perturbed,
    randomise,
    reference_capture,
)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.regnet import BlockParams
from zoo_models import FULL, SEEDED_INIT_DIFFERS, SPECS, TORCHVISION, ZOO, ZooModel

import archspec
from archspec.backends.eject import eject
from archspec.backends.onnx import to_onnx
from archspec.lang.network import Graph
from archspec.lang.syntax.loader import with_input_shapes
from archspec.views.report import Report


def _spec(model: ZooModel, full: bool = False) -> archspec.Spec:
    """The row's spec, at its own input or (`full`) at the FULL comparison's."""
    spec = archspec.load(model.path, **dict(model.params))
    return with_input_shapes(spec, {"x": model.shape(full=True)}) if full else spec


def _torchvision(model: ZooModel) -> nn.Module:
    if model.task == "segmentation":
        return getattr(torchvision.models.segmentation, model.name)(
            weights=None, weights_backbone=None, **dict(model.kwargs))
    if model.task == "video":
        return getattr(torchvision.models.video, model.name)(weights=None, **dict(model.kwargs))
    return getattr(torchvision.models, model.name)(weights=None, **dict(model.kwargs))


@functools.cache
def _graph(model: ZooModel) -> Graph:
    return archspec.expand(_spec(model))


@functools.cache
def _report(model: ZooModel) -> Report:
    """The spec's static analysis at batch 1 (shared by the static checks and the docs)."""
    return archspec.analyze(_spec(model), graph=_graph(model))


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
    assert _report(model).totals["params"] == meta["num_params"]
    decimals = len(match["gmacs"].split(".")[1])
    assert f"{_eval_macs(model) / 1e9:.{decimals}f}" == match["gmacs"]


def _eval_macs(model: ZooModel) -> int:
    """MACs of the layers torchvision's eval forward runs, which `_ops` counts: a classifier's
    first output only (its auxiliary heads run in training mode only), every output of a
    segmentation model."""
    graph = _graph(model)
    outputs = list(graph.outputs.values())
    needed: set[str] = set()
    todo = outputs if model.task == "segmentation" else outputs[:1]
    while todo:
        name = todo.pop()
        if name in graph.nodes and name not in needed:
            needed.add(name)
            todo.extend(graph.nodes[name].inputs)
    return sum(r.macs for r in _report(model).layers if r.name in needed)


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
        return _torchvision(model)


@pytest.mark.parametrize("model", TORCHVISION, ids=lambda m: m.id)
def test_static_params_buffers_and_macs_equal_torchvision(model: ZooModel) -> None:
    """Counted on the live model: parameters, buffers, and MACs as FlopCounterMode / 2 of an
    eval forward (without the auxiliary heads torchvision runs in training mode only, which
    the specs mark `train`) of two samples at the spec's input size, against the analysis at
    batch 2 (work done once per forward, Swin v2's position-bias MLP, counts once)."""
    theirs = _meta_torchvision(model).eval()
    totals = _report(model).totals
    assert totals["params"] == sum(p.numel() for p in theirs.parameters())
    assert totals["buffers"] == sum(b.numel() for b in theirs.buffers())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        theirs(torch.empty(2, *model.shape(), device="meta"))
    batch2 = archspec.analyze(_spec(model), batch=2, graph=_graph(model)).totals["macs"]
    assert batch2 == counter.get_total_flops() // 2


@pytest.mark.parametrize("model", TORCHVISION, ids=lambda m: m.id)
def test_static_state_dict_keys_and_shapes_equal_torchvision(model: ZooModel) -> None:
    """Same keys in the same order, same shapes; and every module that holds weights, and every
    dropout, is, at the same path, of the same class with the same hyperparameters (stride,
    padding, dilation, groups, BatchNorm eps and momentum, ...: its `extra_repr`; a dropout's
    probability)."""
    ours = archspec.to_torch(_spec(model), device="meta")
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


# ------------------------------------------------------------------------------------ FULL

@dataclass
class Built:
    """One FULL model: torchvision's and the compiled spec's, both built after the same seed;
    then torchvision's weights randomised (`weights`) and its outputs on `x` taken, with what
    its modules compute on `x` (`theirs`) and its output's input-dependent part y(x) - y(x2)
    (`dependent`), which the layer comparison and its negative control share."""

    model: ZooModel
    spec: archspec.Spec
    ours: nn.Module
    seeded_differences: list[str]
    weights: dict[str, torch.Tensor]
    x: torch.Tensor
    want: list[torch.Tensor]
    reference: nn.Module
    x2: torch.Tensor
    theirs: Capture
    dependent: torch.Tensor


def _outputs(out: torch.Tensor | dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return list(out.values()) if isinstance(out, dict) else [out]


def _torchvision_outputs(reference: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The eval outputs (a segmentation model's dict in its order); Inception-v3's auxiliary
    head runs in training mode only (tests/test_train_outputs.py compares it there)."""
    return _outputs(reference(x))


@pytest.fixture(scope="module", params=FULL, ids=lambda m: m.id)
def built(request: pytest.FixtureRequest) -> Built:
    model: ZooModel = request.param
    spec = _spec(model, full=True)
    torch.manual_seed(0)
    reference = _torchvision(model)
    torch.manual_seed(0)
    ours = archspec.to_torch(spec)
    theirs_init, ours_init = reference.state_dict(), ours.state_dict()
    differences = sorted(k for k in theirs_init.keys() | ours_init.keys()
                         if k not in theirs_init or k not in ours_init
                         or not torch.equal(theirs_init[k], ours_init[k]))
    gen = torch.Generator().manual_seed(1)
    randomise(reference, gen)
    x = 3 * torch.randn(2, *model.shape(full=True), generator=gen)
    with torch.no_grad():
        want = _torchvision_outputs(reference.eval(), x)
    x2 = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    return Built(model, spec, ours.eval(), differences, reference.state_dict(), x, want,
                 reference, x2, reference_capture(reference, x),
                 input_dependent_part(reference, x, x2))


def _assert_same(got: list[torch.Tensor] | list[np.ndarray], want: list[torch.Tensor],
                 rtol: float) -> None:
    """Equal to `rtol` relative to each output's largest magnitude."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        g = torch.as_tensor(g)
        assert g.shape == w.shape
        scale = max(1.0, float(w.abs().max()))
        torch.testing.assert_close(g, w, rtol=rtol, atol=rtol * scale)


def test_full_same_seed_same_weights_as_torchvision(built: Built,
                                                   request: pytest.FixtureRequest) -> None:
    """The spec's `init` rules reproduce torchvision's initialisation: built after the same
    seed, every state_dict tensor is equal."""
    if not built.model.seeded_init_matches:
        request.applymarker(pytest.mark.xfail(strict=True, reason=SEEDED_INIT_DIFFERS))
    assert built.seeded_differences == []


def test_full_torchvision_weights_load_strictly_and_give_its_outputs(built: Built) -> None:
    built.ours.load_state_dict(built.weights, strict=True)
    with torch.no_grad():
        got = _outputs(built.ours(built.x))
    _assert_same(got, built.want, rtol=1e-5)


def test_full_every_module_with_parameters_gives_torchvision_outputs(built: Built) -> None:
    """Module by module at the same path (forward hooks), the randomised reference and the
    compiled spec with its weights compute the same; so does the part of the output that
    depends on the input, y(x1) - y(x2)."""
    built.ours.load_state_dict(built.weights, strict=True)
    compare_layers(built.ours, built.reference, built.x, theirs=built.theirs).assert_equal()
    assert_input_dependent_parts_equal(built.ours, built.reference, built.x, built.x2,
                                       want=built.dependent)


def test_full_negative_control_a_perturbed_weight_is_caught(built: Built) -> None:
    """One element of the first weight changed by 0.1%: the layer comparison names the
    module that holds it, and the input-dependent part of the output differs."""
    built.ours.load_state_dict(built.weights, strict=True)
    with perturbed(built.ours) as key:
        found = compare_layers(built.ours, built.reference, built.x, theirs=built.theirs)
        assert key.rsplit(".", 1)[0] in found.differing
        with pytest.raises(AssertionError):
            assert_input_dependent_parts_equal(built.ours, built.reference, built.x, built.x2,
                                               want=built.dependent)


def test_full_ejected_source_loads_the_weights_and_gives_the_outputs(built: Built) -> None:
    module = types.ModuleType("ejected")
    exec(compile(eject(built.spec), "ejected.py", "exec"), module.__dict__)  # noqa: S102
    with torch.device("meta"):
        ejected = module.build()
    ejected.load_state_dict(built.weights, strict=True, assign=True)
    with torch.no_grad():
        got = _outputs(ejected.eval()(built.x))
    _assert_same(got, built.want, rtol=1e-5)


def test_full_onnx_export_in_onnxruntime_gives_the_outputs(built: Built) -> None:
    exported = to_onnx(built.spec, weights=built.weights)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(exported.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": built.x.numpy()})
    _assert_same(got, built.want, rtol=1e-4)


# ------------------------------------------------------------------------------------- S3D

S3D = next(m for m in TORCHVISION if m.name == "s3d")


@functools.cache
def _s3d() -> tuple[nn.Module, nn.Module, list[str]]:
    """torchvision's S3D with randomised weights and the compiled spec with them loaded
    strictly, both in eval mode, each built after the same seed; and the state_dict keys whose
    seeded initialisation differs."""
    torch.manual_seed(0)
    reference = _torchvision(S3D)
    torch.manual_seed(0)
    ours = archspec.to_torch(_spec(S3D))
    theirs_init, ours_init = reference.state_dict(), ours.state_dict()
    differences = sorted(k for k in theirs_init if not torch.equal(theirs_init[k], ours_init[k]))
    randomise(reference, torch.Generator().manual_seed(1))
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference.eval(), ours.eval(), differences


def test_s3d_every_module_with_parameters_gives_torchvision_outputs_on_a_small_clip() -> None:
    """S3D's head averages the last 2x7x7 map with a 2x7x7 pool, so neither model takes a clip
    under 13 frames of 209x209, where the FULL checks would take minutes on two cores. The
    spec's pool is torchvision's (class and settings) and meets the 2x7x7 map at the spec's
    input, where it is the global average: both models get that instead on 16 frames of 64x64
    (every stage's map larger than 1 in every dim), where the same seed gives the same weights,
    and every module with parameters computes torchvision's (module by module, forward hooks,
    on randomised BatchNorm statistics and biases and a scaled input; the classifier's conv
    among them), as does the output; a perturbed weight is caught at its module. The float64
    input-dependent part of the output, which r3d_18's FULL checks compare, is left out here:
    it would take S3D half a minute."""
    reference, ours, differences = _s3d()
    assert differences == []
    assert repr(ours.avgpool) == repr(reference.avgpool)
    rows = {row.name: row for row in _report(S3D).layers}
    assert rows[_graph(S3D).nodes["avgpool"].inputs[0]].output_shape[2:] == [2, 7, 7]
    small = [copy.deepcopy(m) for m in (reference, ours)]
    for m in small:
        m.avgpool = nn.AdaptiveAvgPool3d(1)
    gen = torch.Generator().manual_seed(1)
    x = 3 * torch.randn(2, 3, 16, 64, 64, generator=gen)
    compare_layers(small[1], small[0], x).assert_equal()
    with torch.no_grad():
        _assert_same(_outputs(small[1](x)), _outputs(small[0](x)), rtol=1e-5)
    with perturbed(small[1]) as key:
        assert key.rsplit(".", 1)[0] in compare_layers(small[1], small[0], x).differing


def test_s3d_onnx_export_at_its_smallest_clip_gives_torchvision_outputs() -> None:
    """The spec at its smallest input (13 frames of 209x209, the head's pool whole), exported
    with torchvision's randomised weights, gives torchvision's output in onnxruntime."""
    reference, _, _ = _s3d()
    shape = (3, 13, 209, 209)
    x = 3 * torch.randn(1, *shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = _outputs(reference(x))
    exported = to_onnx(with_input_shapes(_spec(S3D), {"x": shape}),
                       weights=reference.state_dict())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(exported.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    _assert_same(session.run(None, {"x": x.numpy()}), want, rtol=1e-4)


# ------------------------------------------------------------------------------------ docs

def test_docs_zoo_md_is_generated_from_the_table() -> None:
    loader = importlib.util.spec_from_file_location("bench_zoo", ROOT / "bench" / "zoo.py")
    assert loader is not None and loader.loader is not None
    bench = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(bench)
    assert (ROOT / "docs" / "zoo.md").read_text() == bench.markdown(
        lambda model: _report(model).totals)
