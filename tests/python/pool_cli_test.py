"""CLI tests of `featpool pool`: every SPEC error, the flags, and what is left on disk.

Usage: pool_cli_test.py FEATPOOL SAMPLE_DATA
Each test checks the exit code and the output together.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from pathlib import Path

FEATPOOL = ""
SAMPLES = ""


def run(*args, cwd=None, input_bytes=None):
    done = subprocess.run([FEATPOOL, *args], capture_output=True, cwd=cwd, input=input_bytes,
                          timeout=120)
    return done.returncode, done.stdout, done.stderr.decode()


def sample(name):
    return os.path.join(SAMPLES, name)


class PoolTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="featpool-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def make_npy(self, name, shape=(2, 3, 4, 4), dtype=np.float32):
        a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape).astype(dtype)
        np.save(self.path(name), a)
        return self.path(name)


class Usage(PoolTest):
    def assert_usage(self, args, message):
        code, out, err = run("pool", *args)
        self.assertEqual(code, 2, err)
        self.assertEqual(out, b"")
        self.assertEqual(err, f"featpool: error: {message}; see 'featpool pool --help'\n")

    def test_bad_size_and_layout(self):
        x = sample("tokens_ncl.npy")
        out = self.path("o.npy")
        self.assert_usage([x, "-o", out, "--size", "0x7"], "--size: '0x7': sizes must be at least 1")
        self.assert_usage([x, "-o", out, "--size", "7y"],
                          "--size: '7y': expected sizes like 7, 7x7 or 3x5, with _ to keep an axis")
        self.assert_usage([x, "-o", out, "--layout", "NCC"],
                          "--layout: 'NCC': the letter C is repeated")
        self.assert_usage([x, "-o", out, "--layout", "N1L"],
                          "--layout: 'N1L': a layout is letters only")
        self.assert_usage([x, "-o", out, "--op", "median"],
                          "--op: 'median': expected avg, max, sum, min, avgmax, catavgmax, gem or "
                          "lse")
        self.assert_usage([x, "-o", out, "--p", "2"], "--p and --eps are the generalized "
                          "mean's: they go with --op gem, not --op avg")
        self.assert_usage([x, "-o", out, "--op", "max", "--eps", "0.1"], "--p and --eps are the "
                          "generalized mean's: they go with --op gem, not --op max")
        self.assert_usage([x, "-o", out, "--op", "gem", "--p", "0"],
                          "--p: '0': expected a positive number")
        self.assert_usage([x, "-o", out, "--op", "gem", "--eps", "1e-6x"],
                          "--eps: '1e-6x': expected a positive number")
        self.assert_usage([x, "-o", out, "--size", "1,,2"],
                          "--size: '1,,2': expected sizes like 7, 7x7 or 1,2,4 (a pyramid), with "
                          "no empty level")
        self.assert_usage([x, "-o", out, "--size", "1,0"], "--size: '0': sizes must be at least 1")
        self.assert_usage([x, "-o", out, "--r", "2"], "--r is the log-sum-exp's: it goes with "
                          "--op lse, not --op avg")
        self.assert_usage([x, "-o", out, "--op", "lse", "--r", "-1"],
                          "--r: '-1': expected a positive number")
        self.assert_usage([x, "-o", out, "--normalize", "l1"],
                          "--normalize: 'l1': expected l2")

    def test_incompatible_flags_and_unknown_extension(self):
        x = sample("tokens_ncl.npy")
        self.assert_usage([x, "-o", self.path("o.npy"), "--force", "--skip-existing"],
                          "--force and --skip-existing cannot go together")
        self.assert_usage([x, "-o", self.path("o.txt")],
                          f"-o: '{self.path('o.txt')}': unknown output extension; use .npy, "
                          ".npz, .h5, .hdf5, .safetensors, .csv, .tsv, a directory or -")

    def test_indices_need_max_one_size_and_an_output_of_named_tensors(self):
        x = sample("tokens_ncl.npy")
        h5 = self.path("o.h5")
        self.assert_usage([x, "-o", h5, "--indices"], "--indices are the argmax of max's windows: "
                          "they go with --op max, not --op avg")
        self.assert_usage([x, "-o", h5, "--indices", "--op", "avgmax"], "--indices are the argmax "
                          "of max's windows: they go with --op max, not --op avgmax")
        self.assert_usage([x, "-o", h5, "--indices", "--op", "max", "--size", "1,2"],
                          "--indices go with one --size, not a spatial pyramid (1,2)")
        instead = "write to an .h5 or .npz file or to a directory"
        npy = self.path("o.npy")
        self.assert_usage([x, "-o", npy, "--indices", "--op", "max"], "--indices write a second "
                          f"tensor, and {npy} is an NPY file, which takes one; {instead}")
        self.assert_usage([x, "-o", "-", "--indices", "--op", "max"], "--indices write a second "
                          f"tensor, and -o - carries one NPY stream; {instead}")
        for table in ("o.csv", "o.tsv"):
            self.assert_usage([x, "-o", self.path(table), "--indices", "--op", "max", "--flatten"],
                              f"--indices write a second tensor, and {self.path(table)} holds "
                              f"rows of values; {instead}")
        self.assert_usage([x, "-o", self.path("out/"), "--indices", "--op", "max", "--format",
                           "npy"], "--indices write a second tensor beside each, and --format npy "
                          "takes one per file; use --format npz or h5, or leave it out")
        self.assertEqual(os.listdir(self.dir), [])

    def test_missing_output_flag(self):
        code, _, err = run("pool", sample("tokens_ncl.npy"))
        self.assertEqual(code, 2)
        self.assertIn("--output is required", err)


class Errors(PoolTest):
    def test_existing_output_needs_force(self):
        out = self.path("o.npy")
        Path(out).write_bytes(b"keep me")
        code, _, err = run("pool", sample("tokens_ncl.npy"), "-o", out, "-q")
        self.assertEqual(code, 1)
        self.assertEqual(err, f"featpool: error: {sample('tokens_ncl.npy')}:tokens_ncl: output "
                              f"{out} exists; pass --force to overwrite it\n")
        self.assertEqual(Path(out).read_bytes(), b"keep me")
        code, _, err = run("pool", sample("tokens_ncl.npy"), "-o", out, "-q", "--force")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(np.load(out).shape, (2, 64, 1))

    def test_skip_existing(self):
        out = self.path("o.npy")
        Path(out).write_bytes(b"keep me")
        code, stdout, _ = run("pool", sample("tokens_ncl.npy"), "-o", out, "--skip-existing",
                              "--report", "-", "--report-format", "json")
        self.assertEqual(code, 0)
        record = json.loads(stdout)["tensors"][0]
        self.assertEqual((record["status"], record["message"]), ("skipped", "output exists"))
        self.assertEqual(Path(out).read_bytes(), b"keep me")

    def test_output_is_an_input_by_symlink_or_hard_link(self):
        x = self.make_npy("x.npy")
        os.symlink(x, self.path("link.npy"))
        os.link(x, self.path("hard.npy"))
        before = Path(x).read_bytes()
        for target in ("x.npy", "link.npy", "hard.npy"):
            code, _, err = run("pool", x, "-o", self.path(target), "--force", "-q")
            self.assertEqual(code, 1)
            self.assertEqual(err, f"featpool: error: {x}:x: output {self.path(target)} is one of "
                                  "the inputs\n")
        self.assertEqual(Path(x).read_bytes(), before)

    def test_collisions_are_all_listed_before_any_work(self):
        os.makedirs(self.path("a"))
        os.makedirs(self.path("b"))
        self.make_npy("a/x.npy")
        self.make_npy("a/y.npy")
        shutil.copy(self.path("a/x.npy"), self.path("b/x.npy"))
        shutil.copy(self.path("a/y.npy"), self.path("b/y.npy"))
        out = self.path("o.h5")
        code, _, err = run("pool", self.path("a"), self.path("b"), "-o", out, "-q")
        self.assertEqual(code, 1)
        lines = err.splitlines()
        self.assertEqual(len(lines), 4, err)
        self.assertTrue(all("output name" in line for line in lines))
        self.assertFalse(os.path.exists(out))

    def test_npy_output_takes_one_tensor(self):
        code, _, err = run("pool", sample("dump.npz"), "-o", self.path("o.npy"), "-q")
        self.assertEqual(code, 1)
        self.assertIn("is an NPY file, which takes one tensor, and 2 go to it", err)

    def test_explicit_misfit_is_an_error_selection_misfit_is_skipped(self):
        code, _, err = run("pool", sample("dump.npz") + ":labels", "-o", self.path("l.npy"), "-q")
        self.assertEqual(code, 1)
        self.assertEqual(err, f"featpool: error: {sample('dump.npz')}:labels: rank 1 has no "
                              "default layout; pass --layout\n")
        code, stdout, _ = run("pool", sample("dump.npz"), "-o", self.path("d.npz"),
                              "--report", "-", "--report-format", "json")
        self.assertEqual(code, 0)
        statuses = {r["name"]: r["status"] for r in json.loads(stdout)["tensors"]}
        self.assertEqual(statuses, {"conv4": "ok", "conv5": "ok", "labels": "skipped"})

    def test_missing_tensor_suggests_a_name(self):
        code, _, err = run("pool", sample("dump.npz") + ":conv55", "-o", self.path("o.npy"), "-q")
        self.assertEqual(code, 1)
        self.assertEqual(err, f"featpool: error: {sample('dump.npz')}: no tensor named 'conv55' "
                              "(did you mean 'conv5'?)\n")

    def test_size_that_does_not_fit(self):
        code, _, err = run("pool", sample("tokens_ncl.npy"), "-o", self.path("o.npy"),
                           "--size", "2x2", "-q")
        self.assertEqual(code, 1)
        self.assertIn("--size 2x2 gives 2 sizes for 1 spatial axes", err)

    def test_huge_size_is_refused_before_allocation(self):
        code, _, err = run("pool", sample("tokens_ncl.npy"), "-o", self.path("o.npy"),
                           "--size", "70000000000", "-q")
        self.assertEqual(code, 1)
        self.assertIn("over the 4 GiB limit", err)

    def test_keep_going_does_the_rest(self):
        os.makedirs(self.path("in"))
        self.make_npy("in/a.npy")
        Path(self.path("in/b.npy")).write_bytes(b"\x93NUMPY garbage")
        self.make_npy("in/c.npy")
        code, _, err = run("pool", self.path("in"), "-o", self.path("out/"), "-q")
        self.assertEqual(code, 1)
        self.assertFalse(os.path.exists(self.path("out/a.npy")))
        code, _, err = run("pool", self.path("in"), "-o", self.path("out/"), "-q", "--keep-going")
        self.assertEqual(code, 1)
        self.assertEqual(err.count("\n"), 1)
        self.assertTrue(os.path.exists(self.path("out/a.npy")))
        self.assertTrue(os.path.exists(self.path("out/c.npy")))


class Flags(PoolTest):
    def test_report_json_has_exactly_specs_keys(self):
        code, stdout, _ = run("pool", sample("dump.npz"), "-o", self.path("o.npz"),
                              "--report", "-", "--report-format", "json")
        self.assertEqual(code, 0)
        report = json.loads(stdout)
        self.assertEqual(list(report), ["featpool_version", "tensors", "totals"])
        self.assertEqual(report["totals"], {"ok": 2, "skipped": 1, "failed": 0})
        for record in report["tensors"]:
            self.assertEqual(list(record), [
                "file", "name", "input_shape", "input_dtype", "layout", "op", "size",
                "output_shape", "output_dtype", "destination", "status", "message",
                "elapsed_ms"])

    def test_report_to_a_json_file_and_quiet(self):
        code, stdout, err = run("pool", sample("tokens_ncl.npy"), "-o", self.path("o.npy"), "-q",
                                "--report", self.path("r.json"))
        self.assertEqual((code, stdout, err), (0, b"", ""))
        report = json.loads(Path(self.path("r.json")).read_text())
        self.assertEqual(report["tensors"][0]["output_shape"], [2, 64, 1])

    def test_dry_run_writes_nothing(self):
        code, stdout, _ = run("pool", SAMPLES, "-o", self.path("out/"), "--dry-run")
        self.assertEqual(code, 0)
        self.assertIn(b"dry run: not written", stdout)
        self.assertFalse(os.path.exists(self.path("out")))

    def test_stdout_output_and_report_on_stderr(self):
        code, stdout, err = run("pool", sample("tokens_ncl.npy"), "-o", "-", "--flatten")
        self.assertEqual(code, 0)
        with open(self.path("s.npy"), "wb") as f:
            f.write(stdout)
        self.assertEqual(np.load(self.path("s.npy")).shape, (2, 64))
        self.assertIn("1 ok, 0 skipped, 0 failed", err)

    def test_stdin_to_stdout(self):
        data = Path(sample("nhwc_float32.npy")).read_bytes()
        code, stdout, _ = run("pool", "-", "-o", "-", "--layout", "NHWC", "-q", input_bytes=data)
        self.assertEqual(code, 0)
        with open(self.path("s.npy"), "wb") as f:
            f.write(stdout)
        ref = np.load(sample("nhwc_float32.npy")).astype(np.float64).mean(axis=(1, 2),
                                                                          keepdims=True)
        np.testing.assert_allclose(np.load(self.path("s.npy")), ref, rtol=1e-6)

    def test_layout_keeps_channels_last(self):
        code, _, _ = run("pool", sample("nhwc_float32.npy"), "-o", self.path("o.npy"),
                         "--layout", "NHWC", "--size", "3", "-q")
        self.assertEqual(code, 0)
        self.assertEqual(np.load(self.path("o.npy")).shape, (2, 3, 3, 64))

    def test_batch_of_zero_gives_an_empty_output(self):
        code, _, _ = run("pool", sample("empty_batch_nchw.npy"), "-o", self.path("o.npy"), "-q")
        self.assertEqual(code, 0)
        self.assertEqual(np.load(self.path("o.npy")).shape, (0, 16, 1, 1))

    def test_int_max_keeps_dtype(self):
        code, _, _ = run("pool", sample("int8_quantized_nchw.npy"), "-o", self.path("o.npy"),
                         "--op", "max", "-q")
        self.assertEqual(code, 0)
        out = np.load(self.path("o.npy"))
        self.assertEqual(out.dtype, np.int8)
        ref = np.load(sample("int8_quantized_nchw.npy")).max(axis=(2, 3), keepdims=True)
        np.testing.assert_array_equal(out, ref)

    def test_catavgmax_needs_a_channel_axis(self):
        x = sample("tokens_ncl.npy")
        code, _, err = run("pool", x, "-o", self.path("o.npy"), "--op", "catavgmax",
                           "--layout", "NXL", "-q")
        self.assertEqual(code, 1)
        self.assertEqual(err, f"featpool: error: {x}:tokens_ncl: catavgmax needs a C axis to "
                              "concatenate on; layout NXL has none\n")
        code, _, _ = run("pool", x, "-o", self.path("o.npy"), "--op", "catavgmax", "--flatten",
                         "-q")
        self.assertEqual(code, 0)
        a = np.load(x).astype(np.float64)
        want = np.concatenate([a.mean(axis=2), a.max(axis=2)], axis=1).astype(np.float32)
        np.testing.assert_allclose(np.load(self.path("o.npy")), want, rtol=2**-23)


class Indices(PoolTest):
    """--indices: torch's return_indices beside the values, as <name>_indices."""

    def torch_max(self, x, size):
        return F.adaptive_max_pool2d(torch.from_numpy(np.load(x).astype(np.float64)), size,
                                     return_indices=True)

    def test_a_mirrored_npy_becomes_h5_with_both_tensors(self):
        os.makedirs(self.path("in"))
        x = self.make_npy("in/x.npy", shape=(2, 3, 5, 5))
        code, stdout, _ = run("pool", self.path("in"), "-o", self.path("out/"), "--op", "max",
                              "--size", "2", "--indices", "--report", "-", "--report-format",
                              "json")
        self.assertEqual(code, 0)
        self.assertEqual(os.listdir(self.path("out")), ["x.h5"])
        [record] = json.loads(stdout)["tensors"]
        self.assertEqual(record["destination"], self.path("out/x.h5") + ":/x")
        values, indices = self.torch_max(x, 2)
        with h5py.File(self.path("out/x.h5")) as f:
            self.assertEqual(sorted(f), ["x", "x_indices"])
            np.testing.assert_array_equal(f["x"][()], values.numpy().astype(np.float32))
            self.assertEqual(f["x_indices"].dtype, np.int64)
            np.testing.assert_array_equal(f["x_indices"][()], indices.numpy())
            attributes = [{k: np.asarray(v).tolist() for k, v in f[name].attrs.items()}
                          for name in ("x", "x_indices")]
            self.assertEqual(attributes[0]["featpool_op"], "max")
            self.assertEqual(attributes[1], attributes[0])
        # --format keeps the format it names; --flatten flattens the indices too.
        code, _, _ = run("pool", self.path("in"), "-o", self.path("flat/"), "--op", "max",
                         "--size", "2", "--indices", "--format", "npz", "--flatten", "-q")
        self.assertEqual(code, 0)
        with np.load(self.path("flat/x.npz")) as z:
            self.assertEqual(sorted(z.files), ["x", "x_indices"])
            np.testing.assert_array_equal(z["x_indices"], indices.numpy().reshape(2, 12))

    def test_indices_names_are_checked_for_collisions_before_any_work(self):
        a = np.zeros((1, 2, 3, 3), np.float32)
        z = self.path("z.npz")
        np.savez(z, a=a, a_indices=a)
        out = self.path("o.h5")
        code, _, err = run("pool", z, "-o", out, "--op", "max", "--indices", "-q")
        self.assertEqual(code, 1)
        self.assertEqual(err, f"featpool: error: {z}:a: output name {out}:/a_indices is also the "
                              f"name of {z}:a_indices\n"
                              f"featpool: error: {z}:a_indices: output name {out}:/a_indices is "
                              f"also the name of the indices of {z}:a\n")
        self.assertFalse(os.path.exists(out))


class Pyramids(PoolTest):
    def test_levels_in_the_report_and_the_attributes(self):
        x = self.make_npy("x.npy", shape=(2, 3, 8, 8))
        out = self.path("o.h5")
        code, text, _ = run("pool", x, "-o", out, "--size", "1,2,_x4", "--report", "-")
        self.assertEqual(code, 0)
        row = text.decode().splitlines()[1]
        self.assertIn("(2, 3, 8, 8) → (2, 111)", row)
        self.assertTrue(row.endswith("ok      pyramid 1x1, 2x2, 8x4"), row)
        with h5py.File(out) as f:
            self.assertEqual(f["x"].attrs["featpool_size"], "1,2,_x4")
            got = f["x"][()]
        a = torch.from_numpy(np.load(x).astype(np.float64))
        want = torch.cat([F.adaptive_avg_pool2d(a, s).flatten(1) for s in (1, 2, (8, 4))], 1)
        np.testing.assert_allclose(got, want.numpy().astype(np.float32), rtol=2**-23)
        code, report, _ = run("pool", x, "-o", out, "--size", "1,2", "--force",
                              "--report-format", "json", "--report", "-", "-q")
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(report)["tensors"][0]["size"], [[1, 1], [2, 2]])

    def test_normalize_along_c_needs_a_c_axis(self):
        x = sample("tokens_ncl.npy")
        code, _, err = run("pool", x, "-o", self.path("o.npy"), "--normalize", "l2",
                           "--layout", "NXL", "-q")
        self.assertEqual(code, 1)
        self.assertEqual(err, f"featpool: error: {x}:tokens_ncl: --normalize l2 normalizes "
                              "along C, and layout NXL has none; with --flatten it normalizes "
                              "each sample's output\n")
        code, _, _ = run("pool", x, "-o", self.path("o.npy"), "--normalize", "l2", "--layout",
                         "NXL", "--flatten", "-q")
        self.assertEqual(code, 0)
        # X and L are both spatial: one value per sample, normalized to its sign.
        a = torch.from_numpy(np.load(x).astype(np.float64)).mean(dim=(1, 2)).reshape(-1, 1)
        want = F.normalize(a, dim=1).numpy().astype(np.float32)
        np.testing.assert_allclose(np.load(self.path("o.npy")), want, rtol=2**-23, atol=2**-30)


class Terminal(PoolTest):
    """The report on a terminal: summarized past 50 tensors unless --verbose."""

    def on_terminal(self, *args):
        command = " ".join([FEATPOOL, "pool", *args])
        done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True,
                              timeout=120)
        return done.returncode, done.stdout.decode().replace("\r\n", "\n")

    def test_summary_and_verbose(self):
        os.makedirs(self.path("in"))
        for i in range(60):
            np.save(self.path(f"in/t{i:02d}.npy"), np.ones((1, 2, 3, 3), np.float32))
        code, out = self.on_terminal(self.path("in"), "-o", self.path("o.h5"))
        self.assertEqual(code, 0)
        self.assertEqual(out, "COUNT  SHAPE                        DTYPE              STATUS  MESSAGE\n"
                              "60     (1, 2, 3, 3) → (1, 2, 1, 1)  float32 → float32  ok\n"
                              "60 ok, 0 skipped, 0 failed\n")
        code, out = self.on_terminal(self.path("in"), "-o", self.path("o.h5"), "--force", "-v")
        self.assertEqual(code, 0)
        self.assertEqual(len(out.splitlines()), 62)
        code, out = self.on_terminal(self.path("in"), "-o", self.path("o.h5"), "--force", "-q")
        self.assertEqual((code, out), (0, ""))

    def test_sync_writes_the_same_output(self):
        code, _, _ = run("pool", sample("tokens_ncl.npy"), "-o", self.path("a.npy"), "-q")
        self.assertEqual(code, 0)
        code, _, _ = run("pool", sample("tokens_ncl.npy"), "-o", self.path("b.npy"), "-q",
                         "--sync")
        self.assertEqual(code, 0)
        self.assertEqual(Path(self.path("a.npy")).read_bytes(),
                         Path(self.path("b.npy")).read_bytes())


class Interruptions(PoolTest):
    """A tensor fed slowly through a FIFO keeps featpool mid-write on demand."""

    def start_slow_pool(self, out):
        fifo = self.path("feed.npy")
        os.mkfifo(fifo)
        proc = subprocess.Popen([FEATPOOL, "pool", fifo, "-o", out, "-q"],
                                stderr=subprocess.DEVNULL)
        writer = open(fifo, "wb")
        a = np.zeros((64, 64, 32, 32), dtype=np.float32)
        np.save(self.path("src.npy"), a)
        data = Path(self.path("src.npy")).read_bytes()
        writer.write(data[: len(data) // 2])
        writer.flush()
        time.sleep(0.5)
        return proc, writer

    def leftovers(self):
        return [n for n in os.listdir(self.dir) if "featpool-tmp" in n]

    def test_sigkill_mid_write_leaves_no_output(self):
        proc, writer = self.start_slow_pool(self.path("o.npy"))
        self.assertTrue(self.leftovers(), "the output should be in progress")
        proc.kill()
        proc.wait(timeout=30)
        writer.close()
        self.assertFalse(os.path.exists(self.path("o.npy")))

    def test_sigint_removes_temporary_files_and_exits_130(self):
        proc, writer = self.start_slow_pool(self.path("o.npy"))
        self.assertTrue(self.leftovers(), "the output should be in progress")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        writer.close()
        self.assertEqual(proc.returncode, 130)
        self.assertFalse(os.path.exists(self.path("o.npy")))
        self.assertEqual(self.leftovers(), [])


def main():
    global FEATPOOL, SAMPLES
    FEATPOOL, SAMPLES = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    result = unittest.main(argv=sys.argv[:1], exit=False, verbosity=1).result
    failed = len(result.failures) + len(result.errors)
    print(f"pool_cli_test: {result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
