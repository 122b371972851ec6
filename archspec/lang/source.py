"""Source files and spans: every IR node and every diagnostic points into one of these."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SourceFile:
    """The text of one spec file, kept so diagnostics can quote the offending line."""

    name: str
    text: str
    _lines: list[str] = field(default_factory=list, compare=False, repr=False)

    def line(self, number: int) -> str:
        """Return line ``number`` (1-based) without its newline, or '' if out of range.

        Lines end at ``\\n`` only (a ``\\r`` before it is dropped), as the lexer counts them:
        a form feed, a lone ``\\r`` or U+2028 inside a comment does not start a line.
        """
        if not self._lines:
            self._lines.extend(ln.removesuffix("\r") for ln in self.text.split("\n"))
        if 1 <= number <= len(self._lines):
            return self._lines[number - 1]
        return ""

    def last_line(self) -> int:
        """The number of the last line that is not empty (1 for an empty file)."""
        return self.text.rstrip("\r\n").count("\n") + 1


@dataclass(frozen=True)
class Span:
    """A region of a source file: 1-based line and column, end column exclusive on ``line``."""

    source: SourceFile
    line: int
    col: int
    end_col: int | None = None

    @property
    def file(self) -> str:
        return self.source.name

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


def display_name(path: Path) -> str:
    """A path as the user would write it: relative to the working directory when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


UNKNOWN = SourceFile("<unknown>", "")
NOWHERE = Span(UNKNOWN, 1, 1)
