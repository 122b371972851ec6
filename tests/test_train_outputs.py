"""Training-only outputs (`output fc, train AuxLogits if aux_logits`): torchvision's
Inception-v3 and GoogLeNet run their auxiliary classifiers in training mode only. The analysis
counts the eval forward (torchvision's `_ops`), parameters include the heads (`num_params`),
the compiled and ejected modules return what torchvision's return in each mode, and ONNX
exports the eval forward."""

from __future__ import annotations

import types

import onnxruntime as ort
import pytest
import torch
import torchvision
from conftest import ROOT
from layerwise import randomise
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.backends.eject import eject
from archspec.backends.onnx import to_onnx
from archspec.lang.source import SourceFile
from archspec.lang.syntax.formatter import format_source
from archspec.lang.syntax.loader import with_input_shapes
from archspec.lang.syntax.printer import to_text
from archspec.lang.syntax.yaml_form import to_yaml
from archspec.lang.syntax.yaml_reader import yaml_to_spec
from archspec.training.loop import loss_of

SPECS = ROOT / "specs"
INCEPTION = SPECS / "inception_v3.arch"
# Two heads on a shared stem: `out` for eval, `aux` for training only.
TWO_HEADS = """network two_heads
input x: 3x8x8
output out, train aux
stem = conv2d(4, 3, padding=1)(x) -> relu
aux = global_avgpool2d()(stem) -> flatten -> linear(5)
out = conv2d(6, 3)(stem) -> relu -> global_avgpool2d -> flatten -> linear(5)
"""


def _eval_macs(model: torch.nn.Module, shape: tuple[int, ...], train: bool = False) -> int:
    """torchvision's `_ops` convention: FlopCounterMode / 2 of a forward on the meta device."""
    model.train(train)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(2, *shape, device="meta"))
    return counter.get_total_flops() // 4  # two samples, two FLOPs per MAC


def _meta(builder: str, **kwargs: object) -> torch.nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, builder)(weights=None, **kwargs)


def test_inception_v3_counts_the_eval_forward_and_every_parameter() -> None:
    """MACs: torchvision's eval forward (FlopCounterMode) and its published `_ops` (5.713 G);
    params: its `num_params`, the auxiliary head's included."""
    theirs = _meta("inception_v3", init_weights=False)
    totals = archspec.analyze(archspec.load(INCEPTION)).totals
    meta = torchvision.models.Inception_V3_Weights.DEFAULT.meta
    assert totals["macs"] == _eval_macs(theirs, (3, 299, 299))
    assert f"{totals['macs'] / 1e9:.3f}" == f"{meta['_ops']:.3f}"
    assert totals["params"] == meta["num_params"] == sum(p.numel() for p in theirs.parameters())


def test_negative_control_without_the_qualifier_the_aux_head_counts_again() -> None:
    """`train` removed: the totals are torchvision's training-mode forward, the auxiliary
    head's 5.7 MMACs included, so the eval count above does not hold by accident."""
    text = INCEPTION.read_text()
    assert "train AuxLogits" in text
    plain = archspec.loads(text.replace("train AuxLogits", "AuxLogits"), base=SPECS)
    theirs = _meta("inception_v3", init_weights=False)
    macs = archspec.analyze(plain).totals["macs"]
    assert macs == _eval_macs(theirs, (3, 299, 299), train=True)
    assert macs - _eval_macs(theirs, (3, 299, 299)) > 5_000_000


def test_googlenet_with_aux_logits_counts_the_eval_forward() -> None:
    theirs = _meta("googlenet", aux_logits=True, init_weights=False)
    totals = archspec.analyze(archspec.load(SPECS / "googlenet.arch", aux_logits=True)).totals
    assert totals["macs"] == _eval_macs(theirs, (3, 224, 224))
    assert totals["params"] == sum(p.numel() for p in theirs.parameters())


def test_the_report_marks_training_only_layers_and_outputs() -> None:
    report = archspec.analyze(archspec.loads(TWO_HEADS))
    rows = {r.name: r for r in report.layers}
    assert [n for n, r in rows.items() if r.train] == ["aux.0", "aux.1", "aux.2"]
    assert report.totals["macs"] == sum(r.macs for r in report.layers if not r.train)
    assert rows["aux.2"].macs == 4 * 5 and rows["aux.2"].params == 4 * 5 + 5
    assert report.to_dict()["train_outputs"] == ["aux"]
    table = report.to_table()
    assert "aux: [1, 5] (train)" in table and "2  (train)" not in table


def _randomised(model: torch.nn.Module, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """``model`` with its constant tensors randomised and its BN running statistics those of
    a random batch (one training-mode forward at momentum 1: an eval forward on random
    statistics collapses or explodes); a copy of its weights (a training-mode forward moves
    the module's own statistics)."""
    gen = torch.Generator().manual_seed(1)
    randomise(model, gen)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.momentum = 1.0
    with torch.no_grad():
        model.train()(3 * torch.randn(4, *shape, generator=gen))
    for m in norms:
        m.momentum = 0.1
    return {k: v.clone() for k, v in model.state_dict().items()}


def _inputs(shape: tuple[int, ...]) -> torch.Tensor:
    return 3 * torch.randn(2, *shape, generator=torch.Generator().manual_seed(2))


def _assert_close(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal, and so is the part that depends on the input (sample 0 minus sample 1), each to
    1e-4 of its largest magnitude: a random network's logits barely depend on its input."""
    for g, w in ((got, want), (got[0] - got[1], want[0] - want[1])):
        assert float(w.abs().max()) > 1e-3
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4 * float(w.abs().max()))


def test_inception_v3_returns_logits_in_eval_and_logits_and_aux_in_training() -> None:
    """torchvision's weights (BN statistics randomised): eval gives its logits alone,
    training mode its (logits, aux_logits). 299x299 is the smallest input whose auxiliary
    head torchvision can run (its 5x5 conv after a 5/3 pooling of Mixed_6e)."""
    torch.manual_seed(0)
    theirs = torchvision.models.inception_v3(weights=None, num_classes=10, dropout=0.0,
                                             init_weights=False)
    ours = archspec.to_torch(archspec.load(INCEPTION, num_classes=10, dropout=0.0))
    ours.load_state_dict(_randomised(theirs, (3, 299, 299)), strict=True)
    x = _inputs((3, 299, 299))
    with torch.no_grad():
        want, got = theirs.eval()(x), ours.eval()(x)
        assert isinstance(got, torch.Tensor)
        _assert_close(got, want)
        want_train, got_train = theirs.train()(x), ours.train()(x)
    assert list(got_train) == ["fc", "AuxLogits"]
    _assert_close(got_train["fc"], want_train.logits)
    _assert_close(got_train["AuxLogits"], want_train.aux_logits)


def test_googlenet_compiled_and_ejected_return_torchvision_outputs_in_each_mode() -> None:
    """GoogLeNet with aux_logits: the logits in eval; in training mode (logits, aux2, aux1)
    in torchvision's order; the ejected source the same (dropouts off: deterministic)."""
    torch.manual_seed(0)
    theirs = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False,
                                          dropout=0.0, dropout_aux=0.0)
    spec = with_input_shapes(archspec.load(SPECS / "googlenet.arch", aux_logits=True,
                                           dropout=0.0, dropout_aux=0.0), {"x": (3, 64, 64)})
    module = types.ModuleType("ejected")
    exec(compile(eject(spec), "ejected.py", "exec"), module.__dict__)  # noqa: S102
    weights = _randomised(theirs, (3, 64, 64))
    x = _inputs((3, 64, 64))
    with torch.no_grad():
        want, want_train = theirs.eval()(x), theirs.train()(x)
        for ours in (archspec.to_torch(spec), module.build()):
            ours.load_state_dict(weights, strict=True)
            _assert_close(ours.eval()(x), want)
            got = ours.train()(x)
            assert list(got) == ["fc", "aux2", "aux1"]
            for name, tensor in zip(got, want_train, strict=True):
                _assert_close(got[name], tensor)


def test_the_eval_forward_does_not_run_the_auxiliary_heads() -> None:
    """Compiled and ejected GoogLeNet in eval mode: no auxiliary layer is called (forward
    hooks) and FlopCounterMode counts torchvision's eval forward; in training mode both heads
    run (the control: the hooks do fire)."""
    spec = archspec.load(SPECS / "googlenet.arch", aux_logits=True)
    module = types.ModuleType("ejected")
    exec(compile(eject(spec), "ejected.py", "exec"), module.__dict__)  # noqa: S102
    theirs = _eval_macs(_meta("googlenet", aux_logits=True, init_weights=False), (3, 224, 224))
    for ours in (archspec.to_torch(spec, device="meta"), module.build().to("meta")):
        called: list[str] = []
        for name, m in ours.named_modules():
            if name.startswith(("aux1.", "aux2.")) and not list(m.children()):
                m.register_forward_hook(lambda *_, n=name, seen=called: seen.append(n))
        assert _eval_macs(ours, (3, 224, 224)) == theirs and called == []
        assert _eval_macs(ours, (3, 224, 224), train=True) > theirs and called


def test_onnx_exports_the_eval_forward_only() -> None:
    """One graph output, no node or initialiser of the auxiliary heads, and onnxruntime gives
    torchvision's eval logits."""
    torch.manual_seed(0)
    theirs = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    spec = with_input_shapes(archspec.load(SPECS / "googlenet.arch", aux_logits=True),
                             {"x": (3, 64, 64)})
    model = to_onnx(spec, weights=_randomised(theirs, (3, 64, 64)))
    assert [o.name for o in model.graph.output] == ["fc"]
    assert not [n.name for n in model.graph.node if n.name.startswith("aux")]
    assert not [i.name for i in model.graph.initializer if i.name.startswith("aux")]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    x = _inputs((3, 64, 64))
    with torch.no_grad():
        want = theirs.eval()(x)
    (got,) = session.run(None, {"x": x.numpy()})
    _assert_close(torch.from_numpy(got), want)


def test_training_adds_the_aux_loss_and_evaluates_the_main_output() -> None:
    """In training mode the module returns both heads and the loss is cross-entropy of the
    main head plus aux_weight x that of the training-only one; in eval mode the main head."""
    torch.manual_seed(0)
    model = archspec.to_torch(archspec.loads(TWO_HEADS))
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    out = model.train()(x)
    loss, main = loss_of(out, y, aux_weight=0.4)
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(loss, ce(out["out"], y) + 0.4 * ce(out["aux"], y))
    assert main is out["out"]
    torch.testing.assert_close(model.eval()(x), out["out"])


def test_every_output_training_only_is_a_located_error() -> None:
    text = TWO_HEADS.replace("output out, train aux", "output train out, train aux")
    with pytest.raises(archspec.ArchspecError) as exc:
        archspec.expand(archspec.loads(text))
    d = exc.value.diagnostic
    assert (d.code, d.span.line, d.span.col) == ("E219", 3, 14) and "train" in d.hint
    assert "every output is training-only" in d.message


def test_a_misspelt_qualifier_is_a_located_syntax_error() -> None:
    with pytest.raises(archspec.ArchspecError) as exc:
        archspec.loads(TWO_HEADS.replace("train aux", "trian aux"))
    d = exc.value.diagnostic
    assert (d.code, d.span.line, d.span.col) == ("E103", 3, 13) and "`train NAME`" in d.hint


def test_train_is_still_a_name() -> None:
    """`train` is a keyword only before an output's name: a layer may be called `train`."""
    text = TWO_HEADS.replace("aux", "train")
    spec = archspec.loads(text)
    assert [(o.name, o.train) for o in spec.outputs] == [("out", False), ("train", True)]


def test_fmt_print_and_yaml_round_trip_the_qualifier() -> None:
    messy = TWO_HEADS.replace("output out, train aux", "output  out ,train   aux if 1>0")
    text = format_source(SourceFile("messy.arch", messy))
    assert "output out, train aux if 1 > 0\n" in text
    spec = archspec.loads(text)
    assert spec.outputs[1].train
    assert "train aux if 1 > 0" in to_text(spec)
    yaml_text = to_yaml(spec)
    assert "train aux if 1 > 0" in yaml_text
    assert yaml_to_spec(SourceFile("two.yaml", yaml_text)) == spec
    assert archspec.loads(to_text(spec)) == spec
