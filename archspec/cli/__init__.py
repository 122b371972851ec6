"""The command line: thin wrappers that parse options, call the API and render diagnostics.

Exit codes: 0 success (warnings allowed unless --strict), 1 spec errors, 2 usage errors,
3 internal errors (a bug in archspec: rerun with --debug for the traceback).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import click

from archspec.files.atomic import same_file, write_atomic
from archspec.lang.diagnostics import MAX_ERRORS, ArchspecError, Diagnostic, printable
from archspec.lang.extras import MissingExtra

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _parse_value(text: str) -> Any:
    """A --set value: a spec expression literal (10, 0.5, true, [1, 2], "s") or a bare word."""
    from archspec.lang.exprs import Evaluator
    from archspec.lang.source import SourceFile
    from archspec.lang.syntax.to_ir import parse

    source = SourceFile("--set", text)
    try:
        return Evaluator({}, None)(parse(source, start="expr"))
    except ArchspecError:
        return text


def _overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _input_shapes(pairs: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        dims = value.lower().replace(",", "x").split("x")
        if not sep or not all(d.strip().isdigit() and int(d) > 0 for d in dims):
            raise click.BadParameter(f"expected NAME=CxHxW (e.g. x=3x224x224), got {pair!r}",
                                     param_hint="--input")
        out[key.strip()] = tuple(int(d) for d in dims)
    return out


def _warn(diags: list[Diagnostic]) -> None:
    for d in diags:
        click.echo(d.render(), err=True)


def _check_output(output: str | None, *sources: str | None) -> None:
    """Refuse an output path that names one of the command's own input files."""
    for source in sources:
        if output and source and same_file(output, source):
            raise click.BadParameter(f"{output} is the input {source}; writing it would destroy "
                                     "it", param_hint="-o/--output")


def _store(key: str, parse: Any) -> Any:
    """A click callback that parses an option's values and keeps them in ``ctx.meta[key]``."""
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        ctx.meta[key] = parse(value)
    return callback


path_option = click.option(
    "--path", multiple=True, metavar="DIR", expose_value=False,
    type=click.Path(file_okay=False), callback=_store("archspec.path", tuple),
    help="A folder `import` may search besides the spec's own (and $ARCHSPEC_PATH). "
         "Repeatable.")


def network_options(command: Any) -> Any:
    """Decorate a command that builds the network with ``--input``, ``--set`` and ``--path``.

    The values are kept in the click context; :func:`load_spec` applies them. Every command
    that builds the network uses this one decorator, so the options read the same everywhere.
    """
    options = (
        click.option("--input", "inputs", multiple=True, metavar="NAME=CxHxW",
                     expose_value=False, callback=_store("archspec.inputs", _input_shapes),
                     help="Override an input's per-sample shape, e.g. --input x=3x299x299. "
                          "Repeatable."),
        click.option("--set", "sets", multiple=True, metavar="K=V", expose_value=False,
                     callback=_store("archspec.sets", _overrides),
                     help="Override a network parameter, e.g. --set num_classes=10. "
                          "Repeatable."),
        path_option,
    )
    for option in reversed(options):
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


debug_option = click.option("--debug", is_flag=True, help="Show Python tracebacks.")


@click.group(context_settings=_CONTEXT)
@click.version_option(package_name="archspec")
def cli() -> None:
    """archspec: neural-network architectures as declarative specs.

    \b
    Analyse a spec without running it:   archspec check specs/googlenet.arch
    See what blocks and repeats made:    archspec expand specs/resnet18.arch
    Draw it (svg, png, html, dot, mmd):  archspec graph specs/resnet18.arch -o r18.html
    Convert between text and YAML:       archspec convert specs/vgg16.arch --to yaml
    Compare two specs:                   archspec diff specs/resnet18.arch specs/resnet34.arch
    Sweep values (every combination):    archspec sweep SPEC --set width=0.5,1 --set depth=18,34
    Eject PyTorch source:                archspec compile specs/resnet18.arch -o model.py
    Train (built-in data, or --data):    archspec train specs/classic/lenet5_1998.arch
    Score trained weights:               archspec eval SPEC --weights best.pt --data DIR
    Export to ONNX:                      archspec export specs/resnet18.arch -o r18.onnx
    Time torch against onnxruntime:      archspec bench specs/resnet18.arch
    List the layer kinds:                archspec ops
    List the shipped specs:              archspec specs
    """


@cli.command(context_settings=_CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--batch", type=click.IntRange(min=1), default=None,
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
    _warn(report.warnings)
    if fmt == "json":
        click.echo(report.to_json(depth))
    else:
        click.echo((table if fmt == "table" else markdown)(report, 3 if depth is None else depth))
    if strict and report.warnings:
        click.echo(f"error: {len(report.warnings)} warning(s) with --strict", err=True)
        sys.exit(1)


@cli.command(context_settings=_CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@network_options
@debug_option
def expand(spec: str, debug: bool) -> None:
    """Print SPEC fully expanded: one line per op, with its inputs and output shape.

    Shows exactly what blocks, repeats, loops and conditions produced.
    """
    from archspec.lang.expander import expand as run_expand
    from archspec.lang.syntax.printer import graph_text

    graph = run_expand(load_spec(spec))
    _warn(graph.warnings)
    click.echo(graph_text(graph))


@cli.command(context_settings=_CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid"]), default="dot",
              show_default=True, help="What to print when no -o is given.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write a file instead, in the format its suffix names: .dot, .mmd, .svg, "
                   ".png (these two need Graphviz) or .html (a page to explore offline).")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Levels of blocks to draw; deeper layers fold into their block (default: "
                   "every layer). In HTML, the levels open at first.")
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
    _check_output(output, spec)
    write_atomic(output, draw(load_spec(spec), out_fmt, depth))
    click.echo(f"wrote {output}", err=True)


@cli.command(name="compile", context_settings=_CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the source here (default: standard output).")
@network_options
@debug_option
def compile_(spec: str, output: str | None, debug: bool) -> None:
    """Eject SPEC as standalone PyTorch source (imports only torch).

    One nn.Module class per block, named like it; module paths equal the spec's layer names,
    so state_dicts of the compiled spec load strictly. Example:

        archspec compile specs/resnet18.arch -o resnet18.py
    """
    _check_output(output, spec)
    network = load_spec(spec, "torch")
    from archspec.backends.eject import eject

    text = eject(network)
    if output:
        write_atomic(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


data_option = click.option(
    "--data", type=click.Path(file_okay=False, exists=True), default=None,
    help="Image folder (one sub-folder per class), decoded with torchvision.io. Default: a "
         "built-in procedural dataset of shapes at the spec's input size.")
device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
                             default="auto", show_default=True, help="auto: CUDA when available.")
workers_option = click.option(
    "--workers", type=click.IntRange(min=0), default=None,
    help="DataLoader worker processes per training process (default: the CPU cores less one, "
         "shared by the processes on the machine, at most 16).")
amp_option = click.option(
    "--amp/--no-amp", default=None,
    help="Mixed precision: bf16 autocast (fp16 with a grad scaler on GPUs without bf16). "
         "Default: on with CUDA, off on the CPU.")
channels_last_option = click.option(
    "--channels-last/--no-channels-last", default=None,
    help="NHWC memory layout. Default: on with CUDA, off on the CPU.")


def _run_training(debug: bool, fn: Any, *args: Any) -> Any:
    """Call ``fn``; a runtime problem exits 1 with its message (a missing optional package is
    a :class:`MissingExtra`, which exits 2 naming the extra)."""
    try:
        return fn(*args)
    except RuntimeError as exc:
        if debug:
            raise
        raise click.ClickException(str(exc)) from None


@cli.command(context_settings=_CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@data_option
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3,
              show_default=True, help="Peak learning rate.")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="adamw",
              show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "step", "none"]), default="cosine",
              show_default=True, help="Learning-rate schedule after the warm-up, per step.")
@click.option("--warmup", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Epochs of linear warm-up from lr/steps to lr.")
@click.option("--lr-step", type=click.IntRange(min=1), default=30, show_default=True,
              help="With --schedule step: x0.1 every this many epochs.")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="Decoupled (AdamW) or L2 (SGD) decay of weights; never of biases and "
                   "normalisation parameters.")
@click.option("--clip-grad", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Clip the gradients' global L2 norm to this value.")
@click.option("--patience", type=click.IntRange(min=1), default=None,
              help="Stop after this many epochs without a better validation top-1.")
@device_option
@amp_option
@channels_last_option
@click.option("--compile", "compile_", is_flag=True, help="Use torch.compile.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write last.pt (every epoch) and best.pt (best validation top-1), "
                   "metrics.json, metrics.csv and TensorBoard event files here, atomically.")
@click.option("--resume", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Continue from a last.pt (or best.pt) checkpoint.")
@click.option("--samples", type=click.IntRange(min=10), default=12000, show_default=True,
              help="Size of the built-in dataset.")
@click.option("--seed", type=int, default=0, show_default=True)
@workers_option
@click.option("--aux-weight", type=click.FloatRange(min=0), default=0.4, show_default=True,
              help="Loss weight of auxiliary heads: outputs after the first with its shape.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@network_options
@debug_option
def train(spec: str, debug: bool, quiet: bool, compile_: bool, **options: Any) -> None:
    """Train SPEC on a built-in dataset or an image folder, on CPU, GPU or several processes.

    \b
    Examples:
      archspec train specs/classic/lenet5_1998.arch --epochs 3 --out runs/lenet
      archspec train specs/resnet18.arch --data photos/ --set num_classes=5 --warmup 1
      torchrun --nproc-per-node 2 -m archspec train specs/examples/cnn1.arch --out runs/ddp
    """
    network = load_spec(spec, "torch", *(("vision",) if options.get("data") else ()))
    from archspec.training.loop import TrainConfig
    from archspec.training.loop import train as run_train

    cfg = TrainConfig(**options, compile=compile_, progress=not quiet)
    _run_training(debug, run_train, network, cfg,
                  lambda msg: click.echo(msg, err=True))


@cli.command(name="eval", context_settings=_CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--weights", type=click.Path(dir_okay=False, exists=True), required=True,
              help="A torch.save(state_dict) file or an `archspec train` checkpoint.")
@data_option
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--samples", type=click.IntRange(min=10), default=12000, show_default=True,
              help="Without --data: the built-in dataset's size (its test split is scored).")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@amp_option
@channels_last_option
@workers_option
@network_options
@debug_option
def eval_(spec: str, weights: str, debug: bool, **options: Any) -> None:
    """Score SPEC with trained weights: loss, top-1 and top-5 on every image of --data (or on
    the built-in data's test split), without training.

        archspec eval specs/resnet18.arch --weights runs/r18/best.pt --data photos/
    """
    network = load_spec(spec, "torch", *(("vision",) if options.get("data") else ()))
    from archspec.training.loop import TrainConfig, evaluate_weights

    score = _run_training(debug, evaluate_weights, network, weights,
                          TrainConfig(**options))
    click.echo(f"{score.n} images: loss {score.loss:.4f}, top-1 {score.top1:.4f}, top-5 "
               f"{score.top5:.4f} ({score.images_per_s:,.0f} images/s)")


def _batch(value: str) -> str | int:
    if value == "dynamic":
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise click.BadParameter(f"expected `dynamic` or a positive integer, got {value!r}",
                             param_hint="--batch")


@cli.command(context_settings=_CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The .onnx file to write.")
@click.option("--weights", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A torch.save(state_dict) file (e.g. torchvision's) or an `archspec train` "
                   "checkpoint. Default: a fresh initialisation.")
@click.option("--opset", type=click.IntRange(13, 21), default=17, show_default=True)
@click.option("--batch", default="dynamic", show_default=True,
              help="`dynamic` (a symbolic batch dimension) or a fixed batch size.")
@click.option("--fp16", is_flag=True,
              help="float16 weights, input and output (see docs/onnx.md for its checks).")
@click.option("--external-data", is_flag=True,
              help="Weights in OUTPUT.data (ONNX external data); automatic above 2 GB.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Write an int8 model (onnxruntime static quantisation: QDQ, per-channel) "
                   "and report its size, latency and top-1 agreement with the float model.")
@click.option("--calibrate", default="builtin", show_default=True, metavar="DIR|builtin",
              help="With --quantize: an image folder, or the built-in shapes.")
@click.option("--calibration-samples", type=click.IntRange(min=4), default=200,
              show_default=True, help="With --quantize: images, 3/4 to calibrate, 1/4 held out.")
@network_options
@debug_option
def export(spec: str, output: str, weights: str | None, opset: int, batch: str, fp16: bool,
           external_data: bool, quantize: str | None, calibrate: str, calibration_samples: int,
           debug: bool) -> None:
    """Export SPEC to ONNX by direct lowering (no tracing): milliseconds, deterministic bytes.

    Node and initialiser names are the spec's layer names. Examples:

    \b
      archspec export specs/resnet18.arch --weights resnet18.pth -o resnet18.onnx
      archspec export specs/resnet18.arch --weights best.pt --quantize int8 --calibrate photos/ \\
          -o resnet18-int8.onnx
    """
    _check_output(output, spec, weights)
    network = load_spec(spec, "torch", "onnx")
    from archspec.backends.onnx import export_onnx
    from archspec.backends.onnx_file import EXTERNAL_ABOVE

    if quantize and (fp16 or external_data):
        raise click.BadParameter("--quantize int8 starts from a float32 model held in one file",
                                 param_hint="--fp16/--external-data")
    if quantize and batch != "dynamic":
        raise click.BadParameter("--quantize int8 writes a model with a dynamic batch (its "
                                 "calibration and agreement run in batches)",
                                 param_hint="--batch")
    if quantize:
        _run_training(debug, _export_int8, network, output, weights, opset, batch, calibrate,
                      calibration_samples)
        return
    model = export_onnx(network, output, weights=weights, opset=opset, batch=_batch(batch),
                        fp16=fp16, external_above=0 if external_data else EXTERNAL_ABOVE)
    size = Path(output).stat().st_size
    data = Path(output + ".data")  # initialisers stay in the returned model when external
    extra = f" + {data} ({data.stat().st_size / 1e6:.1f} MB)" if model.graph.initializer else ""
    click.echo(f"wrote {output} ({size / 1e6:.1f} MB{extra}, {len(model.graph.node)} nodes, "
               f"opset {opset})", err=True)


def _export_int8(spec: Any, output: str, weights: str | None, opset: int, batch: str,
                 calibrate: str, samples: int) -> None:
    """Export float32 to a temporary file, quantise it into ``output``, print the report."""
    import tempfile

    from archspec.backends.onnx import export_onnx
    from archspec.backends.quantize import quantize_int8
    from archspec.training.data import calibration_images

    images = calibration_images(spec, calibrate, samples)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        export_onnx(spec, float_path, weights=weights, opset=opset, batch=_batch(batch))
        report = quantize_int8(float_path, Path(output), images)
    click.echo(f"wrote {output} (int8, QDQ, per-channel)", err=True)
    for line in report.lines():
        click.echo(line)


@cli.command(context_settings=_CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--backend", type=click.Choice(["torch", "onnxruntime", "both"]), default="both",
              show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Intra-op threads for both runtimes; the process is pinned to as many "
                   "cores (default: every core it may use).")
@click.option("--runs", type=click.IntRange(min=3), default=30, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed runs of each runtime before timing.")
@network_options
@debug_option
def bench(spec: str, backend: str, batch: int, device: str, threads: int | None, runs: int,
          warmup: int, debug: bool) -> None:
    """Latency (median, p90) and throughput of the compiled torch module and the exported ONNX
    model (onnxruntime), side by side, with the same weights.

    Uses CUDAExecutionProvider with --device cuda when onnxruntime-gpu sees a GPU, and says
    which execution provider ran. Reports median, p90 and spread ((p90 - p10) / median).
    """
    network = load_spec(spec, "torch", *(("onnx",) if backend != "torch" else ()))
    from archspec.training.bench import run_bench

    try:
        for line in run_bench(network, backend, batch, device, threads, runs, warmup):
            click.echo(line)
    except RuntimeError as exc:
        if debug:
            raise
        raise click.ClickException(str(exc)) from None


analysis_options = (
    click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Batch size the counts and memory are for."),
    click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
                 default="float32", show_default=True, help="Element type for memory figures."),
    click.option("--convention", type=click.Choice(
        ["torchvision", "torchinfo", "fvcore", "ptflops", "thop"]), default="torchvision",
        show_default=True, help="How MACs are counted (see docs/conventions.md)."),
)


def _analysis_options(f: Any) -> Any:
    for option in reversed(analysis_options):
        f = option(f)
    return f


@cli.command(context_settings=_CONTEXT)
@click.argument("spec_a", metavar="A", type=click.Path(dir_okay=False))
@click.argument("spec_b", metavar="B", type=click.Path(dir_okay=False))
@click.option("--depth", type=click.IntRange(min=1), default=2, show_default=True,
              help="Levels of blocks to align; deeper layers fold into block subtotals.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              default="table", show_default=True)
@click.option("--only-changes", is_flag=True, help="Leave out the rows that are the same.")
@network_options
@_analysis_options
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


def _split_top(text: str) -> list[str]:
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
        axes.setdefault(key.strip(), []).extend(map(_parse_value, _split_top(values)))
    for pair in inputs:
        for name, shape in _input_shapes((pair,)).items():
            axes.setdefault(INPUT_PREFIX + name, []).append(shape)
    return axes


@cli.command(context_settings=_CONTEXT)
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
@_analysis_options
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
    _check_output(plot, spec)
    parsed = load_spec(spec)
    variants = sweeps.sweep(parsed, axes, batch=batch, dtype=dtype, convention=convention)
    if fmt == "json":
        click.echo(json.dumps(sweeps.to_dict(variants), separators=(",", ":")))
    else:
        click.echo((sweep_view.table if fmt == "table" else sweep_view.to_csv)(variants),
                   nl=fmt != "csv")
    if plot and plot_fmt:
        from archspec.views.plot import plot as draw_plot

        write_atomic(plot, draw_plot(variants, parsed.name, plot_fmt, parsed.span))
        click.echo(f"wrote {plot}", err=True)


@cli.command(context_settings=_CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--to", "to", type=click.Choice(["arch", "yaml"]), required=True,
              help="Target format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write here instead of standard output.")
@path_option
@debug_option
def convert(spec: str, to: str, output: str | None, debug: bool) -> None:
    """Convert SPEC between the text (.arch) and YAML forms; the IR is unchanged."""
    from archspec.lang.syntax.printer import to_text
    from archspec.lang.syntax.yaml_form import to_yaml

    _check_output(output, spec)
    text = (to_text if to == "arch" else to_yaml)(load_spec(spec))
    if output:
        write_atomic(output, text)
    else:
        click.echo(text, nl=False)


@cli.command(context_settings=_CONTEXT)
@click.argument("name", required=False)
@click.option("--markdown", is_flag=True, help="Print the whole reference as Markdown.")
def ops(name: str | None, markdown: bool) -> None:
    """List the layer kinds, or show one op's signature and rules."""
    from archspec.lang.plugins import PLUGINS, lookup
    from archspec.views.ops_reference import markdown as reference
    from archspec.lang.values import signature
    from archspec.views.ops_reference import unique_ops

    if markdown:
        click.echo(reference())
    elif name:
        op = lookup(name)
        if op is None:
            raise click.BadParameter(f"unknown op {name!r}", param_hint="NAME")
        origin = f"\nplugin: from the `{PLUGINS[op.name]}` package" if op.name in PLUGINS else ""
        click.echo(f"{signature(op)}\n\n{op.doc}\n\ncategory: {op.category.value}{origin}")
    else:
        for op in unique_ops():
            alias = f" (alias: {', '.join(op.aliases)})" if op.aliases else ""
            click.echo(f"{signature(op)}{alias}")


@cli.command(context_settings=_CONTEXT)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def specs(fmt: str) -> None:
    """List the specs shipped with archspec, with params and MACs (torchvision convention).

    \b
    Import their blocks from any folder:  import "std/blocks/resnet.arch"
    Check one by its name:                archspec check std/resnet18.arch
    """
    from archspec.views.library import as_json, as_table

    click.echo(as_json() if fmt == "json" else as_table())


@cli.command(context_settings=_CONTEXT)
@click.argument("code", required=False)
@click.option("--markdown", is_flag=True, help="Print the table as Markdown (docs/errors.md).")
def errors(code: str | None, markdown: bool) -> None:
    """List the diagnostic codes, or say what one code means.

    \b
    Examples:
      archspec errors E302
      archspec errors --markdown > docs/errors.md
    """
    from archspec.lang.diagnostics import CODES, codes_markdown

    if markdown:
        click.echo(codes_markdown(), nl=False)
    elif code:
        if code.upper() not in CODES:
            raise click.BadParameter(f"unknown code {code!r}; `archspec errors` lists them",
                                     param_hint="CODE")
        click.echo(f"{code.upper()}: {CODES[code.upper()]}")
    else:
        for key, title in CODES.items():
            click.echo(f"{key}  {title}")


def _say(text: str) -> None:
    """Print ``text`` to stderr with everything a terminal would act on escaped."""
    click.echo("\n".join(printable(line) for line in text.split("\n")), err=True)


def _show_click_error(exc: click.ClickException) -> None:
    buffer = io.StringIO()
    exc.show(file=buffer)
    _say(buffer.getvalue().rstrip("\n"))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, render ArchspecError as diagnostics (exit 1).

    Everything printed here is passed through :func:`printable`: click's messages and
    exception texts may quote a spec's name or content.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="archspec", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        _show_click_error(exc)
        sys.exit(exc.exit_code)
    except MissingExtra as exc:
        click.echo(exc.diagnostic.render(), err=True)
        sys.exit(2)
    except ArchspecError as exc:
        if debug:
            raise
        for d in exc.diagnostics:
            click.echo(d.render(), err=True)
        if len(exc.diagnostics) >= MAX_ERRORS:
            click.echo(f"error: stopped after {MAX_ERRORS} errors", err=True)
        sys.exit(1)
    except (KeyboardInterrupt, BrokenPipeError):
        sys.exit(130)
    except OSError as exc:  # the machine's doing (disk full, no permission), not the spec's
        if debug:
            raise
        _say(f"error: cannot write: {exc}")
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        _say(f"internal error: {type(exc).__name__}: {exc}\n"
             "this is a bug in archspec; rerun with --debug for the traceback")
        sys.exit(3)
