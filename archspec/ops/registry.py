"""The registry of ops: every :class:`~archspec.ops.base.OpDef` by name, each built-in family
file imported when a spec first names one of its ops (``index.py`` says which file defines
which op).

``python -m archspec.ops.registry`` writes ``index.py``'s ``INDEX`` again, from what importing
every family registers: run it after adding or renaming an op (tests/test_op_index.py fails
while it is out of date).
"""

from __future__ import annotations

import sys
from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archspec.ops import index

if TYPE_CHECKING:
    from archspec.ops.base import OpDef


class Registry(dict[str, "OpDef"]):
    """Every op by name (and alias), a built-in family imported when first needed: a lookup
    (``[]``, ``get``, ``in``) imports the family file that defines the name
    (:data:`archspec.ops.index.INDEX`), so that ``check`` of a ResNet imports a ResNet's
    families; listing (``len``, iteration, ``keys``, ``values``, ``items``) imports them all
    and gives the built-in ops in the index's order, then the plugins' as registered.
    ``origins``: the module that registered each name."""

    def __init__(self) -> None:
        super().__init__()
        self.origins: dict[str, str] = {}
        self.complete = False

    def _fault(self, name: object) -> None:
        if isinstance(name, str) and name in index.INDEX and not dict.__contains__(self, name):
            index.load(index.INDEX[name])

    def load_all(self) -> None:
        """Import every built-in family; order the ops as the index does (once)."""
        if self.complete:
            return
        for family in index.FAMILIES:
            index.load(family)
        self.complete = True
        entries = dict(dict.items(self))
        dict.clear(self)
        for name in (*(n for n in index.INDEX if n in entries), *entries):
            dict.setdefault(self, name, entries[name])

    def __getitem__(self, name: str) -> OpDef:
        self._fault(name)
        return dict.__getitem__(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        self._fault(name)
        return dict.get(self, name, default)

    def __contains__(self, name: object) -> bool:
        self._fault(name)
        return dict.__contains__(self, name)

    def __iter__(self) -> Iterator[str]:
        self.load_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self.load_all()
        return dict.__len__(self)

    def keys(self) -> KeysView[str]:
        self.load_all()
        return dict.keys(self)

    def values(self) -> ValuesView[OpDef]:
        self.load_all()
        return dict.values(self)

    def items(self) -> ItemsView[str, OpDef]:
        self.load_all()
        return dict.items(self)


REGISTRY = Registry()


def register(op: OpDef) -> OpDef:
    """Add ``op`` (and its aliases) to the registry; the module that calls it is the op's
    origin (:attr:`Registry.origins`)."""
    origin = sys._getframe(1).f_globals.get("__name__", "")
    for name in (op.name, *op.aliases):
        if dict.__contains__(REGISTRY, name):
            raise ValueError(f"op {name!r} registered twice")
        dict.__setitem__(REGISTRY, name, op)
        REGISTRY.origins[name] = origin
    return op




def build_index() -> dict[str, str]:
    """Every built-in op name (and alias) -> its family, in ``index.FAMILIES`` order, each
    family's ops in the order it registers them; every family is imported."""
    REGISTRY.load_all()
    prefix = "archspec.ops."
    found = {name: origin[len(prefix):] for name, origin in REGISTRY.origins.items()
             if origin.startswith(prefix) and origin[len(prefix):] in index.FAMILIES}
    rank = {family: i for i, family in enumerate(index.FAMILIES)}
    order = sorted(enumerate(found.items()), key=lambda e: (rank[e[1][1]], e[0]))
    return dict(item for _, item in order)


def index_source(names: dict[str, str]) -> str:
    """The text of ``index.py`` with ``INDEX`` set to ``names`` (what follows its marker line
    is replaced)."""
    text = Path(index.__file__).read_text(encoding="utf-8")
    head = text[:text.rindex("\n" + index.MARKER + "\n") + len(index.MARKER) + 2]
    rows = "".join(f'    "{name}": "{family}",\n' for name, family in names.items())
    return f"{head}INDEX: dict[str, str] = {{\n{rows}}}\n"


if __name__ == "__main__":
    from archspec.ops import registry  # the module the families register into, not __main__

    built = registry.build_index()
    Path(index.__file__).write_text(index_source(built), encoding="utf-8")
    sys.stdout.write(f"{index.__file__}: {len(built)} ops\n")
