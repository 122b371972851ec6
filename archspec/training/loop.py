"""The training loop behind `archspec train`: one device, AMP, torch.compile, or DDP.

Under ``torchrun --nproc-per-node N -m archspec train ...`` it runs DistributedDataParallel
(nccl on CUDA, gloo on CPU) with a DistributedSampler; rank 0 alone logs and writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from archspec.backends.torch import to_torch
from archspec.backends.weights import checkpoint_classes, checkpoint_data
from archspec.files.atomic import atomic_file
from archspec.lang import ir
from archspec.lang.diagnostics import Diagnostic
from archspec.lang.expander import expand
from archspec.training.config import Dist, TrainConfig, pick_device, setup_distributed
from archspec.training.data import (
    FolderPipeline,
    Head,
    ImageFiles,
    Pipeline,
    ShapesDataset,
    ShapesPipeline,
    builtin_provenance,
    check_classes,
    classifier,
    collate_skipping_unreadable,
    data_text,
    eval_split,
    say_stderr,
    shape_names,
    split,
    warn_stderr,
)
from archspec.training.folders import check_splittable
from archspec.training.log import Metrics, RunLog, check_run_folder, remove_events


def spec_text(spec: ir.Spec) -> str:
    """The spec's source text (what the checkpoint stores and hashes)."""
    return spec.span.source.text


def _silent(_diagnostic: Diagnostic) -> None:
    """The warnings of a process that is not rank 0: rank 0 says them."""


def top5_text(top5: float, classes: int) -> str:
    """`` (top-5 0.9120)`` where top-5 says more than top-1 (more than 5 classes), else
    nothing: with 5 classes or fewer every sample is in the top 5."""
    return f" (top-5 {top5:.4f})" if classes > 5 else ""


@dataclass
class Data:
    """The train/val/test sets, the number of classes in the data, the pipeline that makes
    model inputs of their batches on the device, the class names in label order, and where
    the data comes from (the checkpoints' ``data`` entry)."""

    train: Dataset
    val: Dataset
    test: Dataset
    classes: int
    pipeline: Pipeline
    names: tuple[str, ...]
    source: Mapping[str, Any]


def folder_data(path: str, head: Head, warn: Callable[[Diagnostic], None],
                names: list[str] | None = None) -> ImageFiles:
    """The image folder at ``path``, labelled by ``names`` when given (a checkpoint's classes),
    its classes checked against the network's outputs (:func:`check_classes`)."""
    full = ImageFiles(path, head.shape, names)
    check_classes(head, len(full.classes), path, warn)
    return full


def shapes_data(cfg: TrainConfig, head: Head,
                warn: Callable[[Diagnostic], None]) -> ShapesDataset:
    """The built-in dataset at the network's input shape, with as many shape classes as the
    network has outputs, at most 10 (more outputs: W901)."""
    full = ShapesDataset(cfg.samples, head.classes, head.shape, seed=cfg.seed)
    check_classes(head, full.classes, "the built-in dataset", warn)
    return full


def datasets(head: Head, cfg: TrainConfig,
             warn: Callable[[Diagnostic], None] = warn_stderr) -> Data:
    """Train/val/test sets (split 7:2:1) of ``cfg.data`` or of the built-in shapes, for a
    network whose input and logits are ``head``."""
    full: Dataset
    if cfg.data:
        full = folder_data(cfg.data, head, warn)
        check_splittable(len(full), cfg.data)
        names, pipeline = tuple(full.classes), FolderPipeline()
        source = {"kind": "folder", "path": cfg.data}
    else:
        full = shapes_data(cfg, head, warn)
        names, pipeline = shape_names(full.classes), ShapesPipeline(full)
        source = builtin_provenance(full)
    train, val, test = split(full, cfg.seed)
    return Data(train, val, test, len(names), pipeline, names, source)


def loader(ds: Dataset, cfg: TrainConfig, d: Dist, shuffle: bool, pin: bool) -> DataLoader:
    """Batches of ``ds``: sharded across processes when training under torchrun; with
    ``cfg.workers`` processes decoding ahead (persistent, 4 batches each) and pinned memory
    when the device is a GPU."""
    sampler = DistributedSampler(ds, d.world, d.rank, shuffle=shuffle, seed=cfg.seed) \
        if d.world > 1 and shuffle else None
    workers = cfg.workers or 0
    return DataLoader(ds, batch_size=cfg.batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, num_workers=workers, pin_memory=pin,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
                      collate_fn=collate_skipping_unreadable,
                      generator=torch.Generator().manual_seed(cfg.seed))


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast with ``amp`` (fp16 on GPUs without bf16), else nothing."""
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.float16
    if device.type == "cpu" or torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def batches(data: DataLoader, pipeline: Pipeline, device: torch.device, channels_last: bool,
            train: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Model inputs ``(B, C, H, W)`` and labels ``(B,)`` on ``device``."""
    for batch in data:
        if batch is None:
            continue
        x, y = batch
        x = pipeline(x.to(device, non_blocking=True), y, train)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y.to(device, non_blocking=True)


def split_outputs(out: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The main logits and the auxiliary ones of a model's output. A spec with several
    outputs returns a dict in ``output`` order: the first is the main head; the others with
    the main head's shape are auxiliary classifiers (GoogLeNet's, Inception-v3's ``aux``)."""
    if not isinstance(out, dict):
        return out, []
    main, *rest = out.values()
    return main, [a for a in rest if a.shape == main.shape]


def loss_of(out: Any, y: torch.Tensor, aux_weight: float,
            label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy (with ``label_smoothing``) of the main head plus ``aux_weight`` x that of
    each auxiliary head, as torchvision's reference training does; returns (loss, main
    logits)."""
    main, aux = split_outputs(out)
    loss = nn.functional.cross_entropy(main.float(), y, label_smoothing=label_smoothing)
    for head in aux:
        loss = loss + aux_weight * nn.functional.cross_entropy(
            head.float(), y, label_smoothing=label_smoothing)
    return loss, main


def correct_top(logits: torch.Tensor, y: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many rows of ``logits`` ``(B, classes)`` have label ``y`` among their k highest, for
    each k (k above the class count counts every row)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hit = top == y[:, None]
    return [int(hit[:, :k].any(dim=1).sum()) for k in ks]


@dataclass
class Score:
    """Mean loss, top-1 and top-5 fractions over ``n`` samples, at ``images_per_s``."""

    loss: float
    top1: float
    top5: float
    n: int
    images_per_s: float
    classes: tuple[str, ...] = ()


def evaluate(model: nn.Module, data: DataLoader, pipeline: Pipeline, device: torch.device,
             amp: bool, channels_last: bool = False) -> Score:
    """Plain cross-entropy, top-1 and top-5 of ``model`` over ``data`` (no augmentation)."""
    model.eval()
    total, hits, loss_sum = 0, [0, 0], 0.0
    start = time.perf_counter()
    with torch.no_grad(), autocast(device, amp):
        for x, y in batches(data, pipeline, device, channels_last, train=False):
            out = split_outputs(model(x))[0].float()
            loss_sum += nn.functional.cross_entropy(out, y, reduction="sum").item()
            hits = [a + b for a, b in zip(hits, correct_top(out, y))]
            total += y.numel()
    n = max(total, 1)
    return Score(loss_sum / n, hits[0] / n, hits[1] / n, total,
                 total / max(time.perf_counter() - start, 1e-9))


def lr_factor(step: int, total: int, warmup: int, schedule: str, per_epoch: int,
              lr_step: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) as a fraction of ``--lr``: a
    linear warm-up over the first ``warmup`` steps ((step + 1) / warmup), then ``cosine``
    (half a cosine period from 1 to 0 over the remaining steps), ``step`` (x0.1 every
    ``lr_step`` epochs) or ``none`` (constant)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))
    if schedule == "step":
        return 0.1 ** (step // (per_epoch * lr_step))
    return 1.0


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices and kernels only: biases and normalisation scales and
    shifts (every parameter with fewer than 2 dimensions) are not decayed."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a corrupt file."""
    with atomic_file(path) as f:
        torch.save(obj, f)


def check_out(out: Path) -> None:
    """Create the output folder and write (then remove) a probe file in it, so that an
    unwritable ``--out`` is an ``OSError`` naming it before the first epoch, not after."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out):
        pass


class Trainer:
    """Owns the model, optimiser, schedule, data and bookkeeping of one run."""

    def __init__(self, spec: ir.Spec, cfg: TrainConfig, log: Any = print) -> None:
        self.spec, self.log = spec, log
        head = classifier(spec, "`archspec train`")
        replaced = bool(cfg.out) and check_run_folder(Path(str(cfg.out)), cfg.resume,
                                                      cfg.overwrite)
        torch.manual_seed(cfg.seed)
        self.device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.cfg = cfg = cfg.on(self.device)
        self.dist = setup_distributed(self.device)
        out = Path(cfg.out) if cfg.out and self.dist.main else None
        if out:
            check_out(out)
            if replaced:
                remove_events(out / "tensorboard")
                log(f"--overwrite: replacing the run in {out}")
        self.data = datasets(head, cfg, warn_stderr if self.dist.main else _silent)
        if not cfg.data and self.dist.main:
            log(f"built-in dataset: {cfg.samples} generated images of {self.data.classes} "
                f"shape classes (split 7:2:1)")
        pin = self.device.type == "cuda"
        self.train_loader = loader(self.data.train, cfg, self.dist, True, pin)
        self.val_loader = loader(self.data.val, cfg, self.dist, False, pin)
        self.test_loader = loader(self.data.test, cfg, self.dist, False, pin)
        self.model = to_torch(spec).to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = self._optimizer()
        self.scheduler = self._scheduler()
        self.metrics = Metrics()
        self.start_epoch = 1
        if cfg.resume:
            self._resume(Path(cfg.resume))
        self.net = self._wrap()
        use_scaler = bool(cfg.amp) and self.device.type == "cuda" and \
            not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.runlog = RunLog(out, log)

    def _scheduler(self) -> torch.optim.lr_scheduler.LambdaLR:
        """The per-step learning-rate schedule (:func:`lr_factor`) over the whole run."""
        cfg, per_epoch = self.cfg, max(len(self.train_loader), 1)
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: lr_factor(
            step, cfg.epochs * per_epoch, round(cfg.warmup * per_epoch), cfg.schedule,
            per_epoch, cfg.lr_step))

    def _wrap(self) -> nn.Module:
        """The module the steps call: DDP under torchrun, compiled with --compile."""
        net: nn.Module = self.model
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
            torch.manual_seed(self.cfg.seed + self.dist.rank)  # each rank its own crops, flips
        return torch.compile(net) if self.cfg.compile else net

    def _optimizer(self) -> torch.optim.Optimizer:
        groups = param_groups(self.model, self.cfg.weight_decay)
        if self.cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.cfg.lr, momentum=0.9)
        return torch.optim.AdamW(groups, lr=self.cfg.lr)

    def _resume(self, path: Path) -> None:
        """Model, optimiser, schedule, metrics and epoch from an `archspec train` checkpoint,
        read and checked as exported weights are (E611/E612 for a bad file or entry)."""
        from archspec.backends.weights import bad_checkpoint, checked_state, read_checkpoint

        ckpt = read_checkpoint(path, self.spec)
        state, epoch = ckpt.get("state_dict"), ckpt.get("epoch")
        if not isinstance(state, Mapping) or type(epoch) is not int:
            raise bad_checkpoint(path, "it is not an `archspec train` checkpoint (no "
                                       "`state_dict` and `epoch`)", self.spec)
        if ckpt.get("spec_sha256") != hashlib.sha256(spec_text(self.spec).encode()).hexdigest():
            self.log(f"warning: {path} was trained from a different spec text")
        trained = checkpoint_classes(ckpt, path, self.spec)
        if trained is not None and tuple(trained) != self.data.names:
            self.log(f"warning: {path} was trained on the classes {', '.join(trained)}; the "
                     f"data has {', '.join(self.data.names)}")
        if checkpoint_data(ckpt, path, self.spec) not in (None, self.data.source):
            self.log(f"warning: {path} was trained on {data_text(ckpt['data'])}; this run "
                     f"trains on {data_text(self.data.source)}")
        self.model.load_state_dict(checked_state(state, str(path), self.spec, expand(self.spec)))
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if "scheduler" in ckpt:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            self.metrics = Metrics(**ckpt.get("metrics", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise bad_checkpoint(path, f"its optimizer or metrics do not fit ({exc})",
                                 self.spec) from None
        self.start_epoch = epoch + 1
        self.log(f"resumed from {path} at epoch {epoch}")

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on a batch; returns the (detached) loss and main logits."""
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, bool(self.cfg.amp)):
            loss, out = loss_of(self.net(x), y, self.cfg.aux_weight, self.cfg.label_smoothing)
        self.scaler.scale(loss).backward()
        if self.cfg.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach(), out.detach()

    def train_epoch(self, epoch: int, progress: Any) -> dict[str, float]:
        """Train one epoch; returns its loss, top-1 accuracy and images/s (all processes)."""
        self.net.train()
        sampler = self.train_loader.sampler
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        task = progress.add_task(f"epoch {epoch}/{self.cfg.epochs}",
                                 total=len(self.train_loader), loss=float("nan"), acc=0.0)
        seen, correct, loss_sum = 0, 0, 0.0
        start = time.perf_counter()
        for x, y in batches(self.train_loader, self.data.pipeline, self.device,
                            bool(self.cfg.channels_last), train=True):
            loss, out = self.step(x, y)
            seen += y.numel()
            loss_sum += loss.item() * y.numel()
            correct += correct_top(out, y, (1,))[0]
            progress.update(task, advance=1, loss=loss_sum / seen, acc=correct / seen)
        elapsed = max(time.perf_counter() - start, 1e-9)
        return {"train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
                "images_per_s": seen * self.dist.world / elapsed}

    def checkpoint(self, epoch: int, names: tuple[str, ...]) -> None:
        """Write the checkpoint as each of ``names`` (``last.pt``, ``best.pt``) in --out."""
        if not (self.dist.main and self.cfg.out):
            return
        text = spec_text(self.spec)
        ckpt = {"state_dict": self.model.state_dict(), "spec": text,
                "spec_sha256": hashlib.sha256(text.encode()).hexdigest(), "epoch": epoch,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "metrics": asdict(self.metrics),
                "overrides": dict(self.spec.overrides), "classes": list(self.data.names),
                "data": self.data.source}
        for name in names:
            save_atomic(ckpt, Path(self.cfg.out) / name)

    def run(self) -> Metrics:
        """Train for the configured epochs (or until --patience epochs without a better
        validation top-1), validating each; test the last model at the end."""
        from archspec.training.progress import progress_bar

        with progress_bar(self.dist.main and self.cfg.progress) as progress:
            for epoch in range(self.start_epoch, self.cfg.epochs + 1):
                self.epoch(epoch, progress)
                if self.stalled(epoch):
                    self.log(f"early stop: no better validation accuracy for "
                             f"{self.cfg.patience} epochs (best: epoch "
                             f"{self.metrics.best_epoch})")
                    break
        test = self._evaluate(self.test_loader)
        self.metrics.test_accuracy, self.metrics.test_top5 = test.top1, test.top5
        if self.dist.main:
            self.log(f"test accuracy {test.top1:.4f}{top5_text(test.top5, self.data.classes)}")
            self.runlog.files(self.metrics)
            self.runlog.close()
        self.checkpoint(max(len(self.metrics.train_loss), self.start_epoch - 1), ("last.pt",))
        if self.dist.world > 1:
            dist.barrier()
            dist.destroy_process_group()
        return self.metrics

    def epoch(self, epoch: int, progress: Any) -> None:
        """Train and validate one epoch, log it, write the metrics and checkpoints."""
        start = time.perf_counter()
        row = self.train_epoch(epoch, progress)
        val = self._evaluate(self.val_loader)
        row.update(val_loss=val.loss, val_accuracy=val.top1, val_top5=val.top5,
                   lr=self.optimizer.param_groups[0]["lr"],
                   epoch_time_s=time.perf_counter() - start)
        best = max(self.metrics.val_accuracy, default=-1.0)
        self.metrics.add(row)
        names = ("last.pt", "best.pt") if val.top1 > best else ("last.pt",)
        if val.top1 > best:
            self.metrics.best_epoch = epoch
        if self.dist.main:
            self.log(f"epoch {epoch}: train loss {row['train_loss']:.4f}, val loss "
                     f"{val.loss:.4f}, val accuracy {val.top1:.4f}"
                     f"{top5_text(val.top5, self.data.classes)}, "
                     f"lr {row['lr']:.3g}, {row['images_per_s']:,.0f} images/s, "
                     f"{row['epoch_time_s']:.1f} s")
            self.runlog.epoch(self.metrics, epoch)
        self.checkpoint(epoch, names)

    def stalled(self, epoch: int) -> bool:
        """Whether --patience epochs have passed since the best validation top-1."""
        best = self.metrics.best_epoch
        return bool(self.cfg.patience) and best is not None and \
            epoch - best >= int(self.cfg.patience or 0)

    def _evaluate(self, data: DataLoader) -> Score:
        """Every rank evaluates the whole (unsharded) set, so all agree without a reduce."""
        return evaluate(self.model, data, self.data.pipeline, self.device, bool(self.cfg.amp),
                        bool(self.cfg.channels_last))


def train(spec: ir.Spec, cfg: TrainConfig, log: Any = print) -> Metrics:
    """Train ``spec`` as ``cfg`` says; returns the metrics (also in ``cfg.out``)."""
    return Trainer(spec, cfg, log).run()


def evaluate_weights(spec: ir.Spec, weights: str | Path, cfg: TrainConfig,
                     given: Collection[str] = (), other_split: bool = False,
                     log: Callable[[str], None] = say_stderr) -> Score:
    """Loss, top-1 and top-5 of ``spec`` with ``weights`` (a state_dict file or an `archspec
    train` checkpoint) on every image of the folder ``cfg.data``, or on the built-in test split
    of the run that trained them when there is none (:func:`eval_split`: ``given`` names the
    options of ``cfg.samples`` and ``cfg.seed`` the user gave, ``other_split`` lets them
    choose another split)."""
    from archspec.backends.weights import checked_state, read_checkpoint

    head = classifier(spec, "`archspec eval`")
    device = pick_device(cfg.device)
    cfg = cfg.on(device)
    state = read_checkpoint(weights, spec)
    trained = checkpoint_classes(state, weights, spec)
    stored = checkpoint_data(state, weights, spec)
    if isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    model = to_torch(spec)
    model.load_state_dict(checked_state(state, str(weights), spec, expand(spec)))
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.data:
        folder = folder_data(cfg.data, head, warn_stderr, trained)
        ds: Dataset = folder
        pipeline: Pipeline = FolderPipeline()
        names = tuple(folder.classes)
    else:
        asked = {"samples": cfg.samples, "seed": cfg.seed}
        cfg = dataclasses.replace(cfg, **eval_split(stored, asked, given, other_split, spec, log))
        full = shapes_data(cfg, head, warn_stderr)
        ds, pipeline = split(full, cfg.seed)[2], ShapesPipeline(full)
        names = tuple(trained) if trained is not None else shape_names(full.classes)
    data = loader(ds, cfg, Dist(), False, device.type == "cuda")
    score = evaluate(model, data, pipeline, device, bool(cfg.amp), bool(cfg.channels_last))
    return dataclasses.replace(score, classes=names)
