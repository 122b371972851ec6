"""Outputs are written atomically: a failure mid-write leaves the previous file whole, and no
command overwrites its own input."""

from __future__ import annotations

import errno
import os

import pytest
from conftest import SPECS
from test_errors import run_cli

from archspec.files.atomic import atomic_file

SPEC = SPECS / "examples" / "cnn1.arch"


def _disk_full(fd: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_error_inside_the_block_keeps_the_old_file(tmp_path) -> None:
    target = tmp_path / "model.py"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("serialiser failed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.py"]


@pytest.mark.parametrize("args", [["compile", str(SPEC)], ["convert", str(SPEC), "--to", "yaml"],
                                  ["export", str(SPEC)]])
def test_a_full_disk_leaves_the_previous_output(args, tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "out.bin"
    out.write_text("previous good output")
    monkeypatch.setattr(os, "fsync", _disk_full)
    code, _, err = run_cli([*args, "-o", str(out)], capsys)
    assert code == 1 and "No space left on device" in err and str(out) in err
    assert "Traceback" not in err and "internal error" not in err
    assert out.read_text() == "previous good output"
    assert os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("command", [["compile"], ["convert", "--to", "arch"], ["export"]])
def test_output_may_not_be_the_spec_itself(command, tmp_path, capsys) -> None:
    spec = tmp_path / "net.arch"
    spec.write_text(SPEC.read_text())
    code, _, err = run_cli([command[0], str(spec), *command[1:], "-o", str(spec)], capsys)
    assert code == 2 and "would destroy it" in err
    assert spec.read_text() == SPEC.read_text()


def test_an_output_folder_that_does_not_exist_names_the_output(tmp_path, capsys) -> None:
    out = tmp_path / "missing" / "model.py"
    code, _, err = run_cli(["compile", str(SPEC), "-o", str(out)], capsys)
    assert code == 1 and str(out) in err and ".tmp" not in err
