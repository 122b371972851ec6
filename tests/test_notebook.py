"""Notebook output: a Report displays as the check table with folding blocks, and
``archspec.show(spec)`` as the totals and the graph page in an ``<iframe srcdoc>``. A real
notebook runs in a Jupyter kernel (nbclient); its HTML outputs are checked against the report,
parsed as HTML (every name escaped, the frame's page intact), and drawn in headless Chromium
when there is one (a screenshot under the temporary folder)."""

from __future__ import annotations

import contextlib
import html
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

import archspec
from archspec.views.drawing import draw

RESNET18 = ROOT / "specs" / "resnet18.arch"
SCREENSHOT = Path(tempfile.gettempdir()) / "archspec-notebook-report.png"
TABLE_TAGS = {"div", "style", "p", "table", "colgroup", "col", "thead", "tbody", "tr", "th",
              "td", "details", "summary", "span", "ul", "li"}


class _Parsed(HTMLParser):
    """The tags, the text and the iframes' srcdoc values (entities decoded) of an HTML text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []
        self.srcdocs: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.srcdocs += [v or "" for k, v in attrs if tag == "iframe" and k == "srcdoc"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def report() -> Any:
    return archspec.analyze(archspec.load(RESNET18))


@pytest.fixture(scope="module")
def notebook_outputs() -> dict[str, str]:
    """Run a three-cell notebook in a fresh kernel: load and analyse a spec, display the
    report, display ``archspec.show(spec)``; the text/html of the two displays."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    cells = [f"import archspec\nspec = archspec.load({str(RESNET18)!r})\n"
             "report = archspec.analyze(spec)", "report", "archspec.show(spec)"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(client.setup_kernel())
        except Exception as exc:  # no kernelspec, a kernel that dies or never answers
            pytest.skip(f"a Jupyter kernel cannot start here: {type(exc).__name__}: {exc}")
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    out = {}
    for name, cell in zip(("report", "show"), nb.cells[1:]):
        (result,) = [o for o in cell.outputs if o["output_type"] == "execute_result"]
        out[name] = result["data"]["text/html"]
    return out


def test_report_displays_as_a_folding_table(notebook_outputs, report) -> None:
    shown = notebook_outputs["report"]
    parsed = _Parsed(shown)
    assert set(parsed.tags) <= TABLE_TAGS
    assert shown.count("<details>") == len(report.blocks) and "<summary" in shown
    for row in report.layers + report.blocks:  # every row, titled with its dotted name
        assert f'title="{html.escape(row.name)}"' in shown
        assert f">{html.escape(row.name.rsplit('.', 1)[-1])}<" in shown
    top = [b for b in report.blocks if b.depth == 0]
    assert all(f">{b.params:,}<" in shown for b in top)
    t = report.totals
    assert f"Total params: {t['params']:,}" in shown and f"MACs: {t['macs']:,}" in shown
    assert shown.index("</table>") < shown.index("Total params")  # the totals below


def test_show_displays_the_totals_and_the_graph_page(notebook_outputs, report) -> None:
    shown = notebook_outputs["show"]
    parsed = _Parsed(shown)
    assert set(parsed.tags) <= TABLE_TAGS | {"iframe"} and parsed.tags.count("iframe") == 1
    t = report.totals
    assert f"Total params: {t['params']:,}" in shown and f"FLOPs: {t['flops']:,}" in shown
    # the frame's page is the `graph -o net.html` page at depth 1, whole once unescaped
    (page,) = parsed.srcdocs
    assert page == draw(archspec.load(RESNET18), "html", 1).decode("utf-8")
    assert "<script" not in shown and "</script>" in page


def test_hostile_names_stay_text() -> None:
    from test_graph_output import HOSTILE, _hostile_spec

    from archspec.views.notebook import show

    spec = _hostile_spec()
    table = archspec.analyze(spec)._repr_html_()
    parsed = _Parsed(table)
    assert set(parsed.tags) <= TABLE_TAGS and "<img" not in table
    assert HOSTILE in "".join(parsed.text) and "grp<b>" not in table and "grp&lt;b&gt;" in table
    shown = show(spec)._repr_html_()
    parsed = _Parsed(shown)
    assert set(parsed.tags) <= TABLE_TAGS | {"iframe"} and "<img" not in shown
    assert parsed.srcdocs == [draw(spec, "html", 1).decode("utf-8")]


# ------------------------------------------------------------------- drawn in Chromium


def _page(browser: Any, body: str, requests: list[str], errors: list[str]) -> Any:
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{body}"
                     "</body></html>")
    return page


def test_report_table_in_a_browser(browser, notebook_outputs, report) -> None:
    requests: list[str] = []
    errors: list[str] = []
    page = _page(browser, notebook_outputs["report"], requests, errors)
    top = [r for r in report.layers + report.blocks if r.depth == 0]
    # the head, then the top level, blocks folded
    assert page.locator("tr:visible").count() == 1 + len(top)
    assert page.locator("summary:visible").count() == sum(r.kind == "block" for r in top)
    assert page.locator('td[title="layer1.0.conv1"]').is_visible() is False
    page.click('summary:has(span[title="layer1"])')
    page.click('summary:has(span[title="layer1.0"])')
    assert page.locator('td[title="layer1.0.conv1"]').is_visible()
    # the columns line up: a block's summary cells sit over the header's columns
    head = page.locator("thead th").nth(3).bounding_box()
    cell = page.locator('summary:has(span[title="layer2"]) span').nth(3).bounding_box()
    assert abs(head["x"] - cell["x"]) < 1 and abs(head["width"] - cell["width"]) < 1
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    png = SCREENSHOT.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert errors == [] and all(not u.startswith(("http", "file")) for u in requests)


def test_show_draws_the_graph_inline_and_offline(browser, notebook_outputs) -> None:
    requests: list[str] = []
    errors: list[str] = []
    page = _page(browser, notebook_outputs["show"], requests, errors)
    frame = page.frame_locator("iframe.archspec-graph")
    assert frame.locator("#title").text_content() == "resnet18"
    assert frame.locator("#depth").input_value() == "1"
    # depth 1: the input, the stem, the four stages, the pool, the flatten and the classifier
    assert frame.locator("g.node").count() == 12
    assert frame.locator('g.node[data-id="layer4"]').is_visible()
    page.screenshot(path=str(SCREENSHOT.with_name("archspec-notebook-show.png")))
    assert errors == [] and all(not u.startswith(("http", "file")) for u in requests)
