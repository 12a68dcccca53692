"""Writes the golden pooling cases: tiny inputs, hand-derived expected outputs, cases.json.

    /usr/bin/python3 tests/golden/make_golden.py

Every expected value below is derived by hand from PyTorch's adaptive window rule: for input
length L and output length S, window i covers [floor(i*L/S), ceil((i+1)*L/S)). Nothing here
runs featpool or torch; pool_outputs_test.py pools each input with the recorded flags and
requires the output to be bit-identical (same dtype, shape and bytes of every value) to the
expected file. The files are byte-for-byte reproducible (np.save writes no timestamps).
"""

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NAN = np.nan
INF = np.inf

CASES = []


def case(name, x, args, expected, note):
    """Records a case: input, featpool flags, hand-derived expected output."""
    CASES.append((name, x, args, expected, note))


# 1. L=5 -> S=3 average over arange(5) (float64 in, float64 out under --dtype auto).
#    i=0: [floor(0*5/3), ceil(1*5/3)) = [0, 2) -> (0+1)/2   = 0.5
#    i=1: [floor(1*5/3), ceil(2*5/3)) = [1, 4) -> (1+2+3)/3 = 2.0
#    i=2: [floor(2*5/3), ceil(3*5/3)) = [3, 5) -> (3+4)/2   = 3.5
case("avg_1d_5to3",
     np.arange(5, dtype=np.float64).reshape(1, 1, 5),
     ["--op", "avg", "--size", "3", "--layout", "NCL"],
     np.array([0.5, 2.0, 3.5], dtype=np.float64).reshape(1, 1, 3),
     "overlapping windows [0,2) [1,4) [3,5)")

# 2. 4x4 -> 3x3 max, int8, layout HW (no N, no C); max of integers keeps int8.
#    L=4, S=3: i=0 [0, ceil(4/3)=2), i=1 [floor(4/3)=1, ceil(8/3)=3), i=2 [floor(8/3)=2, 4)
#    so rows and columns windows are {0,1}, {1,2}, {2,3}. Input (values 0..15 scrambled):
#        7 12  0  5
#        3 14  9  1
#       11  2 15  6
#        8 13  4 10
#    out[0][0] = max{7,12,3,14} = 14    out[0][1] = max{12,0,14,9} = 14
#    out[0][2] = max{0,5,9,1}   = 9     out[1][0] = max{3,14,11,2} = 14
#    out[1][1] = max{14,9,2,15} = 15    out[1][2] = max{9,1,15,6}  = 15
#    out[2][0] = max{11,2,8,13} = 13    out[2][1] = max{2,15,13,4} = 15
#    out[2][2] = max{15,6,4,10} = 15
case("max_2d_4x4to3x3_int8",
     np.array([[7, 12, 0, 5], [3, 14, 9, 1], [11, 2, 15, 6], [8, 13, 4, 10]], dtype=np.int8),
     ["--op", "max", "--size", "3x3", "--layout", "HW"],
     np.array([[14, 14, 9], [14, 15, 15], [13, 15, 15]], dtype=np.int8),
     "overlapping 2x2 windows, int8 kept by max")

# 3. Output larger than the input: L=2 -> S=5 average, float32 in, float32 out.
#    i=0: [floor(0/5)=0, ceil(2/5)=1) -> x0          = 1.0
#    i=1: [floor(2/5)=0, ceil(4/5)=1) -> x0          = 1.0
#    i=2: [floor(4/5)=0, ceil(6/5)=2) -> (x0+x1)/2   = 2.5
#    i=3: [floor(6/5)=1, ceil(8/5)=2) -> x1          = 4.0
#    i=4: [floor(8/5)=1, ceil(10/5)=2) -> x1         = 4.0
case("avg_1d_2to5_float32",
     np.array([1.0, 4.0], dtype=np.float32).reshape(1, 1, 2),
     ["--op", "avg", "--size", "5"],
     np.array([1.0, 1.0, 2.5, 4.0, 4.0], dtype=np.float32).reshape(1, 1, 5),
     "S > L: windows repeat; default layout NCL for rank 3")

# 4. Max with a NaN window: L=6 -> S=3, windows [0,2) [2,4) [4,6).
#    {1, NaN} -> NaN (max propagates NaN);  {3, 2} -> 3;  {-Inf, 0} -> 0.
case("max_1d_nan_window",
     np.array([1.0, NAN, 3.0, 2.0, -INF, 0.0], dtype=np.float32).reshape(1, 1, 6),
     ["--op", "max", "--size", "3", "--layout", "NCL"],
     np.array([NAN, 3.0, 0.0], dtype=np.float32).reshape(1, 1, 3),
     "NaN in a window gives NaN; -Inf loses to 0")

# 5. Average with infinities: L=6 -> S=3, windows [0,2) [2,4) [4,6), float64.
#    {1, +Inf} -> +Inf;  {+Inf, -Inf} -> NaN (Inf - Inf);  {2, 3} -> 2.5.
case("avg_1d_inf_windows",
     np.array([1.0, INF, INF, -INF, 2.0, 3.0], dtype=np.float64).reshape(1, 1, 6),
     ["--op", "avg", "--size", "3", "--layout", "NCL"],
     np.array([INF, NAN, 2.5], dtype=np.float64).reshape(1, 1, 3),
     "+Inf alone gives +Inf, +Inf with -Inf gives NaN")

# 6. Global average of NHWC with --flatten -> (N, C). x[n,h,w,c] = 100n + 10c + (2h + w),
#    so each (n, c) averages 100n + 10c + {0,1,2,3}: mean 100n + 10c + 1.5.
x6 = np.zeros((2, 2, 2, 3), dtype=np.float64)
for n in range(2):
    for h in range(2):
        for w in range(2):
            for c in range(3):
                x6[n, h, w, c] = 100 * n + 10 * c + (2 * h + w)
case("avg_global_nhwc_flatten",
     x6,
     ["--layout", "NHWC", "--flatten"],
     np.array([[1.5, 11.5, 21.5], [101.5, 111.5, 121.5]], dtype=np.float64),
     "default --size 1, channels last, (N, C) output")

# 7. `_` keeps an axis: HW (2, 4) with --size _x2: rows kept, columns L=4 -> S=2, windows
#    [0,2) [2,4):  [1,2,3,4] -> [1.5, 3.5];  [10,20,30,40] -> [15, 35].
case("avg_2d_keep_rows",
     np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]], dtype=np.float64),
     ["--op", "avg", "--size", "_x2", "--layout", "HW"],
     np.array([[1.5, 3.5], [15.0, 35.0]], dtype=np.float64),
     "_ keeps an axis as PyTorch's None")

# 8. Bool: L=4 -> S=2, windows [0,2) [2,4) over [True, False, False, False].
#    max keeps bool: [True, False]; avg is float32: [0.5, 0.0].
bools = np.array([True, False, False, False]).reshape(1, 1, 4)
case("max_1d_bool", bools, ["--op", "max", "--size", "2"],
     np.array([True, False]).reshape(1, 1, 2), "bool max keeps bool")
case("avg_1d_bool", bools, ["--op", "avg", "--size", "2"],
     np.array([0.5, 0.0], dtype=np.float32).reshape(1, 1, 2), "bool pooled as 0/1, float32")

# 9. uint8 average, L=5 -> S=2: i=0 [0, ceil(5/2)=3), i=1 [floor(5/2)=2, 5).
#    (10+20+30)/3 = 20 exactly; (30+40+255)/3 = 325/3 = 108.333..., which float32 rounds to
#    108.33333587646484375: in [64, 128) float32's spacing is 2^-17, and 108.333... * 2^17 =
#    14199466.67 rounds up to 14199467, so the value is 14199467 / 2^17.
case("avg_1d_uint8_nondivisible",
     np.array([10, 20, 30, 40, 255], dtype=np.uint8).reshape(1, 1, 5),
     ["--op", "avg", "--size", "2", "--layout", "NCL"],
     np.array([20.0, 14199467 / 2**17], dtype=np.float32).reshape(1, 1, 2),
     "windows [0,3) [2,5); average in float64, rounded once to float32")

# 10. 3-D global average of arange(8) in NCDHW (1,1,2,2,2): (0+...+7)/8 = 3.5; and the max
#     is 7 (float32 in, float32 out).
x10 = np.arange(8, dtype=np.float32).reshape(1, 1, 2, 2, 2)
case("avg_3d_global", x10, ["--op", "avg"],
     np.array([3.5], dtype=np.float32).reshape(1, 1, 1, 1, 1), "rank 5 defaults to NCDHW")
case("max_3d_global", x10, ["--op", "max", "--size", "1x1x1"],
     np.array([7.0], dtype=np.float32).reshape(1, 1, 1, 1, 1), "3-D max")

# 11. --dtype float16: average of [1, 2, 4] = 7/3 = 2.333...; float16 has 10 fraction bits,
#     spacing 2^-9 in [2, 4): 7/3 * 2^9 = 1194.67 -> 1195, so 1195 / 512 = 2.333984375.
case("avg_1d_to_float16",
     np.array([1.0, 2.0, 4.0], dtype=np.float32).reshape(1, 1, 3),
     ["--op", "avg", "--size", "1", "--dtype", "float16"],
     np.array([1195 / 512], dtype=np.float16).reshape(1, 1, 1),
     "explicit --dtype float16, rounded once")

# 12. Batch of 0: (0, 2, 3, 3) -> (0, 2, 2, 2) float32, no values.
case("max_batch0", np.zeros((0, 2, 3, 3), dtype=np.float32), ["--op", "max", "--size", "2"],
     np.zeros((0, 2, 2, 2), dtype=np.float32), "empty batch gives an empty output")


def main():
    manifest = []
    for name, x, args, expected, note in CASES:
        np.save(os.path.join(HERE, f"{name}.in.npy"), x)
        np.save(os.path.join(HERE, f"{name}.expected.npy"), expected)
        manifest.append({"name": name, "input": f"{name}.in.npy",
                         "expected": f"{name}.expected.npy", "args": args, "note": note})
    with open(os.path.join(HERE, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {len(CASES)} golden cases to {HERE}")


if __name__ == "__main__":
    main()
