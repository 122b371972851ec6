"""timm models as exact specs (specs/timm/), checked against live timm 1.0.31.

For every row of MODELS: the spec's header quotes timm's numbers; params and buffers (what the
state_dict holds) equal timm's; MACs equal FlopCounterMode / 2 on timm's model at the spec's
input; timm's state_dict loads strictly into the compiled spec, with no key remapping; and,
after randomising what timm's initialisation leaves constant (BatchNorm statistics, biases,
norm weights), every module with parameters gives the output of timm's module at the same path
(tests/layerwise.py), as do the logits and their input-dependent part, y(x1) - y(x2). A
perturbed weight is the negative control, once per family.

timm runs a norm layer's activation inside the norm module (BatchNormAct2d: `bn` is a
BatchNorm2d subclass whose forward ends in `bn.act`), so that the state_dict matches a separate
BatchNorm and activation; a spec writes the activation as the layer after `bn`. For such a
module the layer comparison takes timm's output before the activation (the input of its `act`
child); the activation itself shows in every module after it.

To add a model: a spec `specs/timm/<timm name>.arch` with the header
`# <family>, timm 1.0.31 <name>: <params> params, <GMACs> GMACs at 3x224x224. Reproduces timm's
module names.`, a row in MODELS, and a row in tests/zoo_models.py (`reference="timm 1.0.31"`,
`tests="test_timm.py"`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import SPECS
from layerwise import (
    Comparison,
    assert_input_dependent_parts_equal,
    compare_layers,
    perturbed,
    randomise,
)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.lang.syntax.loader import with_input_shapes

# timm's attention calls F.scaled_dot_product_attention when fused attention is on (the
# default), and on the CPU FlopCounterMode counts nothing for it: its QK^T and AV products would
# be missing from timm's MACs. Off, timm computes attention with explicit matmuls, which it
# counts. timm reads the variable when it is imported, so it is set before the import, and
# set_fused_attn covers a session that imported timm earlier (a model reads the setting when
# it is built).
os.environ["TIMM_FUSED_ATTN"] = "0"
timm = pytest.importorskip("timm")
timm.layers.set_fused_attn(False)

TIMM_SPECS = SPECS / "timm"


@dataclass(frozen=True)
class TimmModel:
    """``specs/timm/{spec}`` reproduces ``timm.create_model(name, pretrained=False,
    **kwargs)``; ``full`` is the input side of the layer-by-layer comparison: 48 for a
    stride-32 network of padded convs (48 -> 24 -> 12 -> 6 -> 3 -> 2: 2x2 maps in the last
    stage, so that every tap of its 3x3 kernels reads data), else the smallest side the
    unpadded convs allow (Inception-v4: 75)."""

    name: str
    spec: str
    full: int
    family: str
    kwargs: tuple[tuple[str, object], ...] = ()

    @property
    def path(self) -> Path:
        return TIMM_SPECS / self.spec


MODELS: tuple[TimmModel, ...] = (
    TimmModel("ese_vovnet19b_dw", "ese_vovnet19b_dw.arch", 48, "VoVNet"),
    TimmModel("inception_v4", "inception_v4.arch", 75, "Inception"),
    TimmModel("xception41", "xception41.arch", 48, "Xception"),
    TimmModel("starnet_s1", "starnet_s1.arch", 48, "StarNet"),
    TimmModel("dpn68", "dpn68.arch", 48, "DPN"),
    TimmModel("mobilenetv4_conv_small", "mobilenetv4_conv_small.arch", 48, "MobileNetV4"),
    TimmModel("regnetz_b16", "regnetz_b16.arch", 48, "RegNetZ"),
    TimmModel("rexnet_100", "rexnet_100.arch", 48, "ReXNet"),
    TimmModel("skresnet18", "skresnet18.arch", 48, "SKNet"),
    TimmModel("hgnetv2_b0", "hgnetv2_b0.arch", 48, "HGNetV2"),
    TimmModel("hrnet_w18_small", "hrnet_w18_small.arch", 64, "HRNet"),
    TimmModel("mambaout_femto", "mambaout_femto.arch", 48, "MambaOut"),
    TimmModel("tresnet_m", "tresnet_m.arch", 48, "TResNet"),
    TimmModel("vit_small_patch16_224", "vit_small_patch16_224.arch", 224, "ViT"),
    TimmModel("swin_tiny_patch4_window7_224", "swin_tiny_patch4_window7_224.arch", 224, "Swin"),
    TimmModel("tiny_vit_5m_224", "tiny_vit_5m_224.arch", 64, "TinyViT"),
    TimmModel("davit_tiny", "davit_tiny.arch", 64, "DaViT"),
    TimmModel("coatnet_0_rw_224", "coatnet_0_rw_224.arch", 224, "CoAtNet"),
    TimmModel("cait_xxs24_224", "cait_xxs24_224.arch", 224, "CaiT"),
    TimmModel("resmlp_12_224", "resmlp_12_224.arch", 224, "ResMLP"),
    TimmModel("gmlp_s16_224", "gmlp_s16_224.arch", 224, "gMLP"),
    TimmModel("beit_base_patch16_224", "beit_base_patch16_224.arch", 224, "BEiT"),
    TimmModel("eva02_tiny_patch14_224", "eva02_tiny_patch14_224.arch", 224, "EVA-02"),
    TimmModel("nfnet_l0", "nfnet_l0.arch", 48, "NFNet"),
    TimmModel("fastvit_t8", "fastvit_t8.arch", 48, "FastViT"),
    TimmModel("pvt_v2_b0", "pvt_v2_b0.arch", 64, "PVTv2"),
    TimmModel("twins_svt_small", "twins_svt_small.arch", 128, "Twins"),
    TimmModel("focalnet_tiny_srf", "focalnet_tiny_srf.arch", 48, "FocalNet"),
    TimmModel("crossvit_tiny_240", "crossvit_tiny_240.arch", 240, "CrossViT"),
    TimmModel("efficientvit_m0", "efficientvit_m0.arch", 224, "EfficientViT"),
)

# The negative control runs once per family, on its first row.
CONTROLS = tuple({m.family: m for m in reversed(MODELS)}.values())

HEADER = re.compile(r"timm 1\.0\.31 (?P<name>\w+): (?P<params>[\d,]+) params, "
                    r"(?P<gmacs>\d+\.\d+) GMACs at 3x(?P<size>\d+)x(?P=size)\. "
                    r"Reproduces timm's module names\.")


def _header(model: TimmModel) -> re.Match[str]:
    lines = model.path.read_text().splitlines()
    comment = " ".join(line[1:].strip() for line in lines[:next(
        i for i, line in enumerate(lines) if not line.startswith("#"))])
    match = HEADER.search(comment)
    assert match, f"{model.spec}: no `timm 1.0.31 {model.name}: ...` header"
    return match


def _counts(module: nn.Module) -> tuple[int, int]:
    """Parameters and buffers, counting only what the state_dict holds (no non-persistent
    buffers)."""
    state = module.state_dict()
    params = {name for name, _ in module.named_parameters()}
    return (sum(v.numel() for k, v in state.items() if k in params),
            sum(v.numel() for k, v in state.items() if k not in params))


@dataclass
class Built:
    """One row: timm's model (randomised, eval) and the compiled spec at the full-comparison
    input side, with the two inputs the comparisons run on."""

    model: TimmModel
    spec: archspec.Spec
    reference: nn.Module
    ours: nn.Module
    x: torch.Tensor
    x2: torch.Tensor


def _timm(model: TimmModel) -> nn.Module:
    return timm.create_model(model.name, pretrained=False, **dict(model.kwargs))


@pytest.fixture(scope="module", params=MODELS, ids=lambda m: m.name)
def built(request: pytest.FixtureRequest) -> Built:
    model: TimmModel = request.param
    spec = archspec.load(model.path)
    torch.manual_seed(0)
    reference = _timm(model)
    gen = torch.Generator().manual_seed(1)
    randomise(reference, gen)
    x = torch.randn(2, 3, model.full, model.full, generator=gen)
    ours = archspec.to_torch(with_input_shapes(spec, {"x": (3, model.full, model.full)}))
    x2 = torch.randn(x.shape, generator=gen)
    return Built(model, spec, reference.eval(), ours.eval(), x, x2)


def _loaded(built: Built) -> nn.Module:
    built.ours.load_state_dict(built.reference.state_dict(), strict=True)
    return built.ours


# ---------------------------------------------------------------------------- static

def test_header_quotes_timm_numbers(built: Built) -> None:
    """The header names the model and quotes its params and MACs at the spec's input, which
    the spec's static analysis reproduces."""
    match = _header(built.model)
    totals = archspec.analyze(built.spec).totals
    assert match["name"] == built.model.name
    assert archspec.expand(built.spec).inputs["x"] == (3, int(match["size"]), int(match["size"]))
    assert int(match["params"].replace(",", "")) == totals["params"]
    assert match["gmacs"] == f"{totals['macs'] / 1e9:.3f}"


def test_params_and_buffers_equal_timm(built: Built) -> None:
    totals = archspec.analyze(built.spec).totals
    assert (totals["params"], totals["buffers"]) == _counts(built.reference)


def test_macs_equal_flop_counter_on_timm(built: Built) -> None:
    """FlopCounterMode / 2 on timm's model, one sample at the spec's input shape."""
    shape = archspec.expand(built.spec).inputs["x"]
    counter = FlopCounterMode(display=False)
    # With grad enabled: under no_grad, CaiT hands its blocks an expanded cls_token (a view of
    # a parameter, which requires grad and has no grad_fn), which FlopCounterMode's module
    # tracker refuses.
    with counter:
        built.reference(torch.zeros(1, *shape))
    # eval() again empties what that forward cached with grad on (timm's attention-bias caches
    # in TinyViT and EfficientViT), which a later deepcopy of the model would refuse
    built.reference.eval()
    assert archspec.analyze(built.spec).totals["macs"] == counter.get_total_flops() // 2


def test_timm_state_dict_loads_strictly(built: Built) -> None:
    """Same keys (no remapping) and shapes, in any order (a spec writes a residual's shortcut
    after its body, where timm may register it first): a strict load."""
    ours = built.ours.state_dict()
    theirs = built.reference.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    built.ours.load_state_dict(theirs, strict=True)


# ------------------------------------------------------------------------------ full

def _norm_act(reference: nn.Module) -> dict[str, nn.Module]:
    """timm's norm + activation modules (BatchNormAct2d and kin) that apply an activation,
    by path: a module with parameters and an `act` child that is not the identity."""
    return {name: m for name, m in reference.named_modules()
            if name and isinstance(getattr(m, "act", None), nn.Module)
            and not isinstance(m.act, nn.Identity)
            and any(True for _ in m.parameters(recurse=False))}


def _pre_activation(reference: nn.Module, paths: list[str],
                    x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """The input of each `{path}.act` (cloned before an in-place activation), call by call."""
    seen: dict[str, list[torch.Tensor]] = {p: [] for p in paths}
    handles = [reference.get_submodule(f"{p}.act").register_forward_pre_hook(
        lambda m, args, p=p: seen[p].append(args[0].detach().clone())) for p in paths]
    try:
        with torch.no_grad():
            reference(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def _outputs(model: nn.Module, paths: list[str], x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    seen: dict[str, list[torch.Tensor]] = {p: [] for p in paths}
    handles = [model.get_submodule(p).register_forward_hook(
        lambda m, args, out, p=p: seen[p].append(out.detach().clone())) for p in paths]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-5) -> bool:
    scale = max(1.0, float(want.abs().max()))
    return got.shape == want.shape and bool(
        torch.allclose(got, want, rtol=rtol, atol=rtol * scale))


def compare_timm_layers(ours: nn.Module, reference: nn.Module, x: torch.Tensor) -> Comparison:
    """compare_layers, where timm's norm + activation modules are compared before their
    activation (see the module docstring)."""
    found = compare_layers(ours, reference, x)
    fused = [p for p in _norm_act(reference) if p in found.differing]
    if not fused:
        return found
    want = _pre_activation(reference, fused, x)
    got = _outputs(ours, fused, x)
    same = {p for p in fused if len(got[p]) == len(want[p]) and want[p]
            and all(_close(g, w) for g, w in zip(got[p], want[p]))}
    return Comparison([p for p in found.differing if p not in same], found.not_modules,
                      found.compared)


def test_every_module_with_parameters_gives_timm_outputs(built: Built) -> None:
    """Module by module at the same path, the logits, and their input-dependent part."""
    ours = _loaded(built)
    compare_timm_layers(ours, built.reference, built.x).assert_equal()
    with torch.no_grad():
        got, want = ours(built.x), built.reference(built.x)
    assert _close(got, want)
    assert_input_dependent_parts_equal(ours, built.reference, built.x, built.x2)


def test_negative_control_a_perturbed_weight_is_caught(built: Built) -> None:
    """One element of the first weight changed by 0.1%: the layer comparison names the module
    that holds it (the logits alone may not move at all: rexnet_100's stay bit-equal)."""
    if built.model not in CONTROLS:
        pytest.skip(f"the negative control runs on the first {built.model.family} model")
    ours = _loaded(built)
    with perturbed(ours) as key:
        found = compare_timm_layers(ours, built.reference, built.x)
        assert key.rsplit(".", 1)[0] in found.differing
