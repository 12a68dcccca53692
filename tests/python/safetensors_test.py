"""Checks of safetensors inputs and outputs against PyTorch and against featpool's NPZ output.

Usage: /usr/bin/python3 safetensors_test.py FEATPOOL [--keep]

- Every dtype the format defines that featpool pools, written with struct and json
  (safetensors_files.py), pooled by featpool with avg, max and gem and compared with torch on
  the same tensors: max exactly, averages within one float32 rounding of the float64 result.
- Tensors chosen by FILE:NAME (dotted names) and --name; a non-numeric dtype (fp8) listed
  and skipped in a selection; a tensor laid out after a hole in the data.
- `-o X.safetensors` read back: the header padded to 8 bytes, byte ranges contiguous from
  0 and ordered by element size, then name, metadata with format=pt, the version and each
  tensor's provenance; the values byte for byte those of `-o X.npz` from the same run,
  --indices included; directory outputs with --format safetensors; merge into one file.

Needs Debian's interpreter (/usr/bin/python3) with numpy and torch.
The last line is `safetensors_test: N passed, M failed`; the exit code is 1 on any failure.
"""

import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ in the source tree when CTest runs this
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_files  # noqa: E402
from named_checks import command_line, require, run_command, run_in_temporary_folder  # noqa: E402,E501

FEATPOOL = ""
RNG = np.random.default_rng(20261205)

# One float32 rounding of a float64 result: half an ulp, 2^-24 relative. featpool rounds its
# float64 average once; torch's float64 average differs from it by a few float64 ulps at most,
# far below that.
FLOAT32_ROUNDING = 2.0 ** -24


def featpool(*args, expect=0):
    """(code, stdout text, stderr text) of a featpool run that must exit with `expect`."""
    code, stdout, stderr = run_command([FEATPOOL, *args], expect)
    return code, stdout.decode("utf-8", "replace"), stderr


def sample_values(code, shape):
    """Values of a dtype: non-negative floats (no cancellation in the sums), integers over
    their whole range, bools."""
    dt = safetensors_files.NUMPY_DTYPES[code]
    if dt.kind == "b":
        return RNG.integers(0, 2, size=shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return RNG.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    return np.abs(RNG.standard_normal(shape)).astype(dt)


def window_max(x, size):
    """Max over PyTorch's adaptive windows of the last two axes, exactly, in x's dtype
    (float64 cannot hold every 64-bit integer, so torch cannot be the reference here)."""
    def windows(length, count):
        return [(i * length // count, -(-(i + 1) * length // count)) for i in range(count)]
    rows, cols = windows(x.shape[-2], size[0]), windows(x.shape[-1], size[1])
    out = np.empty(x.shape[:-2] + size, dtype=x.dtype)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            out[..., i, j] = x[..., r0:r1, c0:c1].max(axis=(-2, -1))
    return out


def torch_reference(x, op, size):
    """The float64 result torch gives for `op` over adaptive windows of output `size`."""
    t = torch.from_numpy(x.astype(np.float64))
    if op == "avg":
        return F.adaptive_avg_pool2d(t, size).numpy()
    if op == "max":
        return F.adaptive_max_pool2d(t, size).numpy()
    return F.adaptive_avg_pool2d(t.clamp(min=1e-6).pow(3), size).pow(1 / 3).numpy()


def npz_arrays(path):
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def check_every_dtype_against_torch(tmp):
    """Each dtype pooled by avg, max and gem; max of integers keeps the dtype exactly."""
    tensors = {f"t.{code}": sample_values(code, (2, 3, 9, 7))
               for code in safetensors_files.NUMPY_DTYPES}
    # bfloat16, which numpy lacks: written as torch's bits, compared as the floats they are.
    brain = torch.from_numpy(sample_values("F32", (2, 3, 9, 7))).to(torch.bfloat16)
    source = os.path.join(tmp, "dtypes.safetensors")
    safetensors_files.write(source, {**tensors, "t.BF16": (
        "BF16", list(brain.shape), brain.view(torch.int16).numpy().tobytes())}, {"format": "pt"})
    tensors["t.BF16"] = brain.float().numpy()
    for op in ("avg", "max", "gem"):
        out = os.path.join(tmp, f"dtypes_{op}.npz")
        featpool("pool", source, "-o", out, "--op", op, "--size", "3x2", "-q")
        got = npz_arrays(out)
        require(sorted(got) == sorted(tensors), f"{op}: tensors {sorted(got)}")
        for name, x in tensors.items():
            ref = torch_reference(x, op, (3, 2))
            value = got[name]
            if op == "max" and x.dtype.kind in "iub":
                require(value.dtype == x.dtype, f"{op} {name}: dtype {value.dtype}")
                require(np.array_equal(value, window_max(x, (3, 2))), f"{op} {name}: values")
            elif op == "max":
                require(np.array_equal(value, ref.astype(value.dtype)), f"{op} {name}: values")
            else:
                want = np.float64 if x.dtype == np.float64 else np.float32
                require(value.dtype == want, f"{op} {name}: dtype {value.dtype}")
                error = np.abs(value.astype(np.float64) - ref)
                bound = FLOAT32_ROUNDING * np.abs(ref) if want == np.float32 else 1e-15 * np.abs(ref)
                require(np.all(error <= bound), f"{op} {name}: off by {np.max(error / bound):.3g} "
                                                 "times the bound")


def check_selection_and_layout(tmp):
    """FILE:NAME with a dotted name, --name, a hole before a tensor, an fp8 tensor skipped."""
    layer = sample_values("F32", (2, 4, 6, 6))
    tensors = {"backbone.layer4": layer, "hole": ("U8", [3], b"abc"),
               "fp8": ("F8_E4M3", [2, 2], bytes(4)), "head.logits": sample_values("F32", (2, 5))}
    source = os.path.join(tmp, "model.safetensors")
    safetensors_files.write(source, tensors)
    # A hole: the U8 tensor's bytes are dropped from the header, so backbone.layer4 ... are
    # found by offset only. The format's own loader refuses holes; featpool reads them.
    header, data = safetensors_files.read(source)
    del header["hole"]
    text = safetensors_files.header_bytes(header)
    with open(source, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    _, listing, _ = featpool("inspect", "--json", source)
    records = {r["name"]: r for r in json.loads(listing)}
    require(sorted(records) == ["backbone.layer4", "fp8", "head.logits"], f"{sorted(records)}")
    require(records["fp8"]["numeric"] is False and records["fp8"]["dtype"] == "F8_E4M3",
            f"fp8: {records['fp8']}")
    require(records["backbone.layer4"]["data_offsets"] == header["backbone.layer4"]["data_offsets"],
            f"offsets: {records['backbone.layer4']}")
    out = os.path.join(tmp, "one.npy")
    featpool("pool", f"{source}:backbone.layer4", "-o", out, "-q")
    require(np.array_equal(np.load(out), torch_reference(layer, "avg", 1).astype(np.float32)),
            "FILE:NAME: values")
    _, report, _ = featpool("pool", source, "--name", "backbone.*", "-o", os.path.join(tmp, "sel.h5"))
    require("1 ok, 0 skipped, 0 failed" in report, f"--name: {report}")
    _, report, _ = featpool("pool", source, "-o", os.path.join(tmp, "all.h5"))
    require("1 ok, 2 skipped, 0 failed" in report, f"selection: {report}")
    _, _, err = featpool("pool", f"{source}:fp8", "-o", os.path.join(tmp, "fp8.npy"), expect=1)
    require(err.startswith(f"featpool: error: {source}:fp8: ") and "F8_E4M3" in err,
            f"fp8 named: {err!r}")


def require_written_as_the_format_writes(path):
    """The layout the format's library writes; returns (header, data)."""
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    require(length % 8 == 0, f"header of {length} bytes is not padded to 8")
    header, data = safetensors_files.read(path)
    entries = sorted((e["data_offsets"], name) for name, e in header.items()
                     if name != "__metadata__")
    end = 0
    for (begin, stop), name in entries:
        require(begin == end, f"{name} starts at {begin}, not {end}")
        end = stop
    require(end == len(data), f"data of {len(data)} bytes, tensors end at {end}")
    order = [name for _, name in entries]
    size = {name: safetensors_files.NUMPY_DTYPES[header[name]["dtype"]].itemsize
            for name in order}
    require(order == sorted(order, key=lambda name: (-size[name], name)), f"order {order}")
    return header, data


def check_output_round_trip(tmp):
    """-o X.safetensors holds what -o X.npz holds, byte for byte, and its provenance."""
    source = os.path.join(tmp, "in.npz")
    np.savez(source, conv=sample_values("F32", (2, 8, 7, 7)), mask=sample_values("U8", (2, 3, 4, 4)))
    for flags in (["--op", "max", "--size", "2", "--indices"], ["--size", "1", "--flatten"]):
        out_st = os.path.join(tmp, "pooled.safetensors")
        out_npz = os.path.join(tmp, "pooled.npz")
        featpool("pool", source, "-o", out_st, "--force", "-q", *flags)
        featpool("pool", source, "-o", out_npz, "--force", "-q", *flags)
        header, data = require_written_as_the_format_writes(out_st)
        expected = npz_arrays(out_npz)
        names = sorted(name for name in header if name != "__metadata__")
        require(names == sorted(expected), f"{flags}: names {names}")
        for name in names:
            got = safetensors_files.array_of(header[name], data)
            require(got.dtype == expected[name].dtype and got.shape == expected[name].shape,
                    f"{flags} {name}: {got.dtype} {got.shape}")
            require(got.tobytes() == expected[name].tobytes(), f"{flags} {name}: values")
        metadata = header["__metadata__"]
        require(metadata["format"] == "pt" and metadata["featpool_version"],
                f"metadata {metadata}")
        origin = json.loads(metadata["featpool:conv"])
        require(origin["source"] == f"{source}:conv" and origin["input_shape"] == [2, 8, 7, 7],
                f"provenance {origin}")


def check_directory_and_merge(tmp):
    """--format safetensors mirrors each input as X.safetensors; merge collects them."""
    folder = os.path.join(tmp, "dumps")
    os.makedirs(folder)
    for i in range(2):
        np.save(os.path.join(folder, f"f{i}.npy"), sample_values("F32", (2, 4, 3, 3)))
    out = os.path.join(tmp, "mirrored")
    featpool("pool", folder, "-o", out + "/", "--format", "safetensors", "-q")
    require(sorted(os.listdir(out)) == ["f0.safetensors", "f1.safetensors"],
            f"{sorted(os.listdir(out))}")
    header, _ = require_written_as_the_format_writes(os.path.join(out, "f0.safetensors"))
    require(sorted(header) == ["__metadata__", "f0"], f"{sorted(header)}")
    merged = os.path.join(tmp, "merged.safetensors")
    featpool("merge", out, "-o", merged, "-q")
    header, _ = require_written_as_the_format_writes(merged)
    require(sorted(header) == ["__metadata__", "f0/f0", "f1/f1"], f"merged {sorted(header)}")


def main():
    global FEATPOOL
    args = command_line(__doc__)
    FEATPOOL = args.featpool
    return run_in_temporary_folder("safetensors_test", args.keep, lambda tmp: [
        ("every dtype against torch (avg, max, gem)",
         lambda: check_every_dtype_against_torch(tmp)),
        ("FILE:NAME, --name, a hole, fp8 skipped", lambda: check_selection_and_layout(tmp)),
        ("-o .safetensors holds what -o .npz holds", lambda: check_output_round_trip(tmp)),
        ("directory outputs and merge", lambda: check_directory_and_merge(tmp)),
    ])


if __name__ == "__main__":
    sys.exit(main())
