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

# Every code a user can see, once, with its title: `archspec errors` and docs/errors.md come
# from this table, and a Diagnostic with a code missing here is a bug (it raises).
CODES: dict[str, str] = {
    "E001": "no such file",
    "E002": "the file cannot be read (a directory, no permission)",
    "E003": "the file is not UTF-8 text",
    "E004": "the file is empty",
    "E101": "syntax: unexpected character",
    "E102": "syntax: unexpected end of file",
    "E103": "syntax: unexpected token",
    "E104": "invalid YAML",
    "E110": "more than one `network` line",
    "E111": "no `input`: a file of blocks only is not a network",
    "E112": "import cycle",
    "E113": "unknown parameter type",
    "E114": "a block, input, parameter or init rule defined twice",
    "E116": "bad initialisation scheme or argument",
    "E117": "an `init` rule that matches no layer",
    "E120": "an override names no network parameter",
    "E121": "a network parameter without default or value",
    "E130": "a bad input shape",
    "E131": "an override names no input",
    "E150": "bad YAML structure",
    "E201": "unknown op or block",
    "E210": "unknown output",
    "E211": "a DAG input that is not a name",
    "E212": "unknown layer or input",
    "E213": "duplicate layer name",
    "E214": "wrong number of inputs for an op",
    "E215": "results and names of a multi-result op do not match",
    "E216": "a block called on several inputs",
    "E220": "`concat` without branches",
    "E231": "too many positional arguments",
    "E232": "an argument given twice",
    "E233": "unknown argument",
    "E234": "missing argument",
    "E235": "bad argument value",
    "E240": "a block that calls itself",
    "E301": "shapes that the op cannot take",
    "E302": "an output size that is not positive",
    "E303": "an input of the wrong rank",
    "E304": "`linear` on a feature map",
    "E305": "merged inputs with different shapes",
    "E401": "unknown name in an expression",
    "E402": "a value of the wrong type for a parameter",
    "E403": "unknown attribute",
    "E404": "bad index",
    "E405": "unknown function",
    "E406": "an expression that cannot be computed",
    "E407": "`in` outside a block or layer",
    "E410": "`for` over something that is not a list",
    "E411": "`for` items that do not unpack",
    "E412": "a bad `repeat` count",
    "E502": "an op that cannot be lowered to PyTorch",
    "E503": "a layer name PyTorch reserves (a Python keyword, an nn.Module attribute)",
    "E602": "an op that cannot be lowered to ONNX",
    "E603": "an op that needs a newer ONNX opset",
    "E610": "weights that do not fit the spec",
    "W201": "a name assigned but never used",
    "W301": "a window that never reads the last input rows",
}


@dataclass(frozen=True)
class Diagnostic:
    """One located message. ``code`` is stable (``E###`` errors, ``W###`` warnings) and
    listed in :data:`CODES`."""

    code: str
    message: str
    span: Span = NOWHERE
    hint: str | None = None
    severity: str = "error"
    notes: tuple[tuple[str, Span], ...] = ()

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"diagnostic code {self.code} is not in diagnostics.CODES")

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


def codes_markdown() -> str:
    """docs/errors.md: every diagnostic code and its title, from :data:`CODES`."""
    lines = ["# Diagnostic codes", "",
             "Generated from `archspec.diagnostics.CODES` by `archspec errors --markdown`; do not "
             "edit by hand. `E` codes are errors (exit 1); `W` codes are warnings (exit 1 only "
             "with `--strict`).", "", "| code | meaning |", "|---|---|"]
    lines += [f"| {code} | {title} |" for code, title in CODES.items()]
    return "\n".join(lines) + "\n"


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
