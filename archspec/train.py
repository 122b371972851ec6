"""The training loop behind `archspec train`: one device, AMP, torch.compile, or DDP.

Under ``torchrun --nproc-per-node N -m archspec train ...`` it runs DistributedDataParallel
(nccl on CUDA, gloo on CPU) with a DistributedSampler; rank 0 alone logs and writes files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from archspec import ir
from archspec.atomic import atomic_file, write_atomic
from archspec.backends.torch import to_torch
from archspec.data import ShapesDataset, collate_skipping_unreadable, image_folder, split
from archspec.expander import expand


@dataclass
class TrainConfig:
    """Options of `archspec train` (see its --help)."""

    data: str | None = None
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adamw"
    device: str = "auto"
    amp: bool = False
    compile: bool = False
    out: str | None = None
    resume: str | None = None
    samples: int = 12000
    seed: int = 0
    workers: int = 0
    progress: bool = True
    aux_weight: float = 0.4


@dataclass
class Metrics:
    """Per-epoch history written to metrics.json."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    test_accuracy: float | None = None


@dataclass
class Dist:
    """The process's place in a distributed run (world 1 when not under torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Dist:
    """Join the process group torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present (this process's GPU under torchrun), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda, but no CUDA device is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(name)


def spec_text(spec: ir.Spec) -> str:
    """The spec's source text (what the checkpoint stores and hashes)."""
    return spec.span.source.text


def datasets(spec: ir.Spec, cfg: TrainConfig) -> tuple[Dataset, Dataset, Dataset, int]:
    """Train/val/test sets and the number of classes the data has."""
    graph = expand(spec)
    (shape,) = graph.inputs.values() if len(graph.inputs) == 1 else (None,)
    if shape is None:
        raise RuntimeError("`archspec train` needs a spec with exactly one input")
    (out_shape,) = [graph.shape_of(v) for v in graph.outputs.values()][:1]
    classes = out_shape[0]
    if cfg.data:
        full = image_folder(cfg.data, shape)
        n_classes = len(full.classes)  # type: ignore[attr-defined]
        if n_classes > classes:
            raise RuntimeError(f"{cfg.data} has {n_classes} classes but the network has "
                               f"{classes} outputs: use --set num_classes={n_classes}")
    else:
        full = ShapesDataset(cfg.samples, classes, shape, seed=cfg.seed)
        n_classes = full.classes
    train, val, test = split(full, cfg.seed)
    return train, val, test, n_classes


def _loader(ds: Dataset, cfg: TrainConfig, d: Dist, shuffle: bool) -> DataLoader:
    sampler = DistributedSampler(ds, d.world, d.rank, shuffle=shuffle, seed=cfg.seed) \
        if d.world > 1 and shuffle else None
    return DataLoader(ds, batch_size=cfg.batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, num_workers=cfg.workers,
                      collate_fn=collate_skipping_unreadable,
                      generator=torch.Generator().manual_seed(cfg.seed))


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.float16
    if device.type == "cpu" or torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def _batches(loader: DataLoader, device: torch.device,
             channels_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for batch in loader:
        if batch is None:
            continue
        x, y = batch
        x = x.to(device, non_blocking=True)
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


def loss_of(out: Any, y: torch.Tensor, aux_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the main head plus ``aux_weight`` x that of each auxiliary head, as
    torchvision's reference training does; returns (loss, main logits)."""
    main, aux = split_outputs(out)
    loss = nn.functional.cross_entropy(main.float(), y)
    for head in aux:
        loss = loss + aux_weight * nn.functional.cross_entropy(head.float(), y)
    return loss, main


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device,
             amp: bool) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy over ``loader``."""
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    with torch.no_grad(), _autocast(device, amp):
        for x, y in _batches(loader, device, amp):
            out = split_outputs(model(x))[0].float()
            loss_sum += nn.functional.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
            total += y.numel()
    return loss_sum / max(total, 1), correct / max(total, 1)


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


def write_json_atomic(obj: Any, path: Path) -> None:
    write_atomic(path, json.dumps(obj, indent=2))


class Trainer:
    """Owns the model, optimiser, data and bookkeeping of one run."""

    def __init__(self, spec: ir.Spec, cfg: TrainConfig, log: Any = print) -> None:
        self.spec, self.cfg, self.log = spec, cfg, log
        torch.manual_seed(cfg.seed)
        self.device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = setup_distributed(self.device)
        if cfg.out and self.dist.main:
            check_out(Path(cfg.out))
        train, val, test, self.n_classes = datasets(spec, cfg)
        if not cfg.data and self.dist.main:
            log(f"built-in dataset: {cfg.samples} generated images of {self.n_classes} shape "
                f"classes (split 7:2:1)")
        self.train_loader = _loader(train, cfg, self.dist, shuffle=True)
        self.val_loader = _loader(val, cfg, self.dist, shuffle=False)
        self.test_loader = _loader(test, cfg, self.dist, shuffle=False)
        self.model = to_torch(spec).to(self.device)
        if cfg.amp:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = self._optimizer()
        self.metrics = Metrics()
        self.start_epoch = 1
        if cfg.resume:
            self._resume(Path(cfg.resume))
        self.net: nn.Module = self.model
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if cfg.compile:
            self.net = torch.compile(self.net)
        use_scaler = cfg.amp and self.device.type == "cuda" and \
            not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    def _optimizer(self) -> torch.optim.Optimizer:
        params = self.model.parameters()
        if self.cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.cfg.lr, momentum=0.9, weight_decay=1e-4)
        return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=1e-4)

    def _resume(self, path: Path) -> None:
        """Model, optimiser, metrics and epoch from an `archspec train` checkpoint, read and
        checked as exported weights are (E611/E612 for a bad file or entry)."""
        from archspec.backends.weights import bad_checkpoint, checked_state, read_checkpoint

        ckpt = read_checkpoint(path, self.spec)
        state, epoch = ckpt.get("state_dict"), ckpt.get("epoch")
        if not isinstance(state, Mapping) or type(epoch) is not int:
            raise bad_checkpoint(path, "it is not an `archspec train` checkpoint (no "
                                       "`state_dict` and `epoch`)", self.spec)
        if ckpt.get("spec_sha256") != hashlib.sha256(spec_text(self.spec).encode()).hexdigest():
            self.log(f"warning: {path} was trained from a different spec text")
        self.model.load_state_dict(checked_state(state, str(path), self.spec, expand(self.spec)))
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.metrics = Metrics(**ckpt.get("metrics", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise bad_checkpoint(path, f"its optimizer or metrics do not fit ({exc})",
                                 self.spec) from None
        self.start_epoch = epoch + 1
        self.log(f"resumed from {path} at epoch {epoch}")

    def train_epoch(self, epoch: int, progress: Any) -> float:
        self.net.train()
        sampler = self.train_loader.sampler
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        task = progress.add_task(f"epoch {epoch}/{self.cfg.epochs}",
                                 total=len(self.train_loader), loss=float("nan"), acc=0.0)
        seen, correct, loss_sum = 0, 0, 0.0
        for x, y in _batches(self.train_loader, self.device, self.cfg.amp):
            self.optimizer.zero_grad(set_to_none=True)
            with _autocast(self.device, self.cfg.amp):
                loss, out = loss_of(self.net(x), y, self.cfg.aux_weight)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            seen += y.numel()
            loss_sum += loss.item() * y.numel()
            correct += (out.argmax(1) == y).sum().item()
            progress.update(task, advance=1, loss=loss_sum / seen, acc=correct / seen)
        return loss_sum / max(seen, 1)

    def checkpoint(self, epoch: int) -> None:
        if not (self.dist.main and self.cfg.out):
            return
        out = Path(self.cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        text = spec_text(self.spec)
        save_atomic({"state_dict": self.model.state_dict(), "spec": text,
                     "spec_sha256": hashlib.sha256(text.encode()).hexdigest(), "epoch": epoch,
                     "optimizer": self.optimizer.state_dict(),
                     "metrics": vars(self.metrics), "overrides": dict(self.spec.overrides)},
                    out / "model.pt")
        write_json_atomic(vars(self.metrics), out / "metrics.json")

    def run(self) -> Metrics:
        """Train for the configured epochs, validating each; test at the end."""
        from archspec.progress import progress_bar

        with progress_bar(self.dist.main and self.cfg.progress) as progress:
            for epoch in range(self.start_epoch, self.cfg.epochs + 1):
                start = time.perf_counter()
                train_loss = self.train_epoch(epoch, progress)
                val_loss, val_acc = self._evaluate(self.val_loader)
                self.metrics.train_loss.append(train_loss)
                self.metrics.val_loss.append(val_loss)
                self.metrics.val_accuracy.append(val_acc)
                if self.dist.main:
                    self.log(f"epoch {epoch}: train loss {train_loss:.4f}, val loss "
                             f"{val_loss:.4f}, val accuracy {val_acc:.4f} "
                             f"({time.perf_counter() - start:.1f} s)")
                self.checkpoint(epoch)
        _, self.metrics.test_accuracy = self._evaluate(self.test_loader)
        if self.dist.main:
            self.log(f"test accuracy {self.metrics.test_accuracy:.4f}")
        self.checkpoint(max(self.cfg.epochs, self.start_epoch - 1))
        if self.dist.world > 1:
            dist.barrier()
            dist.destroy_process_group()
        return self.metrics

    def _evaluate(self, loader: DataLoader) -> tuple[float, float]:
        """Every rank evaluates the whole (unsharded) set, so all agree without a reduce."""
        return evaluate(self.model, loader, self.device, self.cfg.amp)


def train(spec: ir.Spec, cfg: TrainConfig, log: Any = print) -> Metrics:
    """Train ``spec`` as ``cfg`` says; returns the metrics (also in ``cfg.out``)."""
    return Trainer(spec, cfg, log).run()
