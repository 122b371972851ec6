"""ONNX subgraphs that several ops' lowerings share: a roll, a linear layer over the last dim,
a reshape, a transpose and an L2 normalisation, each written with the lowering's builder ``b``
(``b.node``, ``b.const``, ``b.param``, ``b.tmp``) and returning the name of its output."""

from __future__ import annotations

from typing import Any


def roll(b: Any, x: str, key: str, shifts: tuple[int, int], sizes: tuple[int, int]) -> str:
    """``torch.roll(x, shifts, dims=(1, 2))`` as a Slice and Concat per shifted axis."""
    for axis, shift, size in zip((1, 2), shifts, sizes):
        cut = (-shift) % size
        if shift % size == 0:
            continue
        parts = []
        for part, (start, end) in (("tail", (cut, size)), ("head", (0, cut))):
            name = b.tmp(f"{key}_{axis}_{part}")
            b.node("Slice", [x, b.const(f"{key}_{axis}_{part}_start", [start], "int64"),
                             b.const(f"{key}_{axis}_{part}_end", [end], "int64"),
                             b.const(f"{key}_{axis}_axis", [axis], "int64")], [name])
            parts.append(name)
        x = b.tmp(f"{key}_{axis}")
        b.node("Concat", parts, [x], axis=axis)
    return x


def linear(b: Any, x: str, key: str, bias: str | None) -> str:
    """``x @ weight.T (+ bias)`` over the last dim, the weight the state_dict entry
    ``{key}.weight`` of the current layer."""
    b.node("Transpose", [b.param(f"{key}.weight")], [b.tmp(f"{key}_wt")], perm=[1, 0])
    out = b.tmp(f"{key}_out")
    b.node("MatMul", [x, b.tmp(f"{key}_wt")], [out if bias is None else b.tmp(f"{key}_mm")])
    if bias is not None:
        b.node("Add", [b.tmp(f"{key}_mm"), bias], [out])
    return out


def reshape(b: Any, x: str, key: str, shape: list[int]) -> str:
    b.node("Reshape", [x, b.const(f"{key}_shape", shape, "int64")], [b.tmp(key)])
    return b.tmp(key)


def transpose(b: Any, x: str, key: str, perm: list[int]) -> str:
    b.node("Transpose", [x], [b.tmp(key)], perm=perm)
    return b.tmp(key)


def l2_normalize(b: Any, x: str, key: str) -> str:
    """``F.normalize(x, dim=-1)``: x / max(||x||, 1e-12); ReduceL2's axes an attribute up to
    opset 17, an input from 18."""
    norm = b.tmp(f"{key}_norm")
    if b.opset >= 18:
        b.node("ReduceL2", [x, b.const(f"{key}_axes", [-1], "int64")], [norm], keepdims=1)
    else:
        b.node("ReduceL2", [x], [norm], axes=[-1], keepdims=1)
    b.node("Max", [norm, b.const(f"{key}_eps", 1e-12)], [b.tmp(f"{key}_clamped")])
    b.node("Div", [x, b.tmp(f"{key}_clamped")], [b.tmp(key)])
    return b.tmp(key)
