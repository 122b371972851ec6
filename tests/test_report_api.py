"""The Report API and summary: it prints as its table, folds to any depth (0: one row), its
JSON carries the block tree, symbolic dims and file:line sources, and its totals include what
torchinfo users look for, checked against torchinfo, torchvision and the spec text itself."""

from __future__ import annotations

import json

import pytest
import torchinfo
import torchvision
from conftest import ROOT, TWO_TOWER
from test_errors import run_cli

import archspec


@pytest.fixture(scope="module")
def resnet18() -> archspec.views.report.Report:
    return archspec.analyze(archspec.load(ROOT / "specs" / "resnet18.arch"))


def test_report_prints_as_its_table(resnet18) -> None:
    text = str(resnet18)
    assert text == resnet18.to_table() == resnet18.to_table(depth=3)
    assert text.startswith("resnet18  (x: [1, 3, 224, 224]; batch 1; float32)")
    assert len(repr(resnet18)) < 120 and "11,689,512 params" in repr(resnet18)
    assert resnet18.to_markdown(depth=1).startswith("## resnet18")


def test_depth_zero_is_the_network_as_one_row(resnet18, capsys, monkeypatch) -> None:
    rows = [line for line in resnet18.to_table(depth=0).splitlines()
            if line.startswith("resnet18  network")]
    assert len(rows) == 1 and "11,689,512" in rows[0] and "1,814,073,344" in rows[0]
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(["check", "specs/resnet18.arch", "--depth", "0", "--format",
                            "json"], capsys)
    d = json.loads(out)
    assert code == 0 and d["layers"] == [] and d["blocks"] == []
    assert d["tree"]["children"] == [] and d["tree"]["params"] == 11_689_512


def test_json_tree_follows_torchvision_modules(resnet18) -> None:
    """At depth 1 the tree's children are torchvision's top-level modules (plus the
    functional flatten) with their parameter counts; at depth 2 a stage holds its blocks."""
    model = torchvision.models.resnet18()
    tree = resnet18.to_dict(depth=1)["tree"]
    children = {c["name"]: c for c in tree["children"]}
    for name, module in model.named_children():
        assert children[name]["params"] == sum(p.numel() for p in module.parameters()), name
        assert children[name]["children"] == []
    assert all(layer["depth"] == 0 for layer in resnet18.to_dict(depth=1)["layers"])
    stage = next(c for c in resnet18.to_dict(depth=2)["tree"]["children"]
                 if c["name"] == "layer2")
    assert [c["name"] for c in stage["children"]] == [
        f"layer2.{n}" for n, _ in model.layer2.named_children()]
    assert stage["children"][0]["params"] == sum(p.numel() for p in model.layer2[0].parameters())


def test_symbolic_batch_is_a_name_in_json() -> None:
    report = archspec.analyze(archspec.loads(TWO_TOWER), batch=None)
    d = report.to_dict()
    assert d["batch"] == "N" and d["inputs"]["image"] == ["N", 3, 32, 32]
    assert all(layer["output_shape"][0] == "N" for layer in d["layers"])
    assert "[N, 8, 32, 32]" in report.to_table()


def test_layer_source_names_the_imported_file(tmp_path) -> None:
    block = "# blocks\nblock unit(c: int) {\n    conv: conv2d(c, 3, padding=1)\n    relu\n}\n"
    (tmp_path / "lib.arch").write_text(block)
    (tmp_path / "net.arch").write_text(
        'import "lib.arch"\ninput x: 3x8x8\nu: unit(4)\nhead: conv2d(2, 1)\n')
    d = archspec.analyze(archspec.load(tmp_path / "net.arch")).to_dict()
    layers = {r["name"]: r for r in d["layers"]}
    conv_line = block.splitlines().index("    conv: conv2d(c, 3, padding=1)") + 1
    col = block.splitlines()[conv_line - 1].index("conv2d") + 1
    assert layers["u.conv"]["source"] == f"{tmp_path / 'lib.arch'}:{conv_line}:{col}"
    assert layers["head"]["source"].rsplit(":", 1)[0] == f"{tmp_path / 'net.arch'}:4"
    assert d["blocks"][0]["source"].rsplit(":", 1)[0] == f"{tmp_path / 'net.arch'}:3"


def test_totals_match_torchinfo(resnet18) -> None:
    """Trainable, non-trainable params and the estimated total size equal torchinfo's summary
    of torchvision's model (torchinfo's input size adds a Python object header, < 1 kB)."""
    stats = torchinfo.summary(torchvision.models.resnet18(), input_size=(1, 3, 224, 224),
                              verbose=0, device="cpu")
    t = resnet18.totals
    assert t["trainable_params"] == stats.trainable_params
    assert t["non_trainable_params"] == stats.total_params - stats.trainable_params == 0
    torchinfo_total = stats.total_input + stats.total_output_bytes + stats.total_param_bytes
    assert abs(t["estimated_total_bytes"] - torchinfo_total) < 1024
    assert f"Estimated total size: {torchinfo_total / 1e6:,.2f} MB" in str(resnet18)
    assert "Non-trainable params: 0" in str(resnet18)


def test_connected_to_column_only_for_dags(capsys, monkeypatch) -> None:
    """Each DAG row names what the spec line reads; a chain has no such column."""
    dag = archspec.analyze(archspec.loads(TWO_TOWER))
    rows = {line.split()[0]: line for line in dag.to_table(depth=None).splitlines()[4:11]}
    assert "Connected to" in dag.to_table()
    assert rows["embedding"].endswith("pooled.1, m") and rows["m"].endswith("meta")
    assert any(line.startswith("embedding") and line.endswith("pooled, m")
               for line in dag.to_table(depth=1).splitlines())
    monkeypatch.chdir(ROOT)
    _, out, _ = run_cli(["check", "specs/classic/lenet5_1998.arch"], capsys)
    assert "Connected to" not in out
