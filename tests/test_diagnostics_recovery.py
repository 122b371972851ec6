"""Recovery at statement level: every independent error of a file is reported, located, in one
run (from `check` too), and what only follows from an earlier error is not."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_errors import run_cli

import archspec
from archspec.lang.diagnostics import MAX_ERRORS, ArchspecError

THREE = """network three(num_classes: int = 10)
input x: 3x32x32

block unit(c: int) {
    conv: conv2x(c, 3, padding=1)
    bn: batchnorm2d
    relu
}

stem: conv2d(16, 3, padding=1)
b1: unit(16)
b2: unit(32)
attn_in: flatten(1, 2) -> permute([1, 0])
attn: mhsa(5)
pooled = mean(0)(attn)
head: linear(num_classes)(poolde)
"""


def errors(text: str) -> list[tuple[str, int, int]]:
    with pytest.raises(ArchspecError) as info:
        archspec.analyze(archspec.loads(text))
    return [(d.code, d.span.line, d.span.col) for d in info.value.diagnostics]


def test_three_independent_errors_from_check(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "three.arch"
    spec.write_text(THREE)
    code, out, err = run_cli(["check", str(spec)], capsys)
    assert code == 1 and out == ""
    located = [line for line in err.splitlines() if ": error[" in line]
    assert located == [
        f"{spec}:5:11: error[E201]: unknown op or block `conv2x`",
        f"{spec}:14:7: error[E301]: `heads` (=5) must divide the 16 features",
        f"{spec}:16:27: error[E212]: unknown layer or input `poolde`",
    ]
    # the block's error once, with where it was first called; its hint kept
    assert err.count("note: in block `unit` (`b1`) called here") == 1
    assert "`b2`" not in err and "did you mean `conv2d`?" in err and "did you mean `pooled`" in err


def test_json_check_also_fails_with_all_errors(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "three.arch"
    spec.write_text(THREE)
    code, out, err = run_cli(["check", str(spec), "--format", "json"], capsys)
    assert code == 1 and out == "" and err.count(": error[") == 3


def test_consequences_are_not_reported() -> None:
    text = """network r
input x: 8x8x8
y = residual { conv2d(16, 3, padding=1) -> batchnom2d } -> relu
z = add(y, x)
w = linear(4)(z) -> linaer(2)
"""
    # the typo, not the add of 16 + 8 channels it left, nor `add(y, x)` that reads it
    assert errors(text) == [("E201", 3, 44), ("E201", 5, 21)]


def test_names_of_a_failed_statement_stay_known() -> None:
    text = "network n\ninput x: 3x8x8\na = conv2d(8, 3, paddin=1)(x)\nb = relu()(a)\n"
    assert errors(text) == [("E233", 3, 18)]


def test_error_limit(tmp_path: Path) -> None:
    body = "".join(f"l{i}: conv2d(8, 3, pading=1)\n" for i in range(MAX_ERRORS + 5))
    found = errors("network n\ninput x: 3x32x32\n" + body)
    assert len(found) == MAX_ERRORS and found[0] == ("E233", 3, 18)
    assert [line for _, line, _ in found] == list(range(3, 3 + MAX_ERRORS))


def test_a_limit_stops_with_the_errors_before_it() -> None:
    text = ("network n\ninput x: 3x8x8\na: relux\n"
            "repeat 200000 as i { identity }\nb: reluy\n")
    assert errors(text) == [("E201", 3, 4), ("E703", 4, 22)]


def test_one_error_is_unchanged() -> None:
    assert errors("network n\ninput x: 3x8x8\nconv2d(8, 3) -> relux\n") == [("E201", 3, 17)]
