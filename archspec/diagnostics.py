"""The one diagnostic type, the one exception and the one renderer.

Every error or warning a user can cause is a :class:`Diagnostic` with a span into their file.
Rendered form::

    specs/bad.arch:12:5: error[E201]: unknown op or block `conv2` in `stem`
       |
    12 |     conv2(64, 3)
       |     ^^^^^
       = hint: did you mean `conv2d`?
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from archspec.source import NOWHERE, Span


@dataclass(frozen=True)
class Diagnostic:
    """One located message. ``code`` is stable (``E###`` errors, ``W###`` warnings)."""

    code: str
    message: str
    span: Span = NOWHERE
    hint: str | None = None
    severity: str = "error"
    notes: tuple[tuple[str, Span], ...] = ()

    def render(self) -> str:
        """The canonical text form: location, message, quoted line with caret, hint."""
        return render(self)


class ArchspecError(Exception):
    """Raised for anything wrong with a user's spec; carries one or more diagnostics."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]) -> None:
        diags = (diagnostics,) if isinstance(diagnostics, Diagnostic) else tuple(diagnostics)
        self.diagnostics: tuple[Diagnostic, ...] = diags
        super().__init__("\n".join(d.render() for d in diags))

    @property
    def diagnostic(self) -> Diagnostic:
        return self.diagnostics[0]


def error(code: str, message: str, span: Span = NOWHERE, hint: str | None = None,
          notes: tuple[tuple[str, Span], ...] = ()) -> ArchspecError:
    """Build (not raise) an :class:`ArchspecError` with a single diagnostic."""
    return ArchspecError(Diagnostic(code, message, span, hint, "error", notes))


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate to ``name``, or ``None`` when nothing is close."""
    import difflib  # only on the error path: keeps `archspec check` start-up lean

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _quote(span: Span, gutter: int) -> list[str]:
    text = span.source.line(span.line)
    if not text and span.source.text == "":
        return []
    pad = " " * gutter
    end = span.end_col if span.end_col and span.end_col > span.col else span.col + 1
    caret = " " * (span.col - 1) + "^" * max(1, min(end, len(text) + 1) - span.col)
    return [f"{pad} |", f"{span.line:>{gutter}} | {text}", f"{pad} | {caret}"]


def render(diag: Diagnostic) -> str:
    """Render ``diag`` as ``file:line:col: severity[code]: message`` plus a caret excerpt."""
    span = diag.span
    gutter = len(str(max([span.line] + [s.line for _, s in diag.notes])))
    lines = [f"{span}: {diag.severity}[{diag.code}]: {diag.message}"]
    lines += _quote(span, gutter)
    for note, nspan in diag.notes:
        lines.append(f"{nspan}: note: {note}")
        lines += _quote(nspan, gutter)
    if diag.hint:
        lines.append(f"{' ' * gutter} = hint: {diag.hint}")
    return "\n".join(lines)
