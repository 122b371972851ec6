"""Code quality gates that run with the suite: ruff over the package and the tests."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from conftest import ROOT


def test_ruff_clean() -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (it is in the test extra)")
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "archspec", "tests", "bench"],
                         cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
