#!/usr/bin/python3
"""HDF5's fast paths: contiguous datasets read with pread, and chunks that are slabs of the
data decoded outside the library (raw chunk reads, libdeflate, unshuffle, Fletcher32).

Every dataset is written twice with h5py: in the layout under test and as a reference that
only the library's own path reads (LZF chunks, a filter featpool leaves to HDF5). featpool's
pooled outputs (--size 1, --size 3, --op max) must be bit-identical for the two, and agree
with numpy/torch on the array. Also: chunks never written (fill values), chunks stored with
some filters skipped (filter_mask), corrupt and mis-checksummed chunks (exit 1, one line
naming the file, the dataset and the chunk), chunk shapes left to the library, the newer
chunk indexes (libver="latest"), a user block, and peak memory on a ~100 MB gzip dataset.

Usage: hdf5_fast_paths_test.py FEATPOOL
"""

import os
import subprocess
import sys
import tempfile
import unittest
import zlib
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

FEATPOOL = None
POOLINGS = [("1", "avg"), ("3", "avg"), ("1", "max")]
PEAK_RSS_LIMIT_KIB = 64 * 1024
# In a sanitizer build (FEATPOOL_SANITIZED, set by tests/CMakeLists.txt) shadow memory
# and the allocator's quarantine dwarf featpool's own: peak RSS is then not checked.
RSS_CHECKED = not os.environ.get("FEATPOOL_SANITIZED")


def run(*args):
    proc = subprocess.run([FEATPOOL, *map(str, args)], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def fletcher32(data):
    """HDF5's H5_checksum_fletcher32 of an even number of bytes, as the filter appends it
    (little-endian)."""
    assert len(data) % 2 == 0
    words = np.frombuffer(data, dtype=">u2").astype(np.int64)
    sum1 = sum2 = 0
    for start in range(0, len(words), 360):  # reduced every 360 words, as HDF5 does
        sums = np.cumsum(words[start:start + 360]) + sum1
        sum1, sum2 = int(sums[-1]), int(sum2 + sums.sum())
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
    sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    return ((sum2 << 16) | sum1).to_bytes(4, "little")


def shuffled(raw, size):
    return np.frombuffer(raw, np.uint8).reshape(-1, size).T.tobytes()


def reference(x, size, op):
    """torch's adaptive pooling over the last two axes, in float64."""
    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    if op == "avg":
        return F.adaptive_avg_pool2d(t, int(size)).numpy()
    return F.adaptive_max_pool2d(t, int(size)).numpy()


def tolerance(dtype):
    return {np.float16: 2e-3, np.float64: 1e-12}.get(np.dtype(dtype).type, 2e-6)


class Case:
    """One array, in the layout under test and as the library-path reference."""

    def __init__(self, name, x, expected=None, **layout):
        self.name, self.x, self.layout = name, x, layout
        self.expected = x if expected is None else expected

    def write(self, f, fill=None):
        group = f.create_group(self.name)
        group.create_dataset("ref", data=self.expected, chunks=(1, *self.expected.shape[1:]),
                             compression="lzf")
        if fill is not None:
            fill(group)
        else:
            group.create_dataset("fast", data=self.x, **self.layout)


def random_array(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 3).astype(dtype)
    info = np.iinfo(dtype)
    low, high = max(info.min, -30000), min(info.max, 30000)
    return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)


class FastPathTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def pool_file(self, path):
        """featpool's outputs for every dataset of a file, by pooling."""
        outputs = {}
        for size, op in POOLINGS:
            out = self.dir / f"{path.stem}_{size}_{op}.npz"
            code, _, err = run("pool", path, "-o", out, "--size", size, "--op", op, "--force", "-q")
            self.assertEqual((code, err), (0, ""), f"pooling {path} --size {size} --op {op}")
            with np.load(out) as z:
                outputs[size, op] = dict(z.items())
        return outputs

    def check_cases(self, path, cases):
        outputs = self.pool_file(path)
        for case in cases:
            for (size, op), pooled in outputs.items():
                with self.subTest(case=case.name, size=size, op=op):
                    fast, ref = pooled[f"{case.name}/fast"], pooled[f"{case.name}/ref"]
                    self.assertEqual((fast.dtype, fast.shape), (ref.dtype, ref.shape))
                    # The same elements in the same order: the same bits.
                    self.assertTrue(np.array_equal(fast, ref, equal_nan=True),
                                    f"differs from the library's path by "
                                    f"{np.max(np.abs(fast.astype(float) - ref.astype(float)))}")
                    want = reference(case.expected, size, op)
                    rtol = tolerance(fast.dtype)
                    self.assertTrue(np.allclose(fast.astype(np.float64), want, rtol=rtol,
                                                atol=rtol * (1 + np.abs(want).max())))


class Layouts(FastPathTest):
    def test_contiguous_and_chunked_layouts(self):
        rng = np.random.default_rng(11)
        shape = (5, 6, 10, 12)
        slab = (1, 6, 10, 12)
        gzip = dict(compression="gzip", compression_opts=4)
        cases = []
        for dtype in ["float32", "float64", "int16", "uint8", ">f4", ">i8", "float16", "<u4"]:
            cases.append(Case(f"contiguous_{dtype.replace('>', 'be_')}",
                              random_array(rng, shape, dtype)))
        x = random_array(rng, shape, "float32")
        cases += [
            Case("chunked_unfiltered", x, chunks=slab),
            Case("gzip", x, chunks=slab, **gzip),
            Case("gzip_shuffle", x, chunks=slab, shuffle=True, **gzip),
            Case("shuffle", x, chunks=slab, shuffle=True),
            Case("fletcher32", x, chunks=slab, fletcher32=True),
            Case("gzip_shuffle_fletcher32", x, chunks=slab, shuffle=True, fletcher32=True, **gzip),
            Case("edge_chunks_axis0", random_array(rng, (7, 6, 10, 12), "float32"),
                 chunks=(3, 6, 10, 12), shuffle=True, **gzip),
            Case("edge_chunks_axis1", random_array(rng, (3, 7, 10, 12), "float32"),
                 chunks=(1, 3, 10, 12), shuffle=True, fletcher32=True, **gzip),
            Case("chunk_over_extent", random_array(rng, (3, 6, 10, 12), "float32"),
                 chunks=(8, 6, 10, 12), maxshape=(None, 6, 10, 12), **gzip),
            Case("row_chunks", random_array(rng, (3, 4, 5, 6), "float32"), chunks=(1, 1, 1, 6),
                 shuffle=True, **gzip),
            Case("element_chunks", random_array(rng, (2, 3, 4, 5), "float64"),
                 chunks=(1, 1, 1, 1), **gzip),
            Case("not_slabs", x, chunks=(2, 3, 5, 5), shuffle=True, **gzip),
            Case("not_slabs_inner", x, chunks=(1, 6, 5, 12), **gzip),
            Case("lzf_itself", x, chunks=slab, compression="lzf"),
            Case("big_endian_gzip", random_array(rng, shape, ">f4"), chunks=slab, shuffle=True,
                 **gzip),
            Case("big_endian_int16_gzip", random_array(rng, shape, ">i2"), chunks=slab,
                 shuffle=True, **gzip),
            Case("big_endian_float64_fletcher32", random_array(rng, shape, ">f8"), chunks=slab,
                 fletcher32=True),
            Case("uint8_gzip_shuffle", random_array(rng, shape, "uint8"), chunks=slab,
                 shuffle=True, **gzip),
            Case("int64_gzip_shuffle", random_array(rng, shape, "int64"), chunks=slab,
                 shuffle=True, **gzip),
            Case("float16_gzip_shuffle", random_array(rng, shape, "float16"), chunks=slab,
                 shuffle=True, **gzip),
            # Several blocks, several chunks decoded at once, a partial last chunk.
            Case("blocks_of_big_chunks", random_array(rng, (9, 64, 32, 64), "float32"),
                 chunks=(2, 64, 32, 64), shuffle=True, **gzip),
            Case("blocks_of_small_chunks", random_array(rng, (64, 32, 32, 16), "float32"),
                 chunks=(1, 32, 32, 16), shuffle=True, fletcher32=True, **gzip),
            Case("blocks_contiguous", random_array(rng, (12, 64, 32, 64), "float32")),
            Case("blocks_contiguous_big_endian", random_array(rng, (6, 64, 32, 64), ">f8")),
        ]
        path = self.dir / "layouts.h5"
        with h5py.File(path, "w") as f:
            for case in cases:
                case.write(f)
            # The test's premise: h5py reads back what was written.
            for case in cases:
                np.testing.assert_array_equal(f[case.name]["fast"][()], case.x)
        self.check_cases(path, cases)

    def test_newer_chunk_indexes(self):
        rng = np.random.default_rng(12)
        shape = (5, 6, 10, 12)
        x = random_array(rng, shape, "float32")
        gzip = dict(compression="gzip", shuffle=True)
        cases = [
            Case("single_chunk", x, chunks=shape, **gzip),
            Case("fixed_array", x, chunks=(1, 6, 10, 12), **gzip),
            Case("extensible_array", x, chunks=(2, 6, 10, 12), maxshape=(None, 6, 10, 12), **gzip),
            Case("btree2", x, chunks=(1, 6, 10, 12), maxshape=(None, None, 10, 12), **gzip),
            Case("implicit", x, chunks=(1, 6, 10, 12)),
        ]
        path = self.dir / "latest.h5"
        with h5py.File(path, "w", libver="latest") as f:
            for case in cases:
                case.write(f)
        self.check_cases(path, cases)

    def test_user_block(self):
        rng = np.random.default_rng(13)
        cases = [Case("contiguous", random_array(rng, (4, 6, 10, 12), ">f4")),
                 Case("gzip", random_array(rng, (4, 6, 10, 12), "float32"),
                      chunks=(1, 6, 10, 12), compression="gzip")]
        path = self.dir / "userblock.h5"
        with h5py.File(path, "w", userblock_size=1024) as f:
            for case in cases:
                case.write(f)
        with open(path, "r+b") as f:
            f.write(b"not HDF5 data " * 16)
        self.check_cases(path, cases)


class StoredChunks(FastPathTest):
    """Chunks written piecemeal: some never, some with filters skipped."""

    def test_unwritten_chunks_and_filter_masks(self):
        rng = np.random.default_rng(21)
        shape = (6, 6, 10, 12)
        slab = (1, 6, 10, 12)
        x = random_array(rng, shape, "float32")
        cases = []

        def some_written(fill, dtype, chunks, written, **layout):
            data = random_array(rng, shape, dtype)
            expected = np.full(shape, fill or 0, dtype)
            expected[written] = data[written]

            def write(group):
                d = group.create_dataset("fast", shape, dtype, chunks=chunks, fillvalue=fill,
                                         **layout)
                d[written] = data[written]
            return expected, write

        fills = {}
        for name, fill, dtype, chunks, written, layout in [
            ("unwritten_fill_value", 7.5, "float32", slab, np.s_[0:1], dict(compression="gzip")),
            ("unwritten_default_fill", None, "int16", slab, np.s_[3:5],
             dict(compression="gzip", shuffle=True)),
            ("unwritten_big_endian_fill", -2, ">i4", slab, np.s_[2:3], dict(shuffle=True)),
            ("unwritten_edge_chunks", 3.25, "float64", (4, 6, 10, 12), np.s_[0:4],
             dict(compression="gzip", fletcher32=True)),
            ("unwritten_unfiltered", 1.5, "float32", slab, np.s_[1:2], {}),
            ("never_written_chunked", 4.0, "float32", slab, np.s_[0:0], dict(compression="gzip")),
            ("never_written_contiguous", 9, "int16", None, np.s_[0:0], {}),
        ]:
            expected, write = some_written(fill, dtype, chunks, written, **layout)
            cases.append(Case(name, expected))
            fills[name] = write

        def masked(pipeline, chunks_written):
            def write(group):
                d = group.create_dataset("fast", data=x, chunks=slab, **pipeline)
                for index, (mask, encode) in chunks_written.items():
                    d.id.write_direct_chunk((index, 0, 0, 0), encode(x[index].tobytes()),
                                            filter_mask=mask)
            return write

        def shuffle(raw):
            return shuffled(raw, x.dtype.itemsize)

        # Pipelines: [deflate]; [shuffle, deflate]; [shuffle, deflate, fletcher32].
        gzip = dict(compression="gzip")
        both = dict(compression="gzip", shuffle=True)
        all3 = dict(compression="gzip", shuffle=True, fletcher32=True)
        masks = {
            "mask_raw_in_gzip": masked(gzip, {1: (1, lambda raw: raw)}),
            "mask_no_shuffle": masked(both, {2: (1, zlib.compress)}),
            "mask_no_deflate": masked(both, {3: (2, shuffle)}),
            "mask_raw_in_shuffle_gzip": masked(both, {0: (3, lambda raw: raw),
                                                      5: (3, lambda raw: raw)}),
            "mask_checksum_only": masked(all3, {4: (3, lambda raw: raw + fletcher32(raw))}),
            "mask_no_checksum": masked(all3, {1: (4, lambda raw: zlib.compress(shuffle(raw)))}),
            "mask_all_skipped": masked(all3, {2: (7, lambda raw: raw)}),
        }
        for name in masks:
            cases.append(Case(name, x))
        fills.update(masks)

        path = self.dir / "stored.h5"
        with h5py.File(path, "w") as f:
            for case in cases:
                case.write(f, fill=fills[case.name])
            # The test's premise: HDF5 itself reads these chunks as intended.
            for case in cases:
                np.testing.assert_array_equal(f[case.name]["fast"][()], case.expected,
                                              err_msg=case.name)
        self.check_cases(path, cases)


class BadChunks(FastPathTest):
    """A bad chunk fails the tensor: exit 1, one line naming the file, dataset and chunk."""

    def write_and_spoil(self, layout, spoil):
        rng = np.random.default_rng(31)
        path = self.dir / "bad.h5"
        with h5py.File(path, "w") as f:
            d = f.create_dataset("x", data=random_array(rng, (4, 3, 5, 5), "float32"),
                                 chunks=(1, 3, 5, 5), **layout)
            mask, raw = d.id.read_direct_chunk((2, 0, 0, 0))
            d.id.write_direct_chunk((2, 0, 0, 0), spoil(raw), filter_mask=mask)
        return path

    def check_failure(self, path, reason):
        out = self.dir / "out.npy"
        code, stdout, stderr = run("pool", f"{path}:/x", "-o", out, "-q")
        self.assertEqual(code, 1, stderr)
        self.assertEqual(stdout, "")
        lines = stderr.splitlines()
        self.assertEqual(len(lines), 1, stderr)
        self.assertIn(f"{path}:/x", lines[0])
        self.assertIn("chunk (2, 0, 0, 0)", lines[0])
        self.assertIn(reason, lines[0])
        self.assertFalse(out.exists())

    def test_garbage_instead_of_deflate_data(self):
        path = self.write_and_spoil(dict(compression="gzip", shuffle=True),
                                    lambda raw: b"certainly not zlib data" * 8)
        self.check_failure(path, "corrupt chunk")

    def test_deflate_data_of_the_wrong_size(self):
        path = self.write_and_spoil(dict(compression="gzip"),
                                    lambda raw: zlib.compress(zlib.decompress(raw)[:-8]))
        self.check_failure(path, "corrupt chunk")

    def test_checksum_mismatch(self):
        def flip(raw):
            spoiled = bytearray(raw)
            spoiled[len(raw) // 3] ^= 0x10
            return bytes(spoiled)
        path = self.write_and_spoil(dict(compression="gzip", fletcher32=True), flip)
        self.check_failure(path, "checksum mismatch")


class PeakMemory(FastPathTest):
    def test_100_mb_gzip_shuffle_dataset(self):
        shape = (48, 512, 32, 32)  # 96 MiB of float32
        rng = np.random.default_rng(41)
        path = self.dir / "big.h5"
        means = np.empty(shape[:2])
        with h5py.File(path, "w") as f:
            d = f.create_dataset("x", shape, "float32", chunks=(1, *shape[1:]), compression="gzip",
                                 compression_opts=1, shuffle=True)
            for i in range(shape[0]):
                sample = rng.standard_normal(shape[1:], dtype=np.float32)
                d[i] = sample
                means[i] = sample.mean(axis=(1, 2), dtype=np.float64)
        out = self.dir / "big.npy"
        # Measured by a fresh interpreter: a child forked from this process (which holds
        # torch) would count this process's pages in its peak.
        measure = ("import os, sys; pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ); "
                   "_, status, usage = os.wait4(pid, 0); "
                   "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")
        # Two threads, as on the 2-core machine the limit is set for: a block holds two
        # chunks per thread, and each thread decodes in buffers of its own.
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", measure, FEATPOOL, "pool",
                               f"{path}:/x", "-o", out, "-q", "-j", "2"],
                              capture_output=True, text=True)
        self.assertEqual((proc.returncode, proc.stderr), (0, ""))
        code, peak_kib = map(int, proc.stdout.split())  # ru_maxrss is in KiB on Linux
        self.assertEqual(code, 0)
        if RSS_CHECKED:
            self.assertLessEqual(peak_kib, PEAK_RSS_LIMIT_KIB, f"peak RSS {peak_kib} KiB")
        pooled = np.load(out)
        self.assertEqual(pooled.shape, (48, 512, 1, 1))
        np.testing.assert_allclose(pooled[:, :, 0, 0], means, rtol=1e-5, atol=1e-6)


def main():
    global FEATPOOL
    FEATPOOL = os.path.abspath(sys.argv[1])
    result = unittest.main(argv=sys.argv[:1], exit=False, verbosity=1).result
    failed = len(result.failures) + len(result.errors)
    print(f"hdf5_fast_paths_test: {result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
