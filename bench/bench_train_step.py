"""Forward+backward step time of the compiled spec against torchvision's own model.

Both models live in one process and are timed alternately (the same input, SGD step, median of
--steps after --warmup), so machine noise hits both alike. Prints ms/step and the ratio
archspec / torchvision (1.0 = the same speed). With --device cuda and --amp it also reports
images per second under bf16 autocast and channels_last.

    python bench/bench_train_step.py --models resnet18 resnet50 --batch 16
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torchvision

import archspec

ROOT = Path(__file__).resolve().parent.parent


def step_time(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
              y: torch.Tensor, amp: bool) -> float:
    """Seconds for one zero_grad/forward/backward/step."""
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
    loss.backward()
    opt.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(name: str, batch: int, steps: int, warmup: int, device: str, amp: bool) -> None:
    torch.manual_seed(0)
    ours = archspec.to_torch(archspec.load(ROOT / "specs" / f"{name}.arch")).to(device).train()
    theirs = getattr(torchvision.models, name)(weights=None).to(device).train()
    fmt = torch.channels_last if amp else torch.contiguous_format
    ours, theirs = ours.to(memory_format=fmt), theirs.to(memory_format=fmt)
    x = torch.randn(batch, 3, 224, 224, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device=device)
    opts = {m: torch.optim.SGD(m.parameters(), lr=1e-3) for m in (ours, theirs)}
    times: dict[torch.nn.Module, list[float]] = {ours: [], theirs: []}
    for i in range(warmup + steps):
        for model in ((ours, theirs) if i % 2 == 0 else (theirs, ours)):
            t = step_time(model, opts[model], x, y, amp)
            if i >= warmup:
                times[model].append(t)
    a, b = statistics.median(times[ours]), statistics.median(times[theirs])
    print(f"{name:<10} {device:<5} batch {batch:<3} archspec {1000 * a:8.1f} ms  "
          f"torchvision {1000 * b:8.1f} ms  ratio {a / b:.3f}  "
          f"({batch / a:,.0f} vs {batch / b:,.0f} img/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast + channels_last")
    args = parser.parse_args()
    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}")
    for name in args.models:
        compare(name, args.batch, args.steps, args.warmup, args.device, args.amp)


if __name__ == "__main__":
    main()
