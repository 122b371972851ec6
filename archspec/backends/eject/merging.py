"""The constants of generated classes: visiting them (:func:`map_constants`), taking them out
(:func:`skeleton`), and merging classes equal up to them into one class whose constructor
takes the constants that differ (:func:`merge`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Any

from archspec.backends.eject.classes import HOLE, ClassDef, Holder, Member, Param, Ref, Seq
from archspec.backends.naming import Namespace
from archspec.backends.torch import resolve
from archspec.ops import Learned, Module

Visit = Callable[[Any, str], Any]  # (constant, the name of the argument it is) -> replacement


@cache
def _positional_names(target: str) -> tuple[str, ...]:
    """The positional parameter names of the class a :class:`Module` target names."""
    try:
        signature = inspect.signature(resolve(target))
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in signature.parameters.values() if p.kind in kinds)


def _map_pairs(pairs: tuple[tuple[str, Any], ...], fn: Visit) -> tuple[tuple[str, Any], ...]:
    return tuple((k, fn(v, k)) for k, v in pairs)


def _map_members(members: tuple[tuple[str, Member], ...],
                 fn: Visit) -> tuple[tuple[str, Member], ...]:
    return tuple((label, map_constants(m, fn)) for label, m in members)


def map_constants(obj: Any, fn: Visit) -> Any:
    """``obj`` (a class or one of its parts) with each constructor argument replaced by
    ``fn(value, name)``, visited in a fixed order. Forward function arguments are structure,
    not constants: the forward cannot see constructor parameters."""
    if isinstance(obj, Module):
        names = _positional_names(obj.target)
        args = tuple(fn(a, names[i] if i < len(names) else f"arg{i}")
                     for i, a in enumerate(obj.args))
        return replace(obj, args=args, kwargs=_map_pairs(obj.kwargs, fn))
    if isinstance(obj, Learned):
        return replace(obj, factory=map_constants(obj.factory, fn))
    if isinstance(obj, Ref):
        return replace(obj, args=_map_pairs(obj.args, fn))
    if isinstance(obj, Seq):
        return Seq(tuple(map_constants(item, fn) for item in obj.items))
    if isinstance(obj, Holder):
        return Holder(_map_members(obj.members, fn))
    if isinstance(obj, ClassDef):
        return replace(obj, members=_map_members(obj.members, fn))
    return obj


def skeleton(cls: ClassDef) -> tuple[ClassDef, list[Any], list[str]]:
    """``cls`` with its constants taken out, the constants, and the argument name of each."""
    values: list[Any] = []
    names: list[str] = []

    def take(value: Any, name: str) -> Param:
        values.append(value)
        names.append(name)
        return HOLE

    return map_constants(cls, take), values, names


def value_key(value: Any) -> tuple[str, str]:
    """Equality that tells ``1``, ``1.0`` and ``True`` apart."""
    return type(value).__name__, repr(value)


def tupled(value: Any) -> Any:
    """Lists as tuples, at any depth: a spec's ``(3, 5)`` is a list until an op takes it."""
    return tuple(map(tupled, value)) if isinstance(value, (list, tuple)) else value


def annotation(column: tuple[Any, ...]) -> str:
    names = sorted({"None" if v is None else type(v).__name__ for v in column})
    return "float" if names == ["float", "int"] else " | ".join(names)


NameParam = Callable[[tuple[Any, ...], str, Namespace], str]


def merge(instances: list[ClassDef], name_param: NameParam) -> tuple[ClassDef, list[Ref]]:
    """One class for ``instances`` (equal up to constants), and each instance's constructor
    arguments (``cls`` is left 0). A constant that differs between instances becomes a
    parameter, named by ``name_param(column of values, argument name, namespace)``; equal
    columns share one parameter."""
    shape, _, names = skeleton(instances[0])
    columns = list(zip(*(skeleton(c)[1] for c in instances), strict=True))
    taken = Namespace()
    params: dict[tuple[tuple[str, str], ...], tuple[str, int]] = {}  # column -> label, index
    fill: list[Any] = []
    for i, (column, name) in enumerate(zip(columns, names, strict=True)):
        keys = tuple(value_key(v) for v in column)
        if len(set(keys)) == 1:
            fill.append(column[0])
            continue
        if keys not in params:
            params[keys] = (name_param(column, name, taken), i)
        fill.append(Param(params[keys][0]))
    filled = iter(fill)
    merged = replace(map_constants(shape, lambda value, name: next(filled)),
                     params=tuple((label, annotation(columns[i])) for label, i in
                                  params.values()))
    refs = [Ref(0, tuple((label, columns[i][n]) for label, i in params.values()))
            for n in range(len(instances))]
    return merged, refs
