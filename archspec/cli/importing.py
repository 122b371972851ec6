"""`archspec import`: a PyTorch module or an ONNX file -> a folded spec (and its weights)."""

from __future__ import annotations

import json
from typing import Any

import click

from archspec.cli.messages import say
from archspec.cli.options import CONTEXT, check_output, input_shapes


@click.command("import", context_settings=CONTEXT)
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The spec to write (.arch).")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Also write the source's parameters and buffers here (.safetensors), "
                   "under the spec's state_dict keys.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=CxHxW",
              help="An input's per-sample shape, e.g. --input x=3x224x224 (PyTorch default "
                   "x=3x224x224; ONNX: the file's own shapes). Repeatable.")
@click.option("--kwargs", "kwargs", default="{}", metavar="JSON",
              help='Keyword arguments for the Python callable, e.g. \'{"num_classes": 10}\'.')
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
def import_(source: str, output: str, weights: str | None, inputs: tuple[str, ...],
            kwargs: str, debug: bool) -> None:
    """Lift SOURCE into a folded spec: blocks, repeats, residuals and concats.

    SOURCE is an ONNX file (read as data: no code runs), or a Python reference
    `package.module:callable` or `file.py:callable`. A Python reference IMPORTS AND RUNS
    THAT CODE (the module, then the callable with --kwargs): import only code you trust
    (docs/security.md).

    \b
      archspec import torchvision.models:resnet50 -o r50.arch --weights r50.safetensors
      archspec import model.onnx -o net.arch --weights net.safetensors
      archspec import nets.py:build --kwargs '{"width": 32}' --input x=3x64x64 -o net.arch
    """
    from archspec.importers import import_model, write

    try:
        options: Any = json.loads(kwargs)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--kwargs") from None
    if not isinstance(options, dict):
        raise click.BadParameter("give a JSON object", param_hint="--kwargs")
    check_output(output, source)
    check_output(weights, source, output, hint="--weights")
    imported = import_model(source, input_shapes(inputs) or None, options)
    write(imported, output, weights)
    lines = sum(1 for ln in imported.text.splitlines() if ln.strip() and ln[0] != "#")
    say(f"wrote {output} ({lines} lines, {len(imported.spec.blocks)} blocks)"
        + (f" and {weights} ({len(imported.weights)} tensors)" if weights else ""))
