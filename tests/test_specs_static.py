"""Every spec's compiled module against its static analysis; published receptive fields.
The torchvision specs' claims are checked against live torchvision in test_zoo.py."""

from __future__ import annotations

import pytest
import torch
from conftest import ALL_SPECS, SPECS, spec_id
from torch.utils.flop_counter import FlopCounterMode

import archspec


def _first(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Size:
    """The shape of a module's output, or of the first of several (attention returns the
    output and its weights; the spec uses the output)."""
    return (output[0] if isinstance(output, tuple) else output).shape


@pytest.mark.parametrize("path", ALL_SPECS, ids=spec_id)
def test_compiled_module_matches_static_analysis(path) -> None:
    """Meta-device forward of the compiled spec: every layer's runtime output shape, the
    parameter and buffer counts, and FlopCounterMode's MACs equal the static analysis."""
    spec = archspec.load(path)
    graph = archspec.expand(spec)
    report = archspec.analyze(spec, batch=2)
    model = archspec.to_torch(spec, device="meta").eval()
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=name: seen.__setitem__(n, _first(o)))
             for name, m in model.named_modules() if name in graph.nodes]
    inputs = [torch.empty(2, *s, device="meta") for s in graph.inputs.values()]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    for h in hooks:
        h.remove()
    static = {r.name: tuple(r.output_shape) for r in report.layers}
    assert seen and all(tuple(shape) == static[name] for name, shape in seen.items())
    assert report.totals["params"] == sum(p.numel() for p in model.parameters())
    # buffers as the state_dict holds them: a `buffer` layer's constant is not persistent
    params = {name for name, _ in model.named_parameters()}
    assert report.totals["buffers"] == sum(
        v.numel() for k, v in model.state_dict().items() if k not in params)
    assert report.totals["macs"] == counter.get_total_flops() // 2


def test_receptive_field_and_stride() -> None:
    """Published receptive fields: VGG-16 conv5_3 sees 196 pixels, pool5 212, at strides 16 and
    32 (Araujo et al., "Computing Receptive Fields of CNNs", Distill 2019); two stacked 3x3
    convolutions see 5x5 and three see 7x7 (Simonyan & Zisserman, 2014)."""
    rows = {r.name: r for r in archspec.analyze(archspec.load(SPECS / "vgg16.arch")).layers}
    assert (rows["features.28"].receptive_field, rows["features.28"].stride) == (196, 16)
    assert (rows["features.30"].receptive_field, rows["features.30"].stride) == (212, 32)
    stack = archspec.loads("network s\ninput x: 3x32x32\nrepeat 3 conv2d(8, 3, padding=1)\n")
    fields = [r.receptive_field for r in archspec.analyze(stack).layers]
    assert fields == [3, 5, 7]
