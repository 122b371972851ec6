"""Expansion: blocks, arguments, repeats, loops and conditions -> a flat :class:`Graph`.

- ``state.py``: values, naming frames, flows (sequence, branches, dense) and the base class.
- ``statements.py``: bodies, ``if``, ``for`` and ``repeat`` (nesting and iteration limits).
- ``flows.py``: chains, multi-result assignment, ``concat``/``dense``/``residual``, DAG inputs.
- ``names.py``: dotted labels and re-opened groups, rebound names and ``each(name)``, and the
  check that a layer is not given as an argument value.
- ``calls.py``: op calls and their attributes, block calls and their parameters.
- ``nodes.py``: op nodes with inferred shapes, their warnings and limits.
- ``core.py``: :class:`Expander`, the network's inputs and outputs, ``ELEMENTS``, ``expand``.
"""

from __future__ import annotations

from archspec.lang.expander.core import ELEMENTS, Expander, expand

__all__ = ["ELEMENTS", "Expander", "expand"]
