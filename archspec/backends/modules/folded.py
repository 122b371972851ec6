"""The helpers of ``conv2d``, ``conv3d`` and ``batchnorm2d`` (ops/conv.py, ops/norm.py) on an
input with leading per-sample dims, (N, *G, C, H, W) or (N, *G, C, D, H, W): each sample a
batch of G maps (EfficientViT's windows, which timm folds into the batch; MViT's heads, which
torchvision folds). The leading dims are folded into the batch, the maps convolved (or
normalised) as one batch of N * G, and unfolded again; parameters and buffers are those of
``nn.Conv2d`` / ``nn.Conv3d`` / ``nn.BatchNorm2d``, under the same state_dict keys.

As in :mod:`archspec.backends.modules`, the classes use nothing but ``torch``, because
``archspec compile`` copies their source into the standalone files it writes.
"""

from __future__ import annotations

import torch


class FoldedConv2d(torch.nn.Conv2d):
    """``nn.Conv2d`` of an (N, *G, C, H, W) input: (N * G, C, H, W) convolved, the result
    (N, *G, C', H', W')."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x.reshape(-1, *x.shape[-3:]))
        return y.reshape(*x.shape[:-3], *y.shape[-3:])


class FoldedBatchNorm2d(torch.nn.BatchNorm2d):
    """``nn.BatchNorm2d`` of an (N, *G, C, H, W) input: (N * G, C, H, W) normalised (batch
    statistics over all N * G maps while training), reshaped back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, *x.shape[-3:])).reshape(x.shape)


class FoldedConv3d(torch.nn.Conv3d):
    """``nn.Conv3d`` of an (N, *G, C, D, H, W) input: (N * G, C, D, H, W) convolved, the result
    (N, *G, C', D', H', W') (MViT's pooling, one map per head). Only the convolution call
    folds, so that the module runs and describes itself as nn.Conv3d does (its ``forward`` and
    ``extra_repr``), as torchvision's MViT holds the pooling convolution its heads share."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        y = super()._conv_forward(x.reshape(-1, *x.shape[-4:]), weight, bias)
        return y.reshape(*x.shape[:-4], *y.shape[-4:])
