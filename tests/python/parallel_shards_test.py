"""docs/scaling.md's GNU parallel recipes, run as written: `--shard K/N` over four processes.

Usage: /usr/bin/python3 parallel_shards_test.py FEATPOOL SCALING_MD

The recipes are read from SCALING_MD at run time (see scaling_recipes.py) and run in a temporary
folder holding a small dump tree. Their results must equal one featpool process's: the same
files byte for byte, every tensor reported by exactly one shard, and the merged report equal to
the one-process report. Exits 77 (skipped) when GNU parallel or jq is missing.
The last line is `parallel_shards_test: N passed, M failed, K skipped`; the exit code is 1 on
any failure.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree when CTest runs this
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scaling_recipes as recipes  # noqa: E402

FEATPOOL = ""
SCALING_MD = ""
SHARDS = 4
SKIPPED_EXIT_CODE = 77
# The parallel recipe's flags less --shard, --skip-existing, -j and --report.
REFERENCE_FLAGS = ("--size", "7", "-q")


def featpool(*args, cwd):
    done = subprocess.run([FEATPOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=recipes.SHELL_TIMEOUT_S)
    return done.returncode, done.stdout, done.stderr


def run_recipe(name, cwd):
    return recipes.run_shell(recipes.recipe(SCALING_MD, name), cwd, FEATPOOL)


def merge_is_implemented():
    # `featpool merge --help` exits 0 even without the subcommand (the top-level help is printed
    # then), so the usage line tells whether merge exists.
    done = subprocess.run([FEATPOOL, "merge", "--help"], capture_output=True, text=True,
                          timeout=30)
    return done.returncode == 0 and "Usage: featpool merge" in done.stdout


class ParallelShards(unittest.TestCase):
    """One tree, pooled once by one process (the reference) and once by the parallel recipe."""

    @classmethod
    def setUpClass(cls):
        cls.dir = Path(tempfile.mkdtemp(prefix="featpool-parallel-"))
        cls.addClassCleanup(shutil.rmtree, cls.dir)
        recipes.make_dump_tree(cls.dir)
        code, _, err = featpool("pool", "dumps/", "-o", "reference/", *REFERENCE_FLAGS,
                                "--report", "reference.json", cwd=cls.dir)
        if code != 0:
            raise AssertionError(f"the one-process reference run failed ({code}): {err}")
        cls.reference = recipes.load_report(cls.dir / "reference.json")
        code, out, err = run_recipe("parallel", cls.dir)
        if code != 0:
            raise AssertionError(f"the parallel recipe failed ({code})\nstdout: {out}\n"
                                 f"stderr: {err}")
        cls.shard_reports = [recipes.load_report(cls.dir / f"reports/shard-{k}.json")
                             for k in range(1, SHARDS + 1)]

    def path(self, name):
        return self.dir / name

    def test_reference_is_a_clean_run_without_the_hidden_file(self):
        self.assertEqual(self.reference["totals"]["skipped"], 0)
        self.assertEqual(self.reference["totals"]["failed"], 0)
        self.assertGreater(self.reference["totals"]["ok"], 40)
        files = {record["file"] for record in self.reference["tensors"]}
        self.assertFalse([f for f in files if ".hidden" in f])

    def test_pooled_tree_is_byte_identical_to_one_process(self):
        self.assertEqual(recipes.tree_differences(self.path("pooled"), self.path("reference")), [])

    def test_every_tensor_is_in_exactly_one_shard_report(self):
        counts = Counter(key for report in self.shard_reports
                         for key in recipes.tensor_keys(report))
        self.assertEqual([key for key, n in counts.items() if n > 1], [], "in several shards")
        self.assertEqual(set(counts), set(recipes.tensor_keys(self.reference)))

    def test_each_file_goes_to_one_shard(self):
        shards_of_file = defaultdict(set)
        for k, report in enumerate(self.shard_reports, start=1):
            for record in report["tensors"]:
                shards_of_file[record["file"]].add(k)
        self.assertEqual({f: s for f, s in shards_of_file.items() if len(s) > 1}, {})

    def test_each_shard_pooled_something(self):
        for k, report in enumerate(self.shard_reports, start=1):
            with self.subTest(shard=k):
                self.assertGreaterEqual(report["totals"]["ok"], 1)
                self.assertEqual(report["totals"]["failed"], 0)

    def test_merged_report_equals_the_one_process_report(self):
        code, _, err = run_recipe("merge-reports", self.dir)
        self.assertEqual(code, 0, err)
        merged = recipes.load_report(self.path("report.json"))
        self.assertEqual(merged["totals"], self.reference["totals"])
        self.assertEqual(merged["featpool_version"], self.reference["featpool_version"])
        self.assertEqual(Counter(recipes.tensor_keys(merged)),
                         Counter(recipes.tensor_keys(self.reference)))

    def test_rerun_resumes_and_skips_everything(self):
        # In a copy, so the other tests keep the first run's reports.
        again = Path(tempfile.mkdtemp(prefix="featpool-parallel-again-"))
        self.addCleanup(shutil.rmtree, again)
        for folder in ("dumps", "pooled", "reports"):
            shutil.copytree(self.path(folder), again / folder)
        inodes = {name: (again / "pooled" / name).stat().st_ino
                  for name in recipes.tree_files(again / "pooled")}
        code, _, err = run_recipe("parallel", again)
        self.assertEqual(code, 0, err)
        records = [r for k in range(1, SHARDS + 1)
                   for r in recipes.load_report(again / f"reports/shard-{k}.json")["tensors"]]
        self.assertEqual(len(records), len(self.reference["tensors"]))
        self.assertEqual({(r["status"], r["message"]) for r in records},
                         {("skipped", "output exists")})
        self.assertEqual({name: (again / "pooled" / name).stat().st_ino for name in inodes},
                         inodes, "outputs were rewritten")

    def test_merged_outputs_equal_a_one_process_collect(self):
        if not merge_is_implemented():
            self.skipTest("featpool merge is not implemented yet")
        code, _, err = featpool("pool", "dumps/", "-o", "direct.h5", *REFERENCE_FLAGS,
                                cwd=self.dir)
        self.assertEqual(code, 0, err)
        code, _, err = run_recipe("merge-outputs", self.dir)
        self.assertEqual(code, 0, err)
        merged = recipes.hdf5_datasets(self.path("features.h5"))
        direct = recipes.hdf5_datasets(self.path("direct.h5"))
        self.assertEqual(sorted(merged), sorted(direct))
        for name, expected in direct.items():
            with self.subTest(dataset=name):
                self.assertEqual((merged[name].dtype, merged[name].shape),
                                 (expected.dtype, expected.shape))
                np.testing.assert_array_equal(merged[name], expected)


class ShardUsage(unittest.TestCase):
    def test_malformed_shards_are_usage_errors(self):
        with tempfile.TemporaryDirectory(prefix="featpool-shard-usage-") as tmp:
            recipes.make_dump_tree(tmp)
            for shard in ("0/4", "5/4", "2", "a/b"):
                with self.subTest(shard=shard):
                    code, out, err = featpool("pool", "dumps/", "-o", "pooled/", "--size", "7",
                                              "--shard", shard, cwd=tmp)
                    self.assertEqual(code, 2, err)
                    self.assertEqual(out, "")
                    self.assertEqual(len(err.splitlines()), 1, err)
                    self.assertIn("--shard", err)
                    self.assertFalse(os.path.exists(os.path.join(tmp, "pooled")))


def missing_tools():
    return [tool for tool in ("parallel", "jq") if shutil.which(tool) is None]


def main():
    global FEATPOOL, SCALING_MD
    FEATPOOL, SCALING_MD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if missing_tools():
        print(f"parallel_shards_test: SKIPPED: {' and '.join(missing_tools())} not installed")
        sys.exit(SKIPPED_EXIT_CODE)
    result = unittest.main(argv=sys.argv[:1], exit=False, verbosity=2).result
    passed, failed, skipped = recipes.unittest_counts(result)
    print(f"parallel_shards_test: {passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
