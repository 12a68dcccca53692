"""Every instruction set featpool's pooling loops are compiled for gives the same bits.

Usage: /usr/bin/python3 kernel_paths_test.py FEATPOOL

featpool picks its pooling loops at start-up (baseline x86-64, AVX2 or AVX-512) and
FEATPOOL_KERNELS forces one. This test pools the same inputs with each set the processor can
run, and once more with -j 1, and requires byte-identical outputs: the sums are taken in an
order that does not depend on the vector width, so no path may round differently. Inputs
are built to make order matter (values from 1e-8 to 1e8, with NaN, infinities and signed
zeros), in every dtype class, layouts with channels first and last, 1-, 2- and 3-D, C and
Fortran order, and output sizes that divide, do not divide, and leave windows wider than the
loops' 16 lanes. Sets this processor lacks are listed as skipped.

The last line is `kernel_paths_test: N passed, M failed`; the exit code is 1 on any failure.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

ISAS = ["baseline", "avx2", "avx512"]


def order_sensitive(rng, shape, dtype):
    """Values whose float sums depend on the order they are added in."""
    if np.dtype(dtype).kind in "iub":
        info = np.iinfo(dtype) if np.dtype(dtype).kind != "b" else None
        if info is None:
            return rng.integers(0, 2, size=shape).astype(bool)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    magnitude = 10.0 ** rng.uniform(-8, 8 if dtype != np.float16 else 4, size=shape)
    values = (magnitude * rng.choice([-1.0, 1.0], size=shape)).astype(dtype)
    flat = values.reshape(-1)
    for special in [np.nan, np.inf, -np.inf, 0.0, -0.0]:
        flat[rng.integers(0, flat.size, size=max(1, flat.size // 500))] = special
    return values


def cases(rng):
    """(name, array, featpool flags) for every combination worth a path."""
    yield "nchw-f32-56", order_sensitive(rng, (2, 20, 56, 56), np.float32), ["--size", "7"]
    yield "nchw-f32-60", order_sensitive(rng, (2, 20, 60, 60), np.float32), ["--size", "7"]
    yield "nchw-f32-global", order_sensitive(rng, (2, 20, 56, 56), np.float32), []
    yield "nchw-f32-2", order_sensitive(rng, (2, 20, 56, 56), np.float32), ["--size", "2"]
    yield "nchw-f32-wide", order_sensitive(rng, (2, 8, 70, 90), np.float32), ["--size", "3x2"]
    yield "nchw-f64", order_sensitive(rng, (2, 9, 33, 35), np.float64), ["--size", "5"]
    yield "nchw-f16", order_sensitive(rng, (2, 9, 33, 35), np.float16), ["--size", "5"]
    yield "nchw-u8", order_sensitive(rng, (2, 9, 33, 35), np.uint8), ["--size", "5"]
    yield "nchw-i64", order_sensitive(rng, (2, 5, 17, 19), np.int64), ["--size", "4"]
    yield "nchw-i16", order_sensitive(rng, (2, 5, 17, 19), np.int16), ["--size", "4"]
    yield "nchw-bool", order_sensitive(rng, (2, 5, 17, 19), np.bool_), ["--size", "4"]
    nhwc = ["--layout", "NHWC"]
    yield "nhwc-f32", order_sensitive(rng, (2, 28, 28, 70), np.float32), nhwc + ["--size", "7"]
    yield "nhwc-f32-global", order_sensitive(rng, (2, 28, 28, 70), np.float32), nhwc
    yield "nhwc-f16", order_sensitive(rng, (2, 15, 15, 33), np.float16), nhwc + ["--size", "4"]
    yield "nhwc-f64", order_sensitive(rng, (2, 15, 15, 33), np.float64), nhwc + ["--size", "4"]
    yield "ncl-f32", order_sensitive(rng, (3, 4, 5000), np.float32), ["--size", "3"]
    yield "ncl-f32-global", order_sensitive(rng, (3, 4, 5000), np.float32), []
    yield "nlc-f32", order_sensitive(rng, (3, 500, 40), np.float32), ["--size", "3"]
    yield "ncdhw-f32", order_sensitive(rng, (2, 3, 12, 13, 30), np.float32), ["--size", "2x3x5"]
    fortran = np.asfortranarray(order_sensitive(rng, (2, 9, 40, 41), np.float32))
    yield "fortran-nchw-f32", fortran, ["--size", "3"]
    yield "large-nchw-f32", order_sensitive(rng, (4, 64, 40, 40), np.float32), ["--size", "7"]


# Every op whose loops are compiled per instruction set: gem's powers are taken inside
# the sums' loops, by two multiplications for p = 3 and by pow for any other p.
OPS = {
    "avg": ["--op", "avg"],
    "max": ["--op", "max"],
    "sum": ["--op", "sum"],
    "min": ["--op", "min"],
    "gem": ["--op", "gem"],
    "gem-p2.5": ["--op", "gem", "--p", "2.5", "--eps", "1e-3"],
}


def pool(featpool, source, output, flags, op, env_isa, jobs):
    env = dict(os.environ, FEATPOOL_KERNELS=env_isa)
    command = [featpool, "pool", source, "-o", output, *OPS[op], "-q", "--force", "-j", jobs]
    run = subprocess.run(command + flags, env=env, capture_output=True, text=True, timeout=120)
    return run


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    featpool = sys.argv[1]
    rng = np.random.default_rng(20261125)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        available, skipped = [], []
        probe = os.path.join(tmp, "probe.npy")
        np.save(probe, np.ones((1, 1, 2, 2), np.float32))
        for isa in ISAS:
            run = pool(featpool, probe, os.path.join(tmp, "p.npy"), [], "avg", isa, "1")
            (available if run.returncode == 0 else skipped).append((isa, run.stderr.strip()))
        print("instruction sets run:", ", ".join(isa for isa, _ in available))
        for isa, why in skipped:
            print(f"instruction set skipped: {isa}: {why}")
        for name, array, flags in cases(rng):
            source = os.path.join(tmp, name + ".npy")
            np.save(source, array)
            for op in OPS:
                outputs = {}
                for isa, _ in available:
                    for jobs in ["1", "2"]:
                        out = os.path.join(tmp, f"{name}-{op}-{isa}-{jobs}.npy")
                        run = pool(featpool, source, out, flags, op, isa, jobs)
                        if run.returncode != 0:
                            print(f"FAIL {name} {op} {isa} -j{jobs}: {run.stderr.strip()}")
                            failed += 1
                            continue
                        with open(out, "rb") as f:
                            outputs[(isa, jobs)] = f.read()
                reference = outputs.get(("baseline", "1"))
                differing = [key for key, data in outputs.items() if data != reference]
                if reference is None or differing:
                    print(f"FAIL {name} {op}: outputs differ from baseline -j1: {differing}")
                    failed += 1
                else:
                    passed += 1
    print(f"kernel_paths_test: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
