"""A Python reference -> an ``nn.Module``. This imports and runs the code it names.

``package.module:callable`` imports the module (``torchvision.models:resnet50``);
``path/file.py:callable`` executes the file. The callable is called with the ``--kwargs``
(a module class is constructed, a module instance is taken as it is).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

from archspec.lang.diagnostics import error

_NAME = re.compile(r"^[A-Za-z_][\w.]*$")


def _bad(source: str, why: str, hint: str) -> Exception:
    return error("E001", f"cannot import `{source}`: {why}", hint=hint)


def _resolve(source: str) -> Any:
    """The object ``source`` names (``module:attr.attr`` or ``file.py:attr``)."""
    where, sep, attr = source.rpartition(":")
    if not sep or not attr or not _NAME.match(attr):
        raise _bad(source, "not `package.module:callable`, `file.py:callable` or an .onnx file",
                   "e.g. `torchvision.models:resnet50` or `nets.py:build`")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise _bad(source, f"no such file {where}", "give the path of a Python file")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise _bad(source, "the file cannot be loaded as a module", "check the path")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise _bad(source, f"no module `{where}` ({exc})",
                       "install the package or give a file.py path") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise _bad(source, f"`{where}` has no `{attr}`", "check the name after the colon")
        obj = getattr(obj, part)
    return obj


def load_module(source: str, kwargs: dict[str, Any]) -> tuple[Any, str]:
    """The ``nn.Module`` ``source`` builds, and a network name for it (its callable's)."""
    from torch import nn

    obj = _resolve(source)
    model = obj if isinstance(obj, nn.Module) else obj(**kwargs)
    if not isinstance(model, nn.Module):
        raise _bad(source, f"it gave a {type(model).__name__}, not an nn.Module",
                   "name a function or class that returns a torch.nn.Module")
    name = re.sub(r"\W", "_", source.rpartition(":")[2].split(".")[-1]).lower() or "net"
    return model, name if name[0].isalpha() else f"net_{name}"
