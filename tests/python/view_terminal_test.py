"""Checks of `featpool view`'s terminal preview, run under a pseudo-terminal made by
util-linux's `script`, as a user at a terminal would see it.

Usage: /usr/bin/python3 view_terminal_test.py FEATPOOL [--keep]

- On a terminal, without -o, view draws the grid with upper half blocks in 24-bit colour;
  decoding the escape sequences gives back, pixel for pixel, the PNG that `-o` writes.
- A grid wider than the terminal is shrunk to its width.
- NO_COLOR (set and not empty) draws the ASCII ramp instead, exactly as documented.
- `--term` draws the same text into a pipe; without -o or --term, a pipe is a usage error,
  and so is `-o -` on a terminal.

Needs Debian's interpreter (/usr/bin/python3) with numpy and PIL (python3-pil).
The last line is `view_terminal_test: N passed, M failed`; the exit code is 1 on any failure.
"""

import os
import re
import shlex
import subprocess
import sys

import numpy as np
from PIL import Image

sys.dont_write_bytecode = True  # no __pycache__ in the source tree when CTest runs this
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from named_checks import command_line, require, run_command, run_in_temporary_folder  # noqa: E402,E501

FEATPOOL = ""
TIMEOUT_S = 60
RAMP = " .,:;ox%#@"
UPPER_HALF = "\u2580"
ESCAPE = re.compile(r"\x1b\[(38|48);2;(\d+);(\d+);(\d+)m|\x1b\[0m|\u2580")


def on_terminal(args, columns, env=None):
    """Runs featpool on a pseudo-terminal `columns` wide; returns (exit code, text), with
    the terminal's CR LF line ends made LF."""
    command = f"stty cols {columns} rows 60; exec {shlex.join([FEATPOOL, *args])}"
    done = subprocess.run(["script", "-qefc", command, "/dev/null"], capture_output=True,
                          timeout=TIMEOUT_S, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout.decode("utf-8").replace("\r\n", "\n")


def featpool(*args, expect=0, env=None):
    if env is None:
        code, stdout, stderr = run_command([FEATPOOL, *args], expect, TIMEOUT_S)
        return code, stdout, stderr
    done = subprocess.run([FEATPOOL, *args], capture_output=True, timeout=TIMEOUT_S,
                          env={**os.environ, **env})
    require(done.returncode == expect, f"exit {done.returncode}, expected {expect}: "
                                       f"{done.stderr.decode()}")
    return done.returncode, done.stdout, done.stderr.decode()


def decode_half_blocks(lines):
    """The pixels the colour lines show: a list of rows of RGB tuples, two per line (the
    last line's bottom half is None when its background colour was not set)."""
    rows = []
    for line in lines:
        top, bottom = [], []
        foreground = background = None
        for match in ESCAPE.finditer(line):
            token = match.group(0)
            if token == UPPER_HALF:
                top.append(foreground)
                bottom.append(background)
            elif token == "\x1b[0m":
                foreground = background = None
            else:
                colour = tuple(int(match.group(i)) for i in (2, 3, 4))
                if match.group(1) == "38":
                    foreground = colour
                else:
                    background = colour
        require(ESCAPE.sub("", line) == "", f"unexpected text in a grid line: {line!r}")
        rows.append(top)
        rows.append(bottom)
    return rows


def png_pixels(path):
    image = Image.open(path)
    require(image.mode == "RGB", f"{path}: mode {image.mode}")
    return np.asarray(image)


def small_maps(tmp):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 4, 3, 3)).astype(np.float32)
    x[0, 1, 2, 0] = np.nan
    path = os.path.join(tmp, "small.npy")
    np.save(path, x)
    return path


def check_colour_matches_png(tmp):
    source = small_maps(tmp)
    flags = ["--tile", "3", "--cols", "2"]
    reference = os.path.join(tmp, "small.png")
    featpool("view", source, "-o", reference, *flags)
    expected = png_pixels(reference)
    require(expected.shape == (9, 9, 3), f"PNG shape {expected.shape}")
    code, text = on_terminal(["view", source, *flags], 80)
    require(code == 0, f"exit {code}: {text}")
    lines = text.rstrip("\n").split("\n")
    require(lines[0].startswith(f"{source}: sample 0, 4 of 4 channels"),
            f"caption: {lines[0]!r}")
    rows = decode_half_blocks(lines[1:])
    require(len(lines) - 1 == 5, f"{len(lines) - 1} grid lines, expected 5 for 9 pixel rows")
    require(all(cell is None for cell in rows[9]), "the last line's lower halves were set")
    for y in range(9):
        for x in range(9):
            got = rows[y][x]
            want = tuple(int(v) for v in expected[y, x])
            require(got == want, f"pixel ({x}, {y}): terminal {got}, PNG {want}")


def check_shrinks_to_width(tmp):
    x = np.random.default_rng(6).random((1, 16, 7, 7), dtype=np.float32)
    source = os.path.join(tmp, "wide.npy")
    np.save(source, x)
    code, text = on_terminal(["view", source], 50)
    require(code == 0, f"exit {code}: {text}")
    widths = {line.count(UPPER_HALF) for line in text.rstrip("\n").split("\n")[1:]}
    # 4 tiles of 63 pixels would be 257 wide; shrunk to 11 pixels each, 49.
    require(widths == {49}, f"line widths {sorted(widths)}, expected 49 for 50 columns")


def check_no_color_ascii(tmp):
    # One-pixel-high maps at k = 1: the ASCII grid has the PNG's geometry.
    x = np.random.default_rng(7).standard_normal((1, 3, 5)).astype(np.float32)
    x[0, 2, 3] = np.nan
    source = os.path.join(tmp, "strips.npy")
    np.save(source, x)
    flags = ["--tile", "5", "--cols", "3", "--cmap", "gray"]
    reference = os.path.join(tmp, "strips.png")
    featpool("view", source, "-o", reference, *flags)
    pixels = png_pixels(reference)
    middle = ""
    for px in pixels[1]:
        if tuple(px) == (32, 32, 32):
            middle += "|"
        elif tuple(px) == (255, 0, 255):
            middle += "?"
        else:
            middle += RAMP[int(px[0]) * 10 // 256]
    frame = "+-----+-----+-----+"
    code, text = on_terminal(["view", source, *flags], 80, env={"NO_COLOR": "1"})
    require(code == 0, f"exit {code}: {text}")
    require("\x1b" not in text, "escape sequences despite NO_COLOR")
    lines = text.rstrip("\n").split("\n")[1:]
    require(lines == [frame, middle, frame], f"got {lines}, expected {[frame, middle, frame]}")
    # NO_COLOR set but empty does not count (no-color.org).
    code, text = on_terminal(["view", source, *flags], 80, env={"NO_COLOR": ""})
    require("\x1b[38;2;" in text, "no colour with an empty NO_COLOR")


def check_term_into_a_pipe(tmp):
    source = small_maps(tmp)
    _, piped, _ = featpool("view", source, "--term", env={"COLUMNS": "30"})
    code, text = on_terminal(["view", source], 30)
    require(code == 0, f"exit {code}")
    require(piped.decode() == text, "--term into a pipe differs from the terminal's text")
    # -o and --term together: the PNG and the preview.
    both = os.path.join(tmp, "both.png")
    _, piped, _ = featpool("view", source, "-o", both, "--term")
    require(os.path.exists(both) and UPPER_HALF in piped.decode(), "-o with --term")


def check_usage_errors(tmp):
    source = small_maps(tmp)
    _, stdout, stderr = featpool("view", source, expect=2)
    require(stdout == b"" and stderr.count("\n") == 1 and "--term" in stderr,
            f"a pipe without -o or --term: {stderr!r}")
    code, text = on_terminal(["view", source, "-o", "-"], 80)
    require(code == 2 and "terminal" in text and "\x89PNG" not in text,
            f"-o - on a terminal: exit {code}, {text!r}")
    featpool("view", source, "-o", "-", "--term", expect=2)


def all_checks(tmp):
    return [
        ("a terminal gets half blocks that decode to the PNG's pixels",
         lambda: check_colour_matches_png(tmp)),
        ("a grid wider than the terminal is shrunk to its width",
         lambda: check_shrinks_to_width(tmp)),
        ("NO_COLOR draws the ASCII ramp, framed", lambda: check_no_color_ascii(tmp)),
        ("--term draws the same text into a pipe", lambda: check_term_into_a_pipe(tmp)),
        ("no destination, or PNG bytes onto a terminal: usage errors",
         lambda: check_usage_errors(tmp)),
    ]


def main():
    global FEATPOOL
    args = command_line(__doc__)
    FEATPOOL = args.featpool
    return run_in_temporary_folder("view_terminal_test", args.keep, all_checks)


if __name__ == "__main__":
    sys.exit(main())
