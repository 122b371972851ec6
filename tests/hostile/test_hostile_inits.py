"""An `init` rule that can change nothing (its layers hold no weights: `init relu: ...`, a norm
without `affine`) is a located W117 warning at the rule, not silence; torch is the oracle
that those layers have nothing to set and that the rule leaves the network as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hostile_support import run_cli

import archspec
from archspec.lang.network import Graph

NET = "network t\ninput x: 3x8x8\nc: conv2d(4, 3)\nn: batchnorm2d(affine={affine})\nr: relu\n"


def _w117(graph: Graph) -> list[archspec.Diagnostic]:
    return [w for w in graph.warnings if w.code == "W117"]


def _state(text: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return archspec.to_torch(archspec.loads(text)).state_dict()


@pytest.mark.parametrize(("rule", "affine"), [
    ("init relu: normal(0, 5, bias=3)", "true"),
    ('init "r": constant(7)', "true"),
    ("init batchnorm2d: constant(2, bias=1)", "false"),
])
def test_a_rule_on_weightless_layers_is_w117_at_the_rule(rule: str, affine: str) -> None:
    text = NET.format(affine=affine) + rule + "\n"
    graph = archspec.expand(archspec.loads(text, name="t.arch"))
    (warning,) = _w117(graph)
    assert warning.severity == "warning" and warning.span.file == "t.arch"
    assert warning.span.line == text.splitlines().index(rule) + 1
    # torch: the targeted layers have no parameters, so the rule leaves every tensor as it was
    plain = _state(NET.format(affine=affine))
    ruled = _state(text)
    assert plain.keys() == ruled.keys() and all(torch.equal(plain[k], ruled[k]) for k in plain)
    target = torch.nn.ReLU() if "batchnorm" not in rule else torch.nn.BatchNorm2d(4,
                                                                                 affine=False)
    assert list(target.parameters()) == []


@pytest.mark.parametrize("rule", ["init conv2d: constant(0.5)", 'init "*": constant(0.5)',
                                  "init batchnorm2d: constant(0.5)", "init maxpool2d: ones"])
def test_a_rule_that_sets_weights_or_no_layer_is_not_warned(rule: str) -> None:
    """Rules on layers with weights, and on an op kind the network does not use (a family's
    shared rules), say nothing."""
    text = NET.format(affine="true") + rule + "\n"
    assert _w117(archspec.expand(archspec.loads(text))) == []


def test_a_block_rule_on_weightless_layers_is_one_w117() -> None:
    """A block's rule is warned once for all its calls, and not when some call of the block
    gives it a layer with weights (here the call with ``norm=true``)."""
    text = ("network t\ninput x: 3x8x8\nblock b(norm: bool) {\n  init \"n\": constant(3)\n"
            "  c: conv2d(4, 3, padding=1)\n  n: LAYER\n}\nb1: b(false)\nb2: b(false)\n")
    relu = text.replace("LAYER", "relu")
    assert [w.span.line for w in _w117(archspec.expand(archspec.loads(relu)))] == [4]
    mixed = text.replace("LAYER", "batchnorm2d(affine=norm)") + "b3: b(true)\n"
    assert len(_w117(archspec.expand(archspec.loads(mixed.replace("b(true)", "b(false)"))))) \
        == 1
    assert _w117(archspec.expand(archspec.loads(mixed))) == []
    # torch: the call with norm=true has a weight the rule sets; the others have none
    state = archspec.to_torch(archspec.loads(mixed)).state_dict()
    assert torch.equal(state["b3.n.weight"], torch.full((4,), 3.0)) and "b1.n.weight" not in state


def test_the_warning_is_reported_once_by_check_and_strict_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "n.arch"
    spec.write_text(NET.format(affine="true") + "init relu: normal(0, 0.1)\n")
    code, _, err = run_cli(["check", str(spec)], capsys)
    assert code == 0 and err.count("W117") == 1 and "n.arch:6:" in err, err
    code, _, err = run_cli(["check", str(spec), "--strict"], capsys)
    assert code == 1 and "W117" in err
    model_spec = archspec.loads(spec.read_text())
    archspec.to_torch(model_spec)  # planning again (the backend) adds no second warning
    assert len(archspec.analyze(model_spec).warnings) == 1
