"""The training data: built-in images drawn a batch at a time equal the per-image reference;
image folders decode, resize, augment and skip unreadable files."""

from __future__ import annotations

import torch

from archspec.training.data import SHAPES, FolderPipeline, ImageFiles, ShapesDataset


def _reference_image(ds: ShapesDataset, i: int) -> torch.Tensor:
    """How archspec drew built-in image ``i`` one at a time before batching (0.1), kept as
    the oracle: Python-float geometry, one generator per image, three draws."""
    c, h, w = ds.shape
    ys = torch.linspace(-1.0, 1.0, h).view(h, 1).expand(h, w)
    xs = torch.linspace(-1.0, 1.0, w).view(1, w).expand(h, w)
    g = torch.Generator().manual_seed(ds.seed * 1_000_003 + i)
    u = torch.rand(6, generator=g).tolist()
    cx, cy, r = (u[0] - 0.5) * 0.5, (u[1] - 0.5) * 0.5, 0.35 + 0.3 * u[2]
    x, y = xs - cx, ys - cy
    masks = [x**2 + y**2 < r**2, torch.maximum(x.abs(), y.abs()) < 0.8 * r,
             (y > -0.5 * r) & (x.abs() < (r - y) * 0.58),
             ((x**2 + y**2).sqrt() < r) & ((x**2 + y**2).sqrt() > 0.6 * r),
             ((x.abs() < r / 4) & (y.abs() < r)) | ((y.abs() < r / 4) & (x.abs() < r)),
             (((x + y).abs() < r / 3) & ((x - y).abs() < 1.4 * r))
             | (((x - y).abs() < r / 3) & ((x + y).abs() < 1.4 * r)),
             (y.abs() < r / 4) & (x.abs() < r), (x.abs() < r / 4) & (y.abs() < r),
             x.abs() + y.abs() < r,
             (torch.maximum(x.abs(), y.abs()) < 0.8 * r)
             & (torch.maximum(x.abs(), y.abs()) > 0.5 * r)]
    mask = masks[i % ds.classes].float()
    colour = 0.5 + 0.5 * torch.rand(c, 1, 1, generator=g)
    noise = 0.15 * torch.rand(ds.shape, generator=g)
    return (mask * colour + noise).clamp(0.0, 1.0)


def test_batched_built_in_images_equal_the_per_image_reference() -> None:
    assert len(SHAPES) == 10
    for shape, seed in [((3, 37, 53), 0), ((1, 32, 32), 7)]:
        ds = ShapesDataset(500, 10, shape, seed=seed)
        idx = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 123, 499, 250, 17, 42]
        draws = torch.stack([ds[i][0] for i in idx])
        labels = torch.tensor([ds[i][1] for i in idx])
        batch = ds.render(draws, labels)
        for row, i in enumerate(idx):
            assert torch.equal(batch[row], _reference_image(ds, i)), (shape, i)


def test_validation_images_pass_unchanged_and_training_crops_stay_in_range() -> None:
    x = torch.randint(0, 256, (16, 3, 20, 24), dtype=torch.uint8)
    pipe = FolderPipeline()
    torch.testing.assert_close(pipe(x, torch.zeros(16), train=False), x.float() / 255)
    torch.manual_seed(0)
    out = pipe(x, torch.zeros(16), train=True)
    assert out.shape == (16, 3, 20, 24) and out.min() >= 0.0 and out.max() <= 1.0
    theta = pipe.crops(4000, torch.device("cpu"))
    area = (theta[:, 0, 0].abs() * theta[:, 1, 1])
    assert area.min() > 0.07 and area.max() <= 1.0
    assert 0.45 < (theta[:, 0, 0] < 0).float().mean() < 0.55  # half mirrored


def test_image_files_decode_resize_and_skip(tmp_path, capsys) -> None:
    from PIL import Image

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp_path / "a" / "red.jpg")
    Image.new("L", (9, 7), 200).save(tmp_path / "b" / "grey.png")
    (tmp_path / "b" / "zbroken.png").write_bytes(b"nope")
    ds = ImageFiles(tmp_path, (3, 16, 12))
    assert ds.classes == ["a", "b"] and len(ds) == 3
    red, label = ds[0]
    assert label == 0 and red.dtype == torch.uint8 and red.shape == (3, 16, 12)
    assert abs(int(red[0].float().mean()) - 254) <= 2 and int(red[1].float().mean()) <= 2
    grey, _ = ds[1]
    assert grey.shape == (3, 16, 12) and torch.all(grey == 200)
    broken, label = ds[2]
    assert broken is None and label == 1
    assert "skipping unreadable image" in capsys.readouterr().err


def test_an_image_declaring_too_many_pixels_is_skipped_before_decoding(tmp_path, capsys,
                                                                       monkeypatch) -> None:
    """A PNG whose header declares more pixels than the limit never reaches the decoder."""
    from PIL import Image

    import archspec.training.data

    (tmp_path / "a").mkdir()
    Image.new("L", (300, 200)).save(tmp_path / "a" / "wide.png")
    monkeypatch.setattr(archspec.training.data, "MAX_IMAGE_PIXELS", 300 * 200 - 1)
    img, _ = ImageFiles(tmp_path, (1, 8, 8))[0]
    assert img is None
    assert "declares 300x200 pixels" in capsys.readouterr().err
