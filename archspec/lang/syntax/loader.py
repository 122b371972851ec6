"""Reading spec files: file checks, format dispatch, imports and parameter overrides."""

from __future__ import annotations

import contextlib
import functools
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from archspec.lang import ir
from archspec.lang.collection import paused
from archspec.lang.diagnostics import Collector, did_you_mean, error
from archspec.lang.initializers import check_init
from archspec.lang.source import SourceFile, Span, display_name

FORMATS = ("arch", "yaml")

# The largest spec file read, in bytes, checked before reading: a spec is text a person writes
# (the shipped ones are a few kB), so more is a mistake or an attack such as `/dev/zero`.
MAX_SPEC_BYTES = 10 * 1024 * 1024

# How many files deep `import` may chain (a imports b imports c ...) before it is an error.
MAX_IMPORT_DEPTH = 64

# Environment variable naming extra folders (os.pathsep-separated) that `import` may search.
SEARCH_PATH_ENV = "ARCHSPEC_PATH"

_SEARCH_HINT = "imports resolve under the importing file's folder, --path folders and " \
    f"${SEARCH_PATH_ENV}; `std/...` names the shipped library"

# The spec library shipped inside the package (the repository's specs/): `import
# "std/blocks/resnet.arch"` resolves here from any folder, and may not leave it.
STD_PREFIX = "std/"


def is_std(path: str | Path) -> bool:
    """Whether ``path`` names a spec of the shipped library: it starts with ``std/``, whether
    or not a local folder ``std`` exists (``./std/x.arch`` names the local file)."""
    return str(path).startswith(STD_PREFIX)


@functools.cache
def std_root() -> Path:
    """The folder of the shipped spec library (``archspec/std``, resolved once)."""
    return (Path(__file__).resolve().parents[2] / "std").resolve()


def read_source(path: str | Path, where: Span | None = None) -> SourceFile:
    """Read a spec file as UTF-8 text; missing, unreadable, special, huge, binary or empty files
    are errors, located at ``where`` (an import line) or else at the file itself."""
    p = Path(path)
    name = display_name(p)
    at = where or Span(SourceFile(name, ""), 1, 1)
    try:
        info = os.stat(p)
    except FileNotFoundError:
        raise error("E001", f"no such file: {name}", at,
                    hint="check the path and spelling") from None
    except OSError as exc:
        raise error("E002", f"cannot read {name}: {exc.strerror}", at,
                    hint="check the file's permissions") from None
    _check_regular(info, name, at)
    return source_from_bytes(name, _read_limited(p, name, at))


def _check_regular(info: os.stat_result, name: str, at: Span) -> None:
    """Refuse directories, devices, FIFOs and sockets, and files over ``MAX_SPEC_BYTES``."""
    if stat.S_ISDIR(info.st_mode):
        raise error("E002", f"{name} is a directory, not a spec file", at,
                    hint="pass a .arch or .yaml file")
    if not stat.S_ISREG(info.st_mode):
        raise error("E002", f"{name} is not a regular file (a device, FIFO or socket)", at,
                    hint="a spec is a plain .arch or .yaml file")
    if info.st_size > MAX_SPEC_BYTES:
        raise error("E005", f"{name} is larger than {MAX_SPEC_BYTES} bytes", at,
                    hint="a spec is a short text file; check that the path names one")


def _read_limited(p: Path, name: str, at: Span) -> bytes:
    """Read at most ``MAX_SPEC_BYTES`` without ever blocking (the file may have been swapped for
    a FIFO since it was checked: it is opened non-blocking and checked again)."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise error("E002", f"cannot read {name}: {exc.strerror}", at,
                    hint="check the file's permissions") from None
    with os.fdopen(fd, "rb") as f:
        _check_regular(os.fstat(f.fileno()), name, at)
        data = f.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise error("E005", f"{name} is larger than {MAX_SPEC_BYTES} bytes", at,
                    hint="a spec is a short text file; check that the path names one")
    return data


def source_from_bytes(name: str, data: bytes) -> SourceFile:
    """Decode spec bytes, rejecting binary and empty input with a located error."""
    where = Span(SourceFile(name, ""), 1, 1)
    if b"\x00" in data[:8192]:
        raise error("E003", f"{name} is a binary file, not a spec", where,
                    hint="a spec is UTF-8 text (.arch or .yaml)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error("E003", f"{name} is not UTF-8 text (bad byte at offset {exc.start})", where,
                    hint="save the file as UTF-8") from None
    if not text.strip():
        raise error("E004", f"{name} is empty", where,
                    hint="a spec needs at least an `input` line and one layer")
    return SourceFile(name, text)


def format_of(path: str | Path) -> str:
    """``yaml`` for .yaml/.yml files, ``arch`` otherwise."""
    return "yaml" if Path(path).suffix.lower() in (".yaml", ".yml") else "arch"


def parse_source(source: SourceFile, fmt: str) -> ir.Spec:
    """Parse one source in ``fmt`` into a Spec without resolving imports."""
    if fmt == "yaml":
        from archspec.lang.syntax.yaml_reader import yaml_to_spec

        spec = yaml_to_spec(source)
    else:
        from archspec.lang.syntax.to_ir import parse

        spec = parts_to_spec(parse(source), source)
    _check(spec)
    return spec


def _no_input(where: Span) -> None:
    raise error("E111", "the network has no `input`", where,
                hint="declare one before the layers, e.g. `input x: 3x224x224`")


def _check(spec: ir.Spec) -> None:
    """Checks of a whole file that no single grammar rule can make; every failing one is
    reported, not only the first."""
    errors = Collector()
    if not spec.inputs and spec.body:
        with errors.check():
            _no_input(spec.body[0].span)
    for kind, names in (("input", list(spec.inputs)), ("block", list(spec.blocks))):
        seen: dict[str, Any] = {}
        for item in names:
            with errors.check():
                if item.name in seen:
                    raise error("E114", f"{kind} `{item.name}` is defined twice", item.span,
                                hint=f"rename one; the first is at {seen[item.name].span}")
            seen.setdefault(item.name, item)
    for block in spec.blocks:
        with errors.check():
            _check_block_inputs(block)
    for rules in (spec.inits, *(b.inits for b in spec.blocks)):
        seen_ops: dict[str, ir.InitRule] = {}
        for rule in rules:
            with errors.check():
                check_init(rule)
                if rule.op in seen_ops:
                    raise error("E114", f"`init {rule.op}` is given twice", rule.span,
                                hint=f"keep one; the first is at {seen_ops[rule.op].span}")
            seen_ops.setdefault(rule.op, rule)
    for p in [*spec.params, *(p for b in spec.blocks for p in b.params)]:
        with errors.check():
            if p.type not in ir.PARAM_TYPES:
                raise error("E113", f"unknown type `{p.type}` for parameter `{p.name}`", p.span,
                            hint=did_you_mean(p.type, ir.PARAM_TYPES) or
                            f"types: {', '.join(ir.PARAM_TYPES)}")
    errors.raise_any()


def _check_block_inputs(block: ir.BlockDef) -> None:
    """A block's named inputs are distinct."""
    twice = sorted({n for n in block.inputs if block.inputs.count(n) > 1})
    if twice:
        raise error("E114", f"input `{twice[0]}` of block `{block.name}` is named twice",
                    block.span, hint="give each input of the block its own name")


def parts_to_spec(parts: dict[str, list[Any]], source: SourceFile) -> ir.Spec:
    """Assemble a Spec from top-level parts, checking there is one network and an input."""
    nets = parts["network"]
    if len(nets) > 1:
        raise error("E110", "more than one `network` line", nets[1][2],
                    hint="a file describes one network; move the other to its own file")
    if nets and not parts["input"] and not parts["stmt"]:
        _no_input(nets[0][2])
    name, params, span = nets[0] if nets else (Path(source.name).stem, (), Span(source, 1, 1))
    outputs = [o for group in parts["output"] for o in group]
    return ir.Spec.made(name=name, params=params, imports=tuple(i for i, _ in parts["import"]),
                        inputs=tuple(parts["input"]), outputs=tuple(outputs),
                        inits=tuple(parts["init"]), blocks=tuple(parts["block"]),
                        body=tuple(parts["stmt"]), span=span)


def search_roots(search_path: Iterable[str | Path] = ()) -> tuple[Path, ...]:
    """The folders imports may search besides the importing file's: ``search_path``, then
    those in ``$ARCHSPEC_PATH``; empty entries are skipped."""
    env = os.environ.get(SEARCH_PATH_ENV, "").split(os.pathsep)
    return tuple(Path(d).resolve() for d in (*search_path, *env) if str(d).strip())


def _import_span(source: SourceFile, rel: str) -> Span:
    """The place of ``import "rel"`` (or a YAML `imports` entry) in ``source``."""
    for number, line in enumerate(source.text.splitlines(), 1):
        col = line.find(rel)
        if rel and col >= 0 and "#" not in line[:col]:
            return Span(source, number, col + 1, col + 1 + len(rel))
    return Span(source, 1, 1)


def _inside(path: Path, folders: Iterable[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def _locate(rel: str, base: Path, roots: tuple[Path, ...], at: Span) -> Path:
    """The resolved file ``rel`` names under ``base`` or a search root (under the shipped
    library for ``std/...``); it may not leave them."""
    if Path(rel).is_absolute() or Path(rel).drive or rel.startswith(("/", "\\")):
        raise error("E115", f"`import \"{rel}\"`: an absolute path may not be imported", at,
                    hint=f"write the path relative to the importing file; {_SEARCH_HINT}")
    std = rel.startswith(STD_PREFIX)
    inner = rel.removeprefix(STD_PREFIX) if std else rel
    if os.path.normpath(inner).split(os.sep)[0] == os.pardir:
        where = "the shipped library" if std else "the importing file's folder"
        raise error("E115", f"`import \"{rel}\"`: `..` leaves {where}", at,
                    hint=f"add the folder with --path or ${SEARCH_PATH_ENV}; {_SEARCH_HINT}")
    folders = (std_root(),) if std else (base.resolve(), *roots)
    for folder in folders:
        candidate = folder / inner
        if os.path.lexists(candidate):
            try:
                path = candidate.resolve()
            except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
                raise error("E002", f"`import \"{rel}\"`: a symbolic link loop", at,
                            hint="point the link at a spec file") from None
            if not _inside(path, folders):
                raise error("E115", f"`import \"{rel}\"` is a link to outside the allowed "
                            "folders", at, hint=_SEARCH_HINT)
            return path
    raise error("E001", f"`import \"{rel}\"`: no such file", at,
                hint=f"searched {', '.join(display_name(f) for f in folders)}; {_SEARCH_HINT}")


class Imported(NamedTuple):
    """One imported file resolved: the blocks it gives (its own and its imports'), how deep its
    imports nest (1: it imports nothing) and the stamp of every file read for it."""

    blocks: dict[str, ir.BlockDef]
    depth: int
    stamps: tuple[tuple[Path, object], ...]


@dataclass
class ImportCache:
    """Imported files parsed once and reused across loads while none of the files read for
    them has changed (the language server keeps one). ``opened`` gives the text of a file that
    is open in an editor (None: the file on disk), which is read in place of the file's.
    Inside :meth:`recording`, ``read`` collects the stamp of every file a load reads."""

    opened: Callable[[Path], str | None] = lambda path: None
    files: dict[Path, Imported] = field(default_factory=dict)
    read: dict[Path, object] | None = None

    def stamp(self, path: Path) -> object:
        """What ``path`` is now: its open text, or its size and modification time on disk."""
        found: object = self.opened(path)
        if found is None:
            try:
                info = os.stat(path)
                found = info.st_mtime_ns, info.st_size, info.st_ino
            except OSError:
                pass
        if self.read is not None:
            self.read.setdefault(path, found)
        return found

    @contextlib.contextmanager
    def recording(self) -> Iterator[dict[Path, object]]:
        """The files the loads inside the ``with`` read for imports, directly or not, by
        resolved path, with their stamps when read: also those of a load that fails."""
        self.read = {}
        try:
            yield self.read
        finally:
            self.read = None

    def reusable(self, path: Path, stack: tuple[Path, ...]) -> Imported | None:
        """The kept resolution of ``path``, if no file read for it has changed and resolving
        it again could raise no error where it is imported now: no file of it on the import
        ``stack`` (a cycle), and room under :data:`MAX_IMPORT_DEPTH` for its depth."""
        kept = self.files.get(path)
        if kept is None or len(stack) + kept.depth > MAX_IMPORT_DEPTH:
            return None
        if any(p in stack or self.stamp(p) != stamp for p, stamp in kept.stamps):
            return None
        return kept

    def source(self, path: Path, at: Span) -> SourceFile:
        """The text of ``path`` (as :func:`read_source` reads it, or its open document's)."""
        text = self.opened(path)
        if text is None:
            return read_source(path, at)
        return source_from_bytes(display_name(path), text.encode("utf-8"))


@dataclass
class _Imports:
    """One load's import resolution: each file is read and parsed once, by resolved path (and
    once across loads, with an :class:`ImportCache`)."""

    roots: tuple[Path, ...]
    cache: ImportCache | None = None
    done: dict[Path, Imported] = field(default_factory=dict)

    def resolve(self, spec: ir.Spec, source: SourceFile, base: Path,
                stack: tuple[Path, ...]) -> tuple[ir.Spec, list[Imported]]:
        """``spec`` with the blocks of its imports (and theirs) in its ``library``, and the
        resolution of each file it imports."""
        library: dict[str, ir.BlockDef] = {}
        imported = []
        for rel in spec.imports:
            at = _import_span(source, rel)
            path = _locate(rel, base, self.roots, at)
            if path in stack:
                raise error("E112", f"import cycle: `{rel}` imports this file again", at,
                            hint=" -> ".join(p.name for p in (*stack, path)))
            if len(stack) >= MAX_IMPORT_DEPTH:
                raise error("E118", f"imports nested more than {MAX_IMPORT_DEPTH} files deep",
                            at, hint="flatten the chain of imports")
            if path not in self.done:
                self.done[path] = self._file(path, at, stack)
            imported.append(self.done[path])
            library.update(self.done[path].blocks)
        return (spec.model_copy(update={"library": library}) if library else spec), imported

    def _file(self, path: Path, at: Span, stack: tuple[Path, ...]) -> Imported:
        """The imported file ``path``: read, parsed and its imports resolved, or kept."""
        kept = self.cache.reusable(path, stack) if self.cache is not None else None
        if kept is not None:
            return kept
        stamp = self.cache.stamp(path) if self.cache is not None else None
        sub_source = self.cache.source(path, at) if self.cache is not None else \
            read_source(path, at)
        sub, below = self.resolve(parse_source(sub_source, format_of(path)), sub_source,
                                  path.parent, (*stack, path))
        stamps = {path: stamp}
        for item in below:
            stamps.update(item.stamps)
        done = Imported(sub.all_blocks(), 1 + max((i.depth for i in below), default=0),
                        tuple(stamps.items()))
        if self.cache is not None:
            self.cache.files[path] = done
        return done


@paused()
def loads(text: str, format: str = "arch", name: str = "<string>",
          base: str | Path = ".", *, search_path: Iterable[str | Path] = (),
          imports: ImportCache | None = None, **overrides: Any) -> ir.Spec:
    """Parse spec ``text`` (``format`` "arch" or "yaml"); imports resolve under ``base`` and
    ``search_path`` (then ``$ARCHSPEC_PATH``), through ``imports`` when given."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    source = source_from_bytes(name, text.encode("utf-8"))
    spec, _ = _Imports(search_roots(search_path), imports).resolve(
        parse_source(source, format), source, Path(base), ())
    return with_overrides(spec, overrides)


@paused()
def load(path: str | Path, *, search_path: Iterable[str | Path] = (),
         imports: ImportCache | None = None, **overrides: Any) -> ir.Spec:
    """Read and parse the spec at ``path`` (``std/...`` always names a shipped spec, never a
    local folder called ``std``); imports resolve under its folder and ``search_path`` (then
    ``$ARCHSPEC_PATH``), through ``imports`` when given; other keyword arguments override
    network parameters."""
    p = Path(path)
    if is_std(path):
        p = _locate(str(path), Path.cwd(), (), Span(SourceFile(str(path), ""), 1, 1))
    source = read_source(p)
    spec, _ = _Imports(search_roots(search_path), imports).resolve(
        parse_source(source, format_of(p)), source, p.parent, (p.resolve(),))
    return with_overrides(spec, overrides)


def with_overrides(spec: ir.Spec, overrides: dict[str, Any]) -> ir.Spec:
    """Return ``spec`` with network parameters overridden; unknown names are errors."""
    if not overrides:
        return spec
    known = {p.name: p for p in spec.params}
    for key in overrides:
        if key not in known:
            hint = did_you_mean(key, known) or (
                f"the network's parameters are: {', '.join(known) or '(none)'}")
            raise error("E120", f"`{key}` is not a parameter of network `{spec.name}`",
                        spec.span, hint=hint)
    return spec.model_copy(update={"overrides": {**spec.overrides, **overrides}})


def with_input_shapes(spec: ir.Spec, shapes: dict[str, tuple[int, ...]]) -> ir.Spec:
    """Return ``spec`` with the per-sample shapes of the named inputs replaced."""
    known = {d.name: d for d in spec.inputs}
    for key in shapes:
        if key not in known:
            raise error("E131", f"`{key}` is not an input of network `{spec.name}`", spec.span,
                        hint=did_you_mean(key, known) or f"inputs: {', '.join(known)}")
    inputs = tuple(
        d.model_copy(update={"shape": tuple(ir.Lit(value=v, span=d.span) for v in shapes[d.name])})
        if d.name in shapes else d for d in spec.inputs)
    return spec.model_copy(update={"inputs": inputs})
