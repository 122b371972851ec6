"""Writing an ONNX file whose weights move once: from the arrays (often memory-mapped from the
checkpoint) straight into the file, with no protobuf copy of them in between.

The graph without initialisers is serialised by protobuf (small). The initialisers follow it in
the same file as a second ``graph`` field of the ModelProto: protobuf parsers merge repeated
occurrences of a message field (their repeated ``initializer`` fields concatenate), so the file
reads as one model. Each initialiser is written as its header (name, type, dims) and a
``raw_data`` field whose bytes come straight from the array's memory.

Models whose weights pass :data:`EXTERNAL_ABOVE` bytes (protobuf cannot hold 2 GiB) are written
with ONNX external data instead: ``model.onnx`` plus ``model.onnx.data``, each initialiser
naming its offset and length there. Both files are written atomically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def write_inline(skeleton: onnx.ModelProto, initialisers: Mapping[str, Initialiser],
                 path: str | Path) -> None:
    """One protobuf file: ``skeleton`` (a model with no initialisers) then its initialisers
    as a second, merged ``graph`` field."""
    pieces = _pieces(initialisers)
    size = sum(len(p) + (0 if a is None else a.nbytes) for p, a in pieces)
    with atomic_file(path) as f:
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
    path = Path(path)
    data_path = path.with_name(path.name + ".data")
    tensors: list[TensorProto] = []
    with atomic_file(data_path) as f:
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
            for key, val in (("location", data_path.name), ("offset", str(offset)),
                             ("length", str(array.nbytes))):
                tensor.external_data.add(key=key, value=val)
            tensors.append(tensor)
            offset += array.nbytes
    skeleton.graph.initializer.extend(tensors)
    with atomic_file(path) as f:
        f.write(skeleton.SerializeToString())
    return data_path


def weight_bytes(initialisers: Iterable[Initialiser]) -> int:
    """Bytes of the array initialisers' data."""
    return sum(v.nbytes for v in initialisers if isinstance(v, np.ndarray))
