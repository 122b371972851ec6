"""Image folders are hostile input: special files are skipped unopened, links stay inside the
folder and are counted once, empty or too small folders are located errors, and the class names
travel with every checkpoint."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
from hostile_support import CNN3, SMALL, clean_failure, images, run_cli, run_subprocess

from archspec.training.data import ImageFiles


def _train(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> tuple[int, str]:
    code, _, err = run_cli(["train", str(CNN3), *SMALL, "--data", str(data), "--epochs", "1",
                            "--quiet", "--workers", "0", *args], capsys)
    return code, err


def test_a_fifo_in_the_folder_hangs_neither_train_nor_eval(tmp_path: Path) -> None:
    """A FIFO named like an image would block the first read forever: it is skipped, with a
    warning naming it, before anything opens it (the child is killed if it hangs)."""
    data = tmp_path / "data"
    images(data / "cat", 6)
    images(data / "dog", 6, (0, 0, 255))
    os.mkfifo(data / "cat" / "x.png")
    run = run_subprocess(["train", str(CNN3), *SMALL, "--data", str(data), "--epochs", "1",
                          "--quiet", "--workers", "0", "--out", str(tmp_path / "out")])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "x.png" in run.stderr and "FIFO" in run.stderr
    run = run_subprocess(["eval", str(CNN3), *SMALL, "--data", str(data), "--workers", "0",
                          "--weights", str(tmp_path / "out" / "last.pt")])
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("12 images:") and "x.png" in run.stderr


def test_sockets_and_fifos_are_skipped_with_a_warning(tmp_path: Path, capsys) -> None:
    images(tmp_path / "a", 2)
    os.mkfifo(tmp_path / "a" / "pipe.jpg")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "a" / "sock.png"))
        ds = ImageFiles(tmp_path, (3, 8, 8))
    finally:
        server.close()
    err = capsys.readouterr().err
    assert len(ds) == 2 and ds.classes == ["a"]
    assert "pipe.jpg" in err and "sock.png" in err and "not a regular file" in err


def test_links_stay_in_the_folder_and_images_count_once(tmp_path: Path, capsys) -> None:
    """``ln -s .. dog/loop`` (a loop back to the root), a link to a folder outside, a file
    link to another class's image and a link to a file outside: 12 real images, once each."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    images(data / "cat", 6)
    images(data / "dog", 6, (0, 0, 255))
    images(outside, 3)
    os.symlink("..", data / "dog" / "loop")
    os.symlink(outside, data / "dog" / "away")
    os.symlink(outside, data / "elsewhere")
    os.symlink("../cat/0.png", data / "dog" / "copy.png")
    os.symlink(outside / "0.png", data / "cat" / "stolen.png")
    os.link(data / "cat" / "1.png", data / "dog" / "hard.png")
    ds = ImageFiles(data, (3, 8, 8))
    err = capsys.readouterr().err
    assert ds.classes == ["cat", "dog"] and len(ds) == 12
    assert sorted(Path(p).name for p, y in ds.samples if y == 0) == [f"{i}.png" for i in range(6)]
    assert len({os.path.realpath(p) for p, _ in ds.samples}) == 12
    assert all(Path(p).resolve().is_relative_to(data.resolve()) for p, _ in ds.samples)
    for name in ("away", "elsewhere", "stolen.png"):
        assert name in err, (name, err)


def test_an_empty_folder_is_a_located_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    code, err = _train(capsys, tmp_path / "data")
    clean_failure(code, err, "E901", "data")
    assert not (tmp_path / "out").exists()


def test_a_class_folder_without_images_is_named(tmp_path: Path, capsys) -> None:
    images(tmp_path / "data" / "cat", 6)
    (tmp_path / "data" / "dog").mkdir()
    (tmp_path / "data" / "dog" / "notes.txt").write_text("no images here")
    code, err = _train(capsys, tmp_path / "data")
    clean_failure(code, err, "E902", "dog")


def test_one_image_per_class_says_how_many_are_needed(tmp_path: Path, capsys) -> None:
    images(tmp_path / "data" / "cat", 1)
    images(tmp_path / "data" / "dog", 1)
    code, err = _train(capsys, tmp_path / "data", "--out", str(tmp_path / "out"))
    clean_failure(code, err, "E903", "2 images", "at least 5")
    assert not (tmp_path / "out" / "last.pt").exists()


def test_checkpoints_keep_the_class_names_and_eval_shows_them(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    images(data / "cat", 6)
    images(data / "dog\x1b[2J", 6, (0, 0, 255))
    code, err = _train(capsys, data, "--out", str(tmp_path / "out"))
    assert code == 0, err
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(tmp_path / "out" / name, weights_only=True)
        assert ckpt["classes"] == ["cat", "dog\x1b[2J"]
    code, out, err = run_cli(["eval", str(CNN3), *SMALL, "--data", str(data), "--workers", "0",
                              "--weights", str(tmp_path / "out" / "best.pt")], capsys)
    assert code == 0, err
    assert "classes: cat, dog\\x1b[2J" in out and "\x1b" not in out
    images(tmp_path / "other" / "bird", 2)
    code, _, err = run_cli(["eval", str(CNN3), *SMALL, "--data", str(tmp_path / "other"),
                            "--workers", "0", "--weights", str(tmp_path / "out" / "best.pt")],
                           capsys)
    clean_failure(code, err, "E904", "bird", "cat")


def test_built_in_checkpoints_name_their_shape_classes(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["train", str(CNN3), *SMALL, "--samples", "40", "--epochs", "1",
                            "--quiet", "--workers", "0", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert torch.load(tmp_path / "last.pt", weights_only=True)["classes"] == ["disk", "square"]
