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

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from archspec.lang.source import NOWHERE, Span

# Every code a user can see, once, with its title: `archspec errors` and docs/errors.md come
# from this table, and a Diagnostic with a code missing here is a bug (it raises).
CODES: dict[str, str] = {
    "E001": "no such file",
    "E002": "the file cannot be read (a directory, no permission)",
    "E003": "the file is not UTF-8 text",
    "E004": "the file is empty",
    "E005": "the file is too large for a spec",
    "E010": "an optional extra the command needs is not installed (exit 2)",
    "E011": "a plugin op that cannot be loaded (import error, not an OpDef, a name taken)",
    "E101": "syntax: unexpected character",
    "E102": "syntax: unexpected end of file",
    "E103": "syntax: unexpected token",
    "E104": "invalid YAML",
    "E110": "more than one `network` line",
    "E111": "no `input`: a file of blocks only is not a network",
    "E112": "import cycle",
    "E113": "unknown parameter type",
    "E114": "a block, input, parameter or init rule defined twice",
    "E115": "an import outside the allowed folders (absolute, `..`, or a link out)",
    "E116": "bad initialisation scheme or argument",
    "E117": "an `init` rule that matches no layer",
    "E118": "imports nested too deeply",
    "E120": "an override names no network parameter",
    "E121": "a network parameter without default or value",
    "E130": "a bad input shape",
    "E131": "an override names no input",
    "E150": "bad YAML structure",
    "E151": "a key given twice in a YAML mapping",
    "E152": "a YAML value of a type specs do not use (a tag, a timestamp)",
    "E153": "a YAML network, input, block or parameter name that is not a name",
    "E201": "unknown op or block",
    "E210": "unknown output",
    "E211": "a DAG input that is not a name",
    "E212": "unknown layer or input",
    "E213": "duplicate layer name",
    "E214": "wrong number of inputs for an op",
    "E215": "results and names of a multi-result op do not match",
    "E216": "a block called on more or fewer inputs than it declares",
    "E217": "a layer given where an argument value belongs (inputs go in a second pair of "
            "parentheses)",
    "E218": "an input that must be the same for every sample (`take`'s index) computed from "
            "the network's inputs",
    "E219": "every output training-only (`output train ...`): the eval forward returns nothing",
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
    "E304": "`linear` on an input without a features dim (a scalar)",
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
    "E504": "a layer name generated code cannot hold (a quote, a backslash, a control "
            "character)",
    "E602": "an op that cannot be lowered to ONNX",
    "E603": "an op that needs a newer ONNX opset",
    "E610": "weights that do not fit the spec",
    "E611": "a weights file that cannot be read safely (empty, truncated, pickled code)",
    "E612": "a weights entry that is not a usable tensor (type, dtype, meta, sparse)",
    "E620": "a model `archspec import` cannot lift exactly (a node no archspec op expresses, "
            "or code torch.fx cannot trace)",
    "E701": "an integer or float too large",
    "E702": "a list, string or range too long",
    "E703": "too many layers",
    "E704": "too many loop iterations",
    "E705": "nesting too deep",
    "E706": "a YAML document too deep or too large once aliases are expanded",
    "E707": "too much expression work",
    "E708": "a layer with too many parameter and buffer elements",
    "E709": "a network that needs more memory than the limit (`--max-memory`, or what the "
            "machine has available)",
    "E710": "a sweep whose variants hold too many layers in all (variants x layers)",
    "E801": "a program a command needs is not installed (Graphviz's `dot`)",
    "E901": "an image folder without class folders or without images",
    "E902": "a class folder with no images",
    "E903": "too few images to split into training, validation and test sets",
    "E904": "an image folder whose classes are not those the weights were trained on",
    "E905": "a `train --out` folder that holds an earlier run (without `--resume` from it or "
            "`--overwrite`)",
    "E906": "a network `train` or `eval` cannot score: not one (C, H, W) input, or an output "
            "that is not [N, classes] logits",
    "E907": "an image folder with more classes than the network has outputs",
    "E908": "`eval --samples/--seed` whose test split holds images the weights were trained "
            "or validated on (without `--allow-other-split`)",
    "W117": "an `init` rule whose layers hold no weights (it changes nothing)",
    "W201": "a name assigned but never used",
    "W301": "a window that never reads the last input rows",
    "W302": "`linear` over the width of a (C, H, W) map (a forgotten `flatten`)",
    "W501": "a network whose forward needs more than 32 GiB",
    "W901": "a classifier with more outputs than its data has classes",
    "W902": "`eval` on the built-in data with weights that do not say which split they were "
            "trained on (a bare state_dict)",
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


class Collector:
    """Gathers the errors of independent checks, so that a file's errors are reported together
    (up to :data:`MAX_ERRORS`) rather than one per run."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    @contextmanager
    def check(self) -> Iterator[None]:
        """Run the ``with`` body; an :class:`ArchspecError` it raises is kept, not raised."""
        try:
            yield
        except ArchspecError as exc:
            self.diagnostics.extend(exc.diagnostics)

    def raise_any(self) -> None:
        """Raise the errors gathered so far, if any, as one :class:`ArchspecError`."""
        if self.diagnostics:
            raise ArchspecError(self.diagnostics[:MAX_ERRORS])


def error(code: str, message: str, span: Span = NOWHERE, hint: str | None = None,
          notes: tuple[tuple[str, Span], ...] = ()) -> ArchspecError:
    """Build (not raise) an :class:`ArchspecError` with a single diagnostic."""
    return ArchspecError(Diagnostic(code, message, span, hint, "error", notes))


def codes_markdown() -> str:
    """docs/errors.md: every diagnostic code and its title, from :data:`CODES`."""
    lines = ["# Diagnostic codes", "",
             "Generated from `archspec.lang.diagnostics.CODES` by `archspec errors --markdown`; "
             "do not edit by hand. `E` codes are errors (exit 1); `W` codes are warnings "
             "(exit 1 only with `--strict`).", "", "| code | meaning |", "|---|---|"]
    lines += [f"| {code} | {title} |" for code, title in CODES.items()]
    return "\n".join(lines) + "\n"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate to ``name``, or ``None`` when nothing is close."""
    import difflib  # only on the error path: keeps `archspec check` start-up lean

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


# At most this many errors are reported for one file, as compilers do: later ones are dropped.
MAX_ERRORS = 20
# A quoted line shows at most this many columns either side of the caret (and a caret at most
# this wide), so a 40,000-character line is not echoed whole.
QUOTE_CONTEXT = 60
# Messages, notes and hints are cut to this many characters: they may quote a spec's token.
MAX_TEXT = 1000
# Characters a terminal acts on rather than prints: C0 and C1 controls, DEL, line and paragraph
# separators and the bidirectional-text controls. They are shown as \x1b / \u202e escapes.
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f"
                          "\u2028-\u202e\u2066-\u2069]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, tab: str = "\t") -> str:
    """``text`` with every character a terminal would act on escaped (``\\x1b``,
    ``\\u202e``) and tabs replaced by ``tab``: what a spec contains cannot move the cursor,
    clear the screen or reorder what is printed."""
    return _UNPRINTABLE.sub(_escape_char, text).replace("\t", tab)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


def _quote(span: Span, gutter: int) -> list[str]:
    text = span.source.line(span.line)
    if not text and span.source.text == "":
        return []
    start = span.col - 1
    end = span.end_col - 1 if span.end_col and span.end_col > span.col else span.col
    end = min(end, len(text), start + QUOTE_CONTEXT)
    lo, hi = max(0, start - QUOTE_CONTEXT), min(len(text), end + QUOTE_CONTEXT)
    head = "..." if lo > 0 else ""
    shown = head + printable(text[lo:hi], " ") + ("..." if hi < len(text) else "")
    offset = len(head) + len(printable(text[lo:start], " "))
    caret = " " * offset + "^" * max(1, len(printable(text[start:end], " ")))
    pad = " " * gutter
    return [f"{pad} |", f"{span.line:>{gutter}} | {shown}", f"{pad} | {caret}"]


def _text(text: str) -> str:
    return printable(_clip(text))


def _where(span: Span) -> str:
    return printable(str(span))


def render(diag: Diagnostic) -> str:
    """Render ``diag`` as ``file:line:col: severity[code]: message`` plus a caret excerpt."""
    span = diag.span
    gutter = len(str(max([span.line] + [s.line for _, s in diag.notes])))
    lines = [f"{_where(span)}: {diag.severity}[{diag.code}]: {_text(diag.message)}"]
    lines += _quote(span, gutter)
    for note, nspan in diag.notes:
        lines.append(f"{_where(nspan)}: note: {_text(note)}")
        lines += _quote(nspan, gutter)
    if diag.hint:
        lines.append(f"{' ' * gutter} = hint: {_text(diag.hint)}")
    return "\n".join(lines)
