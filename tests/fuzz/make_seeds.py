#!/usr/bin/python3
"""Write the fuzz targets' seed corpora, made from sample_data/.

Usage: make_seeds.py SAMPLE_DATA OUTPUT_DIR

Writes OUTPUT_DIR/<target>/ for every target of tests/fuzz (other files there
are left alone):
  npy_header  the header (magic to the first data byte) of every sample NPY file
  npy_pool    the small sample NPY files whole, and a miniature of every sample
              (at most 2 along each axis, same dtype, byte order, memory order
              and format version)
  npz         the sample NPZ files, and miniatures of them, stored and deflated,
              with and without numpy's zip64 extra fields
  hdf5_list   the sample HDF5 files, and miniatures of them (same types,
              chunking, filters and attributes), in the earliest and the latest
              HDF5 file format
  safetensors the sample safetensors files, and miniatures of them, with and
              without metadata
  torch_pt    torch.save files (torch's zip format): a tensor alone, of every
              storage type, in a dict, an OrderedDict, a list and nested
              containers, an nn.Parameter, views with offsets and strides
  arguments   --size, --layout, FILE:NAME and --channels values, one
              "SIZE\\nLAYOUT\\nNAME\\nSLICE" a file, with the names of the
              samples' tensors

Small seeds let the fuzzer mutate every feature of the samples quickly; the
whole samples keep the real files' structure in the corpus. The output is the
same on every run. Run with Debian's Python (numpy, h5py and torch).
"""

import io
import os
import sys
import zipfile

import h5py
import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import safetensors_files  # noqa: E402

TARGETS = ("arguments", "hdf5_list", "npy_header", "npy_pool", "npz", "safetensors",
           "torch_pt")

# Sample NPY files up to this size are seeds as they are.
SMALL_FILE_BYTES = 8192

# Zip entries carry this date, so the seeds do not change with the clock.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

SIZES = ("1", "7", "7x7", "3x5", "_x7", "2x2x2", "_", "1x_x3", "0x7", "7x", "x", "-1",
         "18446744073709551615", "18446744073709551616", "7X7", " 7")
LAYOUTS = ("NCHW", "NHWC", "NCL", "NLC", "NCDHW", "NDHWC", "CHW", "HWC", "L", "nchw", "NCHWN",
           "NC", "N1HW", "")
SLICES = (":64", "8:24", "-16:", "::4", "::-1", "8:24:2", "5", "-1", "1:2:0", "a:b", "1:2:3:4",
          ":", "", "-9223372036854775808:9223372036854775807:-9223372036854775808",
          "9223372036854775808")


def miniature(array):
    """The array cut to at most 2 along every axis, in its own memory order."""
    small = array[tuple(slice(0, 2) for _ in array.shape)]
    return np.asfortranarray(small) if np.isfortran(array) else np.ascontiguousarray(small)


def npy_bytes(array, version):
    out = io.BytesIO()
    np.lib.format.write_array(out, array, version=version, allow_pickle=True)
    return out.getvalue()


def read_npy(path):
    """The array, its format version and the length of everything before its data."""
    with open(path, "rb") as f:
        prefix = f.read(12)
    version = (prefix[6], prefix[7])
    if version[0] == 1:
        data_offset = 10 + int.from_bytes(prefix[8:10], "little")
    else:
        data_offset = 12 + int.from_bytes(prefix[8:12], "little")
    return np.load(path, allow_pickle=True), version, data_offset


def write(directory, name, data):
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def samples_of(samples, suffix):
    """(name, stem, path, bytes) of every sample file whose name ends with `suffix`."""
    for name in sorted(os.listdir(samples)):
        if name.endswith(suffix):
            path = os.path.join(samples, name)
            with open(path, "rb") as f:
                yield name, name[:-len(suffix)], path, f.read()


def npy_seeds(samples, out):
    for name, stem, path, whole in samples_of(samples, ".npy"):
        array, version, data_offset = read_npy(path)
        write(out["npy_header"], stem + ".header", whole[:data_offset])
        if len(whole) <= SMALL_FILE_BYTES:
            write(out["npy_pool"], name, whole)
        write(out["npy_pool"], "mini_" + name, npy_bytes(miniature(array), version))


def npz_bytes(members, compression, zip64):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression, allowZip64=True) as zf:
        for key, array in members.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_EPOCH)
            info.compress_type = compression
            info.external_attr = 0o600 << 16
            with zf.open(info, "w", force_zip64=zip64) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)
    return out.getvalue()


def npz_seeds(samples, out):
    for name, stem, path, whole in samples_of(samples, ".npz"):
        write(out["npz"], name, whole)
        with np.load(path) as archive:
            members = {key: miniature(archive[key]) for key in archive.files}
        for label, compression in (("stored", zipfile.ZIP_STORED),
                                   ("deflated", zipfile.ZIP_DEFLATED)):
            for zip64 in (True, False):
                seed = f"mini_{stem}_{label}{'_zip64' if zip64 else ''}.npz"
                write(out["npz"], seed, npz_bytes(members, compression, zip64))


def torch_seeds(out):
    import collections

    import torch

    def saved(obj):
        data = io.BytesIO()
        torch.save(obj, data)
        return data.getvalue()

    base = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    dtypes = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
              torch.float16, torch.bfloat16, torch.float32, torch.float64)
    for dtype in dtypes:
        write(out["torch_pt"], f"{str(dtype)[6:]}.pt", saved(base[:1, :2].to(dtype)))
    seeds = {
        "dict.pt": {"layer4": base, "epoch": 3, "name": "resnet"},
        "ordered_dict.pt": collections.OrderedDict(conv1=base[0], conv2=base[1]),
        "list.pt": [base, base[:, :1]],
        "nested.pt": {"out": {"feats": [base[:1], base[1:]], "logits": base[:, :, 0]}},
        "views.pt": {"nhwc": base.permute(0, 2, 3, 1), "slice": base[:, 1:, ::2],
                     "expanded": base[:, :, :1, :1].expand(2, 3, 4, 4), "t": base[0, 0].t()},
        "parameter.pt": torch.nn.Parameter(base[:1]),
    }
    for name, obj in seeds.items():
        write(out["torch_pt"], name, saved(obj))


def new_h5(path, libver):
    """An HDF5 file whose root group has no timestamps (HDF5 stamps groups by
    default in the latest format), so the seeds are the same on every run."""
    bounds = {"earliest": h5py.h5f.LIBVER_EARLIEST, "latest": h5py.h5f.LIBVER_LATEST}
    access = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    access.set_libver_bounds(bounds[libver], h5py.h5f.LIBVER_LATEST)
    creation = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    creation.set_obj_track_times(False)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fapl=access,
                                     fcpl=creation))


def make_groups(target, path):
    """The groups above a dataset, created without timestamps, like the root."""
    properties = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    properties.set_obj_track_times(False)
    parts = path.strip("/").split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        name = "/".join(parts[:depth])
        if name not in target:
            h5py.h5g.create(target.id, name.encode(), gcpl=properties)


def copy_dataset(source, target):
    """A miniature of an h5py dataset: its type, filters and attributes, sliced."""
    data = miniature(source[()]) if source.shape else source[()]
    options = {}
    if source.chunks:
        options["chunks"] = tuple(min(c, max(1, s)) for c, s in zip(source.chunks, data.shape))
        options.update(compression=source.compression, compression_opts=source.compression_opts,
                       shuffle=source.shuffle, fletcher32=source.fletcher32)
    make_groups(target, source.name)
    copied = target.create_dataset(source.name, data=data, dtype=source.dtype, track_times=False,
                                   **options)
    for key, value in source.attrs.items():
        copied.attrs[key] = value


def h5_seeds(samples, out):
    for name, stem, path, whole in samples_of(samples, ".h5"):
        write(out["hdf5_list"], name, whole)
        with h5py.File(path, "r") as source:
            datasets = []
            source.visititems(
                lambda _, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None)
            for libver in ("earliest", "latest"):
                seed = os.path.join(out["hdf5_list"], f"mini_{stem}_{libver}.h5")
                with new_h5(seed, libver) as target:
                    for item in datasets:
                        copy_dataset(item, target)


def safetensors_seeds(samples, out):
    for name, stem, path, whole in samples_of(samples, ".safetensors"):
        write(out["safetensors"], name, whole)
        header, data = safetensors_files.read(path)
        members = {key: miniature(safetensors_files.array_of(entry, data))
                   for key, entry in header.items() if key != "__metadata__"}
        write(out["safetensors"], f"mini_{stem}.safetensors",
              safetensors_files.file_bytes(members, header.get("__metadata__")))
        write(out["safetensors"], f"mini_{stem}_bare.safetensors",
              safetensors_files.file_bytes(members))


def tensor_names(samples):
    """Every tensor name in the sample NPZ and HDF5 files, as FILE:NAME takes it."""
    names = []
    for name in sorted(os.listdir(samples)):
        path = os.path.join(samples, name)
        if name.endswith(".npz"):
            with zipfile.ZipFile(path) as zf:
                names += [member[:-len(".npy")] for member in zf.namelist()]
        elif name.endswith(".h5"):
            with h5py.File(path, "r") as f:
                f.visititems(lambda key, item: names.append("/" + key)
                             if isinstance(item, h5py.Dataset) else None)
    return names


def argument_seeds(samples, out):
    names = tensor_names(samples)
    names += ["layer*/act", "/block[12]/conv", "conv?", "*", "[", "a:b", "/", ""]
    count = max(len(SIZES), len(LAYOUTS), len(names), len(SLICES))
    for i in range(count):
        line = "\n".join((SIZES[i % len(SIZES)], LAYOUTS[i % len(LAYOUTS)], names[i % len(names)],
                          SLICES[i % len(SLICES)]))
        write(out["arguments"], f"value_{i:02d}", line.encode())


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_seeds.py SAMPLE_DATA OUTPUT_DIR")
    samples, output = sys.argv[1], sys.argv[2]
    out = {}
    for target in TARGETS:
        out[target] = os.path.join(output, target)
        os.makedirs(out[target], exist_ok=True)
    npy_seeds(samples, out)
    npz_seeds(samples, out)
    h5_seeds(samples, out)
    safetensors_seeds(samples, out)
    torch_seeds(out)
    argument_seeds(samples, out)


if __name__ == "__main__":
    main()
