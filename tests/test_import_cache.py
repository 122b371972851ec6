"""The import cache of the language server (archspec/lang/syntax/loader.py ImportCache): an
imported file is parsed once and reused while no file read for it changes, its open
document's text is read in place of the file, and a cached file gives the same spec and the
same errors (cycles, nesting depth) as loading without the cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from archspec.lang.diagnostics import ArchspecError
from archspec.lang.syntax import loader
from archspec.lang.syntax.loader import MAX_IMPORT_DEPTH, ImportCache, load

MAIN = 'import "a.arch"\ninput x: 3x8x8\nunit(4) -> pair(4)\n'
A = 'import "b.arch"\nblock unit(c: int) { conv2d(c, 1) }\n'
B = "block pair(c: int) { conv2d(c, 3, padding=1) -> relu }\n"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, text in (("main.arch", MAIN), ("a.arch", A), ("b.arch", B)):
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files parsed, in order."""
    names: list[str] = []
    parse = loader.parse_source

    def counting(source: Any, fmt: str) -> Any:
        names.append(Path(source.name).name)
        return parse(source, fmt)

    monkeypatch.setattr(loader, "parse_source", counting)
    return names


def outcome(path: Path, cache: ImportCache | None) -> Any:
    try:
        spec = load(path, imports=cache)
    except ArchspecError as exc:
        return [d.render() for d in exc.diagnostics]
    return spec.model_dump(), {k: b.model_dump() for k, b in spec.library.items()}


def touch(path: Path, text: str) -> None:
    """Rewrite ``path`` and move its modification time on (a same-second write changes it)."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_imports_are_parsed_once_while_unchanged(files: Path, parsed: list[str]) -> None:
    cache = ImportCache()
    first = outcome(files / "main.arch", cache)
    assert parsed == ["main.arch", "a.arch", "b.arch"]
    assert outcome(files / "main.arch", cache) == first
    assert parsed[3:] == ["main.arch"]  # the imports came from the cache
    assert first == outcome(files / "main.arch", None)


def test_a_changed_file_is_read_again_with_what_imports_it(files: Path,
                                                           parsed: list[str]) -> None:
    cache = ImportCache()
    outcome(files / "main.arch", cache)
    touch(files / "b.arch", B.replace("relu", "sigmoid"))
    del parsed[:]
    changed = outcome(files / "main.arch", cache)
    assert parsed == ["main.arch", "a.arch", "b.arch"]  # b changed, so a (which imports it)
    assert changed == outcome(files / "main.arch", None)
    assert "sigmoid" in repr(changed)


def test_an_open_document_is_read_instead_of_its_file(files: Path) -> None:
    texts = {(files / "b.arch").resolve(): B.replace("relu", "gelu")}
    cache = ImportCache(opened=texts.get)
    assert "gelu" in repr(outcome(files / "main.arch", cache))
    texts[(files / "b.arch").resolve()] = B.replace("relu", "tanh")
    edited = outcome(files / "main.arch", cache)
    assert "tanh" in repr(edited) and "gelu" not in repr(edited)
    del texts[(files / "b.arch").resolve()]  # closed: the file on disk again
    assert outcome(files / "main.arch", cache) == outcome(files / "main.arch", None)


def test_a_cycle_through_a_cached_file_is_still_an_error(files: Path) -> None:
    """b.arch is cached (from main.arch and from c.arch); then b is changed to import
    main.arch: loading main must say E112 exactly as an uncached load does."""
    cache = ImportCache()
    outcome(files / "main.arch", cache)
    (files / "c.arch").write_text('import "b.arch"\ninput x: 3x8x8\npair(4)\n')
    assert outcome(files / "c.arch", cache) == outcome(files / "c.arch", None)
    touch(files / "b.arch", 'import "main.arch"\n' + B)
    errors = outcome(files / "main.arch", cache)
    assert errors == outcome(files / "main.arch", None)
    assert "E112" in errors[0]


def test_the_depth_limit_holds_for_cached_files(tmp_path: Path) -> None:
    """A chain of imports cached from a short stack, then imported from a longer one that
    goes past MAX_IMPORT_DEPTH: the same E118 as without the cache."""
    depth = MAX_IMPORT_DEPTH
    for i in range(depth):
        nxt = f'import "f{i + 1}.arch"\n' if i + 1 < depth else ""
        (tmp_path / f"f{i}.arch").write_text(f"{nxt}block b{i}() {{ relu }}\n")
    cache = ImportCache()
    short = tmp_path / "short.arch"
    short.write_text(f'import "f{depth // 2}.arch"\ninput x: 3x8x8\nb{depth - 1}()\n')
    assert outcome(short, cache) == outcome(short, None)
    deep = tmp_path / "deep.arch"
    deep.write_text('import "f0.arch"\ninput x: 3x8x8\nb0()\n')
    errors = outcome(deep, cache)
    assert errors == outcome(deep, None)
    assert "E118" in errors[0]
