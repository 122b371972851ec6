"""No command writes over a file it reads (the weights beside an ONNX model, a file the spec
imports), a killed write leaves no temporary, and written files get the usual mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hostile_support import ROOT, SPECS, clean_failure, leftovers, run_cli

import archspec
from archspec.files.atomic import write_atomic

CNN1 = SPECS / "examples" / "cnn1.arch"
BLOCKS = """block stage(width: int) {
    conv2d(width, 3, padding=1) -> relu -> maxpool2d(2)
}
"""
NET = """import "blocks.arch"
network net
input x: 3x16x16
stage(8)
flatten
linear(2)
"""


def _weights(path: Path) -> bytes:
    torch.save(archspec.to_torch(archspec.load(CNN1)).state_dict(), path)
    return path.read_bytes()


def test_export_refuses_to_write_its_weights_as_external_data(tmp_path: Path, capsys) -> None:
    weights = tmp_path / "m.onnx.data"
    before = _weights(weights)
    code, _, err = run_cli(["export", str(CNN1), "--weights", str(weights), "-o",
                            str(tmp_path / "m.onnx"), "--external-data"], capsys)
    clean_failure(code, err, "m.onnx.data", "would destroy")
    assert weights.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.onnx.data"]


def test_export_refuses_an_existing_data_file_that_is_the_weights(tmp_path: Path,
                                                                  capsys) -> None:
    weights = tmp_path / "w.pt"
    before = _weights(weights)
    os.symlink(weights, tmp_path / "m.onnx.data")
    code, _, err = run_cli(["export", str(CNN1), "--weights", str(weights), "-o",
                            str(tmp_path / "m.onnx")], capsys)
    clean_failure(code, err, "m.onnx.data", "would destroy")
    assert weights.read_bytes() == before and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("command", [["convert", "--to", "arch"], ["compile"]])
@pytest.mark.parametrize("nested", [False, True])
def test_an_output_may_not_be_a_file_the_spec_imports(command: list[str], nested: bool,
                                                      tmp_path: Path, capsys) -> None:
    """``net.arch`` imports ``blocks.arch`` (directly, or through ``mid.arch``): writing it
    would destroy what the spec reads, whatever the command."""
    (tmp_path / "blocks.arch").write_text(BLOCKS)
    if nested:
        (tmp_path / "mid.arch").write_text('import "blocks.arch"\n')
    (tmp_path / "net.arch").write_text(NET.replace("blocks", "mid") if nested else NET)
    code, _, err = run_cli([command[0], str(tmp_path / "net.arch"), *command[1:], "-o",
                            str(tmp_path / "blocks.arch")], capsys)
    clean_failure(code, err, "blocks.arch", "would destroy")
    assert (tmp_path / "blocks.arch").read_text() == BLOCKS
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_a_write_removes_the_temporary(signum: int, tmp_path: Path) -> None:
    """An export of ResNet-50 (100 MB) is signalled while its temporary file exists: the
    temporary goes, the previous output stays whole, and the process ends by the signal."""
    out = tmp_path / "m.onnx"
    out.write_text("previous output")
    child = subprocess.Popen([sys.executable, "-m", "archspec", "export",
                              str(SPECS / "resnet50.arch"), "-o", str(out)], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not leftovers(tmp_path) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert leftovers(tmp_path), "the export ended before its temporary file was seen"
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode in (-signum, 128 + signum), err
    assert "Traceback" not in err
    assert not leftovers(tmp_path) and out.read_text() == "previous output"


def test_written_files_get_the_usual_mode(tmp_path: Path, capsys) -> None:
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a.txt", "text")
        code, _, err = run_cli(["compile", str(CNN1), "-o", str(tmp_path / "m.py")], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    for name in ("a.txt", "m.py"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name
