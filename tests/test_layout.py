"""The package's shape (docs/architecture.md): layers in folders with imports pointing down
(import-linter's contracts in pyproject.toml), nothing importing the package root, and modules,
classes and functions small enough to read at once."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "archspec"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 80

# Long by nature, each with its reason. Keys are "path:qualified name" (or a path alone).
ALLOWED = {
    "archspec/lang/syntax/to_ir.py:ToIR": "a lark Transformer: one short method per grammar "
                                          "rule, which lark dispatches by name",
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "std" not in p.relative_to(PACKAGE).parts)


def _sizes(path: Path) -> list[tuple[str, str, int]]:
    """(kind, qualified name, lines) of every class and function in ``path``."""
    out: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                kind = "class" if isinstance(child, ast.ClassDef) else "function"
                out.append((kind, name, child.end_lineno - child.lineno + 1))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text("utf-8")), "")
    return out


def test_sizes_a_reader_can_hold() -> None:
    limits = {"class": MAX_CLASS_LINES, "function": MAX_FUNCTION_LINES}
    over = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text("utf-8").splitlines())
        if lines > MAX_MODULE_LINES and rel not in ALLOWED:
            over.append(f"{rel}: {lines} lines (at most {MAX_MODULE_LINES})")
        over += [f"{rel}:{name}: {kind} of {n} lines (at most {limits[kind]})"
                 for kind, name, n in _sizes(path)
                 if n > limits[kind] and f"{rel}:{name}" not in ALLOWED]
    assert not over, "\n".join(over)


def test_allow_list_entries_are_still_needed() -> None:
    """An entry whose module, class or function shrank under the limits goes."""
    stale = []
    for key in ALLOWED:
        rel, _, name = key.partition(":")
        path = ROOT / rel
        if not name:
            if len(path.read_text("utf-8").splitlines()) <= MAX_MODULE_LINES:
                stale.append(key)
            continue
        sizes = {n: (kind, lines) for kind, n, lines in _sizes(path)}
        kind, lines = sizes.get(name, ("function", 0))
        limit = MAX_CLASS_LINES if kind == "class" else MAX_FUNCTION_LINES
        if lines <= limit:
            stale.append(key)
    assert not stale, stale


def test_package_root_holds_only_the_entry_points() -> None:
    files = sorted(p.name for p in PACKAGE.iterdir() if p.is_file())
    assert files == ["__init__.py", "__main__.py"], files


def test_nothing_inside_imports_the_package_root() -> None:
    """The root re-exports the public API from every layer, so a module importing it would
    import upwards (and in a cycle); import-linter does not see the container itself."""
    bad = []
    for path in _modules():
        if path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "archspec" and node.level == 0:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Import) and any(a.name == "archspec" for a in node.names):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad


def test_import_contracts_hold() -> None:
    """The layers and acyclic contracts of pyproject.toml (`.ci/run` runs the same)."""
    if importlib.util.find_spec("importlinter") is None or not shutil.which("lint-imports"):
        pytest.skip("import-linter is not installed (it is in the test extra)")
    res = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert ", 0 broken" in res.stdout
