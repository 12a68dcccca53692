"""Fixed checks of `featpool pool`: golden files, the ResNet-50 vector, output formats, -j.

Usage: /usr/bin/python3 pool_outputs_test.py FEATPOOL [--golden DIR] [--keep]

- golden: every case of tests/golden/cases.json pooled with its recorded flags must equal the
  hand-derived expected .npy (made by tests/golden/make_golden.py) bit for bit;
- resnet50: a float32 (4, 2048, 7, 7) NCHW dump pooled with --flatten is PyTorch's
  flatten(adaptive_avg_pool2d(x.double(), 1), 1) rounded to float32, within 1 ulp;
- output formats: a multi-dataset HDF5 file (groups), NPZ files and an NPY file pooled to .h5,
  .npz, .npy and a directory; names, shapes, dtypes and HDF5 attributes read back with h5py and
  numpy as the spec says;
- determinism: -j 1 and -j 4, twice each, give byte-identical .npy, .npz and .h5 files.

Needs Debian's interpreter (/usr/bin/python3): numpy, h5py and torch from Debian packages.
The last line is `pool_outputs_test: N passed, M failed`; the exit code is 1 on any failure.
"""

import hashlib
import io
import json
import os
import shlex
import sys
import zipfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ in the source tree when CTest runs this
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pool_vs_torch_test as ref_lib  # noqa: E402  the float64 torch reference and tolerances
from named_checks import command_line, require, run_command, run_in_temporary_folder  # noqa: E402,E501

FEATPOOL = ""
TIMEOUT_S = 120
HDF5_ATTRS = ("featpool_op", "featpool_size", "featpool_layout", "featpool_source",
              "featpool_input_shape", "featpool_version")


def featpool(*args, expect=0):
    """Runs featpool; fails the check (showing the command) unless the exit code is `expect`.

    expect=None accepts any code. Returns (code, stdout bytes, stderr text).
    """
    return run_command([FEATPOOL, *args], expect, TIMEOUT_S)


def h5_datasets(path):
    """Every dataset of an HDF5 file: {'/name': dataset values}, plus attributes."""
    out, attrs = {}, {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out["/" + name] = obj[()]
                attrs["/" + name] = dict(obj.attrs)
        f.visititems(visit)
    return out, attrs


def npz_members(path):
    """Every member of an NPZ by its exact zip name ('block1/conv.npy')."""
    with zipfile.ZipFile(path) as z:
        return {n: np.load(io.BytesIO(z.read(n))) for n in z.namelist()}


def files_under(folder):
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.relpath(os.path.join(root, n), folder) for n in names]
    return sorted(found)


def require_matches_torch(got, x, layout, sizes, op, flatten, what):
    """Compares with the float64 torch reference under the differential test's tolerances."""
    ref, scale = ref_lib.reference(x, layout, sizes, op, flatten)
    out_dtype = ref_lib.expected_dtype(x.dtype, op, "auto")
    problems = ref_lib.compare(got, ref, scale, out_dtype, out_dtype.kind in "iub")
    require(not problems, f"{what}: " + "; ".join(problems[:6]))


# --------------------------------------------------------------------------------------------
# Golden files
# --------------------------------------------------------------------------------------------


def same_bits(got, want):
    """Bit-exact equality: dtype, shape and the bytes of every value.

    NaN is the one exception: its sign and payload are not part of the result (x86 makes
    Inf - Inf a NaN with the sign bit set, np.nan has it clear), so a NaN must meet a NaN.
    -0.0 against 0.0 still counts as a difference.
    """
    if got.dtype != want.dtype or got.shape != want.shape:
        return False
    if want.dtype.kind == "f":
        nan_want, nan_got = np.isnan(want), np.isnan(got)
        if not np.array_equal(nan_want, nan_got):
            return False
        got, want = got[~nan_got], want[~nan_want]
    return np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


def golden_checks(golden_dir, tmp):
    with open(os.path.join(golden_dir, "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    checks = []
    for c in cases:
        def check(c=c):
            out = os.path.join(tmp, f"golden_{c['name']}.npy")
            args = ["pool", os.path.join(golden_dir, c["input"]), "-o", out, *c["args"], "-q"]
            featpool(*args)
            got = np.load(out)
            want = np.load(os.path.join(golden_dir, c["expected"]))
            require(same_bits(got, want),
                    f"{c['note']}: expected {want.dtype} {want.shape} {want.tolist()}, "
                    f"got {got.dtype} {got.shape} {got.tolist()}\n"
                    f"  command: {shlex.join([FEATPOOL, *args])}")
        checks.append((f"golden {c['name']}", check))
    return checks


# --------------------------------------------------------------------------------------------
# ResNet-50 feature vectors
# --------------------------------------------------------------------------------------------


def check_resnet50(tmp):
    rng = np.random.default_rng(50)
    x = rng.standard_normal((4, 2048, 7, 7)).astype(np.float32)
    src = os.path.join(tmp, "resnet50_layer4.npy")
    out = os.path.join(tmp, "resnet50_vectors.npy")
    np.save(src, x)
    featpool("pool", src, "-o", out, "--flatten", "-q")
    got = np.load(out)
    require(got.shape == (4, 2048) and got.dtype == np.float32,
            f"expected (4, 2048) float32, got {got.shape} {got.dtype}")
    want64 = torch.flatten(F.adaptive_avg_pool2d(torch.from_numpy(x).double(), 1), 1).numpy()
    want = want64.astype(np.float32)
    # One float32 ulp of the rounded reference (see pool_vs_torch_test.compare).
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    tol = np.abs(np.spacing(want)).astype(np.float64)
    bad = int((err > tol).sum())
    require(bad == 0, f"{bad} of {got.size} values more than 1 ulp from torch; worst "
                      f"{float((err / tol).max()):.2f} ulp")


# --------------------------------------------------------------------------------------------
# Output formats and names
# --------------------------------------------------------------------------------------------


class Fixture:
    """data/a/feats.h5 (groups), data/b/dump.npz, data/b/one.npz, data/single.npy.

    Pooled with --size 2 (NCHW by default for rank 4); rank-1 tensors are skipped.
    """

    SIZES = [2, 2]

    def __init__(self, tmp):
        rng = np.random.default_rng(7)
        self.root = os.path.join(tmp, "data")
        os.makedirs(os.path.join(self.root, "a"))
        os.makedirs(os.path.join(self.root, "b"))
        self.h5 = os.path.join(self.root, "a", "feats.h5")
        self.h5_tensors = {
            "/block1/conv": rng.standard_normal((2, 8, 6, 6)).astype(np.float32),
            "/block2/conv": rng.standard_normal((2, 16, 3, 3)).astype(np.float32),
            "/block2/sub/act": rng.standard_normal((2, 4, 5, 5)).astype(np.float16),
        }
        with h5py.File(self.h5, "w") as f:
            for name, x in self.h5_tensors.items():
                f.create_dataset(name, data=x)
            f.create_dataset("/labels", data=np.arange(2, dtype=np.int64))
        self.npz = os.path.join(self.root, "b", "dump.npz")
        self.npz_tensors = {
            "conv4": rng.standard_normal((2, 8, 4, 4)).astype(np.float32),
            "conv5": rng.standard_normal((2, 8, 2, 2)),  # float64 stays float64
        }
        np.savez(self.npz, labels=np.arange(2), **self.npz_tensors)
        # One poolable member and one that is skipped: exactly one tensor pooled from it.
        self.one = os.path.join(self.root, "b", "one.npz")
        self.one_tensor = rng.integers(-50, 50, size=(2, 4, 3, 3)).astype(np.int32)
        np.savez(self.one, conv=self.one_tensor, ids=np.arange(3))
        self.npy = os.path.join(self.root, "single.npy")
        self.npy_tensor = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
        np.save(self.npy, self.npy_tensor)
        # name in the several-files output -> (input array)
        self.all_tensors = {}
        for name, x in self.h5_tensors.items():
            self.all_tensors["/a/feats" + name] = x
        for name, x in self.npz_tensors.items():
            self.all_tensors["/b/dump/" + name] = x
        self.all_tensors["/b/one/conv"] = self.one_tensor
        self.all_tensors["/single"] = self.npy_tensor
        self.files = [self.h5, self.npz, self.one, self.npy]

    def require_values(self, got, x, what):
        require_matches_torch(got, x, "NCHW", self.SIZES, "avg", False, what)


def pooled_shape(x):
    return x.shape[:2] + (2, 2)


def require_h5_output(path, expected, version, what):
    """expected: {dataset name: input array}; checks names, shapes, dtypes, values, attrs."""
    got, attrs = h5_datasets(path)
    require(sorted(got) == sorted(expected),
            f"{what}: datasets {sorted(got)}, expected {sorted(expected)}")
    for name, x in expected.items():
        ref_shape = pooled_shape(x)
        require(got[name].shape == ref_shape, f"{what}{name}: shape {got[name].shape}, "
                                              f"expected {ref_shape}")
        require_matches_torch(got[name], x, "NCHW", Fixture.SIZES, "avg", False, what + name)
        a = attrs[name]
        missing = [k for k in HDF5_ATTRS if k not in a]
        require(not missing, f"{what}{name}: attributes {missing} missing; has {sorted(a)}")
        require(a["featpool_op"] == "avg", f"{what}{name}: featpool_op {a['featpool_op']!r}")
        require(a["featpool_layout"] == "NCHW",
                f"{what}{name}: featpool_layout {a['featpool_layout']!r}")
        require(list(np.asarray(a["featpool_input_shape"]).tolist()) == list(x.shape),
                f"{what}{name}: featpool_input_shape {a['featpool_input_shape']!r}, "
                f"expected {list(x.shape)}")
        require(a["featpool_version"] == version,
                f"{what}{name}: featpool_version {a['featpool_version']!r} != {version!r}")
        require(str(a["featpool_size"]) != "", f"{what}{name}: empty featpool_size")
        require(str(a["featpool_source"]) != "", f"{what}{name}: empty featpool_source")


def require_npz_output(path, expected, what):
    """expected: {member name as stored, e.g. 'block1/conv.npy': input array}."""
    got = npz_members(path)
    require(sorted(got) == sorted(expected),
            f"{what}: members {sorted(got)}, expected {sorted(expected)}")
    for name, x in expected.items():
        require_matches_torch(got[name], x, "NCHW", Fixture.SIZES, "avg", False,
                              f"{what}:{name}")


def output_format_checks(tmp):
    fx = Fixture(tmp)
    out = os.path.join(tmp, "formats")
    os.makedirs(out)
    # The version the HDF5 attribute must carry; asked once, inside a check, so a binary
    # that cannot even print it fails checks instead of the whole script.
    version_cache = []

    def version():
        if not version_cache:
            version_cache.append(featpool("--version")[1].decode().strip())
        return version_cache[0]

    common = ["--size", "2", "-q"]
    checks = []

    def one_h5_to_h5():
        dst = os.path.join(out, "feats_pooled.h5")
        report = os.path.join(out, "one_h5.json")
        featpool("pool", fx.h5, "-o", dst, *common, "--report", report)
        require_h5_output(dst, fx.h5_tensors, version(), "one HDF5 file -> .h5")
        with open(report, encoding="utf-8") as f:
            records = {r["name"]: r for r in json.load(f)["tensors"]}
        require(records.get("/labels", {}).get("status") == "skipped",
                f"/labels should be skipped, report has {records.get('/labels')}")
        r = records.get("/block2/sub/act", {})
        require(r.get("destination") == f"{dst}:/block2/sub/act"
                and r.get("output_shape") == [2, 4, 2, 2] and r.get("output_dtype") == "float32",
                f"report record for /block2/sub/act: {r}")
    checks.append(("formats: one .h5 (groups) -> .h5", one_h5_to_h5))

    def one_h5_to_npz():
        dst = os.path.join(out, "feats_pooled.npz")
        featpool("pool", fx.h5, "-o", dst, *common)
        require_npz_output(dst, {n.lstrip("/") + ".npy": x for n, x in fx.h5_tensors.items()},
                           "one HDF5 file -> .npz")
    checks.append(("formats: one .h5 (groups) -> .npz", one_h5_to_npz))

    def one_npz_to_npz():
        dst = os.path.join(out, "dump_pooled.npz")
        featpool("pool", fx.npz, "-o", dst, *common)
        require_npz_output(dst, {n + ".npy": x for n, x in fx.npz_tensors.items()},
                           "one NPZ -> .npz")
        require(npz_members(dst)["conv5.npy"].dtype == np.float64, "conv5 should stay float64")
    checks.append(("formats: one .npz -> .npz", one_npz_to_npz))

    def one_npz_to_h5():
        dst = os.path.join(out, "dump_pooled.h5")
        featpool("pool", fx.npz, "-o", dst, *common)
        require_h5_output(dst, {"/" + n: x for n, x in fx.npz_tensors.items()}, version(),
                          "one NPZ -> .h5")
    checks.append(("formats: one .npz -> .h5", one_npz_to_h5))

    def many_files_to_h5():
        dst = os.path.join(out, "all_files.h5")
        report = os.path.join(out, "many.json")
        featpool("pool", *fx.files, "-o", dst, *common, "--report", report)
        require_h5_output(dst, fx.all_tensors, version(), "several files -> .h5")
        with open(report, encoding="utf-8") as f:
            dests = sorted(r["destination"] for r in json.load(f)["tensors"]
                           if r["status"] == "ok")
        require(dests == sorted(f"{dst}:{n}" for n in fx.all_tensors),
                f"report destinations {dests}")
    checks.append(("formats: several files -> .h5 (/<path>/<name>, /<path>)", many_files_to_h5))

    def many_files_to_npz():
        dst = os.path.join(out, "all_files.npz")
        featpool("pool", *fx.files, "-o", dst, *common)
        require_npz_output(dst, {n.lstrip("/") + ".npy": x for n, x in fx.all_tensors.items()},
                           "several files -> .npz")
    checks.append(("formats: several files -> .npz", many_files_to_npz))

    def folder_to_h5_and_npz():
        # A directory argument: paths relative to it; the same names as for the file list.
        dst = os.path.join(out, "folder.h5")
        featpool("pool", fx.root, "-o", dst, *common)
        require_h5_output(dst, fx.all_tensors, version(), "directory -> .h5")
        dst = os.path.join(out, "folder.npz")
        featpool("pool", fx.root, "-o", dst, *common)
        require_npz_output(dst, {n.lstrip("/") + ".npy": x for n, x in fx.all_tensors.items()},
                           "directory -> .npz")
    checks.append(("formats: directory input -> .h5 and .npz", folder_to_h5_and_npz))

    def folder_to_folder():
        dst = os.path.join(out, "tree") + "/"
        featpool("pool", fx.root, "-o", dst, *common)
        files = files_under(dst)
        # .npy when exactly one tensor of the input file is pooled, .h5 otherwise.
        want = sorted(["a/feats.h5", "b/dump.h5", "b/one.npy", "single.npy"])
        require(files == want, f"directory output holds {files}, expected {want}")
        require_h5_output(os.path.join(dst, "a/feats.h5"), fx.h5_tensors, version(),
                          "tree/a/feats.h5")
        require_h5_output(os.path.join(dst, "b/dump.h5"),
                          {"/" + n: x for n, x in fx.npz_tensors.items()}, version(),
                          "tree/b/dump.h5")
        got = np.load(os.path.join(dst, "b/one.npy"))
        fx.require_values(got, fx.one_tensor, "tree/b/one.npy")
        fx.require_values(np.load(os.path.join(dst, "single.npy")), fx.npy_tensor,
                          "tree/single.npy")
    checks.append(("formats: directory -> directory (mirrored tree)", folder_to_folder))

    def folder_to_folder_npz():
        dst = os.path.join(out, "tree_npz") + "/"
        featpool("pool", fx.root, "-o", dst, "--format", "npz", *common)
        files = files_under(dst)
        want = sorted(["a/feats.npz", "b/dump.npz", "b/one.npz", "single.npz"])
        require(files == want, f"--format npz directory output holds {files}, expected {want}")
        require_npz_output(os.path.join(dst, "a/feats.npz"),
                           {n.lstrip("/") + ".npy": x for n, x in fx.h5_tensors.items()},
                           "tree_npz/a/feats.npz")
        require_npz_output(os.path.join(dst, "b/one.npz"), {"conv.npy": fx.one_tensor},
                           "tree_npz/b/one.npz")
        require_npz_output(os.path.join(dst, "single.npz"), {"single.npy": fx.npy_tensor},
                           "tree_npz/single.npz")
    checks.append(("formats: directory -> directory with --format npz", folder_to_folder_npz))

    def npy_outputs():
        dst = os.path.join(out, "block2_conv.npy")
        featpool("pool", f"{fx.h5}:/block2/conv", "-o", dst, *common)
        fx.require_values(np.load(dst), fx.h5_tensors["/block2/conv"], dst)
        dst = os.path.join(out, "conv5.npy")
        featpool("pool", f"{fx.npz}:conv5", "-o", dst, *common)
        fx.require_values(np.load(dst), fx.npz_tensors["conv5"], dst)
        # A file with exactly one poolable tensor also fits an .npy.
        dst = os.path.join(out, "one.npy")
        featpool("pool", fx.one, "-o", dst, *common)
        fx.require_values(np.load(dst), fx.one_tensor, dst)
        _, stdout, _ = featpool("pool", fx.npy, "-o", "-", *common)
        fx.require_values(np.load(io.BytesIO(stdout)), fx.npy_tensor, "-o - (stdout)")
    checks.append(("formats: .npy outputs and -o -", npy_outputs))

    def npy_takes_one_tensor():
        dst = os.path.join(out, "too_many.npy")
        code, _, err = featpool("pool", fx.h5, "-o", dst, *common, expect=None)
        require(code != 0, f"three tensors into one .npy: exit 0 ({err.strip()})")
        require(not os.path.exists(dst), "a refused .npy output was still written")
    checks.append(("formats: .npy refuses several tensors", npy_takes_one_tensor))
    return checks


# --------------------------------------------------------------------------------------------
# Determinism across -j
# --------------------------------------------------------------------------------------------


def determinism_checks(tmp):
    rng = np.random.default_rng(11)
    folder = os.path.join(tmp, "determinism")
    os.makedirs(folder)
    # 8 MiB each: large enough to be split across threads. Global pooling of NCHW sums 1024
    # values per output (the order-sensitive case); NHWC with --size 3 has windows of
    # 11x11 and 12x12 that overlap.
    tensors = [
        ("nchw", rng.standard_normal((8, 256, 32, 32)).astype(np.float32),
         ["--flatten"], "NCHW", [1, 1], True),
        ("nhwc", rng.standard_normal((8, 32, 32, 256)).astype(np.float32),
         ["--layout", "NHWC", "--size", "3"], "NHWC", [3, 3], False),
    ]
    checks = []
    for name, x, flags, layout, sizes, flatten in tensors:
        src = os.path.join(folder, f"{name}.npy")
        np.save(src, x)
        for ext in ("npy", "npz", "h5"):
            def check(name=name, x=x, flags=flags, ext=ext, src=src, layout=layout,
                      sizes=sizes, flatten=flatten):
                digests = {}
                for jobs in (1, 4):
                    for run in (0, 1):
                        dst = os.path.join(folder, f"{name}_j{jobs}_r{run}.{ext}")
                        featpool("pool", src, "-o", dst, *flags, "-j", str(jobs), "-q")
                        with open(dst, "rb") as f:
                            digests[f"-j {jobs} run {run}"] = hashlib.sha256(f.read()).hexdigest()
                require(len(set(digests.values())) == 1,
                        f"{name} .{ext}: outputs differ: "
                        + ", ".join(f"{k}: {v[:12]}" for k, v in digests.items()))
                if ext == "npy":
                    got = np.load(os.path.join(folder, f"{name}_j4_r0.npy"))
                    require_matches_torch(got, x, layout, sizes, "avg", flatten, name)
            checks.append((f"determinism: {name} .{ext} with -j 1 and -j 4", check))
    return checks


def main():
    global FEATPOOL
    here = os.path.dirname(os.path.abspath(__file__))
    args = command_line(__doc__, lambda parser: parser.add_argument(
        "--golden", default=os.path.join(here, "..", "golden")))
    FEATPOOL = args.featpool
    torch.set_num_threads(1)
    return run_in_temporary_folder("pool_outputs_test", args.keep,
                                   lambda tmp: all_checks(os.path.abspath(args.golden), tmp))


def all_checks(golden, tmp):
    checks = golden_checks(golden, tmp)
    checks.append(("resnet50 (4, 2048, 7, 7) -> (4, 2048) float32", lambda: check_resnet50(tmp)))
    checks += output_format_checks(tmp)
    checks += determinism_checks(tmp)
    return checks


if __name__ == "__main__":
    sys.exit(main())
