"""Limits (issue 9): integer size, expression work, expansion size and depth, YAML aliases and
depth. Each hostile input ends in a located E7xx (or YAML structure) error, quickly, instead of
an internal error, a hang, a RecursionError or a memory blow-up."""

from __future__ import annotations

from typing import Any

import pytest

from archspec.lang import expander, exprs, ir, limits
from archspec.lang.diagnostics import ArchspecError
from archspec.lang.expander import Expander, expand
from archspec.lang.exprs import Evaluator
from archspec.lang.syntax.loader import loads
from archspec.lang.syntax.yaml_form import to_yaml

HEAD = "input x: 3x8x8\n"
FLAT = "input x: 3x8x8\nflatten\n"


def fails(text: str, code: str, fmt: str = "arch") -> str:
    """Expand ``text``; it must fail with ``code``, located in the file. Returns the render."""
    with pytest.raises(ArchspecError) as info:
        expand(loads(text, fmt))
    diag = info.value.diagnostic
    assert diag.code == code, str(info.value)
    assert diag.span.source.name == "<string>" and diag.span.line >= 1, str(info.value)
    return str(info.value)


# ---------------------------------------------------------------------- numbers
@pytest.mark.parametrize("expr", ["9" * 5000, "99999999999999999999", "2**63", "-(2**62) * 4",
                                  "9**9**9", "int(float(\"inf\"))", "int(1e308 * 10)",
                                  "2.0 ** 10000", "1e999"])
def test_numbers_over_the_bound_are_e701(expr: str) -> None:
    fails(FLAT + f"fc: linear(len([{expr}]))\n", "E701")


def test_the_power_is_refused_before_it_is_computed() -> None:
    text = fails(FLAT + "fc: linear(10 ** 100000000000)\n", "E701")
    assert "more than 63 bits" in text


def test_integers_up_to_the_bound_are_fine() -> None:
    graph = expand(loads(FLAT + f"fc: linear(2 ** 62 // 2 ** 58)\nn: linear({limits.MAX_INT} "
                                f"// {limits.MAX_INT})\n"))
    assert graph.nodes["fc"].shape == (16,) and graph.nodes["n"].shape == (1,)


@pytest.mark.parametrize(("expr", "value"), [
    ("round(5, -(2**62))", 0), ("round(2.5)", 2), ("round(1.25, 2**62)", 1.25),
    ("round(1234, -2)", 1200), ("round(1e300, -(2**62))", 0.0)])
def test_round_with_huge_ndigits_is_quick(expr: str, value: Any) -> None:
    spec = loads(f"network t(n: float = {expr})\n" + HEAD + "relu\n")
    assert expand(spec).params["n"] == value


def test_shape_literal_too_long_is_e701() -> None:
    fails("input x: 3x" + "9" * 5000 + "x8\nrelu\n", "E701")


# ---------------------------------------------------------------------- sequences
@pytest.mark.parametrize("expr", ["[0] * 10**10", "10**10 * [0]", "\"ab\" * 10**9",
                                  "[[[0] * 1000] * 1000] * 1000", "[\"a\" * 1000] * 10000",
                                  "range(10**12)", "len(range(10**15))"])
def test_sequences_over_the_bound_are_e702(expr: str) -> None:
    fails(FLAT + f"fc: linear(len([{expr}]))\n", "E702")


def test_sum_adds_numbers_only() -> None:
    fails(FLAT + "fc: linear(len(sum([[0] * 999] * 999, [])))\n", "E406")


def test_string_formatting_is_refused() -> None:
    fails(FLAT + "fc: linear(len(\"%0999999999d\" % 1))\n", "E406")


# ---------------------------------------------------------------------- expansion
def test_repeat_a_billion_times_stops_at_the_layer_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expander.nodes, "MAX_LAYERS", 1000)
    text = fails(HEAD + "repeat 10**9 relu\n", "E703")
    assert "more than 1,000 layers" in text


def test_nested_repeats_without_layers_stop_at_the_iteration_limit() -> None:
    fails(HEAD + "repeat 100000 { repeat 100000 { } }\n", "E704")


def test_for_counts_iterations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expander.statements, "MAX_ITERATIONS", 50)
    fails(HEAD + "for i in range(10) { for j in range(10) { } }\n", "E704")


def test_expression_work_in_loops_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exprs, "MAX_WORK", 100_000)
    text = fails(HEAD + "for i in range(1000) { if len([i] * 999) < 0 { relu } }\n", "E707")
    assert "100,000 units" in text


def test_shipped_scale_work_is_within_the_budget() -> None:
    ex = Expander(loads(HEAD + "for i in range(2000) { if i % 3 == 0 and i < 10**6 { relu } }\n"))
    assert len(ex.run().nodes) == 667 and ex.budget.used < limits.MAX_WORK // 10


def test_300_nested_braces_are_e705() -> None:
    fails(HEAD + "g: " + "{" * 300 + "relu" + "}" * 300 + "\n", "E705")


def test_nesting_up_to_the_limit_expands() -> None:
    depth = limits.MAX_NESTING - 1
    graph = expand(loads(HEAD + "residual {" * depth + "relu" + "}" * depth + "\n"))
    assert len(graph.nodes) == depth + 1


def test_200_nested_block_calls_are_e705() -> None:
    blocks = "".join(f"block b{i}() {{ b{i + 1} }}\n" for i in range(200))
    fails(HEAD + blocks + "block b200() { relu }\nb0\n", "E705")


@pytest.mark.parametrize("expr", ["+".join(["1"] * 5000), "-" * 1000 + "1",
                                  "not " * 1000 + "true", "[" * 1000 + "]" * 1000,
                                  "1 if true else " * 500 + "1"])
def test_deep_expressions_are_e705_when_parsed(expr: str) -> None:
    with pytest.raises(ArchspecError) as info:
        loads(FLAT + f"fc: linear(len([{expr}]))\n")
    assert info.value.diagnostic.code == "E705" and info.value.diagnostic.span.line == 3


def test_the_evaluator_guards_its_own_depth() -> None:
    e: ir.Node = ir.Lit(value=1)
    for _ in range(limits.MAX_EXPR_DEPTH + 10):
        e = ir.Neg(operand=e)
    with pytest.raises(ArchspecError) as info:
        Evaluator({}, None)(e)
    assert info.value.diagnostic.code == "E705"


def test_expandable_nesting_converts_to_yaml_and_back() -> None:
    depth = limits.MAX_NESTING - 1
    spec = loads(HEAD + "residual {" * depth + "relu" + "}" * depth + "\n")
    again = loads(to_yaml(spec), "yaml")
    assert again == spec and len(expand(again).nodes) == depth + 1


class _CountingNodes(dict[str, Any]):
    """A graph's node table that counts full scans."""

    scans = 0

    def values(self) -> Any:
        type(self).scans += 1
        return super().values()


def test_unused_name_warning_scans_the_graph_once() -> None:
    spec = loads("input x: 16\n" + "".join(f"a{i} = relu()(x)\n" for i in range(2000)))
    ex = Expander(spec)
    _CountingNodes.scans = 0
    ex.graph.nodes = _CountingNodes()
    graph = ex.run()
    assert sum(w.code == "W201" for w in graph.warnings) == 1999
    assert _CountingNodes.scans <= 2


# ---------------------------------------------------------------------- YAML
YAML_HEAD = "inputs: {x: 3x8x8}\n"


@pytest.mark.parametrize("doc", ["params: {n: {default: !foo 3}}\nbody: [relu]\n",
                                 "body: [!foo relu]\n",
                                 "params: {n: {default: !!binary aGVsbG8=}}\nbody: [relu]\n",
                                 "params: {n: {default: 2001-01-01}}\nbody: [relu]\n"])
def test_yaml_tags_and_timestamps_are_e152(doc: str) -> None:
    fails(YAML_HEAD + doc, "E152", "yaml")


def test_yaml_block_without_body() -> None:
    text = fails(YAML_HEAD + "blocks: {b: {params: {}}}\nbody: [b]\n", "E150", "yaml")
    assert "has no `body`" in text


def test_yaml_empty_default() -> None:
    fails(YAML_HEAD + "params: {n: {type: int, default: }}\nbody: [relu]\n", "E150", "yaml")


def test_yaml_int_too_long() -> None:
    fails(YAML_HEAD + "params: {n: {default: " + "9" * 5000 + "}}\nbody: [relu]\n", "E701",
          "yaml")


def test_yaml_5000_deep_is_e706() -> None:
    fails(YAML_HEAD + "body: " + "[" * 5000 + "]" * 5000 + "\n", "E706", "yaml")


def test_yaml_alias_chain_deeper_than_the_limit_is_e706() -> None:
    chain = "  x0: &a0 [1]\n" + "".join(f"  x{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 300))
    fails(YAML_HEAD + "blocks:\n" + chain + "body: [relu]\n", "E706", "yaml")


def test_yaml_billion_laughs_under_blocks_is_e706() -> None:
    lol = "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10))
    text = fails(YAML_HEAD + "blocks:\n" + lol + "body: [relu]\n", "E706", "yaml")
    assert "nodes" in text


def test_yaml_aliases_within_the_limit_are_read_once() -> None:
    items = ["{group: &a0 [relu, relu, relu]}"] + [
        f"{{group: &a{i} [" + ", ".join([f"{{group: *a{i - 1}}}"] * 3) + "]}" for i in range(1, 4)]
    graph = expand(loads(YAML_HEAD + "body: [" + ", ".join(items) + "]\n", "yaml"))
    assert len(graph.nodes) == 3 + 9 + 27 + 81


@pytest.mark.parametrize("doc", ["inputs: {x: 3x8x8, x: 3x4x4}\nbody: [relu]\n",
                                 YAML_HEAD + "blocks:\n  b: {body: [relu]}\n  b: {body: [relu]}\n"
                                 "body: [b]\n",
                                 YAML_HEAD + "body:\n  - {a: relu, a: relu}\n",
                                 YAML_HEAD + "body: [relu]\nbody: [relu]\n"])
def test_yaml_duplicate_keys_are_e151(doc: str) -> None:
    text = fails(doc, "E151", "yaml")
    assert "first given here" in text


@pytest.mark.parametrize("shape", ["3xAx8", "3x-1x8", "3x8x", "'3 x 8'"])
def test_yaml_malformed_shapes_are_e130(shape: str) -> None:
    fails(f"inputs: {{x: {shape}}}\nbody: [relu]\n", "E130", "yaml")


@pytest.mark.parametrize("doc", [YAML_HEAD + "params: {n: {type: [1]}}\nbody: [relu]\n",
                                 YAML_HEAD + "body: [{repeat: 3, as: [1], body: [relu]}]\n",
                                 YAML_HEAD + "body: [{for: [1], in: [1], body: [relu]}]\n",
                                 YAML_HEAD + "network: [1]\nbody: [relu]\n",
                                 YAML_HEAD + "init: {conv2d: {if: x}}\nbody: [relu]\n",
                                 YAML_HEAD + "body: [{? [1] : relu}]\n"])
def test_yaml_lists_where_names_go_are_e150(doc: str) -> None:
    fails(doc, "E150", "yaml")


def test_yaml_control_character_is_located() -> None:
    with pytest.raises(ArchspecError) as info:
        loads(YAML_HEAD + "body: [relu, \x1b[2J]\n", "yaml")
    diag = info.value.diagnostic
    assert (diag.code, diag.span.line, diag.span.col) == ("E104", 2, 14)
