"""Golden `archspec check` tables (tests/golden/check/*.txt; --update-golden rewrites them), and
a fuzz test: whatever text a user writes, the result is a report or an ArchspecError."""

from __future__ import annotations

import pytest
from conftest import GOLDEN, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_errors import run_cli

import archspec

TABLES = [("googlenet", ["--depth", "2"]), ("resnet18", ["--depth", "2", "--batch", "8"]),
          ("examples/cnn1", []), ("classic/lenet5_1998", ["--convention", "thop"])]


@pytest.mark.parametrize(("spec", "args"), TABLES, ids=[t[0] for t in TABLES])
def test_check_table_golden(spec, args, capsys, monkeypatch, update_golden) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(["check", f"specs/{spec}.arch", *args], capsys)
    assert code == 0
    golden = GOLDEN / "check" / f"{spec.replace('/', '_')}.txt"
    if update_golden or not golden.exists():
        golden.write_text(out)
    assert out == golden.read_text()


FRAGMENTS = ["network n", "input x: 3x8x8", "input x: 4", "conv2d(4, 3)", "relu", "flatten",
             "linear(3)", "a = conv2d(2, 1)(x)", "y = add(a, x)", "concat { relu; tanh }",
             "residual { conv2d(3, 3, padding=1) }", "repeat 2 { relu }", "block b(c) { relu }",
             "b(2)", "maxpool2d(2)", "for i in range(2) { relu }", "if 1 { relu }", "{", "}",
             "->", "(", ")", "x", "1", ":", "=", ",", "\n", " ", "#c\n", "\"s\"", "in.channels"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14).map(" ".join) | st.text(max_size=60))
def test_any_text_gives_a_report_or_a_located_error(text: str) -> None:
    try:
        archspec.analyze(archspec.loads(text or " "))
    except archspec.ArchspecError as exc:
        assert exc.diagnostics and exc.diagnostic.span.line >= 1
