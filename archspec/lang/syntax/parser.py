"""Text (.arch) front end: lark LALR parser, newline post-lexer, syntax-error diagnostics."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from archspec.lang.diagnostics import MAX_ERRORS, ArchspecError, error
from archspec.lang.source import SourceFile, Span

T = TypeVar("T")

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


# After a syntax error, parsing resumes at a line that starts a top-level statement: it begins
# with a name, outside any bracket, and the code line before it does not continue onto it.
_STARTS_STATEMENT = re.compile(r"[ \t]*[A-Za-z_]")
_CONTINUATION_WORDS = re.compile(r"[ \t]*(else|shortcut)\b")
_ENDS_UNFINISHED = ("->", ",", "=", ":", "(", "[", "{")
# Strings and comments are skipped when brackets are counted.
_CLOSING = {"(": ")", "[": "]", "{": "}"}
_BRACKET_SCAN = re.compile(r'"[^"\n]*"|#[^\n]*|[()\[\]{}]')


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


def resume_lines(source: SourceFile) -> list[int]:
    """The lines (1-based, ascending) where a top-level statement starts, found without parsing:
    outside brackets, beginning with a name, after a line that does not continue. A closing
    bracket that matches no opening one is ignored, so a stray one does not end a block early."""
    lines: list[int] = []
    open_brackets: list[str] = []
    continues = False
    for number, text in enumerate(source.text.split("\n"), 1):
        if (not open_brackets and not continues and _STARTS_STATEMENT.match(text)
                and not _CONTINUATION_WORDS.match(text)):
            lines.append(number)
        code_end = len(text)
        for match in _BRACKET_SCAN.finditer(text):
            char = match.group()[0]
            if char == "#":
                code_end = match.start()
            elif char in _CLOSING:
                open_brackets.append(_CLOSING[char])
            elif open_brackets and open_brackets[-1] == char:
                open_brackets.pop()
        code = text[:code_end].rstrip()
        if code:
            continues = code.endswith(_ENDS_UNFINISHED)
    return lines


def parse_reporting_all(source: SourceFile, parse_text: Callable[[str | None], T]) -> T:
    """``parse_text(None)`` (the whole of ``source``); on an error, raise it together with the
    errors of the later statements (see :func:`with_later_errors`)."""
    try:
        return parse_text(None)
    except ArchspecError as exc:
        raise with_later_errors(exc, source, parse_text) from None


def with_later_errors(first: ArchspecError, source: SourceFile,
                      parse_text: Callable[[str | None], object]) -> ArchspecError:
    """``first`` and the errors of the statements after it, up to :data:`MAX_ERRORS`.

    Each further error comes from parsing the file again from the next line where a top-level
    statement starts (earlier lines blanked, so lines and columns are kept): a statement is
    reported only when it is wrong on its own, not because of an earlier error.
    """
    diagnostics = list(first.diagnostics)
    starts = resume_lines(source)
    lines = source.text.split("\n")
    while len(diagnostics) < MAX_ERRORS:
        after = diagnostics[-1].span
        index = bisect_right(starts, after.line)
        if after.source is not source or index == len(starts):
            break
        start = starts[index]
        try:
            parse_text("\n" * (start - 1) + "\n".join(lines[start - 1:]))
            break
        except ArchspecError as exc:
            if exc.diagnostic.span.line < start:
                break
            diagnostics.extend(exc.diagnostics)
    return ArchspecError(diagnostics[:MAX_ERRORS])
