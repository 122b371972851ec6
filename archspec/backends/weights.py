"""Weights from files: ``torch.save`` state dicts, `archspec train` checkpoints and safetensors
files (`archspec import --weights`), read as data (``torch.load(weights_only=True)``; safetensors
holds tensors only) and checked against a spec, every problem located.

Shared by ONNX export (``--weights``) and training (``--resume``); imports torch, never onnx.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from archspec.lang import ir
from archspec.lang.diagnostics import ArchspecError, Diagnostic, error
from archspec.lang.network import Graph
from archspec.lang.source import Span


def bad_checkpoint(path: str | Path, reason: str, spec: ir.Spec) -> ArchspecError:
    """E611 at the spec's `network` line: ``path`` is not a checkpoint archspec reads, for
    ``reason``."""
    return error("E611", f"cannot read the weights {path}: {reason}", spec.span,
                 hint="give a torch.save(state_dict) file or an `archspec train` checkpoint "
                      "holding tensors only")


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if isinstance(exc, pickle.UnpicklingError) and found:
        return (f"it holds Python objects ({found.group(1)}), not only tensors and plain "
                "containers; they are never loaded, since loading them could run code")
    return "it is truncated or not a torch.save file"


def read_safetensors(path: Path, spec: ir.Spec) -> Mapping[str, Any]:
    """The tensors of a ``.safetensors`` file (the format holds tensors and a JSON header,
    never code); a truncated or malformed file is an E611 naming it."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise bad_checkpoint(path, "reading .safetensors needs the `safetensors` package "
                             "(pip install safetensors)", spec) from None
    try:
        return load_file(str(path), device="cpu")
    except OSError:
        raise
    except Exception as exc:  # safetensors reports a bad header as several exception types
        raise bad_checkpoint(path, f"it is not a whole safetensors file ({exc})", spec) from None


def read_checkpoint(path: str | Path, spec: ir.Spec) -> Mapping[str, Any]:
    """The mapping a ``torch.save`` file holds, read with ``torch.load(weights_only=True)``
    (so no pickled code runs), or a ``.safetensors`` file's tensors. An empty, truncated or
    unsafe file, or one that holds no mapping, is an E611 at the spec's `network` line naming
    the file."""
    import torch

    path = Path(path)
    if path.stat().st_size == 0:
        raise bad_checkpoint(path, "the file is empty", spec)
    if path.suffix == ".safetensors":
        return read_safetensors(path, spec)
    try:  # a zip checkpoint is memory-mapped: its tensors are read where they are used
        with warnings.catch_warnings():  # a sparse entry is refused, located, when it is used
            warnings.filterwarnings("ignore", message="Validating sparse tensor invariants")
            data = torch.load(path, map_location="cpu", weights_only=True,
                              mmap=zipfile.is_zipfile(path))
    except OSError:
        raise
    except Exception as exc:  # torch reports a bad file with many exception types
        raise bad_checkpoint(path, _load_failure(exc), spec) from None
    if not isinstance(data, Mapping):
        raise bad_checkpoint(path, f"it holds a {type(data).__name__}, not a mapping of names to "
                              "tensors", spec)
    return data


def _entry_problem(value: Any, expected: Any) -> str | None:
    """Why the checkpoint entry ``value`` cannot stand for ``expected`` (a tensor), or None."""
    import torch

    if not isinstance(value, torch.Tensor):
        return f"is a {type(value).__name__}, not a tensor"
    if value.is_meta:
        return "is a meta tensor (it has no data)"
    if value.layout != torch.strided or value.is_quantized:
        kind = "quantized" if value.is_quantized else f"{value.layout} (sparse)"
        return f"is a {kind} tensor, not a dense one"
    if value.is_complex() or expected is not None and \
            expected.is_floating_point() != value.is_floating_point():
        need = "real" if expected is None else str(expected.dtype).removeprefix("torch.")
        return f"holds {str(value.dtype).removeprefix('torch.')} values, this layer needs {need}"
    return None


def _key_span(key: str, spec: ir.Spec, graph: Graph) -> Span:
    """The layer a state-dict key belongs to (the longest prefix of it that names a layer: a
    composite op's own modules, ``attn.cpb_mlp.0.weight``, belong to ``attn``), or the
    spec's `network` line."""
    parts = key.split(".")
    for end in range(len(parts) - 1, 0, -1):
        node = graph.nodes.get(".".join(parts[:end]))
        if node is not None:
            return node.span
    return spec.span


def checked_state(state: Mapping[Any, Any], where: str, spec: ir.Spec,
                  graph: Graph) -> dict[str, Any]:
    """``state`` as the spec's tensors: every entry a dense tensor with data, floating where
    the layer's is (bf16, fp16 and float64 converted to its dtype), integer where it is
    integer; keys and shapes as :func:`_check_state` checks them. Anything else is located."""
    from archspec.backends.torch import state_layout

    expected = state_layout(graph)
    for key, value in state.items():
        if not isinstance(key, str):
            raise error("E612", f"{where}: the key {key!r} is not a name", spec.span,
                        hint="state-dict keys are dotted layer names")
        problem = _entry_problem(value, expected.get(key))
        if problem:
            raise error("E612", f"{where}: `{key}` {problem}", _key_span(key, spec, graph),
                        hint="save the model's state_dict() (floating weights)")
    _check_state(dict(state), expected, where, spec, graph)
    return {k: v.to(expected[k].dtype) for k, v in state.items()}


def _check_state(state: dict[str, Any], expected: dict[str, Any], where: str,
                 spec: ir.Spec, graph: Graph) -> None:
    """One error listing every missing, unexpected and wrong-shape entry; each mismatch is
    also a note at the layer it belongs to."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected)
                   if tuple(state[k].shape) != tuple(expected[k].shape))
    if not (missing or extra or wrong):
        return
    notes = [(f"`{k}` is {list(state[k].shape)}, this layer needs {list(expected[k].shape)}",
              _key_span(k, spec, graph)) for k in wrong[:10]]
    notes += [(f"`{k}` {list(expected[k].shape)} is missing from the weights",
               _key_span(k, spec, graph)) for k in missing[:10]]
    lines = [f"unexpected: {k} {list(state[k].shape)}" for k in extra[:10]]
    span = notes[0][1] if notes else next(iter(graph.nodes.values())).span
    raise ArchspecError(Diagnostic(
        "E610", f"{where} does not fit the spec: {len(missing)} missing, {len(extra)} "
        f"unexpected, {len(wrong)} wrong-shape entries" + "".join(f"; {ln}" for ln in lines)
        + ("; ..." if len(extra) > 10 else ""), span,
        hint="check --set values (e.g. num_classes) and that the weights are for this spec",
        notes=tuple(notes)))


def checkpoint_classes(ckpt: Mapping[str, Any], path: str | Path,
                       spec: ir.Spec) -> list[str] | None:
    """The class names an `archspec train` checkpoint stores (None for a plain state_dict or
    an older checkpoint); anything but a list of strings is an error (E611)."""
    names = ckpt.get("classes")
    if names is None or not isinstance(ckpt.get("state_dict"), Mapping):
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad_checkpoint(path, "its `classes` entry is not a list of names", spec)
    return names


def _is_ints(value: Any) -> bool:
    """Whether ``value`` is a list of plain ints (not bools)."""
    return isinstance(value, list) and all(type(v) is int for v in value)


_DATA_FIELDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "builtin": {"samples": lambda v: type(v) is int and v > 0, "seed": lambda v: type(v) is int,
                "classes": lambda v: type(v) is int and v > 0,
                "shape": lambda v: _is_ints(v) and len(v) == 3},
    "folder": {"path": lambda v: isinstance(v, str)},
}


def checkpoint_data(ckpt: Mapping[str, Any], path: str | Path,
                    spec: ir.Spec) -> Mapping[str, Any] | None:
    """The data an `archspec train` checkpoint was trained on (its ``data`` entry): the
    built-in data's ``samples``, ``seed``, ``classes`` (count) and ``shape`` ``[C, H, W]``, or
    the image folder's ``path`` as given to ``--data``. None for a plain state_dict or an older
    checkpoint; an entry of another form is an error (E611)."""
    data = ckpt.get("data")
    if data is None or not isinstance(ckpt.get("state_dict"), Mapping):
        return None
    kind = data.get("kind") if isinstance(data, Mapping) else None
    fields = _DATA_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None or set(data) != {"kind", *fields} or \
            not all(ok(data[name]) for name, ok in fields.items()):
        raise bad_checkpoint(path, "its `data` entry is not the built-in data's samples, seed, "
                             "classes and shape, nor an image folder's path", spec)
    return data
