"""The helper classes an ejected file carries as source: archspec's own ``nn.Module`` helpers
(:mod:`archspec.backends.modules`) and the classes of plugin packages, which, like the
helpers, use nothing but torch."""

from __future__ import annotations

import inspect

from archspec.backends.torch import resolve
from archspec.lang.plugins import PLUGIN_ROOTS
from archspec.ops import Function, Learned, Module

HELPERS = "archspec.backends.modules."  # targets whose class source the ejected file carries


def helper_targets(calls: list[Module | Function | Learned]) -> list[str]:
    """The targets, in first-use order, whose source the ejected file carries; a helper that
    builds other helpers (its ``requires``: their class names) comes after them."""
    flat = [part for c in calls
            for part in ((c.factory, c.combine) if isinstance(c, Learned) else (c,))]
    targets = [c.target for c in flat if carried(c.target)]
    return list(dict.fromkeys(needed for target in targets for needed in (
        *(f"{target.rpartition('.')[0]}.{name}"
          for name in getattr(resolve(target), "requires", ())), target)))


def carried(target: str) -> bool:
    """Whether the ejected file carries the source of ``target``'s class: archspec's helpers
    and the classes of plugin packages (which, like the helpers, use nothing but torch)."""
    return target.startswith(HELPERS) or target.split(".")[0] in PLUGIN_ROOTS


def helper_sources(targets: list[str]) -> list[str]:
    """The class source of each target, as its module holds it."""
    return [inspect.getsource(resolve(t)).rstrip() for t in targets]
