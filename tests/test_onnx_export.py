"""ONNX files as export writes them: weights streamed into the protobuf, ONNX external data,
and int8 quantisation, each read back by onnx and onnxruntime and compared with torch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from conftest import SPECS
from test_errors import run_cli

import archspec
from archspec.backends.onnx import to_onnx

WIDE = """
network wide(width: int = 512)
input x: [64]
fc1: linear(width) -> relu
fc2: linear(width) -> relu
fc3: linear(10)
"""


def _torch_logits(spec: archspec.Spec, state: dict, x: np.ndarray) -> np.ndarray:
    model = archspec.to_torch(spec).eval()
    model.load_state_dict(state)
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_streamed_file_is_the_in_memory_model_and_runs_like_torch(tmp_path) -> None:
    """The file's second `graph` field merges into the first: onnx parses it to exactly the
    model to_onnx builds in memory, and onnxruntime's logits equal torch's."""
    spec = archspec.load(SPECS / "examples" / "cnn3.arch", size=16)
    torch.manual_seed(0)
    state = archspec.to_torch(spec).state_dict()
    torch.save(state, tmp_path / "w.pt")
    archspec.export_onnx(spec, tmp_path / "m.onnx", weights=tmp_path / "w.pt")
    loaded = onnx.load(tmp_path / "m.onnx")
    assert loaded.SerializeToString() == to_onnx(spec, state).SerializeToString()
    onnx.checker.check_model(str(tmp_path / "m.onnx"), full_check=True)
    x = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, _torch_logits(spec, state, x), rtol=1e-4, atol=1e-5)


def test_external_data_above_the_threshold(tmp_path, capsys) -> None:
    """A wide network over a (lowered) threshold: a small .onnx plus .onnx.data, checked by
    path, run by onnxruntime from the path, equal to torch; the CLI's --external-data too."""
    spec = archspec.loads(WIDE)
    torch.manual_seed(1)
    state = archspec.to_torch(spec).state_dict()
    path = tmp_path / "wide.onnx"
    nbytes = sum(v.numel() * 4 for v in state.values())
    from archspec.backends.onnx import export_onnx

    export_onnx(spec, path, weights=state, external_above=nbytes // 2)
    data = tmp_path / "wide.onnx.data"
    assert data.stat().st_size >= nbytes and path.stat().st_size < 10_000
    onnx.checker.check_model(str(path), full_check=True)
    x = np.random.default_rng(1).random((3, 64), dtype=np.float32)
    got = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, _torch_logits(spec, state, x), rtol=1e-4, atol=1e-5)
    export_onnx(spec, tmp_path / "inline.onnx", weights=state)
    assert not (tmp_path / "inline.onnx.data").exists()
    (tmp_path / "wide.arch").write_text(WIDE)
    code, _, err = run_cli(["export", str(tmp_path / "wide.arch"), "-o",
                            str(tmp_path / "cli.onnx"), "--external-data"], capsys)
    assert code == 0 and "cli.onnx.data" in err, err
    onnx.checker.check_model(str(tmp_path / "cli.onnx"), full_check=True)


def test_int8_quantisation_is_qdq_per_channel_and_reported(tmp_path, capsys) -> None:
    spec_path = str(SPECS / "examples" / "cnn3.arch")
    out = tmp_path / "q.onnx"
    code, stdout, err = run_cli(["export", spec_path, "--set", "size=16", "-o", str(out),
                                 "--quantize", "int8", "--calibration-samples", "40"], capsys)
    assert code == 0, err
    model = onnx.load(out)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    weights = {t.name: t for t in model.graph.initializer}
    assert any(t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4
               for t in weights.values())
    scales = [t for t in weights.values() if t.name.endswith("_scale") and len(t.dims) == 1
              and t.dims[0] > 1]
    assert scales, "per-channel weight scales"
    assert f"int8 {out.stat().st_size / 1e6:.2f} MB" in stdout
    assert "top-1 agreement with the float model" in stdout and "on 10 held-out" in stdout
    x = np.random.default_rng(2).random((4, 3, 16, 16), dtype=np.float32)
    assert ort.InferenceSession(str(out)).run(None, {"x": x})[0].shape == (4, 4)


def test_fp16_export_agrees_with_float32_torch() -> None:
    """The documented --fp16 check: float16 logits within 1% of the float32 logits' scale of
    torch's, with the same top-1 class."""
    spec = archspec.load(SPECS / "examples" / "cnn3.arch", size=16)
    torch.manual_seed(3)
    state = archspec.to_torch(spec).state_dict()
    half = to_onnx(spec, state, fp16=True)
    onnx.checker.check_model(half, full_check=True)
    x = np.random.default_rng(3).random((8, 3, 16, 16), dtype=np.float32)
    got = ort.InferenceSession(half.SerializeToString()).run(
        None, {"x": x.astype(np.float16)})[0]
    assert got.dtype == np.float16
    want = _torch_logits(spec, state, x)
    assert np.abs(got.astype(np.float32) - want).max() <= 0.01 * np.abs(want).max()
    assert (got.argmax(1) == want.argmax(1)).all()


def test_int8_calibrated_on_an_image_folder(tmp_path, capsys) -> None:
    from PIL import Image

    for k in range(2):
        (tmp_path / "data" / f"c{k}").mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (20, 18), (40 * i, 200 * k, 90)).save(
                tmp_path / "data" / f"c{k}" / f"{i}.png")
    code, stdout, err = run_cli(["export", str(SPECS / "examples" / "cnn3.arch"), "--set",
                                 "size=16", "-o", str(tmp_path / "q.onnx"), "--quantize", "int8",
                                 "--calibrate", str(tmp_path / "data")], capsys)
    assert code == 0, err
    assert "on 3 held-out images (7 calibrated)" in stdout
