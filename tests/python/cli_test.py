"""CLI tests: run the built featpool binary and check exit code and output together.

Usage: cli_test.py FEATPOOL SAMPLE_DATA
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

FEATPOOL = ""
SAMPLES = ""


def run(*args, stdin=None, env=None, input_bytes=None):
    """Runs featpool; returns (exit code, stdout text, stderr text)."""
    done = subprocess.run(
        [FEATPOOL, *args],
        stdin=stdin if input_bytes is None else None,
        input=input_bytes,
        capture_output=True,
        env=env,
        timeout=60,
    )
    return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode()


def sample(name):
    return os.path.join(SAMPLES, name)


def inspect_fed_fifo(*flags):
    """`featpool inspect FLAGS FIFO` while another process writes a sample into the FIFO."""
    with tempfile.TemporaryDirectory() as tmp:
        fifo = os.path.join(tmp, "feed.npy")
        os.mkfifo(fifo)
        writer = subprocess.Popen(["sh", "-c", f"cat '{sample('tokens_ncl.npy')}' > '{fifo}'"])
        result = run("inspect", *flags, fifo)
        writer.wait(timeout=30)
        return result


class HelpAndUsage(unittest.TestCase):
    def test_help_lists_commands_examples_and_exit_codes(self):
        code, out, err = run("--help")
        self.assertEqual(code, 0)
        self.assertEqual(err, "")
        for text in ("inspect", "Examples:", "Exit codes:", "130"):
            self.assertIn(text, out)

    def test_version(self):
        code, out, _ = run("--version")
        self.assertEqual(code, 0)
        self.assertRegex(out.strip(), r"^\d+\.\d+\.\d+$")

    def test_unknown_flag_is_usage_error_in_one_line(self):
        code, out, err = run("inspect", sample("tokens_ncl.npy"), "--bogus")
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertEqual(
            err,
            "featpool: error: The following argument was not expected: --bogus; "
            "see 'featpool inspect --help'\n",
        )

    def test_missing_subcommand_and_missing_input_are_usage_errors(self):
        self.assertEqual(run()[0], 2)
        code, _, err = run("inspect")
        self.assertEqual(code, 2)
        self.assertEqual(err.count("\n"), 1)


class Inspect(unittest.TestCase):
    def test_directory_lists_every_sample(self):
        code, out, err = run("inspect", SAMPLES)
        self.assertEqual((code, err), (0, ""))
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("TENSOR"))
        self.assertIn(sample("resnet_layer4_nchw.npy"), out)
        self.assertIn(sample("dump.npz") + ":conv5", out)
        self.assertIn(sample("feats.h5") + ":/layer4/act", out)

    def test_json_has_specs_keys_in_order(self):
        code, out, _ = run("inspect", "--json", sample("tokens_ncl.npy"))
        self.assertEqual(code, 0)
        records = json.loads(out)
        self.assertEqual(
            list(records[0]),
            ["file", "name", "format", "shape", "dtype", "numeric", "byte_order", "order",
             "nbytes", "chunks", "filters"],
        )
        self.assertEqual(records[0]["shape"], [2, 64, 50])

    def test_file_name_selects_one_tensor_with_or_without_leading_slash(self):
        for ref in ("feats.h5:/layer4/act", "feats.h5:layer4/act"):
            code, out, _ = run("inspect", "--json", sample(ref))
            self.assertEqual(code, 0)
            self.assertEqual([r["name"] for r in json.loads(out)], ["/layer4/act"])

    def test_glob_does_not_cross_slashes(self):
        code, out, _ = run("inspect", "--json", sample("feats.h5:/*/conv"))
        self.assertEqual(code, 0)
        names = [r["name"] for r in json.loads(out)]
        self.assertEqual(names, ["/block1/conv", "/block2/conv"])
        code, out, _ = run("inspect", "--json", sample("feats.h5:*"))
        self.assertTrue(all(r["name"].count("/") == 1 for r in json.loads(out)))

    def test_name_glob_matches_last_component(self):
        code, out, _ = run("inspect", "--json", "--name", "conv", SAMPLES)
        self.assertEqual(code, 0)
        names = {(os.path.basename(r["file"]), r["name"]) for r in json.loads(out)}
        self.assertIn(("feats.h5", "/block1/conv"), names)
        self.assertTrue(all(n.endswith("conv") for _, n in names))

    def test_missing_tensor_suggests_the_closest_name(self):
        code, out, err = run("inspect", sample("feats.h5:/layer4/akt"))
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(
            err,
            f"featpool: error: {sample('feats.h5')}: no tensor named '/layer4/akt' "
            "(did you mean '/layer4/act'?)\n",
        )

    def test_missing_file_is_one_line_and_others_are_still_listed(self):
        code, out, err = run("inspect", "nope.npy", sample("tokens_ncl.npy"))
        self.assertEqual(code, 1)
        self.assertEqual(err, "featpool: error: nope.npy: no such file or directory\n")
        self.assertIn("tokens_ncl.npy", out)

    def test_stats_of_nonfinite_sample(self):
        code, out, _ = run("inspect", "--json", "--stats", sample("with_nonfinite.npy"))
        self.assertEqual(code, 0)
        record = json.loads(out)[0]
        self.assertGreater(record["nan_count"], 0)
        self.assertGreater(record["inf_count"], 0)
        self.assertLessEqual(record["min"], record["mean"])

    def test_hist_column_is_last_with_one_bar_a_bin(self):
        files = (sample("tokens_ncl.npy"), sample("unicode_labels.npy"))
        code, out, err = run("inspect", "--hist", *files)
        self.assertEqual((code, err), (0, ""))
        header, numeric, text = out.split("\n")[:3]
        self.assertIn(" MIN ", header)  # --hist implies --stats
        column = header.index("HIST")
        self.assertEqual(header[column:], "HIST")
        # One character a bin, empty bins as spaces (trailing ones kept), the
        # level ceil(8 * count / largest count) of the counts --json gives.
        _, out, _ = run("inspect", "--json", "--hist", files[0])
        counts = json.loads(out)[0]["hist"]
        largest = max(counts)
        levels = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
        expected = "".join(" " if c == 0 else levels[(8 * c + largest - 1) // largest - 1]
                           for c in counts)
        self.assertEqual(len(numeric[column:]), 16)
        self.assertEqual(numeric[column:], expected)
        self.assertIn("\u2588", expected)
        self.assertEqual(text[column:], "-")  # non-numeric

    def test_hist_of_a_stream_is_dash_while_its_stats_are_computed(self):
        with open(sample("tokens_ncl.npy"), "rb") as f:
            code, out, err = run("inspect", "--hist", "-", stdin=f)
        self.assertEqual((code, err), (0, ""))
        header, row = out.splitlines()
        self.assertEqual(row[header.index("HIST"):], "-")
        float(row[header.index("MIN"):].split()[0])  # a number, not "-"
        with open(sample("tokens_ncl.npy"), "rb") as f:
            code, out, err = run("inspect", "--json", "--hist", "-", stdin=f)
        self.assertEqual((code, err), (0, ""))
        record = json.loads(out)[0]
        self.assertIsNone(record["hist"])
        self.assertIsNotNone(record["min"])
        self.assertEqual(list(record)[-2:], ["inf_count", "hist"])

    def test_hist_of_a_fifo_is_null(self):
        code, out, err = inspect_fed_fifo("--json", "--hist")
        self.assertEqual((code, err), (0, ""))
        record = json.loads(out)[0]
        self.assertIsNone(record["hist"])
        self.assertIsNotNone(record["mean"])

    def test_attrs_are_shown(self):
        code, out, _ = run("inspect", "--json", "--attrs", sample("feats.h5"))
        self.assertEqual(code, 0)
        records = json.loads(out)
        self.assertTrue(all(isinstance(r["attrs"], dict) for r in records))
        self.assertTrue(any(r["attrs"] for r in records))
        code, out, _ = run("inspect", "--attrs", sample("feats.h5"))
        self.assertIn("    @", out)

    def test_stdin_stream(self):
        with open(sample("tokens_ncl.npy"), "rb") as f:
            code, out, err = run("inspect", "--json", "-", stdin=f)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out)[0]["shape"], [2, 64, 50])

    def test_fifo_with_a_writer_is_read_as_a_stream(self):
        code, out, err = inspect_fed_fifo("--json", "--stats")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out)[0]["shape"], [2, 64, 50])

    def test_truncated_stream_is_an_error(self):
        with open(sample("tokens_ncl.npy"), "rb") as f:
            data = f.read()
        code, _, err = run("inspect", "--stats", "-", input_bytes=data[:1000])
        self.assertEqual(code, 1)
        self.assertRegex(err, r"^featpool: error: -:stdin: truncated data: header says 25600 "
                              r"bytes, file has \d+\n$")

    def test_directory_walk_skips_hidden_and_symlinked_directories(self):
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "b", "deep"))
            os.makedirs(os.path.join(tmp, ".hidden"))
            for rel in ("b/deep/z.npy", "a.npy", ".hidden/h.npy", ".dot.npy", "B.npy"):
                shutil.copy(sample("tokens_ncl.npy"), os.path.join(tmp, rel))
            with open(os.path.join(tmp, "notes.txt"), "w") as f:
                f.write("not a tensor")
            os.symlink(os.path.join(tmp, "b"), os.path.join(tmp, "link"))
            code, out, _ = run("inspect", "--json", tmp)
            self.assertEqual(code, 0)
            files = [os.path.relpath(r["file"], tmp) for r in json.loads(out)]
            self.assertEqual(files, ["B.npy", "a.npy", "b/deep/z.npy"])

    def test_non_utf8_file_names_are_replaced_in_json(self):
        with tempfile.TemporaryDirectory() as tmp:
            name = os.path.join(tmp.encode(), b"caf\xe9.npy")
            shutil.copy(sample("tokens_ncl.npy"), name)
            code, out, _ = run("inspect", "--json", tmp)
            self.assertEqual(code, 0)
            self.assertIn("caf\ufffd.npy", json.loads(out)[0]["file"])

    def test_malformed_file_is_one_line_exit_1(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, "bad.npy")
            with open(bad, "wb") as f:
                f.write(b"hello world")
            code, out, err = run("inspect", bad)
            self.assertEqual((code, out), (1, ""))
            self.assertEqual(err, f"featpool: error: {bad}: not an NPY file (bad magic)\n")

    def test_truncated_files_fail_with_one_line_naming_the_file(self):
        """Every length of a small NPY, and a spread of lengths of NPZ and HDF5 samples."""
        cases = [("tokens_ncl.npy", 1), ("dump.npz", 0), ("feats.h5", 0)]
        with tempfile.TemporaryDirectory() as tmp:
            for name, step in cases:
                data = open(sample(name), "rb").read()
                cut = os.path.join(tmp, name)
                # NPY: every byte of the header and the start of the data; the
                # others at about 150 evenly spread lengths, to keep this quick.
                step = step or max(1, len(data) // 150)
                lengths = range(0, len(data), step) if step > 1 else range(0, 400)
                for length in lengths:
                    with open(cut, "wb") as f:
                        f.write(data[:length])
                    code, _, err = run("inspect", "--stats", cut)
                    where = f"{name} cut at {length} bytes"
                    if code == 0:  # a cut that still holds every listed tensor's data
                        continue
                    self.assertEqual(code, 1, where)
                    self.assertEqual(err.count("\n"), 1, f"{where}: {err!r}")
                    self.assertTrue(err.startswith(f"featpool: error: {cut}"), f"{where}: {err!r}")

    def test_closed_stdout_ends_quietly(self):
        pipeline = subprocess.run(
            ["sh", "-c", f"'{FEATPOOL}' inspect '{SAMPLES}' '{SAMPLES}' '{SAMPLES}' | head -n 1"],
            capture_output=True,
            timeout=60,
        )
        self.assertEqual(pipeline.stderr, b"")
        self.assertTrue(pipeline.stdout.startswith(b"TENSOR"))

    def test_npy_only_run_never_loads_hdf5(self):
        env = dict(os.environ, LD_DEBUG="files")
        code, _, err = run("inspect", sample("tokens_ncl.npy"), sample("dump.npz"), env=env)
        self.assertEqual(code, 0)
        self.assertIn("calling init", err)  # LD_DEBUG did report the libraries it loaded
        self.assertNotIn("libhdf5", err)
        self.assertNotIn("featpool_hdf5", err)
        code, _, err = run("inspect", sample("feats.h5"), env=env)
        self.assertEqual(code, 0)
        self.assertIn("libhdf5", err)

    def test_npy_only_run_never_loads_libzip(self):
        env = dict(os.environ, LD_DEBUG="files")
        code, _, err = run("inspect", sample("tokens_ncl.npy"), env=env)
        self.assertEqual(code, 0)
        self.assertIn("calling init", err)  # LD_DEBUG did report the libraries it loaded
        self.assertNotIn("libzip", err)
        self.assertNotIn("libcrypto", err)
        self.assertNotIn("featpool_zip", err)
        code, _, err = run("inspect", sample("dump.npz"), env=env)
        self.assertEqual(code, 0)
        self.assertIn("libzip", err)


def main():
    global FEATPOOL, SAMPLES
    FEATPOOL, SAMPLES = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    result = unittest.main(argv=sys.argv[:1], exit=False, verbosity=1).result
    failed = len(result.failures) + len(result.errors)
    print(f"cli_test: {result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
