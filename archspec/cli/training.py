"""The commands that run the network in PyTorch: ``train`` and ``eval``, with the data,
device and precision options they share.

torch is imported inside the commands, after :func:`load_spec` has checked that it is
installed.
"""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from archspec.cli.messages import exit_1_on_runtime_error, say, tell
from archspec.cli.options import (
    CONTEXT,
    check_memory,
    debug_option,
    load_spec,
    memory_option,
    network_options,
)
from archspec.lang.diagnostics import printable
from archspec.lang.limits import MAX_BATCH

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


@click.command(context_settings=CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@data_option
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH), default=32, show_default=True)
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
                   "metrics.json, metrics.csv and TensorBoard event files here, atomically. "
                   "A folder that holds an earlier run is refused (E905) unless --resume "
                   "names a checkpoint in it or --overwrite is given.")
@click.option("--resume", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Continue from a last.pt (or best.pt) checkpoint.")
@click.option("--overwrite", is_flag=True,
              help="Replace the run already in --out: its checkpoints and metrics, and its "
                   "TensorBoard event files (removed at the start).")
@click.option("--samples", type=click.IntRange(min=10), default=12000, show_default=True,
              help="Size of the built-in dataset.")
@click.option("--seed", type=int, default=0, show_default=True)
@workers_option
@click.option("--aux-weight", type=click.FloatRange(min=0), default=0.4, show_default=True,
              help="Loss weight of auxiliary heads: outputs after the first with its shape.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@network_options
@memory_option
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
    check_memory(network, options["batch_size"], "training")
    from archspec.training.config import TrainConfig
    from archspec.training.loop import train as run_train

    cfg = TrainConfig(**options, compile=compile_, progress=not quiet)
    exit_1_on_runtime_error(debug, run_train, network, cfg, tell)


@click.command(name="eval", context_settings=CONTEXT)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--weights", type=click.Path(dir_okay=False, exists=True), required=True,
              help="A torch.save(state_dict) file or an `archspec train` checkpoint.")
@data_option
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH), default=64, show_default=True)
@click.option("--samples", type=click.IntRange(min=10), default=12000,
              help="Without --data: the built-in dataset's size (its test split is scored). "
                   "Default: the checkpoint's (what `train` was given), else 12000.")
@click.option("--seed", type=int, default=0,
              help="Without --data: the built-in dataset's seed. Default: the checkpoint's, "
                   "else 0.")
@click.option("--allow-other-split", is_flag=True,
              help="Score the test split of --samples/--seed even where it holds images the "
                   "checkpoint's run trained or validated on (refused otherwise: E908).")
@device_option
@amp_option
@channels_last_option
@workers_option
@network_options
@memory_option
@debug_option
def eval_(spec: str, weights: str, debug: bool, allow_other_split: bool,
          **options: Any) -> None:
    """Score SPEC with trained weights: loss, top-1 and top-5 on every image of --data (or on
    the built-in data's test split: that of the run which wrote the checkpoint), without
    training.

        archspec eval specs/resnet18.arch --weights runs/r18/best.pt --data photos/
    """
    network = load_spec(spec, "torch", *(("vision",) if options.get("data") else ()))
    check_memory(network, options["batch_size"])
    from archspec.training.config import TrainConfig
    from archspec.training.loop import evaluate_weights, top5_text

    context = click.get_current_context()
    given = [name for name in ("samples", "seed")
             if context.get_parameter_source(name) is not ParameterSource.DEFAULT]
    score = exit_1_on_runtime_error(debug, evaluate_weights, network, weights,
                                   TrainConfig(**options), given, allow_other_split, say)
    classes = len(score.classes) if score.classes else 6  # unnamed: say the top-5 too
    click.echo(f"{score.n} images: loss {score.loss:.4f}, top-1 {score.top1:.4f}"
               f"{top5_text(score.top5, classes)} ({score.images_per_s:,.0f} images/s)")
    if score.classes:
        click.echo(printable(f"classes: {', '.join(score.classes)}", " "))
