"""`archspec graph -o`: DOT clusters and labels, SVG/PNG through Graphviz, and the offline HTML
page driven in headless Chromium. Expected values come from torchvision's resnet18 (its module
tree, parameter counts, an fx trace and torch's FLOP counter), never from archspec."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from test_errors import run_cli

import archspec

RESNET18 = str(ROOT / "specs" / "resnet18.arch")


@pytest.fixture(scope="module")
def tv_resnet18() -> Any:
    torchvision = pytest.importorskip("torchvision")
    return torchvision.models.resnet18()


def _containers(model: Any) -> list[str]:
    """Names of the torchvision submodules that hold other modules (stages, blocks, shortcuts)."""
    return [name for name, m in model.named_modules() if name and list(m.children())]


def test_dot_has_a_cluster_per_block_and_params_in_labels(tv_resnet18, capsys, tmp_path) -> None:
    out = tmp_path / "r18.dot"
    code, _, err = run_cli(["graph", RESNET18, "-o", str(out)], capsys)
    assert code == 0 and f"wrote {out}" in err
    text = out.read_text()
    labels = re.findall(r'label="([^"]*) \((?:group|basic)\)"; style=rounded', text)
    assert sorted(labels) == sorted(_containers(tv_resnet18))
    conv = tv_resnet18.layer2[0].conv1
    assert (f'label="layer2.0.conv1\\nconv2d 128x28x28\\nparams {conv.weight.numel():,}"'
            in text)
    # the block's cluster holds its layers: layer2.0.conv1's node sits inside layer2.0's cluster
    block = text[text.index('label="layer2.0 (basic)"'):]
    assert block.index("layer2.0.conv1") < block.index("}")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` is not installed "
                    "(apt-get install graphviz)")
def test_svg_and_png_through_graphviz(tv_resnet18, capsys, tmp_path) -> None:
    pytest.importorskip("graphviz")
    code, _, _ = run_cli(["graph", RESNET18, "--depth", "2", "-o", str(tmp_path / "a.svg")],
                         capsys)
    svg = (tmp_path / "a.svg").read_text()
    assert code == 0 and svg.lstrip().startswith("<?xml") and "<svg" in svg
    stages = [n for n in _containers(tv_resnet18) if "." not in n]
    assert svg.count('class="cluster"') == len(stages)
    assert ">layer4.1<" in svg and ">layer4.1.conv1<" not in svg
    code, _, _ = run_cli(["graph", RESNET18, "-o", str(tmp_path / "a.png")], capsys)
    assert code == 0 and (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_graphviz_is_a_located_error_naming_what_to_install(capsys, tmp_path,
                                                                    monkeypatch) -> None:
    pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    code, _, err = run_cli(["graph", RESNET18, "-o", str(tmp_path / "a.svg")], capsys)
    assert code == 1 and "resnet18.arch:4:9: error[E801]" in err
    assert "apt-get install graphviz" in err and not (tmp_path / "a.svg").exists()
    monkeypatch.setitem(sys.modules, "graphviz", None)
    code, _, err = run_cli(["graph", RESNET18, "-o", str(tmp_path / "a.png")], capsys)
    assert code == 2 and "error[E010]" in err and "archspec[graph]" in err


def test_unknown_suffix_is_a_usage_error(capsys, tmp_path) -> None:
    code, _, err = run_cli(["graph", RESNET18, "-o", str(tmp_path / "a.jpeg")], capsys)
    assert code == 2 and ".svg" in err and ".html" in err


# ------------------------------------------------------------------------- the HTML page


def _open(browser: Any, path: Path, requests: list[str], errors: list[str]) -> Any:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return page


def _set_depth(page: Any, depth: int) -> None:
    page.fill("#depth", str(depth))
    page.dispatch_event("#depth", "input")


def test_html_page_shows_the_network_offline(browser, tv_resnet18, capsys, tmp_path) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    out = tmp_path / "r18.html"
    assert run_cli(["graph", RESNET18, "--depth", "1", "-o", str(out)], capsys)[0] == 0
    requests: list[str] = []
    errors: list[str] = []
    page = _open(browser, out, requests, errors)
    # depth 1: the input, torchvision's top-level children, and the functional flatten
    top = len(list(tv_resnet18.named_children()))
    assert page.locator("g.node").count() == 1 + top + 1
    page.hover('g.node[data-id="layer4"]')
    tip = page.text_content("#tip")
    assert f"params: {sum(p.numel() for p in tv_resnet18.layer4.parameters()):,}" in tip
    page.hover('g.node[data-id="conv1"]')
    with FlopCounterMode(display=False) as counter:
        tv_resnet18.conv1(torch.zeros(1, 3, 224, 224))
    assert f"MACs: {counter.get_total_flops() // 2:,}" in page.text_content("#tip")
    assert "output: 64x112x112" in page.text_content("#tip")
    # depth 4 opens every block: one node per fx node (the input, module calls, functions);
    # depth 3 folds each third-level container (the shortcuts layerN.0.downsample) into one
    traced = torch.fx.symbolic_trace(tv_resnet18).graph
    every = sum(n.op != "output" for n in traced.nodes)
    third = [m for name, m in tv_resnet18.named_modules() if name.count(".") == 2
             and list(m.children())]
    _set_depth(page, 3)
    assert page.locator("g.node").count() == every - sum(len(list(m.children())) - 1
                                                         for m in third)
    _set_depth(page, 4)
    assert page.locator("g.node").count() == every
    assert page.locator("g.cluster").count() == len(_containers(tv_resnet18))
    # a click folds a block back into one node
    page.click('g.cluster[data-id="layer1"] text')
    assert page.locator('g.node[data-id="layer1"]').count() == 1
    page.fill("#search", "downsample")
    hits = [n for n in traced.nodes if "downsample" in str(n.target)]
    assert page.text_content("#matches") == f"{len(hits)} matching layers"
    assert page.locator("g.node.match").count() == len(hits)
    totals = page.text_content("#totals")
    assert f"params: {sum(p.numel() for p in tv_resnet18.parameters()):,}" in totals
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert requests == [out.as_uri()] and errors == []


HOSTILE = "</script><img src=x onerror=alert(1)>"


def _hostile_spec() -> archspec.Spec:
    """A network and input named :data:`HOSTILE` (specs refuse such names, E153; a Spec built
    through the Python API can hold them), a group and a layer labelled with markup."""
    group = json.dumps('grp{"<b>|#%"}')
    layer = json.dumps('lbl{"<i>&amp;"}: relu')
    text = (f"network: n\ninputs:\n  x: 3x8x8\n"
            f"body:\n  - {{{group}: {{chain: [relu, relu]}}}}\n  - {layer}\n")
    spec = archspec.loads(text, format="yaml")
    return spec.model_copy(update={"name": HOSTILE, "inputs": (
        spec.inputs[0].model_copy(update={"name": HOSTILE}),)})


def test_dot_cluster_labels_stay_inside_their_strings() -> None:
    from test_hostile_codegen import _DOT_LINES, _DOT_STRING

    from archspec.views.drawing import draw

    text = draw(_hostile_spec(), "dot", None).decode()
    for line in text.split("\n"):
        assert any(p.fullmatch(_DOT_STRING.sub("S", line)) for p in _DOT_LINES), line
    assert 'label="grp<b>|#% (group)"; style=rounded' in text and text.count("subgraph") == 1


def test_html_page_keeps_hostile_names_as_text(browser, tmp_path) -> None:
    """Names with markup and script-ending text reach the page as text only."""
    from archspec.views.drawing import draw

    name = HOSTILE
    out = tmp_path / "h.html"
    out.write_bytes(draw(_hostile_spec(), "html", 2))  # the group open
    html = out.read_text()
    assert html.count("</script>") == 2 and "<img" not in html
    requests: list[str] = []
    errors: list[str] = []
    page = _open(browser, out, requests, errors)
    assert page.text_content("#title") == name
    assert page.locator(f'g.node[data-id="{name}"]').count() == 1
    assert page.locator("img").count() == 0 and errors == [] and len(requests) == 1
    shown = page.text_content("#graph")
    assert "grp<b>|#%.0" in shown and "\u25be grp<b>|#% (group)" in shown and "lbl<i>&amp;" in shown


def _module_shapes(model: Any) -> dict[str, str]:
    """Every torchvision submodule's per-sample output shape (``64x56x56``) on a 224x224
    image, from forward hooks, and the input's as ``x``."""
    import torch

    shapes = {"x": "3x224x224"}
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(
        name, "x".join(map(str, out.shape[1:])))) for name, m in model.named_modules() if name]
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    return shapes


def _edge_labels(page: Any) -> list[tuple[str, str, str]]:
    return page.evaluate("""() => [...document.querySelectorAll("text.edge-label")].map(t =>
        [t.dataset.from, t.dataset.to, t.textContent])""")


def test_html_page_opens_folded_with_shapes_on_its_edges(browser, tv_resnet18, capsys,
                                                         tmp_path) -> None:
    """Without --depth the page opens at depth 1 (every block folded); the depth box says 1 of
    the depth that opens everything, never a sentinel; each edge names the shape it carries."""
    import torch

    out = tmp_path / "r18.html"
    assert run_cli(["graph", RESNET18, "-o", str(out)], capsys)[0] == 0
    assert "1048576" not in out.read_text()
    requests: list[str] = []
    errors: list[str] = []
    page = _open(browser, out, requests, errors)
    top = len(list(tv_resnet18.named_children()))
    assert page.locator("g.node").count() == 1 + top + 1
    # the deepest container (layerN.0.downsample, two dots) opens at depth 2 + 2
    deepest = max(name.count(".") for name in _containers(tv_resnet18)) + 2
    assert page.input_value("#depth") == "1" and page.text_content("#depthmax") == f"of {deepest}"
    assert page.get_attribute("#depth", "max") == str(deepest)
    shapes = _module_shapes(tv_resnet18)
    for depth in range(1, deepest + 1):
        _set_depth(page, depth)
        labels = _edge_labels(page)
        assert len(labels) == page.locator("path.edge").count()
        known = [(a, b, text) for a, b, text in labels if a in shapes]
        assert len(known) >= len(labels) // 2, labels
        assert all(text == shapes[a] for a, _, text in known), known
    # a number past the deepest level opens everything and the box settles on the deepest
    page.fill("#depth", "99")
    page.dispatch_event("#depth", "input")
    page.dispatch_event("#depth", "change")
    every = sum(n.op != "output" for n in torch.fx.symbolic_trace(tv_resnet18).graph.nodes)
    assert page.locator("g.node").count() == every and page.input_value("#depth") == str(deepest)
    assert requests == [out.as_uri()] and errors == []


LONG_GROUP = "a_stage_whose_name_is_far_too_long_to_fit_in_any_box_at_all"
LONG_LAYER = "an_extremely_long_layer_label_written_by_someone_quite_verbose"


def test_html_page_keeps_long_labels_inside_their_boxes(browser, tmp_path) -> None:
    """A name wider than its box ends in an ellipsis (a dotted name keeps its last part) with
    the whole text as a tooltip; a short one is left alone."""
    from archspec.views.drawing import draw

    text = (f"network: n\ninputs: {{x: 3x8x8}}\nbody:\n  - {LONG_GROUP}:\n"
            f"      - {LONG_LAYER}: conv2d(8, 3, padding=1)\n      - relu\n  - tail: relu\n")
    out = tmp_path / "long.html"
    out.write_bytes(draw(archspec.loads(text, format="yaml"), "html", 2))
    requests: list[str] = []
    errors: list[str] = []
    page = _open(browser, out, requests, errors)
    texts = page.evaluate("""() => [...document.querySelectorAll("g.node text, g.cluster text")]
        .map(t => { const box = t.closest("g").querySelector("rect").getBBox();
          const own = [...t.childNodes].filter(n => n.nodeType === 3);
          return { shown: own.map(n => n.data).join(""),
                   title: t.querySelector("title")?.textContent ?? null,
                   width: t.getComputedTextLength(), x: t.getBBox().x - box.x,
                   box: box.width }; })""")
    assert texts and errors == [] and len(requests) == 1
    for t in texts:
        assert t["x"] + t["width"] <= t["box"] - 5, t  # inside, with the box's padding
    by_title = {t["title"]: t["shown"] for t in texts if t["title"]}
    full = f"{LONG_GROUP}.{LONG_LAYER}"
    assert by_title[full].startswith("\u2026") and full.endswith(by_title[full][1:])
    cluster = f"\u25be {LONG_GROUP} (group)"
    assert by_title[cluster].startswith("\u25be \u2026") and by_title[cluster].endswith(" (group)")
    assert {"tail", "x"} <= {t["shown"] for t in texts if t["title"] is None}
