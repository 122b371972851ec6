"""`archspec diff A B`: rows aligned across depths and totals with deltas, checked against
torchvision's resnet18 and resnet34 (module tree and parameter counts) and the MACs
torchvision publishes (docs/references: 1,814,073,344 and 3,663,761,408)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import ROOT
from test_errors import run_cli

R18 = str(ROOT / "specs" / "resnet18.arch")
R34 = str(ROOT / "specs" / "resnet34.arch")


@pytest.fixture(scope="module")
def tv() -> dict[str, Any]:
    torchvision = pytest.importorskip("torchvision")
    import torch

    with torch.device("meta"):  # counts only: no weights allocated or initialised
        return {"a": torchvision.models.resnet18(), "b": torchvision.models.resnet34()}


def _blocks(model: Any) -> set[str]:
    """torchvision's residual blocks: ``layer{N}.{i}``."""
    return {name for name, _ in model.named_modules() if name.startswith("layer")
            and name.count(".") == 1}


def _params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet18_vs_34_shows_the_extra_blocks_as_added(tv, capsys) -> None:
    code, out, _ = run_cli(["diff", R18, R34, "--format", "json"], capsys)
    assert code == 0
    d = json.loads(out)
    by_status: dict[str, set[str]] = {}
    for row in d["rows"]:
        by_status.setdefault(row["status"], set()).add(row["name"])
    assert by_status["added"] == _blocks(tv["b"]) - _blocks(tv["a"])
    assert "removed" not in by_status
    stages = {f"layer{i}" for i in range(1, 5)}
    assert by_status["changed"] == {s for s in stages
                                    if _params(getattr(tv["a"], s)) != _params(getattr(tv["b"], s))}
    row = next(r for r in d["rows"] if r["name"] == "layer3.5")
    assert row["a"] is None and row["b"]["params"] == _params(tv["b"].layer3[5])
    assert row["b"]["output_shape"] == [256, 14, 14]
    totals = d["totals"]
    assert totals["params"] == {"a": _params(tv["a"]), "b": _params(tv["b"]),
                                "delta": _params(tv["b"]) - _params(tv["a"])}
    assert totals["macs"]["a"] == 1_814_073_344 and totals["macs"]["b"] == 3_663_761_408
    assert totals["macs"]["delta"] == 3_663_761_408 - 1_814_073_344


def test_table_and_markdown_mark_each_row(tv, capsys) -> None:
    added = len(_blocks(tv["b"]) - _blocks(tv["a"]))
    code, out, _ = run_cli(["diff", R18, R34, "--only-changes"], capsys)
    lines = out.splitlines()
    assert code == 0 and sum(line.startswith("+ ") for line in lines) == added
    assert sum(line.startswith("~ ") for line in lines) == 4
    assert not any(line.startswith("  conv1") for line in lines)
    delta = _params(tv["b"]) - _params(tv["a"])
    assert any(line.startswith("params") and f"+{delta:,}" in line for line in lines)
    code, out, _ = run_cli(["diff", R18, R34, "--format", "markdown", "--depth", "1"], capsys)
    assert code == 0 and out.count("\n| ~ | `layer") == 4 and "\n| + |" not in out
    assert f"| params | {_params(tv['a']):,} | {_params(tv['b']):,} | +{delta:,} |" in out


def test_options_apply_to_both_and_errors_are_located(tv, capsys, tmp_path) -> None:
    code, out, _ = run_cli(["diff", R18, R34, "--format", "json", "--input", "x=3x64x64",
                            "--set", "num_classes=10", "--depth", "1"], capsys)
    d = json.loads(out)
    fc = next(r for r in d["rows"] if r["name"] == "fc")
    assert code == 0 and fc["status"] == "same" and fc["a"]["params"] == 512 * 10 + 10
    assert next(r for r in d["rows"] if r["name"] == "layer4")["b"]["output_shape"] == [512, 2, 2]
    code, _, err = run_cli(["diff", R18, str(tmp_path / "nope.arch")], capsys)
    assert code == 1 and "error[E001]: no such file" in err
