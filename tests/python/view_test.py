"""Checks of `featpool view`, pixel by pixel, against images rebuilt with numpy.

Usage: /usr/bin/python3 view_test.py FEATPOOL [--seed N] [--keep]

Each PNG featpool draws is read back with PIL and compared exactly with an image this test
builds itself from the contract of `view` (expected_image below): the layout's sample,
channels and depth slice; each map scaled to [0, 255] in float64 as
np.round(255 * ((x - lo) / (hi - lo))), lo and hi the finite minimum and maximum of a
channel's drawn map (--scale channel) or of every drawn map (--scale global); +inf at 255,
-inf at 0, NaN magenta; colours from matplotlib's tables (or gray); tiles of k x k pixels per
element, k = max(1, tile // max(H, W)), in a grid with a one-pixel (32, 32, 32) frame.
Covered: gray, viridis and magma; channel and global scale; NaN, infinities, constant and
all-NaN channels; non-square maps and maps larger than the tile; --cols, --channels (ranges,
negative bounds, steps, one index), --sample, --layout NHWC, CHW and HW, NCL strips, NCDHW
depth slices; float16, integer (rounding ties), bool and 64-bit integer inputs; values where
float32 arithmetic or another order of operations would round otherwise; an NPZ member;
Fortran-order and big-endian NPY, HDF5, safetensors (bfloat16 too), a strided torch.save
view, a directory and stdin as inputs; `-o -`; the default of 64 tiles and --tile. Then the
refusals: exit 1 with one line naming the tensor, or exit 2 for a malformed command line,
and no file left behind.

Inputs are random from --seed (printed). Needs Debian's interpreter (/usr/bin/python3) with
numpy, PIL (python3-pil) and matplotlib (python3-matplotlib); the check of the other readers
also h5py and torch, as the other output tests do.
The last line is `view_test: N passed, M failed`; the exit code is 1 on any failure.
"""

import io
import math
import os
import re
import struct
import subprocess
import sys

import numpy as np
from PIL import Image

import matplotlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree when CTest runs this
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from named_checks import (CaseFolder, CheckFailed, command_line, require, run_command,  # noqa: E402
                          run_in_temporary_folder)

FEATPOOL = ""
TIMEOUT_S = 60
DEFAULT_SEED = 20261205
RNG = np.random.default_rng(DEFAULT_SEED)

BACKGROUND = (32, 32, 32)
NAN_COLOUR = (255, 0, 255)
DEFAULT_LAYOUTS = {3: "NCL", 4: "NCHW", 5: "NCDHW"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------
# The reference: the image the contract describes, rebuilt with numpy.

def colour_table(cmap):
    """The 256 RGB colours of a colormap, as uint8: gray is (i, i, i); viridis and magma are
    matplotlib's 8-bit colours of each integer index."""
    if cmap == "gray":
        return np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    table = matplotlib.colormaps[cmap](np.arange(256), bytes=True)[:, :3]
    return np.ascontiguousarray(table, dtype=np.uint8)


def channel_indices(count, channels):
    """The channels `--channels` picks out of `count`, in order, as Python picks them."""
    if re.fullmatch(r"-?[0-9]+", channels):
        i = int(channels)
        if not -count <= i < count:
            raise IndexError(f"channel {i} out of range for {count}")
        return [i % count]
    parts = [int(p) if p else None for p in channels.split(":")]
    return list(range(count))[slice(*parts)]


def drawn_maps(x, layout=None, sample=0, channels=":64", depth=None):
    """The (T, H, W) float64 maps `view` draws, one per chosen channel, in order."""
    letters = layout or DEFAULT_LAYOUTS[x.ndim]
    require(len(letters) == x.ndim, f"reference: layout {letters} for rank {x.ndim}")
    a = x
    if "N" not in letters:
        a, letters = a[np.newaxis], "N" + letters
    if "C" not in letters:
        a, letters = a[np.newaxis], "C" + letters
    spatial = [i for i, letter in enumerate(letters) if letter not in "NC"]
    a = np.transpose(a, [letters.index("N"), letters.index("C"), *spatial])
    count = a.shape[0]
    require(-count <= sample < count, f"reference: sample {sample} of {count}")
    a = a[sample % count]
    a = a[channel_indices(a.shape[0], channels)]
    if a.ndim == 2:  # (T, L): one-pixel-high strips
        a = a[:, np.newaxis, :]
    elif a.ndim == 4:  # (T, D, H, W): one depth slice
        d_count = a.shape[1]
        d = d_count // 2 if depth is None else depth
        require(-d_count <= d < d_count, f"reference: depth {d} of {d_count}")
        a = a[:, d % d_count]
    return a.astype(np.float64)


def colour_indices(maps, scale):
    """Per map: the table index of each element (float64 array; NaN where x is NaN)."""
    def bounds(values):
        finite = values[np.isfinite(values)]
        return (finite.min(), finite.max()) if finite.size else (0.0, 0.0)

    out = np.empty(maps.shape, dtype=np.float64)
    global_bounds = bounds(maps)
    for t, m in enumerate(maps):
        lo, hi = global_bounds if scale == "global" else bounds(m)
        finite = np.isfinite(m)
        index = np.zeros(m.shape, dtype=np.float64)
        if hi > lo:
            index[finite] = np.round(255 * ((m[finite] - lo) / (hi - lo)))
        index[np.isposinf(m)] = 255
        index[np.isneginf(m)] = 0
        index[np.isnan(m)] = np.nan
        out[t] = index
    return out


def compose(indices, cmap, cols=None, tile=64):
    """The RGB image of (T, H, W) table indices: the grid, the frame, the tiles."""
    count, h, w = indices.shape
    if cols is None:
        cols = math.isqrt(count)
        cols += cols * cols < count
    rows = -(-count // cols)
    k = max(1, tile // max(h, w))
    image = np.empty((rows * (k * h + 1) + 1, cols * (k * w + 1) + 1, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    table = colour_table(cmap)
    for t in range(count):
        nan = np.isnan(indices[t])
        rgb = table[np.where(nan, 0, indices[t]).astype(np.int64)]
        rgb[nan] = NAN_COLOUR
        y0 = 1 + (t // cols) * (k * h + 1)
        x0 = 1 + (t % cols) * (k * w + 1)
        image[y0:y0 + k * h, x0:x0 + k * w] = np.repeat(np.repeat(rgb, k, axis=0), k, axis=1)
    return image, k, cols


def expected_image(x, layout=None, sample=0, channels=":64", depth=None, cols=None, tile=64,
                   scale="channel", cmap="viridis"):
    """(image, k, cols) that `featpool view` with these flags must draw from x."""
    maps = drawn_maps(x, layout, sample, channels, depth)
    return compose(colour_indices(maps, scale), cmap, cols, tile)


def check_reference():
    """The reference on a tiny case worked out by hand, so that a fault in it is not shared
    silently with the program under test."""
    x = np.array([[[[0.0, 1.0]], [[2.0, 2.0]], [[np.nan, np.inf]]]])  # (1, 3, 1, 2)
    image, k, cols = expected_image(x, cmap="gray", tile=2)
    g, m = BACKGROUND, NAN_COLOUR
    want = np.array([
        [g, g, g, g, g, g, g],
        [g, (0,) * 3, (255,) * 3, g, (0,) * 3, (0,) * 3, g],
        [g, g, g, g, g, g, g],
        [g, m, (255,) * 3, g, g, g, g],
        [g, g, g, g, g, g, g]], dtype=np.uint8)
    require(k == 1 and cols == 2, f"reference: k {k}, cols {cols}")
    require(np.array_equal(image, want), f"reference: tiny image\n{image[..., 0]}")
    # Ties round to even: 255 * (1/2) = 127.5 -> 128, and 255 * (1/510) * 3 = 1.5 -> 2.
    ramp = np.arange(0, 511, dtype=np.float64).reshape(1, 1, 1, 511)
    index = colour_indices(drawn_maps(ramp), "channel")[0, 0]
    require(index[1] == 0 and index[3] == 2 and index[5] == 2 and index[255] == 128,
            f"reference: ties {index[[1, 3, 5, 255]]}")
    viridis = colour_table("viridis")
    require(tuple(viridis[0]) == (68, 1, 84) and tuple(viridis[255]) == (253, 231, 36),
            f"reference: viridis ends {viridis[0]} {viridis[255]}")


# ---------------------------------------------------------------------------------------
# Running featpool and reading its PNG.

def featpool(*args, expect=0):
    """(code, stdout bytes, stderr text) of a featpool run that must exit with `expect`."""
    return run_command([FEATPOOL, *args], expect, TIMEOUT_S)


def decode_png(data, what):
    """The pixels of an 8-bit RGB PNG, as a (height, width, 3) uint8 array."""
    require(data[:8] == PNG_SIGNATURE, f"{what}: not a PNG (starts {data[:8]!r})")
    require(data[12:16] == b"IHDR", f"{what}: first chunk {data[12:16]!r}")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", data[16:26])
    require(bit_depth == 8 and colour_type == 2,
            f"{what}: bit depth {bit_depth}, colour type {colour_type}; expected 8-bit RGB (2)")
    with Image.open(io.BytesIO(data)) as im:
        require(im.mode == "RGB", f"{what}: PIL mode {im.mode}")
        im.load()
        pixels = np.asarray(im, dtype=np.uint8)
    require(pixels.shape == (height, width, 3), f"{what}: pixels {pixels.shape}")
    return pixels


def require_same_image(got, want, k, cols, what, tile_shape=None):
    """Equal size and every pixel equal; otherwise says where, in which tile and element."""
    require(got.shape == want.shape,
            f"{what}: image {got.shape[1]}x{got.shape[0]}, expected "
            f"{want.shape[1]}x{want.shape[0]} (k {k}, cols {cols})")
    wrong = np.argwhere(np.any(got != want, axis=2))
    if len(wrong):
        lines = [f"{what}: {len(wrong)} of {got.shape[0] * got.shape[1]} pixels differ "
                 f"(k {k}, cols {cols})"]
        for y, x in wrong[:6]:
            where = ""
            if tile_shape:
                h, w = tile_shape
                r, ty = divmod(int(y) - 1, k * h + 1)
                c, tx = divmod(int(x) - 1, k * w + 1)
                if 0 <= ty < k * h and 0 <= tx < k * w and y >= 1 and x >= 1:
                    where = f" tile {r * cols + c} element [{ty // k}, {tx // k}]"
                else:
                    where = " frame"
            lines.append(f"  (x {x}, y {y}){where}: got {tuple(int(v) for v in got[y, x])}, "
                         f"expected {tuple(int(v) for v in want[y, x])}")
        raise CheckFailed("\n".join(lines))


def flag_args(layout=None, sample=None, channels=None, depth=None, cols=None, tile=None,
              scale=None, cmap=None):
    """featpool's flags for these settings (None: the default, not passed). Values that may
    start with '-' are passed as --flag=VALUE."""
    args = []
    for flag, value in (("layout", layout), ("sample", sample), ("channels", channels),
                        ("depth", depth), ("cols", cols), ("tile", tile), ("scale", scale),
                        ("cmap", cmap)):
        if value is not None:
            args.append(f"--{flag}={value}")
    return args


def check_view(case, x, source=None, **flags):
    """Draws x (saved as .npy unless `source` names it) with `flags` and compares the PNG
    with expected_image(x, **flags). Returns the pixels."""
    if source is None:
        source = case.npy(f"in{case.outputs + 1}.npy", x)
    out = case.output("png")
    featpool("view", source, "-o", out, *flag_args(**flags))
    with open(out, "rb") as f:
        got = decode_png(f.read(), out)
    given = {name: value for name, value in flags.items() if value is not None}
    want, k, cols = expected_image(x, **given)
    maps_shape = drawn_maps(x, given.get("layout"), given.get("sample", 0),
                            given.get("channels", ":64"), given.get("depth")).shape
    require_same_image(got, want, k, cols,
                       f"{os.path.basename(source)} {' '.join(flag_args(**flags))}".strip(),
                       maps_shape[1:])
    return got


def floats(shape, dtype=np.float32, spread=1.0):
    """Standard normal values times `spread`, as `dtype`."""
    return (RNG.standard_normal(shape) * spread).astype(dtype)


# ---------------------------------------------------------------------------------------
# The checks.

def check_gray_non_square(tmp):
    case = CaseFolder(tmp, "gray_non_square")
    x = floats((2, 5, 5, 9))  # 5x9 maps: k = 64 // 9 = 7
    check_view(case, x, cmap="gray")
    y = floats((2, 4, 9, 5), np.float64, 1e3)  # 9x5 maps
    check_view(case, y, cmap="gray")


def check_viridis_and_magma(tmp):
    case = CaseFolder(tmp, "colormaps")
    x = floats((1, 6, 9, 5)) * np.arange(1, 7, dtype=np.float32)[None, :, None, None]
    check_view(case, x)  # viridis by default
    check_view(case, x, cmap="viridis")
    check_view(case, floats((1, 3, 5, 9), np.float64), cmap="magma")
    # A ramp of 0..255 draws every entry of each table once.
    every_entry = np.arange(256, dtype=np.float64).reshape(1, 1, 1, 256)
    for cmap in ("viridis", "magma"):
        check_view(case, every_entry, cmap=cmap)


def check_global_scale(tmp):
    """--scale global: one lo and hi over the drawn maps only; the extremes outside them
    (another sample, a channel not drawn) must not count."""
    case = CaseFolder(tmp, "global")
    x = floats((2, 6, 5, 9), np.float64)
    x[:, 2] *= 10.0
    x[:, 3] += 4.0
    x[0, 0] = 1e6     # not drawn: channel 0 is left out below
    x[1, 1:4] = -1e6  # not drawn: sample 1
    for cmap in ("gray", "viridis"):
        check_view(case, x, channels="1:5", scale="global", cmap=cmap)
    check_view(case, x, channels="1:5", scale="channel", cmap="gray")
    y = floats((1, 3, 4, 4))
    y[0, 1] = np.nan
    y[0, 2, 0, 0] = np.inf
    y[0, 0, 1, 1] = -np.inf
    check_view(case, y, scale="global", cmap="gray")


def check_non_finite_and_constant(tmp):
    case = CaseFolder(tmp, "non_finite")
    x = floats((1, 8, 5, 6))
    x[0, 0, 1, 2] = np.nan                    # a NaN among finite values
    x[0, 1, 0, 0], x[0, 1, 4, 5] = np.inf, -np.inf  # both infinities
    x[0, 2] = 3.5                             # constant: every value at index 0
    x[0, 3] = np.nan                          # no finite value at all
    x[0, 4] = -2.0                            # constant with infinities beside it
    x[0, 4, 2, 2], x[0, 4, 3, 3] = np.inf, -np.inf
    x[0, 5] = np.inf                          # infinities only
    x[0, 5, 0, :] = -np.inf
    x[0, 6, :, 0] = np.nan                    # a NaN column beside a range
    for cmap in ("gray", "viridis", "magma"):
        check_view(case, x, cmap=cmap)
    check_view(case, x, cmap="gray", scale="global")
    # Global hi == lo (a constant channel and an all-NaN one), and no finite value at all.
    check_view(case, x, cmap="gray", scale="global", channels="2:4")
    check_view(case, x, cmap="viridis", scale="global", channels="3:4")
    check_view(case, x, cmap="gray", scale="global", channels="5:2:-2")


def check_large_maps_and_tile(tmp):
    """k = max(1, tile // max(H, W)): 1 for maps larger than the tile, and --tile changes it."""
    case = CaseFolder(tmp, "tile")
    big = floats((1, 3, 70, 81))  # larger than 64: k = 1
    check_view(case, big, cmap="gray")
    x = floats((1, 3, 5, 9))
    src = case.npy("x.npy", x)
    for tile, k in ((9, 1), (8, 1), (20, 2), (27, 3), (100, 11), (1, 1)):
        got = check_view(case, x, source=src, tile=tile, cmap="gray")
        require(got.shape[1] == 2 * (k * 9 + 1) + 1, f"--tile {tile}: width {got.shape[1]}")


def check_default_tile_count(tmp):
    """100 channels: the first 64 are drawn, 8 x 8; --channels : draws all 100 in 10 x 10."""
    case = CaseFolder(tmp, "default_count")
    x = floats((1, 100, 3, 4))
    src = case.npy("x.npy", x)
    got = check_view(case, x, source=src, cmap="gray")
    k = 64 // 4
    require(got.shape == (8 * (k * 3 + 1) + 1, 8 * (k * 4 + 1) + 1, 3),
            f"default: {got.shape}, expected 64 tiles in 8 x 8 of k = {k}")
    got = check_view(case, x, source=src, channels=":", tile=8)
    require(got.shape == (10 * (2 * 3 + 1) + 1, 10 * (2 * 4 + 1) + 1, 3),
            f"--channels : --tile 8: {got.shape}")


def check_cols(tmp):
    case = CaseFolder(tmp, "cols")
    x = floats((1, 5, 5, 9))
    src = case.npy("x.npy", x)
    for cols in (1, 2, 3, 4, 5, 7):  # partial last rows, and more columns than tiles
        check_view(case, x, source=src, cols=cols, cmap="gray")
    check_view(case, floats((1, 10, 4, 3)), cmap="gray")  # default: 4 columns, 3 rows
    check_view(case, floats((1, 2, 4, 3)), cmap="gray")   # default: 2 columns, 1 row
    check_view(case, floats((1, 1, 4, 3)), cols=3, cmap="gray")


def check_channels(tmp):
    case = CaseFolder(tmp, "channels")
    x = floats((2, 12, 4, 6)) + np.arange(12, dtype=np.float32)[None, :, None, None]
    src = case.npy("x.npy", x)
    for channels in ("2:7", "-5:-1", "-5:", ":-9", "::2", "1:10:3", "::-1", "8:2:-2",
                     "-1:-13:-3", "5:100", "-100:3", "4", "-3", "0", "-12", "11"):
        check_view(case, x, source=src, channels=channels, cmap="gray")
    check_view(case, x, source=src, channels="3:9", scale="global", cmap="viridis")


def check_sample(tmp):
    case = CaseFolder(tmp, "sample")
    x = floats((3, 4, 5, 5))
    x[1] *= 100.0
    src = case.npy("x.npy", x)
    for sample in (0, 1, 2, -1, -3):
        check_view(case, x, source=src, sample=sample, cmap="gray")


def check_negative_values_as_separate_arguments(tmp):
    """`--sample -1`, `--channels -5:-1`, `--depth -1`, as a shell user types them."""
    case = CaseFolder(tmp, "separate_negatives")
    x = floats((2, 6, 3, 4, 5))
    src = case.npy("x.npy", x)
    out = case.output("png")
    featpool("view", src, "-o", out, "--sample", "-1", "--channels", "-5:-1", "--depth", "-1",
             "--cmap", "gray")
    with open(out, "rb") as f:
        got = decode_png(f.read(), out)
    want, k, cols = expected_image(x, sample=-1, channels="-5:-1", depth=-1, cmap="gray")
    require_same_image(got, want, k, cols, "--sample -1 --channels -5:-1 --depth -1", (4, 5))


def check_layouts(tmp):
    case = CaseFolder(tmp, "layouts")
    nhwc = floats((2, 5, 9, 6))  # N, H=5, W=9, C=6
    check_view(case, nhwc, layout="NHWC", cmap="gray")
    check_view(case, nhwc, layout="NHWC", sample=1)
    chw = floats((4, 7, 3))  # no N: one sample
    check_view(case, chw, layout="CHW", cmap="gray")
    hw = floats((6, 11))  # no N, no C: one map
    check_view(case, hw, layout="HW", cmap="gray")
    hwc = floats((6, 4, 3))
    check_view(case, hwc, layout="HWC", cols=1)
    check_view(case, chw, layout="CHW", sample=-1)  # -1 of one sample: that sample
    cnhw = floats((3, 2, 4, 5))  # N inside the layout
    check_view(case, cnhw, layout="CNHW", sample=1, cmap="gray")
    # Spatial axes are rows and columns in layout order, whatever their letters.
    check_view(case, cnhw, layout="NCWH", sample=1, cmap="gray")
    check_view(case, floats((2, 4, 7, 3)), layout="NXYC", cmap="gray")


def check_ncl_strips(tmp):
    case = CaseFolder(tmp, "ncl")
    x = floats((2, 5, 20))  # NCL by default: strips 1 x 20, k = 3
    got = check_view(case, x, cmap="gray")
    require(got.shape == (2 * (3 * 1 + 1) + 1, 3 * (3 * 20 + 1) + 1, 3), f"strips: {got.shape}")
    check_view(case, x, sample=1, cols=1)
    check_view(case, floats((1, 3, 100)), cmap="gray")  # longer than the tile: k = 1
    check_view(case, floats((7, 4, 2)), layout="LCN", sample=-1, cmap="gray")


def check_ncdhw_depth(tmp):
    """The drawn slice alone sets lo and hi: the other slices hold extremes."""
    case = CaseFolder(tmp, "ncdhw")
    x = floats((2, 3, 5, 4, 6), np.float64)
    x[:, :, 0] = 1e9
    x[:, :, 4] = -1e9
    src = case.npy("x.npy", x)
    check_view(case, x, source=src, cmap="gray")  # depth 5 // 2 = 2
    for depth in (0, 1, 3, 4, -1, -5):
        check_view(case, x, source=src, depth=depth, cmap="gray")
    check_view(case, x, source=src, depth=2, scale="global")
    even = floats((1, 2, 4, 3, 3))
    check_view(case, even, cmap="gray")  # depth 4 // 2 = 2
    ndhwc = floats((1, 3, 5, 4, 2))
    check_view(case, ndhwc, layout="NDHWC", cmap="gray")
    # The first spatial axis in layout order is the depth, whatever its letter.
    check_view(case, x, source=src, layout="NCHWD", depth=-2, cmap="gray")
    check_view(case, x, source=src, layout="NCXYZ", cmap="gray")


def check_dtypes(tmp):
    case = CaseFolder(tmp, "dtypes")
    half = (RNG.standard_normal((2, 4, 6, 7)) * 100).astype(np.float16)
    half[0, 0, 0, 0], half[0, 1, 1, 1], half[0, 2, 2, 2] = np.nan, np.inf, -np.inf
    check_view(case, half, cmap="gray")
    check_view(case, half, cmap="viridis", scale="global")
    # 0..510 in one channel: 255 * (i / 510) lands on .5 at every odd i, rounded to even.
    ramp = np.arange(2 * 511, dtype=np.int16).reshape(1, 2, 1, 511) - 300
    check_view(case, ramp, cmap="gray")
    ints = RNG.integers(-1000, 1000, (2, 3, 5, 5)).astype(np.int32)
    check_view(case, ints, cmap="gray", sample=1)
    check_view(case, RNG.integers(0, 256, (1, 3, 4, 4)).astype(np.uint8), cmap="gray")
    check_view(case, RNG.random((1, 3, 4, 4)) < 0.5, cmap="gray")
    big = RNG.integers(0, 2**63, (1, 2, 4, 4), dtype=np.uint64) * np.uint64(2)
    check_view(case, big, cmap="gray")
    check_view(case, RNG.integers(-2**62, 2**62, (1, 2, 4, 4), dtype=np.int64), cmap="gray")
    check_view(case, RNG.integers(-128, 128, (1, 2, 3, 3)).astype(np.int8), cmap="magma")


def near_ties(lo, hi):
    """float64 values in [lo, hi] where 255 * v falls within a few ulps of k + 0.5, kept when
    another way of computing the index would give another one: 255 * (x - lo) / (hi - lo),
    (x - lo) * (255 / (hi - lo)), rounding half up, or float32 arithmetic."""
    j = np.arange(255, dtype=np.float64)
    centre = lo + (j + 0.5) * (hi - lo) / 255
    candidates = [centre]
    up = down = centre
    for _ in range(3):
        up, down = np.nextafter(up, np.inf), np.nextafter(down, -np.inf)
        candidates += [up, down]
    x = np.unique(np.clip(np.concatenate(candidates), lo, hi))
    want = np.round(255 * ((x - lo) / (hi - lo)))
    others = [np.round(255 * (x - lo) / (hi - lo)),
              np.round((x - lo) * (255 / (hi - lo))),
              np.floor(255 * ((x - lo) / (hi - lo)) + 0.5)]
    lo32, hi32 = np.float32(lo), np.float32(hi)
    x32 = x.astype(np.float32)
    with np.errstate(all="ignore"):
        others.append(np.round(np.float32(255) * ((x32 - lo32) / (hi32 - lo32))).astype(np.float64))
    differs = np.zeros(x.shape, dtype=bool)
    for other in others:
        differs |= other != want
    return x[differs]


def check_float64_order_at_ties(tmp):
    """Values at which only np.round(255 * ((x - lo) / (hi - lo))) in float64 gives the
    contract's index; each channel holds its lo and hi and such values."""
    case = CaseFolder(tmp, "ties")
    side = 24
    x = np.empty((1, 4, side, side), dtype=np.float64)
    found = 0
    for c in range(4):
        lo, hi = -RNG.uniform(0, 1000), RNG.uniform(0.001, 1000)
        values = near_ties(lo, hi)
        found += len(values)
        values = np.resize(np.concatenate([[lo, hi], values]), side * side) if len(values) else \
            np.linspace(lo, hi, side * side)
        values[:2] = lo, hi
        x[0, c] = values.reshape(side, side)
    require(found > 0, "no value where the ways of computing differ; try another --seed")
    check_view(case, x, cmap="gray", tile=side)
    check_view(case, x, cmap="viridis", tile=side)


def check_npz_member(tmp):
    case = CaseFolder(tmp, "npz")
    conv = floats((2, 4, 5, 9))
    tokens = floats((2, 3, 12))
    src = case.path("dump.npz")
    np.savez(src, conv=conv, tokens=tokens)
    check_view(case, conv, source=f"{src}:conv", cmap="gray")
    check_view(case, tokens, source=f"{src}:tokens", sample=-1)
    one = case.path("one.npz")
    np.savez(one, only=conv)
    check_view(case, conv, source=one, cmap="gray", channels="1:3")  # exactly one tensor


def check_input_formats(tmp):
    """One tensor from each reader and memory order: the drawn elements are picked out of
    Fortran-order and big-endian NPY files, a chunked, compressed HDF5 dataset, safetensors
    (bfloat16 too), a strided view saved by torch.save, a directory of one file and stdin."""
    import h5py
    import safetensors_files
    import torch

    case = CaseFolder(tmp, "formats")
    x = floats((3, 7, 6, 5), np.float64) * 50
    check_view(case, x, source=case.npy("fortran.npy", np.asfortranarray(x)), sample=1,
               channels="1:6:2", cmap="gray")
    check_view(case, x.astype(">f4"), sample=-1, channels="::-2", cmap="gray")
    check_view(case, (x * 100).astype(">i2"), sample=2, cmap="gray")
    h5 = case.path("acts.h5")
    with h5py.File(h5, "w") as f:
        f.create_dataset("/block/act", data=x.astype(np.float32), chunks=(2, 3, 4, 2),
                         compression="gzip")
        f.create_dataset("/other", data=x[:, :2].astype(np.float32))
    check_view(case, x.astype(np.float32), source=f"{h5}:/block/act", sample=1,
               channels="2:", cmap="gray")
    one_h5 = case.path("one.h5")
    with h5py.File(one_h5, "w") as f:
        f.create_dataset("/only", data=x.astype(np.float32), chunks=(1, 7, 6, 5))
    check_view(case, x.astype(np.float32), source=one_h5, sample=-1)
    brain = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
    st = case.path("model.safetensors")
    safetensors_files.write(st, {
        "layer.f32": x.astype(np.float32),
        "layer.bf16": ("BF16", list(brain.shape), brain.view(torch.int16).numpy().tobytes())})
    check_view(case, x.astype(np.float32), source=f"{st}:layer.f32", sample=2, cmap="gray")
    check_view(case, brain.float().numpy(), source=f"{st}:layer.bf16", cmap="gray")
    # A view of a larger storage, transposed: NCHW elements read through its strides.
    storage = torch.from_numpy(floats((2, 3, 5, 6, 7), np.float64))
    view = storage[1].permute(0, 1, 3, 2)[:, 1:4]  # (3, 3, 7, 6), not contiguous
    pt = case.path("feats.pt")
    torch.save({"feats": view, "whole": storage}, pt)
    check_view(case, view.numpy(), source=f"{pt}:feats", sample=1, cmap="gray")
    alone = case.path("alone.pt")
    torch.save(view, alone)
    check_view(case, view.numpy(), source=alone, sample=-1, channels="::-1")
    folder = case.path("folder")
    os.makedirs(folder)
    np.save(os.path.join(folder, "x.npy"), x)
    check_view(case, x, source=folder, cmap="gray")
    # `-`: one NPY stream on standard input.
    out = case.output("png")
    with open(case.npy("stdin.npy", x.astype(np.float32)), "rb") as f:
        done = subprocess.run([FEATPOOL, "view", "-", "-o", out, "--sample=1", "--cmap=gray"],
                              stdin=f, capture_output=True, timeout=TIMEOUT_S)
    require(done.returncode == 0, f"view - < stdin.npy: exit {done.returncode}, "
                                  f"{done.stderr.decode('utf-8', 'replace').strip()}")
    with open(out, "rb") as f:
        got = decode_png(f.read(), out)
    want, k, cols = expected_image(x.astype(np.float32), sample=1, cmap="gray")
    require_same_image(got, want, k, cols, "view - < stdin.npy", (6, 5))


def check_stdout(tmp):
    case = CaseFolder(tmp, "stdout")
    x = floats((2, 5, 5, 9))
    src = case.npy("x.npy", x)
    _, data, _ = featpool("view", src, "-o", "-", "--cmap", "gray", "--sample", "1")
    got = decode_png(data, "-o -")
    want, k, cols = expected_image(x, sample=1, cmap="gray")
    require_same_image(got, want, k, cols, "-o -", (5, 9))
    require(sorted(os.listdir(case.dir)) == ["x.npy"], f"files: {sorted(os.listdir(case.dir))}")


def check_force_and_extension_case(tmp):
    case = CaseFolder(tmp, "force")
    x = floats((1, 3, 4, 4))
    src = case.npy("x.npy", x)
    out = case.path("exists.png")
    with open(out, "wb") as f:
        f.write(b"not a png")
    _, _, err = featpool("view", src, "-o", out, expect=1)
    require_one_error_line(err, "")
    with open(out, "rb") as f:
        require(f.read() == b"not a png", "the existing output was changed")
    featpool("view", src, "-o", out, "--force", "--cmap", "gray")
    with open(out, "rb") as f:
        got = decode_png(f.read(), out)
    want, k, cols = expected_image(x, cmap="gray")
    require_same_image(got, want, k, cols, "--force", (4, 4))
    upper = case.path("UPPER.PNG")
    featpool("view", src, "-o", upper, "--cmap", "gray")
    with open(upper, "rb") as f:
        require_same_image(decode_png(f.read(), upper), want, k, cols, ".PNG", (4, 4))
    require(sorted(os.listdir(case.dir)) == ["UPPER.PNG", "exists.png", "x.npy"],
            f"files: {sorted(os.listdir(case.dir))}")


# ---------------------------------------------------------------------------------------
# Refusals.

def require_one_error_line(err, name):
    require(err.startswith("featpool: error: ") and err.endswith("\n") and err.count("\n") == 1,
            f"stderr is not one `featpool: error: ` line: {err!r}")
    require(name in err, f"stderr does not name {name}: {err!r}")


def refuse(case, source, args, expect, names=()):
    """featpool view exits `expect`; for exit 1, one error line naming each of `names`; no
    file is added to the case's folder (no output, no temporary file)."""
    before = sorted(os.listdir(case.dir))
    out = case.output("png")
    _, stdout, err = featpool("view", source, "-o", out, *args, expect=expect)
    if expect == 1:
        for name in names:
            require_one_error_line(err, name)
    else:
        require(err.strip(), "a usage error with nothing on stderr")
    after = sorted(os.listdir(case.dir))
    require(after == before, f"files left behind: {sorted(set(after) - set(before))}")


def error_checks(tmp):
    case = CaseFolder(tmp, "errors")
    x = floats((2, 6, 5, 4))
    src = case.npy("x.npy", x)
    vol = case.npy("vol.npy", floats((2, 3, 5, 4, 4)))
    text = case.npy("text.npy", np.array([["ab", "cd"], ["ef", "gh"]] * 3).reshape(1, 3, 2, 2))
    cplx = case.npy("cplx.npy", np.ones((1, 2, 3, 3), dtype=np.complex64))
    npz = case.path("two.npz")
    np.savez(npz, first=floats((1, 2, 3, 3)), second=floats((1, 2, 3, 3)))
    ncl = case.npy("ncl.npy", floats((2, 3, 7)))
    cases = [
        ("a string tensor", text, [], [text]),
        ("a complex tensor", cplx, [], [cplx]),
        ("--sample 2 of 2", src, ["--sample=2"], [src]),
        ("--sample -3 of 2", src, ["--sample=-3"], [src]),
        ("--sample 1 without N", ncl, ["--layout=CHW", "--sample=1"], [ncl]),
        ("--channels 5:2 (empty)", src, ["--channels=5:2"], [src]),
        ("--channels 6: (empty)", src, ["--channels=6:"], [src]),
        ("--channels 2:5:-1 (empty)", src, ["--channels=2:5:-1"], [src]),
        ("--channels 6 of 6", src, ["--channels=6"], [src]),
        ("--channels -7 of 6", src, ["--channels=-7"], [src]),
        ("--depth 5 of 5", vol, ["--depth=5"], [vol]),
        ("--depth -6 of 5", vol, ["--depth=-6"], [vol]),
        ("an NPZ of two tensors", npz, [], [npz, "first", "second"]),
        ("a member's sample out of range", f"{npz}:second", ["--sample=1"], [f"{npz}:second"]),
        ("rank 4 with --layout NCL", src, ["--layout=NCL"], [src]),
        ("rank 3 with --layout NCHW", ncl, ["--layout=NCHW"], [ncl]),
        ("rank 3 with --layout CHWD", ncl, ["--layout=CHWD"], [ncl]),
        ("rank 4 with --layout CHW", src, ["--layout=CHW"], [src]),
    ]
    usage = [
        ("an unknown flag", ["--bogus"]),
        ("--channels a:b", ["--channels=a:b"]),
        ("--channels 1:2:0", ["--channels=1:2:0"]),
        ("--cols 0", ["--cols=0"]),
        ("--tile 0", ["--tile=0"]),
        ("--cmap jet", ["--cmap=jet"]),
        ("--scale x", ["--scale=x"]),
    ]
    checks = [(f"refused, exit 1: {what}",
               lambda source=source, args=args, names=names: refuse(case, source, args, 1, names))
              for what, source, args, names in cases]
    checks += [(f"usage error, exit 2: {what}",
                lambda args=args: refuse(case, src, args, 2)) for what, args in usage]

    def not_png():
        for name in ("out.jpg", "out.png.tmp", "outpng", "out.pn"):
            out = case.path(name)
            featpool("view", src, "-o", out, expect=2)
            require(not os.path.exists(out), f"{name} was written")
    checks.append(("usage error, exit 2: an output not ending in .png", not_png))
    return checks


def main():
    global FEATPOOL, RNG
    args = command_line(__doc__, lambda parser: parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the random inputs"))
    FEATPOOL = args.featpool
    RNG = np.random.default_rng(args.seed)
    print(f"view_test: seed {args.seed}")
    return run_in_temporary_folder("view_test", args.keep, lambda tmp: [
        ("the reference on a case worked out by hand", check_reference),
        ("gray, non-square maps (5x9, 9x5)", lambda: check_gray_non_square(tmp)),
        ("viridis by default, and magma", lambda: check_viridis_and_magma(tmp)),
        ("--scale global over the drawn maps only", lambda: check_global_scale(tmp)),
        ("NaN, infinities, constant and all-NaN channels",
         lambda: check_non_finite_and_constant(tmp)),
        ("maps larger than the tile, and --tile", lambda: check_large_maps_and_tile(tmp)),
        ("64 tiles by default of 100 channels", lambda: check_default_tile_count(tmp)),
        ("--cols, partial last rows, more columns than tiles", lambda: check_cols(tmp)),
        ("--channels ranges, negative bounds, steps, one index", lambda: check_channels(tmp)),
        ("--sample, negative too", lambda: check_sample(tmp)),
        ("negative values as separate arguments",
         lambda: check_negative_values_as_separate_arguments(tmp)),
        ("layouts NHWC, CHW, HW, HWC, CNHW", lambda: check_layouts(tmp)),
        ("NCL: one-pixel-high strips", lambda: check_ncl_strips(tmp)),
        ("NCDHW: --depth and the middle slice", lambda: check_ncdhw_depth(tmp)),
        ("float16, integer ties, uint8, bool, 64-bit integers", lambda: check_dtypes(tmp)),
        ("float64 in the contract's order at rounding ties",
         lambda: check_float64_order_at_ties(tmp)),
        ("FILE:NAME of an NPZ, and an NPZ of one tensor", lambda: check_npz_member(tmp)),
        ("every reader and memory order, a directory, stdin", lambda: check_input_formats(tmp)),
        ("-o - writes the PNG to stdout", lambda: check_stdout(tmp)),
        ("an existing output, --force, .PNG", lambda: check_force_and_extension_case(tmp)),
        *error_checks(tmp),
    ])


if __name__ == "__main__":
    sys.exit(main())
