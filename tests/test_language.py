"""The language: every construct, the YAML form, conversion and overrides."""

from __future__ import annotations

import pytest
from conftest import ALL_SPECS, SPECS, TWO_TOWER, spec_id

import archspec
from archspec.lang.syntax.printer import to_text
from archspec.lang.syntax.yaml_form import to_yaml


def _graph(text: str, **overrides: object) -> archspec.lang.network.Graph:
    return archspec.expand(archspec.loads(text, **overrides))


@pytest.mark.parametrize("path", ALL_SPECS, ids=spec_id)
def test_yaml_and_text_forms_give_identical_ir(path) -> None:
    spec = archspec.load(path)
    via_yaml = archspec.loads(to_yaml(spec), format="yaml", base=path.parent)
    via_text = archspec.loads(to_text(spec), base=path.parent)
    assert via_yaml.model_dump() == spec.model_dump()
    assert via_text.model_dump() == spec.model_dump()
    assert archspec.analyze(via_yaml).totals == archspec.analyze(spec).totals


def test_handwritten_yaml_equals_text() -> None:
    text = """
network tiny(num_classes: int = 10)
input x: 3x32x32
block unit(c: int) {
    conv: conv2d(c, 3, padding=1)
    relu
}
stem: unit(8)
mix: concat {
    a: unit(4)
    b: maxpool2d(3, stride=1, padding=1) -> unit(4)
}
flatten
fc: linear(num_classes)
"""
    yaml_text = """
network: tiny
params: {num_classes: {type: int, default: 10}}
inputs: {x: 3x32x32}
blocks:
  unit:
    params: {c: {type: int}}
    body: ["conv: conv2d(c, 3, padding=1)", relu]
body:
  - stem: unit(8)
  - mix:
      concat:
        - a: unit(4)
        - b: maxpool2d(3, stride=1, padding=1) -> unit(4)
  - flatten
  - fc: linear(num_classes)
"""
    assert archspec.loads(yaml_text, format="yaml") == archspec.loads(text)


def test_channel_inference_and_in_shape() -> None:
    g = _graph("""
network t
input x: 5x16x16
block half(k: int = 3) { conv2d(in.channels // 2, k, padding=k // 2) }
a: conv2d(12, 3)
b: half()
c: conv2d(in.channels * 2 if in.height > 8 else 1, 1)
""")
    assert g.nodes["b.0"].shape == (6, 14, 14)
    assert g.nodes["c"].shape == (10, 14, 14)


def test_repeat_with_index_and_template_names() -> None:
    g = _graph("""
network t(widths: list = [4, 8, 16])
input x: 3x8x8
repeat len(widths) as i {
    stage{i + 1}: conv2d(widths[i], 3, padding=1) -> relu
}
""")
    assert [n for n in g.nodes if n.endswith(".0")] == ["stage1.0", "stage2.0", "stage3.0"]
    assert g.nodes["stage3.0"].shape == (16, 8, 8)


def test_residual_identity_and_conditional_projection() -> None:
    text = """
network t(out: int = 8)
input x: 8x8x8
block unit(c: int, s: int = 1) {
    residual {
        conv2d(c, 3, stride=s, padding=1)
    } shortcut if s != 1 or in.channels != c {
        proj: conv2d(c, 1, stride=s)
    }
}
a: unit(8)
b: unit(out, s=2)
"""
    g = _graph(text)
    assert "a.proj" not in g.nodes and g.nodes["a.add"].inputs == ("a.0", "x")
    assert g.nodes["b.proj"].shape == (8, 4, 4)
    assert "b.proj" in _graph(text, out=16).nodes


def test_dense_block_concatenates_all_earlier_outputs() -> None:
    g = _graph("""
network t
input x: 4x8x8
features: dense { repeat 3 conv2d(2, 3, padding=1) }
""")
    assert g.nodes["features.concat"].inputs == ("x", "features.0")
    assert g.nodes["features.2"].in_shapes == ((8, 8, 8),)
    assert g.outputs["output"] == "features.concat_2"
    assert g.shape_of("features.concat_2") == (10, 8, 8)


def test_explicit_dag_with_two_inputs_and_two_outputs() -> None:
    g = _graph(TWO_TOWER)
    assert g.outputs == {"logits": "logits", "embedding": "embedding"}
    assert g.nodes["embedding"].inputs == ("pooled.1", "m")
    assert g.shape_of("logits") == (2,)


def test_for_loop_over_pairs_and_if_else() -> None:
    g = _graph("""
network t(bn: bool = true)
input x: 3x16x16
for n, c in [[1, 4], [2, 8]] {
    repeat n { conv2d(c, 3, padding=1) }
    if bn { batchnorm2d } else { identity }
}
""")
    assert [n.op for n in g] == ["conv2d", "batchnorm2d", "conv2d", "conv2d", "batchnorm2d"]
    g2 = _graph("network t(bn: bool = true)\ninput x: 3x4x4\nif bn { relu } else { tanh }",
                bn=False)
    assert [n.op for n in g2] == ["tanh"]


def test_imports_bring_blocks(tmp_path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "b.arch").write_text("block two(c: int) { conv2d(c, 1) -> relu }\n")
    (tmp_path / "net.arch").write_text(
        'import "lib/b.arch"\nnetwork n\ninput x: 3x4x4\nbody: two(7)\n')
    g = archspec.expand(archspec.load(tmp_path / "net.arch"))
    assert g.nodes["body.0"].shape == (7, 4, 4)


def test_overrides_change_the_network() -> None:
    spec = archspec.load(SPECS / "resnet18.arch", num_classes=10)
    assert archspec.analyze(spec).outputs["output"] == [1, 10]


def test_comments_everywhere() -> None:
    g = _graph("""# header
network t  # trailing
input x: 3x8x8  # shape
# between
a: conv2d(4, 3,   # args may span lines
          padding=1)  # done
""")
    assert g.nodes["a"].shape == (4, 8, 8)


EXPRESSIONS = ["1 + 2 * 3", "2 ** 3 ** 2", "-2 ** 2", "not 1 == 2", "not 1 and 0", "1 - 2 - 3",
               "10 // 3 * 3 + 1 % 2", "3 if 1 < 2 and not false else 4", "(1 + 2) * 3",
               "2 * -3", "not not 1 or 0", "1 or 0 and 0", "(1 or 0) and 0", "-(2 - 5) * 2",
               "7 / 2", "[1, 2, 3][1] + len([4, 5])", "max(3, 4) - min([1, 0])",
               "(3, 5)[0] * 2 >= 6 != false", "sum(range(5)) % 4"]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_expressions_evaluate_like_python_and_print_back(text: str) -> None:
    from archspec.lang.exprs import Evaluator
    from archspec.lang.source import SourceFile
    from archspec.lang.syntax.printer import expr
    from archspec.lang.syntax.to_ir import parse

    node = parse(SourceFile("e", text), start="expr")
    python = eval(text.replace("true", "True").replace("false", "False"))  # noqa: S307
    assert Evaluator({}, None)(node) == python
    assert parse(SourceFile("e", expr(node)), start="expr") == node


def test_networkx_view_is_a_dag_with_every_layer() -> None:
    import networkx as nx

    graph = archspec.expand(archspec.load(SPECS / "googlenet.arch"))
    g = graph.to_networkx()
    assert nx.is_directed_acyclic_graph(g)
    assert g.number_of_nodes() == len(graph) + len(graph.inputs)
    assert list(nx.topological_sort(g))[0] == "x"


KEYWORD_LABELS = """
network t
input x: 4x8x8
init conv2d: constant(0.5, bias=0)
init "block.*": constant(2.0)
init "repeat.1": ones(bias=3)
block unit(c: int) {
    conv2d(c, 3, padding=1) -> relu
}
block: unit(4)
repeat: conv2d(4, 1) -> conv2d(4, 1)
"""


def test_keywords_are_labels_and_round_trip() -> None:
    """torchvision names modules `block`: a keyword may label a layer, in both forms."""
    spec = archspec.loads(KEYWORD_LABELS)
    graph = archspec.expand(spec)
    assert {"block.0", "block.1", "repeat.0", "repeat.1"} <= set(graph.nodes)
    assert archspec.loads(to_yaml(spec), format="yaml").model_dump() == spec.model_dump()
    assert archspec.loads(to_text(spec)).model_dump() == spec.model_dump()


def test_init_rules_target_paths_and_the_last_match_wins() -> None:
    torch = pytest.importorskip("torch")
    model = archspec.to_torch(archspec.loads(KEYWORD_LABELS))
    state = model.state_dict()
    assert torch.equal(state["block.0.weight"], torch.full((4, 4, 3, 3), 2.0))
    assert not torch.equal(state["block.0.bias"], torch.zeros(4))  # replaced wholly: default
    assert torch.equal(state["repeat.0.weight"], torch.full((4, 4, 1, 1), 0.5))
    assert torch.equal(state["repeat.0.bias"], torch.zeros(4))
    assert torch.equal(state["repeat.1.weight"], torch.ones(4, 4, 1, 1))
    assert torch.equal(state["repeat.1.bias"], torch.full((4,), 3.0))


def _doc_examples() -> list[str]:
    from conftest import ROOT

    text = (ROOT / "docs" / "language.md").read_text()
    return [block.split("```", 1)[0] for block in text.split("```arch\n")[1:]]


@pytest.mark.parametrize("example", _doc_examples(), ids=lambda t: t.split("\n", 1)[0])
def test_language_doc_examples_are_valid_specs(example: str) -> None:
    """Every ```arch example in docs/language.md is a whole spec that builds in PyTorch with
    the shapes the static analysis gives."""
    torch = pytest.importorskip("torch")
    spec = archspec.loads(example)
    graph = archspec.expand(spec)
    model = archspec.to_torch(spec).eval()
    with torch.no_grad():
        out = model(*[torch.randn(2, *s) for s in graph.inputs.values()])
    outs = out if isinstance(out, dict) else {"output": out}
    assert {k: tuple(v.shape[1:]) for k, v in outs.items()} == {
        k: graph.shape_of(v) for k, v in graph.outputs.items()}


def test_every_dispatch_table_covers_its_ir_union() -> None:
    """Expander, printer and YAML writer look rules up by IR class and fail loudly on a class
    they lack; here every table must name exactly the members of its union."""
    from archspec.lang import ir
    from archspec.lang.expander import ELEMENTS as EXPAND
    from archspec.lang.syntax.printer import ELEMENTS as PRINT
    from archspec.lang.syntax.printer import EXPRS
    from archspec.lang.syntax.yaml_form import ELEMENTS as YAML

    for table in (EXPAND, PRINT, YAML):
        assert set(table) == ir.members(ir.Element)
    assert set(EXPRS) == ir.members(ir.Expr)
    with pytest.raises(TypeError, match="no printer rule for IR node Spec"):
        ir.rule_for(PRINT, archspec.loads("network t\ninput x: 3\nrelu\n"), "printer")


PATHS = """
network t
input x: 3x32x32
block stage(c: int) {
    conv2d(c, 3, padding=1) -> relu
    conv2d(c, 3, stride=2, padding=1) -> relu
}
backbone: { stage(8); stage(16); stage(32) }
low = conv2d(4, 1)(backbone.1.2)
high = conv2d(4, 1)(backbone.2) -> upsample(2)
y = add(low, high)
"""


def test_a_dag_input_may_be_a_dotted_layer_path() -> None:
    """`backbone.1.2` reads a numbered item inside a block call that no label can name (the
    tap of a segmentation head on a backbone stage), the same tensor PyTorch computes there."""
    torch = pytest.importorskip("torch")
    graph = _graph(PATHS)
    assert graph.nodes["low"].inputs == ("backbone.1.2",)
    assert graph.nodes["high.0"].inputs == (graph.scopes["backbone.2"].output,)
    model = archspec.to_torch(archspec.loads(PATHS)).eval()
    relu, layer = torch.relu, model.get_submodule

    def stage(i: int, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tap = layer(f"backbone.{i}.2")(relu(layer(f"backbone.{i}.0")(h)))
        return tap, relu(tap)

    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, s0 = stage(0, x)
        tap1, s1 = stage(1, s0)
        _, s2 = stage(2, s1)
        ref = layer("low")(tap1) + torch.nn.functional.interpolate(layer("high.0")(s2),
                                                                   scale_factor=2)
        torch.testing.assert_close(model(x), ref)


def test_init_arguments_read_network_parameters() -> None:
    torch = pytest.importorskip("torch")
    text = ("network t(num_classes: int = 4)\ninput x: 8\n"
            "init linear: uniform(-1 / sqrt(num_classes), 1 / sqrt(num_classes), bias=0)\n"
            "fc: linear(num_classes)\n")
    model = archspec.to_torch(archspec.loads(text, num_classes=400))
    assert 0.04 < model.fc.weight.abs().max().item() <= 0.05
    assert torch.equal(model.fc.bias, torch.zeros(400))


def test_an_output_and_an_init_rule_may_depend_on_a_parameter() -> None:
    torch = pytest.importorskip("torch")
    text = ("network t(aux: bool = false)\ninput x: [3, 8, 8]\noutput out, aux if aux\n"
            "init \"aux\" if aux: ones(bias=2)\n"
            "out = conv2d(2, 1)(x)\nif aux { aux = conv2d(2, 1)(x) }\n")
    assert list(_graph(text).outputs) == ["out"]
    assert list(_graph(text, aux=True).outputs) == ["out", "aux"]
    model = archspec.to_torch(archspec.loads(text, aux=True))
    assert torch.equal(model.aux.bias, torch.full((2,), 2.0))
    spec = archspec.loads(text)
    assert archspec.loads(to_yaml(spec), format="yaml").model_dump() == spec.model_dump()
    assert archspec.loads(to_text(spec)).model_dump() == spec.model_dump()
