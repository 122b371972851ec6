"""Layer-by-layer comparison of a compiled spec with the reference model it reproduces.

Logits of a randomly initialised network barely depend on its input, so equal logits prove
little. These helpers compare what each module that owns parameters computes, module by module
at the same path (forward hooks, outputs cloned before any in-place op can change them), after
randomising what initialisation leaves constant, and the input-dependent part of the output,
``y(x1) - y(x2)``. A negative control perturbs one weight of the copy and checks that the
comparison notices.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def randomise(model: nn.Module, gen: torch.Generator) -> None:
    """Move everything initialisation leaves constant away from its constant: BatchNorm
    running statistics, and every parameter whose elements are all equal (biases, norm
    weights, zero-initialised scales, class tokens), so that no branch hides behind a zero."""
    def fill(t: torch.Tensor, low: float, high: float) -> None:
        t.copy_(torch.rand(t.shape, generator=gen) * (high - low) + low)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                fill(m.running_mean, -0.5, 0.5)
                fill(m.running_var, 0.5, 2.0)
        for name, p in model.named_parameters():
            if p.numel() and bool((p == p.flatten()[0]).all()):
                positive = name.endswith("weight") or "scale" in name or "gamma" in name
                fill(p, 0.5, 1.5) if positive else fill(p, -0.5, 0.5)


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors of a module's output (a tensor, a tuple or list of them, or a dict)."""
    if isinstance(value, torch.Tensor):
        return [value.detach().clone()]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def owners(model: nn.Module) -> dict[str, nn.Module]:
    """Every module that owns parameters itself (not through a child), by dotted path."""
    return {name: m for name, m in model.named_modules()
            if name and any(True for _ in m.parameters(recurse=False))}


@dataclass
class Capture:
    """The outputs each hooked module produced, in call order, by path."""

    outputs: dict[str, list[list[torch.Tensor]]] = field(default_factory=dict)


def capture(model: nn.Module, paths: list[str], *inputs: torch.Tensor) -> tuple[Any, Capture]:
    """Run ``model(*inputs)`` with a forward hook on each module in ``paths`` that ``model``
    has; return the output and what each hooked module produced."""
    seen = Capture()
    handles = []
    for path in paths:
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue
        seen.outputs[path] = []

        def hook(m: nn.Module, args: Any, out: Any, path: str = path) -> None:
            seen.outputs[path].append(_tensors(out))

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return out, seen


def _folded(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """``got`` (B, G, ...) as (B * G, ...) where ``want`` has that shape: a reference that
    folds its windows or groups into the batch (timm's window_partition gives (B * windows, N,
    C)) computes per window what a spec keeps per sample as (windows, N, C), sample-major as
    the fold; any other shape is left as it is."""
    if (got.dim() == want.dim() + 1 and got.shape[0] * got.shape[1] == want.shape[0]
            and got.shape[2:] == want.shape[1:]):
        return got.flatten(0, 1)
    return got


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float) -> bool:
    got = _folded(got, want)
    if got.shape != want.shape:
        return False
    scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
    return bool(torch.allclose(got.float(), want.float(), rtol=rtol, atol=rtol * scale))


@dataclass
class Comparison:
    """What a layer-by-layer comparison found: paths whose outputs differ, reference owners
    the copy never ran as a module (each with why), and how many modules were compared."""

    differing: list[str]
    not_modules: list[str]
    compared: int

    def assert_equal(self) -> None:
        assert not self.differing, f"modules whose outputs differ: {self.differing[:10]}"
        assert self.compared, "no module with parameters was compared"


def reference_capture(reference: nn.Module, *inputs: torch.Tensor) -> Capture:
    """What each module of ``reference`` that owns parameters computes on ``inputs``: taken
    once and handed to :func:`compare_layers` (``theirs``) by the tests that compare several
    copies against one reference."""
    return capture(reference, list(owners(reference)), *inputs)[1]


def compare_layers(ours: nn.Module, reference: nn.Module, *inputs: torch.Tensor,
                   rtol: float = 1e-5, theirs: Capture | None = None) -> Comparison:
    """Each module of ``reference`` that owns parameters against the module at the same path
    of ``ours``, on ``inputs``: every call's every output tensor equal to ``rtol`` relative to
    its largest magnitude.

    A reference module that ours does not run as one module but whose own parameters it holds
    at the same keys (a block holding a learnable tensor beside its children: ViT's
    ``encoder.pos_embedding``, ConvNeXt's ``layer_scale``) is listed in ``not_modules``: its
    children are compared one by one, and anything it computes itself shows in the modules
    after it, which run on ours' own intermediate values. Any other reference owner that ours
    never runs counts as differing. ``theirs``: the reference's :func:`reference_capture` on
    ``inputs``, where the caller has it."""
    paths = list(owners(reference))
    if theirs is None:
        theirs = reference_capture(reference, *inputs)
    _, mine = capture(ours, paths, *inputs)
    ours_params = dict(ours.named_parameters())
    differing, not_modules, compared = [], [], 0
    for path in paths:
        want = theirs.outputs.get(path, [])
        got = mine.outputs.get(path, [])
        if not want:
            continue  # the reference does not run it in this mode (an auxiliary head)
        if not got:
            own = [f"{path}.{n}" for n, _ in reference.get_submodule(path).named_parameters(
                recurse=False)]
            (not_modules if all(k in ours_params for k in own) else differing).append(path)
            continue
        compared += 1
        same = len(got) == len(want) and all(
            len(g) == len(w) and all(_close(a, b, rtol) for a, b in zip(g, w))
            for g, w in zip(got, want))
        if not same:
            differing.append(path)
    return Comparison(differing, not_modules, compared)


def _main(out: Any) -> torch.Tensor:
    """The first tensor of a model's output."""
    return _tensors(out)[0]


def input_dependent_part(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """``y(x1) - y(x2)`` of the model's first output, what the output owes to its input,
    computed in float64 on a copy of the model: in a randomly initialised network this part
    can be 1e-5 of the output, below what float32 resolves of the output itself."""
    exact = copy.deepcopy(model).double()
    with torch.no_grad():
        return _main(exact(x1.double())) - _main(exact(x2.double()))


def assert_input_dependent_parts_equal(ours: nn.Module, reference: nn.Module, x1: torch.Tensor,
                                       x2: torch.Tensor, rtol: float = 1e-6,
                                       want: torch.Tensor | None = None) -> None:
    """Equal ``y(x1) - y(x2)`` (relative to its largest magnitude), and not zero: the
    comparison would prove nothing on an output that ignores its input. ``want``: the
    reference's :func:`input_dependent_part`, where the caller has it."""
    if want is None:
        want = input_dependent_part(reference, x1, x2)
    got = input_dependent_part(ours, x1, x2)
    assert float(want.abs().max()) > 0, "the reference's output does not depend on its input"
    scale = float(want.abs().max())
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * scale)


def first_weight(model: nn.Module) -> tuple[str, torch.Tensor]:
    """The first parameter named ``weight`` with more than one element (the stem's, usually)."""
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.numel() > 1:
            return name, p
    raise AssertionError("no weight to perturb")


@contextlib.contextmanager
def perturbed(ours: nn.Module, relative: float = 1e-3) -> Iterator[str]:
    """A negative control: scale one element of the first weight by
    ``1 + relative``, yield its key, restore it."""
    name, p = first_weight(ours)
    with torch.no_grad():
        old = p.flatten()[0].clone()
        p.view(-1)[0] = old * (1 + relative) + relative
    try:
        yield name
    finally:
        with torch.no_grad():
            p.view(-1)[0] = old
