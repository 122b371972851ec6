"""Diagnostics on hostile input: long lines are clipped around the caret, control characters
are escaped everywhere, lines are counted as the lexer counts them, and every error is located
in the user's file (issue 9, "Diagnostics")."""

from __future__ import annotations

import re

import pytest

from archspec import cli
from archspec.lang.diagnostics import (
    MAX_ERRORS,
    QUOTE_CONTEXT,
    ArchspecError,
    Diagnostic,
    printable,
)
from archspec.lang.expander import expand
from archspec.lang.source import SourceFile, Span
from archspec.lang.syntax.loader import loads

HEAD = "network n\ninput x: 3x8x8\n"
# Characters that must never reach a terminal raw (newline is the renderer's own).
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e"
                         "\u2066-\u2069]")


def rendered(text: str, name: str = "t.arch") -> str:
    """The diagnostics ``text`` gives when loaded and expanded."""
    with pytest.raises(ArchspecError) as info:
        expand(loads(text, name=name))
    return "\n".join(d.render() for d in info.value.diagnostics)


def excerpt(out: str) -> tuple[str, str]:
    """The quoted source line and the caret line of the first excerpt in ``out``."""
    lines = out.splitlines()
    quoted = next(i for i, ln in enumerate(lines) if re.match(r"\s*\d+ \| ", ln))
    return lines[quoted].split(" | ", 1)[1], lines[quoted + 1].split(" | ", 1)[1]


def caret_at(out: str) -> str:
    """The quoted text under the caret."""
    quoted, caret = excerpt(out)
    start = caret.index("^")
    return quoted[start:start + len(caret) - start]


def test_a_long_line_is_clipped_around_the_caret() -> None:
    out = rendered(HEAD + "relu -> " + "relu -> " * 5000 + ") -> " + "relu -> " * 5000 + "relu\n")
    quoted, _ = excerpt(out)
    assert len(out) < 1000
    assert quoted.startswith("...") and quoted.endswith("...")
    assert len(quoted) <= 2 * QUOTE_CONTEXT + 10
    assert caret_at(out) == ")"


def test_a_5_mb_token_is_not_echoed() -> None:
    out = rendered(HEAD + "relu " + "z" * 5_000_000 + "\n")
    assert "error[E103]" in out
    assert len(out) < 1000


def test_a_wide_span_gets_a_bounded_caret() -> None:
    source = SourceFile("w.arch", "x" * 10_000)
    out = Diagnostic("E201", "wide", Span(source, 1, 5, 9_000)).render()
    assert len(out) < 500
    assert excerpt(out)[1].count("^") == QUOTE_CONTEXT


def test_escape_sequences_in_the_quoted_line_are_escaped() -> None:
    out = rendered(HEAD + "relu ) # \x1b[2J\x1b[32mOK\x07\u202e\x9b\r\n")
    assert not RAW_CONTROL.search(out)
    for shown in ("\\x1b[2J", "\\x07", "\\u202e", "\\x9b"):
        assert shown in out
    assert caret_at(out) == ")"


def test_an_escape_character_in_the_message_is_escaped() -> None:
    out = rendered(HEAD + "relu \x1b[2J\n")
    assert "error[E101]: unexpected character `\\x1b`" in out
    assert not RAW_CONTROL.search(out)


def test_the_caret_stays_aligned_after_escaped_characters() -> None:
    out = rendered(HEAD + "relu\x0c\x0c)\n")
    assert "relu\\x0c\\x0c)" in out
    assert caret_at(out) == ")"


def test_message_notes_hint_and_file_name_are_escaped() -> None:
    source = SourceFile("a\x1b]0;x\x07.arch", "relu\n")
    out = Diagnostic("E201", "bad \x1b[2J\nOK", Span(source, 1, 1), hint="h\u202eint",
                     notes=(("n\x08ote", Span(source, 1, 2)),)).render()
    assert not RAW_CONTROL.search(out)
    assert "bad \\x1b[2J\\x0aOK" in out and "h\\u202eint" in out and "n\\x08ote" in out
    assert out.startswith("a\\x1b]0;x\\x07.arch:1:1:")
    assert len(out.splitlines()) == 9


def test_printable_keeps_ordinary_text() -> None:
    assert printable("conv2d(64, 3) -> ünïcode") == "conv2d(64, 3) -> ünïcode"


@pytest.mark.parametrize("breaker", ["\x0c", "\r", "\u2028", "\u2029", "\x0b", "\x1c", "\x85"])
def test_line_breaks_inside_a_comment_do_not_shift_the_quoted_line(breaker: str) -> None:
    out = rendered(HEAD + f"# one{breaker}two{breaker}three\nrelu\nrelu )\n")
    assert out.startswith("t.arch:5:6: error[E103]")
    assert excerpt(out)[0] == "relu )"


def test_crlf_lines_are_quoted_without_the_carriage_return() -> None:
    out = rendered(HEAD.replace("\n", "\r\n") + "relu )\r\nrelu\r\n")
    assert out.startswith("t.arch:3:6: error[E103]")
    assert excerpt(out)[0] == "relu )"


def test_unexpected_end_of_file_is_on_the_last_line_the_lexer_saw() -> None:
    out = rendered(HEAD + "# a\u2028b\nrelu -> conv2d(\n\n")
    assert out.startswith("t.arch:4:16: error[E102]")


@pytest.mark.parametrize("text", ["#", "# only a comment\n# and another\n", "output y\n"])
def test_a_file_without_statements_is_located_in_the_file(text: str) -> None:
    out = rendered(text, name="only.arch")
    assert out.startswith("only.arch:1:1: error[E111]")


def test_a_network_line_without_input_is_still_an_error_at_that_line() -> None:
    with pytest.raises(ArchspecError) as info:
        loads("# comment\nnetwork n\n", name="n.arch")
    assert str(info.value).startswith("n.arch:2:9: error[E111]")


def test_a_library_of_blocks_still_loads() -> None:
    spec = loads("block b() { relu }\n", name="lib.arch")
    assert [b.name for b in spec.blocks] == ["b"]


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    return int(info.value.code or 0), capsys.readouterr().err


def test_cli_usage_errors_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(["check", "--\x1b[2Jbogus", "x.arch"], capsys)
    assert code == 2
    assert "\\x1b[2Jbogus" in err and not RAW_CONTROL.search(err)


def test_cli_internal_errors_are_escaped(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    def boom(**_kwargs: object) -> None:
        raise ValueError("\x1b[2J\x1b[32mOK")

    monkeypatch.setattr(cli.cli, "main", boom)
    code, err = run_main(["check", "x.arch"], capsys)
    assert code == 3
    assert "internal error: ValueError: \\x1b[2J\\x1b[32mOK" in err
    assert not RAW_CONTROL.search(err)


def diagnostics_of(text: str) -> list[tuple[int, str]]:
    """(line, code) of every diagnostic loading ``text`` raises."""
    with pytest.raises(ArchspecError) as info:
        loads(text, name="m.arch")
    return [(d.span.line, d.code) for d in info.value.diagnostics]


def test_every_independent_syntax_error_of_a_file_is_reported() -> None:
    text = HEAD + ("relu )\n"
                   "block b() {\n"
                   "  relu )\n"
                   "  relu\n"
                   "}\n"
                   "foo: conv2d(3,\n"
                   "  4 5)\n"
                   "relu\n"
                   "relu ]\n")
    assert diagnostics_of(text) == [(3, "E103"), (5, "E103"), (9, "E103"), (11, "E103")]


def test_no_error_is_reported_for_lines_inside_an_unclosed_bracket() -> None:
    text = HEAD + "relu )\nfoo: conv2d(3,\nrelu\nrelu ]\n"
    assert diagnostics_of(text) == [(3, "E103"), (6, "E103")]


def test_a_continued_line_is_not_a_new_statement() -> None:
    text = HEAD + "relu )\nfoo: relu ->\n   relu\nbar = relu ->\nrelu\n"
    assert diagnostics_of(text) == [(3, "E103")]


def test_at_most_max_errors_are_reported() -> None:
    assert len(diagnostics_of(HEAD + "relu )\n" * 50)) == MAX_ERRORS


def test_the_cli_prints_every_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.arch").write_text(HEAD + "relu )\nrelu\nrelu ]\n")
    code, err = run_main(["check", "m.arch"], capsys)
    assert code == 1
    assert [ln.split(": error")[0] for ln in err.splitlines() if "error[" in ln] == [
        "m.arch:3:6", "m.arch:5:6"]


def test_independent_load_errors_are_reported_together() -> None:
    text = ("network n(k: integr = 1)\n"
            "input x: 3x8x8\n"
            "input x: 3x8x8\n"
            "init conv2d: kaiming_nrmal()\n"
            "init linear: normal(std=0.01)\n"
            "init linear: normal(std=0.02)\n"
            "block b() { relu }\n"
            "block b() { relu }\n"
            "relu\n")
    assert diagnostics_of(text) == [(3, "E114"), (8, "E114"), (4, "E116"), (6, "E114"),
                                    (1, "E113")]


def test_the_cli_says_when_it_stopped_at_max_errors(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.arch").write_text(HEAD + "relu )\n" * 30)
    code, err = run_main(["check", "m.arch"], capsys)
    assert code == 1
    assert err.count("error[E103]") == MAX_ERRORS
    assert err.endswith(f"error: stopped after {MAX_ERRORS} errors\n")


def test_cli_write_errors_are_escaped(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    def full_disk(**_kwargs: object) -> None:
        raise OSError(28, "No space left on device", "out\x1b[2J\u202e.onnx")

    monkeypatch.setattr(cli.cli, "main", full_disk)
    code, err = run_main(["check", "x.arch"], capsys)
    assert code == 1
    assert "out\\x1b[2J\\u202e.onnx" in err and not RAW_CONTROL.search(err)
