"""Gaps users met writing timm models: blocks with several inputs, labels that are paths
(ModuleList positions, re-opened groups), dotted inputs of merge ops, the message for a layer
given as an attribute, keywords as parameter names, loop-carried values and ``each(name)``."""

from __future__ import annotations

import pytest

import archspec
from archspec.lang.network import Graph
from archspec.lang.syntax.printer import to_text
from archspec.lang.syntax.yaml_form import to_yaml


def _graph(text: str, **overrides: object) -> Graph:
    return archspec.expand(archspec.loads(text, **overrides))


def _round_trips(text: str) -> archspec.Spec:
    """The spec of ``text``, checked to give the same IR through the printer and YAML."""
    spec = archspec.loads(text)
    assert archspec.loads(to_text(spec)).model_dump() == spec.model_dump()
    assert archspec.loads(to_yaml(spec), format="yaml").model_dump() == spec.model_dump()
    return spec


def _error(text: str, fmt: str = "arch") -> archspec.ArchspecError:
    with pytest.raises(archspec.ArchspecError) as info:
        archspec.expand(archspec.loads(text, format=fmt))
    return info.value


def _same_as_ejected(spec: archspec.Spec) -> None:
    """The compiled and the ejected network have the same state_dict keys and outputs."""
    torch = pytest.importorskip("torch")
    from archspec.backends.eject import eject

    namespace: dict[str, object] = {}
    exec(compile(eject(spec), "ejected.py", "exec"), namespace)  # noqa: S102
    ejected = namespace["build"]().eval()  # type: ignore[operator]
    compiled = archspec.to_torch(spec).eval()
    assert list(ejected.state_dict()) == list(compiled.state_dict())
    ejected.load_state_dict(compiled.state_dict())
    inputs = [torch.randn(2, *s) for s in archspec.expand(spec).inputs.values()]
    with torch.no_grad():
        torch.testing.assert_close(ejected(*inputs), compiled(*inputs))


# ---------------------------------------------------------------------- 1. several inputs

FUSE = """
network fpn(nc: int = 10)
input x: 3x16x16
block fuse(c: int)(low, high) {
    up = upsample(2)(high)
    y = add(low, up)
    proj: conv2d(c, 1)
}
block head(nc: int)(a, b) {
    pa = global_avgpool2d()(a) -> flatten
    pb = global_avgpool2d()(b) -> flatten
    y = concat(pa, pb)
    fc: linear(nc)
}
backbone: {
    conv2d(8, 3, padding=1) -> relu
    conv2d(8, 3, stride=2, padding=1) -> relu
}
p: fuse(8)(backbone.1, backbone.3)
h: head(nc)(p, backbone.3)
"""


def test_a_block_may_name_several_inputs() -> None:
    torch = pytest.importorskip("torch")
    spec = _round_trips(FUSE)
    graph = archspec.expand(spec)
    assert graph.nodes["p.y"].inputs == ("backbone.1", "p.up")
    assert graph.nodes["h.y"].inputs == ("h.pa.1", "h.pb.1")
    assert graph.shape_of("h.fc") == (10,)
    model = archspec.to_torch(spec).eval()
    assert {"p.proj.weight", "h.fc.weight"} <= set(model.state_dict())
    layer = model.get_submodule
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        low = torch.relu(layer("backbone.0")(x))
        high = torch.relu(layer("backbone.2")(low))
        p = layer("p.proj")(low + torch.nn.functional.interpolate(high, scale_factor=2))
        pooled = torch.cat([p.mean((2, 3)), high.mean((2, 3))], 1)
        torch.testing.assert_close(model(x), layer("h.fc")(pooled))
    _same_as_ejected(spec)


def test_in_is_the_first_input_and_the_body_starts_there() -> None:
    g = _graph("network t\ninput x: 4x8x8\ninput z: 6x8x8\n"
               "block b(k: int = in.channels)(a, c) { conv2d(k, 1); y = concat(a, c) }\n"
               "o: b()(z, x)\n")
    assert g.nodes["o.0"].inputs == ("z",) and g.nodes["o.0"].shape == (6, 8, 8)
    assert g.nodes["o.y"].inputs == ("z", "x")


def test_yaml_blocks_take_inputs() -> None:
    yaml_text = """
network: t
inputs: {x: 4x8x8}
blocks:
  fuse:
    params: {c: {type: int}}
    inputs: [a, b]
    body: ["y = add(a, b)", "proj: conv2d(c, 1)"]
body:
  - s: conv2d(4, 1)
  - f: fuse(4)(s, x)
"""
    text = ("network t\ninput x: 4x8x8\nblock fuse(c: int)(a, b) { y = add(a, b); "
            "proj: conv2d(c, 1) }\ns: conv2d(4, 1)\nf: fuse(4)(s, x)\n")
    assert archspec.loads(yaml_text, format="yaml") == archspec.loads(text)
    assert _graph(text).nodes["f.y"].inputs == ("s", "x")


@pytest.mark.parametrize(("call", "message"), [
    ("f: fuse(4)(x)", "block `fuse` takes 2 input(s) (a, b), got 1"),
    ("f: fuse(4)", "block `fuse` takes 2 input(s) (a, b), got 1"),
    ("f: one()(x, x)", "block `one` takes one input (`in`), got 2"),
])
def test_a_block_called_on_the_wrong_number_of_inputs(call: str, message: str) -> None:
    exc = _error("network t\ninput x: 4x8x8\nblock fuse(c: int)(a, b) { y = add(a, b) }\n"
                 f"block one() {{ relu }}\n{call}\n")
    assert exc.diagnostic.code == "E216" and message in exc.diagnostic.message
    assert exc.diagnostic.span.line == 5 and exc.diagnostic.hint


def test_block_inputs_named_twice() -> None:
    exc = _error("network t\ninput x: 4x8x8\nblock f()(a, a) { relu }\nf()(x, x)\n")
    assert exc.diagnostic.code == "E114" and "`a`" in exc.diagnostic.message


# ---------------------------------------------------------------------- 2. paths as labels

LISTS = """
network lists
input x: 4x8x8
convs.0: conv2d(4, 3, padding=1, bias=false)
bns.0: batchnorm2d
act: relu
for i in range(1, 3) {
    convs.{i}: conv2d(4, 3, padding=1, bias=false)
    bns.{i}: batchnorm2d
    relu
}
extra: { conv2d(4, 1) }
extra: { conv2d(4, 1); 5: relu }
stages.0.blocks.1: conv2d(4, 1)
stages.0.1.{2}: relu
"""


def test_labels_are_paths_with_numbered_segments() -> None:
    spec = _round_trips(LISTS)
    graph = archspec.expand(spec)
    assert list(graph.nodes) == [
        "convs.0", "bns.0", "act", "convs.1", "bns.1", "3", "convs.2", "bns.2", "4",
        "extra.0", "extra.1", "extra.5", "stages.0.blocks.1", "stages.0.1.2"]
    assert graph.nodes["convs.1"].inputs == ("act",)
    assert graph.scopes["extra"].output == "extra.5"
    torch = pytest.importorskip("torch")
    keys = list(archspec.to_torch(spec).state_dict())
    assert keys[:3] == ["convs.0.weight", "convs.1.weight", "convs.2.weight"]
    assert "bns.2.running_mean" in keys and "stages.0.blocks.1.weight" in keys
    assert torch is not None
    _same_as_ejected(spec)


def test_a_bare_number_labels_an_item_of_a_group() -> None:
    g = _graph("network t\ninput x: 4x8x8\n"
               "features: { 0: conv2d(4, 1); 3: relu; conv2d(4, 1) }\n")
    assert list(g.nodes) == ["features.0", "features.3", "features.2"]


@pytest.mark.parametrize(("body", "kind"), [
    ("a: conv2d(4, 1)\na.b: relu", "already a layer"),
    ("a.0: conv2d(4, 1)\na: relu", "already a group"),
    ("block u() { relu }\nb: u()\nb.x: relu", "already a block call"),
    ("g: { relu }\ng: u2()\nblock u2() { relu }", "already a group"),
])
def test_a_path_through_a_layer_or_a_block_call_is_an_error(body: str, kind: str) -> None:
    exc = _error(f"network t\ninput x: 4x8x8\n{body}\n")
    assert exc.diagnostic.code == "E213" and kind in exc.diagnostic.message
    assert exc.diagnostic.notes and "^" in str(exc)


def test_a_hole_pastes_into_one_segment() -> None:
    exc = _error("network t\ninput x: 4x8x8\nx{1}.{1.5}: relu\n")
    assert exc.diagnostic.code == "E504" and "'1.5'" in exc.diagnostic.message


# ---------------------------------------------------------------------- 3. dotted merge inputs

def test_merge_ops_take_dotted_paths_positionally() -> None:
    text = ("network t\ninput x: 4x8x8\nbackbone: { conv2d(4, 1); relu; conv2d(4, 1) }\n"
            "y = add(backbone.2, x)\nz = concat(backbone.0, y, dim=0)\nw = mul(z, z)\n")
    g = _graph(text)
    assert g.nodes["y"].inputs == ("backbone.2", "x")
    assert g.nodes["z"].inputs == ("backbone.0", "y")
    _round_trips(text)
    exc = _error("network t\ninput x: 4x8x8\ny = add(x, 1 + 2)\n")
    assert exc.diagnostic.code == "E211"


# ---------------------------------------------------------------------- 4. attribute or input

@pytest.mark.parametrize(("stmt", "name", "form"), [
    ("y = batchnorm2d(convs.0)", "convs.0", "batchnorm2d()(convs.0)"),
    ("y = conv2d(4, convs)", "convs", "conv2d(...)(convs)"),
    ("y = conv2d(4, 1, stride=a)", "a", "conv2d(...)(a)"),
    ("y = unit(a)", "a", "unit()(a)"),
])
def test_a_layer_given_as_an_attribute_shows_the_dag_form(stmt: str, name: str,
                                                          form: str) -> None:
    exc = _error("network t\ninput x: 4x8x8\nblock unit(c: int = 1) { relu }\n"
                 f"convs: {{ conv2d(4, 1) }}\na = relu()(x)\n{stmt}\n")
    d = exc.diagnostic
    assert d.code == "E217" and f"`{name}` is a layer" in d.message
    assert f"`{form}`" in (d.hint or "")
    assert d.span.line == 6 and d.span.end_col - d.span.col == len(name)


def test_in_given_as_an_attribute() -> None:
    exc = _error("network t\ninput x: 4x8x8\nblock b() { batchnorm2d(in) }\nb()\n")
    assert exc.diagnostic.code == "E217" and "the block's input" in exc.diagnostic.message


def test_a_parameter_named_like_a_layer_is_still_a_value() -> None:
    g = _graph("network t(a: int = 3)\ninput x: 4x8x8\na: conv2d(a, 1)\nb: conv2d(a, 1)\n")
    assert g.nodes["b"].shape == (3, 8, 8)


# ---------------------------------------------------------------------- 5. keywords as names

KEYWORDS = """
network t(init: float = 0.5, block: int = 8, repeat: int = 2)
input x: 4x8x8
init conv2d: constant(init)
block unit(c: int, shortcut: bool = false, dense: int = 1, concat: int = 0) {
    residual { conv2d(c * dense + concat, 3, padding=1) } shortcut if shortcut {
        conv2d(c * dense + concat, 1)
    }
}
block: unit(block // 2, shortcut=true, dense=1)
layers: { repeat repeat unit(4, concat=0) }
features: { conv2d(4, 1); block: relu }
y = relu()(features.block)
"""


def test_keywords_as_parameter_names_and_keyword_arguments() -> None:
    torch = pytest.importorskip("torch")
    spec = _round_trips(KEYWORDS)
    graph = archspec.expand(spec)
    assert graph.scopes["block"].args == {"c": 4, "shortcut": True, "dense": 1, "concat": 0}
    assert {"layers.0.add", "layers.1.add"} <= set(graph.nodes)
    assert graph.nodes["y"].inputs == ("features.block",)
    model = archspec.to_torch(archspec.loads(KEYWORDS, init=2.0))
    assert torch.equal(model.get_submodule("block.0").weight, torch.full((4, 4, 3, 3), 2.0))


def test_yaml_names_may_not_be_reserved_words() -> None:
    exc = _error("network: t\nparams: {in: {default: 1}}\ninputs: {x: 4}\nbody: [relu]\n",
                 fmt="yaml")
    assert exc.diagnostic.code == "E153"


# ---------------------------------------------------------------------- 6. loops

RES2 = """
network res2_unit(width: int = 4, scale: int = 4)
input x: 16x8x8
block bottle2neck(width: int, scale: int = 4, first: bool = true) {
    conv1: conv2d(width * scale, 1, bias=false)
    bn1: batchnorm2d
    spx = relu
    for i in range(scale - 1) {
        piece = slice(0, i * width, (i + 1) * width)(spx)
        if i == 0 or first { sp = identity()(piece) } else { sp = add(spo, piece) }
        convs.{i}: conv2d(width, 3, padding=1, bias=false)(sp)
        bns.{i}: batchnorm2d
        spo = relu
    }
    last = slice(0, (scale - 1) * width, scale * width)(spx)
    if first { tail = avgpool2d(3, 1, 1)(last) } else { tail = identity()(last) }
    out = concat(each(spo), tail)
    conv3: conv2d(in.channels, 1, bias=false)
    bn3: batchnorm2d
}
layer1: { bottle2neck(width, scale); bottle2neck(width, scale, first=false) }
"""


def _res2_reference(model: object, x: object, prefix: str, first: bool) -> object:
    """timm's Bottle2neck.forward (without its residual), on the compiled model's modules."""
    import torch

    layer = model.get_submodule  # type: ignore[attr-defined]
    spx = torch.split(torch.relu(layer(f"{prefix}.bn1")(layer(f"{prefix}.conv1")(x))), 4, 1)
    spo, sp = [], spx[0]
    for i in range(3):
        sp = spx[i] if i == 0 or first else sp + spx[i]
        sp = torch.relu(layer(f"{prefix}.bns.{i}")(layer(f"{prefix}.convs.{i}")(sp)))
        spo.append(sp)
    spo.append(torch.nn.functional.avg_pool2d(spx[-1], 3, 1, 1) if first else spx[-1])
    return layer(f"{prefix}.bn3")(layer(f"{prefix}.conv3")(torch.cat(spo, 1)))


def test_loop_carried_values_and_each_build_res2net() -> None:
    torch = pytest.importorskip("torch")
    spec = _round_trips(RES2)
    graph = archspec.expand(spec)
    assert graph.nodes["layer1.1.sp_1"].inputs == ("layer1.1.spo", "layer1.1.piece_1")
    assert graph.nodes["layer1.0.out"].inputs == (
        "layer1.0.spo", "layer1.0.spo_1", "layer1.0.spo_2", "layer1.0.tail")
    model = archspec.to_torch(spec).eval()
    keys = model.state_dict()
    assert "layer1.0.convs.2.weight" in keys and "layer1.1.bns.0.running_var" in keys
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        ref = _res2_reference(model, _res2_reference(model, x, "layer1.0", True), "layer1.1",
                              False)
        torch.testing.assert_close(model(x), ref)
    _same_as_ejected(spec)


def test_rebinding_outside_loops_and_of_several_results() -> None:
    g = _graph("network t\ninput x: 4x8x8\na = conv2d(4, 1)(x)\na = relu()(a)\n"
               "a = conv2d(4, 1) -> relu\nfor i in range(2) { p, q = chunk(2)(a) }\n"
               "y = concat(each(p), each(q))\n")
    assert [n for n in g.nodes if n.startswith("a")] == ["a", "a_1", "a_2.0", "a_2.1"]
    assert g.nodes["a_1"].inputs == ("a",)
    assert g.nodes["y"].inputs == ("p", "p_1", "q", "q_1")


def test_each_of_a_name_never_assigned() -> None:
    exc = _error("network t\ninput x: 4x8x8\nspo = relu()(x)\ny = concat(each(sop), x)\n")
    assert exc.diagnostic.code == "E212" and "did you mean `spo`" in (exc.diagnostic.hint or "")
    exc = _error("network t\ninput x: 4x8x8\na = relu()(x)\ny = conv2d(4, each(a))\n")
    assert exc.diagnostic.code == "E217"


def test_a_label_is_not_rebound() -> None:
    exc = _error("network t\ninput x: 4x8x8\nb = relu()(x)\nb: relu\n")
    assert exc.diagnostic.code == "E213"
