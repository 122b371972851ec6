"""ONNX export: checker, shape inference against static analysis, onnxruntime against torch
and torchvision, determinism, metadata and weight errors."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchvision
from conftest import ROOT, RUN_SPECS, SPECS, spec_id
from hypothesis import given, settings
from hypothesis import strategies as st
from test_errors import run_cli

import archspec
from archspec.backends.onnx import to_onnx


def _assert_close(got: np.ndarray, model: torch.nn.Module, inputs: list[torch.Tensor],
                  index: int = 0) -> None:
    """onnxruntime agrees with torch to 1e-4 (relative to the output's scale), or, where
    float32 itself is less exact than that (ResNet-101's logits move by ~2e-4 between float32
    and float64 in torch too), onnxruntime is within twice torch's own float32 error of the
    float64 result."""
    def run(dtype: torch.dtype) -> np.ndarray:
        with torch.no_grad():
            out = model.to(dtype)(*[x.to(dtype) for x in inputs])
        out = list(out.values())[index] if isinstance(out, dict) else out
        return out.double().numpy()

    want = run(torch.float32)
    scale = max(1.0, float(np.abs(want).max()))
    if float(np.abs(got - want).max()) <= 1e-4 * scale:
        return
    exact = run(torch.float64)
    model.float()
    assert np.abs(got - exact).max() <= 2 * np.abs(want - exact).max()


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _calibrated(spec: archspec.Spec, graph: archspec.lang.network.Graph) -> torch.nn.Module:
    """The compiled spec with BatchNorm running statistics from one batch of random input, so
    that activations keep a sane scale through deep freshly initialised networks (as in a
    trained one) and a 1e-4 tolerance means something."""
    torch.manual_seed(0)
    model = archspec.to_torch(spec)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    with torch.no_grad():
        model.train()(*[torch.randn(8, *s) for s in graph.inputs.values()])
    return model.eval()


@pytest.mark.parametrize("path", RUN_SPECS, ids=spec_id)
def test_every_spec_exports_checks_infers_and_matches_torch(path) -> None:
    spec = archspec.load(path)
    graph = archspec.expand(spec)
    model = _calibrated(spec, graph)
    exported = to_onnx(spec, weights=model.state_dict())
    onnx.checker.check_model(exported, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(exported, strict_mode=True)
    shapes = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
              for v in (*inferred.graph.value_info, *inferred.graph.output)}
    for node in graph:
        assert shapes[node.id] == ["batch", *node.shape], node.id
    session = _session(exported)
    for batch in (1, 3):
        feeds = {k: torch.randn(batch, *s) for k, s in graph.inputs.items()}
        got = session.run(None, {k: v.numpy() for k, v in feeds.items()})
        for i, g in enumerate(got):
            _assert_close(g, model, list(feeds.values()), i)


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet121"])
def test_torchvision_weights_file_gives_torchvision_logits(name, tmp_path) -> None:
    """The CLI path: a torchvision state_dict saved to a file, exported at 224x224 (every
    family's smallest model is exported with its weights in test_zoo_full.py)."""
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    torch.manual_seed(2)
    reference = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    weights = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), weights)
    out = tmp_path / f"{name}.onnx"
    archspec.export_onnx(archspec.load(SPECS / f"{name}.arch"), out, weights=weights)
    x = torch.randn(1, 3, 224, 224)
    got = _session(onnx.load(out)).run(None, {"x": x.numpy()})[0]
    _assert_close(got, reference, [x])


def test_export_is_deterministic_and_named_like_the_spec(tmp_path) -> None:
    spec = archspec.load(SPECS / "resnet18.arch")
    torch.manual_seed(0)
    state = archspec.to_torch(spec).state_dict()
    a, b = (to_onnx(spec, weights=state).SerializeToString() for _ in range(2))
    assert a == b
    model = onnx.load_from_string(a)
    names = {n.name for n in model.graph.node}
    assert {"conv1", "layer1.0.conv1", "layer2.0.downsample.0", "fc"} <= names
    assert {i.name for i in model.graph.initializer} >= {"layer1.0.conv1.weight", "fc.bias"}
    assert model.graph.input[0].name == "x"
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["spec_name"] == "resnet18" and meta["params"] == "11689512"
    assert meta["macs"] == "1814073344" and len(meta["spec_sha256"]) == 64
    assert "archspec_version" in meta and "ResNet-18" in model.graph.doc_string


def test_fixed_batch_and_fp16(tmp_path) -> None:
    spec = archspec.load(SPECS / "examples" / "cnn1.arch", size=32)
    fixed = to_onnx(spec, batch=4)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    half = to_onnx(spec, fp16=True)
    onnx.checker.check_model(half, full_check=True)
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    out = _session(half).run(None, {"x": np.random.rand(2, 3, 32, 32).astype(np.float16)})[0]
    assert out.shape == (2, 4) and out.dtype == np.float16


def test_weights_that_do_not_fit_list_the_differences(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    weights = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), weights)
    code, _, err = run_cli(["export", "specs/resnet18.arch", "-o", str(tmp_path / "m.onnx"),
                            "--weights", str(weights)], capsys)
    assert code == 1 and "Traceback" not in err
    assert "resnet18.arch:" in err.splitlines()[0] and "2 wrong-shape entries" in err
    assert "`fc.weight` is [10, 512], this layer needs [1000, 512]" in err
    code, _, err = run_cli(["export", "specs/resnet18.arch", "-o", str(tmp_path / "m.onnx"),
                            "--weights", str(weights), "--set", "num_classes=10"], capsys)
    assert code == 0


def test_train_checkpoint_exports(tmp_path, capsys) -> None:
    spec = str(SPECS / "examples" / "cnn3.arch")
    assert run_cli(["train", spec, "--set", "size=16", "--samples", "100", "--epochs", "1",
                    "--out", str(tmp_path), "--quiet", "--workers", "0"], capsys)[0] == 0
    code, _, err = run_cli(["export", spec, "--set", "size=16", "--weights",
                            str(tmp_path / "last.pt"), "-o", str(tmp_path / "m.onnx")], capsys)
    assert code == 0, err
    onnx.checker.check_model(onnx.load(tmp_path / "m.onnx"), full_check=True)


def test_uneven_adaptive_pool_is_a_located_error() -> None:
    spec = archspec.loads("network t\ninput x: 3x10x10\np: adaptive_avgpool2d(3)\n")
    with pytest.raises(archspec.ArchspecError) as info:
        to_onnx(spec)
    d = info.value.diagnostic
    assert d.code == "E602" and d.span.line == 3 and "uneven" in d.message


def test_bench_command_reports_both_runtimes(capsys, monkeypatch) -> None:
    import os

    monkeypatch.chdir(ROOT)
    before = os.sched_getaffinity(0)
    code, out, _ = run_cli(["bench", "specs/examples/cnn3.arch", "--set", "size=32",
                            "--runs", "3", "--threads", "1", "--warmup", "2"], capsys)
    assert code == 0
    assert "torch eager (cpu)" in out and "onnxruntime (CPUExecutionProvider)" in out
    first = min(before)
    assert f"1 threads, pinned to cores [{first}]; 2 warm-up runs" in out
    assert out.count("spread") == 2
    assert os.sched_getaffinity(0) == before  # the pin ends with the command


# One spec per new layer kind (or form): (body, input shapes, opsets to export at).
OP_SPECS = [
    ("y: relu6 -> hardswish -> hardsigmoid -> stochastic_depth(0.3)", [(3, 5, 5)], (13, 17)),
    ("y: groupnorm(2) -> groupnorm(4, eps=0.01, affine=false)", [(4, 3, 5)], (17, 21)),
    ("y: groupnorm(3)", [(6,)], (13, 21)),
    ("y: conv_transpose1d(4, 3, stride=2, output_padding=1)", [(3, 6)], (17,)),
    ("y: conv_transpose2d(6, (3, 2), stride=2, padding=1, groups=3, dilation=2)", [(3, 5, 4)],
     (17,)),
    ("y: conv_transpose3d(2, 2, stride=2, bias=false)", [(2, 2, 3, 3)], (17,)),
    # conv2d, conv3d and batchnorm2d on leading per-sample dims: Reshape, Conv / BatchNormalization,
    # Reshape
    ("y: conv2d(6, 3, stride=2, padding=1, groups=2) -> batchnorm2d -> "
     "conv2d(4, 3, padding=1, padding_mode=\"reflect\", bias=false) -> batchnorm2d(eps=0.001)",
     [(3, 2, 4, 9, 9)], (13, 17)),
    ("y: conv3d(4, 3, stride=(1, 2, 2), padding=1, groups=4, bias=false)", [(2, 4, 3, 6, 6)],
     (13, 17)),
    ("y: upsample(2)", [(2, 3, 4)], (13, 17)),
    ("y: upsample(size=(7, 3))", [(2, 5, 7)], (17,)),
    ("y: upsample((2, 3), mode=\"bilinear\")", [(2, 4, 5)], (17,)),
    ("y: upsample(size=(7, 9), mode=\"bilinear\", align_corners=true)", [(2, 4, 5)], (17,)),
    ("y: upsample(size=(3, 2), mode=\"bilinear\", align_corners=false)", [(2, 7, 5)], (17,)),
    ("y: upsample(2, mode=\"bicubic\")", [(2, 4, 5)], (17,)),
    ("y: upsample(3, mode=\"linear\", align_corners=true)", [(2, 5)], (17,)),
    ("y: upsample(2, mode=\"trilinear\")", [(2, 3, 2, 3)], (17,)),
    ("y: interpolate(size=(9, 4), mode=\"nearest-exact\")", [(2, 5, 6)], (17,)),
    ("y = upsample(mode=\"bilinear\")(x, r)", [(2, 4, 5), (1, 9, 11)], (13, 17)),
    ("y = upsample(mode=\"bilinear\", align_corners=true)(x, r)", [(2, 4, 5), (1, 7, 3)], (17,)),
    ("y = upsample()(x, r)", [(2, 4, 5), (1, 8, 10)], (17,)),
    ("y = center_crop(x, r)", [(2, 9, 8), (1, 4, 5)], (17,)),
    ("y: center_crop(size=(2, 3))", [(2, 5, 6)], (17,)),
    ("y: channel_shuffle(3)", [(6, 2, 3)], (13,)),
    ("y: mean([1, 2]) -> mean(0, keepdim=true)", [(3, 4, 5)], (17, 18)),
    ("y: slice(1, 1, -1, 2) -> select(0, -1) -> slice(-1, 2)", [(4, 7, 5)], (17,)),
    ("output p, q, r\np, q, r = split([1, 2, 3])(x)", [(6, 2)], (17,)),
    ("output p, q\np, q = chunk(2, dim=-1)(x)", [(2, 3, 5)], (17,)),
    ("y = mul(x, r)", [(3, 1, 1), (3, 4, 4)], (17,)),
    ("y = mul(x, r, x)", [(2, 1), (2, 3)], (17,)),
    ("y: linear(5) -> linear(3, bias=false) -> layernorm -> layernorm(affine=false)",
     [(2, 4, 7)], (17,)),
    ("y: layernorm2d(eps=0.000001) -> layer_scale(0.5) -> permute([1, 2, 0]) -> transpose(0, 1)"
     " -> reshape([12, -1])", [(6, 3, 4)], (17,)),
    ("y: class_token -> position_embedding -> mhsa(2) -> mhsa(4, bias=false)", [(5, 8)],
     (17, 21)),
    # tensor primitives: element-wise arithmetic, activations, reductions (axes an attribute
    # up to opset 17, an input from 18)
    ("y: abs -> shift(0.5) -> log -> exp -> sqrt -> rsqrt -> reciprocal -> pow(1.5) -> neg -> "
     "scale(2.0) -> pow(3.0) -> clamp(min=-3.0) -> clamp(max=-0.5) -> clamp(-2.0, -1.0)",
     [(3, 4, 5)], (13, 17)),
    ("output w, v\ns = abs()(r) -> shift(1.0)\nd = sub(x, r)\nq = div(d, s)\n"
     "w = maximum(q, x)\nv = minimum(r, q)", [(3, 4, 5), (3, 1, 1)], (13, 17)),
    ("y: mish -> elu(0.5) -> selu -> softplus(2.0, 1.0) -> softplus -> hardtanh(-2.0, 1.5) -> "
     "quick_gelu -> prelu(3, 0.1) -> prelu", [(3, 4, 5)], (13, 17, 18)),
    ("y: prelu(6) -> softplus(0.5, 3.0)", [(6,)], (13,)),
    ("y: sum([1, 2], keepdim=true) -> amax(-1, true) -> amin(0) -> sum(0)", [(3, 4, 5)],
     (13, 17, 18)),
    ("y: var([1, 2]) -> std(0, correction=0, keepdim=true)", [(3, 4, 5)], (13, 18)),
    ("y: var(0, 2, true) -> std([1, 2])", [(4, 3, 5)], (17, 18)),
    ("y: norm(1, [1, 2], true) -> norm(\"inf\", -1, true) -> norm(dims=0)", [(3, 4, 5)],
     (13, 18)),
    ("y: normalize -> normalize(1.0, 0) -> normalize(3.0, 1, 0.001) -> normalize(\"inf\", 0)",
     [(3, 4, 5)], (13, 18)),
    # tensor primitives: products of activations (ops/linalg.py), data movement (movement.py)
    ("output y, z\ny = matmul(x, r)\nz = matmul(r, x)", [(2, 4, 4), (1, 4, 4)], (13, 17)),
    ("output y, z\ny = einsum(\"hld,hsd->hls\")(x, r)\nz = einsum(\"hij,hjk,hkl->hil\")(x, r, x)",
     [(2, 4, 4), (2, 4, 4)], (13, 17)),
    ("output y, z\ny = einsum(\"ij,kl->ijkl\")(x, r)\nz = einsum(\"ij,jk->k\")(x, r)",
     [(3, 4), (4, 5)], (13,)),
    ("output y, c, m, d\nq = linear(8)(x) -> reshape([5, 2, 4]) -> permute([1, 0, 2])\n"
     "k = linear(8)(r) -> reshape([6, 2, -1]) -> transpose(0, 1)\n"
     "v = linear(6)(r) -> reshape([6, 2, 3]) -> permute([1, 0, 2])\n"
     "y = scaled_dot_product_attention(q, k, v)\n"
     "c = scaled_dot_product_attention(q, k, v, causal=true, scale=0.5)\n"
     "kt = transpose(-1, -2)(k)\ns = matmul(q, kt)\nm = scaled_dot_product_attention(q, k, v, s)\n"
     "d = scaled_dot_product_attention(q, k, v, dropout=0.2)",
     [(5, 8), (6, 8)], (13, 17)),
    ("y: pad([1, 2, 3, 0], \"reflect\") -> pad([1, 1, 1, 1], \"replicate\") -> "
     "pad([2, 1, 0, 3], mode=\"circular\") -> pad([1, 0], value=0.5) -> roll([1, -2], [0, -1])"
     " -> pixel_unshuffle(2) -> pixel_shuffle(2) -> tile([1, 2])", [(2, 4, 5)], (13, 17)),
    ("y = stack(x, r, dim=-1) -> reshape([2, 3, 1, 2]) -> expand([-1, -1, 4, -1]) -> tile(2)",
     [(2, 3), (2, 3)], (13, 17)),
]


@pytest.mark.parametrize(("body", "shapes", "opsets"), OP_SPECS, ids=[b for b, _, _ in OP_SPECS])
def test_new_ops_export_and_match_torch(body: str, shapes: list[tuple[int, ...]],
                                        opsets: tuple[int, ...]) -> None:
    """Each layer kind's ONNX rule: valid model, ONNX shape inference agrees with archspec,
    onnxruntime agrees with the compiled torch module at every opset and at two batch sizes."""
    inputs = "".join(f"input {n}: [{', '.join(map(str, s))}]\n" for n, s in zip("xr", shapes))
    spec = archspec.loads(f"network t\n{inputs}{body}\n")
    graph = archspec.expand(spec)
    model = _calibrated(spec, graph)
    for opset in opsets:
        exported = to_onnx(spec, weights=model.state_dict(), opset=opset)
        onnx.checker.check_model(exported, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(exported, strict_mode=True, data_prop=True)
        shapes_of = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
                     for v in (*inferred.graph.value_info, *inferred.graph.output)}
        for node in graph:
            assert shapes_of[node.id] == ["batch", *node.shape], (opset, node.id)
        session = _session(exported)
        for batch in (1, 3):
            feeds = {k: torch.randn(batch, *s) for k, s in graph.inputs.items()}
            got = session.run(None, {k: v.numpy() for k, v in feeds.items()})
            for i, g in enumerate(got):
                _assert_close(g, model, list(feeds.values()), i)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), out_h=st.integers(1, 17),
       out_w=st.integers(1, 17), mode=st.sampled_from([
           ("nearest", ""), ("nearest-exact", ""), ("bilinear", "true"), ("bilinear", "false"),
           ("bicubic", "true"), ("bicubic", "false")]))
def test_random_resizes_match_onnxruntime(h, w, out_h, out_w, mode) -> None:
    """Resize reproduces torch's sampling at any size ratio, up or down."""
    name, corners = mode
    flag = f", align_corners={corners}" if corners else ""
    spec = archspec.loads(f"network t\ninput x: [2, {h}, {w}]\n"
                          f"y: upsample(size=({out_h}, {out_w}), mode=\"{name}\"{flag})\n")
    x = torch.randn(1, 2, h, w)
    got = _session(to_onnx(spec)).run(None, {"x": x.numpy()})[0]
    _assert_close(got, archspec.to_torch(spec), [x])


def test_an_op_below_its_minimum_opset_is_a_located_error(monkeypatch) -> None:
    """Each op states the lowest opset its ONNX rule supports; asking for less is an error at
    the layer, not an invalid file."""
    import dataclasses

    from archspec.ops import REGISTRY

    monkeypatch.setitem(REGISTRY, "hardswish", dataclasses.replace(REGISTRY["hardswish"],
                                                                   min_opset=14))
    spec = archspec.loads("network t\ninput x: 4x8x8\nconv2d(4, 3)\nact: hardswish\n")
    with pytest.raises(archspec.ArchspecError) as info:
        to_onnx(spec, opset=13)
    diag = info.value.diagnostic
    assert diag.code == "E603" and diag.span.line == 4 and "opset 14" in diag.message
    assert to_onnx(spec, opset=14).opset_import[0].version == 14


@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("shape", [(6,), (4, 3, 5), (8, 2, 3, 4)])
def test_groupnorm_matches_torch_to_1e_5(opset: int, shape: tuple[int, ...]) -> None:
    """InstanceNormalization-based lowering (opset 13) and GroupNormalization-21 alike, with
    non-trivial scale and shift, on inputs away from zero mean and unit variance."""
    spec = archspec.loads(f"network t\ninput x: [{', '.join(map(str, shape))}]\n"
                          "y: groupnorm(2, eps=0.001)\n")
    torch.manual_seed(0)
    model = archspec.to_torch(spec).eval()
    torch.nn.init.normal_(model.y.weight)
    torch.nn.init.normal_(model.y.bias)
    x = torch.randn(3, *shape) * 5 + 2
    got = _session(to_onnx(spec, weights=model.state_dict(), opset=opset)).run(
        None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), atol=1e-5, rtol=0)
