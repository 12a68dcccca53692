"""Reading and writing .safetensors files with struct and json, as the format defines them.

The Python safetensors package is not in Debian; the format is small enough to do here: an
8-byte little-endian header length, a JSON header of {name: {"dtype", "shape",
"data_offsets"}} plus an optional "__metadata__" of strings, then the data, little-endian, in
C order.
"""

import json
import struct

import numpy as np

# The format's dtype names, and numpy's dtype for each that numpy has.
NUMPY_DTYPES = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"), "U64": np.dtype("<u8"), "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
}
NAMES = {dt.name: code for code, dt in NUMPY_DTYPES.items()}


def header_bytes(header):
    """A header as the format's library writes it: compact JSON padded with spaces to 8 bytes."""
    text = json.dumps(header, separators=(",", ":")).encode()
    return text + b" " * (-len(text) % 8)


def file_bytes(tensors, metadata=None):
    """A whole file of numpy arrays (or (dtype name, shape, raw bytes) triples for dtypes numpy
    lacks), laid out in the given order."""
    header = {} if metadata is None else {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, value in tensors.items():
        if isinstance(value, tuple):
            code, shape, data = value
        else:
            array = np.ascontiguousarray(value)
            code, shape = NAMES[array.dtype.name], list(array.shape)
            data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = header_bytes(header)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(file_bytes(tensors, metadata))


def read(path):
    """(header dict, data bytes) of a file."""
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def array_of(entry, data):
    """A header entry's tensor as a numpy array (dtypes numpy has)."""
    begin, end = entry["data_offsets"]
    dt = NUMPY_DTYPES[entry["dtype"]]
    return np.frombuffer(data[begin:end], dtype=dt).reshape(entry["shape"])
