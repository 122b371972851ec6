"""`std/...` always names the shipped spec library: a local folder called `std` (one a
downloaded project ships, or the working directory happens to hold) never replaces it, for
`archspec.load`, for the CLI, or for the guard that stops a command writing over what it
reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torchvision
from hostile_support import clean_failure, run_cli

import archspec
from archspec.lang.syntax import loader

# What a local impostor `std/resnet18.arch` holds: a network with no parameters at all.
IMPOSTOR = "network impostor\ninput x: 3x8x8\nrelu\n"


def _resnet18_params() -> int:
    """torchvision's count for ResNet-18, the network `std/resnet18.arch` ships."""
    return sum(p.numel() for p in torchvision.models.resnet18().parameters())


@pytest.fixture
def impostor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding ``std/resnet18.arch`` that is not the shipped spec."""
    (tmp_path / "std").mkdir()
    (tmp_path / "std" / "resnet18.arch").write_text(IMPOSTOR)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "std" / "resnet18.arch"


def test_load_of_std_ignores_a_local_std_folder(impostor: Path) -> None:
    spec = archspec.load("std/resnet18.arch")
    assert spec.name != "impostor"
    assert archspec.analyze(spec).totals["params"] == _resnet18_params()
    assert archspec.analyze(archspec.load(Path("std/resnet18.arch"))).totals["params"] == \
        _resnet18_params()


def test_the_cli_reads_the_shipped_spec(impostor: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["check", "std/resnet18.arch", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["totals"]["params"] == _resnet18_params()


def test_a_local_file_is_still_reachable_by_an_explicit_path(impostor: Path) -> None:
    """``./std/x.arch`` (or an absolute path) names the local file, as written."""
    for path in ("./std/resnet18.arch", impostor):
        spec = archspec.load(path)
        assert spec.name == "impostor" and archspec.analyze(spec).totals["params"] == 0


def test_the_write_guard_protects_the_shipped_spec(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``convert std/net.arch -o LIBRARY/net.arch`` reads the shipped spec, not the local
    ``std/net.arch``, so the guard refuses to write over it (a copy of a library stands in for
    the shipped one, which a failure would overwrite)."""
    library = tmp_path / "lib"
    library.mkdir()
    shipped = library / "net.arch"
    shipped.write_text("network shipped\ninput x: 3x8x8\nconv2d(4, 3)\n")
    monkeypatch.setattr(loader, "std_root", lambda: library.resolve())
    work = tmp_path / "work"
    (work / "std").mkdir(parents=True)
    (work / "std" / "net.arch").write_text(IMPOSTOR)
    monkeypatch.chdir(work)
    before = shipped.read_bytes()
    code, _, err = run_cli(["convert", "std/net.arch", "--to", "arch", "-o", str(shipped)],
                           capsys)
    clean_failure(code, err, "writing it would destroy")
    assert shipped.read_bytes() == before
