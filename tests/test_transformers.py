"""Transformer-specific figures: how each counting tool counts ViT-B/16's attention (the tools
run live on torchvision's model), and the attention scores in the memory figures."""

from __future__ import annotations

import functools

import pytest
import torch
import torchvision
from conftest import ROOT
from test_op_conventions import TOOLS, _quiet

import archspec
from archspec.analysis.conventions import CONVENTIONS

VIT = ROOT / "specs" / "vit_b_16.arch"


@functools.cache
def _vit_b_16() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.vit_b_16().eval()


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_vit_b_16_counts_as_each_tool_counts_it(convention: str) -> None:
    """Every convention's total for the whole network, attention included, equals the tool's
    count of torchvision's vit_b_16 (FlopCounterMode / 2 on the meta device)."""
    x = torch.randn(1, 3, 224, 224)
    model = _vit_b_16()
    if convention == "torchvision":
        model = torchvision.models.vit_b_16().to("meta").eval()
    counted = _quiet(lambda: TOOLS[convention](model, [x]))
    assert archspec.analyze(archspec.load(VIT), convention=convention).totals["macs"] == counted


@pytest.mark.parametrize("size", [224, 384])
def test_attention_scores_are_heads_times_tokens_squared(size: int) -> None:
    """ViT-B/16 holds 12 layers x 12 heads x T^2 float32 scores, T = (size / 16)^2 + 1
    tokens: 16x the memory (nearly) when the image side doubles. While a layer attends, the
    peak holds its scores, its input, its layer norm's output and its own output."""
    report = archspec.analyze(archspec.load(VIT, image_size=size), batch=2)
    tokens = (size // 16) ** 2 + 1
    one_layer = 2 * 12 * tokens ** 2 * 4
    assert report.totals["attention_bytes"] == 12 * one_layer
    token_map = 2 * tokens * 768 * 4
    assert report.totals["peak_activation_bytes"] >= one_layer + 3 * token_map


@pytest.mark.parametrize(("body", "warns"), [
    ("conv2d(16, 3) -> relu -> maxpool2d(2) -> linear(10)", True),
    ("conv2d(16, 3) -> batchnorm2d -> linear(10)", True),
    ("conv2d(16, 3) -> permute([1, 2, 0]) -> linear(10)", False),   # channels last: ConvNeXt
    ("conv2d(16, 3) -> permute([1, 2, 0]) -> layernorm -> gelu -> linear(10)", False),
    ("conv2d(16, 3) -> flatten -> linear(10)", False),
])
def test_linear_over_a_channels_first_map_is_a_located_warning(body: str, warns: bool) -> None:
    """`linear` maps the last dim of any input (tokens, channels-last maps); straight after a
    convolution or pooling that dim is a map's width, which is a forgotten flatten (W302)."""
    text = f"network t\ninput x: 3x8x8\ny: {body}\n"
    graph = archspec.expand(archspec.loads(text))
    found = [d for d in graph.warnings if d.code == "W302"]
    assert bool(found) == warns
    if warns:
        assert (found[0].span.line, found[0].span.col) == (3, text.splitlines()[2].index(
            "linear") + 1)


@pytest.mark.parametrize(("body", "code"), [
    ("input x: [4, 4, 8]\nshifted_window_attention(2, 1024, 512)", "E708"),  # 1e12 buffer
    ("input x: [16000000]\nlinear(16000000)", "E708"),
    ("input x: [4, 4, 8]\nswin_block_v2(2, 2, 1, 0.1, mlp_ratio=0.01)", "E301"),
])
def test_layers_too_large_to_build_are_located_errors_in_check(body: str, code: str) -> None:
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.expand(archspec.loads(f"network t\n{body}\n"))
    assert [d.code for d in info.value.diagnostics] == [code]
    assert info.value.diagnostics[0].span.line == 3
