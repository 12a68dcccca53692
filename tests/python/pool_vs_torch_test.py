"""Randomized differential test: `featpool pool` against PyTorch's adaptive pooling.

Usage: /usr/bin/python3 pool_vs_torch_test.py FEATPOOL [--seed N] [--cases N] [--keep]

Every case is one tensor: a random layout (NCHW, NHWC, NCL, NLC, NCDHW, NDHWC, CHW, HWC, HW
and odd ones such as CNHW), shape, dtype, memory order and byte order, stored in an NPY, NPZ
or HDF5 file, pooled by featpool with random flags (--op, --size, --layout, --flatten,
--dtype), and compared with torch's adaptive_{avg,max}_pool{1,2,3}d computed in float64
(sum and min: torch's sum and amin over the same windows; avgmax and catavgmax: timm's
0.5 * (avg + max) and torch.cat([avg, max], 1) of those; gem: x.clamp(min=eps).pow(p),
adaptive average, .pow(1/p); lse: torch.logsumexp(r * x) over the same windows, minus the log of
their size, over r); spatial pyramids (--size 1,2,4) against
torch.cat([pool(x, s).flatten(1) for s in sizes], 1) and --normalize l2 against F.normalize;
--indices (op max at one size, into outputs that hold several tensors) exactly against
adaptive_max_pool{1,2,3}d(..., return_indices=True).
Cases that share flags are written into one folder and pooled with a single featpool command
(to a directory, an .npz or an .h5), so hundreds of cases cost a few dozen process starts;
some cases get their own command to cover `-o x.npy`, `-o -` and `FILE:NAME` references, and
a few large tensors (65536 elements and more) make featpool split the work across threads.
Each featpool command also writes a JSON report, whose record for each tensor must say ok with
the expected output shape and dtype. A `coverage:` line counts what the run exercised.

Needs Debian's interpreter (/usr/bin/python3): numpy, h5py and torch come from Debian packages.
The last line is `pool_vs_torch_test: N passed, M failed`; the exit code is 1 on any failure.
"""

import argparse
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_SEED = 20240611
DEFAULT_CASES = 600
TIMEOUT_S = 120

# Layout families by number of spatial dims. The common ones are drawn more often; the odd
# ones (N or C in unusual places, no N, no C, letters other than D/H/W/L) check that featpool
# treats every non-N, non-C letter as spatial and keeps the axis order of the input.
COMMON_LAYOUTS = {
    1: ["NCL", "NLC"],
    2: ["NCHW", "NHWC", "CHW", "HWC", "HW"],
    3: ["NCDHW", "NDHWC"],
}
ODD_LAYOUTS = {
    1: ["CL", "LC", "NL", "L", "LNC", "CNL"],
    2: ["CNHW", "NHW", "HCWN", "WNCH", "NCXY"],
    3: ["CDHW", "DHW", "DHWC", "NXYZC", "CNDHW"],
}
DEFAULT_LAYOUT_BY_RANK = {3: "NCL", 4: "NCHW", 5: "NCDHW"}

DTYPES = ["float16", "float32", "float64", "int8", "int32", "uint8", "bool"]
FLOAT_DTYPES = {"float16", "float32", "float64"}


# --------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------


def parse_layout(layout):
    """Returns (index of N or None, index of C or None, indices of the spatial axes)."""
    n_axis = layout.index("N") if "N" in layout else None
    c_axis = layout.index("C") if "C" in layout else None
    spatial = [i for i, letter in enumerate(layout) if letter not in "NC"]
    return n_axis, c_axis, spatial


def window(i, length, size):
    """PyTorch's adaptive window i: [floor(i*L/S), ceil((i+1)*L/S)), in exact integers."""
    return (i * length) // size, -((-(i + 1) * length) // size)


def to_torch_order(a, layout):
    """Moves an array to PyTorch's (N, C, spatial...) order, adding N and C when missing."""
    n_axis, c_axis, spatial = parse_layout(layout)
    perm = [ax for ax in (n_axis, c_axis) if ax is not None] + spatial
    t = np.transpose(a, perm)
    if n_axis is None:
        t = t[np.newaxis]
    if c_axis is None:
        t = t[:, np.newaxis]
    return t


def from_torch_order(t, layout):
    """Inverse of to_torch_order: drops the added axes, puts the axes back in layout order."""
    n_axis, c_axis, spatial = parse_layout(layout)
    if c_axis is None:
        t = t[:, 0]
    if n_axis is None:
        t = t[0]
    perm = [ax for ax in (n_axis, c_axis) if ax is not None] + spatial
    return np.transpose(t, np.argsort(perm))


def flatten_like_featpool(a, layout):
    """--flatten: (N, rest) with N first and the rest in the layout's order, or (rest)."""
    n_axis = layout.index("N") if "N" in layout else None
    if n_axis is None:
        return a.reshape(-1)
    n = a.shape[n_axis]
    rest = int(np.prod([d for i, d in enumerate(a.shape) if i != n_axis], dtype=np.int64))
    # Moving N to the front keeps the other axes in layout order, as the spec asks.
    return np.moveaxis(a, n_axis, 0).reshape(n, rest)


def torch_pool(t, sizes, op):
    """Adaptive pooling of an (N, C, spatial...) float64 array; sizes holds ints or None."""
    if op in ("sum", "min") or op.startswith("lse"):
        return torch_window_pool(t, sizes, op)
    if op.startswith("gem"):
        # The GeM papers' and timm's x.clamp(min=eps).pow(p), averaged, .pow(1/p); op is
        # "gem:P:EPS".
        _, p, eps = op.split(":")
        p, eps = float(p), float(eps)
        powers = torch.from_numpy(np.ascontiguousarray(t)).clamp(min=eps).pow(p).numpy()
        return torch.from_numpy(torch_pool(powers, sizes, "avg")).pow(1 / p).numpy()
    if op in ("avgmax", "catavgmax"):
        # timm's adaptive_avgmax_pool2d and adaptive_catavgmax_pool2d, on any rank.
        avg, top = torch_pool(t, sizes, "avg"), torch_pool(t, sizes, "max")
        return 0.5 * (avg + top) if op == "avgmax" else np.concatenate([avg, top], axis=1)
    x = torch.from_numpy(np.ascontiguousarray(t))
    fn = {
        ("avg", 1): F.adaptive_avg_pool1d,
        ("avg", 2): F.adaptive_avg_pool2d,
        ("avg", 3): F.adaptive_avg_pool3d,
        ("max", 1): F.adaptive_max_pool1d,
        ("max", 2): F.adaptive_max_pool2d,
        ("max", 3): F.adaptive_max_pool3d,
    }[(op, len(sizes))]
    if len(sizes) == 1:
        # adaptive_*_pool1d takes an int (or a 1-tuple); it has no None form, so keeping the
        # only spatial axis means asking for its own length.
        out = fn(x, sizes[0] if sizes[0] is not None else t.shape[2])
    else:
        out = fn(x, tuple(sizes))
    return out.numpy()


def torch_max_indices(t, sizes):
    """adaptive_max_pool{1,2,3}d(..., return_indices=True)'s indices of an (N, C, spatial...)
    float64 array: int64 offsets into its spatial plane."""
    x = torch.from_numpy(np.ascontiguousarray(t))
    fn = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[len(sizes)]
    if len(sizes) == 1:
        size = sizes[0] if sizes[0] is not None else t.shape[2]
    else:
        size = tuple(sizes)
    return fn(x, size, return_indices=True)[1].numpy()


def indices_reference(a, layout, sizes, flatten):
    """--indices in featpool's output layout: torch's, computed in (N, C, spatial...) order
    (their offsets count the spatial axes in layout order either way), moved back."""
    t = to_torch_order(a.astype(np.float64), layout)
    ref = from_torch_order(torch_max_indices(t, sizes), layout)
    return flatten_like_featpool(ref, layout) if flatten else ref


def indices_name(out_name):
    """Where featpool writes a tensor's --indices: `<name>_indices`, before an NPZ member's
    .npy."""
    if out_name.endswith(".npy"):
        return out_name[:-len(".npy")] + "_indices.npy"
    return out_name + "_indices"


def torch_window_pool(t, sizes, op):
    """sum, min and lse, which torch has no adaptive pooling for: torch's reductions (sum,
    amin; for lse, "lse:R", torch.logsumexp(r * x) minus the log of the window's size,
    divided by r) over the same adaptive windows, one output position at a time, every
    (N, C) at once."""
    x = torch.from_numpy(np.ascontiguousarray(t))
    spatial_in = t.shape[2:]
    out_sizes = [L if s is None else s for L, s in zip(spatial_in, sizes)]
    out = torch.empty(t.shape[:2] + tuple(out_sizes), dtype=torch.float64)
    dims = tuple(range(2, 2 + len(out_sizes)))
    for idx in np.ndindex(*out_sizes):
        sl = tuple(slice(*window(i, L, s)) for i, L, s in zip(idx, spatial_in, out_sizes))
        block = x[(slice(None), slice(None)) + sl]
        if op.startswith("lse"):
            r = float(op.split(":")[1])
            count = block[0, 0].numel() if block.numel() else 1
            value = (torch.logsumexp((r * block).flatten(2), dim=2) - np.log(count)) / r
        else:
            value = block.sum(dim=dims) if op == "sum" else block.amin(dim=dims)
        out[(slice(None), slice(None)) + idx] = value
    return out.numpy()


def numpy_pool(t, sizes, op):
    """The same pooling window by window with numpy: the cross-check of the torch reference.

    Max and min propagate NaN (np.max and np.min do); sums are in float64, average divides
    them by the count.
    """
    spatial_in = t.shape[2:]
    out_sizes = [L if s is None else s for L, s in zip(spatial_in, sizes)]
    out = np.empty(t.shape[:2] + tuple(out_sizes), dtype=np.float64)
    for idx in np.ndindex(*out_sizes):
        sl = tuple(slice(*window(i, L, s)) for i, L, s in zip(idx, spatial_in, out_sizes))
        block = t[(slice(None), slice(None)) + sl].reshape(t.shape[0], t.shape[1], -1)
        with np.errstate(invalid="ignore"):  # Inf - Inf is NaN here on purpose
            if op in ("max", "min"):
                reduce = np.max if op == "max" else np.min
                value = reduce(block, axis=2) if block.size else np.zeros(block.shape[:2])
            elif op == "sum":
                value = block.sum(axis=2)
            else:
                value = block.sum(axis=2) / block.shape[2]
        out[(slice(None), slice(None)) + idx] = value
    return out


# Set by check_reference(): whether torch's adaptive_max_pool propagates NaN the way the spec
# asks (any NaN in the window gives NaN). On torch 1.13 CPU it does: the experiment at start-up
# (random windows with and without NaN, 1-D to 3-D, compared with numpy_pool) agrees, so the
# torch result is the max reference; were it not the case, the numpy window-by-window max
# would be used instead, and the start-up line says which one is in use.
MAX_REFERENCE = "torch"


def check_reference(rng):
    """Compares torch_pool with numpy_pool on random inputs with NaN and +-Inf.

    Returns a list of problems with the average (which would mean the reference itself is
    wrong) and sets MAX_REFERENCE from what the max experiment shows.
    """
    global MAX_REFERENCE
    problems = []
    max_agrees = True
    for trial in range(60):
        nsp = 1 + trial % 3
        shape = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
        shape += [int(rng.integers(1, 9 if nsp < 3 else 6)) for _ in range(nsp)]
        t = rng.standard_normal(shape)
        mask = rng.random(shape)
        t[mask < 0.08] = np.nan
        t[(mask >= 0.08) & (mask < 0.11)] = np.inf
        t[(mask >= 0.11) & (mask < 0.14)] = -np.inf
        sizes = [None if rng.random() < 0.15 else int(rng.integers(1, 8)) for _ in range(nsp)]
        for op in ("avg", "max", "sum", "min"):
            got = torch_pool(t, sizes, op)
            want = numpy_pool(t, sizes, op)
            same_shape = got.shape == want.shape
            ok = same_shape and np.array_equal(np.isnan(got), np.isnan(want))
            if ok:
                finite = np.isfinite(want)
                ok = np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
                ok = ok and np.allclose(got[finite], want[finite], rtol=1e-13, atol=1e-13)
            if not ok:
                if op == "max":
                    max_agrees = False
                else:
                    problems.append(f"torch and numpy differ on {op} for shape {shape} "
                                    f"sizes {sizes}")
    MAX_REFERENCE = "torch" if max_agrees else "numpy"
    return problems


def reference_op(flags):
    """The op as torch_pool takes it: gem carries its p and eps, lse its r."""
    if flags["op"] == "lse":
        return f"lse:{flags['r'] or 1}"
    if flags["op"] != "gem":
        return flags["op"]
    return f"gem:{flags['p'] or 3}:{flags['eps'] or 1e-6}"


def reference(a, layout, sizes, op, flatten, levels=None, normalize=False):
    """Float64 reference in featpool's output layout, and the tolerance scale per element.

    Returns (ref, scale): scale is the largest |x| over the finite values of each output
    element's window, or for a sum the sum of those |x| (the float64 tolerance is 1e-12
    times it). A pyramid (`levels`, two or more sizes) is torch.cat of every level pooled
    and flattened, on the feature axis; `normalize` is F.normalize (see normalized).
    """
    if levels:
        parts = [reference(a, layout, level, op, True) for level in levels]
        ref = np.concatenate([part[0] for part in parts], axis=-1)
        scale = np.concatenate([part[1] for part in parts], axis=-1)
    else:
        ref, scale = pooled_reference(a, layout, sizes, op, flatten)
    if normalize:
        dim = ref.ndim - 1 if (flatten or levels) else layout.index("C")
        ref, scale = normalized(ref, scale, dim)
    return ref, scale


def normalized(ref, scale, dim):
    """F.normalize(ref, p=2, dim, eps=1e-12), and the scale of its error. featpool normalizes
    its own float64 results, each within 1e-12 * scale of the reference: dividing by the norm
    moves every element of a vector by at most 2 * (the vector's largest such error) / norm.
    """
    x = torch.from_numpy(np.ascontiguousarray(ref))
    out = F.normalize(x, p=2.0, dim=dim, eps=1e-12).numpy()
    with np.errstate(invalid="ignore", over="ignore"):  # as torch, a norm may overflow
        norm = np.maximum(np.sqrt(np.sum(ref * ref, axis=dim, keepdims=True)), 1e-12)
        largest = np.max(scale, axis=dim, keepdims=True) if ref.size else scale
        bound = np.broadcast_to(2 * largest / norm, ref.shape)
    return out, np.where(np.isfinite(bound), bound, np.inf)


def pooled_reference(a, layout, sizes, op, flatten):
    """One size's reference, as `reference` describes it."""
    t = to_torch_order(a.astype(np.float64), layout)
    if op == "max" and MAX_REFERENCE == "numpy":
        pooled = numpy_pool(t, sizes, op)
    else:
        pooled = torch_pool(t, sizes, op)
    magnitude = np.where(np.isfinite(t), np.abs(t), 0.0)
    scale = torch_pool(magnitude, sizes, "sum" if op == "sum" else "max")
    if op.startswith("lse"):
        # Also the log of the window's size over r: at most log(3000) / 0.25, about 32.
        scale = scale + 40
    if op == "catavgmax":
        scale = np.concatenate([scale, scale], axis=1)
    ref = from_torch_order(pooled, layout)
    scale = from_torch_order(scale, layout)
    if flatten:
        ref = flatten_like_featpool(ref, layout)
        scale = flatten_like_featpool(scale, layout)
    return ref, scale


def expected_dtype(input_dtype, op, dtype_flag, normalize=False):
    """The spec's output dtype: --dtype auto keeps integers and bool for max and min (unless
    normalized), sums them in float64, else floats."""
    if dtype_flag != "auto":
        return np.dtype(dtype_flag)
    if op in ("max", "min") and input_dtype.kind in "iub" and not normalize:
        return np.dtype(input_dtype.name)  # native byte order: only the type is compared
    if op == "sum" and input_dtype.kind in "iub":
        return np.dtype(np.float64)
    return np.dtype(np.float64) if input_dtype.name == "float64" else np.dtype(np.float32)


def compare(got, ref, scale, out_dtype, exact, float64_floor=False):
    """Returns a list of human-readable mismatches (empty when got passes).

    Tolerances (from the issue):
    - integer and bool outputs (max and min keeping the input dtype) must equal the exact
      max or min;
    - float64 outputs: |got - ref| <= 1e-12 * (largest finite |x| in that output's window;
      for a sum, the sum of the finite |x| in it, the bound its roundings scale with).
      featpool sums in float64 in an order fixed by the data, torch in its own order, so the
      two may differ by a few float64 roundings of numbers no larger than the window's
      largest magnitude; 1e-12 leaves room for windows of thousands of elements yet catches
      any wrong window or wrong element;
    - float32 / float16 outputs: within one ulp of the reference rounded to that type,
      |got - T(ref)| <= spacing(T(ref)): featpool rounds its float64 result once, so it may
      land on the neighbour of T(ref) when the two float64 values straddle a rounding point;
    - NaN exactly where the reference is NaN and nowhere else; +-Inf exactly where the
      (rounded) reference is +-Inf, with the same sign. Avg of a window with +Inf and -Inf is
      NaN, with +Inf alone +Inf: torch in float64 gives exactly that;
    - with `float64_floor`, outputs of any float type are also within 1e-12 * scale: the
      float64 error bound holds whatever the output's precision. For normalized outputs (see
      normalized), a vector whose norm is small next to its windows' inputs carries the
      pooling's float64 error, magnified, into every element; lse is a difference of
      logarithms (log of the sum, log of the count), and where it is about 0 the reference's
      own roundings, 1e-16 or so, are larger than a float32 ulp of the result.
    """
    problems = []
    if got.dtype.name != out_dtype.name:
        problems.append(f"dtype: expected {out_dtype.name}, got {got.dtype.name}")
        return problems
    if got.shape != ref.shape:
        problems.append(f"shape: expected {ref.shape}, got {got.shape}")
        return problems
    if exact:
        with np.errstate(invalid="ignore"):
            want = (ref != 0) if out_dtype.kind == "b" else ref.astype(out_dtype)
        bad = got != want
        for idx in list(zip(*np.nonzero(bad)))[:5]:
            problems.append(f"at {tuple(int(i) for i in idx)}: expected {want[idx]!r}, "
                            f"got {got[idx]!r} (exact)")
        if bad.any():
            problems.append(f"{int(bad.sum())} of {bad.size} elements differ")
        return problems
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = ref.astype(out_dtype)
    got64 = got.astype(np.float64)
    want64 = rounded.astype(np.float64)
    if out_dtype == np.float64:
        tol = 1e-12 * scale
    else:
        with np.errstate(invalid="ignore"):  # spacing of NaN or Inf: NaN, never used
            tol = np.abs(np.spacing(rounded)).astype(np.float64)
        if float64_floor:
            tol = np.maximum(tol, 1e-12 * scale)
    nan_want = np.isnan(want64)
    nan_got = np.isnan(got64)
    inf_any = np.isinf(want64) | np.isinf(got64)
    bad = nan_want != nan_got
    bad |= inf_any & ~nan_want & ~nan_got & (got64 != want64)
    finite = ~nan_want & ~nan_got & ~inf_any
    with np.errstate(invalid="ignore"):
        bad |= finite & ~(np.abs(got64 - want64) <= tol)
    for idx in list(zip(*np.nonzero(bad)))[:5]:
        problems.append(f"at {tuple(int(i) for i in idx)}: expected {want64[idx]!r} "
                        f"(float64 reference {ref[idx]!r}), got {got64[idx]!r}, "
                        f"tolerance {tol[idx]!r}")
    if bad.any():
        problems.append(f"{int(bad.sum())} of {bad.size} elements differ")
    return problems


def compare_indices(got, ref):
    """--indices must equal torch's exactly: int64, the values' shape, every offset."""
    if got.dtype != np.int64:
        return [f"indices dtype: expected int64, got {got.dtype.name}"]
    if got.shape != ref.shape:
        return [f"indices shape: expected {ref.shape}, got {got.shape}"]
    bad = got != ref
    problems = [f"indices at {tuple(int(i) for i in idx)}: expected {ref[idx]}, got {got[idx]}"
                for idx in list(zip(*np.nonzero(bad)))[:5]]
    if bad.any():
        problems.append(f"{int(bad.sum())} of {bad.size} indices differ")
    return problems


# --------------------------------------------------------------------------------------------
# Case generation
# --------------------------------------------------------------------------------------------


class Case:
    """One tensor: how it is stored, the flags it is pooled with, and where the output is."""

    def __init__(self, index, layout, array, flags):
        self.index = index
        self.layout = layout
        self.array = array  # as stored: dtype, byte order and memory order included
        self.flags = flags  # dict: op, sizes, size_spec, layout_flag, flatten, dtype
        self.container = None  # "npy", "npz" or "h5"
        self.path = None
        self.member = None  # NPZ member or HDF5 dataset path ("/g/ds"); None for NPY
        self.tensor_name = None  # the tensor's name as featpool reports it
        self.out_file = None
        self.out_name = None  # member or dataset inside out_file; None for NPY outputs
        self.out_kind = None  # how the output was asked for, for the coverage tally
        self.command = None
        self.large = False

    def describe(self):
        a = self.array
        order = "F" if (a.flags.f_contiguous and not a.flags.c_contiguous) else "C"
        where = self.path + (f":{self.member}" if self.member else "")
        return (f"{where} shape {a.shape} dtype {a.dtype.str} ({a.dtype.name}) order {order} "
                f"layout {self.layout}")


def random_sizes(rng, nsp):
    """Returns (sizes per spatial axis with None for `_`, the --size text or None)."""
    r = rng.random()
    if r < 0.12:
        return [1] * nsp, None  # the default: global pooling
    if r < 0.35:
        s = int(rng.integers(1, 8))
        return [s] * nsp, str(s)  # one number for every spatial dim
    sizes = [None if rng.random() < 0.2 else int(rng.integers(1, 8)) for _ in range(nsp)]
    if nsp == 1 and sizes[0] is None and rng.random() < 0.5:
        sizes = [int(rng.integers(1, 8))]
    return sizes, "x".join("_" if s is None else str(s) for s in sizes)


def random_length(rng, size, cap):
    """A spatial length relative to the output size: equal, divisible, smaller, other."""
    if size is None:
        return int(rng.integers(1, cap + 1))
    kind = rng.choice(["equal", "divisible", "smaller", "nondivisible", "any"],
                      p=[0.15, 0.25, 0.15, 0.3, 0.15])
    if kind == "equal":
        return size
    if kind == "divisible" and size * 2 <= cap:
        return size * int(rng.integers(2, cap // size + 1))
    if kind == "smaller" and size > 1:
        return int(rng.integers(1, size))
    if kind == "nondivisible" and size > 1:
        choices = [L for L in range(size + 1, max(size + 2, cap + 1)) if L % size]
        if choices:
            return int(rng.choice(choices))
    return int(rng.integers(1, cap + 1))


def random_shape(rng, layout, sizes, large=False):
    """A shape for the layout; `large` ones (65536 elements and more) make featpool split the
    work across threads and stream the input in pieces, which the small ones never do."""
    _, _, spatial = parse_layout(layout)
    cap = ({1: 3000, 2: 90, 3: 24} if large else {1: 40, 2: 14, 3: 7})[len(spatial)]
    for attempt in range(1000):
        shape = []
        it = iter(sizes)
        for letter in layout:
            if letter == "N":
                empty = not large and rng.random() < 0.07  # batch of 0: an empty output
                shape.append(0 if empty else int(rng.integers(1, 4)))
            elif letter == "C":
                shape.append(int(rng.integers(8, 40)) if large else int(rng.integers(1, 6)))
            else:
                shape.append(random_length(rng, next(it), cap))
        count = int(np.prod(shape))
        if not large or 1 << 16 <= count <= 3 << 20:
            return tuple(shape)
        # Layouts without C (or N) need longer spatial axes to reach the large range, and
        # the size categories pick lengths below the cap: widen or narrow it until one fits.
        if attempt % 10 == 9:
            cap = cap * 2 if count < 1 << 16 else max(2, cap * 3 // 4)
    raise RuntimeError(f"no large shape found for layout {layout} sizes {sizes}")


def random_values(rng, shape, dtype_name, large=False):
    if dtype_name == "bool":
        return rng.random(shape) < rng.choice([0.1, 0.5, 0.9])
    if dtype_name == "int8":
        return rng.integers(-128, 128, size=shape, dtype=np.int8)
    if dtype_name == "uint8":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if dtype_name == "int32":
        hi = int(rng.choice([1000, 2**20, 2**31]))
        return rng.integers(-hi, hi, size=shape, dtype=np.int64).astype(np.int32)
    scales = {"float16": [1.0, 1e-3, 100.0], "float32": [1.0, 1e-3, 1e4, 1e30],
              "float64": [1.0, 1e-3, 1e4, 1e200]}[dtype_name]
    x = rng.standard_normal(shape) * rng.choice(scales)
    style = rng.random()
    if style < 0.2:
        x = np.maximum(x, 0.0)  # ReLU-like: many exact zeros
    elif style < 0.3:
        x = np.round(x)  # ties for max
    x = x.astype(dtype_name)
    if x.size and rng.random() < 0.35:
        # A few non-finite values: NaN windows for max and avg, +-Inf and Inf - Inf for avg.
        count = int(rng.integers(1, max(2, min(x.size // 8, 60 if large else x.size))))
        flat = x.reshape(-1)
        picks = rng.choice(x.size, size=min(count, x.size), replace=False)
        flat[picks] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=dtype_name),
                                 size=len(picks))
    return x


def random_storage(rng, x):
    """Applies Fortran order and/or big-endian byte order to some arrays."""
    if x.dtype.itemsize > 1 and rng.random() < 0.25:
        x = x.astype(x.dtype.newbyteorder(">"))
    if x.ndim > 1 and rng.random() < 0.25:
        x = np.asfortranarray(x)
    return x


def random_flags(rng, layout):
    _, _, spatial = parse_layout(layout)
    sizes, size_spec = random_sizes(rng, len(spatial))
    default = DEFAULT_LAYOUT_BY_RANK.get(len(layout))
    layout_flag = None if (layout == default and rng.random() < 0.5) else layout
    r = rng.random()
    dtype = "auto" if r < 0.7 else str(rng.choice(["float64", "float32", "float16", "auto"]))
    op = random_op(rng, layout)
    gem = op == "gem"
    flatten = bool(rng.random() < 0.3)
    # A spatial pyramid: two or three sizes, each of any form.
    levels = None
    if rng.random() < 0.15:
        levels = [sizes] + [random_sizes(rng, len(spatial))[0] for _ in range(rng.integers(1, 3))]
        size_spec = ",".join("x".join("_" if s is None else str(s) for s in level)
                             for level in levels)
    # Along C, or over each sample with --flatten or a pyramid; no C needs one of them.
    normalize = bool(rng.random() < 0.2)
    if normalize and "C" not in layout and not levels:
        flatten = True
    return {
        "op": op,
        # None: the default, 3 and 1e-6
        "p": str(rng.choice(["3", "1", "2", "4.5"])) if gem and rng.random() < 0.6 else None,
        "eps": str(rng.choice(["1e-6", "0.01", "0.5"])) if gem and rng.random() < 0.5 else None,
        "r": str(rng.choice(["1", "0.25", "8"])) if op == "lse" and rng.random() < 0.6 else None,
        "sizes": sizes,
        "size_spec": size_spec,
        "layout_flag": layout_flag,
        "flatten": flatten,
        "levels": levels,
        "normalize": normalize,
        "dtype": dtype,
        "explicit_auto": dtype == "auto" and r >= 0.7,
        "indices": False,  # chosen with the output, which must hold several tensors
    }


def draw_indices(rng, flags):
    """--indices, for an output that holds several tensors: with op max at one size only."""
    flags["indices"] = flags["op"] == "max" and not flags["levels"] and bool(rng.random() < 0.6)


def random_op(rng, layout):
    op = str(rng.choice(["avg", "max", "sum", "min", "avgmax", "catavgmax", "gem", "lse"],
                        p=[0.22, 0.22, 0.1, 0.1, 0.09, 0.09, 0.09, 0.09]))
    # catavgmax concatenates on C: featpool skips tensors without one (a test of its own).
    return "avgmax" if op == "catavgmax" and "C" not in layout else op


def random_layout(rng):
    nsp = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
    family = COMMON_LAYOUTS if rng.random() < 0.7 else ODD_LAYOUTS
    return str(rng.choice(family[nsp]))


def flag_args(flags):
    args = ["--op", flags["op"]]
    if flags["p"] is not None:
        args += ["--p", flags["p"]]
    if flags["eps"] is not None:
        args += ["--eps", flags["eps"]]
    if flags["r"] is not None:
        args += ["--r", flags["r"]]
    if flags["size_spec"] is not None:
        args += ["--size", flags["size_spec"]]
    if flags["layout_flag"] is not None:
        args += ["--layout", flags["layout_flag"]]
    if flags["flatten"]:
        args.append("--flatten")
    if flags["normalize"]:
        args += ["--normalize", "l2"]
    if flags["dtype"] != "auto" or flags["explicit_auto"]:
        args += ["--dtype", flags["dtype"]]
    if flags["indices"]:
        args.append("--indices")
    return args


def write_npz(path, members, rng):
    saver = np.savez_compressed if rng.random() < 0.4 else np.savez
    saver(path, **members)


def write_h5(path, datasets, rng):
    with h5py.File(path, "w") as f:
        for name, x in datasets.items():
            kwargs = {}
            if x.size and x.ndim and rng.random() < 0.3:
                kwargs = {"chunks": tuple(max(1, d // 2) for d in x.shape),
                          "compression": "gzip", "shuffle": bool(rng.random() < 0.5)}
            # h5py writes the logical array (Fortran order does not survive, byte order does).
            f.create_dataset(name, data=x, **kwargs)


# --------------------------------------------------------------------------------------------
# Running featpool
# --------------------------------------------------------------------------------------------


def run_featpool(binary, args):
    done = subprocess.run([binary, *args], capture_output=True, timeout=TIMEOUT_S)
    return done.returncode, done.stdout, done.stderr.decode("utf-8", "replace")


class OutputReader:
    """Reads outputs once per file; NPZ members by their exact zip names."""

    def __init__(self):
        self.cache = {}

    def read(self, path, name):
        if path.endswith(".npy"):
            return np.load(path)
        if path.endswith(".npz"):
            if path not in self.cache:
                with zipfile.ZipFile(path) as z:
                    self.cache[path] = {n: z.read(n) for n in z.namelist()}
            members = self.cache[path]
            if name not in members:
                raise KeyError(f"no member {name!r} in {path}; members: {sorted(members)[:8]}")
            return np.load(io.BytesIO(members[name]))
        with h5py.File(path, "r") as f:
            if name not in f:
                names = []
                f.visititems(lambda n, o: names.append("/" + n)
                             if isinstance(o, h5py.Dataset) else None)
                raise KeyError(f"no dataset {name!r} in {path}; datasets: {names[:8]}")
            return f[name][()]


def npz_member(name):
    """featpool's NPZ member name: no leading '/', '.npy' added, as numpy names them."""
    return name.lstrip("/") + ".npy"


def h5_name(name):
    return "/" + name.lstrip("/")


class Runner:
    def __init__(self, binary, seed, total, workdir):
        self.binary = binary
        self.seed = seed
        self.total = total
        self.workdir = workdir
        self.rng = np.random.default_rng(seed)
        self.cases = []
        self.passed = 0
        self.failed = 0
        self.reader = OutputReader()
        self.hdf5_writer_missing = False

    # -- generation ---------------------------------------------------------------------------

    def new_case(self, layout, flags, large=False):
        rng = self.rng
        sizes = flags["sizes"]
        shape = random_shape(rng, layout, sizes, large)
        dtype = str(rng.choice(DTYPES))
        x = random_storage(rng, random_values(rng, shape, dtype, large))
        case = Case(len(self.cases), layout, x, flags)
        case.large = large
        self.cases.append(case)
        return case

    def make_group(self, folder, large=False):
        """Several files sharing one set of flags, pooled by one featpool command."""
        rng = self.rng
        layout = random_layout(rng)
        flags = random_flags(rng, layout)
        flags["large"] = large
        os.makedirs(os.path.join(folder, "sub"))
        cases = []
        for f in range(int(rng.integers(2, 4)) if large else int(rng.integers(3, 8))):
            stem = f"f{f:02d}"
            sub = "sub" if rng.random() < 0.25 else ""
            kind = rng.choice(["npy", "npz", "h5"], p=[0.5, 0.25, 0.25])
            if kind == "npy":
                c = self.new_case(layout, flags, large)
                c.container, c.path = "npy", os.path.join(folder, sub, stem + ".npy")
                c.tensor_name = stem
                np.save(c.path, c.array)
                cases.append(c)
                continue
            members = {}
            file_cases = []
            for m in range(1 if large else int(rng.integers(1, 4))):
                c = self.new_case(layout, flags, large)
                if kind == "npz":
                    c.member = f"m{m}"
                    c.tensor_name = c.member
                else:
                    c.member = rng.choice([f"/d{m}", f"/g{m}/act", f"/g/h{m}/act"])
                    c.tensor_name = c.member
                c.container = kind
                c.path = os.path.join(folder, sub, stem + "." + kind)
                members[c.member.lstrip("/")] = c.array
                file_cases.append(c)
            if kind == "npz":
                write_npz(file_cases[0].path, members, rng)
            else:
                write_h5(file_cases[0].path, members, rng)
            cases.extend(file_cases)
        return flags, cases

    def make_single(self, folder):
        """One tensor, one command: -o x.npy, -o -, -o x.npz or -o x.h5, FILE:NAME inputs."""
        rng = self.rng
        layout = random_layout(rng)
        flags = random_flags(rng, layout)
        c = self.new_case(layout, flags)
        kind = rng.choice(["npy", "npz", "h5"])
        c.container = kind
        c.path = os.path.join(folder, f"in.{kind}")
        if kind == "npy":
            np.save(c.path, c.array)
            c.tensor_name = "in"
            ref = c.path
        elif kind == "npz":
            c.member = c.tensor_name = "conv5"
            write_npz(c.path, {"conv5": c.array}, rng)
            ref = c.path if rng.random() < 0.3 else f"{c.path}:conv5"
        else:
            c.member = c.tensor_name = "/block4/act"
            write_h5(c.path, {"block4/act": c.array}, rng)
            ref = rng.choice([c.path, f"{c.path}:/block4/act", f"{c.path}:block4/act"])
        return flags, c, ref

    # -- checking -----------------------------------------------------------------------------

    def fail(self, case, reasons):
        self.failed += 1
        print(f"FAIL case {case.index} (seed {self.seed}): {case.describe()}")
        print(f"  flags: {flag_args(case.flags)}")
        print(f"  command: {shlex.join(case.command)}")
        for r in reasons:
            print(f"  {r}")

    def check_case(self, case, got, record, got_indices=None):
        flags = case.flags
        ref, scale = reference(case.array, case.layout, flags["sizes"], reference_op(flags),
                               flags["flatten"], flags["levels"], flags["normalize"])
        out_dtype = expected_dtype(case.array.dtype, flags["op"], flags["dtype"],
                                   flags["normalize"])
        exact = out_dtype.kind in "iub"
        problems = compare(got, ref, scale, out_dtype, exact,
                           flags["normalize"] or flags["op"] == "lse")
        if flags["indices"]:
            problems += compare_indices(got_indices, indices_reference(
                case.array, case.layout, flags["sizes"], flags["flatten"]))
        if record is None:
            problems.append("no record for this tensor in the JSON report")
        else:
            if record.get("status") != "ok":
                problems.append(f"report status {record.get('status')!r}: "
                                f"{record.get('message')!r}")
            if record.get("output_shape") != list(ref.shape):
                problems.append(f"report output_shape {record.get('output_shape')} != "
                                f"{list(ref.shape)}")
            if record.get("output_dtype") != out_dtype.name:
                problems.append(f"report output_dtype {record.get('output_dtype')!r} != "
                                f"{out_dtype.name!r}")
        if problems:
            self.fail(case, [f"expected shape {ref.shape} dtype {out_dtype.name}; got shape "
                             f"{got.shape} dtype {got.dtype.name}"] + problems)
        else:
            self.passed += 1

    def check_outputs(self, cases, code, stdout, stderr, report_path, stdout_npy=False):
        if code != 0:
            if "HDF5" in stderr or "hdf5" in stderr:
                self.hdf5_writer_missing = True
            for c in cases:
                self.fail(c, [f"featpool exited {code}: {stderr.strip()[:600]}"])
            return
        records = {}
        try:
            with open(report_path, encoding="utf-8") as f:
                for r in json.load(f)["tensors"]:
                    records[(os.path.realpath(r["file"]), r["name"])] = r
        except (OSError, ValueError, KeyError, TypeError) as e:
            records = {}
            print(f"note: could not read the JSON report {report_path}: {e}")
        for c in cases:
            record = records.get((os.path.realpath(c.path), c.tensor_name))
            got_indices = None
            try:
                if stdout_npy:
                    got = np.load(io.BytesIO(stdout))
                else:
                    got = self.reader.read(c.out_file, c.out_name)
                    if c.flags["indices"]:
                        got_indices = self.reader.read(c.out_file, indices_name(c.out_name))
            except Exception as e:  # any unreadable output is this case's failure
                self.fail(c, [f"cannot read output {c.out_file} {c.out_name or ''}: {e}"])
                continue
            self.check_case(c, got, record, got_indices)

    # -- the run ------------------------------------------------------------------------------

    def run(self):
        n_single = max(24, self.total // 6)
        n_large_groups = max(3, self.total // 150)
        groups = []
        gid = 0
        for _ in range(n_large_groups):
            folder = os.path.join(self.workdir, f"g{gid:03d}")
            in_dir = os.path.join(folder, "in")
            flags, cases = self.make_group(in_dir, large=True)
            groups.append((gid, folder, in_dir, flags, cases))
            gid += 1
        # Groups until the batch share of the cases is reached, then single-file commands.
        while len(self.cases) < self.total - n_single:
            folder = os.path.join(self.workdir, f"g{gid:03d}")
            in_dir = os.path.join(folder, "in")
            flags, cases = self.make_group(in_dir)
            groups.append((gid, folder, in_dir, flags, cases))
            gid += 1
        singles = []
        while len(self.cases) < self.total:
            folder = os.path.join(self.workdir, f"s{len(singles):03d}")
            os.makedirs(folder)
            singles.append((folder,) + self.make_single(folder))
        print(f"pool_vs_torch_test: seed {self.seed}, {len(self.cases)} cases, "
              f"{len(groups)} batch commands + {len(singles)} single commands")

        for gid, folder, in_dir, flags, cases in groups:
            self.run_group(folder, in_dir, flags, cases)
        for folder, flags, case, ref in singles:
            self.run_single(folder, flags, case, ref)

    def coverage(self):
        """Counts what the generated cases exercised; returns (summary, missing categories)."""
        tally = {}

        def add(key):
            tally[key] = tally.get(key, 0) + 1

        for c in self.cases:
            a, flags = c.array, c.flags
            _, _, spatial = parse_layout(c.layout)
            add(f"{len(spatial)}d")
            add(f"layout {c.layout}")
            add(f"dtype {a.dtype.name}")
            add(f"op {flags['op']}")
            add(f"in {c.container}")
            add(f"out {c.out_kind}")
            if c.large:
                add("large")
            add(f"--dtype {flags['dtype']}" if flags["dtype"] != "auto" or flags["explicit_auto"]
                else "--dtype default")
            if flags["flatten"]:
                add("flatten")
            if flags["levels"]:
                add("pyramid")
            if flags["normalize"]:
                add("normalize")
            if flags["indices"]:
                add("indices")
                if a.dtype.kind == "f" and np.isnan(a).any():
                    add("indices nan")
            if flags["size_spec"] is None:
                add("size default")
            elif "x" not in flags["size_spec"] and len(spatial) > 1:
                add("size one number")
            if a.flags.f_contiguous and not a.flags.c_contiguous:
                add("fortran")
            if a.dtype.byteorder == ">":
                add("big-endian")
            if "N" in c.layout and a.shape[c.layout.index("N")] == 0:
                add("batch 0")
            if a.dtype.kind == "f" and np.isnan(a).any():
                add("nan")
            if a.dtype.kind == "f" and np.isinf(a).any():
                add("inf")
            for ax, size in zip(spatial, flags["sizes"]):
                length = a.shape[ax]
                add("size _" if size is None else "size equal" if size == length
                    else "size larger" if size > length
                    else "size divisible" if length % size == 0 else "size non-divisible")
        required = (["large", "1d", "2d", "3d", "in npy", "in npz", "in h5", "flatten", "pyramid",
                     "normalize", "indices", "fortran", "big-endian", "batch 0", "nan", "inf",
                     "size _", "size equal", "size larger", "size divisible", "size non-divisible",
                     "size one number",
                     "--dtype float64", "--dtype float32", "--dtype float16"]
                    + [f"op {op}" for op in ("avg", "max", "sum", "min", "avgmax", "catavgmax",
                                             "gem", "lse")]
                    + [f"dtype {d}" for d in DTYPES]
                    + [f"layout {l}" for l in sum(COMMON_LAYOUTS.values(), [])]
                    + ["layout CNHW"]
                    + [f"out {k}" for k in ("dir/npy", "dir/h5", "dir/npz", "many->npz", "many->h5",
                                            "one->npy", "one->-", "one->npz", "one->h5")])
        missing = [k for k in required if k not in tally]
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(tally.items()))
        return summary, missing

    def run_group(self, folder, in_dir, flags, cases):
        rng = self.rng
        mode = str(rng.choice(["dir", "npz", "h5"], p=[0.45, 0.25, 0.3]))
        draw_indices(rng, flags)  # every mode holds several tensors per file
        report = os.path.join(folder, "report.json")
        # Inputs: the folder itself, or the files as arguments (names are then relative to
        # their common parent folder).
        files = sorted({c.path for c in cases})
        as_files = mode != "dir" and rng.random() < 0.4
        inputs = files if as_files else [in_dir]
        base = os.path.commonpath([os.path.dirname(p) for p in files]) if as_files else in_dir
        extra = []
        if flags.get("large") and rng.random() < 0.7:
            extra = ["-j", str(int(rng.choice([2, 3, 4])))]  # split across threads
        elif rng.random() < 0.3:
            extra = ["-j", str(int(rng.choice([1, 2, 3])))]
        per_file = {}
        for c in cases:
            per_file[c.path] = per_file.get(c.path, 0) + 1
        if mode == "dir":
            out = os.path.join(folder, "out") + "/"
            forced = str(rng.choice(["npz", "h5"])) if rng.random() < 0.35 else None
            if forced:
                extra += ["--format", forced]
            for c in cases:
                rel = os.path.splitext(os.path.relpath(c.path, in_dir))[0]
                # A file's one tensor with its indices is two: written as .h5.
                one = per_file[c.path] == 1 and not flags["indices"]
                fmt = forced or ("npy" if one else "h5")
                c.out_file = os.path.join(out, rel + "." + fmt)
                c.out_kind = f"dir/{fmt}"
                c.out_name = {"npy": None, "npz": npz_member(c.tensor_name or ""),
                              "h5": h5_name(c.tensor_name or "")}[fmt]
        else:
            out = os.path.join(folder, "out." + mode)
            for c in cases:
                rel = os.path.splitext(os.path.relpath(c.path, base))[0]
                name = "/" + rel if c.container == "npy" else f"/{rel}/{c.member.lstrip('/')}"
                c.out_file = out
                c.out_name = npz_member(name) if mode == "npz" else h5_name(name)
                c.out_kind = f"many->{mode}"
        cmd = [self.binary, "pool", *inputs, "-o", out, *flag_args(flags), *extra,
               "-q", "--report", report]
        for c in cases:
            c.command = cmd
        code, stdout, stderr = run_featpool(self.binary, cmd[1:])
        self.check_outputs(cases, code, stdout, stderr, report)

    def run_single(self, folder, flags, case, ref):
        rng = self.rng
        target = str(rng.choice(["npy", "-", "npz", "h5"], p=[0.35, 0.25, 0.2, 0.2]))
        if target in ("npz", "h5"):
            draw_indices(rng, flags)  # .npy and - take one tensor: a usage error
        report = os.path.join(folder, "report.json")
        case.out_kind = f"one->{target}"
        if target == "-":
            out = "-"
        else:
            out = os.path.join(folder, "out." + target)
            case.out_file = out
            # One input file: the output holds the tensor under its own name.
            case.out_name = {"npy": None, "npz": npz_member(case.tensor_name),
                             "h5": h5_name(case.tensor_name)}[target]
        cmd = [self.binary, "pool", ref, "-o", out, *flag_args(flags), "-q", "--report", report]
        case.command = cmd
        code, stdout, stderr = run_featpool(self.binary, cmd[1:])
        self.check_outputs([case], code, stdout, stderr, report, stdout_npy=(target == "-"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("featpool")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    binary = os.path.abspath(args.featpool)
    torch.set_num_threads(1)
    start = time.monotonic()

    problems = check_reference(np.random.default_rng(args.seed))
    print(f"pool_vs_torch_test: max reference: {MAX_REFERENCE} "
          f"(torch {torch.__version__} {'propagates' if MAX_REFERENCE == 'torch' else 'drops'}"
          f" NaN in adaptive_max_pool)")
    if problems:
        for p in problems:
            print(f"FAIL reference self-check: {p}")
        print(f"pool_vs_torch_test: 0 passed, {len(problems)} failed")
        return 1

    workdir = tempfile.mkdtemp(prefix="featpool_pool_vs_torch_")
    try:
        runner = Runner(binary, args.seed, max(1, args.cases), workdir)
        runner.run()
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    summary, missing = runner.coverage()
    print(f"coverage: {summary}")
    if missing:
        # Not a featpool failure: this seed and case count did not draw these; say so.
        print(f"warning: this run did not cover: {', '.join(missing)}")
    if runner.hdf5_writer_missing:
        print("note: some commands failed mentioning HDF5 (is the HDF5 writer built?)")
    print(f"elapsed {time.monotonic() - start:.1f} s")
    print(f"pool_vs_torch_test: {runner.passed} passed, {runner.failed} failed")
    return 1 if runner.failed else 0


if __name__ == "__main__":
    sys.exit(main())
