"""Network parameters as constructor arguments: the spec's parameters that only change layer
arguments, found by building the spec again with other values (at most
:data:`MAX_PROBED_PARAMS` of them), become parameters of the network class with the spec's
values as defaults, passed on to the classes only it builds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from archspec.backends.eject.classes import ClassDef, Holder, Param, Ref, Seq
from archspec.backends.eject.merging import annotation, map_constants, skeleton, tupled, value_key
from archspec.backends.eject.planner import Ejector
from archspec.lang import ir
from archspec.lang.diagnostics import ArchspecError
from archspec.lang.expander import expand
from archspec.lang.network import Graph

# Network parameters probed for constructor arguments (each probe builds the network again):
# beyond this many, the rest keep the spec's values, so that eject time stays bounded.
MAX_PROBED_PARAMS = 16


def _probes(value: Any) -> tuple[Any, ...]:
    """Other values to try for a network parameter whose value is ``value``: nearby numbers
    (a bool, string or list is not probed: it rarely only changes layer arguments)."""
    if isinstance(value, bool):
        return ()
    if isinstance(value, int):
        return (value + 1, value + 2)
    if isinstance(value, float):
        return (value / 2, (value + 1) / 2) if value else (0.5,)
    return ()


def _probe(spec: ir.Spec, name: str, value: Any) -> list[ClassDef] | None:
    """The classes of ``spec`` with parameter ``name`` set to ``value``, or None when that
    value is not valid for the spec."""
    from archspec.lang.syntax.loader import with_overrides

    try:
        probed = with_overrides(spec, {name: value})
        return Ejector(expand(probed), probed.inits).run()
    except ArchspecError:
        return None


Slots = dict[tuple[int, int], str]  # (class index, constant position) -> network parameter


def parameter_slots(spec: ir.Spec, graph: Graph, classes: list[ClassDef]) -> Slots:
    """Network parameters that only change constructor arguments: (class index, position in
    :func:`skeleton` order) -> parameter name.

    A parameter qualifies when the spec, built again with another value of it, gives the same
    classes up to constants, and each constant that changed equals the parameter's value in
    both builds (``linear(num_classes)``, an inferred ``in_channels`` equal to a ``channels``
    parameter), in the network class or in classes only the network class builds. Anything
    else (a repeat count, a width scaled by a factor, a value inside a class other classes
    build) keeps the spec's value in the code, as do the parameters after the first
    :data:`MAX_PROBED_PARAMS` numbers."""
    slots: Slots = {}
    numbers = [(n, v) for n, v in graph.params.items() if _probes(v)]
    for name, value in numbers[:MAX_PROBED_PARAMS]:
        for probe in _probes(value):
            other = _probe(spec, name, probe)
            if other is None:
                continue
            found = _changed(classes, other, (value, probe))
            if found and not set(found) & set(slots) and _reachable(classes, found, name):
                slots.update(dict.fromkeys(found, name))
            break
    return slots


def _changed(classes: list[ClassDef], other: list[ClassDef],
             pair: tuple[Any, Any]) -> list[tuple[int, int]]:
    """(class, position) of the constants that went from ``pair[0]`` to ``pair[1]``; none
    when anything else differs between ``classes`` and ``other``."""
    if len(classes) != len(other):
        return []
    before, after = value_key(pair[0]), value_key(pair[1])
    found = []
    for index, (mine, theirs) in enumerate(zip(classes, other, strict=True)):
        shape, values, _ = skeleton(mine)
        other_shape, other_values, _ = skeleton(theirs)
        if shape != other_shape:
            return []
        for i, (a, b) in enumerate(zip(values, other_values, strict=True)):
            if value_key(a) == value_key(b):
                continue
            if (value_key(tupled(a)), value_key(tupled(b))) != (before, after):
                return []
            found.append((index, i))
    return found


def _refs(obj: Any) -> Iterator[int]:
    """The class numbers ``obj`` (a class or one of its members) builds directly."""
    if isinstance(obj, Ref):
        yield obj.cls
    elif isinstance(obj, Seq):
        for item in obj.items:
            yield from _refs(item)
    elif isinstance(obj, Holder | ClassDef):
        for _, member in obj.members:
            yield from _refs(member)


def _reachable(classes: list[ClassDef], found: list[tuple[int, int]], name: str) -> bool:
    """Whether the network class can pass parameter ``name`` to every class in ``found``:
    only it builds them, and ``name`` is not already one of their parameters."""
    last = len(classes) - 1
    inner = {c for c, _ in found if c != last}
    built_elsewhere = {r for c in classes[:-1] for r in _refs(c)}
    return not inner & built_elsewhere and all(
        name not in dict(classes[c].params) for c in inner)


def _fill(cls: ClassDef, slots: dict[int, str]) -> ClassDef:
    """``cls`` with the constants at ``slots`` replaced by parameters of those names."""
    shape, values, _ = skeleton(cls)
    filled = iter([Param(slots[i]) if i in slots else v for i, v in enumerate(values)])
    return replace(shape, members=map_constants(shape, lambda v, n: next(filled)).members)


def _pass(obj: Any, cls: int, names: list[str]) -> Any:
    """``obj`` with each construction of class ``cls`` passing ``names`` on as arguments."""
    if isinstance(obj, Ref) and obj.cls == cls:
        return replace(obj, args=(*obj.args, *((n, Param(n)) for n in names)))
    if isinstance(obj, Seq):
        return Seq(tuple(_pass(item, cls, names) for item in obj.items))
    if isinstance(obj, Holder):
        return Holder(tuple((label, _pass(m, cls, names)) for label, m in obj.members))
    return obj


def with_network_params(spec: ir.Spec, graph: Graph,
                        classes: list[ClassDef]) -> list[ClassDef]:
    """``classes`` with the parameters of :func:`parameter_slots` as constructor arguments:
    the network class's with the spec's values as defaults, the classes it builds receiving
    them from it."""
    slots = parameter_slots(spec, graph, classes)
    if not slots:
        return classes
    out = list(classes)
    last = len(out) - 1
    # The network's own constants first: passing arguments on adds constants to it.
    for index in sorted({c for c, _ in slots}, key=lambda c: c != last):
        names = {i: n for (c, i), n in slots.items() if c == index}
        out[index] = _fill(out[index], names)
        if index == last:
            continue
        order = [n for n in graph.params if n in names.values()]
        out[index] = replace(out[index], params=(*out[index].params, *(
            (n, annotation((graph.params[n],))) for n in order)))
        out[last] = replace(out[last],
                            members=_pass(Holder(out[last].members), index, order).members)
    names = [n for n in graph.params if n in slots.values()]
    out[last] = replace(out[last], params=tuple(
        (n, annotation((graph.params[n],))) for n in names),
        defaults=tuple((n, graph.params[n]) for n in names))
    return out
