"""Building a zoo row (tests/zoo_models.py): its spec, torchvision's model, and the spec's
graph and analysis (each built once per process), shared by tests/test_zoo.py (the static
checks) and tests/test_zoo_full.py (the layer-by-layer ones)."""

from __future__ import annotations

import functools

import torchvision
from torch import nn
from zoo_models import ZooModel

import archspec
from archspec.lang.network import Graph
from archspec.lang.syntax.loader import with_input_shapes
from archspec.views.report import Report


def spec_of(model: ZooModel, full: bool = False) -> archspec.Spec:
    """The row's spec, at its own input or (`full`) at the FULL comparison's."""
    spec = archspec.load(model.path, **dict(model.params))
    return with_input_shapes(spec, {"x": model.shape(full=True)}) if full else spec


def torchvision_of(model: ZooModel) -> nn.Module:
    """torchvision's model of the row, randomly initialised (no weights downloaded)."""
    if model.task == "segmentation":
        return getattr(torchvision.models.segmentation, model.name)(
            weights=None, weights_backbone=None, **dict(model.kwargs))
    if model.task == "video":
        return getattr(torchvision.models.video, model.name)(weights=None, **dict(model.kwargs))
    return getattr(torchvision.models, model.name)(weights=None, **dict(model.kwargs))


@functools.cache
def graph_of(model: ZooModel) -> Graph:
    return archspec.expand(spec_of(model))


@functools.cache
def report_of(model: ZooModel) -> Report:
    """The spec's static analysis at batch 1 (shared by the static checks and the docs)."""
    return archspec.analyze(spec_of(model), graph=graph_of(model))
