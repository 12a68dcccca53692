#!/usr/bin/python3
"""Batches at scale (docs/scaling.md): thousands of files, resuming after an
interrupt, --keep-going, the same results for every -j, the progress line
on a terminal and never elsewhere, and `featpool merge`.

Usage: batch_test.py FEATPOOL
"""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import h5py
import numpy as np

FEATPOOL = None


def run(*args, **kwargs):
    proc = subprocess.run([FEATPOOL, *map(str, args)], capture_output=True, text=True, **kwargs)
    return proc.returncode, proc.stdout, proc.stderr


def tree_bytes(root):
    """Every file under root (hidden ones included) by relative path, with its bytes."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def datasets(path):
    found = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: found.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
    return found


def open_fifo_writer(path, proc):
    """Opens a FIFO for writing once featpool opened it for reading; fails
    instead of hanging if featpool exited first."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            return os.fdopen(fd, "wb")
        except OSError:  # ENXIO: no reader yet
            if proc.poll() is not None:
                raise AssertionError(f"featpool exited ({proc.returncode}) before reading {path}")
            time.sleep(0.01)
    raise AssertionError(f"featpool never opened {path}")


def without_timings(report):
    for record in report["tensors"]:
        record.pop("elapsed_ms")
    return report


def global_average(x):
    return x.mean(axis=(2, 3), keepdims=True, dtype=np.float64).astype(np.float32)


class BatchTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def mixed_tree(self, root):
        """NPY files in nested folders, a multi-dataset HDF5 file, an NPZ file,
        and files that must never be inputs: hidden ones and featpool's own
        temporaries."""
        rng = np.random.default_rng(7)
        root = Path(root)
        for i in range(12):
            folder = root / f"run{i % 3}" / ("deep" if i % 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / f"part{i:02}.npy", rng.standard_normal((2, 3, 5 + i, 6), np.float32))
        with h5py.File(root / "run0" / "layers.h5", "w") as f:
            f["conv1"] = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
            f["block/conv2"] = rng.standard_normal((2, 8, 5, 5))
        np.savez(root / "run1" / "pair.npz", a=rng.standard_normal((1, 2, 4, 4), np.float32),
                 b=rng.standard_normal((1, 2, 6, 6), np.float32))
        np.save(root / ".hidden.npy", np.zeros((1, 1, 2, 2), np.float32))
        np.save(root / "run2" / ".part00.npy.featpool-tmp-Ab12Cd", np.zeros((1, 1, 2, 2), np.float32))
        return root


class ThousandsOfFiles(BatchTest):
    FILES = 10_000

    def test_ten_thousand_files_to_a_mirror_and_to_one_hdf5(self):
        rng = np.random.default_rng(1)
        dumps = self.dir / "dumps"
        arrays = {}
        for i in range(self.FILES):
            rel = f"shard{i // 1000}/f{i:05}.npy"
            (dumps / rel).parent.mkdir(parents=True, exist_ok=True)
            arrays[rel] = rng.standard_normal((1, 4, 2, 3), np.float32)
            np.save(dumps / rel, arrays[rel])

        code, _, err = run("pool", dumps, "-o", f"{self.dir}/pooled/", "--report", self.dir / "r.json")
        self.assertEqual((code, err), (0, ""))
        report = json.loads((self.dir / "r.json").read_text())
        self.assertEqual(report["totals"], {"ok": self.FILES, "skipped": 0, "failed": 0})
        self.assertEqual(len(report["tensors"]), self.FILES)
        pooled = sorted(p.relative_to(self.dir / "pooled") for p in (self.dir / "pooled").rglob("*.npy"))
        self.assertEqual([str(p) for p in pooled], sorted(arrays))
        for rel, x in arrays.items():
            np.testing.assert_array_equal(np.load(self.dir / "pooled" / rel), global_average(x))

        code, _, err = run("pool", dumps, "-o", self.dir / "all.h5", "-q", "--report", self.dir / "h.json")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads((self.dir / "h.json").read_text())["totals"]["ok"], self.FILES)
        stored = datasets(self.dir / "all.h5")
        self.assertEqual(sorted(stored), sorted(rel[: -len(".npy")] for rel in arrays))
        for rel, x in arrays.items():
            np.testing.assert_array_equal(stored[rel[: -len(".npy")]], global_average(x))


class Parallelism(BatchTest):
    def runs_agree(self, *extra, output):
        outputs, reports, codes, errors = [], [], [], []
        for jobs in (1, 4):
            folder = Path(tempfile.mkdtemp(prefix=f"j{jobs}-", dir=self.dir))
            code, _, err = run("pool", *extra, "-o", f"{folder}/{output}", "-j", jobs,
                               "--report", self.dir / f"j{jobs}.json")
            codes.append(code)
            errors.append(err)
            outputs.append(tree_bytes(folder))  # relative paths start with `output`
            report = json.loads((self.dir / f"j{jobs}.json").read_text())
            # Reports name their outputs; the folders differ by design.
            text = json.dumps(without_timings(report)).replace(str(folder), "OUT")
            reports.append(text)
        self.assertEqual(codes[0], codes[1])
        self.assertEqual(errors[0], errors[1])
        self.assertEqual(outputs[0], outputs[1])
        self.assertEqual(reports[0], reports[1])
        return codes[0], outputs[0]

    def test_j1_and_j4_write_the_same_bytes_and_reports(self):
        tree = self.mixed_tree(self.dir / "dumps")
        for output in ("pooled/", "all.h5", "all.npz"):
            with self.subTest(output=output):
                code, files = self.runs_agree(tree, "--size", "3", output=output)
                self.assertEqual(code, 0)
                self.assertTrue(files)
                self.assertFalse([f for f in files if "hidden" in f or "featpool-tmp" in f])

    def test_stopping_at_the_first_failure_is_the_same_for_every_j(self):
        tree = self.mixed_tree(self.dir / "dumps")
        (tree / "run1" / "part05.npy").write_bytes(b"\x93NUMPY\x01\x00" + b"garbage")
        for output in ("pooled/", "all.h5"):
            with self.subTest(output=output):
                code, files = self.runs_agree(tree, output=output)
                self.assertEqual(code, 1)

    def test_a_failure_while_reading_stops_at_the_same_tensor_for_every_j(self):
        tree = self.mixed_tree(self.dir / "dumps")
        # Planning reads only the members' headers: a CRC error in one
        # member's data is found while pooling.
        npz = tree / "run1" / "pair.npz"
        data = bytearray(npz.read_bytes())
        with np.load(npz) as z:
            at = bytes(data).find(z["a"].tobytes())
        data[at + 5] ^= 0xFF
        npz.write_bytes(bytes(data))
        code, files = self.runs_agree(tree, output="pooled/")
        self.assertEqual(code, 1)
        self.assertIn("pooled/run0/part00.npy", files.keys())
        self.assertNotIn("pooled/run1/pair.h5", files.keys())
        self.assertNotIn("pooled/run2/part02.npy", files.keys())


class KeepGoing(BatchTest):
    def test_corrupt_files_are_reported_and_the_rest_written(self):
        tree = self.mixed_tree(self.dir / "dumps")
        bad = ["run0/part00.npy", "run2/deep/part05.npy", "run1/pair.npz"]
        (tree / bad[0]).write_bytes(b"not an npy file at all")
        data = (tree / bad[1]).read_bytes()
        (tree / bad[1]).write_bytes(data[: len(data) - 17])
        (tree / bad[2]).write_bytes((tree / bad[2]).read_bytes()[:100])
        code, _, err = run("pool", tree, "-o", f"{self.dir}/pooled/", "--keep-going",
                           "--report", self.dir / "r.json")
        self.assertEqual(code, 1)
        report = json.loads((self.dir / "r.json").read_text())
        failed = {r["file"] for r in report["tensors"] if r["status"] == "failed"}
        self.assertEqual(failed, {str(tree / b) for b in bad})
        for b in bad:
            self.assertIn(b, err)
        self.assertEqual(len(err.splitlines()), len(bad))
        ok = [r for r in report["tensors"] if r["status"] == "ok"]
        self.assertEqual(report["totals"]["ok"], len(ok))
        self.assertEqual(len(ok), 12 - 2 + 2)  # 10 good NPY files, 2 datasets of layers.h5
        for r in ok:
            destination = r["destination"].split(":")[0]
            self.assertTrue(Path(destination).is_file(), destination)
        self.assertFalse(list((self.dir / "pooled").rglob(".*featpool-tmp*")))


class InterruptAndResume(BatchTest):
    """A FIFO among the inputs holds the batch part-way on demand: the files
    before it are done and published, the FIFO's tensor is in flight."""

    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(3)
        self.first = self.dir / "first"
        self.second = self.dir / "second"
        for folder, prefix in ((self.first, "a"), (self.second, "b")):
            folder.mkdir()
            for i in range(40):
                np.save(folder / f"{prefix}{i:02}.npy", rng.standard_normal((2, 4, 6, 6), np.float32))
        self.fifo = self.dir / "slow.npy"
        np.save(self.dir / "slow-source.npy", rng.standard_normal((4, 64, 32, 32), np.float32))
        self.slow_bytes = (self.dir / "slow-source.npy").read_bytes()

    def start(self, out, *extra):
        if self.fifo.exists():
            self.fifo.unlink()
        os.mkfifo(self.fifo)
        proc = subprocess.Popen([FEATPOOL, "pool", self.first, self.fifo, self.second, "-o", out,
                                 "--report", self.dir / "report.json", "-j", "2", *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return proc, open_fifo_writer(self.fifo, proc)

    def feed_all(self, proc, writer):
        writer.write(self.slow_bytes)
        writer.close()
        _, err = proc.communicate(timeout=120)
        return proc.returncode, err

    def wait_for_outputs(self, out, count):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(list(Path(out).glob("a*.npy"))) >= count:
                return
            time.sleep(0.02)
        self.fail("the files before the FIFO were not written")

    def interrupt(self, out, sig):
        proc, writer = self.start(out)
        writer.write(self.slow_bytes[: len(self.slow_bytes) // 2])
        writer.flush()
        self.wait_for_outputs(out, 40)
        time.sleep(0.3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        writer.close()
        return proc.returncode, err

    def test_sigint_then_skip_existing_resumes_to_the_same_bytes(self):
        reference = f"{self.dir}/reference/"
        code, err = self.feed_all(*self.start(reference))
        self.assertEqual((code, err), (0, ""))

        out = self.dir / "out"
        out.mkdir()
        code, _ = self.interrupt(out, signal.SIGINT)
        self.assertEqual(code, 130)
        self.assertFalse([p for p in out.rglob("*") if "featpool-tmp" in p.name])
        report = json.loads((self.dir / "report.json").read_text())
        statuses = {Path(r["file"]).name: (r["status"], r["message"]) for r in report["tensors"]}
        self.assertEqual(statuses["a00.npy"], ("ok", ""))
        self.assertEqual(statuses["slow.npy"], ("skipped", "not written: interrupted"))
        self.assertEqual(statuses["b39.npy"], ("skipped", "not written: interrupted"))
        self.assertFalse((out / "slow.npy").exists())

        code, err = self.feed_all(*self.start(out, "--skip-existing"))
        self.assertEqual((code, err), (0, ""))
        report = json.loads((self.dir / "report.json").read_text())
        skipped = [r for r in report["tensors"] if r["status"] == "skipped"]
        self.assertEqual(len(skipped), 40)
        self.assertTrue(all(r["message"] == "output exists" for r in skipped))
        self.assertEqual(tree_bytes(out), tree_bytes(reference))

    def test_sigterm_exits_143_and_keeps_no_temporary_files(self):
        out = self.dir / "out"
        out.mkdir()
        code, _ = self.interrupt(out, signal.SIGTERM)
        self.assertEqual(code, 143)
        self.assertFalse([p for p in out.rglob("*") if "featpool-tmp" in p.name])
        self.assertTrue((self.dir / "report.json").exists())

    def test_an_interrupted_collect_keeps_nothing(self):
        code, _ = self.interrupt_collect()
        self.assertEqual(code, 130)
        self.assertEqual(sorted(p.name for p in self.dir.iterdir() if "featpool-tmp" in p.name), [])
        self.assertFalse((self.dir / "all.h5").exists())

    def interrupt_collect(self):
        proc, writer = self.start(self.dir / "all.h5")
        writer.write(self.slow_bytes[: len(self.slow_bytes) // 2])
        writer.flush()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        writer.close()
        return proc.returncode, err


class Progress(BatchTest):
    """The progress line, under a real pseudo-terminal. A FIFO fed after a
    pause makes the work last longer than the line's one-second delay."""

    def run_slow(self, stderr_is_terminal, *extra):
        np.save(self.dir / "src.npy", np.ones((2, 8, 16, 16), np.float32))
        data = (self.dir / "src.npy").read_bytes()
        fifo = self.dir / "in.npy"
        os.mkfifo(fifo)

        def feed():
            with open(fifo, "wb") as w:
                w.write(data[:200])
                w.flush()
                time.sleep(2.0)
                w.write(data[200:])

        feeder = threading.Thread(target=feed)
        feeder.start()
        command = [FEATPOOL, "pool", fifo, "-o", self.dir / "out.npy", *extra]
        if not stderr_is_terminal:
            proc = subprocess.run(command, capture_output=True, timeout=60)
            feeder.join()
            return proc.returncode, proc.stderr
        primary, secondary = pty.openpty()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=secondary)
        os.close(secondary)
        seen = b""
        while True:
            ready, _, _ = select.select([primary], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closes when featpool exits
                break
            if not chunk:
                break
            seen += chunk
        proc.wait(timeout=60)
        os.close(primary)
        feeder.join()
        return proc.returncode, seen

    def test_a_terminal_shows_one_updating_line_then_erases_it(self):
        code, seen = self.run_slow(True)
        self.assertEqual(code, 0)
        self.assertIn(b"featpool: 0/1 tensors", seen)
        self.assertIn(b"\r\x1b[K", seen)
        self.assertTrue(seen.endswith(b"\r\x1b[K"), seen[-80:])
        self.assertNotIn(b"\n", seen)

    def test_quiet_draws_nothing_on_a_terminal(self):
        code, seen = self.run_slow(True, "-q")
        self.assertEqual((code, seen), (0, b""))

    def test_no_progress_bytes_when_stderr_is_not_a_terminal(self):
        code, err = self.run_slow(False)
        self.assertEqual((code, err), (0, b""))


class Merge(BatchTest):
    def test_a_merged_mirror_equals_pooling_into_one_file(self):
        tree = self.mixed_tree(self.dir / "dumps")
        self.assertEqual(run("pool", tree, "-o", f"{self.dir}/pooled/", "--size", "2", "-q")[0], 0)
        self.assertEqual(run("pool", tree, "-o", self.dir / "direct.h5", "--size", "2", "-q")[0], 0)
        code, out, err = run("merge", self.dir / "pooled", "-o", self.dir / "merged.h5")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, f"merged 16 tensors from 14 files into {self.dir / 'merged.h5'}\n")
        merged, direct = datasets(self.dir / "merged.h5"), datasets(self.dir / "direct.h5")
        self.assertEqual(sorted(merged), sorted(direct))
        for name, value in direct.items():
            self.assertEqual(merged[name].dtype, value.dtype)
            np.testing.assert_array_equal(merged[name], value)
        # Pooled HDF5 datasets keep their provenance through the merge.
        with h5py.File(self.dir / "merged.h5") as f, h5py.File(self.dir / "direct.h5") as g:
            merged_attrs, direct_attrs = f["run0/layers/conv1"].attrs, g["run0/layers/conv1"].attrs
            self.assertEqual(sorted(merged_attrs), sorted(direct_attrs))
            for key, value in direct_attrs.items():
                np.testing.assert_array_equal(merged_attrs[key], value)

    def test_merging_shard_outputs_to_npz(self):
        tree = self.mixed_tree(self.dir / "dumps")
        for k in (1, 2):
            code, _, err = run("pool", tree, "-o", f"{self.dir}/pooled/", "--shard", f"{k}/2", "-q")
            self.assertEqual((code, err), (0, ""))
        code, _, err = run("merge", self.dir / "pooled", "-o", self.dir / "all.npz", "-q")
        self.assertEqual((code, err), (0, ""))
        with np.load(self.dir / "all.npz") as z:
            self.assertEqual(len(z.files), 16)
            self.assertIn("run0/part00", z.files)

    def test_problems_are_all_reported_and_nothing_is_written(self):
        a, b = self.dir / "a", self.dir / "b"
        for folder in (a, b):
            folder.mkdir()
            np.save(folder / "x.npy", np.zeros((1, 2, 1, 1), np.float32))
        np.save(a / "y.npy", np.zeros((1, 2, 1, 1), np.float32))
        np.save(b / "y.npy", np.zeros((1, 2, 1, 1), np.float32))
        code, out, err = run("merge", a, b, "-o", self.dir / "m.h5")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(len(err.splitlines()), 2, err)
        self.assertIn("would both be named /x", err)
        self.assertFalse((self.dir / "m.h5").exists())

        (self.dir / "m.h5").write_bytes(b"old")
        code, _, err = run("merge", a, "-o", self.dir / "m.h5")
        self.assertEqual(code, 1)
        self.assertIn("exists; pass --force", err)
        self.assertEqual(run("merge", a, "-o", self.dir / "m.h5", "--force", "-q")[0], 0)
        self.assertEqual(sorted(datasets(self.dir / "m.h5")), ["x", "y"])

        code, _, err = run("merge", a, "-o", self.dir / "m.npy")
        self.assertEqual(code, 2)
        self.assertIn("merge writes one file", err)


def main():
    global FEATPOOL
    FEATPOOL = os.path.abspath(sys.argv[1])
    result = unittest.main(argv=sys.argv[:1], exit=False, verbosity=1).result
    failed = len(result.failures) + len(result.errors)
    print(f"batch_test: {result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
