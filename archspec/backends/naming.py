"""Names that generated code invents, in the spirit of torch.fx's ``_Namespace``.

A :class:`Namespace` turns any label (``block1-0``, ``0``, ``class``) into a valid Python
identifier that is unique in it and its parents and never shadows a keyword, a builtin or a
name generated code relies on (``torch``, ``nn``, ``F``, ``self``). Module attribute names are
not made here: they stay the spec's labels exactly (see backends/eject/source.py).
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Hashable, Iterable

RESERVED = frozenset({*keyword.kwlist, *keyword.softkwlist, *dir(builtins),
                      "torch", "nn", "F", "self"})


def identifier(label: str) -> str:
    """``label`` with each character an ASCII identifier cannot hold replaced by ``_`` and a
    ``_`` in front of a leading digit: ``block1-0`` -> ``block1_0``, ``0`` -> ``_0``. ASCII
    only: Python reads a non-ASCII identifier as its NFKC form (``\U0001d42c`` is ``s``), which
    could equal a reserved or a taken name."""
    text = "".join(c if c.isascii() and f"_{c}".isidentifier() else "_" for c in label) or "_"
    return f"_{text}" if text[0].isdigit() else text


def camel(label: str) -> str:
    """``basic_block`` -> ``BasicBlock``: the parts between underscores, capitalised."""
    return "".join(part[:1].upper() + part[1:] for part in identifier(label).split("_"))


class Namespace:
    """Unique, safe identifiers; a child namespace also avoids every name of its parents."""

    def __init__(self, parent: Namespace | None = None, taken: Iterable[str] = ()) -> None:
        self.parent = parent
        self.taken: set[str] = set(taken)
        self.by_object: dict[Hashable, str] = {}

    def child(self) -> Namespace:
        """A nested namespace (a function's locals inside a module's names)."""
        return Namespace(self)

    def __contains__(self, name: str) -> bool:
        return name in RESERVED or name in self.taken or (
            self.parent is not None and name in self.parent)

    def name(self, label: str, obj: Hashable | None = None) -> str:
        """A new identifier for ``label`` (``relu``, ``relu2``, ``conv1_2``...); the same one
        again for an ``obj`` named before."""
        if obj is not None and obj in self.by_object:
            return self.by_object[obj]
        base = identifier(label)
        base = f"{base}_" if base in RESERVED else base
        sep = "_" if base[-1].isdigit() else ""
        found, n = base, 2
        while found in self:
            found, n = f"{base}{sep}{n}", n + 1
        self.taken.add(found)
        if obj is not None:
            self.by_object[obj] = found
        return found

    def class_name(self, label: str, default: str = "Network") -> str:
        """A CamelCase class name for ``label``; ``default`` leads when the label gives none
        that starts with a letter (``0`` -> ``Group0`` for ``default="Group"``)."""
        base = camel(label)
        return self.name(base if base[:1].isalpha() else default + base.lstrip("_"))
