"""Named checks, run one after another: a failed or crashing check is reported and the
run goes on, so one run shows every failure. Shared by the output tests."""

import argparse
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import traceback


class CheckFailed(Exception):
    pass


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


def command_line(doc, add_arguments=lambda parser: None):
    """An output test's arguments: FEATPOOL (made absolute), --keep, and what
    add_arguments(parser) adds."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("featpool")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    add_arguments(parser)
    args = parser.parse_args()
    args.featpool = os.path.abspath(args.featpool)
    return args


def run_command(cmd, expect=0, timeout=120):
    """Runs `cmd`; fails the check (showing the command) unless the exit code is `expect`
    (None accepts any). Returns (code, stdout bytes, stderr text)."""
    done = subprocess.run(cmd, capture_output=True, timeout=timeout)
    stderr = done.stderr.decode("utf-8", "replace")
    if expect is not None and done.returncode != expect:
        raise CheckFailed(f"exit code {done.returncode}, expected {expect}\n"
                          f"  command: {shlex.join(cmd)}\n  stderr: {stderr.strip()[:800]}")
    return done.returncode, done.stdout, stderr


class CaseFolder:
    """A folder for one check's files, inside the run's temporary folder."""

    def __init__(self, tmp, name):
        self.dir = os.path.join(tmp, name)
        self.outputs = 0
        os.makedirs(self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def output(self, ext):
        """A new output path: outputs are never overwritten."""
        self.outputs += 1
        return self.path(f"out{self.outputs}.{ext}")

    def npy(self, name, array):
        import numpy as np  # only the tests that write arrays need it
        path = self.path(name)
        np.save(path, array)
        return path


def run_checks(checks):
    """Runs every (name, check) pair, printing `ok` or `FAIL` and why; returns (passed,
    failed)."""
    passed = failed = 0
    for name, check in checks:
        try:
            check()
        except CheckFailed as e:
            failed += 1
            print(f"FAIL {name}: {e}")
        except Exception:  # a crash in a check is that check's failure, not the run's
            failed += 1
            print(f"FAIL {name}: {traceback.format_exc().strip()}")
        else:
            passed += 1
            print(f"ok   {name}")
    return passed, failed


def run_in_temporary_folder(label, keep, make_checks):
    """Runs the checks make_checks(folder) lists in a new temporary folder, removed at the
    end unless `keep`; prints the time taken and `LABEL: N passed, M failed`, and returns
    the exit code: 1 if any check failed."""
    start = time.monotonic()
    folder = tempfile.mkdtemp(prefix=f"featpool_{label}_")
    try:
        passed, failed = run_checks(make_checks(folder))
    finally:
        if keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"elapsed {time.monotonic() - start:.1f} s")
    print(f"{label}: {passed} passed, {failed} failed")
    return 1 if failed else 0
