"""Ops from other packages: a distribution declares them under the ``archspec.ops`` entry-point
group, and they join the registry like built-in ones (specs, check, compile, ONNX, docs).

An entry point names an :class:`~archspec.ops.base.OpDef` or a list of them, and is named like
its op (a spec naming ``scaled_tanh`` imports only that entry point)::

    [project.entry-points."archspec.ops"]
    scaled_tanh = "archspec_demo_ops:SCALED_TANH"

A plugin's torch rule may name ``torch`` targets or ``nn.Module`` classes of its own package;
``archspec compile`` copies such a class's source into the file it writes, so the class must
use nothing but ``torch`` (as archspec's own helpers in backends/modules.py do).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from archspec.lang.diagnostics import error
from archspec.ops.base import REGISTRY, OpDef, register

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


def _ops_of(ep: EntryPoint) -> tuple[OpDef, ...]:
    """The OpDefs an entry point names; anything else is an E011 naming the package."""
    hint = f"fix or uninstall the package that declares it ({_origin(ep)})"
    try:
        obj = ep.load()
    except Exception as exc:  # a plugin's own bug: reported, whatever it is
        raise error("E011", f"plugin op `{ep.name}` ({ep.value}) cannot be loaded: "
                    f"{type(exc).__name__}: {exc}", hint=hint) from None
    ops = (obj,) if isinstance(obj, OpDef) else tuple(obj) if isinstance(obj, list | tuple) \
        else (obj,)
    for op in ops:
        if not isinstance(op, OpDef):
            raise error("E011", f"plugin entry point `{ep.name}` ({ep.value}) is a "
                        f"{type(op).__name__}, not an archspec OpDef", hint=hint)
        for name in (op.name, *op.aliases):
            if name in REGISTRY:
                owner = PLUGINS.get(name, "archspec")
                raise error("E011", f"plugin op `{name}` from {_origin(ep)} takes a name "
                            f"{owner} already registers", hint=hint)
    return ops


def _load(ep: EntryPoint) -> None:
    """Register the ops of one entry point (once)."""
    if (ep.name, ep.value) in _LOADED:
        return
    _LOADED.add((ep.name, ep.value))
    for op in _ops_of(ep):
        register(op)
        PLUGINS.update(dict.fromkeys((op.name, *op.aliases), _origin(ep)))
    PLUGIN_ROOTS.add(ep.module.split(".")[0])


def load_plugins() -> None:
    """Register the ops of every installed ``archspec.ops`` entry point (once per process)."""
    if _SCANNED:
        return
    _SCANNED.append(True)
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.value, e.name)):
        _load(ep)


def lookup(name: str) -> OpDef | None:
    """The op called ``name``: a built-in one, else one from the plugin entry point of that
    name (only that one is imported, so a typo imports no plugin), else None."""
    if name not in REGISTRY:
        for ep in sorted(entry_points(group=GROUP, name=name), key=lambda e: e.value):
            _load(ep)
    return REGISTRY.get(name)
