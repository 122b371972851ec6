"""`archspec compile`: the ejected source is the same network as the compiled spec."""

from __future__ import annotations

import ast
import types

import pytest
import torch
import torchvision
from conftest import ALL_SPECS, ROOT, SPECS, TWO_TOWER, spec_id
from test_errors import run_cli

import archspec
from archspec.backends.eject import eject


def _load_source(text: str) -> types.ModuleType:
    module = types.ModuleType("ejected")
    exec(compile(text, "ejected.py", "exec"), module.__dict__)  # noqa: S102
    return module


@pytest.mark.parametrize("path", ALL_SPECS, ids=spec_id)
def test_ejected_source_is_the_same_network(path) -> None:
    spec = archspec.load(path)
    text = eject(spec)
    imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(text))
                if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])}
    assert imported == {"torch"}
    torch.manual_seed(0)
    ejected = _load_source(text).build().eval()
    torch.manual_seed(0)
    compiled = archspec.to_torch(spec).eval()
    ours, theirs = ejected.state_dict(), compiled.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)  # same init, same order
    graph = archspec.expand(spec)
    small = {k: (2, *v) for k, v in graph.inputs.items()}
    inputs = [torch.randn(*s) for s in small.values()]
    with torch.no_grad():
        torch.testing.assert_close(ejected(*inputs), compiled(*inputs))


def test_torchvision_weights_load_into_ejected_resnet18(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "resnet18.py"
    code, _, _ = run_cli(["compile", "specs/resnet18.arch", "-o", str(out)], capsys)
    assert code == 0
    model = _load_source(out.read_text()).build().eval()
    reference = torchvision.models.resnet18(weights=None).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))
    assert "class Basic(nn.Module):" in out.read_text()


def test_multi_input_multi_output_dag_ejects() -> None:
    model = _load_source(eject(archspec.loads(TWO_TOWER))).build()
    out = model(torch.randn(2, 3, 32, 32), torch.randn(2, 10))
    assert set(out) == {"logits", "embedding"} and out["logits"].shape == (2, 2)


def test_compile_set_overrides(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(["compile", str(SPECS / "examples" / "cnn3.arch"), "--set",
                            "num_classes=9"], capsys)
    assert code == 0 and "nn.Linear(64, 9)" in out
