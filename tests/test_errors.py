"""Every error a user can cause: located, with the source line, a caret and a hint; exit 1,
never a traceback. Expected renderings live in tests/golden/errors/*.txt (--update-golden)."""

from __future__ import annotations

import pytest
from conftest import GOLDEN, ROOT

from archspec.cli import main

CASES = sorted(p for p in (GOLDEN / "errors").iterdir() if p.suffix in (".arch", ".yaml"))


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_error_rendering_is_located_and_stable(case, capsys, monkeypatch, update_golden) -> None:
    monkeypatch.chdir(ROOT)
    rel = str(case.relative_to(ROOT))
    code, out, err = run_cli(["check", rel], capsys)
    assert code == 1, out
    assert "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith(f"{rel}:") and "error[E" in first
    if "is empty" not in first and "binary" not in first:
        assert "^" in err and "hint:" in err
    golden = case.with_suffix(case.suffix + ".txt")
    if update_golden:
        golden.write_text(err)
    assert golden.exists(), f"no golden file {golden.name}: run pytest --update-golden"
    assert err == golden.read_text()


def test_missing_file(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, _, err = run_cli(["check", "specs/nope.arch"], capsys)
    assert code == 1
    assert err.startswith("specs/nope.arch:1:1: error[E001]: no such file: specs/nope.arch")


def test_debug_shows_traceback(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(Exception) as info:
        main(["check", "tests/golden/errors/unknown_op.arch", "--debug"])
    assert type(info.value).__name__ == "ArchspecError"


def test_every_code_in_the_source_is_in_the_table_and_docs() -> None:
    """Codes live in one table (diagnostics.CODES), each with one meaning; docs/errors.md is
    generated from it, and every code the source raises is listed."""
    import re

    from archspec.lang.diagnostics import CODES, codes_markdown

    used = set()
    for path in (ROOT / "archspec").rglob("*.py"):
        used |= set(re.findall(r"\"([EW]\d{3})\"", path.read_text()))
    assert used <= set(CODES), used - set(CODES)
    assert (ROOT / "docs" / "errors.md").read_text() == codes_markdown()


def test_an_unlisted_code_is_a_bug() -> None:
    from archspec.lang.diagnostics import Diagnostic

    with pytest.raises(ValueError, match="not in diagnostics.CODES"):
        Diagnostic("E999", "no such code")
