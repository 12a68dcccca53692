"""Recipes for malformed tensor files, each built byte by byte or through numpy,
zipfile and h5py the way a crashed job, a flaky copy or another tool leaves them.
Used by bad_inputs_test.py.
"""

import io
import struct
import zipfile

import h5py
import numpy as np

NPY_MAGIC = b"\x93NUMPY"


def npy_bytes(array):
    """The bytes np.save writes for `array`."""
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def npy_with_header(header, data=b"", major=1):
    """An NPY file whose header is `header`, as text, padded the way numpy pads it."""
    text = header.encode("latin1")
    prefix = 10 if major == 1 else 12
    text += b" " * (-(prefix + len(text) + 1) % 64) + b"\n"
    length = struct.pack("<H" if major == 1 else "<I", len(text))
    return NPY_MAGIC + bytes([major, 0]) + length + text + data


def npy_header_length(data):
    """The header length field of a version 1.0 NPY file."""
    return struct.unpack_from("<H", data, 8)[0]


def zip_with(members, compression=zipfile.ZIP_STORED):
    """A zip archive holding `members`, a dict of name to bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def zip_claiming_size(data, delta):
    """A one-member deflated zip whose local header and central directory both
    say the member is `delta` bytes longer than it is. zipfile writes no zip64
    extra for small members, so the 32-bit size fields are the only ones."""
    archive = bytearray(zip_with({"act.npy": data}, zipfile.ZIP_DEFLATED))
    real = struct.unpack_from("<I", archive, 22)[0]
    struct.pack_into("<I", archive, 22, real + delta)
    central = archive.rfind(b"PK\x01\x02")
    struct.pack_into("<I", archive, central + 24, real + delta)
    return bytes(archive)


def write_zip_bomb(path, shape):
    """An NPZ whose one member, a float32 tensor of zeros, deflates about a
    thousand to one; written streaming, so building it takes little memory."""
    header = npy_with_header(
        f"{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple(shape)}, }}")
    zeros = bytes(1 << 20)
    total = int(np.prod(shape)) * 4
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("act.npy", "w", force_zip64=True) as member:
            member.write(header)
            for _ in range(total // len(zeros)):
                member.write(zeros)
            member.write(bytes(total % len(zeros)))


def write_hdf5_with_filter(path, array, filter_id, values):
    """A chunked HDF5 dataset `/act` whose pipeline names `filter_id`, which
    this process cannot decode: h5py's dcpl takes any registered id, and its
    chunks are written raw, past the filter, with write_direct_chunk."""
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((1, *array.shape[1:]))
        dcpl.set_filter(filter_id, h5py.h5z.FLAG_OPTIONAL, values)
        space = h5py.h5s.create_simple(array.shape)
        dataset = h5py.h5d.create(f.id, b"act", h5py.h5t.NATIVE_FLOAT, space, dcpl)
        for i in range(array.shape[0]):
            dataset.write_direct_chunk((i,) + (0,) * (array.ndim - 1), array[i].tobytes())


def write_hdf5_with_corrupt_chunk(path, array):
    """A gzip-chunked HDF5 dataset `/act` whose first chunk has 16 bytes
    flipped in its middle, where the deflate stream can no longer decode."""
    with h5py.File(path, "w") as f:
        f.create_dataset("act", data=array, chunks=(1, *array.shape[1:]), compression="gzip")
    with h5py.File(path, "r") as f:
        chunk = f["act"].id.get_chunk_info(0)
    data = bytearray(open(path, "rb").read())
    middle = chunk.byte_offset + chunk.size // 2
    for i in range(middle, middle + 16):
        data[i] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)


# torch.save files (the zip format of torch >= 1.6), their data.pkl written opcode by
# opcode as torch.save writes it (pickle protocol 2), so that any part can be made wrong.

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # a fixed date: the same recipe gives the same bytes

def pickle_int(n):
    """BININT for what fits 32 bits, LONG1 otherwise."""
    if -(1 << 31) <= n < (1 << 31):
        return b"J" + struct.pack("<i", n)
    length = (n.bit_length() + 8) // 8
    return b"\x8a" + bytes([length]) + n.to_bytes(length, "little", signed=True)


def pickle_str(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def pickle_tuple(items):
    return b"(" + b"".join(items) + b"t"


def pickle_tensor(shape, stride, offset=0, numel=24, key="0", storage=b"torch\nFloatStorage"):
    """torch._utils._rebuild_tensor_v2((storage), offset, shape, stride, False, OrderedDict())."""
    persistent_id = pickle_tuple([pickle_str("storage"), b"c" + storage + b"\n", pickle_str(key),
                                  pickle_str("cpu"), pickle_int(numel)])
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + persistent_id + b"Q" + pickle_int(offset)
            + pickle_tuple(pickle_int(n) for n in shape)
            + pickle_tuple(pickle_int(n) for n in stride)
            + b"\x89ccollections\nOrderedDict\n)RtR")


def pickle_dict(items):
    """A dict of (key, pickled value) pairs."""
    return b"}(" + b"".join(pickle_str(k) + v for k, v in items) + b"u"


def pickled(body):
    return b"\x80\x02" + body + b"."


def torch_zip(data_pkl, storages, folder="m"):
    """A torch.save archive: data.pkl first, then data/<key> for every storage."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo(f"{folder}/data.pkl", ZIP_EPOCH), data_pkl)
        for key, data in storages.items():
            z.writestr(zipfile.ZipInfo(f"{folder}/data/{key}", ZIP_EPOCH), data)
        z.writestr(zipfile.ZipInfo(f"{folder}/version", ZIP_EPOCH), b"3\n")
    return out.getvalue()


def float_storage(numel=24):
    return np.arange(numel, dtype="<f4").tobytes()

