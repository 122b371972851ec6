"""The options of a training run and where it runs: `archspec train`'s settings, the device,
and the process's place in a torchrun (DDP) job."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist

from archspec.training.data import default_workers


@dataclass
class TrainConfig:
    """Options of `archspec train` (see its --help)."""

    data: str | None = None
    epochs: int = 3
    batch_size: int = 32
    lr: float = 3e-3
    optimizer: str = "adamw"
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    out: str | None = None
    resume: str | None = None
    overwrite: bool = False
    samples: int = 12000
    seed: int = 0
    workers: int | None = None
    progress: bool = True
    aux_weight: float = 0.4
    schedule: str = "cosine"
    warmup: float = 0.0
    lr_step: int = 30
    label_smoothing: float = 0.0
    weight_decay: float = 1e-4
    clip_grad: float | None = None
    patience: int | None = None

    def on(self, device: torch.device) -> TrainConfig:
        """The options with their CUDA defaults resolved: AMP and channels_last on CUDA unless
        turned off, workers from the CPU count shared by the processes on this machine."""
        cuda = device.type == "cuda"
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return TrainConfig(**{**asdict(self), "amp": cuda if self.amp is None else self.amp,
                              "channels_last": cuda if self.channels_last is None
                              else self.channels_last,
                              "workers": default_workers(local) if self.workers is None
                              else self.workers})


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
