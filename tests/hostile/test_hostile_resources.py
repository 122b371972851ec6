"""Resources known before anything is allocated: `check` warns (W501) about a network that
needs more than 32 GiB to run and counts buffers in its byte figures; `export`, `bench`,
`train` and `eval` refuse (E709, at the biggest layer, exit 1) a run that needs more memory
than `--max-memory` (or than the machine has), and write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_support import CNN3, SMALL, SPECS, clean_failure, run_cli

from archspec.cli.options import memory_size

# 8 channels upsampled 400x: about 240 GiB of activations for 224 weights
HUGE = "network up\ninput x: 3x224x224\nconv2d(8, 3, padding=1)\nupsample(scale=400)\n"


@pytest.fixture
def huge(tmp_path: Path) -> Path:
    path = tmp_path / "up.arch"
    path.write_text(HUGE)
    return path


def test_check_warns_about_a_network_no_machine_runs(huge: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["check", str(huge)], capsys)
    assert code == 0 and "up.arch:4:1: warning[W501]" in err and "GiB" in err
    assert "Memory to run: 256," in out
    code, _, err = run_cli(["check", str(huge), "--strict"], capsys)
    assert code == 1


def test_check_counts_buffers_in_its_byte_figures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["check", str(SPECS / "resnet18.arch")], capsys)
    # resnet18's BatchNorm statistics: 9,620 buffer elements (torchvision's state_dict)
    assert code == 0 and "Buffers: 9,620" in out and "buffers size: 0.04 MB" in out


@pytest.mark.parametrize("command", [
    ["bench", "{spec}", "--backend", "torch"],
    ["eval", "{spec}", "--weights", "{tmp}/none.pt"],
])
def test_runs_that_cannot_fit_are_refused_before_allocating(
        command: list[str], huge: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "none.pt").write_bytes(b"")
    args = [a.format(spec=huge, tmp=tmp_path) for a in command] + ["--max-memory", "1G"]
    code, _, err = run_cli(args, capsys)
    clean_failure(code, err, "E709", "up.arch:4:1", "--max-memory is 1.00 GiB")
    assert not (tmp_path / "up.onnx").exists()


# 50,000 features to 50,000: 2.5 G weights (10 GB), activations of a few hundred kB
WIDE = "network wide\ninput x: 50000\nfc: linear(50000)\n"


def test_export_counts_the_weights_it_holds_not_activations(
        huge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    code, _, err = run_cli(["export", str(huge), "-o", str(out), "--max-memory", "1G"], capsys)
    assert code == 0, err  # 240 GiB of activations, but export runs no forward
    wide = tmp_path / "wide.arch"
    wide.write_text(WIDE)
    out.unlink()
    code, _, err = run_cli(["export", str(wide), "-o", str(out), "--max-memory", "1G"], capsys)
    clean_failure(code, err, "E709", "wide.arch:3:", "holding the weights needs 9.31 GiB")
    assert not out.exists()


def test_training_counts_gradients_and_kept_activations(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", str(CNN3), *SMALL, "--epochs", "1", "--samples", "20", "--out",
            str(tmp_path / "run"), "--max-memory", "64K"]
    code, _, err = run_cli(args, capsys)
    clean_failure(code, err, "E709", "training at batch 32")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("text", "size"), [("8G", 8 * 2**30), ("512M", 512 * 2**20),
                                            ("2GiB", 2 * 2**30), ("1.5k", 1536),
                                            ("1000", 1000)])
def test_memory_sizes(text: str, size: int) -> None:
    assert memory_size(text) == size


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "1e400", "G", "9" * 30])
def test_bad_memory_sizes_are_usage_errors(text: str) -> None:
    import click

    with pytest.raises(click.BadParameter):
        memory_size(text)
