"""Text (.arch) front end: lark LALR parser, newline post-lexer, syntax-error diagnostics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from archspec.diagnostics import error
from archspec.source import SourceFile, Span

_GRAMMAR = Path(__file__).with_name("grammar.lark")

# Newlines are dropped after these tokens (the statement obviously continues) ...
_CONTINUES = {"{", "->", ",", "(", "[", "=", ":", ";", None}
# ... and before these (the next line continues the statement).
_CONTINUED_BY = {"}", "->", "else", "shortcut", ")", "]"}

_READABLE = {
    "NAME": "a name", "TEMPLATE_NAME": "a name", "INT": "an integer", "FLOAT": "a number",
    "STRING": "a string", "SHAPE": "a shape like 3x224x224", "_NL": "a new line",
    "BINOP": "an operator", "MINUS": "`-`", "NOT": "`not`", "AND": "`and`", "OR": "`or`",
    "POW_OP": "`**`", "$END": "the end of the file",
}


class _NewlinePostLex:
    """Drops newline tokens where they cannot end a statement (inside brackets, after `->`...)."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        last: str | None = None
        pending: Token | None = None
        for tok in stream:
            if tok.type == "_NL":
                if depth == 0 and last not in _CONTINUES:
                    pending = pending or tok
                continue
            if pending is not None and tok.value not in _CONTINUED_BY:
                yield pending
            pending = None
            depth += tok.value in ("(", "[")
            depth -= tok.value in (")", "]") and depth > 0
            last = tok.value if tok.type != "_NL" else last
            yield tok


def build_lark(transformer: Transformer | None = None) -> Lark:
    """The LALR parser; with ``transformer``, rules are transformed as they are reduced (no
    intermediate tree), which is what makes 10,000-layer specs parse in well under a second."""
    return Lark(_GRAMMAR.read_text(), parser="lalr", lexer="basic", postlex=_NewlinePostLex(),
                maybe_placeholders=True, cache=True,
                transformer=transformer,
                start=["start", "expr", "chain", "stmt", "label", "output_item"])


def _expected(names: set[str], parser: Lark) -> str:
    shown = []
    for name in sorted(names):
        if name in _READABLE:
            text = _READABLE[name]
        else:
            try:
                pattern = parser.get_terminal(name).pattern.value
            except KeyError:
                pattern = name
            text = f"`{pattern}`"
        if text not in shown:
            shown.append(text)
    return ", ".join(shown[:12]) + (", ..." if len(shown) > 12 else "")


# An unexpected token is named in the message up to this many characters.
TOKEN_SHOWN = 40


def _short(value: str) -> str:
    return value if len(value) <= TOKEN_SHOWN else value[:TOKEN_SHOWN] + "..."


def syntax_error(exc: UnexpectedInput, source: SourceFile, parser: Lark) -> Exception:
    line = max(1, getattr(exc, "line", 1) or 1)
    col = max(1, getattr(exc, "column", 1) or 1)
    if isinstance(exc, UnexpectedCharacters):
        char = source.line(line)[col - 1:col] or "?"
        return error("E101", f"unexpected character `{char}`", Span(source, line, col, col + 1),
                     hint="statements are separated by new lines or `;`, layers chained with "
                          "`->`, and comments start with `#`")
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken)
                                          and exc.token.type == "$END"):
        last = source.last_line()
        end = len(source.line(last)) + 1
        return error("E102", "unexpected end of file", Span(source, last, end, end + 1),
                     hint=f"expected {_expected(set(exc.expected), parser)}")
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    value = str(tok.value)
    shown = "new line" if tok.type == "_NL" else f"`{_short(value)}`"
    width = 1 if tok.type == "_NL" else len(value)
    return error("E103", f"unexpected {shown}", Span(source, line, col, col + width),
                 hint=f"expected {_expected(set(exc.accepts or exc.expected), parser)}")
