"""Limits on what one spec may ask for, so that a hostile or mistaken spec ends in a located
error (codes E7xx) instead of a hang, a memory blow-up or a Python ``RecursionError``.

Every limit is far above what a real network needs (the largest shipped spec has about 1,100
layers and uses about 24,000 units of expression work) and low enough that reaching it takes
about a second; all are listed in docs/language.md ("Limits").
"""

from __future__ import annotations

MAX_INT_BITS = 63
"""An integer, written or computed, must fit in a signed 64-bit int: ``abs(v) < 2**63``."""

MAX_INT = 2**MAX_INT_BITS - 1
"""The largest integer magnitude an expression may produce (ONNX and PyTorch use int64)."""

MAX_INT_DIGITS = len(str(MAX_INT))
"""The most digits an integer literal may have (checked before the digits are converted)."""

MAX_SEQUENCE = 1_000_000
"""The most items in a list or characters in a string an expression may build, checked before
building it (``[0] * n``, ``range(n)``, ``"a" * n``)."""

MAX_WORK = 1_000_000
"""The most expression work one expansion may do: one unit per expression node evaluated plus
one per list item or string character it produces (a `for` over 100,000 items that builds a
large list each time would otherwise run for hours)."""

MAX_EXPR_DEPTH = 200
"""The deepest an expression may nest (parentheses, operator chains, unary minus and `not`)."""

MAX_SYNTAX_DEPTH = 150
"""The deepest the parsed IR of a spec may nest (braces, structures, expressions, lists; each
construct counts as one level), checked right after parsing, before the printer, the YAML
writer or the expander walk it recursively."""

MAX_NESTING = 64
"""The deepest bodies may nest while expanding: ``{ }`` bodies, ``repeat``, ``for``, ``if``,
structures and block calls (a block's body is one level deeper than its call)."""

MAX_BATCH = 2**31 - 1
"""The largest batch a command accepts (``--batch``): far past any machine's memory, and an
int32 for the backends that store it so."""

MAX_ELEMENTS = MAX_INT
"""The most elements one tensor may hold per sample, and the largest total (MACs, FLOPs,
bytes) the analysis reports: what a signed 64-bit count holds (E701 beyond)."""

MAX_LAYERS = 20_000
"""The most layers (graph nodes, synthetic merges included) one expansion may emit."""

MAX_LAYER_TENSORS = 2**32
"""The most parameter and buffer elements one layer may hold (17 GB in float32, beyond any
published layer): a window attention over a 1024x1024 window or a `linear` from 16 M features
to 16 M is a located error in `check`, not an allocation that `compile` or `export` cannot
make."""

MAX_ITERATIONS = 100_000
"""The most loop iterations (``repeat`` and ``for``, nested loops multiplied) one expansion may
run, layers emitted or not."""

MAX_YAML_DEPTH = 200
"""The deepest a YAML document may nest (mappings and lists), checked before composing it."""

MAX_YAML_NODES = 200_000
"""The most YAML nodes a document may hold once aliases are expanded (billion-laughs guard)."""
