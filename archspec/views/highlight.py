"""Syntax highlighting for ``.arch`` specs: a Pygments lexer, ``ArchLexer``.

Pygments finds it through the ``pygments.lexers`` entry point in pyproject.toml
(``pygmentize -l archspec spec.arch``, or any ``.arch`` file by name); nothing else in the
package imports this module, so ``archspec check`` never needs pygments.

The lexer follows ``archspec/lang/syntax/grammar.lark`` (docs/language.md). Token classes:

- ``Comment.Single``: ``# ...`` to the end of the line;
- ``String.Double``: ``"..."`` (no escapes, one line), import paths and init targets included;
- ``Number.Integer``, ``Number.Float`` (``0.5``, ``1.``, ``1e-3``), ``Number.Shape``
  (``3x224x224``, a subtype of ``Number``);
- ``Keyword.Namespace`` (``import``), ``Keyword.Declaration`` (``network``, ``block``,
  ``input``, ``output``, ``init``), ``Keyword`` (``repeat``, ``as``, ``for``, ``in`` of a
  ``for``, ``if``, ``else``, ``concat``, ``residual``, ``shortcut``, ``dense``),
  ``Keyword.Constant`` (``true``, ``false``, ``none``), ``Keyword.Type`` (a parameter's type);
- ``Operator.Word`` (``and``, ``or``, ``not``), ``Operator`` (``->``, ``=``, ``**``, ``//``,
  ``+ - * / %``, comparisons), ``Punctuation`` (``{ } ( ) [ ] : , ; .``);
- ``Name.Class``: a network's name; ``Name.Function``: a block's name where it is defined, an
  op or block call (the name before ``(``, or a bare layer word such as ``relu`` in a chain),
  an ``init`` target op kind and an init scheme; ``Name.Builtin``: the expression functions
  (``len``, ``max``, ...); ``Name.Builtin.Pseudo``: ``in``, the block's input;
- ``Name.Label``: a layer's label (``conv1:``, ``stage{i + 1}:``, ``blocks.{i}.attn:``,
  keywords included);
  ``Name.Variable``: a DAG statement's names (``y = ...``, ``a, b = ...``), parameters,
  inputs, outputs and loop variables; ``Name.Attribute``: a keyword argument's name
  (``stride=2``) and an attribute (``in.channels``); ``Name``: any other name in an expression.
"""

from __future__ import annotations

from typing import ClassVar

from pygments.lexer import RegexLexer, bygroups, default, include, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

__all__ = ["ArchLexer"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# A statement starts at a line's start or after `{` or `;` (labels and DAG targets sit there).
_START = r"(^[ \t]*|(?<=[{;])[ \t]*)"
# The braces of a templated label, `denselayer{i + 1}` (the grammar's TEMPLATE_NAME).
_TEMPLATE_TAIL = r"[^{}\n:]+\}(?:[A-Za-z0-9_]|\{[^{}\n:]+\})*[ \t]*:"
# A label that is a dotted path (`blocks.{i}.attn`, `stages.0`), segments of names, numbers
# and templates: one label token.
_SEGMENT = r"(?:[A-Za-z0-9_]|\{[^{}\n:]+\})+"
_DOTTED = _SEGMENT + r"(?:\." + _SEGMENT + r")+"

_KEYWORDS = ("repeat", "as", "for", "in", "if", "else", "concat", "residual", "shortcut",
             "dense")
_DECLARATIONS = ("network", "block", "input", "output", "init")
# `in` is a keyword only in `for ... in` (the "for" state); elsewhere it is the block's input.
_ROOT_KEYWORDS = tuple(k for k in _KEYWORDS if k != "in")
_BUILTINS = ("len", "range", "min", "max", "int", "float", "round", "abs", "sum", "bool", "str",
             "enumerate", "zip", "list", "ceil", "floor", "sqrt")

_Rules = list[tuple]


class ArchLexer(RegexLexer):
    """Lexer for archspec network specs (``.arch``)."""

    name = "archspec"
    aliases: ClassVar[list[str]] = ["archspec", "arch"]
    filenames: ClassVar[list[str]] = ["*.arch"]
    mimetypes: ClassVar[list[str]] = ["text/x-archspec"]

    tokens: ClassVar[dict[str, _Rules]] = {
        # Statement level: labels, DAG targets, declarations, chains of calls.
        "root": [
            (r"#[^\n]*", Comment.Single),
            (r"\n", Whitespace),
            (_START + r"(" + _DOTTED + r")([ \t]*)(:)",
             bygroups(Whitespace, Name.Label, Whitespace, Punctuation)),
            (_START + r"(" + _NAME + r")(\{)(?=" + _TEMPLATE_TAIL + r")",
             bygroups(Whitespace, Name.Label, Punctuation), "template"),
            (_START + r"(" + _NAME + r")([ \t]*)(:)",
             bygroups(Whitespace, Name.Label, Whitespace, Punctuation)),
            (_START + r"(" + _NAME + r")(?=\s*(?:,\s*" + _NAME + r"\s*)*=(?!=))",
             bygroups(Whitespace, Name.Variable), "targets"),
            (r"(import)\b", Keyword.Namespace),
            (r"(network)([ \t]+)(" + _NAME + r")([ \t]*)(\()",
             bygroups(Keyword.Declaration, Whitespace, Name.Class, Whitespace, Punctuation),
             "params"),
            (r"(network)([ \t]+)(" + _NAME + r")",
             bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (r"(block)([ \t]+)(" + _NAME + r")([ \t]*)(\()",
             bygroups(Keyword.Declaration, Whitespace, Name.Function, Whitespace, Punctuation),
             "params"),
            (r"(input)([ \t]+)(" + _NAME + r")",
             bygroups(Keyword.Declaration, Whitespace, Name.Variable)),
            (r"(output)\b", Keyword.Declaration, "output"),
            (words(_DECLARATIONS, suffix=r"\b"), Keyword.Declaration),
            (r"(for)\b", Keyword, "for"),
            (r"(repeat)\b", Keyword, "repeat"),
            (r"(if)\b", Keyword, "cond"),
            (words(_ROOT_KEYWORDS, suffix=r"\b"), Keyword),
            include("words"),
            (_NAME, Name.Function),
            (r"->", Operator),
            include("expr"),
            (r"[{}:;]", Punctuation),
        ],
        # `denselayer{` has been read: the expression in braces, more name, more braces.
        "template": [
            (r"(\})([A-Za-z0-9_]*)(\{)", bygroups(Punctuation, Name.Label, Punctuation)),
            (r"(\})([A-Za-z0-9_]*)", bygroups(Punctuation, Name.Label), "#pop"),
            include("expr"),
        ],
        # The names before a DAG statement's `=`.
        "targets": [
            (r"[ \t]+", Whitespace),
            (r"(,)(\s*)", bygroups(Punctuation, Whitespace)),
            (_NAME, Name.Variable),
            (r"=", Operator, "#pop"),
            default("#pop"),
        ],
        # A network's or block's parameters, after `(`: `name: type = default`.
        "params": [
            (r"\s+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r"(" + _NAME + r")(\s*)(:)(\s*)(" + _NAME + r")",
             bygroups(Name.Variable, Whitespace, Punctuation, Whitespace, Keyword.Type)),
            (_NAME, Name.Variable),
            (r"=", Operator, "default"),
            (r",", Punctuation),
            (r"\)", Punctuation, "#pop"),
        ],
        "default": [
            (r"\s+", Whitespace),
            include("expr"),
            default("#pop"),
        ],
        # `output a, b if cond`.
        "output": [
            (r"[ \t]+", Whitespace),
            (r"(,)(\s*)", bygroups(Punctuation, Whitespace)),
            (r"(if)\b", Keyword, "cond"),
            (_NAME, Name.Variable),
            default("#pop"),
        ],
        # `for a, b in expr {`.
        "for": [
            (r"[ \t]+", Whitespace),
            (r"(,)(\s*)", bygroups(Punctuation, Whitespace)),
            (r"(in)\b", Keyword, ("#pop", "cond")),
            (_NAME, Name.Variable),
            default("#pop"),
        ],
        # `repeat expr [as name]` then a call or a body.
        "repeat": [
            (r"(as)([ \t]+)(" + _NAME + r")", bygroups(Keyword, Whitespace, Name.Variable),
             "#pop"),
            include("words"),
            (words(_BUILTINS, suffix=r"\b(?=\s*\()"), Name.Builtin),
            (_NAME + r"(?=\s*\()", Name.Function, "#pop"),
            (_NAME + r"(?=[ \t]*(?:$|[;}#]|->))", Name.Function, "#pop"),
            include("expr"),
            default("#pop"),
        ],
        # An expression on the statement's line: after `if`, `shortcut if`, `for ... in`.
        "cond": [
            include("expr"),
            default("#pop"),
        ],
        # Inside `(...)` or `[...]`, where newlines do not end the statement.
        "args": [
            (r"\s+", Whitespace),
            (r"[)\]]", Punctuation, "#pop"),
            (r"(" + _NAME + r")(\s*)(=)(?!=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (r",", Punctuation),
            (r"->", Operator),
            include("expr"),
        ],
        "words": [
            (words(("true", "false", "none"), suffix=r"\b"), Keyword.Constant),
            (words(("and", "or", "not"), suffix=r"\b"), Operator.Word),
            (r"(in)\b", Name.Builtin.Pseudo),
            (words(("if", "else"), suffix=r"\b"), Keyword),
        ],
        # Expression tokens shared by every state; no newline, `,`, `)`, `]`, `{`, `}`, `:`.
        "expr": [
            (r"[ \t\f\r]+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            (r"[0-9]+(?:x[0-9]+)+", Number.Shape),
            (r"[0-9]+\.(?![A-Za-z_])[0-9]*(?:[eE][-+]?[0-9]+)?", Number.Float),
            (r"[0-9]+[eE][-+]?[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            include("words"),
            (r"(\.)(" + _NAME + r")", bygroups(Punctuation, Name.Attribute)),
            (r"(\.)([0-9]+)", bygroups(Punctuation, Number.Integer)),
            (words(_BUILTINS, suffix=r"\b(?=\s*\()"), Name.Builtin),
            (_NAME + r"(?=\s*\()", Name.Function),
            (_NAME, Name),
            (r"\*\*|//|==|!=|<=|>=|[-+*/%<>=]", Operator),
            (r"[(\[]", Punctuation, "args"),
        ],
    }

