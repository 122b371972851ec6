"""The light core and the shared network options: a command whose optional extra is missing
names it (exit 2), and --input/--set/--path mean the same on every command that builds the
network, checked against what torch and onnxruntime really compute."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
import torch
from conftest import ROOT
from test_errors import run_cli

from archspec.lang import extras

BUILDERS = ("check", "expand", "graph", "compile", "export", "train", "bench")


def test_core_install_pulls_no_torch_or_onnx() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    core = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M)
    assert core and "pydantic" in core.group(1)
    assert not any(heavy in core.group(1) for heavy in ("torch", "onnx", "numpy"))
    for extra in ("torch", "onnx", "gpu", "all", "test"):
        assert re.search(rf"^{extra} = \[", text, re.M), extra


@pytest.mark.parametrize(("command", "extra"), [
    (["compile", "specs/examples/mlp.arch"], "torch"),
    (["export", "specs/examples/mlp.arch", "-o", "never.onnx"], "torch,onnx"),
    (["train", "specs/examples/mlp.arch"], "torch"),
    (["train", "specs/examples/mlp.arch", "--data", "specs"], "torch,vision"),
    (["bench", "specs/examples/mlp.arch"], "torch,onnx"),
])
def test_missing_extra_is_named_and_exits_2(command, extra, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        None if name in ("torch", "onnx", "onnxruntime", "torchvision") else real(name, *a)))
    code, _, err = run_cli(command, capsys)
    assert code == 2, err
    assert f"pip install 'archspec[{extra}]'" in err and "error[E010]" in err
    assert err.startswith("specs/examples/mlp.arch:")
    assert not (ROOT / "never.onnx").exists()
    with pytest.raises(extras.MissingExtra):
        extras.require("x", "torch")


@pytest.mark.parametrize("command", BUILDERS)
def test_every_builder_takes_input_set_and_path(command, capsys) -> None:
    code, out, _ = run_cli([command, "--help"], capsys)
    assert code == 0
    assert all(opt in out for opt in ("--input NAME=CxHxW", "--set K=V", "--path DIR"))


def test_compile_at_another_input_size_and_parameter(tmp_path, capsys, monkeypatch) -> None:
    """The ejected module, run by torch on a 1-channel 40x40 image, gives 7 logits."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "cnn3.py"
    code, _, err = run_cli(["compile", "specs/examples/cnn3.arch", "--input", "x=1x40x40",
                            "--set", "num_classes=7", "-o", str(out)], capsys)
    assert code == 0, err
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    model = next(v for k, v in namespace.items() if k.lower() == "cnn3")()
    assert model(torch.zeros(2, 1, 40, 40)).shape == (2, 7)


def test_export_at_another_input_size(tmp_path, capsys, monkeypatch) -> None:
    """onnxruntime runs the exported file at the overridden size and class count."""
    import onnxruntime as ort

    monkeypatch.chdir(ROOT)
    out = tmp_path / "cnn3.onnx"
    code, _, err = run_cli(["export", "specs/examples/cnn3.arch", "--input", "x=3x48x48",
                            "--set", "num_classes=5", "-o", str(out)], capsys)
    assert code == 0, err
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (result,) = session.run(None, {"x": np.zeros((3, 3, 48, 48), np.float32)})
    assert result.shape == (3, 5)


def test_expand_and_graph_honour_input(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(["expand", "specs/examples/cnn3.arch", "--input", "x=3x32x32"],
                           capsys)
    assert code == 0 and "input x: 3x32x32" in out and "# 64x4x4" in out
    code, out, _ = run_cli(["graph", "specs/examples/cnn3.arch", "--input", "x=3x32x32"],
                           capsys)
    assert code == 0 and "64x4x4" in out


def test_bad_input_option_is_a_usage_error(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, _, err = run_cli(["compile", "specs/examples/cnn3.arch", "--input", "x=3xbig"],
                           capsys)
    assert code == 2 and "--input" in err
