"""Datasets for `archspec train`: a procedural built-in one, and image folders.

Both are split in two halves so that the training device does the heavy, batched work:

- a ``Dataset`` whose items are cheap to make on the CPU in DataLoader workers (the random draws
  of a built-in image; the decoded, resized uint8 pixels of a file), collated into a batch;
- a :class:`Pipeline` that turns the collated batch into float images on the training device,
  a whole batch per tensor op (drawing the shapes; random resized crop and flip).

The built-in dataset draws geometric shapes (one shape per class) at the spec's input size,
deterministically from a seed, so training runs offline on a fresh machine. Image ``i`` of seed
``s`` comes from its own generator seeded ``s * 1_000_003 + i``: the same image whichever batch,
worker or device makes it (bit for bit on the CPU).
"""

from __future__ import annotations

import io
import math
import os
import sys
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset, Subset, random_split

from archspec.lang import ir
from archspec.lang.diagnostics import Diagnostic, error
from archspec.lang.expander import expand
from archspec.lang.extras import missing_extra
from archspec.lang.network import Graph
from archspec.lang.source import Span
from archspec.training.folders import read_image_file, relabel, scan, stderr_warning

Mask = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _f32(value: torch.Tensor) -> torch.Tensor:
    """A float64 radius expression rounded to float32, as Python scalars are when they meet a
    float32 tensor (the arithmetic on the radius itself stays in double precision)."""
    return value.float()


SHAPES: tuple[tuple[str, Mask], ...] = (
    ("disk", lambda x, y, r: x**2 + y**2 < _f32(r**2)),
    ("square", lambda x, y, r: torch.maximum(x.abs(), y.abs()) < _f32(0.8 * r)),
    ("triangle", lambda x, y, r: (y > _f32(-0.5 * r)) & (x.abs() < (_f32(r) - y) * 0.58)),
    ("ring", lambda x, y, r: ((x**2 + y**2).sqrt() < _f32(r))
     & ((x**2 + y**2).sqrt() > _f32(0.6 * r))),
    ("plus", lambda x, y, r: ((x.abs() < _f32(r / 4)) & (y.abs() < _f32(r)))
     | ((y.abs() < _f32(r / 4)) & (x.abs() < _f32(r)))),
    ("cross", lambda x, y, r: (((x + y).abs() < _f32(r / 3)) & ((x - y).abs() < _f32(1.4 * r)))
     | (((x - y).abs() < _f32(r / 3)) & ((x + y).abs() < _f32(1.4 * r)))),
    ("hbar", lambda x, y, r: (y.abs() < _f32(r / 4)) & (x.abs() < _f32(r))),
    ("vbar", lambda x, y, r: (x.abs() < _f32(r / 4)) & (y.abs() < _f32(r))),
    ("diamond", lambda x, y, r: x.abs() + y.abs() < _f32(r)),
    ("frame", lambda x, y, r: (torch.maximum(x.abs(), y.abs()) < _f32(0.8 * r))
     & (torch.maximum(x.abs(), y.abs()) > _f32(0.5 * r))),
)

#: Random numbers per built-in image before its colour and noise: x, y, radius and 3 spare.
_PARAMS = 6

#: The most pixels an image file may declare (PIL's decompression-bomb threshold): larger
#: files are skipped before decoding, so a small file cannot make a worker allocate gigabytes.
MAX_IMAGE_PIXELS = 89_478_485


def default_workers(processes: int = 1) -> int:
    """DataLoader workers per training process: the CPU cores this process may use, less one
    for the training loop itself, shared among ``processes`` processes, at most 16."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(16, (cores or 1) // max(processes, 1) - 1))


class ShapesDataset(Dataset):
    """``n`` images ``(C, H, W)`` in [0, 1] of ``classes`` shape kinds; label = index % classes.

    An item is the image's random draws, float32 ``[6 + C + C*H*W]`` (position, size, colour,
    noise), and its label; :meth:`render` draws a batch of them on any device.
    """

    def __init__(self, n: int, classes: int, shape: tuple[int, ...], seed: int = 0) -> None:
        if len(shape) != 3:
            raise RuntimeError(f"the built-in dataset makes images (C, H, W); the spec's input "
                               f"is {list(shape)}: pass an image folder with --data")
        self.n, self.classes, self.shape, self.seed = n, min(classes, len(SHAPES)), shape, seed
        self.draws = _PARAMS + shape[0] + math.prod(shape)

    def __len__(self) -> int:
        return self.n

    def image_seed(self, i: int) -> int:
        """The seed of image ``i``'s generator: images of equal seeds are equal images."""
        return self.seed * 1_000_003 + i

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.image_seed(i))
        return torch.rand(self.draws, generator=g), i % self.classes

    def render(self, draws: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` on ``draws``' device from draws ``(B, 6 + C + C*H*W)`` and
        labels ``(B,)`` (any device): one tensor op per shape kind for the whole batch."""
        c, h, w = self.shape
        b, dev = draws.shape[0], draws.device
        u = draws[:, :_PARAMS].double()
        cx = ((u[:, 0] - 0.5) * 0.5).float().view(b, 1, 1)
        cy = ((u[:, 1] - 0.5) * 0.5).float().view(b, 1, 1)
        radius = (0.35 + 0.3 * u[:, 2]).view(b, 1, 1)
        ys = torch.linspace(-1.0, 1.0, h).view(h, 1).expand(h, w).to(dev)
        xs = torch.linspace(-1.0, 1.0, w).view(1, w).expand(h, w).to(dev)
        mask = torch.empty(b, h, w, device=dev)
        labels = labels.cpu()
        for k in range(self.classes):
            rows = (labels == k).nonzero().flatten().to(dev)
            if rows.numel():
                mask[rows] = SHAPES[k][1](xs - cx[rows], ys - cy[rows], radius[rows]).float()
        colour = 0.5 + 0.5 * draws[:, _PARAMS:_PARAMS + c].view(b, c, 1, 1)
        noise = 0.15 * draws[:, _PARAMS + c:].view(b, c, h, w)
        return (mask[:, None] * colour + noise).clamp(0.0, 1.0)


def shape_names(classes: int) -> tuple[str, ...]:
    """The names of the first ``classes`` built-in shape classes, in label order."""
    return tuple(name for name, _ in SHAPES[:classes])


class Pipeline(Protocol):
    """Turns a collated batch into model inputs on the device (see the module docstring)."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor, train: bool) -> torch.Tensor: ...


class ShapesPipeline:
    """Draws built-in images from their random draws, on the draws' device."""

    def __init__(self, dataset: ShapesDataset) -> None:
        self.dataset = dataset

    def __call__(self, x: torch.Tensor, y: torch.Tensor, train: bool) -> torch.Tensor:
        return self.dataset.render(x, y)


class FolderPipeline:
    """uint8 images ``(B, C, H, W)`` to float in [0, 1]; when training, a random resized crop
    (scale 0.08-1 of the area, aspect 3/4-4/3) and a horizontal flip (p = 0.5) per image, all
    in one ``affine_grid`` + ``grid_sample`` for the batch. Validation images pass unchanged."""

    scale = (0.08, 1.0)
    ratio = (3 / 4, 4 / 3)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, train: bool) -> torch.Tensor:
        x = x.float().div_(255.0)
        if not train:
            return x
        return torch.nn.functional.grid_sample(
            x, torch.nn.functional.affine_grid(self.crops(x.shape[0], x.device), list(x.shape),
                                               align_corners=False),
            mode="bilinear", padding_mode="border", align_corners=False)

    def crops(self, b: int, device: torch.device) -> torch.Tensor:
        """Affine maps ``(B, 2, 3)`` from output to input coordinates in [-1, 1]: a crop of
        width ``sw`` and height ``sh`` (fractions of the image) at a random centre, mirrored in
        x for half of the batch."""
        area = torch.empty(b, device=device).uniform_(*self.scale)
        log_ratio = torch.empty(b, device=device).uniform_(*map(math.log, self.ratio))
        sw = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
        sh = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
        cx = (torch.rand(b, device=device) * 2 - 1) * (1 - sw)
        cy = (torch.rand(b, device=device) * 2 - 1) * (1 - sh)
        flip = torch.where(torch.rand(b, device=device) < 0.5, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=device)
        theta[:, 0, 0], theta[:, 0, 2] = sw * flip, cx
        theta[:, 1, 1], theta[:, 1, 2] = sh, cy
        return theta


def _torchvision() -> Any:
    try:
        import torchvision
    except ImportError:
        raise missing_extra("--data (image decoding)", "vision") from None
    return torchvision


class ImageFiles(Dataset):
    """An image folder (one sub-folder per class), walked as hostile input
    (:func:`archspec.training.folders.scan`), decoded with torchvision.io and resized to the
    spec's ``(C, H, W)``: items are uint8 ``(C, H, W)`` tensors, or None (with a warning on
    stderr) for a file that cannot be decoded.

    ``classes`` are the class names in label order: the folder's, sorted, or ``names`` (the
    classes a checkpoint was trained on) when given, the folder's classes among them."""

    def __init__(self, root: str | Path, shape: tuple[int, ...],
                 names: list[str] | None = None) -> None:
        _torchvision()
        if len(shape) != 3:
            raise RuntimeError(f"--data reads images (C, H, W); the spec's input is "
                               f"{list(shape)}")
        folder = scan(root)
        if names is not None:
            folder = relabel(folder, names, root)
        self.classes, self.samples, self.shape = folder.classes, folder.samples, shape

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int]:
        from torchvision.io import ImageReadMode, decode_image
        from torchvision.transforms.v2.functional import resize

        path, label = self.samples[i]
        c, h, w = self.shape
        mode = ImageReadMode.GRAY if c == 1 else ImageReadMode.RGB
        try:
            data = read_image_file(path)
            _check_size(data)
            with warnings.catch_warnings():  # torchvision 0.29 points at torchcodec on each call
                warnings.simplefilter("ignore", DeprecationWarning)
                img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                                   mode=mode)
        except Exception as exc:  # any decoder error: report and skip the file
            stderr_warning(f"skipping unreadable image {path}: {exc}")
            return None, label
        return resize(img, [h, w], antialias=True), label


def _check_size(data: bytes) -> None:
    """Refuse an image whose header declares more than :data:`MAX_IMAGE_PIXELS` (read with PIL
    from the bytes, header only; a header PIL cannot read is left to the decoder)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise ValueError(f"it declares too many pixels ({exc})") from None
        return
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"it declares {width}x{height} pixels, more than "
                         f"{MAX_IMAGE_PIXELS:,}")


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


def builtin_provenance(full: ShapesDataset) -> dict[str, Any]:
    """The ``data`` entry of the checkpoints of a run trained on the built-in data ``full``:
    the samples, seed, classes and shape its split is made again from (:func:`eval_split`)."""
    return {"kind": "builtin", "samples": full.n, "seed": full.seed, "classes": full.classes,
            "shape": list(full.shape)}


def _options(values: Mapping[str, int]) -> str:
    """``--samples 200 --seed 0``."""
    return " ".join(f"--{name} {value}" for name, value in values.items())


def data_text(source: Mapping[str, Any]) -> str:
    """A checkpoint's ``data`` entry in words: ``the image folder photos/`` or ``the built-in
    data of --samples 200 --seed 0``."""
    if source["kind"] == "folder":
        return f"the image folder {source['path']}"
    return f"the built-in data of {_options({k: source[k] for k in ('samples', 'seed')})}"


def _overlap(stored: Mapping[str, Any], chosen: Mapping[str, int]) -> tuple[int, int]:
    """How many test images of the built-in data ``chosen`` (samples, seed) the trained run
    (``stored``) trained or validated on, and how many test images there are: images are
    told apart by their generator's seed (:meth:`ShapesDataset.image_seed`)."""
    def made(values: Mapping[str, Any]) -> ShapesDataset:
        return ShapesDataset(values["samples"], stored["classes"], tuple(stored["shape"]),
                             values["seed"])

    run, other = made(stored), made(chosen)
    train, val, _ = split(run, stored["seed"])
    seen = {run.image_seed(i) for i in [*train.indices, *val.indices]}
    test = split(other, chosen["seed"])[2].indices
    return len({other.image_seed(i) for i in test} & seen), len(test)


def eval_split(stored: Mapping[str, Any] | None, asked: dict[str, int], given: Collection[str],
               other: bool, spec: ir.Spec, say: Callable[[str], None]) -> dict[str, int]:
    """The ``samples`` and ``seed`` of the built-in data whose test split `archspec eval`
    scores, for weights trained on ``stored`` (a checkpoint's ``data`` entry, None for a bare
    state_dict). ``asked`` holds the command's values and ``given`` the names of those on its
    command line: the stored values stand for the others, so that the trained run's test split
    is scored. Another split is scored where none of its test images was a training or
    validation image of the run; where some were it is E908, unless ``other``
    (``--allow-other-split``) allows it, with a warning. Weights that do not say (a bare
    state_dict, a run on a folder) are scored on ``asked`` with a W902 warning. What is
    scored is said on stderr."""
    if stored is None or stored["kind"] != "builtin":
        why = "do not say what data they were trained on" if stored is None else \
            f"were trained on {data_text(stored)}, not on the built-in data"
        warn_stderr(Diagnostic(
            "W902", f"the weights {why}: whether the test split of {_options(asked)} holds "
            "training images cannot be checked", spec.span,
            "give an `archspec train` checkpoint (last.pt, best.pt)", "warning"))
        return asked
    trained = {k: stored[k] for k in asked}
    chosen = {**trained, **{k: v for k, v in asked.items() if k in given}}
    if chosen == trained:
        say(f"scoring the trained run's test split: {_options(trained)} (from the checkpoint)")
        return chosen
    seen, total = _overlap(stored, chosen)
    if seen and not other:
        differ = [f"--{k}" for k in asked if chosen[k] != trained[k]]
        raise error("E908", f"{seen} of the {total} test images of {_options(chosen)} were "
                    f"training or validation images of the run that made the weights (on "
                    f"{_options(trained)})", spec.span,
                    hint=f"drop {' and '.join(differ)} to score the trained run's test split, "
                         "or add --allow-other-split to score this one anyway")
    say(f"{'warning: ' if seen else ''}scoring the test split of {_options(chosen)}, not the "
        f"trained run's ({_options(trained)}): {seen or 'none'} of its {total} images were "
        "training or validation images")
    return chosen


@dataclass(frozen=True)
class Head:
    """What `train` and `eval` need of a network: its one input's per-sample shape
    ``(C, H, W)``, the number of logits ``classes`` of its first output, and the span of the
    layer that computes them (where class-count diagnostics point)."""

    shape: tuple[int, ...]
    classes: int
    span: Span


def _batched(shape: tuple[int, ...]) -> str:
    """A per-sample shape with its batch dim, as `check` prints it: ``[N, 4, 16, 16]``."""
    return "[" + ", ".join(["N", *map(str, shape)]) + "]"


def _made_at(spec: ir.Spec, graph: Graph, ref: str) -> Span:
    """The span of the layer that computes ``ref`` (the spec's, for a network input)."""
    return graph.nodes[ref].span if ref in graph.nodes else spec.span


def image_input(spec: ir.Spec, graph: Graph, command: str) -> tuple[int, ...]:
    """The per-sample shape (C, H, W) of the one input of ``spec`` (expanded as ``graph``),
    which ``command`` feeds with image batches; any other input is E906, located."""
    if len(graph.inputs) != 1:
        raise error("E906", f"{command} needs a network with one input; `{spec.name}` has "
                    f"{len(graph.inputs)}", spec.span, f"{command} feeds one image batch")
    (name, shape), = graph.inputs.items()
    if len(shape) != 3:
        decl = next((d for d in spec.inputs if d.name == name), spec)
        raise error("E906", f"{command} feeds images (C, H, W); input `{name}` is "
                    f"{_batched(shape)}", decl.span, "declare it as CxHxW, e.g. 3x224x224")
    return shape


def classifier(spec: ir.Spec, command: str) -> Head:
    """The :class:`Head` of ``spec``, which ``command`` (`` `archspec train` ``) runs as an
    image classifier: one (C, H, W) input; a first output of logits ``[N, classes]``; later
    outputs only auxiliary classifiers of that shape. Anything else is E906, located."""
    graph = expand(spec)
    shape = image_input(spec, graph, command)
    (main_name, main_ref), *rest = graph.outputs.items()
    main = graph.shape_of(main_ref)
    if len(main) != 1:
        raise error("E906", f"{command} reads the output `{main_name}` as class logits "
                    f"[N, classes]; it is {_batched(main)}", _made_at(spec, graph, main_ref),
                    "end the network in a classifier head (global_avgpool2d -> flatten -> "
                    "linear(classes)): train and eval only classify")
    for aux_name, ref in rest:
        if graph.shape_of(ref) != main:
            raise error("E906", f"output `{aux_name}` is {_batched(graph.shape_of(ref))}: "
                        f"{command} reads outputs after `{main_name}` as auxiliary "
                        f"classifiers of its shape {_batched(main)}",
                        _made_at(spec, graph, ref),
                        "drop it from the `output` line, or give it the first output's shape")
    return Head(shape, main[0], _made_at(spec, graph, main_ref))


def check_classes(head: Head, classes: int, data: str,
                  warn: Callable[[Diagnostic], None]) -> None:
    """Compare the network's logits with the ``classes`` of ``data`` (a folder, or the
    built-in dataset): fewer logits is E907; more is a warning W901 (the extra logits are never
    a label: training still works, pushing them down, but they waste the head and take part
    in top-5), both at the layer that computes the logits."""
    hint = f"--set num_classes={classes}, if the spec has that parameter"
    if classes > head.classes:
        raise error("E907", f"{data} has {classes} classes but the network has "
                    f"{head.classes} outputs", head.span, hint)
    if classes < head.classes:
        warn(Diagnostic("W901", f"the network has {head.classes} outputs but {data} has "
                        f"{classes} classes: outputs {classes} to {head.classes - 1} are never "
                        "a label", head.span, hint, "warning"))


def warn_stderr(diagnostic: Diagnostic) -> None:
    """Print a warning's rendered diagnostic to stderr."""
    print(diagnostic.render(), file=sys.stderr)


def say_stderr(text: str) -> None:
    """Print a line to stderr."""
    print(text, file=sys.stderr)


def calibration_images(spec: ir.Spec, source: str, samples: int, seed: int = 0) -> Any:
    """``samples`` float32 numpy images ``(N, C, H, W)`` in [0, 1]: the built-in shapes
    (``source == "builtin"``) or the first images of a shuffled image folder."""
    import torch

    graph = expand(spec)
    shape = image_input(spec, graph, "`export --quantize int8`")
    if source == "builtin":  # a classifier's classes, else every shape kind
        out = graph.shape_of(next(iter(graph.outputs.values())))
        classes = out[0] if len(out) == 1 else len(SHAPES)
        ds = ShapesDataset(samples, classes, shape, seed=seed)
        draws = torch.stack([ds[i][0] for i in range(samples)])
        labels = torch.tensor([ds[i][1] for i in range(samples)])
        return ds.render(draws, labels).numpy()
    folder = ImageFiles(source, shape)
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed))
    images = [img for img, _ in (folder[int(i)] for i in order[:samples]) if img is not None]
    if len(images) < 2:
        raise RuntimeError(f"{source}: fewer than 2 readable images to calibrate with")
    return FolderPipeline()(torch.stack(images), torch.zeros(0), train=False).numpy()
