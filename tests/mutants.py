"""Seeded mutations of the shipped specs, for the fuzz test and bench/fuzz_mutants.py: 1-3
random edits of a spec's text (a token deleted, duplicated, swapped or replaced; a line deleted
or duplicated; a number made zero, negative or huge; a keyword or a bracket inserted), and what
loading and analysing a mutant as `archspec check` does gave (:func:`outcome`)."""

from __future__ import annotations

import random
import re
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\"[^\"\n]*\"|->|\*\*|//|\S")
NUMBERS = ["0", "-1", "1", "2", "3", "-7", "10**30", "9**9**9", "2**64", "0.0", "1e308",
           "99999999999999999999", "[0] * 10**10", "range(10**30)"]
INSERTS = ["{", "}", "(", ")", "[", "]", ",", ":", "=", "->", "repeat 1000", "concat", "residual",
           "dense", "block", "input", "output", "init", "import", "if", "else", "for", "in",
           "none", "true", "\"s\"", "x", "in.channels", "#", "\n", ";", "-", "**", "\t", "\x1b[2J",
           "\u202e", "\r", "a, b =", "backbone.4", "chunk(2)", "mul", "upsample(2)"]


@dataclass(frozen=True)
class Mutant:
    """One mutated spec: where it came from, which form, and its text."""

    origin: Path
    fmt: str
    text: str
    edits: tuple[str, ...]


def _tokens(text: str) -> list[re.Match[str]]:
    return list(TOKEN.finditer(text))


def _splice(text: str, m: re.Match[str], new: str) -> str:
    return text[:m.start()] + new + text[m.end():]


def _delete_token(rng: random.Random, text: str) -> tuple[str, str]:
    m = rng.choice(_tokens(text))
    return _splice(text, m, ""), f"delete {m.group()!r}"


def _duplicate_token(rng: random.Random, text: str) -> tuple[str, str]:
    m = rng.choice(_tokens(text))
    return _splice(text, m, m.group() + " " + m.group()), f"duplicate {m.group()!r}"


def _swap_tokens(rng: random.Random, text: str) -> tuple[str, str]:
    toks = _tokens(text)
    i = rng.randrange(len(toks) - 1)
    a, b = toks[i], toks[i + 1]
    swapped = text[:a.start()] + b.group() + text[a.end():b.start()] + a.group() + text[b.end():]
    return swapped, f"swap {a.group()!r} {b.group()!r}"


def _replace_number(rng: random.Random, text: str) -> tuple[str, str]:
    nums = [m for m in _tokens(text) if m.group()[0].isdigit()]
    if not nums:
        return _insert(rng, text)
    m, new = rng.choice(nums), rng.choice(NUMBERS)
    return _splice(text, m, new), f"number {m.group()!r} -> {new!r}"


def _insert(rng: random.Random, text: str) -> tuple[str, str]:
    pos, new = rng.randrange(len(text) + 1), rng.choice(INSERTS)
    return text[:pos] + new + text[pos:], f"insert {new!r} at {pos}"


def _line_edit(rng: random.Random, text: str) -> tuple[str, str]:
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    if rng.random() < 0.5:
        return "\n".join(lines[:i] + lines[i + 1:]), f"delete line {i + 1}"
    return "\n".join(lines[:i + 1] + lines[i:]), f"duplicate line {i + 1}"


EDITS: tuple[Callable[[random.Random, str], tuple[str, str]], ...] = (
    _delete_token, _duplicate_token, _swap_tokens, _replace_number, _replace_number, _insert,
    _line_edit)


def mutate(rng: random.Random, text: str) -> tuple[str, tuple[str, ...]]:
    """``text`` after 1 to 3 random edits, and a description of each."""
    done = []
    for _ in range(rng.randint(1, 3)):
        if len(_tokens(text)) < 2:
            break
        text, what = rng.choice(EDITS)(rng, text)
        done.append(what)
    return text, tuple(done)


def mutants(sources: dict[tuple[Path, str], str], count: int, seed: int) -> Iterator[Mutant]:
    """``count`` mutants, cycling over ``sources`` ((spec path, form) -> text), seeded."""
    rng = random.Random(seed)
    keys = sorted(sources)
    for i in range(count):
        origin, fmt = keys[i % len(keys)]
        text, edits = mutate(rng, sources[(origin, fmt)])
        yield Mutant(origin, fmt, text, edits)


#: What a mutant can give: the first two are what `check` promises, the rest are failures.
OUTCOMES = ("report", "error", "unlocated", "crash", "timeout")


class Timeout(Exception):
    """Raised by the alarm when a mutant takes longer than its limit."""


def _alarm(signum: int, frame: object) -> None:
    raise Timeout


def sources(fmt: str, paths: Iterable[Path]) -> dict[tuple[Path, str], str]:
    """The texts to mutate: each spec's file (``arch``) or its YAML form (``yaml``)."""
    import archspec
    from archspec.lang.syntax.yaml_form import to_yaml

    if fmt == "arch":
        return {(p, "arch"): p.read_text() for p in paths}
    return {(p, "yaml"): to_yaml(archspec.load(p)) for p in paths}


def _lines(name: str, mutant: Mutant, specs: Path) -> int | None:
    """Line count of the file a diagnostic may point into: the mutant or a shipped file under
    ``specs``; None for any other file."""
    if name == f"mutant.{mutant.fmt}":
        return mutant.text.count("\n") + 1
    path = Path(name)
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.resolve().is_relative_to(specs.resolve()) and path.is_file():
        return path.read_text().count("\n") + 1
    return None


def outcome(mutant: Mutant, specs: Path, limit_s: int) -> tuple[str, str]:
    """Load and analyse ``mutant`` as `archspec check` does, under a ``limit_s`` alarm: its
    kind (one of :data:`OUTCOMES`) and, for a failure, what happened. An error is located when
    every diagnostic points at a line of the mutant or of a shipped file under ``specs``."""
    import archspec

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit_s)
    try:
        archspec.analyze(archspec.loads(mutant.text, format=mutant.fmt,
                                        name=f"mutant.{mutant.fmt}", base=mutant.origin.parent))
        return "report", ""
    except archspec.ArchspecError as exc:
        for d in exc.diagnostics:
            lines = _lines(d.span.source.name, mutant, specs)
            if lines is None or not 1 <= d.span.line <= lines + 1:
                return "unlocated", f"error at {d.span}: {d.message}"
        return "error", ""
    except Timeout:
        return "timeout", f"over {limit_s} s"
    except Exception as exc:  # noqa: BLE001 - any other exception is the failure we look for
        return "crash", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.alarm(0)
