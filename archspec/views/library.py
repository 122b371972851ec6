"""The spec library shipped with the package (``archspec/std``, the repository's specs/):
which specs it holds and what each one builds."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from archspec.lang.syntax.loader import STD_PREFIX, load, std_root


@dataclass(frozen=True)
class Entry:
    """One shipped network: its import-style name (``std/resnet18.arch``), its first comment
    line, its inputs' per-sample shapes, and params and MACs (torchvision convention, batch
    1) at its default parameters."""

    name: str
    about: str
    inputs: dict[str, list[int]]
    params: int
    macs: int


def shipped() -> list[Path]:
    """Every network spec in the library, sorted; block files (under ``blocks/``) excluded."""
    root = std_root()
    return sorted(p for p in root.rglob("*.arch") if "blocks" not in p.relative_to(root).parts)


def _about(path: Path) -> str:
    """The spec's first comment line, without the ``#``."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


@cache
def entries() -> tuple[Entry, ...]:
    """An :class:`Entry` per shipped network (analysing every one takes a few seconds, so
    the result is kept for the process)."""
    from archspec.analysis.report import analyze

    root = std_root()
    out = []
    for path in shipped():
        report = analyze(load(path))
        out.append(Entry(name=STD_PREFIX + path.relative_to(root).as_posix(),
                         about=_about(path), inputs={k: v[1:] for k, v in report.inputs.items()},
                         params=report.totals["params"], macs=report.totals["macs"]))
    return tuple(out)


def as_json() -> str:
    """``{"root": the library folder, "specs": [Entry fields, ...]}`` on one line."""
    return json.dumps({"root": str(std_root()), "specs": [asdict(e) for e in entries()]})


def as_table() -> str:
    """One line per shipped network: name, input, params, MACs, first comment line."""
    from archspec.views.table import human

    found = entries()
    width = max(len(e.name) for e in found)
    lines = [f"{'spec':<{width}}  {'input':<14}{'params':>10}{'MACs':>11}  about"]
    for e in found:
        shape = "x".join(map(str, next(iter(e.inputs.values()), [])))
        lines.append(f"{e.name:<{width}}  {shape:<14}{human(e.params):>10}"
                     f"{human(e.macs):>11}  {e.about[:60]}")
    lines.append(f"{len(found)} specs under {std_root()}")
    return "\n".join(lines)
