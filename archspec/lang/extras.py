"""Optional dependencies: which `pip install 'archspec[...]'` extra brings which modules.

The core (parse, check, expand, graph, convert) needs none of them; the backends do. A command
or API call whose extra is missing raises :class:`MissingExtra` before importing anything, so
the user reads which extra to install instead of an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib.util

from archspec.lang.diagnostics import ArchspecError, Diagnostic
from archspec.lang.source import NOWHERE, Span

# extra name -> the top-level modules it installs (see [project.optional-dependencies]).
EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "onnx": ("onnx", "onnxruntime"),
    "vision": ("torchvision",),
    "graph": ("graphviz",),
    "plot": ("matplotlib",),
}


class MissingExtra(ArchspecError):
    """An optional dependency is not installed; the CLI exits 2 (a usage error) on it."""


def missing(*extras: str) -> list[str]:
    """The ``extras`` (keys of :data:`EXTRAS`) with a module that cannot be found; imports
    nothing."""
    return [x for x in extras if any(importlib.util.find_spec(m) is None for m in EXTRAS[x])]


def require(what: str, *extras: str, at: Span = NOWHERE) -> None:
    """Raise :class:`MissingExtra` naming the ``pip install`` line if any of ``extras`` is
    missing; ``what`` names the command or function that needs them."""
    absent = missing(*extras)
    if absent:
        raise missing_extra(what, *absent, at=at)


def missing_extra(what: str, *extras: str, at: Span = NOWHERE) -> MissingExtra:
    """The error for ``extras`` not installed (also for an import that failed after
    :func:`missing` found the module: a broken or blocked installation)."""
    modules = ", ".join(m for x in extras for m in EXTRAS[x])
    return MissingExtra(Diagnostic("E010", f"{what} needs {modules} (not installed)", at,
                                   hint=f"pip install 'archspec[{','.join(extras)}]'"))
