"""`archspec sweep` throughput: 1,000 variants of a ResNet in one process.

Sweeps specs/examples/resnet_family.arch over 25 width multipliers x depth 18 and 34 x 20
input sizes (1,000 combinations, about 97,000 layers expanded and analysed), runs the whole
command as a process (median of --repeat runs) and prints the time, the time per variant and
the ratio to the 30 s target (below 1 meets it).

    python bench/bench_sweep.py --repeat 3
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parent.parent / "specs" / "examples" / "resnet_family.arch"
TARGET_S = 30.0


def command(widths: int, sizes: int) -> list[str]:
    """The sweep command line: ``widths`` multipliers from 0.25 in steps of 0.0625, depths 18
    and 34, ``sizes`` square inputs from 64 pixels in steps of 16."""
    width_values = ",".join(str(0.25 + 0.0625 * i) for i in range(widths))
    size_values = ",".join(str(64 + 16 * i) for i in range(sizes))
    return [sys.executable, "-m", "archspec", "sweep", str(SPEC), "--set", f"width={width_values}",
            "--set", "depth=18,34", "--set", f"size={size_values}", "--format", "csv"]


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds of one run and the number of variants it analysed without error."""
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - start
    rows = list(csv.DictReader(io.StringIO(out)))
    return seconds, sum(1 for r in rows if not r["error"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, default=25)
    parser.add_argument("--sizes", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cmd = command(args.widths, args.sizes)
    runs = [run(cmd) for _ in range(args.repeat)]
    seconds = statistics.median(s for s, _ in runs)
    variants = runs[0][1]
    print(f"| variants | seconds (median of {args.repeat}) | ms / variant | seconds / target |")
    print("|---:|---:|---:|---:|")
    print(f"| {variants:,} | {seconds:.2f} | {1000 * seconds / variants:.1f} | "
          f"{seconds / TARGET_S:.2f} |")


if __name__ == "__main__":
    main()
