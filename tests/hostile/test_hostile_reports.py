"""Every report format escapes what it prints: Markdown code spans and cells, CSV formulas,
terminal escapes; JSON holds a hostile name as data."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re

from hostile_support import SPECS, run_cli

import archspec
from archspec.analysis.diff import diff
from archspec.analysis.sweep import COLUMNS, Variant
from archspec.views import diff as diff_view
from archspec.views import sweep as sweep_view
from archspec.views.report import Report
from archspec.views.table import markdown

LABEL = "g`` |x <b>"
SPEC = f'network odd\ninput x: 3x8x8\ng{{"{LABEL[1:]}"}}: relu\nconv2d(4, 3)\n'
EVIL = "\x1b[2J\u202eop`|[a](http://x)"


def _cells(line: str) -> list[str]:
    """A GFM table row's cells (split at bars that are not escaped)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def _span(cell: str) -> str:
    """The text of a Markdown code span: fences of n backticks, one space of padding each side
    dropped when both are there, ``\\|`` read as ``|``."""
    n = len(cell) - len(cell.lstrip("`"))
    assert n and cell.endswith("`" * n) and "`" * (n + 1) not in (cell[:n + 1], cell[-n - 1:])
    body = cell[n:-n]
    assert not re.search(rf"(?<!`)`{{{n}}}(?!`)", body)  # no run of n closes it early
    if body.startswith(" ") and body.endswith(" ") and body.strip():
        body = body[1:-1]
    return body.replace("\\|", "|")


def _hostile(report: Report) -> Report:
    """``report`` with a name and an op nothing in a spec may hold (the Python API can)."""
    layers = [dataclasses.replace(r, name=EVIL + r.name, op=EVIL) for r in report.layers]
    return dataclasses.replace(report, network=EVIL, layers=layers,
                               inputs={EVIL: next(iter(report.inputs.values()))})


def test_markdown_fences_labels_and_escapes_bars(tmp_path, capsys) -> None:
    (tmp_path / "odd.arch").write_text(SPEC)
    code, out, err = run_cli(["check", str(tmp_path / "odd.arch"), "--format", "markdown"],
                             capsys)
    assert code == 0, err
    rows = [_cells(line) for line in out.splitlines() if line.startswith("| ")]
    assert all(len(r) == len(rows[0]) for r in rows), rows
    assert _span(rows[1][0]) == LABEL and rows[1][1] == "relu"  # a registry name, as it is


def test_markdown_of_names_from_the_api_stays_in_its_cells() -> None:
    report = _hostile(archspec.analyze(archspec.load(SPECS / "examples" / "cnn1.arch")))
    text = markdown(report, None)
    assert "\x1b" not in text and "\u202e" not in text
    heading = text.splitlines()[0]
    assert "](http" not in heading and "\\[a\\]\\(http://x\\)" in heading
    rows = [_cells(line) for line in text.splitlines() if line.startswith("| ")]
    assert all(len(r) == len(rows[0]) for r in rows)
    assert _span(rows[2][1]) == "\\x1b[2J\\u202eop`|[a](http://x)"
    d = diff_view.markdown(diff(report, report, depth=None))
    assert "\x1b" not in d and "](http" not in d.splitlines()[0]
    rows = [_cells(line) for line in d.splitlines() if line.startswith("| ")]
    assert len({len(r) for r in rows[:5]}) == 1


def test_terminal_tables_escape_what_a_terminal_acts_on() -> None:
    report = _hostile(archspec.analyze(archspec.load(SPECS / "examples" / "cnn1.arch")))
    for text in (str(report), diff_view.table(diff(report, report, depth=None)),
                 sweep_view.table([Variant({EVIL: 1}, None, None)])):
        assert "\x1b" not in text and "\u202e" not in text and "\\x1b[2J" in text


def test_csv_neutralises_formulas_but_keeps_numbers() -> None:
    totals = {k: 1 for k in COLUMNS}
    variants = [Variant({"=HYPERLINK(1)": -1, "@SUM(A1)": ("+1", 2), "w": -0.5}, totals),
                Variant({"=HYPERLINK(1)": 3, "@SUM(A1)": ("-2", 2), "w": 2.0}, totals)]
    rows = list(csv.reader(io.StringIO(sweep_view.to_csv(variants))))
    assert rows[0][:3] == ["'=HYPERLINK(1)", "'@SUM(A1)", "w"]
    assert rows[1][:3] == ["-1", "'+1x2", "-0.5"] and rows[2][:3] == ["3", "'-2x2", "2.0"]


def test_csv_of_a_sweep_keeps_negative_values_numeric(capsys) -> None:
    code, out, err = run_cli(["sweep", str(SPECS / "examples" / "resnet_family.arch"), "--set",
                              "width=-0.5,1", "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["width"] == "-0.5" and rows[1]["width"] == "1", err


def test_json_holds_a_hostile_label_as_data(tmp_path, capsys) -> None:
    (tmp_path / "odd.arch").write_text(SPEC)
    code, out, _ = run_cli(["check", str(tmp_path / "odd.arch"), "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["layers"][0]["name"] == LABEL
    report = _hostile(archspec.analyze(archspec.load(SPECS / "examples" / "cnn1.arch")))
    data = json.loads(report.to_json())
    assert data["network"] == EVIL and data["layers"][0]["op"] == EVIL
    assert list(data["inputs"]) == [EVIL]
