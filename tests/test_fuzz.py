"""Mutation fuzzing over every shipped spec, in both forms: whatever the edit, `check` gives a
report or an ArchspecError located inside the file (or a file it imports), within the limit.

CI runs a few hundred seeded mutants; `pytest tests/test_fuzz.py --long` runs 20,000 .arch and
10,000 YAML mutants and prints the figures (docs/benchmarks.md), as
`python bench/fuzz_mutants.py` does outside pytest."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from conftest import ALL_SPECS, SPECS
from mutants import Mutant, mutants, outcome, sources

# A hang is what this limit catches: the largest shipped networks (EfficientNet-B6/B7, V2-L)
# load and analyse in about 0.7 s alone, over 2 s on a machine shared with other jobs.
LIMIT_S = 5
SHORT = {"arch": 600, "yaml": 300}
LONG = {"arch": 20_000, "yaml": 10_000}
SEEDS = {"arch": 7, "yaml": 11}


def _raising(exc: BaseException):
    def loads(*_args: object, **_kwargs: object) -> None:
        raise exc
    return loads


def test_outcome_tells_every_failure_from_a_located_error(tmp_path, monkeypatch) -> None:
    """The oracle itself: a report, a located error, and (by stand-ins for the loader) an error
    at no line of the mutant, a crash and a hang are each told for what they are."""
    import archspec
    from archspec.lang.diagnostics import error

    mutant = Mutant(tmp_path / "net.arch", "arch", "network t\ninput x: 4\nrelu\n", ())
    assert outcome(mutant, SPECS, LIMIT_S)[0] == "report"
    bad = Mutant(mutant.origin, "arch", mutant.text + "nope\n", ())
    assert outcome(bad, SPECS, LIMIT_S)[0] == "error"
    monkeypatch.setattr(archspec, "loads", _raising(error("E001", "no such file")))
    assert outcome(mutant, SPECS, LIMIT_S)[0] == "unlocated"
    monkeypatch.setattr(archspec, "loads", _raising(ZeroDivisionError("boom")))
    assert outcome(mutant, SPECS, LIMIT_S) == ("crash", "ZeroDivisionError: boom")
    monkeypatch.setattr(archspec, "loads", lambda *_a, **_k: time.sleep(3))
    assert outcome(mutant, SPECS, 1)[0] == "timeout"


@pytest.mark.parametrize("fmt", ["arch", "yaml"])
def test_mutants_give_a_report_or_a_located_error(fmt: str, request, capsys) -> None:
    count = (LONG if request.config.getoption("--long") else SHORT)[fmt]
    seen: Counter[str] = Counter()
    failures = []
    start = time.perf_counter()
    for mutant in mutants(sources(fmt, ALL_SPECS), count, seed=SEEDS[fmt]):
        kind, detail = outcome(mutant, SPECS, LIMIT_S)
        seen[kind] += 1
        if kind not in ("report", "error"):
            failures.append(f"{mutant.origin.name} {mutant.edits}: {kind} {detail}")
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n{fmt}: {count} mutants, {seen['report']} reports, {seen['error']} located "
              f"errors, {len(failures)} failures, {elapsed:.1f} s")
    assert not failures, "\n".join(failures[:20])
