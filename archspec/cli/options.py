"""The options many commands share and what they feed: ``--input``, ``--set`` and ``--path``
(:func:`network_options`), ``--debug``, the analysis options of ``diff`` and ``sweep``, the
spec loading that applies them (:func:`load_spec`) and the guard that keeps an output from
overwriting an input (:func:`check_output`).

Nothing here imports torch or onnx: ``archspec check`` goes through this module.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from archspec.lang.diagnostics import ArchspecError
from archspec.lang.limits import MAX_BATCH, MAX_ELEMENTS, MAX_INT_DIGITS

if TYPE_CHECKING:
    from archspec.analysis.budget import Run

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
"""The context settings of the group and every command: ``-h`` and a 100-column help."""


def parse_value(text: str) -> Any:
    """A --set value: a spec expression literal (10, 0.5, true, [1, 2], "s") or a bare word."""
    from archspec.lang.exprs import Evaluator
    from archspec.lang.source import SourceFile
    from archspec.lang.syntax.to_ir import parse

    source = SourceFile("--set", text)
    try:
        return Evaluator({}, None)(parse(source, start="expr"))
    except ArchspecError:
        return text


def overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set K=V`` pairs as ``{K: parsed V}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        out[key.strip()] = parse_value(value.strip())
    return out


def input_shapes(pairs: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """``--input NAME=CxHxW`` pairs as ``{NAME: (C, H, W)}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        dims = value.lower().replace(",", "x").split("x")
        if not sep or not all(d.strip().isdigit() and len(d.strip()) <= MAX_INT_DIGITS
                              and int(d) > 0 for d in dims):
            raise click.BadParameter(f"expected NAME=CxHxW (e.g. x=3x224x224), got {pair!r}",
                                     param_hint="--input")
        shape = tuple(int(d) for d in dims)
        if math.prod(shape) > MAX_ELEMENTS:
            raise click.BadParameter(f"{pair!r} holds {math.prod(shape):.3g} elements per "
                                     f"sample; at most {MAX_ELEMENTS:,}", param_hint="--input")
        out[key.strip()] = shape
    return out


def check_output(output: str | None, *sources: str | Path | None,
                 hint: str = "-o/--output") -> None:
    """Refuse an output path that names one of the command's own input files."""
    from archspec.files.atomic import same_file  # tempfile and signal: not for `check`

    for source in sources:
        if output and source and same_file(output, source):
            raise click.BadParameter(f"{output} is the input {source}; writing it would destroy "
                                     "it", param_hint=hint)


def check_outputs(outputs: Iterable[str | None], spec_path: str, *others: str | None,
                  hint: str = "-o/--output") -> None:
    """Refuse outputs that name a file the command reads: the spec, every file it imports
    (directly or through other imports) and ``others`` (weights). Call it after
    :func:`load_spec`, which has checked that the imports resolve and stay confined."""
    outputs = [output for output in outputs if output]
    if not outputs:
        return
    sources = [*spec_files(spec_path), *others]
    for output in outputs:
        check_output(output, *sources, hint=hint)


def spec_files(spec_path: str) -> list[Path]:
    """The spec file and the files it imports, transitively, found as the loader finds them:
    under the importing file's folder, then the ``--path`` and ``$ARCHSPEC_PATH`` folders;
    ``std/...`` in the shipped library."""
    from archspec.lang.syntax import loader

    roots = loader.search_roots(click.get_current_context().meta.get("archspec.path", ()))
    first = Path(spec_path)
    if loader.is_std(spec_path):
        first = loader.std_root() / spec_path.removeprefix(loader.STD_PREFIX)
    seen: list[Path] = []
    todo = [first.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        try:
            spec = loader.parse_source(loader.read_source(path), loader.format_of(path))
        except ArchspecError:  # not read by the load either
            continue
        todo += [found for rel in spec.imports if (found := _imported(rel, path.parent, roots))]
    return seen


def _imported(rel: str, base: Path, roots: tuple[Path, ...]) -> Path | None:
    """The resolved file ``import "rel"`` in a file of folder ``base`` reads (None if none)."""
    from archspec.lang.syntax.loader import STD_PREFIX, std_root

    if rel.startswith(STD_PREFIX):
        folders: tuple[Path, ...] = (std_root(),)
        rel = rel.removeprefix(STD_PREFIX)
    else:
        folders = (base.resolve(), *roots)
    for folder in folders:
        if os.path.lexists(folder / rel):
            try:
                return (folder / rel).resolve()
            except (OSError, RuntimeError):  # a link loop (the load refused it)
                return None
    return None


def _store(key: str, parse: Callable[[Any], Any]) -> Callable[..., None]:
    """A click callback that parses an option's values and keeps them in ``ctx.meta[key]``."""
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        ctx.meta[key] = parse(value)
    return callback


path_option = click.option(
    "--path", multiple=True, metavar="DIR", expose_value=False,
    type=click.Path(file_okay=False), callback=_store("archspec.path", tuple),
    help="A folder `import` may search besides the spec's own (and $ARCHSPEC_PATH). "
         "Repeatable.")

debug_option = click.option("--debug", is_flag=True, help="Show Python tracebacks.")


def network_options(command: F) -> F:
    """Decorate a command that builds the network with ``--input``, ``--set`` and ``--path``.

    The values are kept in the click context; :func:`load_spec` applies them. Every command
    that builds the network uses this one decorator, so the options read the same everywhere.
    """
    options = (
        click.option("--input", "inputs", multiple=True, metavar="NAME=CxHxW",
                     expose_value=False, callback=_store("archspec.inputs", input_shapes),
                     help="Override an input's per-sample shape, e.g. --input x=3x299x299. "
                          "Repeatable."),
        click.option("--set", "sets", multiple=True, metavar="K=V", expose_value=False,
                     callback=_store("archspec.sets", overrides),
                     help="Override a network parameter, e.g. --set num_classes=10. "
                          "Repeatable."),
        path_option,
    )
    for option in reversed(options):
        command = option(command)
    return command


_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def memory_size(text: str) -> int:
    """``--max-memory``: bytes from ``8G``, ``512M``, ``2GiB``, ``1.5T`` or a byte count."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[:len(value) - len(unit)]
    try:
        size = float(number) * _UNITS[unit]
    except ValueError:
        size = -1.0
    if not 0 < size < 2**63 or len(number) > 20:
        raise click.BadParameter(f"expected a size such as 8G, 512M or 2GiB, got {text!r}",
                                 param_hint="--max-memory")
    return int(size)


memory_option = click.option(
    "--max-memory", metavar="SIZE", expose_value=False,
    callback=_store("archspec.max_memory", lambda v: memory_size(v) if v else None),
    help="Refuse, before allocating anything, a network whose run needs more (e.g. 8G); "
         "default: the memory the machine has available.")


def check_memory(spec: Any, batch: int, run: Run = "forward") -> None:
    """Refuse (E709, at the biggest layer) a ``run`` (``weights``, ``forward``, ``training``:
    archspec.analysis.budget) that needs more memory than ``--max-memory`` or, without it, than
    the machine has available."""
    from archspec.analysis.budget import available_bytes, check_budget
    from archspec.analysis.report import analyze
    from archspec.lang.expander import expand

    limit = click.get_current_context().meta.get("archspec.max_memory")
    what = "--max-memory"
    if limit is None:
        limit, what = available_bytes(), "the memory available"
    if limit is None:
        return
    graph = expand(spec)
    check_budget(graph, analyze(spec, batch=batch, graph=graph), limit, what, run)


_ANALYSIS_OPTIONS = (
    click.option("--batch", type=click.IntRange(1, MAX_BATCH), default=1, show_default=True,
                 help="Batch size the counts and memory are for."),
    click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
                 default="float32", show_default=True, help="Element type for memory figures."),
    click.option("--convention", type=click.Choice(
        ["torchvision", "torchinfo", "fvcore", "ptflops", "thop"]), default="torchvision",
        show_default=True, help="How MACs are counted (see docs/conventions.md)."),
)


def analysis_options(command: F) -> F:
    """Decorate a command with ``--batch``, ``--dtype`` and ``--convention`` (``diff``,
    ``sweep``: the batch defaults to 1)."""
    for option in reversed(_ANALYSIS_OPTIONS):
        command = option(command)
    return command


def load_spec(spec_path: str, *extras: str) -> Any:
    """Load ``spec_path`` with the current command's ``--set``, ``--input`` and ``--path``
    (see :func:`network_options`), then check that the optional ``extras`` it needs (keys of
    ``archspec.lang.extras.EXTRAS``) are installed."""
    from archspec.lang.extras import require
    from archspec.lang.syntax.loader import load, with_input_shapes

    ctx = click.get_current_context()
    spec = load(spec_path, search_path=ctx.meta.get("archspec.path", ()),
                **ctx.meta.get("archspec.sets", {}))
    inputs = ctx.meta.get("archspec.inputs", {})
    spec = with_input_shapes(spec, inputs) if inputs else spec
    require(f"`archspec {ctx.info_name}`", *extras, at=spec.span)
    return spec
