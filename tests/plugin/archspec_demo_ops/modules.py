"""The demo plugin's torch module (imported only when a network is compiled)."""

from __future__ import annotations

import torch


class ScaledTanh(torch.nn.Module):
    """``alpha * tanh(beta * x)``, element-wise (uses nothing but torch: `archspec compile`
    copies this class into the files it writes)."""

    def __init__(self, alpha: float = 1.7159, beta: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * torch.tanh(self.beta * x)
