"""Plugins only from installed distributions: a spec folder that ships package metadata (a
``*.dist-info`` declaring an ``archspec.ops`` entry point) runs none of its code when archspec
runs inside it (``python -m archspec`` puts the working directory first on ``sys.path``), and
the refusal is an E011 at the spec line that named the op; a plugin op whose rule raises is an
E011 there too, never an internal error (exit 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from hostile_support import ROOT, clean_failure

import archspec
from archspec.lang import plugins
from archspec.ops import REGISTRY, Category, Cost, OpDef
from archspec.ops.base import POINTWISE, NoAttrs, function

SPEC = "network evil\ninput x: 3x8x8\nconv2d(4, 3)\nevil_op\n"


def _folder_with_metadata(folder: Path) -> Path:
    """A spec folder that ships a distribution of its own: metadata, an entry point and a
    module that leaves a marker file when it is imported."""
    info = folder / "evil-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[archspec.ops]\nevil_op = evil_mod:OP\n")
    (folder / "evil_mod.py").write_text(
        "from pathlib import Path\nPath(__file__).with_name('RAN').write_text('ran')\nOP = None\n")
    (folder / "net.arch").write_text(SPEC)
    return folder


def test_a_dist_info_in_the_working_directory_runs_no_code(tmp_path: Path) -> None:
    folder = _folder_with_metadata(tmp_path / "download")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)  # archspec itself, as an installed copy would be
    done = subprocess.run([sys.executable, "-m", "archspec", "check", "net.arch"], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=120)
    clean_failure(done.returncode, done.stderr, "E011", "net.arch:4:1",
                  "outside the installed packages")
    assert not (folder / "RAN").exists()


def test_the_refusal_names_where_the_metadata_is(tmp_path: Path, monkeypatch) -> None:
    folder = _folder_with_metadata(tmp_path / "download")
    monkeypatch.syspath_prepend(str(folder))
    (ep,) = entry_points(group=plugins.GROUP, name="evil_op")
    with pytest.raises(archspec.ArchspecError) as info:
        plugins._ops_of(ep)
    assert str(folder.resolve()) in info.value.diagnostic.message
    assert not (folder / "RAN").exists()


def _raising_op() -> OpDef:
    def infer(inputs: tuple[tuple[int, ...], ...], attrs: NoAttrs) -> tuple[int, ...]:
        return inputs[0][5]  # IndexError: the plugin's own bug

    return OpDef(name="broken_plugin_op", attrs=NoAttrs, infer=infer,
                 cost=lambda ctx: Cost(), step=lambda ctx: POINTWISE, category=Category.MOVE,
                 torch=lambda ctx: function("torch.clone"), onnx=lambda *a: None,
                 doc="A plugin op whose shape rule raises.")


def test_a_plugin_rule_that_raises_is_e011_at_the_call(monkeypatch) -> None:
    op = _raising_op()
    monkeypatch.setitem(REGISTRY, op.name, op)
    monkeypatch.setitem(plugins.PLUGINS, op.name, "broken-dist")
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.expand(archspec.loads("network t\ninput x: 3x4\nconv1d(2, 1)\n"
                                       "broken_plugin_op\n"))
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "E011" and diagnostic.span.line == 4
    assert "IndexError" in diagnostic.message and "broken-dist" in diagnostic.message
