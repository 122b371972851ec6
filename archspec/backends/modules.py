"""Small ``nn.Module`` classes that torch rules name where PyTorch has no ready-made layer.

Each class uses nothing but ``torch`` (no other import, no helper outside the class), because
``archspec compile`` copies a class's source into the standalone files it writes. Inputs carry
the batch dimension: ``(N, C, *spatial)``.
"""

from __future__ import annotations

import torch


class StochasticDepth(torch.nn.Module):
    """Randomly drops the whole input while training, as ``torchvision.ops.stochastic_depth``:
    ``mode="row"`` draws one Bernoulli(1 - p) per sample, ``"batch"`` one for the whole batch;
    kept values are divided by 1 - p. The identity in eval mode or when ``p`` is 0."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


def learned(shape: tuple[int, ...], fill: float = 0.0, std: float = 0.0) -> torch.nn.Parameter:
    """A learnable tensor of ``shape``: drawn from N(0, std^2) when ``std`` > 0 (as torchvision
    draws ViT's position embedding, at construction), else filled with ``fill``."""
    if std > 0.0:
        return torch.nn.Parameter(torch.empty(shape).normal_(std=std))
    return torch.nn.Parameter(torch.full(shape, fill))


def prepend_token(x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """``token`` (1, 1, D) expanded over the batch and put before the tokens of ``x``
    (N, T, D): (N, T + 1, D), as ViT prepends its class token."""
    return torch.cat([token.expand(x.shape[0], -1, -1), x], dim=1)


class LayerNorm2d(torch.nn.LayerNorm):
    """Layer normalisation over the channels of a (N, C, H, W) map at each position, as
    ConvNeXt's ``LayerNorm2d``: channels last, ``F.layer_norm``, channels first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = torch.nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                                           self.eps)
        return x.permute(0, 3, 1, 2)


class ResizeAs(torch.nn.Module):
    """Resizes ``x`` (N, C, *spatial) to the spatial size of ``ref`` (N, C', *spatial'), as
    segmentation heads do: ``F.interpolate(x, size=ref.shape[2:], mode=..., align_corners=...)``.
    Works at any input size."""

    def __init__(self, mode: str = "nearest", align_corners: bool | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, size=ref.shape[2:], mode=self.mode,
                                               align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, align_corners={self.align_corners}"


class CenterCrop(torch.nn.Module):
    """Crops the spatial dims of ``x`` (N, C, *spatial) to ``size`` (one int per spatial dim) or,
    without ``size``, to the spatial size of a second input ``ref``; the window is centred as in
    ``torchvision.transforms.functional.center_crop`` (offset ``round((n - size) / 2)``)."""

    def __init__(self, size: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        target = self.size if ref is None else tuple(ref.shape[2:])
        index = [slice(None), slice(None)]
        for n, t in zip(x.shape[2:], target):
            start = int(round((int(n) - int(t)) / 2.0))  # ints also under tracing
            index.append(slice(start, start + int(t)))
        return x[tuple(index)]

    def extra_repr(self) -> str:
        return "" if self.size is None else f"size={self.size}"


class Slice(torch.nn.Module):
    """``x[..., start:end:step, ...]`` along ``dim`` (a dim of the batched tensor)."""

    def __init__(self, dim: int, start: int, end: int, step: int = 1) -> None:
        super().__init__()
        self.dim, self.start, self.end, self.step = dim, start, end, step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = [slice(None)] * self.dim + [slice(self.start, self.end, self.step)]
        return x[tuple(index)]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, start={self.start}, end={self.end}, step={self.step}"


class Product(torch.nn.Module):
    """The broadcasting element-wise product of any number of inputs: ``a * b * c ...``."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = inputs[0]
        for x in inputs[1:]:
            out = out * x
        return out
