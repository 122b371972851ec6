"""`archspec train` end to end against its training step alone, in images per second.

1. The step alone: the compiled spec, its optimiser and one batch already on the device, as
   bench_train_step.py times it (same AMP / channels_last / compile settings as the run);
   and the built-in data alone, with no model.
2. `archspec train` on the built-in data (drawn a batch at a time on the device).
3. `archspec train --data` on a generated folder of JPEGs (320x256, 10 classes).

For 2 and 3 the figure is the training loop's own images/s of its last epoch (the first one
starts the DataLoader workers); validation is not counted. Targets on a GPU: built-in data at
>= 0.9x the step alone, a JPEG folder at >= 0.5x with the machine's cores.

    python bench/bench_train_loop.py --spec specs/resnet18.arch --batch 256 --steps 40
    python bench/bench_train_loop.py --size 112 --batch 32 --steps 12 --jpegs 600   # CPU
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import archspec
from archspec.lang.syntax.loader import with_input_shapes
from archspec.training.config import TrainConfig, pick_device
from archspec.training.loop import Trainer, autocast, batches

ROOT = Path(__file__).resolve().parent.parent


def step_alone(spec: archspec.Spec, cfg: TrainConfig, steps: int) -> float:
    """Images/s of forward + backward + SGD step on one fixed batch."""
    device = pick_device(cfg.device)
    cfg = cfg.on(device)
    model = archspec.to_torch(spec).to(device)
    shape = next(iter(archspec.expand(spec).inputs.values()))
    x = torch.rand(cfg.batch_size, *shape, device=device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (cfg.batch_size,), device=device)
    net = torch.compile(model) if cfg.compile else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, bool(cfg.amp)):
            loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        one()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    sync()
    return steps * cfg.batch_size / (time.perf_counter() - start)


def data_alone(spec: archspec.Spec, cfg: TrainConfig) -> float:
    """Images/s of the built-in data by itself: the DataLoader's workers drawing the random
    numbers and the device drawing the batches, with no model (second pass over the train
    split: the first starts the workers)."""
    trainer = Trainer(spec, cfg, log=lambda _: None)
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    rate = 0.0
    for _ in range(2):
        start, seen = time.perf_counter(), 0
        for x, _ in batches(trainer.train_loader, trainer.data.pipeline, trainer.device,
                            bool(trainer.cfg.channels_last), train=True):
            seen += x.shape[0]
        sync()
        rate = seen / (time.perf_counter() - start)
    return rate


def train_loop(spec: archspec.Spec, cfg: TrainConfig) -> float:
    """Images/s of the last training epoch of `archspec train` (two epochs)."""
    metrics = Trainer(spec, cfg, log=lambda _: None).run()
    return metrics.images_per_s[-1]


def make_jpegs(root: Path, count: int, seed: int = 0) -> None:
    """``count`` JPEGs of 320x256 with smooth random content, in 10 class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
        Image.fromarray(small).resize((320, 256), Image.BILINEAR).save(
            folder / f"{i}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "resnet18.arch"))
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40, help="training steps per epoch")
    parser.add_argument("--jpegs", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-amp", action="store_true")
    args = parser.parse_args()
    spec = archspec.load(args.spec, num_classes=10)
    spec = with_input_shapes(spec, {k: (3, args.size, args.size) for k in
                                    archspec.expand(spec).inputs})
    # 7/10 of the samples train: `steps` batches per epoch.
    samples = max(20, args.steps * args.batch * 10 // 7)
    cfg = TrainConfig(epochs=2, batch_size=args.batch, optimizer="sgd", lr=0.01,
                      device=args.device, amp=False if args.no_amp else None,
                      compile=args.compile, samples=samples, workers=args.workers,
                      progress=False, schedule="none")
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    alone = step_alone(spec, cfg, args.steps)
    data = data_alone(spec, cfg)
    builtin = train_loop(spec, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        make_jpegs(Path(tmp), min(args.jpegs, samples))
        folder = train_loop(spec, TrainConfig(**{**vars(cfg), "data": tmp}))
    workers = cfg.on(device).workers
    print(f"device: {name}; {Path(args.spec).stem} at {args.size}x{args.size}, batch "
          f"{args.batch}, {workers} workers, amp/channels_last "
          f"{'on' if cfg.on(device).amp else 'off'}, compile {'on' if args.compile else 'off'}")
    print("| measure | images/s | x step alone |\n|---|---:|---:|")
    for label, value in (("training step alone", alone), ("built-in data alone (no model)", data),
                         ("`archspec train`, built-in data", builtin),
                         ("`archspec train --data`, JPEG folder", folder)):
        print(f"| {label} | {value:,.0f} | {value / alone:.2f} |")


if __name__ == "__main__":
    main()
