"""`archspec import`: torchvision models through PyTorch (torch.fx) and through ONNX files the
test exports itself; every figure against an independent oracle (torch, onnxruntime)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("safetensors")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402, N812

import archspec  # noqa: E402
from archspec.importers import import_model, write  # noqa: E402
from archspec.lang.diagnostics import ArchspecError  # noqa: E402

SHAPE = (3, 64, 64)
ROOT = Path(__file__).resolve().parents[1]


def _lines(text: str) -> int:
    return sum(1 for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))


def _source_counts(model: nn.Module) -> tuple[int, int, int]:
    """Params, buffers (torch) and MACs (FlopCounterMode FLOPs / 2) at batch 1."""
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, *SHAPE))
    return params, buffers, counter.get_total_flops() // 2


def _compiled(imported):  # noqa: ANN001, ANN202
    model = archspec.to_torch(imported.spec).eval()
    model.load_state_dict(imported.weights, strict=True)
    return model


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "googlenet",
                                  "shufflenet_v2_x0_5"])
def test_pytorch_route_is_exact(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    source = getattr(torchvision.models, name)(**kwargs).eval()
    imported = import_model(f"torchvision.models:{name}", {"x": SHAPE}, kwargs)
    imported.weights.update({k: v for k, v in source.state_dict().items()
                             if k in imported.weights})  # the same draw as `source`
    totals = archspec.analyze(imported.spec).to_dict()["totals"]
    params, buffers, macs = _source_counts(source)
    assert (totals["params"], totals["buffers"], totals["macs"]) == (params, buffers, macs)
    model = _compiled(imported)
    x = torch.randn(2, *SHAPE)
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o))
             for k, m in source.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        expected = source(x)
        mine = {}
        for k, m in model.named_modules():
            if isinstance(m, nn.Conv2d):
                m.register_forward_hook(lambda m, i, o, k=k: mine.__setitem__(k, o))
        got = model(x)
    for h in hooks:
        h.remove()
    assert set(seen) == set(mine)
    for k in seen:  # layer by layer: every convolution's output
        torch.testing.assert_close(mine[k], seen[k], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    write(imported, tmp_path / "net.arch", tmp_path / "net.safetensors")
    spec = archspec.load(str(tmp_path / "net.arch"))
    from archspec.backends.weights import read_checkpoint

    state = read_checkpoint(tmp_path / "net.safetensors", spec)
    archspec.to_torch(spec).load_state_dict(dict(state), strict=True)


def _segmenter(name: str, kwargs: dict) -> tuple:  # noqa: ANN001
    """The import of segmenter ``name`` built with ``kwargs``, the source with the imported
    weights then randomised (BN statistics, biases), the compiled spec with the source's
    weights, both in eval mode, and a scaled input."""
    from layerwise import randomise

    imported = import_model(f"torchvision.models.segmentation:{name}", {"x": SHAPE}, kwargs)
    source = getattr(torchvision.models.segmentation, name)(weights=None, **kwargs)
    source.load_state_dict(imported.weights, strict=True)
    randomise(source, torch.Generator().manual_seed(1))
    source.eval()
    model = archspec.to_torch(imported.spec).eval()
    model.load_state_dict(source.state_dict(), strict=True)
    x = 3 * torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(2))
    return imported, source, model, x


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"])
def test_segmenters_import_exactly_through_pytorch(name: str) -> None:
    """torchvision's segmentation models return ``{"out": y}`` and resize with
    ``F.interpolate`` to the input's size: the imported spec returns y; with randomised BN
    statistics and biases, every module with parameters gives the source's output at the same
    path, as does y; a perturbed weight is caught at its module (the negative control). The
    other four segmenters are swept by bench/import_sweep.py (docs/import.md)."""
    from layerwise import compare_layers, perturbed

    imported, source, model, x = _segmenter(name, {"weights_backbone": None})
    assert any("the spec returns y" in n for n in imported.graph.notes)
    compare_layers(model, source, x).assert_equal()
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x)["out"], rtol=1e-4, atol=1e-4)
    with perturbed(model) as key:
        assert key.rsplit(".", 1)[0] in compare_layers(model, source, x).differing


def test_a_dict_of_outputs_becomes_the_specs_outputs() -> None:
    """DeepLabV3 with its auxiliary head returns `{"out": y, "aux": a}`: the spec says
    `output out, aux` and the compiled module returns the same dict, every module with
    parameters equal to the source's at the same path (randomised BN statistics)."""
    from layerwise import compare_layers

    imported, source, model, x = _segmenter("deeplabv3_mobilenet_v3_large",
                                            {"weights_backbone": None, "aux_loss": True})
    assert "output out, aux" in imported.text.splitlines()
    compare_layers(model, source, x).assert_equal()
    with torch.no_grad():
        got, want = model(x), source(x)
    assert list(got) == list(want) == ["out", "aux"]
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-4)


KEYED = """import torch


class Keyed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return {"KEY": y, "c": y.relu()}
"""


@pytest.mark.parametrize("key", ["a b", "for", "train", "x", "o\\nput"])
def test_a_dict_output_whose_key_no_spec_can_name_is_a_located_error(key: str,
                                                                      tmp_path: Path) -> None:
    """Not an identifier, a word of the language, an nn.Module attribute, the input's name,
    a newline: E620, before any spec text is written."""
    path = tmp_path / "keyed.py"
    path.write_text(KEYED.replace("KEY", key))
    with pytest.raises(ArchspecError) as info:
        import_model(f"{path}:Keyed", {"x": SHAPE})
    assert info.value.diagnostics[0].code == "E620"
    assert "dict of tensors whose keys are identifiers" in info.value.diagnostics[0].render()


def tiny_vit() -> nn.Module:
    """A two-layer torchvision ViT at 32x32: class token, position embedding, attention."""
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                                num_heads=2, hidden_dim=32, mlp_dim=64,
                                                num_classes=10)


def test_learned_tensors_and_token_ops_are_lifted() -> None:
    """ViT's class token and position embedding (fx get_attr), its reshape, permute, getitem
    and attention, lifted exactly: torch's params and outputs."""
    torch.manual_seed(0)
    sys_mod = __import__("sys").modules[__name__]
    imported = import_model(f"{sys_mod.__name__}:tiny_vit", {"x": (3, 32, 32)})
    assert "class_token: class_token" in imported.text
    assert "pos_embedding: position_embedding" in imported.text
    source = tiny_vit().eval()
    source.load_state_dict(imported.weights, strict=True)
    totals = archspec.analyze(imported.spec).to_dict()["totals"]
    assert totals["params"] == sum(p.numel() for p in source.parameters())
    model = _compiled(imported)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=1e-4, atol=1e-4)


def test_resnet50_folds_like_the_hand_written_spec() -> None:
    imported = import_model("torchvision.models:resnet50", {"x": SHAPE})
    hand = _lines((ROOT / "specs/resnet50.arch").read_text())
    block = (ROOT / "specs/blocks/resnet.arch").read_text()
    bottleneck = block[block.index("block bottleneck("):block.index("# One stage")]
    ratio = _lines(imported.text) / (hand + _lines(bottleneck))
    assert ratio <= 1.5, imported.text
    assert "repeat 5 bottleneck" in imported.text
    totals = archspec.analyze(imported.spec).to_dict()["totals"]
    assert totals["params"] == sum(p.numel() for p in torchvision.models.resnet50().parameters())


@pytest.mark.parametrize("fold", [False, True])
def test_onnx_route_matches_onnxruntime(fold: bool, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    source = torchvision.models.resnet18().eval()
    path = tmp_path / "r18.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(source, (torch.randn(1, *SHAPE),), str(path), dynamo=False,
                          do_constant_folding=fold)
    imported = import_model(str(path))
    assert "repeat 2 unit" in imported.text  # folded: blocks and repeats, not flat layers
    totals = archspec.analyze(imported.spec).to_dict()["totals"]
    graph = onnx.load(str(path)).graph
    sizes = {i.name: int(torch.tensor(list(i.dims)).prod()) for i in graph.initializer}
    same = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    file_params = sum(sizes[same.get(v, v)] for n in graph.node if n.op_type in ("Conv", "Gemm")
                      for v in n.input[1:])  # the tensors each layer reads (shared ones too)
    if not fold:  # BatchNorm kept: the torch module's own counts
        params, buffers, macs = _source_counts(source)
        assert (totals["params"], totals["buffers"], totals["macs"]) == (params, buffers, macs)
    else:  # BatchNorm folded into the convolutions: the file's own initialisers
        assert "folded BatchNorm" in imported.text
        assert totals["params"] == file_params
    model = _compiled(imported)
    x = torch.randn(1, *SHAPE)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.from_numpy(expected), rtol=1e-3, atol=1e-4)


class _Odd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.odd = nn.Fold(output_size=(4, 4), kernel_size=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(self.conv(x))


def test_an_unsupported_node_is_a_located_error(tmp_path: Path) -> None:
    source = tmp_path / "odd.py"
    source.write_text("from tests_import_odd import *\n")
    import sys
    import types

    mod = types.ModuleType("tests_import_odd")
    mod.Odd = _Odd  # type: ignore[attr-defined]
    sys.modules["tests_import_odd"] = mod
    with pytest.raises(ArchspecError) as info:
        import_model("tests_import_odd:Odd", {"x": (3, 8, 8)})
    d = info.value.diagnostic
    assert d.code == "E620" and "torch.erf" in d.message and "erf" in d.message
    assert "plugin" in (d.hint or "")


def test_onnx_hostile_input_is_refused(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    loop = [helper.make_node("Relu", ["b"], ["a"], name="n1"),
            helper.make_node("Relu", ["a"], ["b"], name="n2"),
            helper.make_node("Add", ["x", "b"], ["y"], name="n3")]
    model = helper.make_model(helper.make_graph(loop, "g", [x], [y]))
    (tmp_path / "cycle.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ArchspecError, match="cycle"):
        import_model(str(tmp_path / "cycle.onnx"))
    dangling = [helper.make_node("Relu", ["nowhere"], ["y"], name="lost")]
    model = helper.make_model(helper.make_graph(dangling, "g", [x], [y]))
    (tmp_path / "dangling.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ArchspecError, match="nowhere"):
        import_model(str(tmp_path / "dangling.onnx"))
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 3, 1, 1], [0.0] * 9)
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("float_data")
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../secret.bin"
    conv = [helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv")]
    model = helper.make_model(helper.make_graph(conv, "g", [x], [y], [w]))
    (tmp_path / "escape.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ArchspecError) as info:
        import_model(str(tmp_path / "escape.onnx"))
    assert info.value.diagnostic.code == "E115"
    huge = helper.make_tensor("dims", TensorProto.INT64, [1], [2**40])  # 8 TiB if folded
    grow = [helper.make_node("ConstantOfShape", ["dims"], ["big"], name="/grow"),
            helper.make_node("Add", ["x", "big"], ["y"], name="/add")]
    model = helper.make_model(helper.make_graph(grow, "g", [x], [y], [huge]))
    (tmp_path / "grow.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ArchspecError) as info:  # refused, not computed
        import_model(str(tmp_path / "grow.onnx"))
    d = info.value.diagnostic
    assert d.code == "E620" and "ConstantOfShape" in d.message
    assert onnx is not None


def test_cli_import_check_export(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`archspec import` writes a spec and weights that `check` and `export --weights` take:
    the check's params are torchvision's, and the ONNX file, run by onnxruntime, gives the
    outputs of a torchvision resnet18 loaded with the written weights."""
    ort = pytest.importorskip("onnxruntime")
    import json

    from safetensors.torch import load_file

    from archspec.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> str:
        try:
            main(list(args))
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
        return capsys.readouterr().out

    run("import", "torchvision.models:resnet18", "-o", "r18.arch", "--weights",
        "r18.safetensors", "--input", "x=3x64x64")
    report = json.loads(run("check", "r18.arch", "--format", "json"))
    source = torchvision.models.resnet18().eval()
    assert report["totals"]["params"] == sum(p.numel() for p in source.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run("export", "r18.arch", "--weights", "r18.safetensors", "-o", "r18.onnx")
    source.load_state_dict(load_file("r18.safetensors"), strict=True)
    x = torch.randn(1, *SHAPE)
    session = ort.InferenceSession("r18.onnx", providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), source(x), rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------ windowed attention, einsum


def tiny_swin(v2: bool = False) -> nn.Module:
    """A two-stage torchvision Swin (v1 or v2) at 32x32: shifted windows, patch merging."""
    from torchvision.models import swin_transformer as swin

    extra = {"block": swin.SwinTransformerBlockV2, "downsample_layer": swin.PatchMergingV2} \
        if v2 else {}
    return swin.SwinTransformer([4, 4], 16, [2, 2], [2, 4], [4, 4], num_classes=10,
                                stochastic_depth_prob=0.0, **extra)


def tiny_swin_v2() -> nn.Module:
    return tiny_swin(v2=True)


def tiny_maxvit() -> nn.Module:
    """A two-block torchvision MaxViT at 32x32: relative attention (einsum), partitions."""
    return torchvision.models.MaxVit((32, 32), 8, 2, [16, 32], [1, 1], head_dim=8,
                                     stochastic_depth_prob=0.0, num_classes=10)


class _Einsum(nn.Module):
    """Batched einsum: ``bij,bjk->bik`` lifts; ``bij,bjk->ibk`` moves the batch."""

    def __init__(self, equation: str) -> None:
        super().__init__()
        self.equation = equation
        self.proj = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.flatten(2)  # (N, 3, 6)
        return torch.einsum(self.equation, t, self.proj(t).transpose(1, 2))


def einsum_net() -> nn.Module:
    return _Einsum("bij,bjk->bik")


def einsum_moving_batch() -> nn.Module:
    return _Einsum("bij,bjk->ibk")


def _same_draw(imported, source: nn.Module) -> None:  # noqa: ANN001
    """The imported weights replaced by ``source``'s, then loaded strictly into ``source``
    (so both hold one draw, and the keys are exactly the source's)."""
    imported.weights.update({k: v for k, v in source.state_dict().items()
                             if k in imported.weights})
    source.load_state_dict({**source.state_dict(), **imported.weights}, strict=True)
    assert set(imported.weights) == set(source.state_dict())


@pytest.mark.parametrize("builder", ["tiny_swin", "tiny_swin_v2", "tiny_maxvit", "einsum_net"])
def test_window_attention_and_einsum_are_lifted_exactly(builder: str) -> None:
    """torchvision's ShiftedWindowAttention(V2), PatchMerging(V2) and MaxViT's relative
    attention as their archspec ops (their relative-position tables and index buffers at the
    source's keys), torch.einsum as `einsum`: params and buffers equal torch's, and every
    module that owns parameters gives the source module's output at its path."""
    torch.manual_seed(0)
    shape = (3, 32, 32) if builder != "einsum_net" else (3, 2, 3)
    imported = import_model(f"{__name__}:{builder}", {"x": shape})
    source = globals()[builder]().eval()
    _same_draw(imported, source)
    totals = archspec.analyze(imported.spec).to_dict()["totals"]
    assert totals["params"] == sum(p.numel() for p in source.parameters())
    assert totals["buffers"] == sum(b.numel() for b in source.buffers())
    model = _compiled(imported)
    owners = {k for k, m in source.named_modules() if k and any(
        True for _ in m.parameters(recurse=False))}
    mine = dict(model.named_modules())
    assert owners <= set(mine), owners - set(mine)
    seen: dict[str, dict[str, torch.Tensor]] = {"source": {}, "mine": {}}
    for side, modules in (("source", dict(source.named_modules())), ("mine", mine)):
        for k in owners:
            modules[k].register_forward_hook(
                lambda m, i, o, k=k, side=side: seen[side].__setitem__(k, o.clone()))
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=1e-4, atol=1e-5)
    compared = set(seen["mine"]) & set(seen["source"])  # modules both forwards call
    attention = {k for k in owners if k.endswith(("attn", "attn_layer.1"))}
    assert attention <= compared and len(compared) > len(owners) // 2, owners - compared
    for k in compared:
        torch.testing.assert_close(seen["mine"][k], seen["source"][k], rtol=1e-4, atol=1e-5)
    if builder.startswith(("tiny_swin", "tiny_maxvit")):  # negative control: the bias table
        table = next(k for k in imported.weights if k.endswith("relative_position_bias_table")
                     or k.endswith("cpb_mlp.2.weight"))
        state = model.state_dict()
        state[table] = state[table] + 1.0 + torch.randn_like(state[table])
        model.load_state_dict(state)
        with torch.no_grad():
            assert not torch.allclose(model(x), source(x), rtol=1e-4, atol=1e-5)


def test_einsum_that_moves_the_batch_is_a_located_error() -> None:
    with pytest.raises(ArchspecError) as info:
        import_model(f"{__name__}:einsum_moving_batch", {"x": (3, 2, 3)})
    d = info.value.diagnostic
    assert d.code == "E620" and "einsum" in d.message


# ------------------------------------------------------------------ ONNX: shape arithmetic...


class _OnnxOps(nn.Module):
    """What torch's exporter writes for common layers: a LayerNorm2d (Transpose,
    LayerNormalization, Transpose), a layer scale (Mul of a parameter), a channel shuffle
    whose view sizes come from x.shape (Shape, Gather, Unsqueeze, Concat feeding a Reshape),
    split (Split), two interpolations (Resize by scales and to sizes), a Linear on tokens
    (MatMul + Add), GELU, LayerNorm, a class token (Expand + Concat), a position embedding
    (Add of a parameter), x[:, 0] (Gather) and a mean over the tokens (ReduceMean)."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.convnext import LayerNorm2d

        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = LayerNorm2d(8)
        self.layer_scale = nn.Parameter(torch.rand(8, 1, 1) + 0.5)
        self.right = nn.Conv2d(5, 5, 1)
        self.proj = nn.Linear(8, 12)
        self.ln = nn.LayerNorm(12)
        self.class_token = nn.Parameter(torch.randn(1, 1, 12))
        self.pos = nn.Parameter(torch.randn(1, 17, 12))
        self.head = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = x + self.layer_scale * self.norm(x)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        a, b = x.split([3, 5], dim=1)
        x = torch.cat([a, self.right(b)], 1)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.interpolate(x, size=(4, 4), mode="bilinear", align_corners=False)
        t = self.ln(F.gelu(self.proj(x.flatten(2).transpose(1, 2))))
        t = torch.cat([self.class_token.expand(n, -1, -1), t], dim=1) + self.pos
        return self.head(t[:, 0] + t.mean(1))  # the class token and every other token


class _BatchMover(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(0, 1)


def _export(module: nn.Module, shape: tuple[int, ...], path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.randn(1, *shape),), str(path), dynamo=False,
                          do_constant_folding=False)


def test_onnx_shape_arithmetic_split_resize_layernorm_and_bias_are_lifted(
        tmp_path: Path) -> None:
    """The exporter's nodes for common layers lift exactly: the written weights are the
    module's own state_dict (keys and values), the spec's params equal the module's, and the
    outputs equal onnxruntime's on the file; a perturbed bias (the MatMul + Add fused into
    `linear`) no longer does (negative control)."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    source = _OnnxOps().eval()
    path = tmp_path / "ops.onnx"
    _export(source, (3, 8, 8), path)
    kinds = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Shape", "Gather", "Unsqueeze", "Concat", "Split", "Resize", "MatMul",
            "LayerNormalization", "Expand", "Gelu"} <= kinds, kinds
    imported = import_model(str(path))
    for op in ("layernorm2d", "layer_scale", "slice", "upsample", "class_token",
               "position_embedding", "select", "layernorm"):
        assert op in imported.text, op
    state = source.state_dict()
    assert set(imported.weights) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(imported.weights[k], v, rtol=0, atol=0)
    totals = archspec.analyze(imported.spec).to_dict()["totals"]
    assert totals["params"] == sum(p.numel() for p in source.parameters())
    model = _compiled(imported)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 8, 8)
    (want,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.from_numpy(want), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(x), source(x), rtol=1e-4, atol=1e-5)
        model.get_submodule("proj").bias.add_(0.1)
        assert not torch.allclose(model(x), torch.from_numpy(want), rtol=1e-4, atol=1e-5)


def test_onnx_node_that_moves_the_batch_is_a_located_error(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    path = tmp_path / "mover.onnx"
    _export(_BatchMover(), (3, 4, 4), path)
    with pytest.raises(ArchspecError) as info:
        import_model(str(path))
    d = info.value.diagnostic
    assert d.code == "E620" and "Transpose" in d.message and "batch" in (d.hint or "")


def test_a_segmenters_onnx_file_imports_to_onnxruntimes_output(tmp_path: Path) -> None:
    """LR-ASPP exported by torch (its `{"out": y}` becomes the file's one output, its
    bilinear resizes `Resize` nodes): the imported spec's params and buffers are the module's
    and its output onnxruntime's, with randomised BN statistics so that no branch is a
    constant."""
    from layerwise import randomise

    ort = pytest.importorskip("onnxruntime")
    source = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None)
    randomise(source, torch.Generator().manual_seed(1))
    path = tmp_path / "lraspp.onnx"
    _export(source, SHAPE, path)
    imported = import_model(str(path))
    totals = archspec.analyze(imported.spec).to_dict()["totals"]
    assert totals["params"] == sum(p.numel() for p in source.parameters())
    x = 3 * torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(2))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        got = _compiled(imported)(x)
    scale = float(abs(expected).max())
    torch.testing.assert_close(got, torch.from_numpy(expected), rtol=1e-3, atol=1e-4 * scale)
