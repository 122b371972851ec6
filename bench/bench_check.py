"""`archspec check` against torchinfo and fvcore, each as a whole process, alternating.

For every architecture, runs (in rotation, --repeat times) a fresh Python process that
  - archspec: `archspec check specs/NAME.arch --format json` (no torch import),
  - torchinfo: imports torch + torchvision, builds the model, `torchinfo.summary(...)`,
  - fvcore: the same with `FlopCountAnalysis(...).total()`,
and prints the median wall time of each and the ratio archspec / tool.

    python bench/bench_check.py --models resnet50 googlenet --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_BUILD = ("import torch, torchvision; "
          "m = getattr(torchvision.models, '{name}')(weights=None{extra}).eval(); "
          "x = torch.zeros(1, 3, 224, 224); ")
TOOLS = {
    "torchinfo": _BUILD + "import torchinfo; torchinfo.summary(m, input_data=x, verbose=0)",
    "fvcore": _BUILD + ("from fvcore.nn import FlopCountAnalysis; "
                        "a = FlopCountAnalysis(m, x); a.unsupported_ops_warnings(False); "
                        "a.total()"),
}


def command(tool: str, name: str) -> list[str]:
    if tool == "archspec":
        return [sys.executable, "-m", "archspec", "check", str(ROOT / "specs" / f"{name}.arch"),
                "--format", "json"]
    extra = ", aux_logits=False, init_weights=False" if name == "googlenet" else ""
    return [sys.executable, "-c", TOOLS[tool].format(name=name, extra=extra)]


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "googlenet", "vgg16",
                                                        "densenet121"])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tools = ["archspec", "torchinfo", "fvcore"]
    print(f"{'model':<12} " + " ".join(f"{t + ' s':>12}" for t in tools)
          + f" {'vs torchinfo':>13} {'vs fvcore':>10}")
    for name in args.models:
        times: dict[str, list[float]] = {t: [] for t in tools}
        for _ in range(args.repeat):
            for tool in tools:
                times[tool].append(run(command(tool, name)))
        med = {t: statistics.median(v) for t, v in times.items()}
        print(f"{name:<12} " + " ".join(f"{med[t]:>12.3f}" for t in tools)
              + f" {med['archspec'] / med['torchinfo']:>13.3f}"
              + f" {med['archspec'] / med['fvcore']:>10.3f}")


if __name__ == "__main__":
    main()
