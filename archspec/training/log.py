"""What `archspec train` writes beside its checkpoints: ``metrics.json`` (the whole history),
``metrics.csv`` (one row per epoch) and TensorBoard event files under ``tensorboard/`` when
the ``tensorboard`` package is installed (``pip install 'archspec[tensorboard]'``); and the
guard that keeps a run from replacing an earlier run's files in the same folder."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archspec.files.atomic import same_file, write_atomic
from archspec.training.folders import folder_error

#: The files a run writes in its --out folder: one of them there means a run is there.
RUN_FILES = ("best.pt", "last.pt", "metrics.json", "metrics.csv")

#: The prefix of TensorBoard's event files (``events.out.tfevents.<time>.<host>...``).
EVENTS_PREFIX = "events.out.tfevents."

#: Per-epoch series, in CSV column order after `epoch`.
SERIES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_top5", "lr",
          "images_per_s", "epoch_time_s")


@dataclass
class Metrics:
    """The run's history: per-epoch lists (accuracies are top-1 fractions, ``val_top5`` the
    top-5 fraction, ``lr`` the learning rate at the epoch's end, ``images_per_s`` the training
    throughput, ``epoch_time_s`` training plus validation in seconds) and the final test."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_top5: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    epoch_time_s: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    test_accuracy: float | None = None
    test_top5: float | None = None

    def add(self, row: dict[str, float]) -> None:
        for key in SERIES:
            getattr(self, key).append(row[key])

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["epoch", *SERIES])
        for epoch in range(len(self.train_loss)):
            writer.writerow([epoch + 1, *(_at(getattr(self, k), epoch) for k in SERIES)])
        return buffer.getvalue()


def _at(values: list[float], i: int) -> str:
    return f"{values[i]:.6g}" if i < len(values) else ""


class RunLog:
    """Writes the metrics files into ``out`` (nothing when ``out`` is None)."""

    def __init__(self, out: Path | None, log: Any) -> None:
        self.out = out
        self.writer: Any = None
        if out is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log("note: no TensorBoard event files (the tensorboard package is not installed: "
                "pip install 'archspec[tensorboard]'); metrics.json and metrics.csv are written")
            return
        self.writer = SummaryWriter(str(out / "tensorboard"))

    def epoch(self, metrics: Metrics, epoch: int) -> None:
        """Write the files after ``epoch`` (1-based) and its scalars to TensorBoard."""
        if self.out is None:
            return
        self.files(metrics)
        if self.writer is not None:
            for key in SERIES:
                self.writer.add_scalar(key, getattr(metrics, key)[-1], epoch)
            self.writer.flush()

    def files(self, metrics: Metrics) -> None:
        if self.out is None:
            return
        write_atomic(self.out / "metrics.json", json.dumps(asdict(metrics), indent=2))
        write_atomic(self.out / "metrics.csv", metrics.csv_text())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def check_run_folder(out: Path, resume: str | None, overwrite: bool) -> bool:
    """Refuse (E905) an ``out`` folder that holds an earlier run's files (:data:`RUN_FILES`)
    unless ``overwrite``, or ``resume`` names a checkpoint in that folder (the run goes on).
    Returns whether the earlier run is replaced (its TensorBoard events are then stale)."""
    found = [name for name in RUN_FILES if (out / name).exists()]
    if not found:
        return False
    if resume and same_file(Path(resume).parent, out):
        return False
    if overwrite:
        return True
    ckpt = next((out / name for name in ("last.pt", "best.pt") if name in found), None)
    resume_it = f"--resume {ckpt} continues that run, " if ckpt else ""
    raise folder_error("E905", f"{out} already holds a training run ({', '.join(found)}): "
                       "this run would replace it", out,
                       f"{resume_it}--overwrite replaces it; or choose another --out folder")


def remove_events(folder: Path) -> int:
    """Remove the TensorBoard event files (regular files named :data:`EVENTS_PREFIX`...)
    directly in ``folder``, so that a replaced run's curves are not drawn with the new ones;
    returns how many were removed."""
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if p.name.startswith(EVENTS_PREFIX)
             and p.is_file() and not p.is_symlink()]
    for path in stale:
        path.unlink()
    return len(stale)
