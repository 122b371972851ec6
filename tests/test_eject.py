"""`archspec compile`: the ejected source is the same network as the compiled spec."""

from __future__ import annotations

import ast
import builtins
import inspect
import keyword
import types

import pytest
import torch
import torchvision
from conftest import ROOT, RUN_SPECS, SPECS, TWO_TOWER, spec_id
from test_errors import run_cli
from torch import nn

import archspec
from archspec.backends.eject import ClassDef, Step, Writer, eject, merge
from archspec.backends.naming import Namespace
from archspec.lang.diagnostics import ArchspecError
from archspec.ops import Module


def _load_source(text: str) -> types.ModuleType:
    module = types.ModuleType("ejected")
    code = compile(text, "ejected.py", "exec", dont_inherit=True)  # as a file of its own
    exec(code, module.__dict__)  # noqa: S102
    return module


def _assert_same_network(spec: archspec.lang.ir.Spec, text: str | None = None) -> nn.Module:
    """The ejected source builds, seeded, the compiled spec: same state_dict, same outputs."""
    torch.manual_seed(0)
    ejected = _load_source(eject(spec) if text is None else text).build().eval()
    torch.manual_seed(0)
    compiled = archspec.to_torch(spec).eval()
    ours, theirs = ejected.state_dict(), compiled.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)  # same init, same order
    inputs = [torch.randn(2, *s) for s in archspec.expand(spec).inputs.values()]
    with torch.no_grad():
        torch.testing.assert_close(ejected(*inputs), compiled(*inputs))
    return ejected


def _classes(text: str) -> dict[str, type]:
    module = _load_source(text)
    return {k: v for k, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == "ejected"}


@pytest.mark.parametrize("path", RUN_SPECS, ids=spec_id)
def test_ejected_source_is_the_same_network(path) -> None:
    spec = archspec.load(path)
    text = eject(spec)
    imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(text))
                if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])}
    assert imported == {"torch"}
    _assert_same_network(spec, text)


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
    classes = _classes(out.read_text())
    assert set(classes) == {"Basic", "Basic2", "Resnet18"}
    assert list(inspect.signature(classes["Basic"]).parameters) == ["planes"]
    assert "Basic(planes=128)" in out.read_text()


def test_multi_input_multi_output_dag_ejects() -> None:
    model = _load_source(eject(archspec.loads(TWO_TOWER))).build()
    out = model(torch.randn(2, 3, 32, 32), torch.randn(2, 10))
    assert set(out) == {"logits", "embedding"} and out["logits"].shape == (2, 2)


def test_compile_set_overrides(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run_cli(["compile", str(SPECS / "examples" / "cnn3.arch"), "--set",
                            "num_classes=9"], capsys)
    assert code == 0 and "nn.Linear(64, num_classes)" in out and "num_classes: int = 9" in out


def _norm_class(shape: tuple[int, int]) -> ClassDef:
    return ClassDef("norm", "Block `norm`.", (("ln", Module("torch.nn.LayerNorm", (shape,))),),
                    ("x",), (Step(("ln",), "ln", ("ln",), (("", "x"),)),), (("", ("ln",)),))


def test_tuple_arguments_stay_tuples() -> None:
    single = _load_source("\n".join(["import torch", "from torch import nn",
                                     *Writer([_norm_class((8, 8))]).class_lines(0)]))
    assert single.Norm().ln.normalized_shape == (8, 8)
    merged, refs = merge([_norm_class((8, 8)), _norm_class((4, 6))],
                         lambda column, name, taken: taken.name(name))
    assert [r.args for r in refs] == [(("normalized_shape", (8, 8)),),
                                      (("normalized_shape", (4, 6)),)]
    source = Writer([merged]).class_lines(0)
    assert "    def __init__(self, normalized_shape: tuple) -> None:" in source
    norm = _load_source("\n".join(["import torch", "from torch import nn", *source])).Norm
    assert norm(normalized_shape=(4, 6)).ln.normalized_shape == (4, 6)


BLOCK_WITH_EPS = """
network eps_net
input x: 3x8x8
block bnb(e: float, k) {
    conv: conv2d(8, k, padding=1)
    bn: batchnorm2d(eps=e)
    relu
}
bnb(1e-6, (3, 3)) -> bnb(1e-7, (3, 3)) -> bnb(0.5, (1, 3))
"""


def test_float_and_tuple_constants_become_parameters() -> None:
    spec = archspec.loads(BLOCK_WITH_EPS)
    text = eject(spec)
    _assert_same_network(spec, text)
    bnb = _classes(text)["Bnb"]
    assert {k: p.annotation for k, p in inspect.signature(bnb).parameters.items()} == {
        "in_channels": int, "e": float, "k": tuple}


def test_labels_that_are_not_identifiers_keep_their_names() -> None:
    spec = archspec.loads("""
network odd
input x: 3x16x16
block: conv2d(8, 3)
block1{"-0"}: conv2d(8, 3)
group{"-1"}: { conv2d(8, 3); relu }
torch: conv2d(4, 1)
concat { nn: conv2d(4, 1); self: conv2d(4, 1) }
""")
    ejected = _assert_same_network(spec)
    keys = set(ejected.state_dict())
    assert {"block.weight", "block1-0.weight", "group-1.0.weight", "nn.weight"} <= keys
    ejected.load_state_dict(archspec.to_torch(spec).state_dict(), strict=True)


def test_unlabelled_buffers_and_parameters_keep_their_numeric_keys() -> None:
    """A persistent buffer and a learnable tensor at numbered positions (`0`, `1`: not
    identifiers) are registered under those keys, as a buffer (int64) and a parameter."""
    spec = archspec.loads("""
network numbered
input x: 49x49
buffer("relative_position_index", [7, 7], persistent=true)
parameter([49, 49], "normal")
""")
    ejected = _assert_same_network(spec)
    assert [k for k, _ in ejected.named_buffers()] == ["0"]
    assert ejected.state_dict()["0"].dtype == torch.int64
    assert [k for k, _ in ejected.named_parameters()] == ["1"]


@pytest.mark.parametrize("label", ["class", "forward", "training"])
def test_labels_pytorch_reserves_are_located_errors_in_both_backends(label: str) -> None:
    """A Python keyword or an nn.Module attribute cannot name a module (fx would write
    `self.class`, `forward` would replace the method): both backends say so at the layer."""
    spec = archspec.loads(f"network odd\ninput x: 3x8x8\nstage: {{ {label}{{\"\"}}: "
                          "conv2d(4, 3) }\n")
    for backend in (archspec.to_torch, eject):
        with pytest.raises(ArchspecError) as info:
            backend(spec)
        assert info.value.diagnostic.code == "E503" and info.value.diagnostic.span.line == 3


INTERLEAVED = """
network mixed
input image: 3x8x8
input meta: 5
output y, z
{inits}
a = conv2d(4, 3, padding=1)(image)
m = linear(6)(meta)
b = conv2d(4, 3)(a) -> batchnorm2d -> relu
n = linear(5)(m)
y = global_avgpool2d()(b) -> flatten
z = add(n, meta)
"""


@pytest.mark.parametrize("inits", [
    'init "a": normal(0, 0.02, bias=0)',
    'init "b.2": normal()',
    "init conv2d: kaiming_normal()\ninit linear: normal(0, 0.01, bias=0)\n"
    'init batchnorm2d: constant(1, bias=0)\ninit "n": xavier_uniform()',
    'init "*": default()',
], ids=["path", "no-weights", "interleaved", "default"])
def test_init_rules_apply_per_layer_in_order(inits: str) -> None:
    _assert_same_network(archspec.loads(INTERLEAVED.format(inits=inits)))


def test_init_rule_for_an_op_the_network_does_not_use() -> None:
    spec = archspec.loads(INTERLEAVED.format(inits="init conv1d: normal()"))
    _assert_same_network(spec)
    typo = archspec.loads(INTERLEAVED.format(inits='init "c": normal()'))
    with pytest.raises(ArchspecError) as compiled:
        archspec.to_torch(typo)
    with pytest.raises(ArchspecError) as ejected:
        eject(typo)
    assert ejected.value.diagnostic.code == compiled.value.diagnostic.code == "E117"


@pytest.mark.parametrize("label", ["block1-0", "0", "class", "torch", "nn", "F", "self",
                                   "print", "x y", "", "ü"])
def test_namespace_gives_safe_unique_identifiers(label: str) -> None:
    outer = Namespace(taken=("build",))
    names = [outer.name(label), outer.name(label, obj=1), outer.child().name(label)]
    assert outer.name(label, obj=1) == names[1]
    for name in names:
        assert name.isidentifier() and not keyword.iskeyword(name)
        assert name not in {*dir(builtins), "torch", "nn", "F", "self", "build"}
    assert len(set(names)) == 3
    assert outer.class_name(label, "Group")[0].isupper()
