"""Runs a command with featpool's pooling loops forced to one instruction set.

Usage: /usr/bin/python3 with_kernels.py FEATPOOL ISA -- COMMAND...

Sets FEATPOOL_KERNELS=ISA (baseline, avx2 or avx512) for COMMAND, so a test written for
featpool's default path runs on that one. When this processor cannot run ISA (featpool says
so and exits with 2), it prints why and exits with 77, which CTest counts as skipped.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

SKIPPED = 77


def processor_runs(featpool, isa):
    """Whether featpool accepts FEATPOOL_KERNELS=isa here, and why not."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(tmp, "probe.npy")
        np.save(probe, np.ones((1, 2, 3, 3), dtype=np.float32))
        env = dict(os.environ, FEATPOOL_KERNELS=isa)
        run = subprocess.run([featpool, "pool", probe, "-o", os.path.join(tmp, "out.npy"), "-q"],
                             env=env, capture_output=True, text=True, timeout=60)
    return run.returncode == 0, run.stderr.strip()


def main():
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit(__doc__)
    featpool, isa, command = sys.argv[1], sys.argv[2], sys.argv[4:]
    runs, why = processor_runs(featpool, isa)
    if not runs:
        print(f"with_kernels: skipped: {why}")
        sys.exit(SKIPPED)
    sys.exit(subprocess.run(command, env=dict(os.environ, FEATPOOL_KERNELS=isa)).returncode)


if __name__ == "__main__":
    main()
