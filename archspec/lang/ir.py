"""The intermediate representation: frozen pydantic models, one per construct of the language.

The text (.arch) and YAML forms both build these. Every node carries a ``span`` into the file it
came from; spans are excluded from dumps and comparisons, so ``a.model_dump() == b.model_dump()``
means "the same spec" whichever form or file it was written in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field

from archspec.lang.source import NOWHERE, Span

Scalar = int | float | bool | str | None

# Binding strength of operators, loosest first (as in Python); parser and printer share it.
PRECEDENCE = {"or": 1, "and": 2, "not": 3, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
              "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "%": 6, "**": 8}


class Node(BaseModel):
    """Base of every IR node: frozen, no unknown fields, a source span that never compares.

    The models' validators are built when first used (``defer_build``): the text form builds
    its nodes with :meth:`made`, so that `archspec check` of a .arch file never builds them;
    the YAML form validates, and so builds them."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True,
                              defer_build=True)
    span: Span = Field(default=NOWHERE, exclude=True, repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(repr(self.model_dump()))

    @classmethod
    def made(cls: type[N], **values: Any) -> N:
        """The node of ``values`` that the parser built with the fields' own types (tuples,
        nodes, str, scalars), not validated: what ``cls(**values)`` gives for them, as
        pydantic's ``model_construct`` makes it, with the field layout read once per class."""
        layout = _LAYOUTS.get(cls) or _layout(cls)
        if not values.keys() <= layout.keys():
            raise TypeError(f"{cls.__name__} has no field {sorted(values.keys() - layout.keys())}")
        fields = {name: values[name] if name in values else
                  (default() if factory else default)
                  for name, (default, factory) in layout.items()}
        node = cls.__new__(cls)
        object.__setattr__(node, "__dict__", fields)
        object.__setattr__(node, "__pydantic_fields_set__", set(values))
        object.__setattr__(node, "__pydantic_extra__", None)
        object.__setattr__(node, "__pydantic_private__", None)
        return node


N = TypeVar("N", bound=Node)
_LAYOUTS: dict[type, dict[str, tuple[Any, bool]]] = {}


def _layout(cls: type[Node]) -> dict[str, tuple[Any, bool]]:
    """Each field of ``cls`` in order, with its default (or default factory, and True)."""
    layout = {}
    for name, info in cls.model_fields.items():
        if info.default_factory is not None:
            layout[name] = (info.default_factory, True)
        elif info.is_required():
            layout[name] = (_required(cls, name), True)
        else:
            layout[name] = (info.default, False)
    _LAYOUTS[cls] = layout
    return layout


def _required(cls: type[Node], name: str) -> Any:
    """A factory that refuses to make a required field's value (a bug in the caller)."""
    def missing() -> Any:
        raise TypeError(f"{cls.__name__} needs `{name}`")
    return missing


# ----------------------------------------------------------------------------- expressions


class Lit(Node):
    """A literal: int, float, bool, string or none."""

    t: Literal["lit"] = "lit"
    value: Scalar


class Var(Node):
    """A name: a network or block parameter, a loop variable or a bound layer output."""

    t: Literal["var"] = "var"
    name: str


class InRef(Node):
    """``in``: the inferred input of the enclosing block; ``in.channels`` reads its shape."""

    t: Literal["in"] = "in"


class GetAttr(Node):
    t: Literal["getattr"] = "getattr"
    obj: Expr
    name: str


class GetItem(Node):
    t: Literal["getitem"] = "getitem"
    obj: Expr
    index: Expr


class FuncCall(Node):
    """A call of a built-in function inside an expression: ``len(cfg)``, ``range(n)``..."""

    t: Literal["fcall"] = "fcall"
    func: str
    args: tuple[Expr, ...] = ()


class BinOp(Node):
    """Arithmetic, comparison and boolean operators (``and``/``or`` short-circuit)."""

    t: Literal["binop"] = "binop"
    op: str
    left: Expr
    right: Expr


class Neg(Node):
    t: Literal["neg"] = "neg"
    operand: Expr


class Not(Node):
    t: Literal["not"] = "not"
    operand: Expr


class Cond(Node):
    """``then if cond else other``."""

    t: Literal["cond"] = "cond"
    cond: Expr
    then: Expr
    other: Expr


class ListExpr(Node):
    t: Literal["list"] = "list"
    items: tuple[Expr, ...] = ()
    tuple_: bool = False


Expr = Annotated[
    Lit | Var | InRef | GetAttr | GetItem | FuncCall | BinOp | Neg | Not | Cond | ListExpr,
    Field(discriminator="t"),
]

# ----------------------------------------------------------------------------- structure


class Arg(Node):
    """One argument of a call: positional when ``name`` is None."""

    name: str | None = None
    value: Expr


class Label(Node):
    """A statement's name. ``parts`` alternate text and ``{expr}`` holes (``denselayer{i+1}``);
    a dot in the text separates the segments of a path (``convs.0``, ``convs.{i}``)."""

    parts: tuple[str | Expr, ...]

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else "{...}" for p in self.parts)


class LayerCall(Node):
    """``name(args)`` applying an op or a block; ``inputs`` names DAG inputs (``(a, b)``)."""

    t: Literal["call"] = "call"
    callee: str
    args: tuple[Arg, ...] = ()
    inputs: tuple[str, ...] | None = None
    input_spans: tuple[Span, ...] = Field(default=(), exclude=True, repr=False)


class Repeat(Node):
    """``repeat count [as var] body``: the body spliced ``count`` times, ``var`` = 0..count-1."""

    t: Literal["repeat"] = "repeat"
    count: Expr
    var: str | None = None
    body: tuple[Stmt, ...]


class Concat(Node):
    """``concat { branches }``: every branch sees the same input; outputs joined on channels."""

    t: Literal["concat"] = "concat"
    args: tuple[Arg, ...] = ()
    body: tuple[Stmt, ...]


class Residual(Node):
    """``residual { body } shortcut if cond { proj }``: body(x) + shortcut(x), identity default."""

    t: Literal["residual"] = "residual"
    body: tuple[Stmt, ...]
    shortcut: tuple[Stmt, ...] | None = None
    shortcut_if: Expr | None = None


class Dense(Node):
    """``dense { layers }``: each layer sees concat(input, all earlier outputs); output is all."""

    t: Literal["dense"] = "dense"
    body: tuple[Stmt, ...]


class Group(Node):
    """``{ ... }``: a plain sub-sequence, usually labelled (``features: { ... }``)."""

    t: Literal["group"] = "group"
    body: tuple[Stmt, ...]


Element = Annotated[LayerCall | Repeat | Concat | Residual | Dense | Group,
                    Field(discriminator="t")]


class Chain(Node):
    """``label: a -> b -> c`` or ``target = a -> b`` or a bare chain; the statement form.
    ``a, b = chunk(2)(x)`` binds one name per result: ``a`` is the label, ``more`` the rest."""

    t: Literal["chain"] = "chain"
    label: Label | None = None
    assign: bool = False
    more: tuple[str, ...] = ()
    elements: tuple[Element, ...]


class For(Node):
    """``for a, b in expr { body }``: the body spliced once per item."""

    t: Literal["for"] = "for"
    vars: tuple[str, ...]
    iterable: Expr
    body: tuple[Stmt, ...]


class If(Node):
    """``if cond { body } else { other }``."""

    t: Literal["if"] = "if"
    cond: Expr
    then: tuple[Stmt, ...]
    other: tuple[Stmt, ...] | None = None


Stmt = Annotated[Chain | For | If, Field(discriminator="t")]

# ----------------------------------------------------------------------------- top level


PARAM_TYPES = ("int", "float", "bool", "str", "list", "any")


class Param(Node):
    """A network or block parameter: ``name: type = default`` (type one of PARAM_TYPES,
    checked by the loader so that a wrong one is a located error)."""

    name: str
    type: str = "any"
    default: Expr | None = None


class InputDecl(Node):
    """``input x: 3x224x224``: a graph input and its per-sample shape (no batch)."""

    name: str
    shape: tuple[Expr, ...]


class OutputDecl(Node):
    """``output aux if aux``: a value the network returns, when ``cond`` (over the network's
    parameters) holds or is absent. ``train`` (``output logits, train aux``): returned in
    training mode only; the eval forward, which the analysis counts and ONNX exports, leaves
    it and the layers that only it reads out."""

    name: str
    cond: Expr | None = None
    train: bool = False


class InitRule(Node):
    """``init conv2d: kaiming_normal(mode="fan_out", bias=0)``: how the torch backend
    initialises the weights (and, with ``bias=``, the biases) of every layer of an op kind, or
    (``init "classifier.1": ...``) of the layers whose path matches a dotted path or an
    fnmatch pattern. When several rules match a layer, the last one wins. A rule with ``cond``
    (``init "AuxLogits.fc" if aux_logits: ...``) applies only when it holds."""

    op: str
    scheme: LayerCall
    cond: Expr | None = None


class BlockDef(Node):
    """``block name(params) { body }``: a reusable, parameterised sub-network. ``inputs``
    names the inputs of a block that reads several (``block fuse(c: int)(a, b) { ... }``,
    called ``fuse(8)(x, y)``); empty, the block reads one, ``in``. ``inits`` are the ``init``
    rules written in the body: they target the block's own layers (an op kind, or a path
    relative to the block) and apply as soon as each call of the block is built, as a PyTorch
    module's constructor initialises its submodules."""

    name: str
    params: tuple[Param, ...] = ()
    inputs: tuple[str, ...] = ()
    body: tuple[Stmt, ...]
    inits: tuple[InitRule, ...] = ()


class Spec(Node):
    """A whole spec file. ``library`` holds blocks brought in by ``import`` (not dumped)."""

    name: str
    params: tuple[Param, ...] = ()
    imports: tuple[str, ...] = ()
    inputs: tuple[InputDecl, ...]
    outputs: tuple[OutputDecl, ...] = ()
    inits: tuple[InitRule, ...] = ()
    blocks: tuple[BlockDef, ...] = ()
    body: tuple[Stmt, ...]
    library: dict[str, BlockDef] = Field(default_factory=dict, exclude=True, repr=False)
    overrides: dict[str, Any] = Field(default_factory=dict)

    def all_blocks(self) -> dict[str, BlockDef]:
        """Blocks visible to the body: imported ones, shadowed by the file's own."""
        return {**self.library, **{b.name: b for b in self.blocks}}


def ref_name(e: Any) -> str | None:
    """The DAG input an expression names, as text: a name (``x``), ``in``, a dotted layer path
    (``backbone.4.0``) or ``each(name)`` (every value a name was assigned, in order); None for
    any other expression. ``LayerCall.inputs`` hold these texts."""
    if isinstance(e, Var):
        return e.name
    if isinstance(e, InRef):
        return "in"
    if isinstance(e, GetAttr):
        head = ref_name(e.obj)
        return None if head is None or head == "in" or head.startswith("each(") \
            else f"{head}.{e.name}"
    if isinstance(e, FuncCall) and e.func == "each" and len(e.args) == 1 \
            and isinstance(e.args[0], Var):
        return f"each({e.args[0].name})"
    return None


T = TypeVar("T")


def members(union: Any) -> frozenset[type]:
    """The node classes of an annotated IR union (``Element``, ``Stmt``, ``Expr``)."""
    return frozenset(get_args(get_args(union)[0]))


def rule_for(table: Mapping[type, T], node: Any, what: str) -> T:
    """The rule of ``table`` for ``node``'s class; an unknown class is a bug and fails loudly
    (tests check that every dispatch table covers every member of its union)."""
    try:
        return table[type(node)]
    except KeyError:
        raise TypeError(f"no {what} rule for IR node {type(node).__name__}") from None
