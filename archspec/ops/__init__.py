"""The op registry. Importing this package registers every layer kind (one file per family).

To add a layer kind: add an ``OpDef`` to the family file (or a new file imported here) and a
case to tests/test_ops.py. Other packages add theirs through the ``archspec.ops`` entry-point
group (lang/plugins.py), loaded when a name is not a built-in op or when the ops are listed.
"""

from archspec.ops import (  # noqa: F401  (registers)
    activation,
    arith,  # tensor primitives: element-wise arithmetic
    attention,
    constants,  # tensor primitives: parameter, buffer, take
    conv,
    core,
    linalg,  # tensor primitives: matmul, einsum, scaled_dot_product_attention
    maxvit,
    merge,
    movement,  # tensor primitives: pad, roll, pixel (un)shuffle, stack, expand, tile
    norm,
    pool,
    reduce,  # tensor primitives: reductions
    resize,
    swin,
    swin_attention,
    tensor,
)
from archspec.ops.base import (
    REGISTRY,
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

__all__ = ["REGISTRY", "Attrs", "Category", "Cost", "Ctx", "Function", "Learned", "Module", "OpDef",
           "Shape", "ShapeError", "Step", "TorchCall"]
