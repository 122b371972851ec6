"""Datasets for `archspec train`: a procedural built-in one, and image folders.

The built-in dataset draws geometric shapes (one shape per class) at the spec's input size,
deterministically from a seed, so training runs offline on a fresh machine. Images are
generated on the fly per index, so a 3x224x224 spec costs no memory up front.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset, random_split

Mask = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]

SHAPES: tuple[tuple[str, Mask], ...] = (
    ("disk", lambda x, y, r: x**2 + y**2 < r**2),
    ("square", lambda x, y, r: torch.maximum(x.abs(), y.abs()) < 0.8 * r),
    ("triangle", lambda x, y, r: (y > -0.5 * r) & (x.abs() < (r - y) * 0.58)),
    ("ring", lambda x, y, r: ((x**2 + y**2).sqrt() < r) & ((x**2 + y**2).sqrt() > 0.6 * r)),
    ("plus", lambda x, y, r: ((x.abs() < r / 4) & (y.abs() < r))
     | ((y.abs() < r / 4) & (x.abs() < r))),
    ("cross", lambda x, y, r: (((x + y).abs() < r / 3) & ((x - y).abs() < 1.4 * r))
     | (((x - y).abs() < r / 3) & ((x + y).abs() < 1.4 * r))),
    ("hbar", lambda x, y, r: (y.abs() < r / 4) & (x.abs() < r)),
    ("vbar", lambda x, y, r: (x.abs() < r / 4) & (y.abs() < r)),
    ("diamond", lambda x, y, r: x.abs() + y.abs() < r),
    ("frame", lambda x, y, r: (torch.maximum(x.abs(), y.abs()) < 0.8 * r)
     & (torch.maximum(x.abs(), y.abs()) > 0.5 * r)),
)


class ShapesDataset(Dataset):
    """``n`` images ``(C, H, W)`` in [0, 1] of ``classes`` shape kinds; label = index % classes.

    Each image has its own seeded generator: a random position, size, colour and noise.
    """

    def __init__(self, n: int, classes: int, shape: tuple[int, ...], seed: int = 0) -> None:
        if len(shape) != 3:
            raise RuntimeError(f"the built-in dataset makes images (C, H, W); the spec's input "
                               f"is {list(shape)}: pass an image folder with --data")
        self.n, self.classes, self.shape, self.seed = n, min(classes, len(SHAPES)), shape, seed
        _, h, w = shape
        ys = torch.linspace(-1.0, 1.0, h).view(h, 1).expand(h, w)
        xs = torch.linspace(-1.0, 1.0, w).view(1, w).expand(h, w)
        self.grid = (xs, ys)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        label = i % self.classes
        u = torch.rand(6, generator=g).tolist()
        cx, cy = (u[0] - 0.5) * 0.5, (u[1] - 0.5) * 0.5
        radius = 0.35 + 0.3 * u[2]
        xs, ys = self.grid
        mask = SHAPES[label][1](xs - cx, ys - cy, radius).float()
        c = self.shape[0]
        colour = 0.5 + 0.5 * torch.rand(c, 1, 1, generator=g)
        noise = 0.15 * torch.rand(self.shape, generator=g)
        return (mask * colour + noise).clamp(0.0, 1.0), label


class _SafeLoader:
    """An image loader that records unreadable files instead of failing the run."""

    def __init__(self, channels: int) -> None:
        self.mode = "L" if channels == 1 else "RGB"

    def __call__(self, path: str) -> Any:
        from PIL import Image

        try:
            with Image.open(path) as img:
                return img.convert(self.mode)
        except Exception as exc:  # any decoder error: report and skip the file
            print(f"warning: skipping unreadable image {path}: {exc}", file=sys.stderr)
            return None


def image_folder(root: str | Path, shape: tuple[int, ...]) -> Dataset:
    """An image-folder dataset (one sub-folder per class) resized to the spec's input."""
    try:
        from torchvision import datasets, transforms
    except ImportError:
        raise RuntimeError("--data needs torchvision: pip install 'archspec[vision]'") from None
    c, h, w = shape
    transform = transforms.Compose([transforms.Resize((h, w)), transforms.ToTensor()])
    loader = _SafeLoader(c)

    def safe_transform(img: Any) -> Any:
        return None if img is None else transform(img)

    return datasets.ImageFolder(str(root), transform=safe_transform, loader=loader,
                                allow_empty=False)


def collate_skipping_unreadable(batch: list[tuple[Any, int]]) -> Any:
    """Default collation without the samples whose image could not be read."""
    from torch.utils.data import default_collate

    kept = [(x, y) for x, y in batch if x is not None]
    if not kept:
        return None
    return default_collate(kept)


def split(dataset: Dataset, seed: int = 0) -> tuple[Subset, Subset, Subset]:
    """Train/val/test 7:2:1 with a fixed seed."""
    n = len(dataset)  # type: ignore[arg-type]
    n_train, n_val = math.floor(0.7 * n), math.floor(0.2 * n)
    parts = random_split(dataset, [n_train, n_val, n - n_train - n_val],
                         generator=torch.Generator().manual_seed(seed))
    return parts[0], parts[1], parts[2]
