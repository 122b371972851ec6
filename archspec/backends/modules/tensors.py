"""Helpers of the tensor primitives that no input computes (ops/constants.py): a learnable
``parameter``, a constant ``Constant`` buffer (or a ``persistent_buffer`` at the layer's own
key) and ``take``.

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
    """A constant tensor (int64 indices, a float32 mask or table) made from ``generator`` and
    ``size`` when the module is built, held as a non-persistent buffer ``value`` (outside the
    state_dict, as timm holds its indices); the forward returns it with a leading batch dim of
    1."""

    def __init__(self, generator: str, size: tuple[int, ...]) -> None:
        super().__init__()
        self.generator = generator
        self.size = tuple(size)
        with torch.device("cpu"):  # computed from values, also when built on the meta device
            value = self.generate(generator, self.size)
        self.register_buffer("value", value.to(torch.empty(0).device), persistent=False)

    @staticmethod
    def generate(generator: str, size: tuple[int, ...]) -> torch.Tensor:
        """``arange`` [n]: (n,); ``relative_position_index`` [h, w]: (hw, hw), each pair's
        offset as an index into a (2h-1)(2w-1) table (Swin); ``relative_position_index_cls``
        [h, w]: (hw+1, hw+1), with three more rows for the class token (BEiT);
        ``attention_bias_index`` [h, w]: (hw, hw), the index of each pair's absolute offset
        in order of first appearance (LeViT, EfficientViT, TinyViT);
        ``shifted_window_mask`` [h, w, window, shift]: (windows, N, N), Swin's mask of the
        windows of an h x w map rolled by -shift, 0 where two tokens come from the same rolled
        region and -100 elsewhere (float32, as the scores it is added to);
        ``relative_coords_table`` [h, w]: (2h-1, 2w-1, 2), Swin v2's log-spaced offsets
        (float32); ``relative_position_index_3d`` [t, h, w]: (thw, thw), each pair's offset as
        an index into a (2t-1)(2h-1)(2w-1) table (Video Swin); ``shifted_window_mask_3d`` [t,
        h, w, wt, wh, ww, st, sh, sw]: its mask of a t x h x w map rolled by -(st, sh, sw),
        in wt x wh x ww windows; ``scaled_offset_index`` [q, k]: (q, k), MViT v2's index of
        each query-key offset along one axis."""
        if generator == "arange":
            return torch.arange(size[0])
        if generator == "scaled_offset_index":
            return Constant.scaled_offset_index(*size)
        if generator == "relative_position_index_3d":
            return Constant.relative_position_index_3d(*size)
        if generator == "shifted_window_mask_3d":
            return Constant.shifted_window_mask_3d(size[:3], size[3:6], size[6:])
        if generator == "shifted_window_mask":
            return Constant.shifted_window_mask(*size)
        if generator == "relative_coords_table":
            return Constant.relative_coords_table(*size)
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

    @staticmethod
    def shifted_window_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
        """Swin's attention mask of shifted windows, (windows, N, N) for N = window^2: each
        pixel of the rolled h x w map is labelled by the band it lies in along each axis
        (before the last window, the last window's unshifted part, the shift), the labels are
        cut into windows row-major, and a pair of tokens is masked (-100) where the labels
        differ."""
        def bands(size: int) -> torch.Tensor:
            i = torch.arange(size)
            return (i >= size - window).long() + (i >= size - shift).long()

        labels = 3 * bands(h)[:, None] + bands(w)[None, :]
        labels = labels.view(h // window, window, w // window, window).permute(0, 2, 1, 3)
        labels = labels.reshape(-1, window * window)
        differ = labels[:, None, :] != labels[:, :, None]
        return differ.float() * -100.0

    @staticmethod
    def relative_position_index_3d(t: int, h: int, w: int) -> torch.Tensor:
        """Video Swin's index of a t x h x w window, (thw, thw) int64: the offset (dt, dh, dw)
        of each pair of tokens (row-major, t first) as (dt + t-1)(2h-1)(2w-1) + (dh + h-1)(2w-1)
        + dw + w-1."""
        grids = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
        coords = torch.stack(grids).flatten(1)
        offsets = coords[:, :, None] - coords[:, None, :]
        return ((offsets[0] + t - 1) * (2 * h - 1) + offsets[1] + h - 1) * (2 * w - 1) + \
            offsets[2] + w - 1

    @staticmethod
    def shifted_window_mask_3d(sides: tuple[int, ...], window: tuple[int, ...],
                               shift: tuple[int, ...]) -> torch.Tensor:
        """Video Swin's mask of shifted windows, (windows, N, N) float32 for N the window's
        volume: each position of the rolled map is labelled by the band it lies in along each
        axis (before the last window, the last window's unshifted part, the shift; a shift of
        0 leaves the first two, which no window straddles), the labels are cut into windows
        (row-major, t first), and a pair of tokens is masked (-100) where the labels differ."""
        labels = torch.zeros((), dtype=torch.long)
        for size, side, moved in zip(sides, window, shift, strict=True):
            i = torch.arange(size)
            bands = (i >= size - side).long() + (i >= size - moved).long()
            labels = labels[..., None] * 3 + bands
        (t, h, w), (wt, wh, ww) = sides, window
        labels = labels.view(t // wt, wt, h // wh, wh, w // ww, ww).permute(0, 2, 4, 1, 3, 5)
        labels = labels.reshape(-1, wt * wh * ww)
        differ = labels[:, None, :] != labels[:, :, None]
        return torch.zeros(differ.shape).masked_fill(differ, -100.0)

    @staticmethod
    def scaled_offset_index(q: int, k: int) -> torch.Tensor:
        """MViT v2's index of the offset of query i and key j along one axis of q queries and k
        keys, (q, k) int64 into a table of 2 max(q, k) - 1 rows: both axes scaled to the longer
        one, i max(k/q, 1) - (j + 1 - k) max(q/k, 1), computed in float32 and truncated, as
        torchvision computes it."""
        q_ratio, k_ratio = max(k / q, 1.0), max(q / k, 1.0)
        dist = torch.arange(q)[:, None] * q_ratio - (torch.arange(k)[None, :] + (1.0 - k)) * k_ratio
        return dist.long()

    @staticmethod
    def relative_coords_table(h: int, w: int) -> torch.Tensor:
        """Swin v2's relative coordinates of a window of h x w, (2h-1, 2w-1, 2): each offset
        (dh, dw), -(h-1) .. h-1 by -(w-1) .. w-1, scaled to t = 8 dh / (h-1), 8 dw / (w-1) and
        log-spaced as sign(t) log2(1 + |t|) / 3 (float32)."""
        dh = torch.arange(-(h - 1), h, dtype=torch.float32) / (h - 1)
        dw = torch.arange(-(w - 1), w, dtype=torch.float32) / (w - 1)
        table = torch.stack(torch.meshgrid(dh, dw, indexing="ij"), dim=-1) * 8
        return torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0

    def forward(self) -> torch.Tensor:
        return self.value.unsqueeze(0)

    def _load_from_state_dict(self, state_dict: dict[str, torch.Tensor], prefix: str,
                              *args: object) -> None:
        """A module built on the meta device holds no values, and its buffer is not in the
        state_dict: when weights are loaded into it (``load_state_dict(..., assign=True)``),
        it makes its values again, on the default device."""
        super()._load_from_state_dict(state_dict, prefix, *args)
        if self.value.is_meta:
            self.value = self.generate(self.generator, self.size).to(torch.empty(0).device)

    def extra_repr(self) -> str:
        return f"{self.generator!r}, size={list(self.size)}"


def persistent_buffer(generator: str, size: tuple[int, ...]) -> torch.Tensor:
    """The tensor ``Constant`` makes from ``generator`` and ``size``, as a persistent buffer
    (``torch.nn.Buffer``) to register at the layer's own key, in the state_dict (torchvision's
    Swin3D ``relative_position_index``)."""
    with torch.device("cpu"):  # computed from values, also when built on the meta device
        value = Constant.generate(generator, tuple(size))
    return torch.nn.Buffer(value.to(torch.empty(0).device))


persistent_buffer.requires = ("Constant",)  # type: ignore[attr-defined]


def take(x: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """The entries of ``x`` (N, ...) along ``dim`` at ``index`` (1, *K), the same for every
    sample: dim ``dim`` of the result is K, as ``table[index]``."""
    picked = x.index_select(dim, index.reshape(-1))
    return picked.reshape(*x.shape[:dim], *index.shape[1:], *x.shape[dim + 1:])
