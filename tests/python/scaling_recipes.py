"""Shared by the tests that run docs/scaling.md's batch and cluster recipes.

The tests run the recipes' own text, read from the docs at test time, so the documented commands
and the tested ones cannot drift apart. A recipe is the fenced ```sh block that follows a line
`<!-- recipe: NAME -->`.
"""

import json
import os
import re
import subprocess
import unittest
from pathlib import Path

import h5py
import numpy as np

SHELL_TIMEOUT_S = 240
RNG_SEED = 20240601


def recipe(doc_path, name):
    """The shell code of the recipe NAME in doc_path; raises unless it is there exactly once."""
    text = Path(doc_path).read_text()
    marker = re.escape(f"<!-- recipe: {name} -->")
    matches = re.findall(rf"^{marker}[ \t]*\n(?:[ \t]*\n)*```sh[ \t]*\n(.*?)^```[ \t]*$", text,
                         re.MULTILINE | re.DOTALL)
    if len(matches) != 1:
        raise LookupError(f"{doc_path}: expected one ```sh block after '<!-- recipe: {name} -->', "
                          f"found {len(matches)}")
    return matches[0]


def run_shell(code, cwd, featpool, env=None, timeout=SHELL_TIMEOUT_S):
    """Runs code with `sh -e -c` in cwd, as a user would paste it, with featpool's folder first
    on PATH and env added to the current environment.

    Returns (exit code, stdout text, stderr text).
    """
    full_env = dict(os.environ, **(env or {}))
    full_env["PATH"] = os.path.dirname(os.path.abspath(featpool)) + os.pathsep + full_env["PATH"]
    done = subprocess.run(["/bin/sh", "-e", "-c", code], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


# The dump tree: NPY files whose sizes differ up to 24 times (so shards balanced by bytes differ
# from shards balanced by count), in nested folders, in three dtypes; HDF5 files holding several
# 4-D datasets, one in a group; and a hidden file that discovery must never take.
NPY_FILES = (
    # (folder, count, shape, dtype)
    ("run1", 12, (2, 8, 14, 14), np.float32),
    ("run1/late", 6, (6, 8, 28, 28), np.float32),
    ("run2", 8, (1, 8, 14, 14), np.float32),
    ("run2/sub", 6, (3, 8, 21, 21), np.float32),
    ("run2/sub/f64", 3, (2, 8, 14, 14), np.float64),
    ("run3", 3, (4, 8, 14, 14), np.float16),
)
HDF5_FILES = {
    "run1/blocks.h5": {"/act": (2, 8, 14, 14), "/feat": (2, 16, 7, 7)},
    "run2/sub/heads.h5": {"/a": (3, 8, 14, 14), "/b": (3, 8, 21, 21), "/c": (1, 4, 28, 28)},
    "run3/grouped.hdf5": {"/layer1/conv": (2, 8, 14, 14), "/layer2/conv": (2, 16, 14, 14)},
}
HIDDEN_FILE = "run1/.hidden.npy"


def make_dump_tree(root):
    """Creates root/dumps/ (see NPY_FILES and HDF5_FILES) with fixed random values."""
    rng = np.random.default_rng(RNG_SEED)
    dumps = Path(root) / "dumps"
    for folder, count, shape, dtype in NPY_FILES:
        (dumps / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            np.save(dumps / folder / f"layer{i:02d}.npy", rng.standard_normal(shape).astype(dtype))
    for relative, datasets in HDF5_FILES.items():
        with h5py.File(dumps / relative, "w") as f:
            for name, shape in datasets.items():
                f.create_dataset(name, data=rng.standard_normal(shape).astype(np.float32))
    np.save(dumps / HIDDEN_FILE, np.zeros((1, 2, 3, 3), np.float32))
    return dumps


def tree_files(root):
    """Every file under root (hidden ones included), as sorted paths relative to root."""
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def tree_differences(left, right):
    """Lists, in words, how two trees differ in file names or file bytes; empty when identical."""
    left_files, right_files = tree_files(left), tree_files(right)
    differences = [f"only in {left}: {name}" for name in sorted(set(left_files) - set(right_files))]
    differences += [f"only in {right}: {name}"
                    for name in sorted(set(right_files) - set(left_files))]
    differences += [f"differs: {name}" for name in sorted(set(left_files) & set(right_files))
                    if (Path(left) / name).read_bytes() != (Path(right) / name).read_bytes()]
    return differences


def load_report(path):
    return json.loads(Path(path).read_text())


def tensor_keys(report):
    """The report's tensors as (file, name) pairs, in report order (duplicates kept)."""
    return [(record["file"], record["name"]) for record in report["tensors"]]


def hdf5_datasets(path):
    """{dataset path: numpy array} for every dataset in an HDF5 file, groups walked recursively."""
    arrays = {}

    def keep_dataset(name, node):
        if isinstance(node, h5py.Dataset):
            arrays["/" + name] = node[()]

    with h5py.File(path, "r") as f:
        f.visititems(keep_dataset)
    return arrays


def unittest_counts(result):
    """(passed, failed, skipped) of a unittest result; a failed setUpClass counts as one failure."""
    failed = len(result.failures) + len(result.errors)
    # A setUpClass error is not one of the tests run, unlike a test's own error.
    errors_of_tests = sum(isinstance(test, unittest.TestCase) for test, _ in result.errors)
    passed = result.testsRun - len(result.failures) - errors_of_tests - len(result.skipped)
    return passed, failed, len(result.skipped)
