"""Scaling of `archspec check` with network size: generated flat specs of N layers.

Writes one spec per size (alternating conv3x3 / relu lines, every layer written out, so parsing,
expansion and analysis all scale with N), times `archspec check --format json` as a whole
process (median of --repeat runs) and prints time and time per layer.

    python bench/bench_scaling.py --sizes 100 1000 10000
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(n_layers: int) -> str:
    """A flat spec with ``n_layers`` layers: conv2d(8, 3, padding=1) and relu, alternating."""
    lines = [f"# generated: {n_layers} layers", "network gen", "input x: 8x16x16"]
    for i in range(n_layers):
        lines.append(f"c{i}: conv2d(8, 3, padding=1)" if i % 2 == 0 else f"r{i}: relu")
    return "\n".join(lines) + "\n"


def time_check(path: Path, repeat: int) -> float:
    """Median wall time in seconds of `archspec check PATH --format json` as a process."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "archspec", "check", str(path), "--format", "json"],
                       check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'layers':>8} {'seconds':>9} {'ms/layer':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"gen{n}.arch"
            path.write_text(generate(n))
            seconds = time_check(path, args.repeat)
            print(f"{n:>8} {seconds:>9.3f} {1000 * seconds / n:>9.3f}")


if __name__ == "__main__":
    main()
