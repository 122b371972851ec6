"""Helpers of the tensor primitives that no input computes (ops/constants.py): a learnable
``parameter``, a constant ``Constant`` buffer and ``take``.

As in :mod:`archspec.backends.modules`, each helper uses nothing but ``torch``, because
``archspec compile`` copies its source into the standalone files it writes.
"""

from __future__ import annotations

import torch


def parameter(shape: tuple[int, ...], init: str = "zeros", value: float = 0.0,
              std: float = 0.02, frozen: bool = False) -> torch.nn.Parameter:
    """A learnable tensor of ``shape``: zeros, ones, ``constant`` (``value``), ``normal``
    (N(0, std^2)), ``trunc_normal`` (cut at -2 and 2, as timm's ``trunc_normal_``) or ``uniform``
    (U(0, 1)); ``frozen`` turns requires_grad off."""
    data = torch.zeros(shape)
    if init == "ones":
        data.fill_(1.0)
    elif init == "constant":
        data.fill_(value)
    elif init == "normal":
        data.normal_(std=std)
    elif init == "trunc_normal":
        torch.nn.init.trunc_normal_(data, std=std)
    elif init == "uniform":
        data.uniform_()
    return torch.nn.Parameter(data, requires_grad=not frozen)


class Constant(torch.nn.Module):
    """A constant int64 tensor made from ``generator`` and ``size`` when the module is built,
    held as a non-persistent buffer ``value`` (outside the state_dict, as timm holds its
    indices); the forward returns it with a leading batch dim of 1."""

    def __init__(self, generator: str, size: tuple[int, ...]) -> None:
        super().__init__()
        self.generator = generator
        self.size = tuple(size)
        self.register_buffer("value", self.generate(generator, self.size), persistent=False)

    @staticmethod
    def generate(generator: str, size: tuple[int, ...]) -> torch.Tensor:
        """``arange`` [n]: (n,); ``relative_position_index`` [h, w]: (hw, hw), each pair's
        offset as an index into a (2h-1)(2w-1) table (Swin); ``relative_position_index_cls``
        [h, w]: (hw+1, hw+1), with three more rows for the class token (BEiT);
        ``attention_bias_index`` [h, w]: (hw, hw), the index of each pair's absolute offset
        in order of first appearance (LeViT, EfficientViT, TinyViT)."""
        if generator == "arange":
            return torch.arange(size[0])
        h, w = size
        coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
        coords = coords.flatten(1)
        offsets = coords[:, :, None] - coords[:, None, :]
        if generator == "attention_bias_index":
            pairs = [tuple(p) for p in offsets.abs().permute(1, 2, 0).reshape(-1, 2).tolist()]
            first = {p: i for i, p in enumerate(dict.fromkeys(pairs))}
            return torch.tensor([first[p] for p in pairs]).view(h * w, h * w)
        index = (offsets[0] + h - 1) * (2 * w - 1) + offsets[1] + w - 1
        if generator == "relative_position_index":
            return index
        table = (2 * h - 1) * (2 * w - 1)
        out = torch.zeros(h * w + 1, h * w + 1, dtype=torch.long)
        out[1:, 1:] = index
        out[0, 0:] = table
        out[0:, 0] = table + 1
        out[0, 0] = table + 2
        return out

    def forward(self) -> torch.Tensor:
        return self.value.unsqueeze(0)

    def extra_repr(self) -> str:
        return f"{self.generator!r}, size={list(self.size)}"


def take(x: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """The entries of ``x`` (N, ...) along ``dim`` at ``index`` (1, *K), the same for every
    sample: dim ``dim`` of the result is K, as ``table[index]``."""
    picked = x.index_select(dim, index.reshape(-1))
    return picked.reshape(*x.shape[:dim], *index.shape[1:], *x.shape[dim + 1:])
