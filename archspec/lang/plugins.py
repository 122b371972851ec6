"""Ops from other packages: a distribution declares them under the ``archspec.ops`` entry-point
group, and they join the registry like built-in ones (specs, check, compile, ONNX, docs).

An entry point names an :class:`~archspec.ops.base.OpDef` or a list of them, and is named like
its op (a spec naming ``scaled_tanh`` imports only that entry point)::

    [project.entry-points."archspec.ops"]
    scaled_tanh = "archspec_demo_ops:SCALED_TANH"

A plugin's torch rule may name ``torch`` targets or ``nn.Module`` classes of its own package;
``archspec compile`` copies such a class's source into the file it writes, so the class must
use nothing but ``torch`` (as archspec's own helpers in backends/modules/ do).

Only installed distributions count: an entry point is loaded only when its distribution's
metadata and its module both live in the interpreter's own package folders (site-packages,
the user site, the folders ``$PYTHONPATH`` names). ``python -m archspec`` and ``torchrun -m``
put the working directory first on ``sys.path``; a downloaded spec folder that ships a
``*.dist-info`` (or a module named like an installed plugin) is refused there, with E011 at
the spec line that named the op.
"""

from __future__ import annotations

import importlib.util
import os
import site
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

from archspec.lang.diagnostics import NOWHERE, error
from archspec.lang.source import Span
from archspec.ops.base import OpDef
from archspec.ops.registry import REGISTRY, register

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "archspec.ops"

# op name (and aliases) -> the distribution that provides it
PLUGINS: dict[str, str] = {}

# top-level modules of plugin packages: where their torch rules' targets may point
PLUGIN_ROOTS: set[str] = set()

# Scanning installed packages takes ~0.1 s, so it waits until the ops are listed; a spec
# loads only the entry point named like an op it does not know.
_SCANNED: list[bool] = []
_LOADED: set[tuple[str, str]] = set()


def _origin(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.value


def package_folders() -> list[Path]:
    """Where installed distributions live: site-packages (``sysconfig``, ``site``), the user
    site and the folders ``$PYTHONPATH`` names; never the working directory that ``python -m``
    puts first on ``sys.path``, unless it is one of these."""
    folders = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    folders.update(getattr(site, "getsitepackages", list)())
    folders.add(site.getusersitepackages())
    folders.update(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    return [Path(f).resolve() for f in sorted(folders)]


def _inside(path: str | os.PathLike[str] | None, folders: list[Path]) -> bool:
    if path is None:
        return False
    real = Path(path).resolve()
    return any(real == f or f in real.parents for f in folders)


def _untrusted(ep: EntryPoint) -> str | None:
    """Why ``ep`` is not from an installed distribution (None when it is): its metadata or
    its module outside :func:`package_folders`."""
    folders = package_folders()
    dist = ep.dist
    where = dist.locate_file("") if dist is not None else None
    if not _inside(where, folders):
        return f"its distribution's metadata is at {where}, outside the installed packages"
    try:
        found = importlib.util.find_spec(ep.module.split(".")[0])
    except (ImportError, ValueError):
        found = None
    origin = found.origin if found is not None and found.has_location else None
    roots = found.submodule_search_locations if found is not None else None
    if not (_inside(origin, folders) or (roots and all(_inside(r, folders) for r in roots))):
        return f"its module `{ep.module}` would be imported from {origin or 'elsewhere'}, " \
               "outside the installed packages"
    return None


def _ops_of(ep: EntryPoint, span: Span = NOWHERE, check: bool = True) -> tuple[OpDef, ...]:
    """The OpDefs an entry point names; anything else is an E011 naming the package, located
    at ``span`` (the spec's call) where there is one. ``check``: refuse an entry point that is
    not from an installed distribution (:func:`_untrusted`)."""
    hint = f"fix or uninstall the package that declares it ({_origin(ep)})"
    why = _untrusted(ep) if check else None
    if why is not None:
        raise error("E011", f"plugin op `{ep.name}` ({ep.value}) is not loaded: {why}", span,
                    hint="plugins load only from installed packages (pip install); run "
                         "archspec outside a folder that ships package metadata")
    try:
        obj = ep.load()
    except Exception as exc:  # a plugin's own bug: reported, whatever it is
        raise error("E011", f"plugin op `{ep.name}` ({ep.value}) cannot be loaded: "
                    f"{type(exc).__name__}: {exc}", span, hint=hint) from None
    ops = (obj,) if isinstance(obj, OpDef) else tuple(obj) if isinstance(obj, list | tuple) \
        else (obj,)
    for op in ops:
        if not isinstance(op, OpDef):
            raise error("E011", f"plugin entry point `{ep.name}` ({ep.value}) is a "
                        f"{type(op).__name__}, not an archspec OpDef", span, hint=hint)
        for name in (op.name, *op.aliases):
            if name in REGISTRY:
                owner = PLUGINS.get(name, "archspec")
                raise error("E011", f"plugin op `{name}` from {_origin(ep)} takes a name "
                            f"{owner} already registers", span, hint=hint)
    return ops


def _load(ep: EntryPoint, span: Span = NOWHERE) -> None:
    """Register the ops of one entry point (once)."""
    if (ep.name, ep.value) in _LOADED:
        return
    _LOADED.add((ep.name, ep.value))
    for op in _ops_of(ep, span):
        register(op)
        PLUGINS.update(dict.fromkeys((op.name, *op.aliases), _origin(ep)))
    PLUGIN_ROOTS.add(ep.module.split(".")[0])


def load_plugins() -> None:
    """Register the ops of every installed ``archspec.ops`` entry point (once per process)."""
    if _SCANNED:
        return
    _SCANNED.append(True)
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.value, e.name)):
        _load(ep)


def lookup(name: str, span: Span = NOWHERE) -> OpDef | None:
    """The op called ``name``: a built-in one, else one from the plugin entry point of that
    name (only that one is imported, so a typo imports no plugin), else None. A plugin that
    cannot be loaded is an E011 at ``span`` (the spec's call)."""
    if name not in REGISTRY:
        from importlib.metadata import entry_points

        for ep in sorted(entry_points(group=GROUP, name=name), key=lambda e: e.value):
            _load(ep, span)
    return REGISTRY.get(name)
