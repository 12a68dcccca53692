"""Checks of `featpool pool -o X.csv` and `-o X.tsv`, read back with Python's csv module.

Usage: /usr/bin/python3 csv_output_test.py FEATPOOL [--keep]

Every value is compared exactly with the same tensor pooled by featpool into an .npy or .h5
file, with the text checked to be the shortest that reads back as that value:
- float32 and float64 outputs of NCHW inputs with --flatten, as CSV and TSV;
- several tensors of one HDF5 file append their rows in order;
- labels with a separator or a double quote are quoted as RFC 4180 says;
- tensors of different widths, and samples of more than two axes, fail while planning:
  nothing is pooled or written;
- integer, bool and float16 outputs, NaN and infinities, a layout without N.

Needs Debian's interpreter (/usr/bin/python3) with numpy and h5py.
The last line is `csv_output_test: N passed, M failed`; the exit code is 1 on any failure.
"""

import csv
import io
import json
import os
import re
import sys

import h5py
import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree when CTest runs this
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from named_checks import CaseFolder, command_line, require, run_command, run_in_temporary_folder  # noqa: E402,E501

FEATPOOL = ""
TIMEOUT_S = 60


def featpool(*args, expect=0):
    """Runs featpool; fails the check (showing the command) unless the exit code is `expect`.

    Returns (code, stdout text, stderr text).
    """
    code, stdout, stderr = run_command([FEATPOOL, *args], expect, TIMEOUT_S)
    return code, stdout.decode("utf-8", "replace"), stderr


def read_table(path, delimiter=","):
    """The header and the rows, as the csv module reads them; the file must end in a newline."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    require(text.endswith("\n") and "\r" not in text,
            f"{path}: lines must end in \\n alone; ends {text[-20:]!r}")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    require(rows, f"{path}: empty")
    return rows[0], rows[1:]


def significant_digits(text):
    """The significant digits of a number's text: '1.25e-07' -> '125', '100' -> '1'."""
    mantissa = text.lstrip("-").split("e")[0].replace(".", "")
    return mantissa.strip("0")


def require_shortest(text, value, what):
    """`text` has no more significant digits than numpy's shortest round-trip text."""
    shortest = np.format_float_scientific(value, unique=True)
    require(len(significant_digits(text)) <= len(significant_digits(shortest)),
            f"{what}: {text!r} is longer than the shortest text of {value!r} ({shortest})")


def require_rows_equal(rows, labels, expected, what):
    """rows (from the csv module) against labels and an (rows, K) array, value by value."""
    require(len(rows) == len(expected),
            f"{what}: {len(rows)} rows, expected {len(expected)}")
    kind = expected.dtype
    for r, (row, label, want) in enumerate(zip(rows, labels, expected)):
        require(row[0] == label, f"{what}: row {r} is labelled {row[0]!r}, expected {label!r}")
        require(len(row) == 1 + len(want),
                f"{what}: row {r} has {len(row) - 1} values, expected {len(want)}")
        for k, (text, value) in enumerate(zip(row[1:], want)):
            where = f"{what}: row {r} f{k}"
            if kind == np.bool_:
                require(text == ("1" if value else "0"), f"{where}: {text!r} for {value}")
            elif kind.kind in "iu":
                require(re.fullmatch(r"-?[0-9]+", text) and int(text) == int(value),
                        f"{where}: {text!r}, expected {int(value)}")
            elif np.isnan(value):
                require(np.isnan(float(text)), f"{where}: {text!r}, expected nan")
            else:
                got = kind.type(float(text))
                require(got == value and np.signbit(got) == np.signbit(value),
                        f"{where}: {text!r} reads back as {got!r}, expected {value!r}")
                # A half is written as the float32 it widens to (SPEC), as short as that.
                if np.isfinite(value):
                    require_shortest(text, np.float32(value) if kind == np.float16 else value,
                                     where)


def header_for(width):
    return ["source"] + [f"f{k}" for k in range(width)]


def rows_of(array, has_batch=True):
    """The rows a pooled array gives: one per sample (N first), or one without N."""
    return array.reshape(array.shape[0], -1) if has_batch else array.reshape(1, -1)


def pooled_npy(case, source, flags):
    """The tensor featpool writes to an .npy with the same flags: the values to expect."""
    out = case.output("npy")
    featpool("pool", source, "-o", out, *flags, "-q")
    return np.load(out)


def check_table(case, source, flags, labels_of, ext, has_batch=True):
    """Pools `source` to .{ext} and to .npy with `flags`; the rows must be the .npy's."""
    want = rows_of(pooled_npy(case, source, flags), has_batch)
    out = case.output(ext)
    featpool("pool", source, "-o", out, *flags, "-q")
    header, rows = read_table(out, "," if ext == "csv" else "\t")
    require(header == header_for(want.shape[1]), f"{out}: header {header[:4]}...")
    require_rows_equal(rows, labels_of(len(want)), want, out)
    return out


def float_checks(tmp):
    rng = np.random.default_rng(5)
    checks = []
    for dtype in (np.float32, np.float64):
        for ext in ("csv", "tsv"):
            def check(dtype=dtype, ext=ext):
                case = CaseFolder(tmp, f"{np.dtype(dtype).name}_{ext}")
                # Values over many magnitudes, so that short and long texts both occur.
                x = (rng.standard_normal((3, 7, 5, 4)) * 10.0 ** rng.integers(-9, 9, (3, 7, 1, 1)))
                src = case.npy("acts.npy", x.astype(dtype))
                out = check_table(case, src, ["--flatten"],
                                  lambda n: [f"{src}#{i}" for i in range(n)], ext)
                with open(out, encoding="utf-8") as f:
                    first = f.readline()
                sep = "," if ext == "csv" else "\t"
                require(first == sep.join(header_for(7)) + "\n",
                        f"{out}: first line {first!r}")
                want = np.float64 if dtype == np.float64 else np.float32
                require(pooled_npy(case, src, ["--flatten"]).dtype == want, "dtype changed")
            checks.append((f"{np.dtype(dtype).name} NCHW --flatten -> .{ext}", check))
    return checks


def check_hdf5_tensors_append_rows(tmp):
    case = CaseFolder(tmp, "hdf5_rows")
    rng = np.random.default_rng(6)
    src = case.path("acts.h5")
    with h5py.File(src, "w") as f:
        f.create_dataset("/b/late", data=rng.standard_normal((3, 6, 2, 2)).astype(np.float32))
        f.create_dataset("/a/early", data=rng.standard_normal((2, 6, 4, 4)).astype(np.float32))
        f.create_dataset("/labels", data=np.arange(2))  # skipped: rank 1
    h5_out = case.path("reference.h5")
    featpool("pool", src, "-o", h5_out, "--flatten", "-q")
    with h5py.File(h5_out, "r") as f:
        early, late = f["/a/early"][()], f["/b/late"][()]
    out = case.path("out.csv")
    report = case.path("report.json")
    featpool("pool", src, "-o", out, "--flatten", "-q", "--report", report)
    header, rows = read_table(out)
    require(header == header_for(6), f"header {header}")
    # HDF5 datasets are pooled in the order featpool lists them: sorted by path.
    labels = [f"{src}:/a/early#{i}" for i in range(2)] + [f"{src}:/b/late#{i}" for i in range(3)]
    require_rows_equal(rows, labels, np.concatenate([early, late]), out)
    with open(report, encoding="utf-8") as f:
        records = {r["name"]: r for r in json.load(f)["tensors"]}
    r = records["/b/late"]
    require(r["destination"] == out and r["output_shape"] == [3, 6] and r["status"] == "ok",
            f"report record {r}")


def check_quoting(tmp):
    case = CaseFolder(tmp, "quoting")
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    for name, ext, sep in (('we,ird"name.npy', "csv", ","), ("tab\tname.npy", "tsv", "\t")):
        src = case.npy(name, x)
        out = case.path(f"quoted.{ext}")
        featpool("pool", src, "-o", out, "--flatten", "-q")
        with open(out, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
        quoted = '"' + src.replace('"', '""') + '#0"'
        require(lines[1].startswith(quoted + sep),
                f"{out}: row 0 starts {lines[1][:len(quoted) + 10]!r}, expected {quoted!r}")
        header, rows = read_table(out, sep)
        require_rows_equal(rows, [f"{src}#0", f"{src}#1"], rows_of(x.mean(axis=(2, 3))), out)
    # A name without separator or quote is not quoted: the CSV of a plain name stays plain.
    src = case.npy("plain.npy", x)
    out = case.path("plain.csv")
    featpool("pool", src, "-o", out, "--flatten", "-q")
    with open(out, encoding="utf-8") as f:
        lines = f.read().split("\n")
    require(lines[1].startswith(f"{src}#0,"), f"{out}: row 0 is {lines[1][:80]!r}")


def check_widths_must_agree(tmp):
    case = CaseFolder(tmp, "widths")
    rng = np.random.default_rng(8)
    src = case.path("acts.h5")
    with h5py.File(src, "w") as f:
        f.create_dataset("/a", data=rng.standard_normal((2, 6, 2, 2)).astype(np.float32))
        f.create_dataset("/b", data=rng.standard_normal((2, 8, 2, 2)).astype(np.float32))
    out = case.path("out.csv")
    report = case.path("report.json")
    _, _, err = featpool("pool", src, "-o", out, "--flatten", "-q", "--report", report, expect=1)
    want = f"{src}:/b: has 8 features per row, but {src}:/a, the first in {out}, has 6"
    require(want in err, f"stderr {err.strip()!r} lacks {want!r}")
    require(not os.path.exists(out), "the output was written")
    with open(report, encoding="utf-8") as f:
        records = {r["name"]: r for r in json.load(f)["tensors"]}
    # Found while planning: the tensor that fits was never pooled.
    require(records["/a"]["status"] == "ok"
            and records["/a"]["message"] == "not written: planning failed"
            and records["/b"]["status"] == "failed", f"report records {records}")
    require(sorted(os.listdir(case.dir)) == ["acts.h5", "report.json"],
            f"files left: {sorted(os.listdir(case.dir))}")


def check_sample_axes(tmp):
    case = CaseFolder(tmp, "sample_axes")
    rng = np.random.default_rng(9)
    x = case.npy("maps.npy", rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    out = case.path("maps.csv")
    _, _, err = featpool("pool", x, "-o", out, "-q", expect=1)
    want = (f"a row of {out} holds a sample of at most 2 axes, and this tensor's samples are "
            "(3, 1, 1); pass --flatten to write each as one row of 3 values")
    require(want in err, f"stderr {err.strip()!r} lacks {want!r}")
    require(not os.path.exists(out), "the output was written")
    # A sample of two axes (C, L) is one row, in the layout's order, without --flatten.
    tokens = case.npy("tokens.npy", rng.standard_normal((3, 4, 10)).astype(np.float32))
    check_table(case, tokens, ["--size", "2"], lambda n: [f"{tokens}#{i}" for i in range(n)],
                "csv")
    # N inside the layout: each row is still one sample.
    cn = case.npy("cn.npy", rng.standard_normal((4, 3, 6)).astype(np.float32))
    check_table(case, cn, ["--layout", "CNL", "--flatten"],
                lambda n: [f"{cn}#{i}" for i in range(n)], "tsv")
    # Without N, the whole tensor is one row, #0.
    chw = case.npy("chw.npy", rng.standard_normal((5, 6, 6)).astype(np.float32))
    check_table(case, chw, ["--layout", "CHW", "--size", "2", "--flatten"],
                lambda n: [f"{chw}#0"], "csv", has_batch=False)


def check_integer_bool_half(tmp):
    case = CaseFolder(tmp, "integers")
    rng = np.random.default_rng(10)
    ints = case.npy("ints.npy", rng.integers(-30000, 30000, (3, 4, 5, 5)).astype(np.int16))
    out = check_table(case, ints, ["--op", "max", "--flatten"],
                      lambda n: [f"{ints}#{i}" for i in range(n)], "csv")
    require(pooled_npy(case, ints, ["--op", "max", "--flatten"]).dtype == np.int16,
            f"{out}: max of int16 should stay int16")
    flags = case.npy("flags.npy", rng.random((3, 4, 3, 3)) < 0.1)
    out = check_table(case, flags, ["--op", "max", "--flatten"],
                      lambda n: [f"{flags}#{i}" for i in range(n)], "csv")
    _, rows = read_table(out)
    values = {v for row in rows for v in row[1:]}
    require(values == {"0", "1"}, f"{out}: bool values {sorted(values)}")
    halves = case.npy("halves.npy", rng.standard_normal((2, 6, 3, 3)).astype(np.float16))
    check_table(case, halves, ["--op", "max", "--dtype", "float16", "--flatten"],
                lambda n: [f"{halves}#{i}" for i in range(n)], "tsv")


def check_non_finite(tmp):
    case = CaseFolder(tmp, "non_finite")
    x = np.ones((2, 4, 2, 2), dtype=np.float32)
    x[0, 0, 0, 0] = np.nan
    x[0, 1, 1, 1] = np.inf
    x[1, 2, 0, 1] = -np.inf
    x[1, 3] = [[np.inf, -np.inf], [1, 1]]  # avg: nan; max: inf
    src = case.npy("x.npy", x)
    for op in ("avg", "max", "min"):
        out = check_table(case, src, ["--op", op, "--flatten"],
                          lambda n: [f"{src}#{i}" for i in range(n)], "csv")
        _, rows = read_table(out)
        texts = {v for row in rows for v in row[1:]}
        require(texts & {"nan", "inf", "-inf"}, f"{out}: no non-finite text among {texts}")


def check_dry_run_and_merge(tmp):
    case = CaseFolder(tmp, "dry_run")
    src = case.npy("x.npy", np.ones((2, 3, 2, 2), dtype=np.float32))
    out = case.path("x.csv")
    _, stdout, _ = featpool("pool", src, "-o", out, "--flatten", "--dry-run", "--report", "-",
                            "--report-format", "json")
    r = json.loads(stdout)["tensors"][0]
    require(r["destination"] == out and r["output_shape"] == [2, 3]
            and r["message"] == "dry run: not written", f"dry-run record {r}")
    require(not os.path.exists(out), "--dry-run wrote the output")
    _, _, err = featpool("merge", src, "-o", case.path("m.csv"), expect=2)
    require("merge writes one file" in err, f"merge to .csv: {err.strip()!r}")


def check_pyramid_rows(tmp):
    """A pyramid's output is flat already, even with N inside the layout (HCWN): one row per
    sample, normalized as asked."""
    case = CaseFolder(tmp, "pyramid")
    x = np.random.default_rng(11).standard_normal((6, 3, 5, 2)).astype(np.float32)
    src = case.npy("acts.npy", x)
    check_table(case, src, ["--layout", "HCWN", "--size", "1,2x3", "--normalize", "l2"],
                lambda n: [f"{src}#{i}" for i in range(n)], "csv")


def main():
    global FEATPOOL
    args = command_line(__doc__)
    FEATPOOL = args.featpool
    return run_in_temporary_folder("csv_output_test", args.keep, all_checks)


def all_checks(tmp):
    checks = float_checks(tmp)
    checks += [
        ("several HDF5 datasets append rows in order",
         lambda: check_hdf5_tensors_append_rows(tmp)),
        ("labels with a separator or quote are quoted (RFC 4180)", lambda: check_quoting(tmp)),
        ("different widths fail while planning, nothing written",
         lambda: check_widths_must_agree(tmp)),
        ("samples of more than two axes need --flatten; rows are samples",
         lambda: check_sample_axes(tmp)),
        ("int16, bool and float16 outputs", lambda: check_integer_bool_half(tmp)),
        ("nan and infinities read back", lambda: check_non_finite(tmp)),
        ("a pyramid, N inside the layout, normalized", lambda: check_pyramid_rows(tmp)),
        ("--dry-run writes nothing; merge refuses .csv", lambda: check_dry_run_and_merge(tmp)),
    ]
    return checks


if __name__ == "__main__":
    sys.exit(main())
