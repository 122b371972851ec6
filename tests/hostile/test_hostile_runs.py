"""The last leftovers of the hostile-input work: a second `train` into a run's folder replaced
its best.pt silently; a network that is not an image classifier ended in torch's raw message and
one with more outputs than classes trained without a word; a sweep bounded its variants but not
variants x layers; an inline export over an external-data export left the old `.data`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_support import CNN3, SMALL, SPECS, clean_failure, images, run_cli

import archspec
from archspec.analysis import sweep as sweeps

CNN1 = SPECS / "examples" / "cnn1.arch"
TRAIN = ["--epochs", "1", "--samples", "20", "--quiet", "--workers", "0"]
MAP = "network map\ninput x: 3x16x16\nconv2d(4, 3, padding=1)\n"
TWO = """network two
input x: 3x16x16
conv2d(4, 3, padding=1) -> relu
feat: global_avgpool2d -> flatten
logits: linear(2)(feat)
emb: linear(8)(feat)
output logits, emb
"""
DEEP = "network deep(n: int = 18000, k: int = 0)\ninput x: 8\nrepeat n {\n    relu\n}\n"


def _train(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(["train", str(CNN3), *SMALL, *TRAIN, "--out", str(out), *args], capsys)


def test_a_run_folder_is_not_replaced_without_resume_or_overwrite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _train(capsys, run)[0] == 0
    best, events = (run / "best.pt").read_bytes(), sorted(os.listdir(run / "tensorboard"))
    code, out, err = _train(capsys, run, "--seed", "1")
    clean_failure(code, err, "error[E905]", "already holds a training run", "best.pt",
                  f"--resume {run / 'last.pt'}", "--overwrite")
    assert code == 1 and "epoch 1:" not in out
    assert (run / "best.pt").read_bytes() == best
    other = tmp_path / "other.pt"
    other.write_bytes((run / "last.pt").read_bytes())
    code, _, err = _train(capsys, run, "--resume", str(other), "--epochs", "2")
    clean_failure(code, err, "error[E905]")  # a checkpoint from elsewhere is another run
    assert (run / "best.pt").read_bytes() == best
    code, out, err = _train(capsys, run, "--seed", "1", "--overwrite")
    assert code == 0, err
    assert "replacing the run" in out and (run / "best.pt").read_bytes() != best
    assert not set(events) & set(os.listdir(run / "tensorboard"))  # the old curves are gone
    code, out, err = _train(capsys, run, "--resume", str(run / "last.pt"), "--epochs", "2")
    assert code == 0 and "resumed from" in out and "epoch 2:" in out, err


@pytest.mark.parametrize(("text", "where", "says"), [
    (MAP, "net.arch:3:1", "it is [N, 4, 16, 16]"),
    (TWO, "net.arch:6:6", "output `emb` is [N, 8]"),
])
def test_train_and_eval_refuse_a_network_that_is_not_a_classifier(
        text: str, where: str, says: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "net.arch"
    spec.write_text(text)
    code, _, err = run_cli(["train", str(spec), *TRAIN, "--out", str(tmp_path / "run")],
                           capsys)
    clean_failure(code, err, f"{where}: error[E906]", says, "hint:")
    assert "target" not in err and "epoch" not in err  # not torch's cross_entropy message
    assert not (tmp_path / "run").exists()  # refused before anything is written
    weights = tmp_path / "w.pt"
    torch.save(archspec.to_torch(archspec.load(spec)).state_dict(), weights)
    code, _, err = run_cli(["eval", str(spec), "--weights", str(weights), "--samples", "20",
                            "--workers", "0"], capsys)
    clean_failure(code, err, f"{where}: error[E906]", "`archspec eval`", says)


def test_more_outputs_than_the_folder_has_classes_warn_fewer_refuse(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    images(data / "cat", 5)
    images(data / "dog", 5, (0, 0, 255))
    args = ["train", str(CNN3), "--set", "size=16", "--data", str(data), *TRAIN]
    code, _, err = run_cli([*args, "--set", "num_classes=3"], capsys)
    assert code == 0, err
    assert "cnn3.arch:11:5: warning[W901]: the network has 3 outputs but" in err
    assert "outputs 2 to 2 are never a label" in err and "--set num_classes=2" in err
    code, _, err = run_cli([*args, "--set", "num_classes=2"], capsys)
    assert code == 0 and "W901" not in err, err
    code, _, err = run_cli([*args, "--set", "num_classes=1"], capsys)
    clean_failure(code, err, "cnn3.arch:11:5: error[E907]", "has 2 classes but the network "
                  "has 1 outputs", "--set num_classes=2")


def test_a_sweep_of_too_many_layers_is_refused_after_its_first_variant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """200 variants of 18,000 layers (3.6 M) would run for minutes; 1,000 of 10 run."""
    spec = tmp_path / "deep.arch"
    spec.write_text(DEEP)
    values = "k=" + ",".join(map(str, range(200)))
    code, out, err = run_cli(["sweep", str(spec), "--set", values], capsys)
    clean_failure(code, err, "deep.arch:1:9: error[E710]", "about 3,600,000 layers",
                  "200 variants, variant 1 of 18,000 layers", "at most 2,000,000", "hint:")
    assert out == ""
    code, out, err = run_cli(["sweep", str(spec), "--set", "n=10", "--set",
                              "k=" + ",".join(map(str, range(1000))), "--format", "csv"],
                             capsys)
    assert code == 0 and len(out.splitlines()) == 1001, err


def test_a_larger_variant_stops_the_sweep_at_the_bound(monkeypatch) -> None:
    """The bound is exact (the layers done plus the rest at the latest variant's size), and a
    deeper variant later in the sweep is caught when it comes, not only the first."""
    spec = archspec.loads(DEEP)
    monkeypatch.setattr(sweeps, "MAX_SWEEP_LAYERS", 2_000)
    assert len(sweeps.sweep(spec, {"n": [10], "k": list(range(200))})) == 200
    with pytest.raises(archspec.ArchspecError) as info:
        sweeps.sweep(spec, {"n": [10], "k": list(range(201))})
    assert info.value.diagnostic.code == "E710" and "2,010 layers" in str(info.value)
    with pytest.raises(archspec.ArchspecError) as info:
        sweeps.sweep(spec, {"n": [1, 100], "k": list(range(20))})
    assert "variant 21 of 100 layers" in str(info.value)  # 20 done, then 20 x 100


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_an_inline_export_removes_the_old_exports_data_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = archspec.to_torch(archspec.load(CNN1)).eval()
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    out, data = tmp_path / "m.onnx", tmp_path / "m.onnx.data"
    export = ["export", str(CNN1), "--weights", str(weights), "-o", str(out)]
    assert run_cli([*export, "--external-data"], capsys)[0] == 0 and data.exists()
    code, _, err = run_cli(export, capsys)
    assert code == 0 and "removed" in err and sorted(os.listdir(tmp_path)) == ["m.onnx", "w.pt"]
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run_onnx(out, x), expected, rtol=1e-4, atol=1e-5)
    data.write_bytes(b"a file of the user's, no export reads it")
    assert run_cli(export, capsys)[0] == 0
    assert data.read_bytes().startswith(b"a file of the user's")


def test_a_failed_inline_export_keeps_the_old_model_and_its_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from archspec.backends import onnx_file

    out, data = tmp_path / "m.onnx", tmp_path / "m.onnx.data"
    assert run_cli(["export", str(CNN1), "-o", str(out), "--external-data"], capsys)[0] == 0
    before = out.read_bytes(), data.read_bytes()

    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx_file, "_write_array", disk_full)
    code, _, err = run_cli(["export", str(CNN1), "-o", str(out)], capsys)
    clean_failure(code, err, "No space left on device")
    assert (out.read_bytes(), data.read_bytes()) == before
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]


def test_int8_calibration_refuses_a_network_it_cannot_feed_and_calibrates_a_map(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`export --quantize int8` feeds calibration images: a spec with two inputs is a located
    E906 (it was an unlocated RuntimeError), and a network whose output is a map (no class
    count) calibrates on the built-in images of every shape kind."""
    spec = tmp_path / "net.arch"
    spec.write_text("network pair\ninput a: 3x8x8\ninput b: 3x8x8\ny = add(a, b)\n")
    code, _, err = run_cli(["export", str(spec), "--quantize", "int8", "-o",
                            str(tmp_path / "m.onnx")], capsys)
    clean_failure(code, err, "net.arch:1:9: error[E906]", "`export --quantize int8` needs")
    assert not (tmp_path / "m.onnx").exists()
    spec.write_text(MAP)
    code, _, err = run_cli(["export", str(spec), "--quantize", "int8", "--calibration-samples",
                            "16", "-o", str(tmp_path / "m.onnx")], capsys)
    assert code == 0, err
    assert (tmp_path / "m.onnx").exists()
