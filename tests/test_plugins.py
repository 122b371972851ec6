"""Plugins: a package that declares an op under the `archspec.ops` entry-point group (the one
in tests/plugin, installed here with pip) works in specs, check, ops, compile and ONNX export
like a built-in op; checked against the activation computed by hand in torch and against
onnxruntime. Broken plugins are E011 errors naming the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import ROOT
from test_eject import _load_source

import archspec
from archspec.lang import plugins

SPEC = """network lecun
input x: 3x16x16
conv: conv2d(4, 3, padding=1)
act: scaled_tanh
gap: global_avgpool2d -> flatten
fc: linear(2)
"""


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose Python sees the demo plugin, installed by pip into a folder of
    its own (the shared virtual environment is left as it was)."""
    work = tmp_path_factory.mktemp("plugin")
    shutil.copytree(ROOT / "tests" / "plugin", work / "src")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(work / "site"),
                    str(work / "src")], check=True, capture_output=True)
    path = os.pathsep.join([str(work / "site"), str(ROOT)])
    return {**os.environ, "PYTHONPATH": path}


# Run where the plugin is installed: the CLI's check, ops, compile and export on the spec.
SCRIPT = """
import json, types
import torch
from archspec.cli import main
from archspec.views.ops_reference import markdown

def run(*args):
    try:
        main(list(args))
    except SystemExit as exc:
        assert not exc.code, args

run("check", "lecun.arch", "--format", "json", "--depth", "0")
run("compile", "lecun.arch", "-o", "lecun.py")
module = types.ModuleType("ejected")
exec(open("lecun.py").read(), module.__dict__)
torch.save(module.build().state_dict(), "w.pt")
run("export", "lecun.arch", "--weights", "w.pt", "-o", "lecun.onnx")
run("ops", "scaled_tanh")
print(json.dumps({"reference": markdown()}))
"""


def _by_hand(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network with LeCun's activation written out: 1.7159 tanh(2x/3)."""
    hidden = 1.7159 * torch.tanh(2.0 / 3.0 * model.conv(x))
    return model.fc(hidden.mean(dim=(2, 3)))


def test_plugin_op_works_like_a_built_in(plugin_env, tmp_path) -> None:
    (tmp_path / "lecun.arch").write_text(SPEC)
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=plugin_env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    check, ops, reference = res.stdout.splitlines()[0], res.stdout, res.stdout.splitlines()[-1]
    assert json.loads(check)["totals"]["params"] == (3 * 9 + 1) * 4 + (4 + 1) * 2
    assert "scaled_tanh(alpha=1.7159" in ops and "archspec-demo-ops" in ops
    assert "## `scaled_tanh`" in json.loads(reference)["reference"]

    model = _load_source((tmp_path / "lecun.py").read_text()).build().eval()  # no plugin here
    model.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = _by_hand(model, x)
        torch.testing.assert_close(model(x), expected)
    session = ort.InferenceSession(str(tmp_path / "lecun.onnx"),
                                   providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_without_the_plugin_the_op_is_unknown() -> None:
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.expand(archspec.loads(SPEC))
    assert info.value.diagnostic.code == "E201"


@pytest.mark.parametrize(("value", "message"), [
    ("no_such_plugin_module:OP", "cannot be loaded: ModuleNotFoundError"),
    ("os:sep", "is a str, not an archspec OpDef"),
    ("archspec.ops.registry:REGISTRY", "is a Registry, not an archspec OpDef"),
])
def test_broken_plugins_are_e011(value, message) -> None:
    ep = EntryPoint(name="bad", value=value, group=plugins.GROUP)
    with pytest.raises(archspec.ArchspecError) as info:
        plugins._ops_of(ep, check=False)
    assert info.value.diagnostic.code == "E011" and message in info.value.diagnostic.message


def test_a_plugin_may_not_take_a_built_in_name(monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "RELU", plugins.REGISTRY["relu"], raising=False)
    ep = EntryPoint(name="relu", value=f"{__name__}:RELU", group=plugins.GROUP)
    with pytest.raises(archspec.ArchspecError) as info:
        plugins._ops_of(ep, check=False)
    assert "takes a name archspec already registers" in info.value.diagnostic.message
