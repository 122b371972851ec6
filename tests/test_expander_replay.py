"""Replayed block calls (archspec/lang/expander/replay.py) build exactly what expanding each
call builds: the same layers, scopes, warnings, init rules and errors, on shipped specs and on
the cases where a call's expansion depends on its context (limits reached inside a call,
warnings, errors on some calls only, constants, repeated inputs, recursion)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import SPECS

import archspec
from archspec.lang.diagnostics import ArchspecError
from archspec.lang.expander import Expander, expand
from archspec.lang.expander.replay import ReplayMixin
from archspec.lang.network import Graph

CASES = {
    "warning_in_block": """network w
input x: 3x33x33
block b(c: int) { conv2d(c, 2, stride=2) -> relu }
a1 = b(8)(x)
a2 = b(8)(x)
a3 = b(8)(x)
add(a1, a2, a3)
""",
    "error_on_some_calls": """network e
input x: 3x32x32
block b(c: int) { residual { conv2d(c, 3, padding=1) -> relu } }
b(3)
b(3)
conv2d(8, 1)
b(3)
b(3)
""",
    "flatten_forgotten_before_a_call": """network f
input x: 3x8x8
block head(n: int) { relu -> linear(n) }
head(8)
head(8)
permute([1, 2, 0]) -> head(8)
conv2d(3, 1) -> head(8)
head(8)
""",
    "unused_and_each": """network u
input x: 3x8x8
block b(c: int) {
    a = conv2d(c, 1)
    u = sigmoid()(a)
    t = relu()(a)
    for i in range(2) { t = relu()(t) }
    add()(each(t))
}
repeat 4 b(3)
b(3) -> b(3)
""",
    "named_inputs_repeated": """network n
input x: 3x8x8
block fuse(c: int)(a, b) { y = add(a, b) -> conv2d(c, 1) }
p = conv2d(3, 1)
q = conv2d(3, 1)
f1 = fuse(3)(p, p)
f2 = fuse(3)(p, q)
f3 = fuse(3)(q, q)
f4 = fuse(3)(q, p)
add(f1, f2, f3, f4)
""",
    "nested_blocks_groups_paths": """network g
input x: 3x16x16
block inner(c: int) { convs.0: conv2d(c, 3, padding=1); bn: batchnorm2d; convs.1: conv2d(c, 1) }
block outer(c: int, n: int) {
    stem: inner(c)
    repeat n as i { blocks.{i}: inner(c) }
    grp: { relu -> inner(c) }
}
a: outer(8, 2)
b: outer(8, 2)
c: outer(8, 3)
d: outer(8, 2)
tap = relu()(b.grp)
e: outer(8, 2)
""",
    "layer_limit_inside_a_call": """network l
input x: 3x4x4
block b() { repeat 100 relu }
repeat 250 b()
""",
    "loop_limit_inside_a_call": """network i
input x: 3x4x4
block b() { repeat 1000 { if false { relu } }; relu }
repeat 120 b()
""",
    "work_limit_inside_a_call": """network w
input x: 3x4x4
block b() { for i in range(1000) { if len(range(50)) < 0 { relu } }; relu }
repeat 20 b()
""",
    "recursion_by_context": """network r
input x: 3x4x4
block y(n: int) { if n > 0 { x(0) } else { relu } }
block x(n: int) { if n > 0 { y(1) } else { relu } }
first: { { y(1) } }
x(1)
again: { { y(1) } }
""",
    "nesting_by_context": """network d
input x: 3x4x4
block b() { { { { relu } } } }
b()
b()
""" + "{ " * 61 + "b()" + " }" * 61 + "\n",
    "constant_inputs": """network c
input x: 16x8
input v: 8
output out
block scale_by(d: int)(a, s) { mul(a, s) }
s = parameter([8])
t = buffer("arange", [8])
y = scale_by(8)(x, s)
z = scale_by(8)(x, t)
w = scale_by(8)(y, s)
u = scale_by(8)(x, v)
out = add(y, z, w, u)
""",
    "argument_types": """network t
input x: 3x8x8
block b(p: any) { dropout(p) }
b(0.5)
b(0.5)
b(0)
b(1.0)
b(0.0)
b(-0.0)
""",
}
SHIPPED = ["resnet50", "googlenet", "swin_t", "regnet_y_400mf", "vit_b_16"]


def outcome(spec: archspec.Spec) -> tuple[str, Any]:
    """Everything an expansion gives: the graph's parts, or the rendered errors."""
    try:
        g = expand(spec)
    except ArchspecError as exc:
        return "errors", [d.render() for d in exc.diagnostics]
    return "graph", parts(g)


def parts(g: Graph) -> dict[str, Any]:
    return {"nodes": [(n, g.nodes[n], g.nodes[n].cost) for n in g.nodes],
            "scopes": list(g.scopes.items()), "outputs": g.outputs, "params": g.params,
            "warnings": [w.render() for w in g.warnings],
            "inits": [(p, r, dict(e)) for p, r, e in g.block_inits]}


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many calls were replayed."""
    count = {"replayed": 0}
    replay = ReplayMixin._replay

    def counting(self: ReplayMixin, *args: Any) -> Any:
        out = replay(self, *args)
        count["replayed"] += out is not None
        return out

    monkeypatch.setattr(ReplayMixin, "_replay", counting)
    return count


def without_replay(spec: archspec.Spec, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    with monkeypatch.context() as m:
        m.setattr(ReplayMixin, "_template_key", lambda self, *args: None)
        return outcome(spec)


@pytest.mark.parametrize("name", [n for n in CASES if n != "warning_in_block"])
def test_replay_equals_expansion(name: str, counted: dict[str, int],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spec = archspec.loads(CASES[name], name=f"{name}.arch")
    expected = without_replay(spec, monkeypatch)
    assert counted["replayed"] == 0
    assert outcome(spec) == expected
    assert counted["replayed"] > 0  # some call was replayed, not expanded


@pytest.mark.parametrize("name", SHIPPED)
def test_replay_equals_expansion_on_shipped_specs(name: str, counted: dict[str, int],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spec = archspec.load(SPECS / f"{name}.arch")
    expected = without_replay(spec, monkeypatch)
    assert outcome(spec) == expected
    assert counted["replayed"] > 0


def test_a_wrong_replay_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: a replay that renames one layer wrongly differs from expansion."""
    spec = archspec.load(SPECS / "resnet50.arch")
    expected = without_replay(spec, monkeypatch)
    replay = ReplayMixin._replay

    def wrong(self: ReplayMixin, template: Any, ins: Any, prefix: str) -> Any:
        return replay(self, template, ins, prefix + "x")

    monkeypatch.setattr(ReplayMixin, "_replay", wrong)
    assert outcome(spec) != expected


def test_warned_calls_are_expanded_each_time(counted: dict[str, int]) -> None:
    """A call whose body warns is never recorded: every call's W301 names its own layer."""
    spec = archspec.loads(CASES["warning_in_block"], name="w.arch")
    warnings = [w.message.split(" ")[1] for w in expand(spec).warnings]
    assert warnings == ["`a1.0`", "`a2.0`", "`a3.0`"]
    assert counted["replayed"] == 0


def test_collection_is_paused_while_expanding_and_then_restored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No automatic garbage collection inside load, expand and analyze; on again after them,
    after an error too, and left off where the caller had switched it off."""
    import gc

    seen: list[bool] = []
    emit = Expander.emit

    def watching(self: Expander, *args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return emit(self, *args, **kwargs)

    monkeypatch.setattr(Expander, "emit", watching)
    assert gc.isenabled()
    archspec.analyze(archspec.load(SPECS / "resnet18.arch"))
    assert seen and not any(seen) and gc.isenabled()
    with pytest.raises(ArchspecError):
        archspec.analyze(archspec.loads(CASES["error_on_some_calls"]))
    assert gc.isenabled()
    gc.disable()
    try:
        archspec.analyze(archspec.load(SPECS / "resnet18.arch"))
        assert not gc.isenabled()
    finally:
        gc.enable()
