"""Padding modes against the input size: `check` accepts a reflect or circular padding exactly
when torch runs it (torch is the oracle, tried for every pad up to past the map), so that no
spec passes `check` and `export` and then fails in torch, or runs in onnxruntime only."""

from __future__ import annotations

import itertools

import pytest
import torch

import archspec


def _torch_runs(mode: str, pad: tuple[int, int], size: tuple[int, int]) -> bool:
    conv = torch.nn.Conv2d(1, 1, 3, padding=pad, padding_mode=mode)
    try:
        conv(torch.zeros(1, 1, *size))
    except RuntimeError:
        return False
    return True


def _check_accepts(mode: str, pad: tuple[int, int], size: tuple[int, int]) -> bool:
    spec = archspec.loads(f"network t\ninput x: 1x{size[0]}x{size[1]}\n"
                          f"conv2d(1, 3, padding={list(pad)}, padding_mode=\"{mode}\")\n")
    try:
        archspec.expand(spec)
    except archspec.ArchspecError as exc:
        assert exc.diagnostics[0].code == "E302" and exc.diagnostics[0].span.line == 3
        return False
    return True


@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate", "zeros"])
def test_check_accepts_a_padding_exactly_when_torch_runs_it(mode: str) -> None:
    size = (5, 8)
    for pad in itertools.product(range(0, 11, 2 if mode in ("zeros", "replicate") else 1),
                                 repeat=2):
        assert _check_accepts(mode, pad, size) == _torch_runs(mode, pad, size), (mode, pad)
