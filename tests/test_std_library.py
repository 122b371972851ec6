"""The spec library ships with the package: `import "std/..."` works from any folder without
loosening import confinement, and `archspec specs` lists every shipped network with its
params and MACs (checked against torchvision and its published MACs)."""

from __future__ import annotations

import json

import pytest
import torchvision
from conftest import ALL_SPECS, SPECS
from test_errors import run_cli

import archspec
from archspec.lang.syntax import loader
from archspec.lang.syntax.loader import std_root


def test_std_is_the_repository_library() -> None:
    assert std_root() == SPECS.resolve()


def test_std_import_from_any_folder(tmp_path, monkeypatch) -> None:
    """A user's spec elsewhere imports the shipped ResNet block: its params equal
    torchvision's BasicBlock."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.arch").write_text(
        'import "std/blocks/resnet.arch"\ninput x: 64x56x56\nb: basic(64)\n')
    report = archspec.analyze(archspec.load("mine.arch"))
    block = torchvision.models.resnet.BasicBlock(64, 64)
    assert report.totals["params"] == sum(p.numel() for p in block.parameters())
    assert archspec.analyze(archspec.load("std/resnet18.arch")).totals["params"] == sum(
        p.numel() for p in torchvision.models.resnet18().parameters())


@pytest.mark.parametrize(("target", "message"), [
    ("std/../pyproject.toml", "`..` leaves the shipped library"),
    ("std/../../etc/passwd", "`..` leaves"),
    ("std/no_such.arch", "no such file"),
])
def test_std_imports_stay_confined(target, message, tmp_path) -> None:
    (tmp_path / "mine.arch").write_text(f'import "{target}"\ninput x: 3x8x8\nrelu\n')
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.load(tmp_path / "mine.arch")
    d = info.value.diagnostic
    assert message in d.message and d.span.line == 1 and d.span.file.endswith("mine.arch")


def test_a_link_out_of_std_is_refused(tmp_path, monkeypatch) -> None:
    """A symlink in the library that points outside it is refused like any other."""
    library = tmp_path / "std"
    (library / "blocks").mkdir(parents=True)
    (tmp_path / "outside.arch").write_text("block leak() {\n relu\n}\n")
    (library / "blocks" / "link.arch").symlink_to(tmp_path / "outside.arch")
    monkeypatch.setattr(loader, "std_root", lambda: library.resolve())
    (tmp_path / "mine.arch").write_text('import "std/blocks/link.arch"\ninput x: 3x8x8\nrelu\n')
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.load(tmp_path / "mine.arch")
    assert info.value.diagnostic.code == "E115"


def test_specs_command_lists_every_shipped_network(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(["specs", "--format", "json"], capsys)
    assert code == 0
    listed = {e["name"]: e for e in json.loads(out)["specs"]}
    assert set(listed) == {f"std/{p.relative_to(SPECS).as_posix()}" for p in ALL_SPECS}
    r18 = listed["std/resnet18.arch"]
    assert r18["params"] == 11_689_512 and r18["macs"] == 1_814_073_344  # torchvision's
    assert r18["inputs"] == {"x": [3, 224, 224]} and "ResNet-18" in r18["about"]
    code, out, _ = run_cli(["specs"], capsys)
    assert code == 0 and "std/googlenet.arch" in out and "6.62 M" in out
