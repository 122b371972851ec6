"""`archspec sweep`: every combination in one process, parsed once; checked against
torchvision's resnet18/34 parameter counts and the MACs torchvision publishes
(1,814,073,344 and 3,663,761,408 at 224x224)."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

import pytest
from conftest import ROOT
from test_errors import run_cli

from archspec.cli.static import split_top
from archspec.lang.syntax import loader

FAMILY = str(ROOT / "specs" / "examples" / "resnet_family.arch")
PUBLISHED_MACS = {18: 1_814_073_344, 34: 3_663_761_408}


@pytest.fixture(scope="module")
def tv_params() -> dict[int, int]:
    torchvision = pytest.importorskip("torchvision")
    import torch

    with torch.device("meta"):
        models = {18: torchvision.models.resnet18(), 34: torchvision.models.resnet34()}
    return {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}


def test_every_combination_parsed_once(tv_params, capsys, monkeypatch) -> None:
    parsed: list[Any] = []
    real = loader.parse_source
    monkeypatch.setattr(loader, "parse_source", lambda *a: parsed.append(a) or real(*a))
    code, out, _ = run_cli(["sweep", FAMILY, "--set", "width=0.5,1", "--set", "depth=18,34",
                            "--set", "size=224", "--format", "json"], capsys)
    assert code == 0 and len(parsed) == 1
    variants = json.loads(out)
    assert [(v["values"]["width"], v["values"]["depth"]) for v in variants] == [
        (0.5, 18), (0.5, 34), (1, 18), (1, 34)]
    for v in variants:
        if v["values"]["width"] == 1:
            depth = v["values"]["depth"]
            assert v["totals"]["params"] == tv_params[depth]
            assert v["totals"]["macs"] == PUBLISHED_MACS[depth]
        assert v["error"] is None
    half, full = variants[0]["totals"], variants[2]["totals"]
    assert half["params"] < full["params"] and half["macs"] < full["macs"]


def test_csv_keeps_refused_variants_and_sweeps_inputs(tv_params, capsys) -> None:
    code, out, _ = run_cli(["sweep", FAMILY, "--set", "depth=18,50", "--input", "x=3x224x224",
                            "--input", "x=3x64x64", "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4
    assert list(rows[0])[:2] == ["depth", "input:x"] and rows[0]["input:x"] == "3x224x224"
    assert int(rows[0]["macs"]) == PUBLISHED_MACS[18]
    assert int(rows[0]["params"]) == int(rows[1]["params"]) == tv_params[18]
    assert int(rows[1]["macs"]) < int(rows[0]["macs"])
    assert all(r["error"].startswith("E404 at line") and r["params"] == "" for r in rows[2:])
    code, out, _ = run_cli(["sweep", FAMILY, "--set", "depth=18,50"], capsys)
    assert code == 0 and "4 variants" not in out and "2 variants, 1 refused" in out


def test_plot_and_its_missing_extra(capsys, tmp_path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "sweep.png"
    code, _, err = run_cli(["sweep", FAMILY, "--set", "width=0.5,1,2", "--set", "depth=18,34",
                            "--plot", str(out)], capsys)
    assert code == 0 and f"wrote {out}" in err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli(["sweep", FAMILY, "--set", "width=1", "--plot",
                            str(tmp_path / "b.png")], capsys)
    assert code == 2 and "error[E010]" in err and "archspec[plot]" in err
    assert not (tmp_path / "b.png").exists()


def test_bad_sweeps_are_refused_before_running(capsys, tmp_path) -> None:
    code, _, err = run_cli(["sweep", FAMILY, "--set", "widht=1,2"], capsys)
    assert code == 1 and "error[E120]" in err and "did you mean `width`?" in err
    fifty = ",".join(["1"] * 50)
    code, _, err = run_cli(["sweep", FAMILY, "--set", f"width={fifty}", "--set",
                            f"depth={fifty}", "--set", f"size={fifty}"], capsys)
    assert code == 2 and "125,000 combinations" in err
    code, _, err = run_cli(["sweep", FAMILY, "--plot", str(tmp_path / "a.jpg")], capsys)
    assert code == 2 and ".png" in err


def test_values_split_at_top_level_commas_only() -> None:
    assert split_top('0.5, [1, 2], "a,b", f(1, 2)') == ["0.5", "[1, 2]", '"a,b"', "f(1, 2)"]
