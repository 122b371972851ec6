"""Options and sizes no backend can hold: a batch past 2**31 - 1, an input or a network whose
counts do not fit 64 bits, end in a usage error (exit 2) or a located E701 (exit 1), never an
internal error; random option values (hypothesis) never crash the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_support import CNN3, SPECS, clean_failure, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

RESNET18 = str(SPECS / "resnet18.arch")


@pytest.mark.parametrize("args", [
    ["check", RESNET18, "--batch", "99999999999999999999"],
    ["check", RESNET18, "--batch", "2147483648"],
    ["export", RESNET18, "-o", "{tmp}/r.onnx", "--batch", "99999999999999999999"],
    ["check", RESNET18, "--input", "x=3x99999999999x99999999999"],
    ["check", RESNET18, "--input", "x=3x" + "9" * 40 + "x2"],
    # 10 million calibration images would be 6 TB held in memory
    ["export", RESNET18, "-o", "{tmp}/r.onnx", "--quantize", "int8", "--calibration-samples",
     "10000000"],
])
def test_sizes_past_the_bounds_are_usage_errors(args: list[str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli([a.format(tmp=tmp_path) for a in args], capsys)
    clean_failure(code, err, "Invalid value")
    assert code == 2 and not (tmp_path / "r.onnx").exists()


def test_totals_past_64_bits_are_e701_at_the_biggest_layer(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["check", RESNET18, "--input", "x=3x999999x999999", "--batch",
                            "1000000"], capsys)
    clean_failure(code, err, "E701", "resnet18.arch:", "do not fit in 64 bits")
    assert code == 1


def test_a_tensor_past_64_bits_per_sample_is_e701(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "big.arch"
    spec.write_text("network big\ninput x: 3x3000000000x3000000000\nrelu\n")
    code, _, err = run_cli(["check", str(spec)], capsys)
    clean_failure(code, err, "E701", "big.arch:3:1", "elements per sample")


OPTION_TEXT = st.one_of(st.integers(-10, 10**25).map(str), st.text(max_size=12),
                        st.sampled_from(["0", "-1", "1e9", "3x", "x=", "=3", "x=3x0x4",
                                         "x=3x8x8x8", "dynamic", "\x1b[2J", "nan"]))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--batch", "--input", "--set", "--depth", "--dtype",
                               "--convention"]), value=OPTION_TEXT)
def test_random_option_values_never_crash(option: str, value: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["check", str(CNN3), option, value, "--format", "json"], capsys)
    assert code in (0, 1, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
