"""`import` stays inside the spec's folder and the search path, reads only small regular files,
parses each file once per load, and locates every refusal at the import line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import archspec
from archspec.cli import main
from archspec.lang.diagnostics import ArchspecError
from archspec.lang.syntax import loader

BLOCK = "block two(c: int) { conv2d(c, 1) -> relu }\n"
SECRET = "password = hunter2-do-not-print"


def _net(folder: Path, target: str, name: str = "net.arch") -> Path:
    """A network in ``folder`` whose line 2 imports ``target`` and calls its block."""
    path = folder / name
    path.write_text(f'network n\nimport "{target}"\ninput x: 3x4x4\nbody: two(7)\n')
    return path


def _refused(path: Path, code: str, **kwargs: object) -> ArchspecError:
    """Load ``path``, expecting error ``code`` located at line 2 (the import) of ``path``."""
    with pytest.raises(ArchspecError) as info:
        archspec.load(path, **kwargs)
    err = info.value
    assert err.diagnostic.code == code, err.diagnostic.render()
    assert (Path(err.diagnostic.span.file).name, err.diagnostic.span.line) == (path.name, 2)
    return err


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    """A secrets file beside (not inside) the spec folder ``tmp_path / 'proj'``."""
    (tmp_path / "proj").mkdir()
    secret = tmp_path / "secrets.arch"
    secret.write_text(f"{SECRET}\n")
    return secret


def test_absolute_path_is_refused_without_reading_it(secrets: Path) -> None:
    net = _net(secrets.parent / "proj", str(secrets))
    err = _refused(net, "E115")
    assert "hunter2" not in err.diagnostic.render()


def test_dotdot_escape_is_refused_without_reading_it(secrets: Path) -> None:
    net = _net(secrets.parent / "proj", "../secrets.arch")
    err = _refused(net, "E115")
    assert "hunter2" not in err.diagnostic.render()


def test_symlink_escape_is_refused_without_reading_it(secrets: Path) -> None:
    proj = secrets.parent / "proj"
    (proj / "lib.arch").symlink_to(secrets)
    err = _refused(_net(proj, "lib.arch"), "E115")
    assert "hunter2" not in err.diagnostic.render()


def test_symlink_inside_the_folder_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.arch").write_text(BLOCK)
    (tmp_path / "lib.arch").symlink_to(tmp_path / "real.arch")
    g = archspec.expand(archspec.load(_net(tmp_path, "lib.arch")))
    assert g.nodes["body.0"].shape == (7, 4, 4)


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.arch").symlink_to(tmp_path / "b.arch")
    (tmp_path / "b.arch").symlink_to(tmp_path / "a.arch")
    _refused(_net(tmp_path, "a.arch"), "E002")


def test_dev_zero_is_refused(tmp_path: Path) -> None:
    # reached through the search path, so only the file-kind check stands in the way
    _refused(_net(tmp_path, "zero"), "E002", search_path=["/dev"])


def test_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.arch")
    err = _refused(_net(tmp_path, "pipe.arch"), "E002")
    assert "not a regular file" in err.diagnostic.message


def test_fifo_as_the_spec_itself_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.arch")
    with pytest.raises(ArchspecError) as info:
        archspec.load(tmp_path / "pipe.arch")
    assert info.value.diagnostic.code == "E002"


def test_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.arch").mkdir()
    _refused(_net(tmp_path, "dir.arch"), "E002")


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path,
                                                            monkeypatch) -> None:
    monkeypatch.setattr(loader, "MAX_SPEC_BYTES", 100)
    (tmp_path / "big.arch").write_text(BLOCK + "#" * 200 + "\n")
    _refused(_net(tmp_path, "big.arch"), "E005")


def test_missing_import_is_located_at_the_import_line(tmp_path: Path) -> None:
    err = _refused(_net(tmp_path, "nope.arch"), "E001")
    assert "nope.arch" in err.diagnostic.message


def test_search_path_argument_environment_and_cli(tmp_path: Path, monkeypatch,
                                                 capsys) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "b.arch").write_text(BLOCK)
    (tmp_path / "proj").mkdir()
    net = _net(tmp_path / "proj", "b.arch")
    _refused(net, "E001")
    assert archspec.load(net, search_path=[tmp_path / "lib"]).library
    monkeypatch.setenv("ARCHSPEC_PATH", os.pathsep.join(["", str(tmp_path / "lib")]))
    assert archspec.load(net).library
    monkeypatch.delenv("ARCHSPEC_PATH")
    main(["expand", str(net), "--path", str(tmp_path / "lib")])
    assert "body.0" in capsys.readouterr().out


def test_import_bomb_parses_each_file_once(tmp_path: Path, monkeypatch) -> None:
    for i in range(30):
        (tmp_path / f"f{i}.arch").write_text(
            f'import "f{i + 1}.arch"\nimport "./f{i + 1}.arch"\n'
            f"block b{i}(c: int) {{ conv2d(c, 1) }}\n")
    (tmp_path / "f30.arch").write_text(BLOCK)
    parses: list[str] = []
    real = loader.parse_source

    def counting(source, fmt):
        parses.append(source.name)
        return real(source, fmt)

    monkeypatch.setattr(loader, "parse_source", counting)
    spec = archspec.load(_net(tmp_path, "f0.arch"))
    assert len(parses) == 32  # net.arch and f0..f30, each once
    assert len(set(parses)) == 32
    assert "two" in spec.library and "b29" in spec.library


def test_import_cycle_is_located_at_the_closing_import(tmp_path: Path) -> None:
    (tmp_path / "a.arch").write_text('import "b.arch"\n' + BLOCK)
    (tmp_path / "b.arch").write_text('# b\nimport "a.arch"\n')
    with pytest.raises(ArchspecError) as info:
        archspec.load(_net(tmp_path, "a.arch"))
    d = info.value.diagnostic
    assert d.code == "E112"
    assert (Path(d.span.file).name, d.span.line, d.span.col) == ("b.arch", 2, 9)


def test_self_import_is_a_cycle_at_its_line(tmp_path: Path) -> None:
    _refused(_net(tmp_path, "net.arch"), "E112")


def test_yaml_import_escape_is_located(secrets: Path) -> None:
    net = secrets.parent / "proj" / "net.yaml"
    net.write_text("network: n\nimports: [../secrets.arch]\ninputs: {x: 3x4x4}\n"
                   "body:\n  - conv2d(4, 1)\n")
    err = _refused(net, "E115")
    assert "hunter2" not in err.diagnostic.render()


def test_import_depth_is_limited(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(loader, "MAX_IMPORT_DEPTH", 3)
    for i in range(5):
        (tmp_path / f"f{i}.arch").write_text(f'import "f{i + 1}.arch"\n')
    (tmp_path / "f5.arch").write_text(BLOCK)
    with pytest.raises(ArchspecError) as info:
        archspec.load(_net(tmp_path, "f0.arch"))
    assert info.value.diagnostic.code == "E118"
