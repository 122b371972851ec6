"""Image folders read as hostile input: which files `archspec train --data DIR` (and `eval`,
`export --calibrate DIR`) may open, and the errors of a folder that cannot be trained on.

A folder holds one sub-folder per class, its images at any depth below it. The walk:

- looks at every entry with ``lstat`` before anything opens it: FIFOs, devices and sockets are
  skipped with a warning naming them (opening a FIFO would block forever);
- follows a symbolic link only to a target inside the folder, and a folder only once (by device
  and inode): ``ln -s .. dog/loop`` is a loop, skipped, and a link out is skipped with a
  warning; class folders are claimed before any is walked, so a link cannot move one class's
  images into another;
- reads each file once, by device and inode (links and hard links to an image already counted
  are dropped), in the order torchvision's ``make_dataset`` gives;
- raises located errors (E901-E904) for a folder without classes or images, a class folder
  without images and too few images to split.

Nothing here imports torchvision: the walk and the file reads are plain ``os`` calls.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from archspec.lang.diagnostics import ArchspecError, error, printable
from archspec.lang.source import SourceFile, Span, display_name

#: The suffixes read as images (torchvision's ``IMG_EXTENSIONS``), in any letter case.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

#: The largest image file read, in bytes, checked with ``fstat`` before reading: more than an
#: uncompressed RGBA image at the pixel limit (``data.MAX_IMAGE_PIXELS``) needs.
MAX_IMAGE_BYTES = 512 * 1024 * 1024

#: Images a training folder needs so that the 7:2:1 split leaves none of its parts empty.
MIN_SPLIT_IMAGES = 5

#: Warnings printed per folder; the rest are counted in one line.
MAX_WARNINGS = 20

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def stderr_warning(text: str) -> None:
    """Print ``warning: TEXT`` to stderr with everything a terminal acts on escaped."""
    print(printable(f"warning: {text}", " "), file=sys.stderr)


def folder_error(code: str, message: str, root: str | Path, hint: str) -> ArchspecError:
    """An :class:`ArchspecError` located at the folder ``root`` (named as the user would)."""
    return error(code, message, Span(SourceFile(display_name(Path(root)), ""), 1, 1), hint)


def _kind(mode: int) -> str | None:
    """What a special file is ("a FIFO"), or None for a regular file, folder or link."""
    return next((name for test, name in _KINDS if test(mode)), None)


@dataclass
class _Walk:
    """One walk of a folder: what has been read (folders and files by device and inode) and
    the warnings said so far."""

    top: Path
    warn: Callable[[str], None]
    dirs: set[tuple[int, int]] = field(default_factory=set)
    files: set[tuple[int, int]] = field(default_factory=set)
    said: int = 0
    duplicates: int = 0

    def skip(self, path: Path, why: str) -> None:
        """Warn that ``path`` is skipped (the first :data:`MAX_WARNINGS` times)."""
        self.said += 1
        if self.said <= MAX_WARNINGS:
            self.warn(f"skipping {path}: {why}")

    def target(self, path: Path, parent: str) -> tuple[os.stat_result, str] | None:
        """The status and real path of ``path`` (in the folder whose real path is ``parent``)
        when the walk may use it: a link must point inside the folder; a special file is
        skipped with a warning."""
        real = os.path.join(parent, path.name)
        try:
            info = os.lstat(real)
            if stat.S_ISLNK(info.st_mode):
                real = os.path.realpath(real)
                if not Path(real).is_relative_to(self.top):
                    self.skip(path, "a link to outside the folder")
                    return None
                info = os.stat(real)
        except OSError as exc:
            self.skip(path, f"cannot read it ({exc.strerror or exc})")
            return None
        kind = _kind(info.st_mode)
        if kind:
            self.skip(path, f"not a regular file ({kind})")
            return None
        return info, real

    def claim(self, info: os.stat_result) -> bool:
        """Mark a folder as read; False when it was already (a loop or a second link)."""
        key = (info.st_dev, info.st_ino)
        if key in self.dirs:
            return False
        self.dirs.add(key)
        return True

    def images(self, folder: Path, real: str) -> list[str]:
        """The real paths of the images under ``folder`` (depth first, each folder and file
        once), sorted by folder path then name, as torchvision's ``make_dataset`` orders."""
        found: list[tuple[str, list[str]]] = []
        stack = [(folder, real)]
        while stack:
            here, here_real = stack.pop()
            try:
                names = sorted(os.listdir(here_real))
            except OSError as exc:
                self.skip(here, f"cannot list it ({exc.strerror or exc})")
                continue
            files, subdirs = self._entries(here, here_real, names)
            found.append((str(here), files))
            stack.extend(reversed(subdirs))
        return [f for _, files in sorted(found) for f in files]

    def _entries(self, here: Path, real_here: str,
                 names: Iterable[str]) -> tuple[list[str], list[tuple[Path, str]]]:
        """The images and the sub-folders still to walk among ``names`` in ``here`` (whose
        real path is ``real_here``)."""
        files: list[str] = []
        subdirs: list[tuple[Path, str]] = []
        for name in names:
            target = self.target(here / name, real_here)
            if target is None:
                continue
            info, real = target
            if stat.S_ISDIR(info.st_mode):
                if self.claim(info):
                    subdirs.append((here / name, real))
                elif real != os.path.join(real_here, name):  # reached through a link
                    self.skip(here / name, "a link to a folder already read (a loop)")
            elif name.lower().endswith(IMAGE_SUFFIXES):
                key = (info.st_dev, info.st_ino)
                if key in self.files:
                    self.duplicates += 1
                else:
                    self.files.add(key)
                    files.append(real)
        return files, subdirs


@dataclass
class Folder:
    """What an image folder holds: its class names (sorted) and ``(real path, label)`` pairs."""

    classes: list[str]
    samples: list[tuple[str, int]]


def _class_folders(walk: _Walk, root: Path) -> list[tuple[str, str]]:
    """The class folders at the top of ``root``: ``(name, real path)``, sorted, each claimed."""
    out = []
    for name in sorted(os.listdir(walk.top)):
        target = walk.target(root / name, str(walk.top))
        if target and stat.S_ISDIR(target[0].st_mode):
            if walk.claim(target[0]):
                out.append((name, target[1]))
            else:
                walk.skip(root / name, "the same folder as another class, or the folder itself")
    return out


def scan(root: str | Path, warn: Callable[[str], None] = stderr_warning) -> Folder:
    """Walk the image folder ``root`` (see the module docstring); errors E901 and E902."""
    hint = "an image folder holds one sub-folder of images per class (dog/1.jpg, cat/2.png)"
    try:
        top = Path(os.path.realpath(root))
        walk = _Walk(top, warn)
        walk.claim(os.stat(top))
        classes = _class_folders(walk, Path(root))
    except OSError as exc:
        raise folder_error("E901", f"cannot read the image folder {root}: "
                           f"{exc.strerror or exc}", root, hint) from None
    if not classes:
        raise folder_error("E901", f"{root} has no class folders", root, hint)
    samples = [(path, label) for label, (name, real) in enumerate(classes)
               for path in walk.images(Path(root) / name, real)]
    _said_the_rest(walk, root)
    counts = {label for _, label in samples}
    empty = [name for label, (name, _) in enumerate(classes) if label not in counts]
    if len(empty) == len(classes):
        raise folder_error("E901", f"{root} has no images", root,
                           f"images are files named *{', *'.join(IMAGE_SUFFIXES)}")
    if empty:
        shown = ", ".join(f"`{n}`" for n in empty[:10]) + (" ..." if len(empty) > 10 else "")
        raise folder_error("E902", f"class folder{'s' * (len(empty) > 1)} {shown} in {root} "
                           f"{'have' if len(empty) > 1 else 'has'} no images", root,
                           "add images to it, or remove it: every sub-folder is a class")
    return Folder([name for name, _ in classes], samples)


def _said_the_rest(walk: _Walk, root: str | Path) -> None:
    """One line for the warnings past :data:`MAX_WARNINGS` and one for duplicate files."""
    if walk.said > MAX_WARNINGS:
        walk.warn(f"{root}: {walk.said - MAX_WARNINGS} more entries skipped")
    if walk.duplicates:
        walk.warn(f"{root}: {walk.duplicates} links to images already counted, each read once")


def relabel(folder: Folder, names: list[str], root: str | Path) -> Folder:
    """``folder`` labelled by ``names`` (the classes a checkpoint was trained on, in order);
    a class folder not among them is an error (E904)."""
    unknown = [c for c in folder.classes if c not in names]
    if unknown:
        raise folder_error("E904", f"{root} has class folder `{unknown[0]}`, not one of the "
                           f"{len(names)} classes the weights were trained on: "
                           f"{', '.join(names[:20])}", root,
                           "name the class folders as in the training folder")
    index = {name: names.index(name) for name in folder.classes}
    return Folder(list(names), [(p, index[folder.classes[y]]) for p, y in folder.samples])


def check_splittable(n: int, root: str | Path) -> None:
    """Training splits the images 7:2:1: fewer than :data:`MIN_SPLIT_IMAGES` leave the
    validation (or training) set empty (E903)."""
    if n < MIN_SPLIT_IMAGES:
        raise folder_error("E903", f"{root} has {n} image{'s' * (n != 1)}: training splits "
                           f"them 7:2:1 into training, validation and test sets and needs at "
                           f"least {MIN_SPLIT_IMAGES}, so that the validation set is not empty",
                           root, f"add at least {MIN_SPLIT_IMAGES - n} more images")


def read_image_file(path: str) -> bytes:
    """The bytes of the image file ``path``, opened without following a link or blocking and
    checked again with ``fstat`` (the file may have been swapped since the walk): a file that
    is no longer regular, or larger than :data:`MAX_IMAGE_BYTES`, is a ``ValueError``."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"not a regular file ({_kind(info.st_mode) or 'a folder'})")
        if info.st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"larger than {MAX_IMAGE_BYTES:,} bytes")
        data = f.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"larger than {MAX_IMAGE_BYTES:,} bytes")
    return data
