"""The commands that build the network in a framework: ``compile`` (PyTorch source),
``export`` (ONNX, optionally int8) and ``bench`` (torch against onnxruntime).

torch, onnx and onnxruntime are imported inside the commands, after :func:`load_spec` has
checked that their extras are installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from archspec.cli.messages import exit_1_on_runtime_error
from archspec.cli.options import (
    CONTEXT,
    check_memory,
    check_output,
    check_outputs,
    debug_option,
    load_spec,
    memory_option,
    network_options,
)
from archspec.files.atomic import write_atomic
from archspec.lang.limits import MAX_BATCH


@click.command(name="compile", context_settings=CONTEXT)
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
    check_output(output, spec)
    network = load_spec(spec, "torch")
    check_outputs([output], spec)
    from archspec.backends.eject import eject

    text = eject(network)
    if output:
        write_atomic(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


MAX_CALIBRATION = 20_000
"""The most calibration images `export --quantize int8` holds (about 12 GB at 3x224x224 in
float32; onnxruntime's calibration needs a few hundred)."""


def _batch(value: str) -> str | int:
    """``--batch`` of ``export``: ``dynamic`` or a positive integer."""
    if value == "dynamic":
        return value
    if value.isdigit() and len(value) <= len(str(MAX_BATCH)) and 0 < int(value) <= MAX_BATCH:
        return int(value)
    raise click.BadParameter(f"expected `dynamic` or an integer from 1 to {MAX_BATCH:,}, got "
                             f"{value!r}", param_hint="--batch")


@click.command(context_settings=CONTEXT)
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
@click.option("--calibration-samples", type=click.IntRange(4, MAX_CALIBRATION), default=200,
              show_default=True, help="With --quantize: images, 3/4 to calibrate, 1/4 held out "
              f"(at most {MAX_CALIBRATION:,}: they are held in memory).")
@network_options
@memory_option
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
    data = output + ".data"  # written beside the model with external data
    check_output(output, spec, weights)
    check_output(data, spec, weights)
    network = load_spec(spec, "torch", "onnx")
    check_outputs([output, data], spec, weights)
    check_memory(network, 1, "forward" if quantize else "weights")  # int8 calibrates
    from archspec.backends.onnx import export_onnx
    from archspec.backends.onnx_file import EXTERNAL_ABOVE

    if quantize and (fp16 or external_data):
        raise click.BadParameter("--quantize int8 starts from a float32 model held in one file",
                                 param_hint="--fp16/--external-data")
    if quantize and batch != "dynamic":
        raise click.BadParameter("--quantize int8 writes a model with a dynamic batch (its "
                                 "calibration and agreement run in batches)",
                                 param_hint="--batch")
    had_data = Path(data).exists()
    if quantize:
        exit_1_on_runtime_error(debug, _export_int8, network, output, weights, opset, batch,
                                calibrate, calibration_samples)
    else:
        model = export_onnx(network, output, weights=weights, opset=opset,
                            batch=_batch(batch), fp16=fp16,
                            external_above=0 if external_data else EXTERNAL_ABOVE)
        size = Path(output).stat().st_size
        # initialisers stay in the returned model when external
        extra = f" + {data} ({Path(data).stat().st_size / 1e6:.1f} MB)" \
            if model.graph.initializer else ""
        click.echo(f"wrote {output} ({size / 1e6:.1f} MB{extra}, {len(model.graph.node)} "
                   f"nodes, opset {opset})", err=True)
    if had_data and not Path(data).exists():
        click.echo(f"removed {data}: the external data of the export {output} replaced",
                   err=True)


def _export_int8(spec: Any, output: str, weights: str | None, opset: int, batch: str,
                 calibrate: str, samples: int) -> None:
    """Export float32 to a temporary file, quantise it into ``output``, print the report."""
    import tempfile

    from archspec.backends.onnx import export_onnx
    from archspec.backends.onnx_file import replacing_external_data
    from archspec.backends.quantize import quantize_int8
    from archspec.training.data import calibration_images

    images = calibration_images(spec, calibrate, samples)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        export_onnx(spec, float_path, weights=weights, opset=opset, batch=_batch(batch))
        with replacing_external_data(output):
            report = quantize_int8(float_path, Path(output), images)
    click.echo(f"wrote {output} (int8, QDQ, per-channel)", err=True)
    for line in report.lines():
        click.echo(line)


@click.command(context_settings=CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--backend", type=click.Choice(["torch", "onnxruntime", "both"]), default="both",
              show_default=True)
@click.option("--batch", type=click.IntRange(1, MAX_BATCH), default=1, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Intra-op threads for both runtimes; the process is pinned to as many "
                   "cores (default: every core it may use).")
@click.option("--runs", type=click.IntRange(min=3), default=30, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed runs of each runtime before timing.")
@network_options
@memory_option
@debug_option
def bench(spec: str, backend: str, batch: int, device: str, threads: int | None, runs: int,
          warmup: int, debug: bool) -> None:
    """Latency (median, p90) and throughput of the compiled torch module and the exported ONNX
    model (onnxruntime), side by side, with the same weights.

    Uses CUDAExecutionProvider with --device cuda when onnxruntime-gpu sees a GPU, and says
    which execution provider ran. Reports median, p90 and spread ((p90 - p10) / median).
    """
    network = load_spec(spec, "torch", *(("onnx",) if backend != "torch" else ()))
    check_memory(network, batch)
    from archspec.training.bench import run_bench

    try:
        for line in run_bench(network, backend, batch, device, threads, runs, warmup):
            click.echo(line)
    except RuntimeError as exc:
        if debug:
            raise
        raise click.ClickException(str(exc)) from None
