"""The op registry: one file per family of layer kinds, each imported when a spec first names
one of its ops (``index.py`` says which file defines which op).

To add a layer kind: add an ``OpDef`` to the family file (a new family file goes in
``index.FAMILIES``), run ``python -m archspec.ops.registry``, and add a case to
tests/test_ops.py. Other packages add theirs through the ``archspec.ops`` entry-point
group (lang/plugins.py), loaded when a name is not a built-in op or when the ops are listed.
"""

from archspec.ops.base import (
           Attrs,
           Category,
           Cost,
           Ctx,
           Function,
           Learned,
           Module,
           OpDef,
           Shape,
           ShapeError,
           Step,
           TorchCall,
)
from archspec.ops.registry import REGISTRY

__all__ = ["REGISTRY", "Attrs", "Category", "Cost", "Ctx", "Function", "Learned", "Module", "OpDef",
           "Shape", "ShapeError", "Step", "TorchCall"]
