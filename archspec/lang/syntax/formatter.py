"""``archspec fmt``: one canonical layout for ``.arch`` text, comments and blank lines kept.

The formatter works on tokens (the parser's own lexer, with comments and whitespace kept),
never on the IR, so nothing the author wrote is lost. It keeps the author's line breaks and
changes only what is between tokens on a line and the indentation:

- four spaces per ``{ ... }`` body; a line inside ``(...)`` or ``[...]`` lines up after its
  opening bracket (or, when the bracket ends its line, one level deeper than that line); a
  line that continues a chain (``-> ...``) lines up with the chain's first element;
- one space around ``->``, binary operators, ``=`` between statements and typed defaults
  (``s: int = 1``), after ``,``, ``;`` and ``:``; none around ``=`` of a keyword argument,
  inside brackets, around ``.``, or after a unary ``-``;
- at most one blank line in a row, none at the start or end of the file or of a body;
- a trailing comment keeps its column when it is at least two spaces after the code, else it
  goes two spaces after it; a comment on its own line is indented as code there would be;
- lines end in ``\\n``, without trailing whitespace; the file ends with one.

The result is checked to parse to the same IR as the input (an internal error otherwise), and
formatting it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token

from archspec.lang import ir
from archspec.lang.source import SourceFile, Span
from archspec.lang.syntax.to_ir import parse

INDENT = 4
# Tokens after which a line break continues the statement (outside brackets).
_CONTINUING = {"->", ",", "=", ":"}
# Tokens after which a `-` is unary (with the operators and brackets).
_PREFIX_KEYWORDS = {"IF", "ELSE", "IN", "AND", "OR", "NOT", "REPEAT", "FOR"}
_OPERATORS = {"BINOP", "MINUS", "POW_OP", "AND", "OR", "NOT"}
# Tokens a `(` or `[` follows without a space (a call, an index, a second argument list).
_CALLABLE = {"NAME", "TEMPLATE_NAME", "CONCAT", "RPAR", "RSQB", "STRING"}
_NO_SPACE_BEFORE = {")", "]", ",", ";", ":", "."}
_NO_SPACE_AFTER = {"(", "[", "."}


@lru_cache(maxsize=1)
def _lexer() -> Lark:
    """The grammar's lexer without the newline post-lexer: comments and spaces are kept."""
    grammar = Path(__file__).with_name("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="basic", cache=True)


@dataclass
class _Bracket:
    """An open ``(``, ``[`` or label hole ``{``: where the lines inside it start."""

    char: str
    column: int | None  # the column after the bracket, when code follows it on its line
    indent: int  # the indent of the line it opened on


@dataclass
class _Line:
    """One source line: its tokens (no spaces, no newline) and its trailing comment."""

    tokens: list[Token] = field(default_factory=list)
    comment: Token | None = None

    @property
    def blank(self) -> bool:
        return not self.tokens and self.comment is None


def _lines(text: str) -> list[_Line]:
    lines = [_Line()]
    for tok in _lexer().lex(text, dont_ignore=True):
        if tok.type == "_NL":
            lines += [_Line() for _ in range(tok.value.count("\n"))]
        elif tok.type == "COMMENT":
            lines[-1].comment = tok
        elif tok.type != "WS":
            lines[-1].tokens.append(tok)
    return lines


def _keep(lines: list[_Line]) -> list[_Line]:
    """Blank lines: one at most in a row, none at the ends of the file or of a body."""
    kept: list[_Line] = []
    for i, line in enumerate(lines):
        if line.blank:
            after = next((n for n in lines[i + 1:] if not n.blank), None)
            if (not kept or kept[-1].blank or after is None
                    or (kept[-1].tokens and kept[-1].tokens[-1] == "{")
                    or (after.tokens and after.tokens[0] == "}")):
                continue
        kept.append(line)
    return kept


class _Layout:
    """The state carried from line to line: bodies, open brackets, the statement's start."""

    def __init__(self) -> None:
        self.depth = 0
        self.brackets: list[_Bracket] = []
        self.continues = False  # the last code line ended with a continuing token
        self.statement_indent = 0
        self.chain_column: int | None = None
        self.prev: Token | None = None
        self.spaced_eq = False  # the last `=` has spaces around it
        self.unary = False  # the last `-` is a sign

    def indent(self, first: Token | None) -> int:
        """The indent of a line that starts with ``first`` (None: a comment only)."""
        value = first.value if first is not None else None
        if self.brackets:
            top = self.brackets[-1]
            if value in (")", "]", "}") and top.char != "{":
                return top.column - 1 if top.column is not None else top.indent
            return top.column if top.column is not None else top.indent + INDENT
        if value == "}":
            return max(self.depth - 1, 0) * INDENT
        if self.continues or value == "->":
            chained = value == "->" or (self.prev is not None and self.prev.value == "->")
            if chained and self.chain_column is not None:
                return self.chain_column
            return self.statement_indent + INDENT
        return self.depth * INDENT

    def line(self, line: _Line) -> str:
        """``line`` formatted; the state moves past it."""
        tokens = line.tokens
        first = tokens[0] if tokens else None
        indent = self.indent(first)
        starts = first is not None and not self.brackets and not self.continues \
            and first.value != "->"
        if starts:
            self.statement_indent, self.chain_column = indent, None
        out = " " * indent
        for i, tok in enumerate(tokens):
            if i:
                out += self._space(tokens, i)
            out += tok.value
            self._advance(tok, len(out), i + 1 < len(tokens), indent)
            if starts and tok.value in (":", "=", "{") and not self.brackets:
                starts = False  # the chain starts after the first top-level `:` or `=`
                if tok.value != "{" and i + 1 < len(tokens):
                    self.chain_column = len(out) + 1
        if tokens:
            self.continues = not self.brackets and tokens[-1].value in _CONTINUING
        if line.comment is not None:
            comment = line.comment.value.rstrip()
            if tokens:
                out = out.ljust(max(line.comment.column - 1, len(out) + 2))
            out += comment
        return out.rstrip()

    def _advance(self, tok: Token, column: int, more: bool, indent: int) -> None:
        """Track brackets and bodies past ``tok``, which ends at ``column``."""
        value = tok.value
        if value in ("(", "["):
            self.brackets.append(_Bracket(value, column if more else None, indent))
        elif value == "{":
            if self.prev is not None and self.prev.value == ".":
                self.brackets.append(_Bracket("{", column if more else None, indent))
            else:
                self.depth += 1
        elif value in (")", "]") and self.brackets and self.brackets[-1].char != "{":
            self.brackets.pop()
        elif value == "}":
            if self.brackets and self.brackets[-1].char == "{":
                self.brackets.pop()
            else:
                self.depth = max(self.depth - 1, 0)
        if tok.type == "MINUS":
            self.unary = self.prev is None or _before_operand(self.prev)
        self.prev = tok

    def _space(self, tokens: list[Token], i: int) -> str:
        """What goes between ``tokens[i - 1]`` and ``tokens[i]`` (on one line)."""
        prev, value = tokens[i - 1], tokens[i].value
        if value in _NO_SPACE_BEFORE or prev.value in _NO_SPACE_AFTER:
            return ""
        hole = bool(self.brackets) and self.brackets[-1].char == "{"
        if (hole and (prev.value == "{" or value == "}")) or (prev.type == "MINUS"
                                                              and self.unary):
            return ""
        if value == "=":
            in_parens = bool(self.brackets) and self.brackets[-1].char == "("
            typed = i >= 2 and tokens[i - 2].value == ":"  # `s: int = 1`
            self.spaced_eq = not in_parens or typed
            return " " if self.spaced_eq else ""
        if prev.value == "=":
            return " " if self.spaced_eq else ""
        if value in ("(", "["):
            return "" if prev.type in _CALLABLE else " "
        return "" if prev.value == "{" and value == "}" else " "


def _before_operand(prev: Token) -> bool:
    """Whether a ``-`` after ``prev`` is a sign (unary) rather than a subtraction."""
    return (prev.type in _OPERATORS or prev.type in _PREFIX_KEYWORDS
            or prev.value in ("(", "[", ",", "=", ":", "->", "{", ";"))


def _format_tokens(lines: list[_Line]) -> str:
    layout = _Layout()
    return "\n".join("" if line.blank else layout.line(line) for line in lines) + "\n"


def _plain(obj: Any) -> Any:
    """What a parse means, without where it was: IR as data, spans dropped."""
    if isinstance(obj, ir.Node):
        return (type(obj).__name__, obj.model_dump())
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return None if isinstance(obj, Span) else obj


def format_source(source: SourceFile) -> str:
    """``source`` in the canonical layout. A file that does not parse raises its located
    :class:`~archspec.lang.diagnostics.ArchspecError` (every syntax error in it)."""
    before = _plain(parse(source))
    text = _format_tokens(_keep(_lines(source.text)))
    after = _plain(parse(SourceFile(source.name, text)))
    if after != before:
        raise RuntimeError(f"archspec fmt would change what {source.name} means; the file is "
                           "left as it is")
    return text
