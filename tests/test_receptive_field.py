"""Receptive field and cumulative stride, checked against gradients: the input pixels that
reach one output pixel of a real PyTorch forward (all-positive weights, so nothing cancels;
average pooling, since max pooling routes the gradient to one pixel)."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

import archspec

STACKS = {
    "conv_pool_dilated": "conv2d(2, 3, stride=2) -> avgpool2d(2) -> conv2d(2, 3, dilation=2)",
    "upsample_nearest": "conv2d(2, 3, stride=2) -> upsample(2) -> conv2d(2, 3)",
    "upsample_bilinear": "upsample(2, mode=\"bilinear\", align_corners=false) -> conv2d(2, 3)",
    "transposed": "conv_transpose2d(2, 3, stride=2) -> conv2d(2, 3)",
    "transposed_k4": "conv2d(2, 3, stride=2) -> conv_transpose2d(2, 4, stride=2, padding=1)",
}


def _rows_seen(model: torch.nn.Module, size: int, row: int) -> list[int]:
    """Input rows whose gradient reaches output pixel (row, centre)."""
    x = torch.ones(1, 2, size, size, requires_grad=True)
    out = model(x)
    out[0, 0, row, out.shape[-1] // 2].backward()
    return torch.nonzero(x.grad[0, 0].abs().sum(1) > 0).flatten().tolist()


@pytest.mark.parametrize("name", sorted(STACKS))
def test_receptive_field_and_stride_equal_gradients(name: str) -> None:
    spec = archspec.loads(f"network t\ninput x: 2x64x64\ninit conv2d: ones(bias=0)\n"
                          f"init conv_transpose2d: ones(bias=0)\n{STACKS[name]}\n")
    last = archspec.analyze(spec).layers[-1]
    model = archspec.to_torch(spec).eval()
    centre = last.output_shape[2] // 3
    seen = [_rows_seen(model, 64, centre + i) for i in range(4)]
    assert max(s[-1] - s[0] + 1 for s in seen) == last.receptive_field  # extent (dilation gaps)
    steps = 8 if last.stride < 1 else 2  # a whole number of input rows either way
    shift = Fraction(_rows_seen(model, 64, centre + steps)[0] - seen[0][0], steps)
    assert shift == Fraction(last.stride).limit_denominator(8)
