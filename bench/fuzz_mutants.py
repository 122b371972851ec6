"""Mutation fuzzing of `archspec check` outside pytest: N seeded .arch mutants and M YAML mutants
of every shipped spec (tests/mutants.py, the mutants and seeds of tests/test_fuzz.py), each
loaded and analysed in this one process under a per-mutant alarm, then the counts.

    python bench/fuzz_mutants.py                    # 20,000 .arch and 10,000 YAML mutants
    python bench/fuzz_mutants.py --arch 2000 --yaml 1000

A progress line goes to stderr; the counts (reports, located errors, unlocated errors, crashes,
timeouts) and the first failures go to stdout. Exit 1 when any mutant failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import ALL_SPECS, SPECS  # noqa: E402  (the shipped specs, as the tests list them)
from mutants import OUTCOMES, mutants, outcome, sources  # noqa: E402
from test_fuzz import LIMIT_S, SEEDS  # noqa: E402

#: Failures printed per form; the rest are counted.
SHOWN = 20


def run(fmt: str, count: int, limit_s: int) -> tuple[Counter[str], list[str], float]:
    """The outcome counts of ``count`` mutants of form ``fmt``, the failures (described) and
    the seconds they took; a progress line on stderr every 100 mutants."""
    seen: Counter[str] = Counter()
    failures: list[str] = []
    start = time.perf_counter()
    texts = sources(fmt, ALL_SPECS) if count else {}
    for i, mutant in enumerate(mutants(texts, count, seed=SEEDS[fmt]), 1):
        kind, detail = outcome(mutant, SPECS, limit_s)
        seen[kind] += 1
        if kind not in ("report", "error"):
            failures.append(f"{mutant.origin.name} {mutant.edits}: {kind} {detail}")
        if i % 100 == 0 or i == count:
            print(f"\r{fmt}: {i:,}/{count:,} mutants, {len(failures)} failures, "
                  f"{time.perf_counter() - start:.0f} s", end="", file=sys.stderr, flush=True)
    if count:
        print(file=sys.stderr)
    return seen, failures, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=20_000, help=".arch mutants (20,000)")
    parser.add_argument("--yaml", type=int, default=10_000, help="YAML mutants (10,000)")
    parser.add_argument("--limit", type=int, default=LIMIT_S,
                        help=f"seconds per mutant before it counts as a timeout ({LIMIT_S})")
    args = parser.parse_args(argv)
    if min(args.arch, args.yaml) < 0 or args.limit < 1:
        parser.error("counts must be 0 or more and --limit at least 1")
    print("| form | mutants | reports | located errors | unlocated | crashes | timeouts "
          "| seconds |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    failed = []
    for fmt, count in (("arch", args.arch), ("yaml", args.yaml)):
        seen, failures, seconds = run(fmt, count, args.limit)
        cells = " | ".join(f"{seen[k]:,}" for k in OUTCOMES)
        print(f"| {'.arch' if fmt == 'arch' else 'YAML'} | {count:,} | {cells} | "
              f"{seconds:.0f} |", flush=True)
        failed += failures
    for line in failed[:SHOWN]:
        print(line)
    if len(failed) > SHOWN:
        print(f"... and {len(failed) - SHOWN} more failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
