"""OIP tensors <-> numpy arrays, for JSON, the binary-data extension and protobuf.

BYTES tensors travel raw as (4-byte little-endian length, bytes) per element, as the
protocol specifies; in JSON they are strings.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
# Which InferTensorContents field carries each datatype in gRPC (FP16 only travels raw).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class TensorError(ValueError):
    """A tensor that cannot be read as declared; the message says why."""


def datatype_of(array: np.ndarray) -> str:
    if array.dtype == np.object_:
        return "BYTES"
    for name, dtype in DTYPES.items():
        if dtype is not np.object_ and array.dtype == np.dtype(dtype):
            return name
    raise TensorError(f"no OIP datatype for {array.dtype}")


def _count(shape: list[int]) -> int:
    if any(int(d) < 0 for d in shape):
        raise TensorError(f"shape {shape} has a negative dimension")
    return math.prod(int(d) for d in shape)  # Python ints: 8 dimensions of 2**31 do not wrap


def _check_dtype(datatype: str) -> None:
    if datatype not in DTYPES:
        raise TensorError(f"unknown datatype {datatype!r}; one of {', '.join(DTYPES)}")


def from_raw(datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    _check_dtype(datatype)
    n = _count(shape)
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise TensorError("BYTES tensor ends inside an element's length prefix")
            (size,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + size > len(raw):
                raise TensorError("BYTES tensor element is longer than the data sent")
            items.append(raw[offset : offset + size])
            offset += size
        if len(items) != n:
            raise TensorError(f"BYTES tensor holds {len(items)} elements; shape {shape} needs {n}")
        return np.array(items, dtype=np.object_).reshape(shape)
    itemsize = np.dtype(DTYPES[datatype]).itemsize
    if len(raw) != n * itemsize:
        raise TensorError(f"{datatype} tensor of shape {shape} needs {n * itemsize} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=np.dtype(DTYPES[datatype]).newbyteorder("<")).reshape(shape)


def to_raw(array: np.ndarray) -> bytes:
    if array.dtype == np.object_:
        out = bytearray()
        for item in array.reshape(-1):
            data = item if isinstance(item, bytes) else str(item).encode()
            out += struct.pack("<I", len(data)) + data
        return bytes(out)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def from_json(tensor: dict[str, Any], raw: bytes | None = None) -> np.ndarray:
    try:
        datatype, shape = tensor["datatype"], [int(d) for d in tensor["shape"]]
    except (KeyError, TypeError, ValueError):
        raise TensorError(f"input {tensor.get('name')!r} needs a datatype and an integer shape") from None
    if raw is not None:
        return from_raw(datatype, shape, raw)
    _check_dtype(datatype)
    if "data" not in tensor:
        raise TensorError(f"input {tensor.get('name')!r} has no data")
    flat = np.asarray(tensor["data"], dtype=object).reshape(-1) if tensor["data"] != [] else np.array([], dtype=object)
    if flat.size != _count(shape):
        raise TensorError(f"input {tensor.get('name')!r}: shape {shape} needs {_count(shape)} values, got {flat.size}")
    if datatype == "BYTES":
        if not all(isinstance(x, str) for x in flat):
            raise TensorError(f"input {tensor.get('name')!r}: BYTES data must be strings")
        return np.array([x.encode() for x in flat], dtype=np.object_).reshape(shape)
    try:
        return np.array(flat.tolist(), dtype=DTYPES[datatype]).reshape(shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TensorError(f"input {tensor.get('name')!r}: data is not {datatype}: {exc}") from None


def to_json(name: str, array: np.ndarray) -> dict[str, Any]:
    if array.dtype == np.object_:
        data = [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in array.reshape(-1)]
    else:
        data = array.reshape(-1).tolist()
    return {"name": name, "datatype": datatype_of(array), "shape": list(array.shape), "data": data}


def from_contents(datatype: str, shape: list[int], contents: Any) -> np.ndarray:
    """gRPC InferTensorContents (typed repeated fields) -> array."""
    _check_dtype(datatype)
    if datatype not in CONTENTS_FIELD:
        raise TensorError(f"{datatype} travels only in raw_input_contents")
    values = list(getattr(contents, CONTENTS_FIELD[datatype]))
    if len(values) != _count(shape):
        raise TensorError(f"shape {shape} needs {_count(shape)} values, got {len(values)}")
    if datatype == "BYTES":
        return np.array(values, dtype=np.object_).reshape(shape)
    return np.array(values, dtype=DTYPES[datatype]).reshape(shape)
