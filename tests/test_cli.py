"""The command line: JSON contract, exit codes, options, and the no-torch guarantee of check."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import GOLDEN, ROOT
from test_errors import run_cli

import archspec
from archspec.cli import main


def check_json(capsys, *args: str) -> dict:
    code, out, _ = run_cli(["check", *args, "--format", "json"], capsys)
    assert code == 0
    return json.loads(out)


def test_json_contract(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    d = check_json(capsys, "specs/googlenet.arch")
    assert d["network"] == "googlenet"
    assert d["inputs"] == {"x": ["N", 3, 224, 224]} and d["outputs"] == {"fc": ["N", 1000]}
    assert d["batch"] == "N" and d["counts_for_batch"] == 1
    assert {"params", "trainable_params", "buffers", "macs", "flops",
            "activation_bytes"} <= set(d["totals"])
    assert d["totals"]["params"] == 6_624_904
    layer = next(x for x in d["layers"] if x["name"] == "inception3a.branch2.1.conv")
    assert layer["op"] == "conv2d" and layer["output_shape"] == ["N", 128, 28, 28]
    assert {"name", "op", "output_shape", "params", "macs", "flops"} <= set(layer)


def test_batch_and_dtype_scale_counts(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    one = check_json(capsys, "specs/resnet18.arch")
    four = check_json(capsys, "specs/resnet18.arch", "--batch", "4", "--dtype", "float16")
    assert four["outputs"]["output"] == [4, 1000]
    assert four["totals"]["macs"] == 4 * one["totals"]["macs"]
    assert four["totals"]["params"] == one["totals"]["params"]
    assert four["totals"]["activation_bytes"] == 2 * one["totals"]["activation_bytes"]


def test_set_and_input_overrides(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    d = check_json(capsys, "specs/examples/cnn3.arch", "--set", "size=128", "--set",
                   "num_classes=7", "--input", "x=1x128x128")
    assert d["inputs"]["x"] == ["N", 1, 128, 128] and d["outputs"]["output"] == ["N", 7]


def test_table_has_exact_totals_and_convention(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(["check", "specs/googlenet.arch"], capsys)
    assert code == 0
    assert "Total params: 6,624,904 (6.62 M)" in out
    assert "MACs: 1,498,376,192 (1.50 GMACs) [torchvision:" in out
    assert "[N, 1000]" in out


def test_markdown_format(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(["check", "specs/resnet18.arch", "--format", "markdown",
                            "--depth", "1"], capsys)
    assert code == 0 and "| `layer1` | group |" in out


def test_depth_folds_blocks(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    _, shallow, _ = run_cli(["check", "specs/resnet50.arch", "--depth", "1"], capsys)
    _, deep, _ = run_cli(["check", "specs/resnet50.arch", "--depth", "9"], capsys)
    assert "layer3" in shallow and "downsample" not in shallow and "downsample" in deep


def test_warnings_and_strict(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, _, err = run_cli(["check", "specs/classic/nin.arch"], capsys)
    assert code == 0 and "warning[W301]" in err and "nin.arch:10:5" in err
    code, _, _ = run_cli(["check", "specs/classic/nin.arch", "--strict"], capsys)
    assert code == 1


@pytest.mark.parametrize("args", [["check"], ["check", "specs/resnet18.arch", "--batch", "0"],
                                  ["check", "specs/resnet18.arch", "--set", "oops"],
                                  ["check", "specs/resnet18.arch", "--format", "xml"],
                                  ["nosuchcommand"]])
def test_usage_errors_exit_2(args, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "Traceback" not in err


def test_unknown_override_is_located_spec_error(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, _, err = run_cli(["check", "specs/resnet18.arch", "--set", "num_clases=3"], capsys)
    assert code == 1 and "did you mean `num_classes`?" in err


def test_expand_lists_every_op(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(["expand", "specs/resnet18.arch"], capsys)
    assert code == 0
    assert "layer2.0.downsample.0 = conv2d(out=128, kernel=1, stride=2, bias=false)" in out
    import torch.fx
    import torchvision

    traced = torch.fx.symbolic_trace(torchvision.models.resnet18()).graph
    ops = [n for n in traced.nodes if n.op in ("call_module", "call_function", "call_method")]
    assert out.count(" = ") == len(ops)


def test_convert_round_trip_through_files(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "g.yaml"
    assert run_cli(["convert", "specs/googlenet.arch", "--to", "yaml", "-o", str(out)],
                   capsys)[0] == 0
    back = tmp_path / "g.arch"
    assert run_cli(["convert", str(out), "--to", "arch", "-o", str(back)], capsys)[0] == 0
    assert check_json(capsys, str(back))["totals"]["macs"] == 1_498_376_192


def test_ops_lists_registry(capsys) -> None:
    code, out, _ = run_cli(["ops"], capsys)
    assert code == 0 and "conv2d(out, kernel" in out
    code, out, _ = run_cli(["ops", "lrn"], capsys)
    assert "Local response" in out


def test_help_teaches(capsys) -> None:
    code, out, _ = run_cli(["check", "--help"], capsys)
    assert code == 0 and "--convention" in out and "Example" in out


def test_check_never_imports_torch_or_onnx() -> None:
    code = ("import sys; from archspec.cli import main\n"
            "try:\n    main(['check', 'specs/googlenet.arch', '--format', 'json'])\n"
            "except SystemExit: pass\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', "
            "'onnxruntime', 'numpy')]\nprint('HEAVY', bad, file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "HEAVY []" in res.stderr, res.stderr


def test_python_dash_m(tmp_path) -> None:
    res = subprocess.run([sys.executable, "-m", "archspec", "check",
                          str(GOLDEN / "errors" / "unknown_op.arch")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "did you mean `conv2d`?" in res.stderr


def test_main_returns_normally_on_success(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    main(["check", "specs/examples/mlp.arch", "--format", "json"])
    assert json.loads(capsys.readouterr().out)["totals"]["params"] > 0


def test_docs_ops_md_is_generated_from_the_registry() -> None:
    from archspec.views.ops_reference import markdown

    assert (ROOT / "docs" / "ops.md").read_text() == markdown() + "\n"


def test_graph_dot_and_mermaid(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(["graph", "specs/resnet18.arch", "--depth", "1"], capsys)
    assert code == 0 and out.startswith('digraph "resnet18"')
    assert 'n5 [label="layer1\\ngroup 64x56x56\\nparams 147,968"]' in out
    assert "layer1.0" not in out
    assert 'n5 -> n6 [label="64x56x56"' in out  # nodes are numbered; names are labels only
    code, out, _ = run_cli(["graph", "specs/googlenet.arch", "--format", "mermaid"], capsys)
    assert code == 0 and out.startswith("flowchart TD") and "inception3a.branch2.1.conv" in out
    graph = archspec.expand(archspec.load("specs/googlenet.arch"))
    assert out.count("-->") == sum(len(n.inputs) for n in graph)
