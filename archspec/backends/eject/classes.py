"""Generated classes as data: a :class:`ClassDef` holds its members (the ops'
:class:`~archspec.ops.Module` call descriptions, references to other classes, sequentials and
holders) and its forward as :class:`Step` s; :class:`Param` marks a constructor parameter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archspec.lang.initializers import Init
from archspec.ops import Function, Learned, Module

Value = tuple[str, ...]
"""A value inside a class: ``("", name)`` for a forward argument, else the path of the member
whose call computes it."""


@dataclass(frozen=True)
class Param:
    """A constructor parameter standing where the instances of a merged class differ."""

    label: str


HOLE = Param("")  # where a constant sits in a class's skeleton


@dataclass(frozen=True)
class Ref:
    """Construction of generated class number ``cls`` with keyword arguments."""

    cls: int
    args: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Seq:
    """``nn.Sequential(*items)``."""

    items: tuple[Member, ...]


@dataclass(frozen=True)
class Holder:
    """``nn.Module()`` holding members that the enclosing class's forward calls itself."""

    members: tuple[tuple[str, Member], ...]


Member = Module | Learned | Ref | Seq | Holder


@dataclass(frozen=True)
class Step:
    """One forward statement, ``out = callee(*args)``: ``callee`` is a member path or a
    function; ``hint`` is what the statement's variable is named after. ``learned`` is the
    member path of a learnable tensor passed after ``args`` (:class:`Learned` ops)."""

    out: Value
    hint: str
    callee: tuple[str, ...] | Function
    args: tuple[Value, ...]
    learned: tuple[str, ...] | None = None
    module: Module | None = None


@dataclass(frozen=True)
class InitGroup:
    """One initialisation applied to the layers at ``paths``, in that order; with ``tensors``,
    to the learnable tensors at those paths (``parameter`` layers) rather than to modules."""

    paths: tuple[str, ...]
    init: Init
    tensors: bool = False


@dataclass(frozen=True)
class ClassDef:
    """A generated class: its members (attribute label -> what builds it), its forward, its
    result (output name -> value; a single one is returned bare), its constructor parameters
    (label, annotation) and, for the network, its weight initialisation and ``train``, the
    names in ``result`` returned in training mode only."""

    label: str
    doc: str
    members: tuple[tuple[str, Member], ...]
    inputs: tuple[str, ...]
    forward: tuple[Step, ...]
    result: tuple[tuple[str, Value], ...]
    params: tuple[tuple[str, str], ...] = ()
    inits: tuple[InitGroup, ...] = ()
    defaults: tuple[tuple[str, Any], ...] = ()  # parameter label -> default value
    train: tuple[str, ...] = ()
