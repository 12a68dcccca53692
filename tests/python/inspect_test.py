#!/usr/bin/python3
"""Differential test: `featpool inspect --json [--stats] [--hist]` against numpy and h5py.

Usage:
    /usr/bin/python3 tests/python/inspect_test.py FEATPOOL SAMPLE_DATA_DIR [--seed N]

numpy and h5py are the reference: whatever they report for a file (shape,
dtype, byte order, memory order, size, chunks, filters, and statistics of the
finite values, and numpy.histogram's 16 bins of them, count for count) is
what featpool must print. The test checks every committed
sample, then a few hundred files generated from a fixed seed (printed, and
settable with --seed) covering every numeric dtype, both byte orders, both
memory orders, every NPY version, ranks 0-5 with zero-length dimensions, NPZ
stored/compressed and HDF5 layouts and filter pipelines.

Every mismatch is printed with file, tensor, field, expected and actual value
and the seed; the last line is `inspect_test: N passed, M failed`, counting
checked tensor records (a wrong listing order, a failed run or an extra
record counts as one more failure), and the exit code is non-zero on any
failure.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import h5py
import numpy as np

import safetensors_files

DEFAULT_SEED = 20240611

EXTENSIONS = (".npy", ".npz", ".h5", ".hdf5", ".safetensors")
NUMERIC_NAMES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "float16", "float32", "float64")
BASE_KEYS = ("file", "name", "format", "shape", "dtype", "numeric", "byte_order", "order",
             "nbytes", "chunks", "filters")
STATS_KEYS = ("min", "max", "mean", "std", "nan_count", "inf_count")
HIST_BINS = 16

# h5py's names for the filter ids it knows (h5py.filters); HDF5 itself calls
# filter 1 "deflate", but the contract uses h5py's vocabulary.
H5_FILTER_NAMES = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit",
                   6: "scaleoffset", 32000: "lzf"}

EPS = float(np.finfo(np.float64).eps)


# ---------------------------------------------------------------------------
# What numpy and h5py report
# ---------------------------------------------------------------------------

def is_numeric(dt):
    return dt.fields is None and dt.subdtype is None and dt.name in NUMERIC_NAMES


def dtype_string(dt):
    """numpy's name for numeric and complex types, else numpy's dtype string.

    complex keeps its name ("complex64") and object arrays are "object" as the
    contract lists them; strings ("|S8", "<U4"), void and structured dtypes
    use str(dtype), which for a record is its field list.
    """
    if is_numeric(dt) or (dt.kind == "c" and dt.fields is None):
        return dt.name
    if dt.kind == "O":
        return "object"
    return str(dt)


def byte_order(dt):
    """numpy's dtype.byteorder in words; '=' is native, so this machine's order."""
    return {"<": "little", ">": "big", "|": "none", "=": sys.byteorder}[dt.byteorder]


def read_npy_header(f):
    """(shape, fortran_order, dtype) as the NPY header states them.

    The header, not a loaded array, is the reference for `order`: for 1-D or
    size-1 arrays numpy's C and F flags are both set and cannot tell.
    numpy's public readers cover versions 1.0 and 2.0; version 3.0 only
    changes the header's text encoding to UTF-8, which the private reader
    handles, so it is used when present.
    """
    version = np.lib.format.read_magic(f)
    reader = getattr(np.lib.format, "_read_array_header", None)
    if reader is not None:
        return reader(f, version)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def stats_of(array):
    """Reference statistics: finite values in float64 (bool as 0/1), ddof=0."""
    a = np.asarray(array, dtype=np.float64)
    finite = a[np.isfinite(a)]
    ref = {"nan_count": int(np.isnan(a).sum()), "inf_count": int(np.isinf(a).sum())}
    if finite.size == 0:
        ref.update(min=None, max=None, mean=None, std=None, n=0, scale=0.0)
    else:
        ref.update(min=float(finite.min()), max=float(finite.max()),
                   mean=float(finite.mean()), std=float(finite.std()),
                   n=int(finite.size), scale=float(np.abs(finite).max()))
    ref["hist"] = hist_of(finite)
    return ref


def hist_of(finite):
    """numpy.histogram(finite, bins=16)'s counts, as --hist must give them.

    None when no value is finite, and where numpy.histogram itself fails (it
    raises IndexError when max - min overflows float64, or when min == max
    is so large that numpy's widening by 0.5 is lost to rounding).
    """
    if finite.size == 0:
        return None
    with np.errstate(all="ignore"):
        try:
            counts = np.histogram(finite.astype(np.float64), bins=HIST_BINS)[0]
        except (IndexError, ValueError):
            return None
    return [int(c) for c in counts]


def tensor_record(file, name, fmt, shape, dt, order, nbytes, chunks=None, filters=()):
    return {
        "file": file, "name": name, "format": fmt, "shape": [int(d) for d in shape],
        "dtype": dtype_string(dt), "numeric": is_numeric(dt), "byte_order": byte_order(dt),
        "order": order, "nbytes": int(nbytes),
        "chunks": None if chunks is None else [int(c) for c in chunks],
        "filters": list(filters),
    }


def npy_nbytes(shape, dt):
    return int(np.prod(shape, dtype=np.int64)) * dt.itemsize


def expect_npy(path, shown, want_stats):
    with open(path, "rb") as f:
        shape, fortran, dt = read_npy_header(f)
    stem = os.path.splitext(os.path.basename(path))[0]
    rec = tensor_record(shown, stem, "npy", shape, dt, "F" if fortran else "C",
                        npy_nbytes(shape, dt))
    if want_stats:
        rec["stats"] = stats_of(np.load(path)) if is_numeric(dt) else None
    return [rec]


def expect_npz(path, shown, want_stats):
    records = []
    with np.load(path, allow_pickle=False) as npz, zipfile.ZipFile(path) as zf:
        for name in npz.files:
            with zf.open(name + ".npy") as member:
                shape, fortran, dt = read_npy_header(member)
            rec = tensor_record(shown, name, "npz", shape, dt, "F" if fortran else "C",
                                npy_nbytes(shape, dt))
            if want_stats:
                rec["stats"] = stats_of(npz[name]) if is_numeric(dt) else None
            records.append(rec)
    return records


def expect_h5(path, shown, want_stats):
    datasets = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, obj: datasets.append("/" + n)
                     if isinstance(obj, h5py.Dataset) else None)
        records = []
        for name in sorted(datasets, key=lambda s: s.encode("utf-8")):
            ds = f[name]
            plist = ds.id.get_create_plist()
            filters = [H5_FILTER_NAMES.get(plist.get_filter(i)[0], str(plist.get_filter(i)[0]))
                       for i in range(plist.get_nfilters())]
            rec = tensor_record(shown, name, "hdf5", ds.shape, ds.dtype, "C",
                                ds.size * ds.dtype.itemsize, ds.chunks, filters)
            if want_stats:
                rec["stats"] = stats_of(ds[()]) if is_numeric(ds.dtype) else None
            records.append(rec)
    return records


def expect_safetensors(path, shown, want_stats):
    header, data = safetensors_files.read(path)
    records = []
    for name in sorted(key for key in header if key != "__metadata__"):
        entry = header[name]
        array = safetensors_files.array_of(entry, data)
        begin, end = entry["data_offsets"]
        rec = tensor_record(shown, name, "safetensors", entry["shape"], array.dtype, "C",
                            end - begin)
        rec["data_offsets"] = [begin, end]
        if want_stats:
            rec["stats"] = stats_of(array)
        records.append(rec)
    return records


def expect_file(path, shown, want_stats):
    ext = os.path.splitext(path)[1]
    if ext == ".safetensors":
        return expect_safetensors(path, shown, want_stats)
    if ext == ".npy":
        return expect_npy(path, shown, want_stats)
    if ext == ".npz":
        return expect_npz(path, shown, want_stats)
    return expect_h5(path, shown, want_stats)


def discover(directory):
    """Files featpool lists for a directory: the four extensions, recursively,
    sorted by the bytes of the path, skipping hidden entries and symlinked
    directories."""
    found = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and not os.path.islink(os.path.join(root, d))]
        for name in files:
            if not name.startswith(".") and name.endswith(EXTENSIONS):
                found.append(os.path.relpath(os.path.join(root, name), directory))
    return sorted(found, key=lambda s: s.encode("utf-8"))


def expect_directory(directory, want_stats):
    """Expected records for `featpool inspect DIRECTORY`; `file` is the
    directory argument joined with the path below it."""
    records = []
    for rel in discover(directory):
        records += expect_file(os.path.join(directory, rel), os.path.join(directory, rel),
                               want_stats)
    return records


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def close_exact(got, ref):
    """min and max are data values; allow 1e-9 relative for decimal printing."""
    return abs(got - ref) <= 1e-9 * abs(ref)


def close_mean(got, ref, n, scale):
    """Relative 1e-9, or the worst-case rounding bound of a float64 sum.

    Any summation order of n values of magnitude <= scale is within
    (n-1)*u*sum|x| of the exact sum (u = eps/2), so each mean is within
    n*u*scale of the exact mean and two of them within n*eps*scale. A plain
    relative bound would fail a correct tool when the mean is near zero
    compared with the data (e.g. symmetric data whose mean is 1e-17).
    """
    return abs(got - ref) <= max(1e-9 * abs(ref), n * EPS * scale)


def close_std(got, ref, n, scale):
    """Relative 1e-9 on std, or the variances within 2*n*eps*scale**2.

    For nearly constant data the true std is tiny and any float64 algorithm
    (two-pass, Welford, or sum of squares) leaves a variance error of order
    n*u*scale**2; std = sqrt(var) turns that into a large relative error, so
    the floor is stated on the variance, where the rounding bound lives.
    """
    if got < 0:
        return False
    return (abs(got - ref) <= 1e-9 * ref
            or abs(got * got - ref * ref) <= 2 * n * EPS * scale * scale)


class Checker:
    def __init__(self, seed):
        self.seed = seed
        self.passed = 0
        self.failed = 0

    def fail(self, where, field, expected, got):
        print(f"FAIL seed={self.seed} {where} field={field}: expected {expected!r}, "
              f"got {got!r}")

    def run(self, binary, args):
        """Run featpool, returning its JSON array or None after reporting."""
        cmd = [binary, "inspect", "--json"] + args
        proc = subprocess.run(cmd, capture_output=True, timeout=120)
        shown = " ".join(cmd[:4] + (["..."] if len(cmd) > 4 else []))
        if proc.returncode != 0:
            # One failure for the run; the records it did print are still
            # compared, so one bad file does not hide the state of the rest.
            print(f"FAIL seed={self.seed} `{shown}` exited {proc.returncode}: "
                  f"{proc.stderr.decode(errors='replace').strip()[:2000]}")
            self.failed += 1
        try:
            # Reject NaN/Infinity: they are not JSON, and --stats says null.
            data = json.loads(proc.stdout.decode("utf-8"),
                              parse_constant=lambda c: (_ for _ in ()).throw(
                                  ValueError(f"non-JSON constant {c}")))
        except ValueError as e:
            print(f"FAIL seed={self.seed} `{shown}` printed invalid JSON: {e}; "
                  f"output starts {proc.stdout[:200]!r}")
            return None
        if not isinstance(data, list):
            print(f"FAIL seed={self.seed} `{shown}` printed {type(data).__name__}, not an array")
            return None
        return data

    def compare(self, label, expected, got, want_stats, want_hist=False):
        """Compare records by (file, name), then the order they came in."""
        if got is None:
            self.failed += len(expected) or 1
            return
        keys = [(r["file"], r["name"]) for r in expected]
        got_keys = [(r.get("file"), r.get("name")) if isinstance(r, dict) else None
                    for r in got]
        by_key = {}
        for k, r in zip(got_keys, got):
            by_key.setdefault(k, []).append(r)
        for rec, key in zip(expected, keys):
            where = f"[{label}] file={key[0]} tensor={key[1]}"
            matches = by_key.get(key, [])
            if len(matches) != 1:
                self.fail(where, "presence", "listed once", f"listed {len(matches)} times")
                self.failed += 1
                continue
            ok = self.compare_record(where, rec, matches[0], want_stats, want_hist)
            self.passed += ok
            self.failed += not ok
        extra = [k for k in got_keys if k not in set(keys)]
        for k in extra:
            self.fail(f"[{label}] file={k[0] if k else None} tensor={k[1] if k else None}",
                      "presence", "not listed", "listed")
            self.failed += 1
        if not extra and sorted(got_keys, key=repr) == sorted(keys, key=repr) \
                and got_keys != keys:
            first = next(i for i, (a, b) in enumerate(zip(keys, got_keys)) if a != b)
            self.fail(f"[{label}]", f"order (first difference at index {first})",
                      keys[first], got_keys[first])
            self.failed += 1

    def compare_record(self, where, exp, got, want_stats, want_hist=False):
        ok = True

        def bad(field, expected, actual):
            nonlocal ok
            ok = False
            self.fail(where, field, expected, actual)

        wanted = set(BASE_KEYS) | (set(STATS_KEYS) if want_stats else set())
        if want_hist:
            wanted.add("hist")
        if "data_offsets" in exp:  # safetensors records only
            wanted.add("data_offsets")
            if got.get("data_offsets") != exp["data_offsets"]:
                bad("data_offsets", exp["data_offsets"], got.get("data_offsets"))
        missing = sorted(wanted - got.keys())
        unexpected = sorted(got.keys() - wanted)
        if missing:
            bad("keys", "present", f"missing {missing}")
        if unexpected:
            bad("keys", "absent", f"unexpected {unexpected}")
        for field in BASE_KEYS:
            if field not in got:
                continue
            value = got[field]
            if field in ("shape", "chunks") and value is not None:
                well_typed = isinstance(value, list) and all(is_int(v) for v in value)
            elif field == "nbytes":
                well_typed = is_int(value)
            elif field == "numeric":
                well_typed = isinstance(value, bool)
            else:
                well_typed = True
            if not well_typed or value != exp[field]:
                bad(field, exp[field], value)
        if want_stats:
            self.compare_stats(exp.get("stats"), got, bad)
        if want_hist:
            self.compare_hist(exp.get("stats"), got, bad)
        return ok

    def compare_hist(self, ref, got, bad):
        """Exact counts, right after inf_count; null without finite values."""
        if "hist" not in got:
            return
        keys = list(got)
        if "inf_count" in got and keys.index("hist") != keys.index("inf_count") + 1:
            bad("hist position", "right after inf_count", keys)
        expected = None if ref is None else ref["hist"]
        value = got["hist"]
        well_typed = value is None or (isinstance(value, list) and len(value) == HIST_BINS
                                       and all(is_int(v) for v in value))
        if not well_typed or value != expected:
            bad("hist", expected, value)

    def compare_stats(self, ref, got, bad):
        if ref is None:  # non-numeric: every statistic is null
            for field in STATS_KEYS:
                if field in got and got[field] is not None:
                    bad(field, None, got[field])
            return
        for field in ("nan_count", "inf_count"):
            if field in got and (not is_int(got[field]) or got[field] != ref[field]):
                bad(field, ref[field], got[field])
        checks = {
            "min": lambda g: close_exact(g, ref["min"]),
            "max": lambda g: close_exact(g, ref["max"]),
            "mean": lambda g: close_mean(g, ref["mean"], ref["n"], ref["scale"]),
            "std": lambda g: close_std(g, ref["std"], ref["n"], ref["scale"]),
        }
        for field, check in checks.items():
            if field not in got:
                continue
            value = got[field]
            if ref[field] is None:
                if value is not None:
                    bad(field, None, value)
            elif not is_number(value) or not check(float(value)):
                bad(field, ref[field], value)


# ---------------------------------------------------------------------------
# Random files
# ---------------------------------------------------------------------------

class Generator:
    """Writes random tensors of every kind featpool must list, from one seed."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def shape(self, rank, fortran=False):
        """Dims 0-5 with a zero now and then; Fortran arrays mostly get rank >= 2
        and dims >= 2 so that the F flag really shows in the header."""
        if fortran and self.rng.random() < 0.85:
            rank = max(rank, 2)
            return tuple(int(d) for d in self.rng.integers(2, 6, size=rank))
        dims = self.rng.integers(1, 6, size=rank)
        if rank and self.rng.random() < 0.12:
            dims[self.rng.integers(rank)] = 0
        return tuple(int(d) for d in dims)

    def values(self, name, shape, nonfinite=None):
        """Random data over the dtype's range; floats get NaN/+-Inf at times."""
        rng = self.rng
        if name == "bool":
            return rng.random(shape) < 0.5
        dt = np.dtype(name)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            if rng.random() < 0.5:  # full range, extremes included
                return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
            return rng.integers(max(info.min, -100), 100, size=shape, dtype=dt)
        scale = 10.0 ** rng.integers(-3, 4)
        a = (rng.standard_normal(shape) * scale + rng.choice([0.0, scale * 5])).astype(dt)
        if nonfinite is None:
            nonfinite = rng.random() < 0.35
        if nonfinite and a.size:
            flat = a.reshape(-1)
            for value in (np.nan, np.inf, -np.inf):
                if rng.random() < 0.7:
                    flat[rng.integers(flat.size, size=rng.integers(1, 3))] = value
            if rng.random() < 0.1:
                flat[:] = np.nan  # no finite value at all: statistics are null
        return a

    def array(self, name, order="C", big=False, rank=None):
        if rank is None:
            rank = int(self.rng.integers(0, 6))
        a = self.values(name, self.shape(rank, fortran=(order == "F")))
        dt = np.dtype(name).newbyteorder(">" if big else "<")
        # np.array keeps rank 0 (np.ascontiguousarray would make it 1-D).
        return np.array(a, dtype=dt, order=order)

    def write_npy_matrix(self, folder):
        """Every numeric dtype x byte order x memory order x NPY version."""
        os.makedirs(folder, exist_ok=True)
        count = 0
        for name in NUMERIC_NAMES:
            for big in (False, True):
                for order in ("C", "F"):
                    for version in ((1, 0), (2, 0), (3, 0)):
                        a = self.array(name, order, big)
                        fn = (f"{name}_{'be' if big else 'le'}_{order}"
                              f"_v{version[0]}.npy")
                        with open(os.path.join(folder, fn), "wb") as f:
                            np.lib.format.write_array(f, a, version=version)
                        count += 1
        return count

    def write_npz(self, path, members, compress, zip64):
        mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with zipfile.ZipFile(path, "w", compression=mode, allowZip64=True) as zf:
            for key, value in members.items():
                with zf.open(key + ".npy", "w", force_zip64=zip64) as f:
                    np.lib.format.write_array(f, value)

    def write_npzs(self, folder):
        os.makedirs(folder, exist_ok=True)
        count = 0
        for i in range(12):
            members = {}
            for j in range(int(self.rng.integers(1, 6))):
                name = str(self.rng.choice(NUMERIC_NAMES))
                order = "F" if self.rng.random() < 0.3 else "C"
                members[f"m{j}_{name}"] = self.array(name, order, self.rng.random() < 0.3)
            if i == 0:
                members["nested/conv"] = self.array("float32", rank=4)
            self.write_npz(os.path.join(folder, f"r{i:02d}.npz"), members,
                           compress=bool(i % 2), zip64=bool(i % 3))
            count += 1
        self.write_npz(os.path.join(folder, "empty.npz"), {}, compress=False, zip64=True)
        return count + 1

    def h5_dataset(self, group, name, a, layout):
        """Create one dataset with a given storage layout and filter pipeline."""
        if layout == "compact":
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.COMPACT)
            space = h5py.h5s.create_simple(a.shape) if a.shape else h5py.h5s.create(
                h5py.h5s.SCALAR)
            parent, _, leaf = name.rpartition("/")
            where = group.require_group(parent) if parent else group
            ds = h5py.h5d.create(where.id, leaf.encode(), h5py.h5t.py_create(a.dtype), space,
                                 dcpl=dcpl)
            if a.size:
                ds.write(h5py.h5s.ALL, h5py.h5s.ALL, a)
            return
        kwargs = {}
        if layout != "contiguous" and a.ndim:
            chunks = tuple(max(1, int(self.rng.integers(1, d + 1))) if d else 1
                           for d in a.shape)
            kwargs.update(chunks=chunks, maxshape=tuple(None if d == 0 else d
                                                        for d in a.shape))
            if layout in ("gzip", "gzip+shuffle", "all"):
                kwargs.update(compression="gzip",
                              compression_opts=int(self.rng.integers(1, 10)))
            if layout in ("shuffle", "gzip+shuffle", "all"):
                kwargs["shuffle"] = True
            if layout in ("lzf", "all"):
                kwargs["compression"] = "lzf"
                kwargs.pop("compression_opts", None)
            if layout in ("fletcher32", "all"):
                kwargs["fletcher32"] = True
        group.create_dataset(name, data=a, **kwargs)

    def write_h5s(self, folder):
        os.makedirs(folder, exist_ok=True)
        layouts = ("contiguous", "compact", "chunked", "gzip", "shuffle", "gzip+shuffle",
                   "lzf", "fletcher32", "all")
        # Names whose bytewise order differs from a depth-first walk ('.' and
        # '-' sort before '/'), plus upper case and a non-ASCII name.
        names = ("g/x", "g.y", "g-z/w", "G", "g/sub/deep", "a", "\u00e9t\u00e9/t", "b_1")
        count = 0
        for i in range(14):
            ext = ".hdf5" if i % 4 == 3 else ".h5"
            with h5py.File(os.path.join(folder, f"r{i:02d}{ext}"), "w") as f:
                picks = self.rng.choice(len(names), size=int(self.rng.integers(1, 6)),
                                        replace=False)
                for k in sorted(picks):
                    name = str(self.rng.choice(NUMERIC_NAMES))
                    layout = layouts[int(self.rng.integers(len(layouts)))]
                    a = self.array(name, "C", self.rng.random() < 0.3)
                    if layout == "compact" and a.nbytes > 4000:
                        layout = "contiguous"  # compact data must fit the header
                    self.h5_dataset(f, names[k], a, layout)
                if i == 0:
                    f.create_dataset("strings/fixed", data=np.array([b"ab", b"cde"]))
                    f.create_dataset("strings/vlen", data=["x", "yz"],
                                     dtype=h5py.string_dtype())
                    f.create_group("empty_group")
            count += 1
        return count

    def write_hist_cases(self, folder):
        """Tensors whose histograms are easy to get wrong: constant ones (numpy
        widens the range by 0.5), values on the bin edges and an ulp either
        side, non-finite values beside finite ones, a range numpy.histogram
        fails on (featpool then prints null), integer extremes, halves, and
        tensors of several 4 MiB blocks (NPY, a chunked HDF5 dataset, NPZ)."""
        os.makedirs(folder, exist_ok=True)
        def on_and_beside_edges(first, last):
            edges = np.linspace(first, last, HIST_BINS + 1)
            return np.concatenate([edges, np.nextafter(edges, -np.inf)[1:],
                                   np.nextafter(edges, np.inf)[:-1]])

        arrays = {
            "constant_float32": np.full((3, 4), 3.5, dtype=np.float32),
            "constant_with_nonfinite": np.array([2.0, np.nan, np.inf, 2.0, -np.inf]),
            "constant_bool": np.ones(5, dtype=bool),
            "constant_int64_huge": np.full(4, 10**17, dtype=np.int64),  # numpy fails: null
            # (A range that overflows float64 also makes std overflow, which
            # the stats comparison rejects: the unit tests cover it.)
            "on_edges": on_and_beside_edges(0.3, 1.1),
            "on_inexact_edges": on_and_beside_edges(-1.3, 2.9),
            "integers_on_edges": np.arange(17, dtype=np.int16),
            "int8_extremes": np.arange(-128, 128, dtype=np.int8),
            "uint64_extremes": np.array([0, 2**63, 2**64 - 1], dtype=np.uint64),
            "float16_steps": (np.arange(-40, 41, dtype=np.float16) / np.float16(3)),
            "float16_with_inf": np.array([1, 2, np.inf, 3, np.nan], dtype=np.float16),
            "all_nan": np.full(3, np.nan, dtype=np.float32),
            "empty": np.zeros((0, 3), dtype=np.float32),
            "blocks_float32": self.rng.standard_normal(3_000_000).astype(np.float32),
        }
        for name, a in arrays.items():
            np.save(os.path.join(folder, name + ".npy"), a)
        big = self.rng.integers(-1000, 1000, size=(1000, 1500), dtype=np.int32)
        with h5py.File(os.path.join(folder, "blocks.h5"), "w") as f:
            f.create_dataset("chunked", data=big, chunks=(100, 1500), compression="gzip")
        self.write_npz(os.path.join(folder, "blocks.npz"),
                       {"big": self.rng.standard_normal((1200, 1000)),
                        "constant": np.zeros(7, dtype=np.float16)}, compress=True, zip64=False)
        return len(arrays) + 2

    def write_tree(self, root):
        """The whole random tree, with entries a directory listing must skip."""
        n = self.write_npy_matrix(os.path.join(root, "npy"))
        n += self.write_npzs(os.path.join(root, "npz"))
        n += self.write_h5s(os.path.join(root, "h5"))
        # "d.npy" sorts before "d/..." bytewise, though a walk meets "d" first.
        os.makedirs(os.path.join(root, "d", "e"))
        os.makedirs(os.path.join(root, "d-1"))
        for rel in ("d.npy", "d/e/x.npy", "d/a.npy", "d-1/z.npy", "with space.npy"):
            np.save(os.path.join(root, rel), self.array("float32", rank=4))
            n += 1
        n += self.write_hist_cases(os.path.join(root, "hist"))
        # Skipped: hidden files and folders, other extensions, symlinked folders.
        np.save(os.path.join(root, ".hidden.npy"), np.zeros(3))
        os.makedirs(os.path.join(root, ".cache"))
        np.save(os.path.join(root, ".cache", "x.npy"), np.zeros(3))
        with open(os.path.join(root, "notes.txt"), "w") as f:
            f.write("not a tensor\n")
        os.symlink("d", os.path.join(root, "linked_dir"))
        return n


# ---------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("featpool")
    parser.add_argument("sample_data")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    binary = os.path.abspath(args.featpool)
    # Strip a trailing slash so "directory joined with the relative path" is
    # unambiguous (no "dir//file").
    samples = args.sample_data.rstrip("/") or "/"
    print(f"inspect_test: seed {args.seed} (rerun with --seed {args.seed})")
    check = Checker(args.seed)

    # a. Committed samples: through the directory, with and without --stats,
    # with --hist (which implies --stats), and as explicit file arguments
    # (file is then the path as given).
    for flags in ([], ["--stats"], ["--hist"]):
        want_stats, want_hist = bool(flags), flags == ["--hist"]
        check.compare(" ".join(["samples"] + flags), expect_directory(samples, want_stats),
                      check.run(binary, flags + [samples]), want_stats, want_hist)
    files = [os.path.join(samples, rel) for rel in discover(samples)]
    files.reverse()  # command-line order wins over path order for file arguments
    expected = []
    for path in files:
        expected += expect_file(path, path, False)
    check.compare("sample files", expected, check.run(binary, files), False)

    # b, c. Random files from the seed, listed through their directory.
    with tempfile.TemporaryDirectory(prefix="featpool_inspect_") as tmp:
        count = Generator(args.seed).write_tree(tmp)
        print(f"inspect_test: generated {count} random files in {tmp}")
        for flags in ([], ["--stats"], ["--stats", "--hist"]):
            want_stats, want_hist = bool(flags), "--hist" in flags
            check.compare(" ".join(["random"] + flags), expect_directory(tmp, want_stats),
                          check.run(binary, flags + [tmp]), want_stats, want_hist)

    print(f"inspect_test: {check.passed} passed, {check.failed} failed")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
