"""What the tests of hostile inputs share: the repository's paths (from this file:
``tests/conftest.py`` is not importable from here), the CLI run in-process (tests/test_errors.py's)
and as a subprocess, and checks that a folder holds nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_errors import run_cli  # noqa: F401  (the shared in-process CLI run)

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
CNN3 = SPECS / "examples" / "cnn3.arch"
SMALL = ("--set", "size=16", "--set", "num_classes=2")


def run_subprocess(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m archspec ARGS`` in a child process (killed after ``timeout`` seconds)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def leftovers(folder: Path) -> list[str]:
    """The temporaries of atomic writes still in ``folder``."""
    return sorted(p for p in os.listdir(folder) if p.startswith(".") and p.endswith(".tmp"))


def clean_failure(code: int, err: str, *expected: str) -> None:
    """A refusal as the CLI promises it: exit 1 or 2, no traceback, each ``expected`` said."""
    assert code in (1, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
    for text in expected:
        assert text in err, (text, err)


def images(folder: Path, n: int, colour: tuple[int, int, int] = (255, 0, 0)) -> None:
    """``n`` small PNG files ``0.png`` ... in ``folder`` (created)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (12 + i, 12), colour).save(folder / f"{i}.png")
