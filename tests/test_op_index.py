"""The registry imports an op family when a spec first names one of its ops
(archspec/ops/index.py). Each case runs in a fresh interpreter, where nothing is imported
yet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str) -> object:
    """The JSON that ``code`` prints, run by a new interpreter in the repository."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def test_the_index_names_every_op_of_every_family_in_order() -> None:
    """The generated INDEX equals what importing every family registers, in the same order;
    an op added without regenerating it would never be found by a lookup."""
    built, written = _fresh(
        "import json; from archspec.ops.index import INDEX\n"
        "from archspec.ops.registry import build_index\n"
        "print(json.dumps([list(build_index().items()), list(INDEX.items())]))")
    assert written == built, "archspec/ops/index.py is out of date: run " \
        "`python -m archspec.ops.registry`"


def test_checking_a_resnet_imports_only_the_families_it_uses() -> None:
    """Every op of ResNet-50's graph resolves, while the attention, window, linear-algebra and
    Swin families are never imported; a name that is no op imports nothing."""
    loaded, ops, missing = _fresh(
        "import json, sys\n"
        "from archspec.lang.syntax.loader import load\n"
        "from archspec.lang.expander import expand\n"
        "from archspec.analysis.report import analyze\n"
        "from archspec.ops import REGISTRY\n"
        "spec = load('specs/resnet50.arch'); g = expand(spec); analyze(spec, graph=g)\n"
        "missing = 'no_such_op' in REGISTRY\n"
        "print(json.dumps([sorted(m for m in sys.modules if m.startswith('archspec.ops.')),"
        " sorted({n.op for n in g.nodes.values()}), missing]))")
    assert {"conv2d", "batchnorm2d", "relu", "add", "linear"} <= set(ops)
    for family in ("attention", "swin", "swin_attention", "maxvit", "linalg", "arith"):
        assert f"archspec.ops.{family}" not in loaded
    assert {"archspec.ops.conv", "archspec.ops.norm", "archspec.ops.activation"} <= set(loaded)
    assert missing is False


def test_listing_gives_the_order_of_a_full_import_whatever_was_looked_up_first() -> None:
    """Looking up a Swin op before a ReLU does not change the order `archspec ops`, the docs
    and completion list the ops in: the one of importing every family."""
    listed, full = _fresh(
        "import json; from archspec.ops import REGISTRY; from archspec.ops.index import INDEX\n"
        "REGISTRY['swin_block_v2']; REGISTRY.get('relu')\n"
        "print(json.dumps([list(REGISTRY)[:len(INDEX)], list(INDEX)]))")
    assert listed == full
    assert len(full) == len(set(full)) > 100
