"""Counting conventions: how third-party tools count "MACs"/"FLOPs", reproduced from our costs.

Each convention maps an op's category and its :class:`Cost` (per sample) to a count. The
``torchvision`` convention is archspec's ``macs``; the others let a user compare numbers with
the tool they already use. See docs/conventions.md for the table and sources.
"""

from __future__ import annotations

from collections.abc import Callable

from archspec.ops.base import Cost

Rule = Callable[[str, Cost], int]


def _torchvision(cat: str, c: Cost) -> int:
    return c.macs if cat == "linear" else 0


def _torchinfo(cat: str, c: Cost) -> int:
    if cat == "linear":
        return c.macs + c.bias
    return c.params if cat == "norm" else 0


def _fvcore(cat: str, c: Cost) -> int:
    if cat == "linear":
        return c.macs
    if cat == "norm":
        return c.in_numel * (2 if c.params else 1)
    return c.in_numel if cat == "adaptive_avg" else 0


_POOLS = ("maxpool", "avgpool", "adaptive_avg", "adaptive_max")


def _ptflops(cat: str, c: Cost) -> int:
    # ptflops' pytorch backend hooks modules *and* patches torch.nn.functional, so an nn.ReLU
    # or a pooling module is counted twice (module hook + the F.relu / F.*_pool it calls).
    if cat == "linear":
        return c.macs + c.bias
    if cat == "norm":
        return c.in_numel * (2 if c.params else 1)
    if cat == "act":
        return 2 * c.out_numel
    return 2 * c.in_numel if cat in _POOLS else 0


def _thop(cat: str, c: Cost) -> int:
    if cat == "linear":
        return c.macs
    if cat == "norm":
        return c.in_numel * (4 if c.params else 2)
    if cat == "adaptive_avg":
        return c.out_numel * (c.in_numel // max(c.out_numel, 1) + 1)
    return c.out_numel if cat == "avgpool" else 0


CONVENTIONS: dict[str, tuple[Rule, str]] = {
    "torchvision": (_torchvision, "multiply-accumulates of conv/linear weights, no bias "
                                  "(torchvision _ops, FlopCounterMode/2)"),
    "torchinfo": (_torchinfo, "torchinfo Mult-Adds: conv/linear MACs + bias, BN params"),
    "fvcore": (_fvcore, "fvcore: conv/linear MACs, BN 2 x numel, adaptive avg pool numel"),
    "ptflops": (_ptflops, "ptflops: conv/linear MACs + bias, BN 2 x numel, ReLU 2 x numel, "
                          "pooling 2 x input numel"),
    "thop": (_thop, "thop: conv/linear MACs, BN 4 x numel, avg pool out numel, adaptive avg "
                    "pool (k+1) x out"),
}
