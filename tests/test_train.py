"""`archspec train`: learning on the built-in data, checkpoints, resume, image folders, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from conftest import ROOT, SPECS
from test_errors import run_cli


def _train(capsys, *args: str) -> tuple[int, str]:
    code, _, err = run_cli(["train", *args, "--quiet"], capsys)
    return code, err


def test_lenet5_reaches_90_percent_in_3_epochs(tmp_path, capsys) -> None:
    code, err = _train(capsys, str(SPECS / "classic" / "lenet5_1998.arch"), "--epochs", "3",
                       "--out", str(tmp_path))
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["val_accuracy"]) == 3
    assert metrics["val_accuracy"][-1] >= 0.9
    assert metrics["test_accuracy"] >= 0.85
    assert metrics["train_loss"][-1] < metrics["train_loss"][0]


def test_checkpoint_contents_and_resume(tmp_path, capsys) -> None:
    spec = SPECS / "examples" / "cnn3.arch"
    common = [str(spec), "--set", "size=16", "--samples", "200", "--out", str(tmp_path)]
    assert _train(capsys, *common, "--epochs", "1")[0] == 0
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(ckpt) >= {"state_dict", "spec", "spec_sha256", "epoch", "optimizer"}
    assert ckpt["epoch"] == 1 and ckpt["spec"] == spec.read_text()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    code, err = _train(capsys, *common, "--epochs", "3", "--resume", str(tmp_path / "model.pt"))
    assert code == 0 and "resumed from" in err and "epoch 2:" in err and "epoch 1:" not in err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["train_loss"]) == 3
    assert torch.load(tmp_path / "model.pt", weights_only=True)["epoch"] == 3


def test_image_folder_with_an_unreadable_file(tmp_path, capsys) -> None:
    from PIL import Image

    for k, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        folder = tmp_path / "data" / f"class{k}"
        folder.mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (20 + i, 24), colour).save(folder / f"{i}.png")
    bad = tmp_path / "data" / "class0" / "broken.png"
    bad.write_bytes(b"not an image")
    code, err = _train(capsys, str(SPECS / "examples" / "cnn3.arch"), "--set", "size=16",
                       "--set", "num_classes=2", "--data", str(tmp_path / "data"),
                       "--epochs", "1", "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "skipping unreadable image" in err and "broken.png" in err
    assert (tmp_path / "out" / "metrics.json").exists()


def test_too_few_outputs_for_the_data_is_a_clear_error(tmp_path, capsys) -> None:
    from PIL import Image

    for k in range(5):
        (tmp_path / f"c{k}").mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / f"c{k}" / "a.png")
    code, err = _train(capsys, str(SPECS / "examples" / "cnn3.arch"), "--data", str(tmp_path),
                       "--set", "num_classes=3")
    assert code == 1 and "--set num_classes=5" in err and "Traceback" not in err


def test_ddp_two_cpu_processes_with_gloo(tmp_path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", "29517", "-m", "archspec", "train",
           str(SPECS / "examples" / "cnn1.arch"), "--set", "size=16", "--samples", "400",
           "--epochs", "2", "--out", str(tmp_path), "--quiet", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("epoch 2:") == 1  # rank 0 alone logs
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ckpt["epoch"] == 2
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])


def test_amp_and_compile_on_cpu(tmp_path, capsys) -> None:
    code, err = _train(capsys, str(SPECS / "examples" / "cnn3.arch"), "--set", "size=16",
                       "--samples", "200", "--epochs", "1", "--amp", "--compile",
                       "--out", str(tmp_path))
    assert code == 0, err
    state = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert state and not any(k.startswith(("_orig_mod.", "module.")) for k in state)


AUX = """
network aux_net(num_classes: int = 4)
input x: 1x12x12
output out, aux
stem = conv2d(8, 3, padding=1) -> relu -> maxpool2d(2)
aux = global_avgpool2d()(stem) -> flatten -> linear(num_classes)
out = conv2d(8, 3, padding=1)(stem) -> relu -> global_avgpool2d -> flatten -> linear(num_classes)
"""


def test_auxiliary_heads_add_weighted_losses() -> None:
    """A spec with `output out, aux`: the loss is CE(out) + w * CE(aux), as torchvision's
    reference training computes it for GoogLeNet/Inception-v3; accuracy reads `out` only."""
    import archspec
    from archspec.train import loss_of

    model = archspec.to_torch(archspec.loads(AUX))
    x, y = torch.randn(5, 1, 12, 12), torch.tensor([0, 1, 2, 3, 0])
    out = model(x)
    loss, main = loss_of(out, y, 0.3)
    expected = (torch.nn.functional.cross_entropy(out["out"], y)
                + 0.3 * torch.nn.functional.cross_entropy(out["aux"], y))
    torch.testing.assert_close(loss, expected)
    assert main is out["out"]


def test_train_a_spec_with_an_auxiliary_output(tmp_path, capsys) -> None:
    spec = tmp_path / "aux.arch"
    spec.write_text(AUX)
    code, err = _train(capsys, str(spec), "--samples", "60", "--epochs", "1", "--batch-size",
                       "16", "--aux-weight", "0.5")
    assert code == 0, err
