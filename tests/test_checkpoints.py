"""Checkpoints from strangers: every malformed or unsafe weights file is a clear, located error
(exit 1) naming the file, and the key when one entry is wrong; torch's advice to load with
`weights_only=False` is never repeated. Floating weights of another precision are converted."""

from __future__ import annotations

import os
import time
from pathlib import Path

import onnx
import pytest
import torch
from test_errors import run_cli

SPEC = """network tiny
input x: 3x8x8
conv: conv2d(4, 3)
bn: batchnorm2d
flatten
fc: linear(2)
"""


class Payload:
    """A pickled object whose loading would run code."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def _state() -> dict[str, torch.Tensor]:
    import archspec

    return archspec.to_torch(archspec.loads(SPEC)).state_dict()


def _export(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC)
    code, out, err = run_cli(["export", str(spec), "-o", str(tmp_path / "m.onnx"),
                              "--weights", str(weights)], capsys)
    return code, out + err


def _save(tmp_path: Path, obj: object) -> Path:
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    return path


def _changed(key: str, value: object) -> dict[str, object]:
    state: dict[str, object] = dict(_state())
    state[key] = value
    return state


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = _save(tmp_path, _state())
    data = good.read_bytes()
    files = {"empty": b"", "truncated": data[: len(data) // 2], "text": b"not a checkpoint\n"}
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.pt"
        paths[name].write_bytes(content)
    torch.save({"conv.weight": Payload()}, tmp_path / "code.pt")
    paths["pickled code"] = tmp_path / "code.pt"
    torch.save([1, 2, 3], tmp_path / "list.pt")
    paths["not a mapping"] = tmp_path / "list.pt"
    return paths


@pytest.mark.parametrize("case, reason", [
    ("empty", "the file is empty"),
    ("truncated", "it is truncated or not a torch.save file"),
    ("text", "it is truncated or not a torch.save file"),
    ("pickled code", "it holds Python objects (posix.system)"),
    ("not a mapping", "it holds a list, not a mapping"),
])
def test_unreadable_files_are_located_errors(case, reason, tmp_path, capsys) -> None:
    path = _bad_files(tmp_path)[case]
    code, text = _export(tmp_path, path, capsys)
    assert code == 1, text
    assert "internal error" not in text and "weights_only" not in text and "pwned" not in text
    assert f"tiny.arch:1:9: error[E611]: cannot read the weights {path}: {reason}" in text
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("key, value, message, line", [
    ("conv.weight", 3, "`conv.weight` is a int, not a tensor", 3),
    ("fc.bias", "x", "`fc.bias` is a str, not a tensor", 6),
    ("conv.weight", torch.empty(4, 3, 3, 3, device="meta"), "is a meta tensor", 3),
    ("fc.weight", torch.zeros(2, 256).to_sparse(), "(sparse) tensor, not a dense one", 6),
    ("fc.bias", torch.quantize_per_tensor(torch.zeros(2), 0.1, 0, torch.qint8),
     "is a quantized tensor", 6),
    ("conv.weight", torch.zeros(4, 3, 3, 3, dtype=torch.int64),
     "`conv.weight` holds int64 values, this layer needs float32", 3),
    ("bn.weight", torch.ones(4, dtype=torch.bool), "holds bool values", 4),
    ("fc.bias", torch.zeros(2, dtype=torch.complex64), "holds complex64 values", 6),
])
def test_bad_entries_name_the_key_at_its_layer(key, value, message, line, tmp_path,
                                               capsys) -> None:
    code, text = _export(tmp_path, _save(tmp_path, _changed(key, value)), capsys)
    assert code == 1, text
    assert "internal error" not in text and "weights_only" not in text
    assert f"tiny.arch:{line}:" in text and "error[E612]" in text, text
    assert message in text and "w.pt" in text
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_other_float_precisions_are_converted(dtype, tmp_path, capsys) -> None:
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in _state().items()}
    code, text = _export(tmp_path, _save(tmp_path, {"state_dict": state}), capsys)
    assert code == 0, text
    model = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT}


def _train(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC.replace("linear(2)", "linear(num_classes)").replace(
        "network tiny", "network tiny(num_classes: int = 4)"))
    code, out, err = run_cli(["train", str(spec), "--samples", "20", "--epochs", "1",
                              "--batch-size", "10", "--quiet", "--device", "cpu", *extra], capsys)
    return code, out + err


@pytest.mark.parametrize("case", ["empty", "truncated", "pickled code", "not a mapping"])
def test_resume_from_a_bad_file_is_a_located_error(case, tmp_path, capsys) -> None:
    path = _bad_files(tmp_path)[case]
    code, text = _train(tmp_path, capsys, "--resume", str(path))
    assert code == 1, text
    assert "internal error" not in text and "weights_only" not in text
    assert "error[E611]" in text and str(path) in text
    assert "epoch 1" not in text


def test_resume_with_a_wrong_entry_names_the_key(tmp_path, capsys) -> None:
    code, text = _train(tmp_path, capsys, "--out", str(tmp_path / "run"))
    assert code == 0, text
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    ckpt["state_dict"]["conv.weight"] = torch.zeros(4, 3, 3, 3, dtype=torch.int64)
    torch.save(ckpt, tmp_path / "bad.pt")
    code, text = _train(tmp_path, capsys, "--resume", str(tmp_path / "bad.pt"))
    assert code == 1, text
    assert "error[E612]" in text and "`conv.weight` holds int64" in text


def test_unwritable_out_fails_before_training(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    start = time.perf_counter()
    code, text = _train(tmp_path, capsys, "--out", str(blocker / "run"))
    assert code == 1, text
    assert "epoch 1" not in text and "internal error" not in text
    assert str(blocker / "run") in text
    assert time.perf_counter() - start < 30


def test_a_train_checkpoints_class_names_go_into_the_onnx_metadata(tmp_path, capsys) -> None:
    """Exported from an `archspec train` checkpoint, the model names its outputs' classes
    (metadata_props `classes`, a JSON list in output order); a plain state_dict adds none."""
    import json

    names = ["tabby cat", "dog, small"]
    code, text = _export(tmp_path, _save(tmp_path, {"state_dict": _state(), "classes": names}),
                         capsys)
    assert code == 0, text
    props = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert json.loads(props["classes"]) == names
    code, text = _export(tmp_path, _save(tmp_path, _state()), capsys)
    assert code == 0, text
    assert "classes" not in {p.key for p in onnx.load(tmp_path / "m.onnx").metadata_props}


def test_a_checkpoint_whose_classes_are_not_names_is_refused(tmp_path, capsys) -> None:
    code, text = _export(tmp_path, _save(tmp_path, {"state_dict": _state(), "classes": [1, 2]}),
                         capsys)
    assert code == 1 and "error[E611]" in text and "`classes` entry" in text, text
    assert not (tmp_path / "m.onnx").exists()


COMPOSITE = """network composite
input x: 4x4x8
attn: shifted_window_attention_v2(2, 2, 0)
"""


@pytest.mark.parametrize("change", ["missing", "wrong shape"])
def test_an_entry_inside_a_composite_op_is_located_at_it(change, tmp_path, capsys) -> None:
    """Window attention v2 holds its own modules (`attn.cpb_mlp.0.weight`): an entry of one
    missing or of another shape is E610 at the `attn` line, not an internal error."""
    import archspec

    state = archspec.to_torch(archspec.loads(COMPOSITE)).state_dict()
    key = "attn.cpb_mlp.0.weight"
    if change == "missing":
        del state[key]
    else:
        state[key] = torch.zeros(3, 3)
    spec = tmp_path / "composite.arch"
    spec.write_text(COMPOSITE)
    code, out, err = run_cli(["export", str(spec), "-o", str(tmp_path / "m.onnx"),
                              "--weights", str(_save(tmp_path, state))], capsys)
    text = out + err
    assert code == 1, text
    assert "internal error" not in text and "error[E610]" in text
    assert f"composite.arch:3:7: note: `{key}`" in text
