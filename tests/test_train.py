"""`archspec train`: learning on the built-in data, checkpoints, resume, image folders, DDP."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, SPECS
from test_errors import run_cli


def _train(capsys, *args: str) -> tuple[int, str]:
    """Exit code and what `train` printed: results on stdout, then warnings on stderr."""
    code, out, err = run_cli(["train", *args, "--quiet", "--workers", "0"], capsys)
    return code, out + err


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
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(ckpt) >= {"state_dict", "spec", "spec_sha256", "epoch", "optimizer"}
    assert ckpt["epoch"] == 1 and ckpt["spec"] == spec.read_text()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    code, err = _train(capsys, *common, "--epochs", "3", "--resume", str(tmp_path / "last.pt"))
    assert code == 0 and "resumed from" in err and "epoch 2:" in err and "epoch 1:" not in err
    assert "images/s" in err and "val accuracy" in err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["train_loss"]) == len(metrics["images_per_s"]) == 3
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 3
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == metrics["best_epoch"]
    assert metrics["val_accuracy"][best["epoch"] - 1] == max(metrics["val_accuracy"])
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["val_accuracy"]) for r in rows] == pytest.approx(metrics["val_accuracy"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    # The first run and the resumed one each write an event file, and two files opened in the
    # same second have no defined reading order: the steps, not their order, are the contract.
    assert sorted(e.step for e in events.Scalars("val_accuracy")) == [1, 2, 3]


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
    assert torch.load(tmp_path / "out" / "best.pt", weights_only=True)["data"] == \
        {"kind": "folder", "path": str(tmp_path / "data")}
    code, out, err = run_cli(["eval", str(SPECS / "examples" / "cnn3.arch"), "--set", "size=16",
                              "--set", "num_classes=2", "--data", str(tmp_path / "data"),
                              "--weights", str(tmp_path / "out" / "best.pt"), "--workers", "0"],
                             capsys)
    assert code == 0, err
    assert out.startswith("24 images:") and "broken.png" in err  # every readable image


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
    assert res.stdout.count("epoch 2:") == 1  # rank 0 alone logs its results (stdout)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and (tmp_path / "best.pt").exists()
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])


def test_amp_and_compile_on_cpu(tmp_path, capsys) -> None:
    code, err = _train(capsys, str(SPECS / "examples" / "cnn3.arch"), "--set", "size=16",
                       "--samples", "200", "--epochs", "1", "--amp", "--compile",
                       "--out", str(tmp_path))
    assert code == 0, err
    state = torch.load(tmp_path / "last.pt", weights_only=True)["state_dict"]
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
    from archspec.training.loop import loss_of

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


def test_lr_schedules_against_torch_schedulers() -> None:
    """Cosine without warm-up equals torch's CosineAnnealingLR (eta_min 0), step equals
    StepLR(gamma 0.1); a warm-up rises linearly to the peak, then the cosine starts at 1."""
    from archspec.training.loop import lr_factor

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)
    for step in range(50):
        assert lr_factor(step, 50, 0, "cosine", 10, 30) == pytest.approx(
            opt.param_groups[0]["lr"], abs=1e-9)
        opt.step()
        cosine.step()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    steps = torch.optim.lr_scheduler.StepLR(opt, step_size=2 * 5, gamma=0.1)
    for step in range(40):
        assert lr_factor(step, 40, 0, "step", 5, 2) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        steps.step()
    warm = [lr_factor(s, 100, 10, "cosine", 10, 30) for s in range(100)]
    assert warm[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert warm[10] == 1.0 and warm[55] == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_factor(7, 100, 0, "none", 10, 30) == 1.0


def test_weight_decay_spares_norms_and_biases() -> None:
    """One SGD step with zero gradients: kernels shrink by (1 - lr * wd), as torch's SGD
    defines its decay; batch-norm scales and shifts and biases stay as they were."""
    from archspec.training.loop import param_groups

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(param_groups(model, 0.5), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = model.state_dict()
    for key in ("0.weight", "3.weight"):
        torch.testing.assert_close(after[key], before[key] * (1 - 0.1 * 0.5))
    for key in ("0.bias", "1.weight", "1.bias", "3.bias"):
        assert torch.equal(after[key], before[key]), key


def test_label_smoothing_and_top_k_against_their_definitions() -> None:
    from archspec.training.loop import correct_top, loss_of

    torch.manual_seed(0)
    logits, y = torch.randn(64, 10), torch.randint(0, 10, (64,))
    logp = torch.log_softmax(logits, 1)
    expected = (0.9 * -logp[torch.arange(64), y] - 0.1 * logp.mean(1)).mean()
    torch.testing.assert_close(loss_of(logits, y, 0.4, label_smoothing=0.1)[0], expected)
    order = np.argsort(-logits.numpy(), axis=1)
    top1 = int((order[:, 0] == y.numpy()).sum())
    top5 = int(sum(y[i].item() in order[i, :5] for i in range(64)))
    assert correct_top(logits, y) == [top1, top5]
    assert correct_top(logits[:, :3], y.clamp(max=2), (1, 5))[1] == 64


def test_gradient_clipping_bounds_the_first_update(tmp_path) -> None:
    """SGD's first step moves the weights by lr x gradient: with --clip-grad c the update's
    global norm is lr x c."""
    import archspec
    from archspec.training.config import TrainConfig
    from archspec.training.loop import Trainer, batches

    spec = archspec.load(SPECS / "examples" / "cnn3.arch", size=16)
    cfg = TrainConfig(samples=40, batch_size=8, optimizer="sgd", lr=0.5, weight_decay=0.0,
                      clip_grad=1e-3, schedule="none", workers=0, progress=False)
    trainer = Trainer(spec, cfg, log=lambda _: None)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    x, y = next(batches(trainer.train_loader, trainer.data.pipeline, trainer.device, False,
                        train=True))
    trainer.step(x, y)
    moved = torch.cat([(p.detach() - b).flatten()
                       for p, b in zip(trainer.model.parameters(), before)])
    assert moved.norm().item() == pytest.approx(0.5 * 1e-3, rel=1e-3)


def test_early_stop_and_eval_of_the_best_checkpoint(tmp_path, capsys) -> None:
    """With a vanishing learning rate validation never improves: --patience 1 stops after
    epoch 2; `archspec eval` of best.pt scores the test split as training's final test did."""
    spec = str(SPECS / "examples" / "cnn3.arch")
    code, err = _train(capsys, spec, "--set", "size=16", "--samples", "200", "--epochs", "5",
                       "--lr", "1e-12", "--patience", "1", "--out", str(tmp_path))
    assert code == 0, err
    assert "early stop" in err and "epoch 2:" in err and "epoch 3:" not in err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    code, out, err = run_cli(["eval", spec, "--set", "size=16", "--samples", "200",
                              "--weights", str(tmp_path / "best.pt"), "--workers", "0"], capsys)
    assert code == 0, err
    assert out.startswith("20 images:")
    assert f"top-1 {metrics['test_accuracy']:.4f}" in out


def test_image_folder_without_torchvision_names_the_extra(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    code, err = _train(capsys, str(SPECS / "examples" / "cnn3.arch"), "--data", str(tmp_path))
    assert code == 2 and "archspec[vision]" in err and "Traceback" not in err


def test_without_tensorboard_the_run_says_so_and_writes_json_and_csv(tmp_path,
                                                                     monkeypatch) -> None:
    from archspec.training.log import Metrics, RunLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    said: list[str] = []
    runlog = RunLog(tmp_path, said.append)
    metrics = Metrics()
    metrics.add({"train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 0.9, "val_accuracy": 0.6,
                 "val_top5": 1.0, "lr": 0.1, "images_per_s": 10.0, "epoch_time_s": 2.0})
    runlog.epoch(metrics, 1)
    runlog.close()
    assert len(said) == 1 and "pip install 'archspec[tensorboard]'" in said[0]
    assert json.loads((tmp_path / "metrics.json").read_text())["val_accuracy"] == [0.6]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[1].startswith("1,1,0.5,0.9,0.6")
    assert not (tmp_path / "tensorboard").exists()
