"""The helper of ``scaled_std_conv2d`` (ops/conv.py): a 2-D convolution whose weight is
standardised per output channel before each use, as timm's ``ScaledStdConv2d`` (NFNet, NF-ResNet).

As in :mod:`archspec.backends.modules`, the class uses nothing but ``torch``, because
``archspec compile`` copies its source into the standalone files it writes.
"""

from __future__ import annotations

import torch


class ScaledStdConv2d(torch.nn.Conv2d):
    """``nn.Conv2d`` with scaled weight standardisation (Brock et al., 2021), as timm's
    ``ScaledStdConv2d``: before each convolution, every output channel's weight is shifted to
    mean 0 and scaled to variance 1 (the biased variance over its fan-in, plus ``eps``), then
    multiplied by its learnable ``gain`` (out, 1, 1, 1; initialised to ``gain_init``) and by
    ``gamma / sqrt(fan-in)``. Parameters ``weight``, ``bias`` (when ``bias``), ``gain``, in
    timm's order; the standardisation is ``F.batch_norm`` in training mode, as timm computes it."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", gamma: float = 1.0, eps: float = 1e-6,
                 gain_init: float = 1.0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode)
        self.gamma = gamma
        self.scale = gamma * self.weight[0].numel() ** -0.5
        self.eps = eps
        self.gain = torch.nn.Parameter(torch.full((out_channels, 1, 1, 1), gain_init))

    def standardised_weight(self) -> torch.Tensor:
        """The weight the convolution uses: standardised per output channel, times
        ``gain * gamma / sqrt(fan-in)``."""
        return torch.nn.functional.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None,
            weight=(self.gain * self.scale).view(-1), training=True, momentum=0.0,
            eps=self.eps).reshape_as(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.standardised_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}, eps={self.eps}"
