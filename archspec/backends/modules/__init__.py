"""Small ``nn.Module`` classes that torch rules name where PyTorch has no ready-made layer.

Each class uses nothing but ``torch`` (no other import, no helper outside the class), because
``archspec compile`` copies a class's source into the standalone files it writes; a class that
builds another class of this file names it in its ``requires``, and the written file carries
that class too. Inputs carry the batch dimension: ``(N, C, *spatial)``.
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


# Tensor primitives (ops/arith.py, ops/activation.py): element-wise ops torch has no module
# for, written with operators as hand-written code writes them (``x * 0.5``), so that a
# profiler patching torch.mul / torch.add counts them as it counts that code.


class Scale(torch.nn.Module):
    """``x * factor``: the input times a constant."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class Shift(torch.nn.Module):
    """``x + value``: the input plus a constant."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.value

    def extra_repr(self) -> str:
        return f"value={self.value}"


class QuickGELU(torch.nn.Module):
    """``x * sigmoid(1.702 * x)``: the sigmoid approximation of GELU, as CLIP's and timm's
    ``QuickGELU``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


# Products of activations (ops/linalg.py): einsum with its equation as a keyword, attention
# whose dropout follows the module's training mode.


def einsum(*operands: torch.Tensor, equation: str) -> torch.Tensor:
    """``torch.einsum(equation, *operands)``, the equation a keyword (an fx call passes it)."""
    return torch.einsum(equation, *operands)


class ScaledDotProductAttention(torch.nn.Module):
    """``F.scaled_dot_product_attention(q, k, v[, mask])`` with attention dropout ``dropout``
    while training only (the functional drops whenever ``dropout_p`` is above 0)."""

    def __init__(self, dropout: float, causal: bool = False, scale: float | None = None) -> None:
        super().__init__()
        self.dropout, self.causal, self.scale = dropout, causal, scale

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                *mask: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, *mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal, scale=self.scale)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}, causal={self.causal}, scale={self.scale}"


class ShiftedWindowAttention(torch.nn.Module):
    """Swin's (shifted) window multi-head self-attention of an (N, H, W, C) channels-last map,
    as torchvision's ``ShiftedWindowAttention`` (``cosine=False``, Swin v1: relative position
    bias table and index) and ``ShiftedWindowAttentionV2`` (``cosine=True``: cosine attention
    scaled by ``logit_scale``, bias from the continuous position bias MLP ``cpb_mlp``).

    The map is zero-padded on the bottom/right to whole windows, rolled by ``-shift_size``
    (no shift along a dim the window covers), attended within each window of
    ``window_size[0] * window_size[1]`` tokens (shifted windows masked with -100 where they
    join rolled regions), rolled back and cropped. Parameters and buffers in torchvision's
    order and names."""

    def __init__(self, dim: int, window_size: list[int], shift_size: list[int], num_heads: int,
                 qkv_bias: bool = True, proj_bias: bool = True, attention_dropout: float = 0.0,
                 dropout: float = 0.0, cosine: bool = False) -> None:
        super().__init__()
        self.window_size = list(window_size)
        self.shift_size = list(shift_size)
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.dropout = dropout
        self.cosine = cosine
        self.qkv = torch.nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = torch.nn.Linear(dim, dim, bias=proj_bias)
        wh, ww = self.window_size
        if cosine:
            ch = torch.arange(-(wh - 1), wh, dtype=torch.float32) / (wh - 1)
            cw = torch.arange(-(ww - 1), ww, dtype=torch.float32) / (ww - 1)
            table = torch.stack(torch.meshgrid([ch, cw], indexing="ij")).permute(1, 2, 0)
            table = table.contiguous().unsqueeze(0) * 8
            table = torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0
            self.register_buffer("relative_coords_table", table)
        else:
            self.relative_position_bias_table = torch.nn.Parameter(
                torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
            torch.nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij"))
        flat = torch.flatten(coords, 1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += wh - 1
        rel[:, :, 1] += ww - 1
        rel[:, :, 0] *= 2 * ww - 1
        self.register_buffer("relative_position_index", rel.sum(-1).flatten())
        if cosine:
            self.logit_scale = torch.nn.Parameter(torch.log(10 * torch.ones((num_heads, 1, 1))))
            self.cpb_mlp = torch.nn.Sequential(
                torch.nn.Linear(2, 512, bias=True), torch.nn.ReLU(inplace=True),
                torch.nn.Linear(512, num_heads, bias=False))
            if qkv_bias:
                length = self.qkv.bias.numel() // 3
                self.qkv.bias[length:2 * length].data.zero_()

    def position_bias(self) -> torch.Tensor:
        """The (1, heads, N, N) bias added to the attention logits, N tokens per window."""
        n = self.window_size[0] * self.window_size[1]
        table = (self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
                 if self.cosine else self.relative_position_bias_table)
        bias = table[self.relative_position_index].view(n, n, -1)
        bias = bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        return 16 * torch.sigmoid(bias) if self.cosine else bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        (wh, ww), heads = self.window_size, self.num_heads
        x = torch.nn.functional.pad(x, (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh))
        _, ph, pw, _ = x.shape
        sh = 0 if wh >= ph else self.shift_size[0]
        sw = 0 if ww >= pw else self.shift_size[1]
        if sh + sw > 0:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        windows = (ph // wh) * (pw // ww)
        x = x.view(b, ph // wh, wh, pw // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(b * windows, wh * ww, c)
        qkv_bias = self.qkv.bias
        if self.cosine and qkv_bias is not None:
            qkv_bias = qkv_bias.clone()
            qkv_bias[c:2 * c].zero_()
        qkv = torch.nn.functional.linear(x, self.qkv.weight, qkv_bias)
        qkv = qkv.reshape(x.size(0), x.size(1), 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.cosine:
            attn = torch.nn.functional.normalize(q, dim=-1) @ \
                torch.nn.functional.normalize(k, dim=-1).transpose(-2, -1)
            attn = attn * torch.clamp(self.logit_scale, max=4.605170185988092).exp()
        else:
            attn = (q * (c // heads) ** -0.5).matmul(k.transpose(-2, -1))
        attn = attn + self.position_bias()
        if sh + sw > 0:
            mask = x.new_zeros((ph, pw))
            count = 0
            for hs in ((0, -wh), (-wh, -sh), (-sh, None)):
                for ws in ((0, -ww), (-ww, -sw), (-sw, None)):
                    mask[hs[0]:hs[1], ws[0]:ws[1]] = count
                    count += 1
            mask = mask.view(ph // wh, wh, pw // ww, ww).permute(0, 2, 1, 3)
            mask = mask.reshape(windows, wh * ww)
            mask = mask.unsqueeze(1) - mask.unsqueeze(2)
            mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
            attn = attn.view(x.size(0) // windows, windows, heads, x.size(1), x.size(1))
            attn = (attn + mask.unsqueeze(1).unsqueeze(0)).view(-1, heads, x.size(1), x.size(1))
        attn = torch.nn.functional.softmax(attn, dim=-1)
        attn = torch.nn.functional.dropout(attn, p=self.attention_dropout, training=self.training)
        x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), c)
        x = torch.nn.functional.linear(x, self.proj.weight, self.proj.bias)
        x = torch.nn.functional.dropout(x, p=self.dropout, training=self.training)
        x = x.view(b, ph // wh, pw // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(b, ph, pw, c)
        if sh + sw > 0:
            x = torch.roll(x, shifts=(sh, sw), dims=(1, 2))
        return x[:, :h, :w, :].contiguous()

    def extra_repr(self) -> str:
        return (f"window_size={self.window_size}, shift_size={self.shift_size}, "
                f"num_heads={self.num_heads}, cosine={self.cosine}")


class ShiftedWindowAttentionV2(ShiftedWindowAttention):
    """Swin v2's window attention, torchvision's ``ShiftedWindowAttentionV2``:
    :class:`ShiftedWindowAttention` with ``cosine=True``."""

    requires = ("ShiftedWindowAttention",)

    def __init__(self, dim: int, window_size: list[int], shift_size: list[int], num_heads: int,
                 qkv_bias: bool = True, proj_bias: bool = True, attention_dropout: float = 0.0,
                 dropout: float = 0.0) -> None:
        super().__init__(dim, window_size, shift_size, num_heads, qkv_bias, proj_bias,
                         attention_dropout, dropout, cosine=True)


class PatchMerging(torch.nn.Module):
    """Swin's patch merging of an (N, H, W, C) channels-last map into (N, ceil(H/2), ceil(W/2),
    2C), as torchvision's ``PatchMerging`` (``v2=False``: LayerNorm(4C), then the 4C -> 2C
    ``reduction``) and ``PatchMergingV2`` (``v2=True``: reduction, then LayerNorm(2C)). The map
    is zero-padded to even sides; each 2x2 patch's four pixels are concatenated in the order
    (0, 0), (1, 0), (0, 1), (1, 1)."""

    def __init__(self, dim: int, eps: float = 1e-5, v2: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.v2 = v2
        self.reduction = torch.nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = torch.nn.LayerNorm(2 * dim if v2 else 4 * dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-3], x.shape[-2]
        x = torch.nn.functional.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], x[..., 0::2, 1::2, :],
                       x[..., 1::2, 1::2, :]], -1)
        if self.v2:
            return self.norm(self.reduction(x))
        return self.reduction(self.norm(x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, v2={self.v2}"


class WindowPartition(torch.nn.Module):
    """MaxViT's partition of an (N, C, H, W) map into (N, H/p * W/p, p * p, C): the p x p
    windows in row-major order, each window's pixels row-major, channels last (torchvision's
    ``WindowPartition`` with ``p`` fixed)."""

    def __init__(self, p: int) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.p
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p, c)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class WindowDepartition(torch.nn.Module):
    """The inverse of :class:`WindowPartition`: (N, h * w, p * p, C) windows back into an
    (N, C, h * p, w * p) map, ``h`` x ``w`` windows (torchvision's ``WindowDepartition``)."""

    def __init__(self, p: int, h_partitions: int, w_partitions: int) -> None:
        super().__init__()
        self.p, self.h_partitions, self.w_partitions = p, h_partitions, w_partitions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, _, c = x.shape
        p, hp, wp = self.p, self.h_partitions, self.w_partitions
        x = x.reshape(b, hp, wp, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, c, hp * p, wp * p)

    def extra_repr(self) -> str:
        return f"p={self.p}, h_partitions={self.h_partitions}, w_partitions={self.w_partitions}"


class RelativePositionalMultiHeadAttention(torch.nn.Module):
    """MaxViT's multi-head self-attention within each of G groups of P = size^2 tokens, input
    and output (N, G, P, C), as torchvision's ``RelativePositionalMultiHeadAttention``:
    ``C // head_dim`` heads, keys scaled by C^-0.5 (the features, not the head width), a learned
    relative position bias ((2 size - 1)^2 x heads) read through a (P, P) index buffer."""

    def __init__(self, feat_dim: int, head_dim: int, max_seq_len: int) -> None:
        super().__init__()
        self.n_heads = feat_dim // head_dim
        self.head_dim = head_dim
        self.size = int(max_seq_len ** 0.5)
        self.max_seq_len = max_seq_len
        self.to_qkv = torch.nn.Linear(feat_dim, self.n_heads * self.head_dim * 3)
        self.scale_factor = feat_dim ** -0.5
        self.merge = torch.nn.Linear(self.head_dim * self.n_heads, feat_dim)
        self.relative_position_bias_table = torch.nn.Parameter(
            torch.empty(((2 * self.size - 1) * (2 * self.size - 1), self.n_heads)))
        coords = torch.stack(torch.meshgrid([torch.arange(self.size), torch.arange(self.size)],
                                            indexing="ij"))
        flat = torch.flatten(coords, 1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += self.size - 1
        rel[:, :, 1] += self.size - 1
        rel[:, :, 0] *= 2 * self.size - 1
        self.register_buffer("relative_position_index", rel.sum(-1))
        torch.nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, g, p, d = x.shape
        heads, dh = self.n_heads, self.head_dim
        q, k, v = torch.chunk(self.to_qkv(x), 3, dim=-1)
        q = q.reshape(b, g, p, heads, dh).permute(0, 1, 3, 2, 4)
        k = k.reshape(b, g, p, heads, dh).permute(0, 1, 3, 2, 4) * self.scale_factor
        v = v.reshape(b, g, p, heads, dh).permute(0, 1, 3, 2, 4)
        logits = torch.einsum("B G H I D, B G H J D -> B G H I J", q, k)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(self.max_seq_len, self.max_seq_len, -1).permute(2, 0, 1).contiguous()
        attn = torch.nn.functional.softmax(logits + bias.unsqueeze(0), dim=-1)
        out = torch.einsum("B G H I J, B G H J D -> B G H I D", attn, v)
        return self.merge(out.permute(0, 1, 3, 2, 4).reshape(b, g, p, d))

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}, head_dim={self.head_dim}, size={self.size}"


class SwinTransformerBlockV2(torch.nn.Module):
    """Swin v2's block (res-post-norm) of an (N, H, W, C) channels-last map, as torchvision's
    ``SwinTransformerBlockV2``: ``x + sd(norm1(attn(x)))``, then ``x + sd(norm2(mlp(x)))``,
    with cosine window attention (:class:`ShiftedWindowAttentionV2`), an MLP (linear to
    ``mlp_ratio`` x C, GELU, dropout, linear back, dropout) initialised in the constructor
    (xavier-uniform weights, normal(std 1e-6) biases), and row-wise stochastic depth
    (:class:`StochasticDepth`). Modules registered in torchvision's order."""

    requires = ("ShiftedWindowAttention", "ShiftedWindowAttentionV2", "StochasticDepth")

    def __init__(self, dim: int, num_heads: int, window_size: list[int], shift_size: list[int],
                 stochastic_depth_prob: float = 0.0, mlp_ratio: float = 4.0,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim, eps=eps)
        self.attn = ShiftedWindowAttentionV2(dim, window_size, shift_size, num_heads)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.norm2 = torch.nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Dropout(0.0),
            torch.nn.Linear(hidden, dim), torch.nn.Dropout(0.0))
        for m in self.mlp.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                torch.nn.init.normal_(m.bias, std=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.stochastic_depth(self.norm1(self.attn(x)))
        return x + self.stochastic_depth(self.norm2(self.mlp(x)))
