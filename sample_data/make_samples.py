#!/usr/bin/python3
"""Regenerate every sample in sample_data/ (writes beside this script).

Run with Debian's Python, which has numpy and h5py:

    /usr/bin/python3 sample_data/make_samples.py

The output is byte-for-byte deterministic: data comes from fixed seeds, NPZ
files are written entry by entry with a fixed zip timestamp (np.savez would
stamp "now"), and HDF5 datasets are created with track_times=False so no
creation or modification time lands in the file. Keep the whole folder small
(under 2 MiB): it is committed and read by the CLI and differential tests.
"""

import json
import os
import struct
import zipfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# The earliest date a zip entry can carry; fixed so NPZ files do not change
# with the time they were generated.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def rng(seed):
    """One generator per sample, so adding a sample never changes the others."""
    return np.random.default_rng(seed)


def relu_activations(seed, shape, dtype=np.float32):
    """Post-ReLU feature maps: non-negative, about half zeros, like real dumps."""
    a = rng(seed).standard_normal(shape)
    return np.maximum(a, 0.0).astype(dtype)


def edge_responses(size=32, orientations=8):
    """First-layer-like maps with structure to look at: a scene of a disk, a square and
    a triangle seen through oriented derivative-of-Gaussian filters, each orientation's
    response split into its positive and negative halves (ReLU of x and of -x), as a
    network's stem learns them. (1, 2 * orientations, size, size) float32."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    scene = ((y - 10) ** 2 + (x - 10) ** 2 <= 36).astype(np.float64)
    scene[17:28, 4:15] = 0.6
    scene += ((y >= 14) & (y <= 28) & (np.abs(x - 24) <= (y - 14) / 2)) * 0.8
    ky, kx = np.mgrid[-3:4, -3:4].astype(np.float64)
    padded = np.pad(scene, 3, mode="edge")
    maps = []
    for k in range(orientations):
        angle = np.pi * k / orientations
        along = kx * np.cos(angle) + ky * np.sin(angle)
        kernel = -along * np.exp(-(kx ** 2 + ky ** 2) / 4.5)
        response = np.zeros((size, size))
        for dy in range(7):
            for dx in range(7):
                response += kernel[dy, dx] * padded[dy:dy + size, dx:dx + size]
        maps += [np.maximum(response, 0), np.maximum(-response, 0)]
    return np.stack(maps)[np.newaxis].astype(np.float32)


def save_npy(name, array, version=None):
    """Write one NPY file; version=None lets numpy pick the oldest that fits."""
    with open(os.path.join(HERE, name), "wb") as f:
        np.lib.format.write_array(f, array, version=version, allow_pickle=True)


def save_npz(name, members, compress):
    """Write an NPZ exactly as np.savez/np.savez_compressed do, minus the clock.

    numpy opens each entry with force_zip64=True, so its files carry zip64
    extra fields; we do the same so featpool reads what numpy really writes.
    """
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(os.path.join(HERE, name), "w", compression=compression,
                         allowZip64=True) as zf:
        for key, value in members.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_EPOCH)
            info.compress_type = compression
            info.external_attr = 0o600 << 16  # what zipfile gives a new entry
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=True)


def new_h5(name):
    """Create an HDF5 file with the default (earliest) format version."""
    return h5py.File(os.path.join(HERE, name), "w")


def dataset(parent, path, data=None, **kwargs):
    """create_dataset without timestamps, so the file is reproducible."""
    return parent.create_dataset(path, data=data, track_times=False, **kwargs)


def make_npy_samples():
    # ResNet-50 layer4-like NCHW float32 activations (channels cut from 2048 to 512
    # to stay small): the default NCHW layout and global average pooling.
    save_npy("resnet_layer4_nchw.npy", relu_activations(1, (2, 512, 7, 7)))

    # Oriented edge responses of a simple scene: maps with shapes in them, for
    # `featpool view` (the README's picture).
    save_npy("stem_edges_nchw.npy", edge_responses())

    # Channels-last float32 maps (TensorFlow/Keras style): --layout NHWC.
    save_npy("nhwc_float32.npy", relu_activations(2, (2, 7, 7, 64)))

    # Half-precision NCHW activations: float16 decoding and --dtype auto -> float32.
    save_npy("float16_nchw.npy", relu_activations(3, (2, 64, 7, 7), np.float16))

    # Big-endian float32 ('>f4'): byte swapping on read, byte_order "big".
    a = rng(4).standard_normal((2, 32, 5, 5)).astype(">f4")
    save_npy("bigendian_float32.npy", a)

    # Fortran-order float32 (fortran_order: True in the header): order "F".
    a = np.asfortranarray(rng(5).standard_normal((2, 16, 6, 5)).astype(np.float32))
    save_npy("fortran_order.npy", a)

    # Transformer-ish rank-3 tensor read as NCL by default (or NLC with --layout).
    save_npy("tokens_ncl.npy", rng(6).standard_normal((2, 64, 50)).astype(np.float32))

    # Rank-5 NCDHW video/3-D features: the rank-5 default layout and 3-D pooling.
    save_npy("video_ncdhw.npy", relu_activations(7, (1, 8, 4, 6, 6)))

    # uint8 NHWC image batch: integer input, auto dtype keeps uint8 for max.
    a = rng(8).integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    save_npy("uint8_image_nhwc.npy", a)

    # int8 quantized NCHW activations: signed integers, negative values.
    a = rng(9).integers(-128, 128, size=(2, 16, 4, 4), dtype=np.int8)
    save_npy("int8_quantized_nchw.npy", a)

    # int32 NCHW counts: a 4-byte integer type and exact integer statistics.
    a = rng(10).integers(-1000, 1000, size=(2, 8, 3, 3), dtype=np.int32)
    save_npy("int32_counts_nchw.npy", a)

    # Boolean NCHW mask: bool pooled as 0/1, byte_order "none".
    save_npy("mask_bool_nchw.npy", rng(11).random((1, 4, 5, 5)) < 0.3)

    # Float32 NCHW with NaN, +Inf and -Inf: NaN propagation in max, NaN/Inf counts.
    a = rng(12).standard_normal((2, 4, 5, 5)).astype(np.float32)
    a[0, 0, 0, 0] = np.nan
    a[0, 1, 2, 3] = np.nan
    a[1, 2, 4, 4] = np.inf
    a[1, 3, 0, 1] = -np.inf
    a[1, 3, 1, 1] = -np.inf
    save_npy("with_nonfinite.npy", a)

    # NPY format version 2.0 (4-byte header length field).
    save_npy("npy_v2.npy", relu_activations(13, (2, 8, 3, 3)), version=(2, 0))

    # NPY format version 3.0 (UTF-8 header).
    save_npy("npy_v3.npy", relu_activations(14, (2, 8, 3, 3)), version=(3, 0))

    # Empty batch (N = 0): an empty output, not an error.
    save_npy("empty_batch_nchw.npy", np.zeros((0, 16, 7, 7), dtype=np.float32))

    # Rank-0 float64 scalar: listed by inspect, skipped when pooling a selection.
    save_npy("scalar_float64.npy", np.array(3.25, dtype=np.float64))

    # complex64 NCHW: a non-numeric type, listed with numeric false, never pooled.
    a = rng(15).standard_normal((2, 4, 3, 3, 2)).astype(np.float32)
    save_npy("complex64_spectrum.npy", (a[..., 0] + 1j * a[..., 1]).astype(np.complex64))

    # Unicode class names ('<U5'): a string tensor, non-numeric.
    save_npy("unicode_labels.npy", np.array(["cat", "dog", "zebra"], dtype="<U5"))

    # Structured records (a compound dtype): non-numeric, dtype is numpy's str().
    rec = np.zeros(3, dtype=[("x", "<f4"), ("label", "<i4")])
    rec["x"] = [0.5, 1.5, 2.5]
    rec["label"] = [1, 2, 3]
    save_npy("structured_records.npy", rec)

    # Object array (pickled payload): dtype "object", listed without unpickling.
    obj = np.empty(2, dtype=object)
    obj[0] = [1, 2, 3]
    obj[1] = "text"
    save_npy("object_pickle.npy", obj)


def make_npz_samples():
    members = {
        "conv4": relu_activations(20, (2, 64, 14, 14)),
        "conv5": relu_activations(21, (2, 128, 7, 7)),
        "labels": np.array([3, 7], dtype=np.int64),
    }
    # Stored (uncompressed) NPZ as np.savez writes it: several members, one
    # non-spatial (labels) that pooling a selection skips.
    save_npz("dump.npz", members, compress=False)

    # Deflated NPZ as np.savez_compressed writes it, plus a string member and a
    # big-endian Fortran-order member inside the archive.
    members = dict(members)
    members["class_names"] = np.array(["cat", "dog"], dtype="<U3")
    members["fc_be_fortran"] = np.asfortranarray(
        rng(22).standard_normal((2, 10, 3)).astype(">f8"))
    save_npz("dump_compressed.npz", members, compress=True)


def save_safetensors(name, tensors, metadata):
    """Write a .safetensors file as the format's own library does.

    Tensors are laid out by element size (largest first), then by name; the
    JSON header is padded with spaces so the data starts 8-aligned.
    """
    codes = {"float32": "F32", "float16": "F16", "int64": "I64"}
    ordered = sorted(tensors.items(), key=lambda item: (-item[1].itemsize, item[0]))
    header, offset = {"__metadata__": metadata}, 0
    for key, value in ordered:
        header[key] = {"dtype": codes[value.dtype.name], "shape": list(value.shape),
                       "data_offsets": [offset, offset + value.nbytes]}
        offset += value.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, value in ordered:
            f.write(np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes())


def make_safetensors_samples():
    # A model's activations saved with safetensors: dotted module names, a
    # half-precision map, logits that pooling a selection skips, and the
    # "format": "pt" metadata PyTorch writers add.
    save_safetensors("resnet_features.safetensors", {
        "backbone.layer3": relu_activations(50, (2, 64, 14, 14)),
        "backbone.layer4": relu_activations(51, (2, 128, 7, 7), np.float16),
        "head.logits": rng(52).standard_normal((2, 10)).astype(np.float32),
    }, {"format": "pt", "model": "resnet-like"})


def make_h5_samples():
    with new_h5("feats.h5") as f:
        # Plain contiguous NCHW float32 datasets in nested groups.
        dataset(f, "block1/conv", relu_activations(30, (2, 32, 14, 14)))
        dataset(f, "block2/conv", relu_activations(31, (2, 64, 7, 7)))
        # h5py float16 dataset (an IEEE half stored as a 16-bit HDF5 float).
        dataset(f, "block2/conv_fp16", relu_activations(32, (2, 64, 7, 7), np.float16))
        # Chunked, shuffled and gzip-compressed: the filter pipeline and chunk shape.
        act = dataset(f, "layer4/act", relu_activations(33, (2, 128, 7, 7)),
                      chunks=(1, 32, 7, 7), compression="gzip", compression_opts=4,
                      shuffle=True)
        act.attrs["layer"] = "layer4"
        act.attrs["stride"] = np.int64(32)
        act.attrs["channel_mean"] = np.linspace(0.0, 1.0, 4)
        # Class labels of shape (N,): not spatial, skipped when pooling a selection.
        labels = dataset(f, "labels", np.array([3, 7], dtype=np.int64))
        labels.attrs["classes"] = np.array([b"cat", b"dog"])
        # Fixed-length byte strings ('|S8').
        dataset(f, "meta/ids", np.array([b"img_0001", b"img_0002"], dtype="S8"))
        # Variable-length UTF-8 strings (h5py reads them as object).
        dataset(f, "meta/captions", np.array(["a cat", "ein Hund"], dtype=object),
                dtype=h5py.string_dtype("utf-8"))
        # HDF5 boolean (h5py's enum of int8 FALSE/TRUE).
        dataset(f, "meta/valid", np.array([True, False]))
        # Compound records: non-numeric, dtype is numpy's str() of h5py's dtype.
        rec = np.zeros(2, dtype=[("x", "<f4"), ("label", "<i4")])
        rec["x"] = [0.5, 1.5]
        rec["label"] = [1, 2]
        dataset(f, "meta/boxes", rec)

    with new_h5("feats_lzf.h5") as f:
        # LZF-compressed chunked float32 (h5py's bundled filter, id 32000).
        dataset(f, "act", relu_activations(40, (2, 64, 7, 7)), chunks=(1, 16, 7, 7),
                compression="lzf")
        # Shuffle + LZF + Fletcher32 checksum: a three-filter pipeline.
        dataset(f, "act_checked", relu_activations(41, (2, 16, 7, 7)), chunks=(1, 16, 7, 7),
                compression="lzf", shuffle=True, fletcher32=True)
        # Big-endian float64 contiguous dataset in HDF5.
        dataset(f, "act_be", rng(42).standard_normal((2, 8, 3, 3)).astype(">f8"))
        # Integer dataset with NaN-free stats and a uint16 type.
        dataset(f, "counts", rng(43).integers(0, 60000, size=(2, 4, 3, 3), dtype=np.uint16))


def main():
    make_npy_samples()
    make_npz_samples()
    make_h5_samples()
    make_safetensors_samples()


if __name__ == "__main__":
    main()
