"""Writing an ONNX file whose weights move once: from the arrays (often memory-mapped from the
checkpoint) straight into the file, with no protobuf copy of them in between.

The graph without initialisers is serialised by protobuf (small). The initialisers follow it in
the same file as a second ``graph`` field of the ModelProto: protobuf parsers merge repeated
occurrences of a message field (their repeated ``initializer`` fields concatenate), so the file
reads as one model. Each initialiser is written as its header (name, type, dims) and a
``raw_data`` field whose bytes come straight from the array's memory.

Models whose weights pass :data:`EXTERNAL_ABOVE` bytes (protobuf cannot hold 2 GiB) are written
with ONNX external data instead: ``model.onnx`` plus ``model.onnx.data``, each initialiser
naming its offset and length there. Both files are written atomically. A single-file model
written over an earlier external-data export removes that export's ``.data``, once the new
model is in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper

from archspec.files.atomic import atomic_file

#: Above this many bytes of weights, export writes ONNX external data (2 GiB less 64 MiB of
#: room for the graph itself).
EXTERNAL_ABOVE = 2**31 - 2**26

#: Offsets of tensors in an external data file are multiples of this (bytes).
ALIGN = 64

Initialiser = TensorProto | np.ndarray


def little_endian(array: np.ndarray) -> np.ndarray:
    """``array`` C-contiguous and little-endian, as ONNX raw data is (no copy if it is)."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def header(name: str, array: np.ndarray) -> TensorProto:
    """An initialiser's name, element type and dims, without its data."""
    tensor = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
    tensor.dims.extend(array.shape)
    return tensor


def to_proto(name: str, value: Initialiser) -> TensorProto:
    """A whole TensorProto (data included) for an in-memory model."""
    if isinstance(value, TensorProto):
        return value
    tensor = header(name, value)
    tensor.raw_data = little_endian(value).tobytes()
    return tensor


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(field: int, length: int) -> bytes:
    """The key and length prefix of a length-delimited protobuf field."""
    return _varint(field << 3 | 2) + _varint(length)


GRAPH_FIELD, INITIALIZER_FIELD, RAW_DATA_FIELD = 7, 5, 9


def _pieces(initialisers: Mapping[str, Initialiser]) -> list[tuple[bytes, np.ndarray | None]]:
    """Each initialiser as (serialised prefix, array whose bytes follow it, or None)."""
    pieces: list[tuple[bytes, np.ndarray | None]] = []
    for name, value in initialisers.items():
        if isinstance(value, TensorProto):
            data = value.SerializeToString()
            pieces.append((_key(INITIALIZER_FIELD, len(data)) + data, None))
            continue
        array = little_endian(value)
        head = header(name, array).SerializeToString() + _key(RAW_DATA_FIELD, array.nbytes)
        pieces.append((_key(INITIALIZER_FIELD, len(head) + array.nbytes) + head, array))
    return pieces


def _write_array(f: BinaryIO, array: np.ndarray) -> None:
    if array.nbytes:
        f.write(memoryview(array.reshape(-1).view(np.uint8)))


def data_path(path: str | Path) -> Path:
    """The external data file written beside the model ``path``: ``<path>.data``."""
    path = Path(path)
    return path.with_name(path.name + ".data")


def own_data_file(path: str | Path) -> Path | None:
    """``<path>.data`` when the ONNX model now at ``path`` keeps its weights there (an
    earlier external-data export), else None: no model, not ONNX, too large to be a graph
    without weights, or weights elsewhere. Reads the model's graph only."""
    path, data = Path(path), data_path(path)
    try:
        if not data.is_file() or not path.is_file() or path.stat().st_size > EXTERNAL_ABOVE:
            return None
        model = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001 - an unreadable old file is simply not an export
        return None
    for tensor in model.graph.initializer:
        where = {e.key: e.value for e in tensor.external_data}
        if tensor.data_location == TensorProto.EXTERNAL and where.get("location") == data.name:
            return data
    return None


@contextmanager
def replacing_external_data(path: str | Path) -> Iterator[None]:
    """Around writing a single-file model to ``path``: once the new file is in place, remove
    the ``<path>.data`` the old model there read (:func:`own_data_file`), which nothing reads
    any more. When the write fails, the old model and its data stay as they were."""
    stale = own_data_file(path)
    yield
    if stale is not None:
        stale.unlink(missing_ok=True)


def write_inline(skeleton: onnx.ModelProto, initialisers: Mapping[str, Initialiser],
                 path: str | Path) -> None:
    """One protobuf file: ``skeleton`` (a model with no initialisers) then its initialisers
    as a second, merged ``graph`` field; an earlier export's ``<path>.data`` is removed
    (:func:`replacing_external_data`)."""
    pieces = _pieces(initialisers)
    size = sum(len(p) + (0 if a is None else a.nbytes) for p, a in pieces)
    with replacing_external_data(path), atomic_file(path) as f:
        f.write(skeleton.SerializeToString())
        f.write(_key(GRAPH_FIELD, size))
        for prefix, array in pieces:
            f.write(prefix)
            if array is not None:
                _write_array(f, array)


def write_external(skeleton: onnx.ModelProto, initialisers: Mapping[str, Initialiser],
                   path: str | Path) -> Path:
    """``path`` with every array initialiser's bytes in ``<path>.data`` (ONNX external data,
    offsets aligned to :data:`ALIGN`); ``skeleton`` gets the initialisers' headers. Returns the
    data file's path."""
    path, data = Path(path), data_path(path)
    tensors: list[TensorProto] = []
    with atomic_file(data) as f:
        offset = 0
        for name, value in initialisers.items():
            if isinstance(value, TensorProto):
                tensors.append(value)
                continue
            array = little_endian(value)
            f.write(b"\0" * (-offset % ALIGN))
            offset += -offset % ALIGN
            _write_array(f, array)
            tensor = header(name, array)
            tensor.data_location = TensorProto.EXTERNAL
            for key, val in (("location", data.name), ("offset", str(offset)),
                             ("length", str(array.nbytes))):
                tensor.external_data.add(key=key, value=val)
            tensors.append(tensor)
            offset += array.nbytes
    skeleton.graph.initializer.extend(tensors)
    with atomic_file(path) as f:
        f.write(skeleton.SerializeToString())
    return data


def weight_bytes(initialisers: Iterable[Initialiser]) -> int:
    """Bytes of the array initialisers' data."""
    return sum(v.nbytes for v in initialisers if isinstance(v, np.ndarray))
