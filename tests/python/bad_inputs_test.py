"""Bad inputs and faults: every case of docs/bad-inputs.md, one test each.

Usage: bad_inputs_test.py FEATPOOL SAMPLE_DATA

Every case checks together: the exit code; stderr, which is exactly one line
`featpool: error: FILE[:TENSOR]: reason` (and for `pool`, the report on
stdout); that no output and no temporary file is left in the output folder;
and that every input is byte-identical afterwards. Cases that need root
(mounts, device nodes, running featpool as an unprivileged user) are skipped,
with the reason, when the test does not run as root.
"""

import hashlib
import io
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest
from pathlib import Path

import h5py
import numpy as np
import torch

import bad_files
import safetensors_files

FEATPOOL = ""
SAMPLES = ""

TEMPORARY_MARKER = ".featpool-tmp-"
NAME_MAX = 255
PATH_MAX = 4096
RSS_LIMIT = 50 << 20  # bytes of peak RSS for a refusal or a streamed read
# A sanitizer build (FEATPOOL_SANITIZED, set by tests/CMakeLists.txt). Its shadow memory
# and the allocator's quarantine dwarf featpool's own: peak RSS is then not checked.
SANITIZED = bool(os.environ.get("FEATPOOL_SANITIZED"))
RSS_CHECKED = not SANITIZED
IS_ROOT = os.geteuid() == 0
UNPRIVILEGED = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def run(*args, prefix=(), stdin=None, input_bytes=None, timeout=60):
    """Runs featpool; returns (exit code, stdout bytes, stderr text)."""
    done = subprocess.run([*prefix, FEATPOOL, *args], stdin=stdin, input=input_bytes,
                          capture_output=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr.decode("utf-8", "replace")


# Starts featpool from a bare interpreter and writes its peak RSS (KiB) to the file
# argv[1]. Linux counts the pages a child had before its exec in its peak, so a child
# forked straight from this test, numpy and h5py loaded, would report this test's size;
# forked from here, it starts from about 5 MiB.
MEASURE_RSS = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(*args, input_bytes=None, timeout=60):
    """Runs featpool, `input_bytes` through a pipe on its standard input; returns (exit code,
    stdout, stderr, its peak RSS in bytes)."""
    with tempfile.NamedTemporaryFile("r") as rss:
        done = subprocess.run([sys.executable, "-S", "-c", MEASURE_RSS, rss.name, FEATPOOL,
                               *args], input=input_bytes, capture_output=True, timeout=timeout)
        return done.returncode, done.stdout, done.stderr.decode(), int(rss.read()) * 1024


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def report_lines(stdout):
    return stdout.decode("utf-8", "replace").splitlines()


class Case(unittest.TestCase):
    """A temporary folder with the inputs in it and an empty `out/` folder for outputs."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="featpool-bad-")
        os.chmod(self.dir, 0o755)  # reachable by the unprivileged user
        self.out = self.path("out")
        os.mkdir(self.out)
        self.hashes = {}

    def tearDown(self):
        shutil.rmtree(self.dir)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def make(self, name, data):
        """An input file holding `data`, remembered so that its bytes are checked at the end."""
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_bytes(data)
        self.remember(path)
        return path

    def make_npy(self, name, array=None):
        if array is None:
            array = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
        return self.make(name, bad_files.npy_bytes(array))

    def remember(self, path):
        self.hashes[path] = sha256(path)

    def assert_inputs_untouched(self):
        for path, digest in self.hashes.items():
            self.assertEqual(sha256(path), digest, f"{path} changed")

    def assert_nothing_in(self, folder):
        self.assertEqual(sorted(os.listdir(folder)), [], f"left in {folder}")

    def assert_one_error_line(self, err, start, end=""):
        """stderr is the one line `featpool: error: START...END`: for reasons whose middle
        is another library's words (zlib's, HDF5's), which may change between versions."""
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith(f"featpool: error: {start}"), err)
        self.assertTrue(err.endswith(f"{end}\n"), err)

    def assert_pool_report(self, stdout, source, reason, status="failed",
                           totals="0 ok, 0 skipped, 1 failed"):
        """The text report: a header, the tensor's row (SOURCE, its status, the reason),
        the totals."""
        lines = report_lines(stdout)
        self.assertTrue(lines and lines[0].startswith("SOURCE"), stdout)
        rows = [line for line in lines[1:-1] if line.startswith(source + " ")]
        self.assertTrue(any(f" {status} " in row and row.endswith(reason) for row in rows),
                        stdout)
        self.assertEqual(lines[-1], totals)

    def assert_refused(self, reference, where, reason, *, inspect_lists=False):
        """`inspect REFERENCE` and `pool REFERENCE -o out/o.npy` both exit 1 with the one
        line `featpool: error: WHERE: REASON`; pool's report has WHERE's row with the
        reason; nothing is written; the inputs are unchanged. With `inspect_lists`, the
        failure is in the data, not the listing: inspect lists the tensor and
        `inspect --stats` fails."""
        line = f"featpool: error: {where}: {reason}\n"
        if inspect_lists:
            code, out, err = run("inspect", reference)
            self.assertEqual((code, err), (0, ""))
            self.assertIn(reference.encode(), out)
            code, out, err = run("inspect", "--stats", reference)
        else:
            code, out, err = run("inspect", reference)
            self.assertEqual(out, b"")
        self.assertEqual((code, err), (1, line))
        code, out, err = run("pool", reference, "-o", self.path("out", "o.npy"))
        self.assertEqual((code, err), (1, line))
        self.assert_pool_report(out, where, reason)
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()

    def assert_every_prefix_refused(self, whole, suffix, *flags):
        """Every prefix of the file `whole` (0 to len - 1 bytes), each as a file of its own,
        is refused by `inspect FLAGS` in one line naming it and lists nothing; the whole file
        lists. One featpool run takes all the prefixes, as a batch would meet them."""
        folder = self.path("prefixes")
        os.mkdir(folder)
        cuts = [os.path.join(folder, f"cut{length:05d}{suffix}") for length in range(len(whole))]
        for length, path in enumerate(cuts):
            Path(path).write_bytes(whole[:length])
        code, out, err = run("inspect", *flags, *cuts)
        self.assertEqual((code, out), (1, b""))
        lines = err.splitlines()
        self.assertEqual(len(lines), len(cuts), err)
        for path, line in zip(cuts, lines):
            self.assertTrue(line.startswith(f"featpool: error: {path}"), line)
        Path(cuts[0]).write_bytes(whole)
        code, _, err = run("inspect", *flags, cuts[0])
        self.assertEqual((code, err), (0, ""))

    def assert_stays_small(self, args, code, line, input_bytes=None):
        """featpool refuses without allocating: its peak RSS stays under RSS_LIMIT."""
        got, _, err, rss = run_measured(*args, input_bytes=input_bytes)
        self.assertEqual((got, err), (code, line))
        if RSS_CHECKED:
            self.assertLess(rss, RSS_LIMIT, f"peak RSS {rss >> 20} MiB")


def needs_root(reason):
    return unittest.skipUnless(IS_ROOT, f"needs root: {reason}")


class NpyHeaders(Case):
    """Malformed NPY files: refused from the header, before any data is read."""

    def test_empty_file(self):
        x = self.make("empty.npy", b"")
        self.assert_refused(x, x, "empty file")

    def test_truncated_header(self):
        whole = bad_files.npy_bytes(np.zeros((2, 3, 4, 4), np.float32))
        x = self.make("cut.npy", whole[:40])
        self.assert_refused(x, x, "truncated header: expected "
                                  f"{bad_files.npy_header_length(whole)} bytes, file has 30")

    def test_truncated_data(self):
        whole = bad_files.npy_bytes(np.zeros((2, 3, 4, 4), np.float32))
        x = self.make("cut.npy", whole[:200])
        self.assert_refused(x, x, "truncated data: header says 384 bytes, file has 72")

    def test_wrong_magic(self):
        whole = bad_files.npy_bytes(np.zeros((2, 3, 4, 4), np.float32))
        x = self.make("magic.npy", b"\x93NUMPX" + whole[6:])
        self.assert_refused(x, x, "not an NPY file (bad magic)")

    def test_unknown_version(self):
        whole = bad_files.npy_bytes(np.zeros((2, 3, 4, 4), np.float32))
        x = self.make("v9.npy", whole[:6] + b"\x09\x00" + whole[8:])
        self.assert_refused(x, x, "unsupported NPY format version 9.0")

    def test_header_over_the_size_limit(self):
        x = self.make("long.npy", bad_files.NPY_MAGIC + b"\x02\x00" +
                      (20000).to_bytes(4, "little") + b" " * 100)
        self.assert_refused(x, x, "header is 20000 bytes, over numpy's limit of 10000")

    def test_header_that_is_not_a_dict(self):
        x = self.make("list.npy", bad_files.npy_with_header("[1, 2, 3]", bytes(16)))
        self.assert_refused(x, x, "malformed header: not a dict")

    def test_negative_dimension(self):
        x = self.make("neg.npy", bad_files.npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3, 4, 4), }", bytes(16)))
        self.assert_refused(x, x, "negative dimension -3 in shape")

    def test_dimension_past_64_bits(self):
        x = self.make("wide.npy", bad_files.npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 4), }"))
        self.assert_refused(x, x, "dimension 99999999999999999999999 in shape is too large")

    def test_shape_whose_size_overflows(self):
        # 10^20 elements, claimed by a 128-byte file.
        x = self.make("huge.npy", bad_files.npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (10000000000, 10000000000), }"))
        self.assertLess(os.path.getsize(x), 200)
        self.assert_refused(x, x, "shape is too large: its size overflows 64 bits")

    def test_absurd_shape_that_fits_64_bits(self):
        # 10^15 bytes promised, 64 present: refused on the header, nothing allocated.
        x = self.make("absurd.npy", bad_files.npy_with_header(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (100000, 100000, 100000), }",
            bytes(64)))
        self.assert_refused(x, x, "truncated data: header says 1000000000000000 bytes, file has 64")

    def test_unknown_dtype_string(self):
        x = self.make("f3.npy", bad_files.npy_with_header(
            "{'descr': '<f3', 'fortran_order': False, 'shape': (2, 3, 4, 4), }", bytes(96)))
        self.assert_refused(x, x, "unsupported dtype '<f3'")


class Dtypes(Case):
    """Non-numeric tensors are listed (`numeric: false`); pooling one named explicitly
    is an error, as SPEC says; in a selection (a directory) it is skipped."""

    def assert_listed_never_pooled(self, name, array, dtype_string):
        x = self.make_npy(name, array)
        code, out, err = run("inspect", "--json", x)
        self.assertEqual((code, err), (0, ""))
        record = json.loads(out)[0]
        self.assertEqual((record["dtype"], record["numeric"]), (dtype_string, False))
        stem = name[:-4]
        reason = f"dtype {dtype_string} is not numeric"
        code, out, err = run("pool", x, "-o", self.path("out", "o.npy"))
        self.assertEqual((code, err), (1, f"featpool: error: {x}:{stem}: {reason}\n"))
        self.assert_pool_report(out, x, reason)
        code, out, err = run("pool", self.dir, "-o", self.path("out", "o.h5"), "--name", stem)
        self.assertEqual((code, err), (0, ""))
        self.assert_pool_report(out, x, reason, status="skipped",
                                totals="0 ok, 1 skipped, 0 failed")
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()

    def test_object_pickle(self):
        array = np.array([{"a": 1}, None, 3, "x"], dtype=object).reshape(1, 1, 2, 2)
        self.assert_listed_never_pooled("obj.npy", array, "object")

    def test_structured(self):
        array = np.zeros((2, 3, 4, 4), dtype=[("x", "<f4"), ("y", "<i4")])
        self.assert_listed_never_pooled("rec.npy", array, "[('x', '<f4'), ('y', '<i4')]")

    def test_unicode(self):
        array = np.array(["ab", "cd", "ef", "gh"]).reshape(1, 1, 2, 2)
        self.assert_listed_never_pooled("text.npy", array, "<U2")

    def test_complex(self):
        self.assert_listed_never_pooled("cplx.npy", np.zeros((2, 3, 4, 4), np.complex64),
                                        "complex64")


class Npz(Case):
    def tensor(self):
        return np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)

    def test_zip_that_is_not_npz(self):
        # numpy's np.load takes it (a member that is no NPY is raw bytes), so inspect
        # lists no tensor; pooling a file that holds none is an error.
        x = self.make("notes.npz", bad_files.zip_with({"readme.txt": b"hello"}))
        code, out, err = run("inspect", x)
        self.assertEqual((code, out, err), (0, b"", ""))
        reason = "no tensors in the file: nothing to pool"
        code, out, err = run("pool", x, "-o", self.path("out", "o.npy"))
        self.assertEqual((code, err), (1, f"featpool: error: {x}: {reason}\n"))
        self.assert_pool_report(out, x, reason)
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()

    def test_npz_that_is_not_a_zip(self):
        x = self.make("gz.npz", b"\x1f\x8b\x08\x00" + bytes(60))
        self.assert_refused(x, x, "not an NPZ file (no zip signature)")

    def test_truncated_zip(self):
        whole = bad_files.zip_with({"act.npy": bad_files.npy_bytes(self.tensor())})
        x = self.make("cut.npz", whole[: len(whole) // 2])
        self.assert_refused(x, x, "truncated zip archive: the central directory at its end is "
                                  "missing")

    def test_member_that_is_not_npy(self):
        x = self.make("bad.npz", bad_files.zip_with({"act.npy": b"no NPY data in here, sorry"}))
        self.assert_refused(x, f"{x}:act", "not an NPY file (bad magic)")

    def test_member_shorter_than_its_npy_header(self):
        data = bad_files.npy_bytes(self.tensor())
        x = self.make("short.npz", bad_files.zip_with({"act.npy": data[:-100]}))
        self.assert_refused(x, f"{x}:act", "truncated data: header says 384 bytes, file has 284")

    def test_zip_directory_claims_less_than_the_npy_header(self):
        data = bad_files.npy_bytes(self.tensor())
        x = self.make("less.npz", bad_files.zip_claiming_size(data, -8))
        self.assert_refused(x, f"{x}:act", "truncated data: header says 384 bytes, file has 376")

    def test_zip_directory_claims_more_than_the_member_holds(self):
        data = bad_files.npy_bytes(self.tensor())
        x = self.make("more.npz", bad_files.zip_claiming_size(data, 1000))
        self.assert_refused(x, f"{x}:act", "damaged zip archive: the member holds 512 bytes, the "
                                           "zip directory says 1512", inspect_lists=True)

    def test_zip_bomb_is_streamed_in_bounded_memory(self):
        shape = (32, 256, 64, 64)  # 128 MiB of zeros in a file of about 130 KB
        x = self.path("bomb.npz")
        bad_files.write_zip_bomb(x, shape)
        self.remember(x)
        self.assertLess(os.path.getsize(x), 1 << 20)
        out = self.path("out", "o.npy")
        code, _, err, rss = run_measured("pool", x, "-o", out, "-q")
        self.assertEqual((code, err), (0, ""))
        if RSS_CHECKED:
            self.assertLess(rss, RSS_LIMIT, f"peak RSS {rss >> 20} MiB")
        np.testing.assert_array_equal(np.load(out), np.zeros((32, 256, 1, 1), np.float32))
        self.assertEqual(os.listdir(self.out), ["o.npy"])
        self.assert_inputs_untouched()


class Safetensors(Case):
    """Malformed safetensors files: refused from the header, before any data is read."""

    def header_file(self, name, header, data=b""):
        """A file of `header` (a dict, or bytes taken as they are) and `data`."""
        text = header if isinstance(header, bytes) else safetensors_files.header_bytes(header)
        return self.make(name, struct.pack("<Q", len(text)) + text + data)

    def one_tensor(self, name, **entry):
        """A file whose one tensor x is an F32 (2, 3) at [0, 24), with `entry`'s changes."""
        fields = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24], **entry}
        return self.header_file(name, {"x": fields}, bytes(24))

    def test_file_shorter_than_the_length_field(self):
        x = self.make("short.safetensors", b"\x10\x00\x00")
        self.assert_refused(x, x, "truncated header: the 8-byte length is cut off (file has 3)")

    def test_header_over_the_format_limit(self):
        x = self.make("long.safetensors", struct.pack("<Q", 100_000_001) + b"{}")
        line = (f"featpool: error: {x}: header is 100000001 bytes, over the format's limit of "
                "100000000\n")
        self.assert_stays_small(["inspect", x], 1, line)
        self.assert_refused(x, x, "header is 100000001 bytes, over the format's limit of 100000000")

    def test_header_longer_than_the_file(self):
        x = self.make("cut.safetensors", struct.pack("<Q", 64) + b'{"x":')
        self.assert_refused(x, x, "truncated header: expected 64 bytes, file has 5")

    def test_header_that_is_not_an_object(self):
        x = self.header_file("list.safetensors", b"[1, 2]  ")
        self.assert_refused(x, x, "malformed header: it does not begin with '{'")

    def test_header_that_is_not_json(self):
        x = self.header_file("bad.safetensors", b'{"x": }')
        self.assert_refused(x, x, "malformed header: not valid JSON (at byte 7)")

    def test_header_that_is_not_utf8(self):
        x = self.header_file("latin1.safetensors", b'{"caf\xe9": 1}')
        self.assert_refused(x, x, "malformed header: not valid JSON (at byte 7)")

    def test_header_nested_too_deep(self):
        x = self.header_file("deep.safetensors", b'{"x": {"shape": [[[[1]]]]}}')
        self.assert_refused(x, x, "malformed header: nested deeper than a safetensors header is")

    def test_entry_without_data_offsets(self):
        x = self.header_file("partial.safetensors", {"x": {"dtype": "F32", "shape": [2]}})
        self.assert_refused(x, f"{x}:x", "malformed header: no 'data_offsets'")

    def test_unknown_dtype(self):
        x = self.one_tensor("f7.safetensors", dtype="F7")
        self.assert_refused(x, f"{x}:x", 'unknown dtype "F7"')

    def test_negative_dimension(self):
        x = self.one_tensor("neg.safetensors", shape=[-2, 3])
        self.assert_refused(x, f"{x}:x", "malformed header: 'shape' holds something other than "
                                         "a non-negative integer")

    def test_more_dimensions_than_numpy_allows(self):
        x = self.one_tensor("rank.safetensors", shape=[1] * 33, data_offsets=[0, 4])
        self.assert_refused(x, f"{x}:x", "shape has 33 dimensions, more than the 32 numpy allows")

    def test_shape_whose_size_overflows(self):
        x = self.one_tensor("huge.safetensors", shape=[2 ** 32, 2 ** 32, 2])
        self.assert_refused(x, f"{x}:x", "shape is too large: its size overflows 64 bits")

    def test_offsets_that_run_backwards(self):
        x = self.one_tensor("back.safetensors", data_offsets=[24, 0])
        self.assert_refused(x, f"{x}:x", "data_offsets [24, 0] end before they begin")

    def test_offsets_shorter_than_the_shape(self):
        x = self.one_tensor("less.safetensors", data_offsets=[0, 20])
        self.assert_refused(x, f"{x}:x", "data_offsets [0, 20] hold 20 bytes, but shape [2,3] "
                                         "of F32 needs 24")

    def test_offsets_past_the_end_of_the_file(self):
        x = self.header_file("past.safetensors",
                             {"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}},
                             bytes(16))
        self.assert_refused(x, f"{x}:x", "data_offsets [0, 24] run past the end of the data "
                                         "(16 bytes)")

    def test_overlapping_offsets(self):
        entry = {"dtype": "F32", "shape": [2, 3]}
        x = self.header_file("overlap.safetensors",
                             {"a": {**entry, "data_offsets": [0, 24]},
                              "b": {**entry, "data_offsets": [16, 40]}}, bytes(40))
        self.assert_refused(x, f"{x}:b", "data_offsets [16, 40] overlap those of 'a', [0, 24]")

    def test_metadata_that_is_not_strings(self):
        x = self.header_file("meta.safetensors", {"__metadata__": {"epoch": 3}})
        self.assert_refused(x, x, "malformed header: __metadata__ is not strings by name")

    def test_tensor_name_with_a_line_break(self):
        x = self.header_file("newline.safetensors",
                             {"a\nb": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}},
                             bytes(1))
        self.assert_refused(x, x, 'tensor name "a\\nb" contains a control character')

    def test_tensor_with_an_empty_name(self):
        x = self.header_file("empty_name.safetensors",
                             {"": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, bytes(1))
        self.assert_refused(x, x, "a tensor has an empty name")

    def test_truncated_at_every_byte(self):
        """Every prefix of a small valid file is refused in one line, never a crash."""
        whole = safetensors_files.file_bytes(
            {"a": np.arange(6, dtype=np.float32).reshape(1, 2, 3),
             "b": np.arange(4, dtype=np.uint8)}, {"format": "pt"})
        self.assert_every_prefix_refused(whole, ".safetensors", "--stats")


class Hdf5(Case):
    def tensor(self):
        return np.arange(2 * 8 * 16 * 16, dtype=np.float32).reshape(2, 8, 16, 16)

    def test_filter_that_is_not_available_blosc(self):
        x = self.path("blosc.h5")
        bad_files.write_hdf5_with_filter(x, self.tensor(), 32001, (2, 2, 4, 0, 4, 1, 1))
        self.remember(x)
        self.assert_refused(f"{x}:/act", f"{x}:/act", "filter 32001 is not available",
                            inspect_lists=True)

    def test_filter_that_is_not_available_bzip2(self):
        x = self.path("bzip2.h5")
        bad_files.write_hdf5_with_filter(x, self.tensor(), 307, (9,))
        self.remember(x)
        self.assert_refused(f"{x}:/act", f"{x}:/act", "filter 307 is not available",
                            inspect_lists=True)

    def test_corrupt_gzip_chunk(self):
        x = self.path("corrupt.h5")
        bad_files.write_hdf5_with_corrupt_chunk(x, self.tensor())
        self.remember(x)
        for args in (["inspect", "--stats", x], ["pool", x, "-o", self.path("out", "o.npy")]):
            code, out, err = run(*args)
            self.assertEqual(code, 1)
            self.assert_one_error_line(err, f"{x}:/act: corrupt chunk (0, 0, 0, 0): ")
        self.assert_pool_report(out, f"{x}:/act", err.rsplit(": ", 1)[1].rstrip("\n"))
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()

    def test_zero_length_spatial_axis(self):
        x = self.path("zero.h5")
        with h5py.File(x, "w") as f:
            f.create_dataset("act", shape=(2, 8, 0, 16), dtype="f4")
        self.remember(x)
        code, out, err = run("inspect", "--stats", x)
        self.assertEqual((code, err), (0, ""))
        self.assertRegex(report_lines(out)[1], r"\(2, 8, 0, 16\)\s+float32\s+little\s+C\s+0 ")
        reason = "spatial axis H has length 0"
        code, out, err = run("pool", x, "-o", self.path("out", "o.npy"))
        self.assertEqual((code, err), (1, f"featpool: error: {x}:/act: {reason}\n"))
        self.assert_pool_report(out, f"{x}:/act", reason)
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()

    def test_zero_length_batch_gives_an_empty_output(self):
        x = self.path("nobatch.h5")
        with h5py.File(x, "w") as f:
            f.create_dataset("act", shape=(0, 8, 16, 16), dtype="f4")
        self.remember(x)
        out = self.path("out", "o.npy")
        code, _, err = run("pool", x, "-o", out, "-q")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(np.load(out).shape, (0, 8, 1, 1))
        self.assert_inputs_untouched()

    def test_truncated_file(self):
        whole = Path(SAMPLES, "feats.h5").read_bytes()
        x = self.make("cut.h5", whole[:60000])
        for args in (["inspect", x], ["pool", x, "-o", self.path("out", "o.h5")]):
            code, out, err = run(*args)
            self.assertEqual(code, 1)
            self.assertEqual(err, f"featpool: error: {x}: truncated file: it has 60000 bytes, "
                                  f"its superblock says {len(whole)}\n")
        self.assertEqual(report_lines(out)[-1], "0 ok, 0 skipped, 1 failed")
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()

    def test_not_hdf5_with_an_h5_extension(self):
        x = self.make("text.h5", b"a text file, not HDF5\n")
        self.assert_refused(x, x, "not an HDF5 file")

    def fuzz_finding(self, name):
        """A corrupt file the fuzzer found that libhdf5 itself cannot survive."""
        found = Path(SAMPLES).parent / "tests" / "fuzz" / "regressions" / "hdf5_list" / name
        return self.make(name, found.read_bytes())

    def test_corrupt_group_that_crashes_libhdf5(self):
        x = self.fuzz_finding("local_heap_read_past_accumulator.h5")
        self.assert_refused(x, x, "the HDF5 library crashed (SIGSEGV) listing the datasets: "
                                  "the file is corrupt")
        # The crash ends a helper process, not featpool: the next file is listed.
        good = self.path("good.h5")
        with h5py.File(good, "w") as f:
            f["act"] = self.tensor()
        code, out, err = run("inspect", x, good)
        self.assertEqual(code, 1)
        self.assert_one_error_line(err, f"{x}: the HDF5 library crashed")
        self.assertEqual(len(report_lines(out)), 2, out)
        self.assertIn(f"{good}:/act".encode(), out)

    def assert_only_attributes_refused(self, x, reason):
        """Listing and pooling never read attributes; `inspect --attrs` does, and fails."""
        code, _, err = run("inspect", x)
        self.assertEqual((code, err), (0, ""))
        code, _, err = run("pool", x, "-o", self.path("out", "o.h5"), "-q")
        self.assertEqual((code, err), (0, ""))
        code, out, err = run("inspect", "--attrs", x)
        self.assertEqual((code, out, err), (1, b"", f"featpool: error: {x}: {reason}\n"))
        self.assert_inputs_untouched()

    @unittest.skipIf(SANITIZED, "AddressSanitizer reports libhdf5's overrun itself, in the "
                                "helper, before libhdf5 crashes")
    def test_attribute_that_crashes_libhdf5(self):
        x = self.fuzz_finding("global_heap_object_larger_than_collection.h5")
        self.assert_only_attributes_refused(
            x, "the HDF5 library crashed (SIGSEGV) reading the attributes: the file is corrupt")

    def test_attribute_that_loops_forever_in_libhdf5(self):
        x = self.fuzz_finding("global_heap_free_space_of_size_zero.h5")
        self.assert_only_attributes_refused(
            x, "the HDF5 library ran for 5 s of CPU reading the attributes without finishing: "
               "the file is corrupt")


class TorchPt(Case):
    """torch.save files: a restricted unpickler refuses everything but tensors and containers
    of tensors, and every size is checked against the archive before anything is read."""

    def make_pt(self, name, body, storages=None, folder="m"):
        storages = {"0": bad_files.float_storage()} if storages is None else storages
        return self.make(name, bad_files.torch_zip(bad_files.pickled(body), storages, folder))

    def test_global_outside_the_allowed_set_is_refused_and_never_run(self):
        # pickle.loads would run `touch MARKER`; featpool refuses at the global.
        marker = self.path("MARKER")
        body = b"cos\nsystem\n" + bad_files.pickle_str(f"touch {marker}") + b"\x85R"
        x = self.make_pt("evil.pt", body)
        self.assert_refused(x, x, "pickle global os.system is not allowed (featpool reads only "
                                  "tensors and containers of tensors)")
        self.assertFalse(os.path.exists(marker))

    def test_global_named_through_stack_global(self):
        body = (bad_files.pickle_str("builtins") + bad_files.pickle_str("eval") + b"\x93"
                + bad_files.pickle_str("1") + b"\x85R")
        x = self.make_pt("eval.pt", body)
        self.assert_refused(x, x, "pickle global builtins.eval is not allowed (featpool reads "
                                  "only tensors and containers of tensors)")

    def test_global_hidden_inside_a_tensor_dict(self):
        body = bad_files.pickle_dict([("a", bad_files.pickle_tensor((2, 3, 4), (12, 4, 1))),
                                      ("b", b"csubprocess\nPopen\n")])
        x = self.make_pt("popen.pt", body)
        self.assert_refused(x, x, "pickle global subprocess.Popen is not allowed (featpool reads "
                                  "only tensors and containers of tensors)")

    def test_opcode_outside_the_allowed_set(self):
        # BUILD sets an object's state: torch.save never writes it for tensors.
        body = b"ccollections\nOrderedDict\n)R}b"
        x = self.make_pt("build.pt", body)
        self.assert_refused(x, x, "pickle opcode 'b' (0x62) at byte 30 is not allowed (featpool "
                                  "reads only what torch.save writes for tensors and containers "
                                  "of tensors)")

    def test_allowed_global_called_that_is_not_a_function(self):
        body = b"ctorch\nFloatStorage\n)R"
        x = self.make_pt("call.pt", body)
        self.assert_refused(x, x, "pickle global torch.FloatStorage is not callable here (only "
                                  "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter"
                                  " and collections.OrderedDict are)")

    def test_storage_record_missing(self):
        x = self.make_pt("nostorage.pt", bad_files.pickle_tensor((2, 3, 4), (12, 4, 1)),
                         storages={})
        self.assert_refused(x, f"{x}:nostorage", "its storage '0' is missing: the archive has no "
                                                 "record m/data/0")

    def test_storage_record_shorter_than_its_elements(self):
        x = self.make_pt("short.pt", bad_files.pickle_tensor((2, 3, 4), (12, 4, 1)),
                         storages={"0": bad_files.float_storage(10)})
        self.assert_refused(x, f"{x}:short", "its storage '0' holds 40 bytes, fewer than its 24 "
                                             "elements of float32 need")

    def test_view_past_its_storage(self):
        x = self.make_pt("past.pt", bad_files.pickle_dict(
            [("act", bad_files.pickle_tensor((2, 3, 4), (12, 4, 1), offset=6))]))
        self.assert_refused(x, f"{x}:act", "the view reaches element 29 of its storage '0', which "
                                           "has 24")

    def test_shape_whose_size_overflows(self):
        x = self.make_pt("huge.pt", bad_files.pickle_tensor((1 << 40, 1 << 40, 1 << 40), (0, 0, 0)))
        self.assert_refused(x, f"{x}:huge", "shape and strides are too large: they overflow 64 bits")

    def test_negative_size(self):
        x = self.make_pt("neg.pt", bad_files.pickle_tensor((2, -3, 4), (12, 4, 1)))
        self.assert_refused(x, x, "a tensor's size is negative (-3)")

    def test_integer_past_64_bits(self):
        x = self.make_pt("wide.pt", bad_files.pickle_tensor((2, 3, 1 << 70), (12, 4, 1)))
        self.assert_refused(x, x, "an integer of 9 bytes in the pickle is too large")

    def test_truncated_pickle(self):
        body = bad_files.pickle_tensor((2, 3, 4), (12, 4, 1))
        data = bad_files.torch_zip(bad_files.pickled(body)[:60], {"0": bad_files.float_storage()})
        x = self.make("cutpkl.pt", data)
        self.assert_refused(x, x, "truncated pickle: data.pkl ends inside the opcode at byte 49")

    def test_list_that_holds_itself(self):
        # EMPTY_LIST, BINPUT 0, BINGET 0, APPEND: a list inside itself, forever.
        x = self.make_pt("loop.pt", b"]q\x00h\x00a")
        self.assert_refused(x, x, "containers nested more than 100 deep (or containing themselves)")

    def test_two_tensors_with_one_name(self):
        tensor = bad_files.pickle_tensor((2, 3, 4), (12, 4, 1))
        body = bad_files.pickle_dict([("a.b", tensor), ("a", bad_files.pickle_dict([("b", tensor)]))])
        x = self.make_pt("twice.pt", body)
        self.assert_refused(x, x, "two tensors are named 'a.b'")

    def test_zip_without_data_pkl(self):
        x = self.make("notorch.pt", bad_files.zip_with({"act.npy": bad_files.npy_bytes(
            np.zeros((2, 3), np.float32))}))
        self.assert_refused(x, x, "not a torch.save file: the zip archive holds no data.pkl")

    def test_truncated_archive(self):
        whole = bad_files.torch_zip(bad_files.pickled(bad_files.pickle_tensor((2, 3, 4), (12, 4, 1))),
                                    {"0": bad_files.float_storage()})
        x = self.make("cut.pt", whole[: len(whole) // 2])
        self.assert_refused(x, x, "truncated zip archive: the central directory at its end is "
                                  "missing")

    def test_legacy_pickle_format(self):
        x = self.path("legacy.pt")
        torch.save(torch.zeros(2, 3, 4, 4), x, _use_new_zipfile_serialization=False)
        self.remember(x)
        self.assert_refused(x, x, LEGACY_REASON)

    def test_legacy_tar_format(self):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name in ("sys_info", "pickle", "storages", "tensors"):
                info = tarfile.TarInfo(name)
                info.size = 1
                tar.addfile(info, io.BytesIO(b"\x80"))
        x = self.make("tar.pt", out.getvalue())
        self.assert_refused(x, x, LEGACY_REASON)

    def test_pt_that_is_neither_zip_nor_pickle(self):
        x = self.make("text.pth", b"this is not a checkpoint\n")
        self.assert_refused(x, x, "not a PyTorch file (no zip signature)")

    def test_torchscript_archive(self):
        x = self.path("script.pt")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 3)), x)
        self.remember(x)
        code, out, err = run("inspect", x)
        self.assertEqual((code, out), (1, b""))
        self.assert_one_error_line(err, f"{x}: pickle global __torch__.", "is not allowed "
                                   "(featpool reads only tensors and containers of tensors)")
        self.assert_inputs_untouched()

    def test_truncation_at_every_byte(self):
        body = bad_files.pickle_dict([("act", bad_files.pickle_tensor((2, 3, 4), (1, 2, 6)))])
        whole = bad_files.torch_zip(bad_files.pickled(body), {"0": bad_files.float_storage()})
        self.assert_every_prefix_refused(whole, ".pt", "--stats")


LEGACY_REASON = ("legacy torch.save format (torch < 1.6) is not supported: load the file with "
                 "torch and save it again with torch >= 1.6, torch.save(obj, path), whose default "
                 "_use_new_zipfile_serialization=True writes the zip format featpool reads")


class Paths(Case):
    def test_directory_given_as_a_file(self):
        os.mkdir(self.path("folder.h5"))
        self.assert_refused(self.path("folder.h5") + ":act", self.path("folder.h5"),
                            "Is a directory")

    def test_symlink_loop(self):
        os.symlink("loop.npy", self.path("loop.npy"))
        self.assert_refused(self.path("loop.npy"), self.path("loop.npy"),
                            "Too many levels of symbolic links")

    def test_path_over_path_max(self):
        x = self.path(*(["d" * 200] * 21), "x.npy")
        self.assertGreater(len(x), PATH_MAX)
        self.assert_refused(x, x, "File name too long")

    def test_non_utf8_file_names(self):
        # Linux names are bytes: JSON shows a byte that is not UTF-8 as U+FFFD.
        folder = os.fsencode(self.path("in"))
        name = os.path.join(folder, b"act\xff\xfe.npy")
        os.mkdir(folder)
        Path(os.fsdecode(name)).write_bytes(bad_files.npy_bytes(np.ones((1, 2, 3, 3), np.float32)))
        self.remember(os.fsdecode(name))
        shown = os.fsdecode(folder) + "/act\ufffd\ufffd.npy"
        code, out, err = run("inspect", "--json", os.fsdecode(name))
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out)[0]["file"], shown)
        code, out, err = run("pool", os.fsdecode(folder), "-o", self.path("out") + "/",
                             "--report", "-", "--report-format", "json")
        self.assertEqual((code, err), (0, ""))
        record = json.loads(out)["tensors"][0]
        self.assertEqual((record["file"], record["status"]), (shown, "ok"))
        code, out, err = run("inspect", os.fsdecode(name))
        self.assertEqual((code, err), (0, ""))
        self.assertIn(name, out)  # text keeps the bytes as they are
        self.assertEqual(os.listdir(os.fsencode(self.out)), [b"act\xff\xfe.npy"])
        self.assert_inputs_untouched()

    def test_names_at_name_max(self):
        # A 255-byte input name, and outputs whose temporary names would pass the limit.
        x = self.make_npy("i" * (NAME_MAX - 4) + ".npy")
        code, out, err = run("inspect", x)
        self.assertEqual((code, err), (0, ""))
        self.assertIn(x.encode(), out)
        code, _, err = run("pool", x, "-o", self.path("out") + "/", "-q")
        self.assertEqual((code, err), (0, ""))
        target = self.path("out", "o" * (NAME_MAX - 4) + ".npy")
        code, _, err = run("pool", x, "-o", target, "-q")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(sorted(os.listdir(self.out)),
                         sorted([os.path.basename(x), os.path.basename(target)]))
        self.assert_inputs_untouched()

    def test_output_name_over_name_max(self):
        x = self.make_npy("x.npy")
        target = self.path("out", "o" * (NAME_MAX - 3) + ".npy")
        code, out, err = run("pool", x, "-o", target)
        reason = "cannot create the output: File name too long"
        self.assertEqual((code, err), (1, f"featpool: error: {target}: {reason}\n"))
        self.assert_pool_report(out, x, reason)
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()

    def test_paths_near_path_max(self):
        folder = self.path(*(["d" * 200] * 19))
        os.makedirs(folder)
        x = self.make_npy(os.path.join(folder, "x" * (PATH_MAX - 20 - len(folder)) + ".npy"))
        self.assertGreater(len(x), PATH_MAX - 25)
        code, out, err = run("inspect", x)
        self.assertEqual((code, err), (0, ""))
        self.assertIn(x.encode(), out)
        target = os.path.join(folder, "o.npy")
        code, _, err = run("pool", x, "-o", target, "-q")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(np.load(target).shape, (2, 3, 1, 1))
        self.assert_inputs_untouched()

    def test_output_folder_that_does_not_exist(self):
        x = self.make_npy("x.npy")
        target = self.path("out", "missing", "o.npy")
        reason = "cannot create the output: No such file or directory"
        code, out, err = run("pool", x, "-o", target)
        self.assertEqual((code, err), (1, f"featpool: error: {target}: {reason}\n"))
        self.assert_pool_report(out, x, reason)
        self.assert_nothing_in(self.out)


@needs_root("it drops to user nobody, for whom permissions count (root ignores them)")
class Permissions(Case):
    """featpool runs as nobody, from a copy beside its modules that nobody can reach."""

    def setUp(self):
        super().setUp()
        bin_dir = self.path("bin")
        os.mkdir(bin_dir)
        for name in os.listdir(os.path.dirname(FEATPOOL)):
            if name == "featpool" or (name.startswith("featpool_") and name.endswith(".so")):
                shutil.copy(os.path.join(os.path.dirname(FEATPOOL), name), bin_dir)
        self.featpool = os.path.join(bin_dir, "featpool")

    def run_as_nobody(self, *args):
        done = subprocess.run([*UNPRIVILEGED, self.featpool, *args], capture_output=True,
                              timeout=60, cwd="/")
        return done.returncode, done.stdout, done.stderr.decode()

    def assert_refused_to_nobody(self, reference, where, reason, output):
        line = f"featpool: error: {where}: {reason}\n"
        code, out, err = self.run_as_nobody("inspect", reference)
        self.assertEqual((code, out, err), (1, b"", line))
        code, out, err = self.run_as_nobody("pool", reference, "-o", output)
        self.assertEqual((code, err), (1, line))
        self.assertEqual(report_lines(out)[-1], "0 ok, 0 skipped, 1 failed")
        self.assertTrue(report_lines(out)[1].endswith(reason))
        self.assert_inputs_untouched()

    def writable_out(self):
        os.chmod(self.out, 0o777)
        return self.path("out", "o.npy")

    def test_unreadable_file(self):
        x = self.make_npy("secret.npy")
        os.chmod(x, 0)
        self.assert_refused_to_nobody(x, x, "Permission denied", self.writable_out())
        self.assert_nothing_in(self.out)

    def test_folder_that_may_not_be_searched(self):
        x = self.make_npy("locked/x.npy")
        os.chmod(self.path("locked"), 0o700)
        self.assert_refused_to_nobody(x, x, "Permission denied", self.writable_out())
        self.assert_nothing_in(self.out)

    def test_folder_that_may_not_be_listed(self):
        self.make_npy("hidden/x.npy")
        os.chmod(self.path("hidden"), 0o711)
        folder = self.path("hidden")
        self.assert_refused_to_nobody(folder, folder, "cannot list the directory: Permission "
                                                      "denied", self.writable_out())
        self.assert_nothing_in(self.out)

    def test_output_folder_not_writable(self):
        x = self.make_npy("x.npy")
        target = self.path("out", "o.npy")
        reason = "cannot create the output: Permission denied"
        code, out, err = self.run_as_nobody("pool", x, "-o", target)
        self.assertEqual((code, err), (1, f"featpool: error: {target}: {reason}\n"))
        self.assert_pool_report(out, x, reason)
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()


class Streams(Case):
    def test_fifo_without_a_writer(self):
        # SPEC's 10-second rule; inspect and pool wait side by side.
        fifo = self.path("feed.npy")
        os.mkfifo(fifo)
        start = time.monotonic()
        procs = [subprocess.Popen([FEATPOOL, *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
                 for args in (["inspect", fifo], ["pool", fifo, "-o", self.path("out", "o.npy")])]
        results = [(p.communicate(timeout=30), p.returncode) for p in procs]
        results = [(code, out, err) for (out, err), code in results]
        self.assertLess(time.monotonic() - start, 20)
        reason = "no data arrived on the FIFO within 10 seconds"
        for code, _, err in results:
            self.assertEqual((code, err.decode()), (1, f"featpool: error: {fifo}: {reason}\n"))
        self.assertEqual(results[0][1], b"")
        self.assert_pool_report(results[1][1], fifo, reason)
        self.assert_nothing_in(self.out)

    def test_ctrl_c_while_waiting_on_a_fifo(self):
        fifo = self.path("feed.npy")
        os.mkfifo(fifo)
        proc = subprocess.Popen([FEATPOOL, "pool", fifo, "-o", self.path("out", "o.npy")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.wait_until_open(proc.pid, fifo)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        self.assertLess(time.monotonic() - start, 2)
        self.assertEqual((proc.returncode, out, err), (130, b"", b""))
        self.assert_nothing_in(self.out)

    def test_dev_zero_as_a_file(self):
        self.assert_refused("/dev/zero", "/dev/zero", "not an NPY, NPZ, HDF5, safetensors or PyTorch file")

    def test_dev_zero_on_standard_input(self):
        with open("/dev/zero", "rb") as zeros:
            code, out, err = run("inspect", "--stats", "-", stdin=zeros, timeout=20)
        self.assertEqual((code, out, err),
                         (1, b"", "featpool: error: -:stdin: not an NPY file (bad magic)\n"))

    def test_truncated_stream_on_standard_input(self):
        data = bad_files.npy_bytes(np.zeros((2, 3, 4, 4), np.float32))[:300]
        reason = "truncated data: header says 384 bytes, file has 172"
        code, out, err = run("pool", "-", "-o", self.path("out", "o.npy"), input_bytes=data)
        self.assertEqual((code, err), (1, f"featpool: error: -:stdin: {reason}\n"))
        self.assert_pool_report(out, "-", reason)
        self.assert_nothing_in(self.out)

    def test_standard_input_that_is_a_terminal(self):
        leader, follower = os.openpty()
        try:
            code, out, err = run("inspect", "-", stdin=follower, timeout=20)
        finally:
            os.close(leader)
            os.close(follower)
        self.assertEqual((code, out, err), (1, b"", "featpool: error: -: standard input is a "
                                                    "terminal: pipe an NPY stream into it\n"))

    def test_fifo_with_a_writer_is_read_as_a_stream(self):
        # bash's <(zcat x.npy.gz): a FIFO in /dev/fd, fed by another process.
        array = np.arange(2 * 8 * 5 * 5, dtype=np.float32).reshape(2, 8, 5, 5)
        x = self.make_npy("x.npy", array)
        subprocess.run(["gzip", "-k", x], check=True)
        out = self.path("out", "o.npy")
        command = f'"{FEATPOOL}" pool <(zcat "{x}.gz") -o "{out}" -q'
        done = subprocess.run(["bash", "-c", command], capture_output=True, timeout=60)
        self.assertEqual((done.returncode, done.stderr), (0, b""))
        np.testing.assert_array_equal(np.load(out), array.mean(axis=(2, 3), keepdims=True))
        self.assert_inputs_untouched()

    def test_input_that_shrinks_while_being_read(self):
        # Truncated to half once featpool has read 8 MiB of it: a clean error, or (when it
        # read everything first) the whole correct result; never a wrong result with 0.
        array = (np.arange(8 * 256 * 128 * 128, dtype=np.int64) % 1021).astype(np.float32)
        array = array.reshape(8, 256, 128, 128)
        x = self.path("big.npy")
        np.save(x, array)
        out = self.path("out", "o.npy")
        proc = subprocess.Popen([FEATPOOL, "pool", x, "-o", out, "-q"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        while proc.poll() is None and self.bytes_read(proc.pid) < 8 << 20:
            time.sleep(0.0005)
        os.truncate(x, os.path.getsize(x) // 2)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            expected = array.astype(np.float64).mean(axis=(2, 3), keepdims=True)
            np.testing.assert_array_equal(np.load(out), expected.astype(np.float32))
        else:
            self.assertEqual(proc.returncode, 1)
            self.assert_one_error_line(err.decode(), f"{x}:big: truncated data")
            self.assert_nothing_in(self.out)

    def wait_until_open(self, pid, path):
        """Waits until process `pid` holds `path` open (it is then waiting on it)."""
        deadline = time.monotonic() + 10
        while True:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
                if any(os.readlink(f"/proc/{pid}/fd/{fd}") == path for fd in fds):
                    return
            except OSError:
                pass  # an fd closed between listing and reading it
            self.assertLess(time.monotonic(), deadline, f"{path} was never opened")
            time.sleep(0.01)

    @staticmethod
    def bytes_read(pid):
        try:
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("rchar:"):
                    return int(line.split()[1])
        except OSError:
            pass  # exited meanwhile
        return 0


class Outputs(Case):
    def test_output_is_an_input_through_a_symlink(self):
        x = self.make_npy("x.npy")
        os.symlink(x, self.path("out", "link.npy"))
        target = self.path("out", "link.npy")
        reason = f"output {target} is one of the inputs"
        code, out, err = run("pool", x, "-o", target, "--force")
        self.assertEqual((code, err), (1, f"featpool: error: {x}:x: {reason}\n"))
        self.assert_pool_report(out, x, reason)
        self.assertTrue(os.path.islink(target))
        self.assertEqual(os.listdir(self.out), ["link.npy"])
        self.assert_inputs_untouched()

    def test_output_is_an_input_through_a_hard_link(self):
        x = self.make_npy("x.npy")
        target = self.path("out", "hard.npy")
        os.link(x, target)
        reason = f"output {target} is one of the inputs"
        code, out, err = run("pool", x, "-o", target, "--force")
        self.assertEqual((code, err), (1, f"featpool: error: {x}:x: {reason}\n"))
        self.assert_pool_report(out, x, reason)
        self.assertEqual(os.listdir(self.out), ["hard.npy"])
        self.assert_inputs_untouched()

    def test_report_that_would_replace_an_input(self):
        x = self.make_npy("x.npy")
        code, out, err = run("pool", x, "-o", self.path("out", "o.npy"), "--report", x)
        self.assertEqual((code, out, err),
                         (1, b"", f"featpool: error: {x}: the report would replace one of the "
                                  "inputs\n"))
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()

    def test_report_that_would_replace_the_output(self):
        x = self.make_npy("x.npy")
        target = self.path("out", "o.npy")
        code, out, err = run("pool", x, "-o", target, "--report", target)
        self.assertEqual((code, out, err),
                         (1, b"", f"featpool: error: {target}: the report would replace the "
                                  "pooled output\n"))
        self.assert_nothing_in(self.out)

    @needs_root("it makes a device node")
    def test_report_to_a_device_is_written_through_never_replaced(self):
        x = self.make_npy("x.npy")
        full = self.path("full")
        os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # a /dev/full of its own
        target = self.path("out", "o.npy")
        code, out, err = run("pool", x, "-o", target, "--report", full)
        self.assertEqual((code, out, err),
                         (1, b"", f"featpool: error: {full}: cannot write: No space left on "
                                  "device\n"))
        self.assertTrue(stat.S_ISCHR(os.lstat(full).st_mode))
        self.assertFalse([n for n in os.listdir(self.dir) if TEMPORARY_MARKER in n])
        self.assert_inputs_untouched()

    def test_report_to_a_fifo(self):
        x = self.make_npy("x.npy")
        fifo = self.path("report.fifo")
        os.mkfifo(fifo)
        code, out, err = run("pool", x, "-o", self.path("out", "o.npy"), "--report", fifo)
        self.assertEqual((code, out, err),
                         (1, b"", f"featpool: error: {fifo}: cannot write: nothing reads the "
                                  "FIFO\n"))
        # Opened for reading and writing, a FIFO opens at once and never reports an end.
        reader = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        try:
            code, out, err = run("pool", x, "-o", self.path("out", "o.npy"), "--report", fifo,
                                 "--force")
            self.assertEqual((code, out, err), (0, b"", ""))
            self.assertIn(b"1 ok, 0 skipped, 0 failed\n", os.read(reader, 65536))
        finally:
            os.close(reader)
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))
        self.assert_inputs_untouched()

    def test_standard_output_on_a_full_disk(self):
        x = self.make_npy("x.npy")
        line = "featpool: error: -: cannot write: No space left on device\n"
        with open("/dev/full", "wb") as full:
            for args in (["inspect", x], ["inspect", "--json", x], ["pool", x, "-o", "-", "-q"]):
                code, err = self.run_to(full, *args)
                self.assertEqual((code, err), (1, line), args)
            # The pooled file is whole; its report to stdout was lost, so the run failed.
            code, err = self.run_to(full, "pool", x, "-o", self.path("out", "o.npy"))
        self.assertEqual((code, err), (1, line))
        self.assertEqual(np.load(self.path("out", "o.npy")).shape, (2, 3, 1, 1))
        self.assert_inputs_untouched()

    def test_output_that_is_a_device(self):
        x = self.make_npy("x.npy")
        code, out, err = run("pool", x, "-o", "/dev/full")
        self.assertEqual((code, out, err),
                         (2, b"", "featpool: error: -o: '/dev/full': unknown output extension; "
                                  "use .npy, .npz, .h5, .hdf5, .safetensors, .csv, .tsv, a directory "
                                  "or -; see 'featpool pool --help'\n"))
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/full").st_mode))
        self.assert_inputs_untouched()

    def test_output_that_is_a_symlink_to_a_device(self):
        # Refused as existing; with --force the link, not the device, is replaced.
        x = self.make_npy("x.npy")
        link = self.path("out", "o.npy")
        os.symlink("/dev/full", link)
        reason = f"output {link} exists; pass --force to overwrite it"
        code, out, err = run("pool", x, "-o", link)
        self.assertEqual((code, err), (1, f"featpool: error: {x}:x: {reason}\n"))
        self.assert_pool_report(out, x, reason)
        self.assertTrue(os.path.islink(link))
        code, _, err = run("pool", x, "-o", link, "--force", "-q")
        self.assertEqual((code, err), (0, ""))
        self.assertFalse(os.path.islink(link))
        self.assertEqual(np.load(link).shape, (2, 3, 1, 1))
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/full").st_mode))
        self.assertEqual(os.listdir(self.out), ["o.npy"])
        self.assert_inputs_untouched()

    @staticmethod
    def run_to(stdout, *args):
        done = subprocess.run([FEATPOOL, *args], stdout=stdout, stderr=subprocess.PIPE,
                              timeout=60)
        return done.returncode, done.stderr.decode()

    @needs_root("it mounts a read-only tmpfs")
    def test_read_only_folder(self):
        x = self.make_npy("x.npy")
        with mounted(self.out, "ro,size=1m"):
            cases = [(self.path("out", "o.npy"), "o.npy", "cannot create the output"),
                     (self.path("out", "o.h5"), "o.h5", "cannot create the output"),
                     (self.path("out", "sub") + "/", "sub/x.npy", "cannot create its folder")]
            for output, where, what in cases:
                reason = f"{what}: Read-only file system"
                code, out, err = run("pool", x, "-o", output)
                self.assertEqual((code, err),
                                 (1, f"featpool: error: {self.path('out', where)}: {reason}\n"))
                self.assert_pool_report(out, x, reason)
            # The report is an output too.
            report = self.path("out", "r.txt")
            code, out, err = run("pool", x, "-o", self.path("o.npy"), "--report", report)
            self.assertEqual((code, out, err),
                             (1, b"", f"featpool: error: {report}: cannot create the output: "
                                      "Read-only file system\n"))
            self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()

    @needs_root("it mounts a small tmpfs")
    def test_small_disk_that_fills_up(self):
        x = self.make_npy("big.npy", np.ones((4, 64, 32, 32), np.float32))  # 1 MiB
        with mounted(self.out, "size=64k"):
            for output, where in (("o.npy", "o.npy"), ("o.h5", "o.h5:/big"), ("o.npz", "o.npz"),
                                  ("mirror/", "mirror/big.npy")):
                code, out, err = run("pool", x, "-o", self.path("out", output), "--size", "32")
                self.assertEqual(code, 1, output)
                self.assert_one_error_line(err, f"{self.path('out', where)}: ",
                                           "No space left on device")
                self.assertEqual(report_lines(out)[-1], "0 ok, 0 skipped, 1 failed")
                leftovers = [n for n in os.listdir(self.out) if n != "mirror"]
                self.assertEqual(leftovers, [], output)
            # A mirrored output's folder is made before the disk fills, and stays.
            self.assert_nothing_in(self.path("out", "mirror"))
        self.assert_inputs_untouched()


class mounted:
    """A tmpfs mounted on `where` with `options` for the block, always unmounted after."""

    def __init__(self, where, options):
        self.where, self.options = where, options

    def __enter__(self):
        subprocess.run(["mount", "-t", "tmpfs", "-o", self.options, "tmpfs", self.where],
                       check=True)

    def __exit__(self, *failure):
        subprocess.run(["umount", self.where], check=True)


class Interruptions(Case):
    """A tensor fed half-way through a FIFO keeps featpool mid-write: the temporary file
    of its output exists before any data is read, and stays while featpool waits."""

    def start_half_fed(self, name, out, array, *flags):
        """Starts `pool FIFO -o OUT` with half of `array` in the FIFO called `name`;
        returns the process, the FIFO's writer and the bytes still to write."""
        fifo = self.path(name)
        os.mkfifo(fifo)
        proc = subprocess.Popen([FEATPOOL, "pool", fifo, "-o", out, *flags],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        writer = open(fifo, "wb")
        data = bad_files.npy_bytes(array)
        writer.write(data[: len(data) // 2])
        writer.flush()
        self.wait_for_temporary(out)
        return proc, writer, data[len(data) // 2:]

    def temporaries(self):
        return [n for n in os.listdir(self.out) if TEMPORARY_MARKER in n]

    def wait_for_temporary(self, out):
        prefix = "." + os.path.basename(out) + TEMPORARY_MARKER
        deadline = time.monotonic() + 10
        while not any(n.startswith(prefix) for n in os.listdir(self.out)):
            self.assertLess(time.monotonic(), deadline, "featpool never started writing")
            time.sleep(0.01)

    def tensor(self, value=1):
        return np.full((16, 64, 32, 32), value, np.float32)

    def assert_stopped_by(self, sig, code):
        proc, writer, _ = self.start_half_fed("feed.npy", self.path("out", "o.npy"),
                                              self.tensor())
        proc.send_signal(sig)
        stdout, err = proc.communicate(timeout=30)
        writer.close()
        self.assertEqual((proc.returncode, err), (code, b""))
        self.assert_pool_report(stdout, self.path("feed.npy"), "not written: interrupted",
                                status="skipped", totals="0 ok, 1 skipped, 0 failed")
        self.assert_nothing_in(self.out)

    def test_sigint_mid_write(self):
        self.assert_stopped_by(signal.SIGINT, 130)

    def test_sigterm_mid_write(self):
        self.assert_stopped_by(signal.SIGTERM, 143)

    def test_sigkill_mid_write(self):
        out = self.path("out", "o.npy")
        proc, writer, _ = self.start_half_fed("feed.npy", out, self.tensor())
        proc.kill()
        proc.communicate(timeout=30)
        writer.close()
        # Only the temporary file remains: hidden, never under the target's name, never
        # taken for an input, and in nobody's way when the run is done again.
        leftovers = self.temporaries()
        self.assertEqual(len(leftovers), 1)
        self.assertRegex(leftovers[0], r"^\.o\.npy\.featpool-tmp-[A-Za-z0-9]{6}$")
        self.assertFalse(os.path.exists(out))
        code, listed, err = run("inspect", self.out)
        self.assertEqual((code, listed, err), (0, b"", ""))
        code, _, err = run("pool", self.make_npy("x.npy"), "-o", out, "-q")
        self.assertEqual((code, err), (0, ""))

    def test_two_processes_writing_one_output(self):
        # Both are mid-write at once; the one that finishes second finds the output
        # there and leaves it: one whole file, and an "exists" error.
        out = self.path("out", "o.npy")
        first, first_writer, first_rest = self.start_half_fed("a.npy", out, self.tensor(1), "-q")
        second, second_writer, second_rest = self.start_half_fed("b.npy", out, self.tensor(2),
                                                                 "-q")
        self.assertEqual(len(self.temporaries()), 2)
        first_writer.write(first_rest)
        first_writer.close()
        self.assertEqual(first.wait(timeout=30), 0)
        second_writer.write(second_rest)
        second_writer.close()
        _, err = second.communicate(timeout=30)
        self.assertEqual((second.returncode, err.decode()),
                         (1, f"featpool: error: {out}: exists now (another process wrote it "
                             "meanwhile); pass --force to overwrite it\n"))
        np.testing.assert_array_equal(np.load(out), np.ones((16, 64, 1, 1), np.float32))
        self.assertEqual(os.listdir(self.out), ["o.npy"])

    def test_two_processes_writing_one_output_with_force(self):
        # With --force the later one replaces the output, whole.
        out = self.path("out", "o.npy")
        first, first_writer, first_rest = self.start_half_fed("a.npy", out, self.tensor(1), "-q",
                                                              "--force")
        second, second_writer, second_rest = self.start_half_fed("b.npy", out, self.tensor(2),
                                                                 "-q", "--force")
        for proc, writer, rest in ((first, first_writer, first_rest),
                                   (second, second_writer, second_rest)):
            writer.write(rest)
            writer.close()
            self.assertEqual(proc.wait(timeout=30), 0)
        np.testing.assert_array_equal(np.load(out), np.full((16, 64, 1, 1), 2, np.float32))
        self.assertEqual(os.listdir(self.out), ["o.npy"])


class ResourceBounds(Case):
    def test_huge_shape_claim_is_refused_in_little_memory(self):
        x = self.make("huge.npy", bad_files.npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (10000000000, 10000000000), }"))
        line = f"featpool: error: {x}: shape is too large: its size overflows 64 bits\n"
        self.assert_stays_small(["inspect", "--stats", x], 1, line)
        self.assert_stays_small(["pool", x, "-o", self.path("out", "o.npy"), "-q"], 1, line)
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()

    def test_huge_shape_claim_on_a_stream_takes_memory_only_as_data_arrives(self):
        # A stream's size is unknown until it ends: the claim of 4 GB is planned (its output
        # is under the 4 GiB cap), and the 400 kB that arrive must not cost 8 GB of
        # accumulators.
        stream = bad_files.npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000, 1000), }",
            np.ones(100000, np.float32).tobytes())
        line = ("featpool: error: -:stdin: truncated data: header says 4000000000 bytes, "
                "file has 400000\n")
        for op in ("avg", "max"):
            with self.subTest(op=op):
                self.assert_stays_small(["pool", "-", "--layout", "NCL", "--size", "1000", "--op",
                                         op, "-o", self.path("out", "o.npy"), "-q"], 1, line,
                                        input_bytes=stream)
                self.assert_nothing_in(self.out)

    @unittest.skipUnless(RSS_CHECKED, "the sanitizers reserve terabytes of address space")
    def test_claim_larger_than_the_memory_allowed_fails_cleanly(self):
        # The same claim with the address space limited to 3 GB: the 8 GB of accumulators
        # cannot even be reserved.
        stream = bad_files.npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000, 1000), }")
        limit = 3 << 30
        code, _, err = run("pool", "-", "--layout", "NCL", "--size", "1000", "-o",
                           self.path("out", "o.npy"), "-q", input_bytes=stream,
                           prefix=["prlimit", f"--as={limit}:{limit}"])
        self.assertEqual((code, err),
                         (1, "featpool: error: -:stdin: out of memory for the pooled output\n"))
        self.assert_nothing_in(self.out)

    def test_size_past_the_4_gib_cap_is_refused_before_allocation(self):
        x = self.make_npy("x.npy")
        line = (f"featpool: error: {x}:x: the pooled output would be 117600000000 bytes, over "
                "the 4 GiB limit\n")
        self.assert_stays_small(["pool", x, "-o", self.path("out", "o.npy"), "--size", "70000",
                                 "-q"], 1, line)
        self.assert_nothing_in(self.out)
        self.assert_inputs_untouched()


def main():
    global FEATPOOL, SAMPLES
    FEATPOOL, SAMPLES = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    result = unittest.main(argv=sys.argv[:1], exit=False, verbosity=1).result
    failed = len(result.failures) + len(result.errors)
    print(f"bad_inputs_test: {result.testsRun - failed - len(result.skipped)} passed, "
          f"{len(result.skipped)} skipped, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
