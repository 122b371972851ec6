"""`archspec eval` on the built-in data scores the test split of the run that trained the
weights: the checkpoint stores the data's samples and seed, and eval makes the split again.

The oracle is the data itself: the items (random draws) the loaders of `train` and `eval` were
handed, compared by content, so that "disjoint" does not rest on how archspec names images.
"""

from __future__ import annotations

import pytest
import torch
from conftest import SPECS
from test_errors import run_cli
from torch.utils.data import Dataset

import archspec.training.loop as loop
from archspec.cli import main

SPEC = str(SPECS / "examples" / "cnn3.arch")
TINY = ["--set", "size=16", "--workers", "0"]


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[Dataset]:
    """The datasets every DataLoader of the command is built on, in order."""
    seen: list[Dataset] = []
    real = loop.loader
    monkeypatch.setattr(loop, "loader", lambda ds, *a: seen.append(ds) or real(ds, *a))
    return seen


def _images(ds: Dataset) -> set[bytes]:
    """The images of a split of the built-in data, by content (each item's draws)."""
    return {ds[k][0].numpy().tobytes() for k in range(len(ds))}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple:
    """A one-epoch run on 200 images of seed 3 (not eval's default 0): its folder and the
    images of its train, val and test sets."""
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        seen = _recording(mp)
        try:
            main(["train", SPEC, *TINY, "--samples", "200", "--seed", "3", "--epochs", "1",
                  "--quiet", "--out", str(out)])
        except SystemExit as exc:
            assert not exc.code
    return out, [_images(ds) for ds in seen]


def _eval(capsys, monkeypatch, weights, *args: str) -> tuple[int, str, str, list[set[bytes]]]:
    """Exit code, stdout, stderr and the images of the sets `eval` scored."""
    seen = _recording(monkeypatch)
    code, out, err = run_cli(["eval", SPEC, *TINY, "--weights", str(weights), *args], capsys)
    return code, out, err, [_images(ds) for ds in seen]


def test_checkpoints_store_the_built_in_data(run) -> None:
    out, _ = run
    for name in ("last.pt", "best.pt"):
        data = torch.load(out / name, weights_only=True)["data"]
        assert data == {"kind": "builtin", "samples": 200, "seed": 3, "classes": 4,
                        "shape": [3, 16, 16]}


def test_eval_scores_the_trained_runs_test_split(run, capsys, monkeypatch) -> None:
    out, (train, val, test) = run
    assert len(train) == 140 and len(val) == 40 and len(test) == 20
    code, stdout, err, (scored,) = _eval(capsys, monkeypatch, out / "last.pt")
    assert code == 0, err
    assert "trained run's test split: --samples 200 --seed 3" in err
    assert scored == test and not scored & (train | val)
    assert stdout.startswith("20 images:")


def test_a_split_with_training_images_is_refused(run, capsys, monkeypatch) -> None:
    """Negative control: 300 images of the same seed hold the run's 200, and their test split
    holds some the weights were trained on; eval says how many, and refuses."""
    out, (train, val, _) = run
    code, _, err, seen = _eval(capsys, monkeypatch, out / "best.pt", "--samples", "300")
    assert code == 1 and not seen and "Traceback" not in err
    assert "E908" in err and "cnn3.arch:" in err and "--allow-other-split" in err
    code, _, err, (scored,) = _eval(capsys, monkeypatch, out / "best.pt", "--samples", "300",
                                    "--allow-other-split")
    leaked = len(scored & (train | val))
    assert code == 0 and leaked > 0 and len(scored) == 30
    assert "warning: scoring the test split of --samples 300 --seed 3" in err
    assert f"{leaked} of its 30 images were training or validation images" in err


def test_a_fresh_seed_is_scored_with_no_training_images(run, capsys, monkeypatch) -> None:
    """Another seed draws other images: its test split (at the same indices as a split of
    seed 3 would take some of) holds none of the run's, and is scored without the flag."""
    out, (train, val, _) = run
    code, _, err, (scored,) = _eval(capsys, monkeypatch, out / "best.pt", "--seed", "0")
    assert code == 0 and "E908" not in err, err
    assert not scored & (train | val)
    assert "none of its 20 images were training or validation images" in err


def test_the_stored_values_given_again_are_accepted(run, capsys, monkeypatch) -> None:
    out, (_, _, test) = run
    code, _, err, (scored,) = _eval(capsys, monkeypatch, out / "best.pt", "--samples", "200",
                                    "--seed", "3")
    assert code == 0 and scored == test and "warning" not in err


def test_a_bare_state_dict_warns_that_the_split_cannot_be_checked(run, tmp_path, capsys,
                                                                  monkeypatch) -> None:
    out, (train, val, _) = run
    torch.save(torch.load(out / "last.pt", weights_only=True)["state_dict"], tmp_path / "sd.pt")
    code, stdout, err, (scored,) = _eval(capsys, monkeypatch, tmp_path / "sd.pt",
                                         "--samples", "200", "--seed", "3")
    assert code == 0, err
    assert "W902" in err and "--samples 200 --seed 3" in err and "cannot be checked" in err
    assert stdout.startswith("20 images:") and not scored & (train | val)


def test_a_malformed_data_entry_is_e611(run, tmp_path, capsys, monkeypatch) -> None:
    out, _ = run
    ckpt = torch.load(out / "last.pt", weights_only=True)
    torch.save({**ckpt, "data": {"kind": "builtin", "samples": "200"}}, tmp_path / "bad.pt")
    code, _, err, _ = _eval(capsys, monkeypatch, tmp_path / "bad.pt")
    assert code == 1 and "E611" in err and "`data` entry" in err


def test_resuming_on_other_data_warns(run, tmp_path, capsys) -> None:
    out, _ = run
    code, stdout, err = run_cli(["train", SPEC, *TINY, "--samples", "300", "--seed", "3",
                                 "--epochs", "2", "--quiet", "--resume", str(out / "last.pt"),
                                 "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert "trained on the built-in data of --samples 200 --seed 3; this run trains on the " \
           "built-in data of --samples 300 --seed 3" in stdout
    assert torch.load(tmp_path / "last.pt", weights_only=True)["data"]["samples"] == 300
