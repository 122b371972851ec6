"""Arithmetic and checks shared by windowed ops: convolution and pooling windows, and the
attention windows of Swin and MaxViT."""

from __future__ import annotations

from archspec.ops.base import Shape, ShapeError, fmt_shape

_DIMS = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, D, H, W)"}


def check_rank(op: str, x: Shape, rank: int) -> Shape:
    """Check that ``x`` is ``(C, *spatial)`` with ``rank`` spatial dims."""
    if len(x) != rank + 1:
        hint = ("add `flatten` before a linear layer, or check the layer order"
                if len(x) < rank + 1 else "check the input shape and the op's dimensionality")
        raise ShapeError(f"`{op}` needs a {rank + 1}-D input {_DIMS[rank]} per sample, "
                         f"got {fmt_shape(x)}", hint=hint, code="E303")
    return x


def out_size(n: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False,
             end_pad: int | None = None) -> int:
    """Output length of a window op: ``floor((n + p + p_end - d*(k-1) - 1) / s) + 1``.

    With ``ceil`` (pooling's ceil_mode) rounds up, but the last window must start inside the
    input or the left padding, as PyTorch requires.
    """
    end = p if end_pad is None else end_pad
    span = n + p + end - d * (k - 1) - 1
    if span < 0:
        return 0
    if not ceil:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= n + p:
        out -= 1
    return out


def dropped_warnings(spatial: Shape, k: tuple[int, ...], s: tuple[int, ...],
                     p: tuple[int, ...], d: tuple[int, ...], ceil: bool = False) -> list[str]:
    """Messages for dims whose last input rows are never covered by any window.

    Only for windows that tile the input (extent >= stride); a window smaller than its stride
    subsamples by design.
    """
    out = []
    for axis, (n, ki, si, pi, di) in enumerate(zip(spatial, k, s, p, d)):
        extent = di * (ki - 1) + 1
        o = out_size(n, ki, si, pi, di, ceil)
        last_seen = (o - 1) * si + extent - 1 - pi
        if extent >= si and o > 0 and last_seen < n - 1:
            out.append(f"spatial dim {axis} (size {n}): the last {n - 1 - last_seen} row(s); "
                       f"n + 2p - k = {n + 2 * pi - extent} is not divisible by stride {si}")
    return out


MAX_WINDOW = 1024
"""Largest window side: far beyond any real network (Swin uses 7 to 24), so that a slip such as
``window=10**6`` is a located error, not a (2w - 1)^2-row bias table that `compile` cannot
allocate."""



def channels_last(op: str, x: Shape) -> Shape:
    """Check that ``x`` is a channels-last map ``(H, W, C)``."""
    if len(x) != 3:
        raise ShapeError(f"`{op}` needs a channels-last (H, W, C) map per sample, got "
                         f"{fmt_shape(x)}", code="E303",
                         hint="turn a (C, H, W) map channels-last with `permute(1, 2, 0)`")
    return x
