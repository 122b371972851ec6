"""The commands that read a spec without running it: ``check``, ``expand``, ``graph``,
``diff``, ``sweep`` and ``convert``.

None of them imports torch or onnx (a subprocess test in tests/test_cli.py holds ``check`` to
it): what they need is imported inside each command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from archspec.cli.messages import warn
from archspec.cli.options import (
    CONTEXT,
    analysis_options,
    check_output,
    check_outputs,
    debug_option,
    input_shapes,
    load_spec,
    network_options,
    parse_value,
    path_option,
)
from archspec.lang.diagnostics import printable
from archspec.lang.limits import MAX_BATCH


@click.command(context_settings=CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--batch", type=click.IntRange(1, MAX_BATCH), default=None,
              help="Concrete batch size (default: symbolic N; counts are per sample).")
@network_options
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              default="table", show_default=True, help="Output format.")
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Levels of blocks to show; deeper layers fold into block subtotals; 0: the "
                   "network as one row. Default: 3 in tables, every layer in JSON.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
              default="float32", show_default=True, help="Element type for memory figures.")
@click.option("--convention", type=click.Choice(
    ["torchvision", "torchinfo", "fvcore", "ptflops", "thop"]), default="torchvision",
    show_default=True, help="How MACs are counted (see docs/conventions.md).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@debug_option
def check(spec: str, batch: int | None, fmt: str, depth: int | None, dtype: str, convention: str,
          strict: bool, debug: bool) -> None:
    """Analyse SPEC statically: per-layer output shape, params, MACs, FLOPs, memory.

    Never imports torch. Example:

        archspec check specs/resnet50.arch --batch 32 --dtype float16 --depth 1
    """
    from archspec.views.report import analyze
    from archspec.views.table import markdown, table

    report = analyze(load_spec(spec), batch=batch, dtype=dtype, convention=convention)
    warn(report.warnings)
    if fmt == "json":
        click.echo(report.to_json(depth))
    else:
        click.echo((table if fmt == "table" else markdown)(report, 3 if depth is None else depth))
    if strict and report.warnings:
        click.echo(f"error: {len(report.warnings)} warning(s) with --strict", err=True)
        sys.exit(1)


@click.command(context_settings=CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@network_options
@debug_option
def expand(spec: str, debug: bool) -> None:
    """Print SPEC fully expanded: one line per op, with its inputs and output shape.

    Shows exactly what blocks, repeats, loops and conditions produced.
    """
    from archspec.lang.expander import expand as run_expand
    from archspec.lang.network import graph_text

    graph = run_expand(load_spec(spec))
    warn(graph.warnings)
    click.echo("\n".join(printable(line) for line in graph_text(graph).split("\n")))


@click.command(context_settings=CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid"]), default="dot",
              show_default=True, help="What to print when no -o is given.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write a file instead, in the format its suffix names: .dot, .mmd, .svg, "
                   ".png (these two need Graphviz) or .html (a page to explore offline).")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Levels of blocks to draw; deeper layers fold into their block (default: "
                   "every layer). In HTML, the levels open at first (default: 1).")
@network_options
@debug_option
def graph(spec: str, fmt: str, output: str | None, depth: int | None, debug: bool) -> None:
    """Draw SPEC's expanded network: DOT or Mermaid text, an SVG/PNG picture, or an HTML page.

    \b
    Examples:
      archspec graph specs/resnet18.arch --depth 1 -o resnet18.svg
      archspec graph specs/googlenet.arch --depth 1 -o googlenet.html
      archspec graph specs/resnet18.arch --format mermaid
    """
    from archspec.views.drawing import SUFFIXES, draw, format_for

    if output is None:
        click.echo(draw(load_spec(spec), fmt, depth).decode("utf-8"))
        return
    out_fmt = format_for(output)
    if out_fmt is None:
        raise click.BadParameter(f"{output} has no known suffix; use one of "
                                 f"{', '.join(SUFFIXES)}", param_hint="-o/--output")
    given = click.get_current_context().get_parameter_source("fmt")
    if given is click.core.ParameterSource.COMMANDLINE and out_fmt != fmt:
        raise click.BadParameter(f"--format {fmt} but {output} names {out_fmt}; the suffix "
                                 "chooses the format of a file (drop --format)",
                                 param_hint="--format/-o")
    from archspec.files.atomic import write_atomic

    check_output(output, spec)
    network = load_spec(spec)
    check_outputs([output], spec)
    write_atomic(output, draw(network, out_fmt, depth))
    click.echo(f"wrote {output}", err=True)


@click.command(context_settings=CONTEXT)
@click.argument("spec_a", metavar="A", type=click.Path(dir_okay=False))
@click.argument("spec_b", metavar="B", type=click.Path(dir_okay=False))
@click.option("--depth", type=click.IntRange(min=1), default=2, show_default=True,
              help="Levels of blocks to align; deeper layers fold into block subtotals.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              default="table", show_default=True)
@click.option("--only-changes", is_flag=True, help="Leave out the rows that are the same.")
@network_options
@analysis_options
@debug_option
def diff(spec_a: str, spec_b: str, depth: int, fmt: str, only_changes: bool, batch: int,
         dtype: str, convention: str, debug: bool) -> None:
    """Compare two specs layer by layer and block by block: shape, params, MACs, memory.

    Rows are aligned by name (+ added in B, - removed, ~ changed), then the totals of both
    with their difference. --set and --input apply to both specs. Example:

        archspec diff specs/resnet18.arch specs/resnet34.arch --only-changes
    """
    from archspec.analysis import diff as compare
    from archspec.views import diff as diff_view
    from archspec.views.report import analyze

    reports = [analyze(load_spec(path), batch=batch, dtype=dtype, convention=convention)
               for path in (spec_a, spec_b)]
    result = compare.diff(*reports, depth=depth)
    if fmt == "json":
        click.echo(result.to_json())
    else:
        render = diff_view.table if fmt == "table" else diff_view.markdown
        click.echo(render(result, only_changes))


def split_top(text: str) -> list[str]:
    """``0.5,1,[2, 3],"a,b"`` -> its comma-separated items, commas inside brackets or quotes
    kept."""
    items, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return [item.strip() for item in [*items, text[start:]]]


def _sweep_axes(sets: tuple[str, ...], inputs: tuple[str, ...]) -> dict[str, list[Any]]:
    """``--set K=V1,V2`` (repeatable, values parsed as --set values are) and ``--input
    NAME=CxHxW`` (repeat a name to give several shapes) as sweep axes."""
    from archspec.analysis.sweep import INPUT_PREFIX

    axes: dict[str, list[Any]] = {}
    for pair in sets:
        key, sep, values = pair.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise click.BadParameter(f"expected KEY=V1,V2,..., got {pair!r}", param_hint="--set")
        axes.setdefault(key.strip(), []).extend(map(parse_value, split_top(values)))
    for pair in inputs:
        for name, shape in input_shapes((pair,)).items():
            axes.setdefault(INPUT_PREFIX + name, []).append(shape)
    return axes


@click.command(context_settings=CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="K=V1,V2,...",
              help="A network parameter and the values to sweep, e.g. --set width=0.5,1,2. "
                   "Repeatable: every combination runs.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=CxHxW",
              help="An input shape to sweep; repeat with the same NAME for several shapes.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Also draw params vs MACs (marker area: activation memory) to this .png, "
                   ".svg or .pdf file. Needs matplotlib (pip install 'archspec[plot]').")
@analysis_options
@path_option
@debug_option
def sweep(spec: str, sets: tuple[str, ...], inputs: tuple[str, ...], fmt: str,
          plot: str | None, batch: int, dtype: str, convention: str, debug: bool) -> None:
    """Analyse SPEC at every combination of parameter and input values, in one process.

    The spec is parsed once. A combination the spec refuses is listed with its error.

    \b
    Examples:
      archspec sweep specs/examples/resnet_family.arch --set width=0.5,1,2 --set depth=18,34
      archspec sweep specs/resnet18.arch --input x=3x160x160 --input x=3x224x224 --format csv
    """
    from archspec.analysis import sweep as sweeps
    from archspec.views import sweep as sweep_view

    axes = _sweep_axes(sets, inputs)
    if sweeps.count(axes) > sweeps.MAX_VARIANTS:
        raise click.BadParameter(f"{sweeps.count(axes):,} combinations; at most "
                                 f"{sweeps.MAX_VARIANTS:,}", param_hint="--set/--input")
    plot_fmt = Path(plot).suffix.lower().lstrip(".") if plot else None
    if plot and plot_fmt not in ("png", "svg", "pdf"):
        raise click.BadParameter(f"{plot}: use a .png, .svg or .pdf file", param_hint="--plot")
    check_output(plot, spec, hint="--plot")
    parsed = load_spec(spec)
    check_outputs([plot], spec, hint="--plot")
    variants = sweeps.sweep(parsed, axes, batch=batch, dtype=dtype, convention=convention)
    if fmt == "json":
        click.echo(json.dumps(sweeps.to_dict(variants), separators=(",", ":")))
    else:
        click.echo((sweep_view.table if fmt == "table" else sweep_view.to_csv)(variants),
                   nl=fmt != "csv")
    if variants and all(v.error is not None for v in variants):
        click.echo(f"error: every one of the {len(variants)} variants was refused",
                   err=True)
        raise SystemExit(1)
    if plot and plot_fmt:
        from archspec.files.atomic import write_atomic
        from archspec.views.plot import plot as draw_plot

        write_atomic(plot, draw_plot(variants, parsed.name, plot_fmt, parsed.span))
        click.echo(f"wrote {plot}", err=True)


@click.command(context_settings=CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--to", "to", type=click.Choice(["arch", "yaml"]), required=True,
              help="Target format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write here instead of standard output.")
@path_option
@debug_option
def convert(spec: str, to: str, output: str | None, debug: bool) -> None:
    """Convert SPEC between the text (.arch) and YAML forms; the IR is unchanged."""
    from archspec.files.atomic import write_atomic
    from archspec.lang.syntax.printer import to_text
    from archspec.lang.syntax.yaml_form import to_yaml

    check_output(output, spec)
    network = load_spec(spec)
    check_outputs([output], spec)
    text = (to_text if to == "arch" else to_yaml)(network)
    if output:
        write_atomic(output, text)
    else:
        click.echo(text, nl=False)
