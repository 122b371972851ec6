"""`archspec fmt`: one canonical layout, idempotent, every comment and blank-line group kept,
what a spec means unchanged (every shipped spec's `check` numbers, formatted in memory)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import ALL_SPECS, ROOT, SPECS
from test_errors import run_cli

import archspec
from archspec.lang.diagnostics import ArchspecError
from archspec.lang.source import SourceFile
from archspec.lang.syntax.formatter import format_source

MESSY = """

# header comment
network   messy( n :int=3,w: float=0.5 , c:list=[1,2])   # trailing
input x:3x32x32
output  y ,z if n>2
init conv2d : kaiming_normal( mode = "fan_out" )


block  unit(c:int, s:int=1) {

      conv : conv2d(c,3,stride=s,padding=1)   ->   relu
  # inside comment
  residual { conv2d(c ,3, padding=1) } shortcut if s!=1{conv2d(c,1)}

}
stem:unit(8) ->unit(8,s=2)
     -> unit(16)
for i in range( n ){ stage{i+1}: conv2d( 16*2**i , 3 , padding = 1)->relu ; convs.{ i }: identity }
z = conv2d(-1*-3 + -n, 1)(stem)
y=global_avgpool2d()(z)->flatten->linear(int(10*w),
     bias =true)   # kwargs
a, b = chunk(2)(y)
q = add(a,b)   ;   r = q
if not(n>1) and n<5 { relu } else { identity }


"""

TIDY = """# header comment
network messy(n: int = 3, w: float = 0.5, c: list = [1, 2])  # trailing
input x: 3x32x32
output y, z if n > 2
init conv2d: kaiming_normal(mode="fan_out")

block unit(c: int, s: int = 1) {
    conv: conv2d(c, 3, stride=s, padding=1) -> relu
    # inside comment
    residual { conv2d(c, 3, padding=1) } shortcut if s != 1 { conv2d(c, 1) }
}
stem: unit(8) -> unit(8, s=2)
      -> unit(16)
for i in range(n) { stage{i+1}: conv2d(16 * 2 ** i, 3, padding=1) -> relu; convs.{i}: identity }
z = conv2d(-1 * -3 + -n, 1)(stem)
y = global_avgpool2d()(z) -> flatten -> linear(int(10 * w),
                                               bias=true)  # kwargs
a, b = chunk(2)(y)
q = add(a, b); r = q
if not (n > 1) and n < 5 { relu } else { identity }
"""


def fmt(text: str) -> str:
    return format_source(SourceFile("t.arch", text))


def comments(text: str) -> list[str]:
    return re.findall(r"#[^\n]*", text)


def test_canonical_layout() -> None:
    assert fmt(MESSY) == TIDY


def test_idempotent_and_keeps_comments() -> None:
    assert fmt(TIDY) == TIDY
    for path in ALL_SPECS[:: max(1, len(ALL_SPECS) // 25)] + [SPECS / "blocks" / "resnet.arch"]:
        text = path.read_text()
        once = fmt(text)
        assert fmt(once) == once, path
        assert [c.rstrip() for c in comments(text)] == comments(once), path
        # blank-line groups: as many groups of lines, each at most one blank line apart
        assert once.count("\n\n") == len(re.findall(r"\S\n(?:[ \t]*\n)+(?=[ \t]*\S)",
                                                    text.strip())), path


def test_trailing_comment_keeps_its_column_when_room() -> None:
    text = "network a\ninput x: 3x8x8\nconv2d(8,3)          # aligned\nrelu  # near\n"
    assert fmt(text).splitlines()[2:] == ["conv2d(8, 3)         # aligned", "relu  # near"]


def test_does_not_parse_is_a_located_error() -> None:
    with pytest.raises(ArchspecError) as info:
        fmt("network a\ninput x: 3x8x8\nconv2d(8, 3\nrelu\nlinear(3))\nfoo bar\n")
    assert info.value.diagnostic.code.startswith("E10")
    assert info.value.diagnostic.span.line >= 3


def test_cli_in_place_check_and_stdin(tmp_path: Path, capsys, monkeypatch) -> None:
    messy = tmp_path / "nets" / "messy.arch"
    messy.parent.mkdir()
    messy.write_text(MESSY)
    (tmp_path / "nets" / "tidy.arch").write_text(TIDY)
    code, _, err = run_cli(["fmt", "--check", str(tmp_path / "nets")], capsys)
    assert code == 1 and "would reformat" in err and "messy.arch" in err
    assert "tidy.arch" not in err.split("\n")[0] and messy.read_text() == MESSY
    code, _, err = run_cli(["fmt", str(tmp_path / "nets")], capsys)
    assert code == 0 and messy.read_text() == TIDY
    assert run_cli(["fmt", "--check", str(messy)], capsys)[0] == 0
    monkeypatch.setattr("sys.stdin", _Stdin(MESSY.encode()))
    code, out, _ = run_cli(["fmt", "-"], capsys)
    assert code == 0 and out == TIDY


def test_cli_error_leaves_the_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.arch"
    bad.write_text("network a\ninput x: 3\nconv2d(\nrelu\n")
    code, _, err = run_cli(["fmt", str(bad)], capsys)
    assert code == 1 and "bad.arch:4:5: error[E102]" in err
    assert bad.read_text() == "network a\ninput x: 3\nconv2d(\nrelu\n"


class _Stdin:
    def __init__(self, data: bytes) -> None:
        import io

        self.buffer = io.BytesIO(data)


LOCATION = ("line", "col", "file", "source")


def _numbers(value: object) -> object:
    """A `check --format json` document without locations (formatting moves columns)."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items() if k not in LOCATION}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def test_every_shipped_spec_keeps_its_numbers(tmp_path: Path) -> None:
    """specs/ formatted in memory into a copy (blocks included): each network's `check` JSON
    numbers are those of the original text."""
    copy = tmp_path / "specs"
    shutil.copytree(SPECS, copy, symlinks=True)
    for path in sorted(copy.rglob("*.arch")):
        path.write_text(fmt(path.read_text()))
    for path in ALL_SPECS:
        formatted = copy / path.relative_to(SPECS)
        original = archspec.analyze(archspec.load(path), batch=None).to_dict()
        after = archspec.analyze(archspec.load(formatted), batch=None).to_dict()
        assert _numbers(after) == _numbers(original), path.relative_to(ROOT)


def test_shipped_specs_are_formatted(capsys) -> None:
    code, _, err = run_cli(["fmt", "--check", str(SPECS)], capsys)
    assert code == 0, err
