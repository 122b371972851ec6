"""Mutation fuzzing over every shipped spec, in both forms: whatever the edit, `check` gives a
report or an ArchspecError located inside the file (or a file it imports), within 2 s.

CI runs a few hundred seeded mutants; `pytest tests/test_fuzz.py --long` runs 20,000 .arch and
10,000 YAML mutants and prints the figures (docs/benchmarks.md)."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import ALL_SPECS, SPECS
from mutants import Mutant, mutants

import archspec
from archspec.lang.syntax.yaml_form import to_yaml

# A hang is what this limit catches: the largest shipped networks (EfficientNet-B6/B7, V2-L)
# load and analyse in about 0.7 s alone, over 2 s on a machine shared with other jobs.
LIMIT_S = 5
SHORT = {"arch": 600, "yaml": 300}
LONG = {"arch": 20_000, "yaml": 10_000}


class Timeout(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Timeout


def _sources(fmt: str) -> dict[tuple[Path, str], str]:
    if fmt == "arch":
        return {(p, "arch"): p.read_text() for p in ALL_SPECS}
    return {(p, "yaml"): to_yaml(archspec.load(p)) for p in ALL_SPECS}


def _lines(name: str, mutant: Mutant) -> int | None:
    """Line count of the file a diagnostic may point into: the mutant or a shipped file."""
    if name == f"mutant.{mutant.fmt}":
        return mutant.text.count("\n") + 1
    path = Path(name)
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.resolve().is_relative_to(SPECS.resolve()) and path.is_file():
        return path.read_text().count("\n") + 1
    return None


def _outcome(mutant: Mutant) -> str:
    """"report", "error", or a failure description."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        archspec.analyze(archspec.loads(mutant.text, format=mutant.fmt,
                                        name=f"mutant.{mutant.fmt}", base=mutant.origin.parent))
        return "report"
    except archspec.ArchspecError as exc:
        for d in exc.diagnostics:
            lines = _lines(d.span.source.name, mutant)
            if lines is None or not 1 <= d.span.line <= lines + 1:
                return f"unlocated error at {d.span}: {d.message}"
        return "error"
    except Timeout:
        return f"timeout (over {LIMIT_S} s)"
    except Exception as exc:  # noqa: BLE001 - any other exception is the failure we look for
        return f"crash: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.alarm(0)


@pytest.mark.parametrize("fmt", ["arch", "yaml"])
def test_mutants_give_a_report_or_a_located_error(fmt: str, request, capsys) -> None:
    count = (LONG if request.config.getoption("--long") else SHORT)[fmt]
    seen: Counter[str] = Counter()
    failures = []
    start = time.perf_counter()
    for mutant in mutants(_sources(fmt), count, seed=7 if fmt == "arch" else 11):
        outcome = _outcome(mutant)
        seen[outcome if outcome in ("report", "error") else "failure"] += 1
        if outcome not in ("report", "error"):
            failures.append(f"{mutant.origin.name} {mutant.edits}: {outcome}")
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n{fmt}: {count} mutants, {seen['report']} reports, {seen['error']} located "
              f"errors, {seen['failure']} failures, {elapsed:.1f} s")
    assert not failures, "\n".join(failures[:20])
