"""Digits drawn as a person draws them on `handgrad serve`'s page, and how many of them each
model recognises through the page's own path.

    python benchmarks/drawn_digits.py make            # (re)writes src/handgrad/data/drawn_digits.json.gz
    python benchmarks/drawn_digits.py score [--split test] [--data-dir ../shared/data] [--seeds 5] [--unaugmented]
                                            [--model FILE ...] [--json benchmarks/results/drawn_digits.json]

``make`` draws the set, seeded, so the same command gives the same file (up to the last bits of
sin and cos on another processor, far below the file's whole pixels): for each of two splits,
``dev`` (seed 2401: for choosing how drawings are prepared) and ``test`` (seed 2402: held out,
the split reported), 40 drawings of each digit, the styles of a digit taken in turn (STYLES
below: a 1 as one stroke, with a flag, with a flag and a base; a 7 plain, with a bar, with a
serif, with a curved stem; an open and a closed 4; ...). Each drawing is a template's strokes
(in a unit box) under a random smooth wobble, a width from 0.55 to 0.85 of the height, a slant
from -12 to +22 degrees, a rotation (sd 3 degrees), a height from 100 to 250 pixels, a position
anywhere on the 280x280 canvas, and a pen 0.75 to 1.3 times the page's (280/13 pixels); each
stroke is then sampled as a pointer reports it, every 4 to 10 pixels of its path, with 0.6
pixels of hand tremor, and stored in whole canvas pixels (a mouse on the page, whose canvas is
shown at its own size, reports whole pixels). The page's canvas draws these strokes
as handgrad.serve.drawn.render does.

``score`` trains the model README's first command trains (``handgrad train``, no options: an
MLP on the embedded 8x8 digits) for ``--seed 0`` to ``--seeds - 1`` (seed 0 is what a newcomer
gets), and an MLP on MNIST for 3 epochs (``handgrad train --dataset mnist --epochs 3``) when
MNIST is found under ``--data-dir``, plus every ``--model NAME=FILE`` given; renders each
drawing of the split as the page's canvas does, sends it as the page sends it (a PNG data URL),
prepares it with the server's own code (handgrad.serve.models.pixels_from_drawing, as handgrad
predict does for a file), and prints the share of each digit recognised and of all. It writes
the table with the commit and machine (benchmarks/machine.py) to --json.

The first run warps every training batch (``--augment warp``, the default on the digits:
handgrad.data.images.warp_digits, the batch's generator seeded by (seed, step)).
``--unaugmented`` also trains each seed with ``--augment none``, to show what the warping buys.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
DATA_FILE = ROOT / "src" / "handgrad" / "data" / "drawn_digits.json.gz"
SEEDS = {"dev": 2401, "test": 2402}
PER_DIGIT = 40
CANVAS = 280
PAGE_PEN = CANVAS / 13
UNIT = 1  # stored coordinates are whole canvas pixels

# --- the strokes of each style, in a unit box (x right, y down; y from 0 to 1) --------------------


def arc(cx, cy, rx, ry, start, end, n=40):
    """Points of an ellipse from angle ``start`` to ``end`` (degrees; 0 is right, 90 down, as
    on a screen: increasing angles turn clockwise)."""
    a = np.radians(np.linspace(start, end, n))
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=1)


def bezier(p0, p1, p2, n=24):
    """A quadratic Bezier curve from p0 to p2 pulled towards p1."""
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.asarray(p, dtype=float) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def poly(*points):
    return np.asarray(points, dtype=float)


def join(*pieces):
    return np.concatenate([np.atleast_2d(p) for p in pieces])


def zero(rng, style):
    over = rng.uniform(5, 35)
    if style == "counterclockwise":
        return [arc(0.5, 0.5, 0.5, 0.5, -90, -450 - over)]
    if style == "clockwise":
        return [arc(0.5, 0.5, 0.5, 0.5, -90, 270 + over)]
    gap = rng.uniform(20, 45)  # "open": the pen lifted before the loop closed
    return [arc(0.5, 0.5, 0.5, 0.5, -90 - gap / 2, -450 + gap / 2)]


def one(rng, style):
    top, x = 0.0, 0.55
    if style == "stroke":
        return [poly((x, top), (x - rng.uniform(0, 0.08), 1.0))]
    flag = rng.uniform(0.15, 0.35)
    stem = [poly((x - rng.uniform(0.25, 0.45), flag), (x, top), (x - rng.uniform(0, 0.05), 1.0))]
    if style == "flag":
        return stem
    base = rng.uniform(0.3, 0.45)  # "flag_base"
    return stem + [poly((x - base, 1.0), (x + base, 1.0))]


def two(rng, style):
    base = poly((0.02, 1.0), (rng.uniform(0.85, 1.0), 1.0))
    if style == "angular":
        return [join(poly((0.05, 0.2), (0.5, 0.0), (0.95, 0.22), (0.05, 0.97)), base)]
    top = arc(0.5, 0.28, 0.45, 0.28, 195, 380)
    if style == "loop":
        loop = arc(0.16, 0.88, 0.1, 0.1, -60, -400)
        return [join(top, poly((0.22, 0.8)), loop, base)]
    return [join(top, poly((0.04, 0.98)), base)]  # "round"


def three(rng, style):
    lower = arc(0.5, 0.72, 0.47, 0.28, -100, 150)
    if style == "flat_top":
        return [join(poly((0.08, 0.0), (0.92, 0.0), (0.35, rng.uniform(0.38, 0.46))), lower)]
    upper = arc(0.5, 0.24, 0.4, 0.24, 200, 450 - rng.uniform(0, 30))
    return [join(upper, lower)]  # "round"


def four(rng, style):
    cross = rng.uniform(0.58, 0.7)
    if style == "closed":
        x = rng.uniform(0.6, 0.72)
        return [poly((x, 0.0), (0.02, cross), (0.98, cross)), poly((x, 0.0), (x, 1.0))]
    if style == "one_stroke":
        x = rng.uniform(0.6, 0.72)
        return [poly((x, 1.0), (x, 0.0), (0.02, cross), (0.98, cross))]
    x = rng.uniform(0.62, 0.75)  # "open": two downward strokes that never meet at the top
    return [poly((0.12, 0.0), (0.08, cross), (0.98, cross)), poly((x, 0.05), (x, 1.0))]


def five(rng, style):
    bar = poly((0.2, 0.0), (rng.uniform(0.8, 0.98), 0.0))
    neck = rng.uniform(0.38, 0.48)
    belly = arc(0.47, 0.7, 0.45, 0.3, -150, 150)
    if style == "angular":
        body = poly((0.2, 0.0), (0.14, neck), (0.72, neck), (0.95, 0.68), (0.72, 0.98), (0.05, 0.93))
        return [body, bar]
    body = join(poly((0.2, 0.0), (0.14, neck)), belly)
    if style == "one_stroke":
        return [join(bar[::-1], body)]
    return [body, bar]  # "classic": the bar added last


def six(rng, style):
    loop = arc(0.5, 0.72, 0.45, 0.28, 180, -175)
    if style == "straight":
        return [join(poly((rng.uniform(0.6, 0.8), 0.0)), loop)]
    return [join(bezier((0.8, 0.03), (0.1, 0.05), (0.05, 0.72)), loop)]  # "curved"


def seven(rng, style):
    foot = (rng.uniform(0.3, 0.5), 1.0)
    if style == "serif":
        return [poly((0.02, 0.18), (0.02, 0.0), (0.98, 0.0), foot)]
    if style == "curved":
        return [join(poly((0.02, 0.0), (0.98, 0.0)), bezier((0.98, 0.0), (0.5, 0.4), foot))]
    strokes = [poly((0.02, 0.0), (0.98, 0.0), foot)]
    if style == "bar":
        y = rng.uniform(0.45, 0.55)
        strokes.append(poly((0.3, y), (0.9, y)))
    return strokes  # "plain"


def eight(rng, style):
    if style == "two_loops":
        return [arc(0.5, 0.24, 0.36, 0.24, -90, -450), arc(0.5, 0.72, 0.47, 0.28, -90, 270)]
    t = np.linspace(-0.3, 2 * np.pi + 0.2, 90)  # "figure": one stroke, a vertical lemniscate
    y = 0.5 - 0.5 * np.cos(t)
    x = 0.5 - 0.9 * np.sin(t) * np.cos(t) * np.where(y < 0.5, 0.8, 1.0)
    return [np.stack([x, y], axis=1)]


def nine(rng, style):
    loop = arc(0.5, 0.28, 0.45, 0.28, 0, -360)
    if style == "curved":
        return [join(loop, bezier((0.95, 0.28), (0.95, 0.95), (0.4, 1.0)))]
    return [join(loop, poly((rng.uniform(0.8, 0.95), 1.0)))]  # "straight"


#: Each digit's drawing function and its styles, taken in turn.
STYLES = {
    0: (zero, ("counterclockwise", "clockwise", "open")),
    1: (one, ("stroke", "flag", "flag_base")),
    2: (two, ("round", "loop", "angular")),
    3: (three, ("round", "flat_top")),
    4: (four, ("open", "closed", "one_stroke")),
    5: (five, ("classic", "one_stroke", "angular")),
    6: (six, ("curved", "straight")),
    7: (seven, ("plain", "bar", "serif", "curved")),
    8: (eight, ("figure", "two_loops")),
    9: (nine, ("straight", "curved")),
}


# --- from a template to pointer positions on the canvas --------------------------------------------


def wobble(rng):
    """A smooth random displacement of the unit box (a hand is never a template)."""
    amplitude, frequency, phase = rng.uniform(0, 0.045, (2, 2)), rng.uniform(0.4, 1.4, (2, 2)), rng.uniform(0, 2 * np.pi, (2, 2))

    def move(p):
        x, y = p[:, 0], p[:, 1]
        dx = amplitude[0, 0] * np.sin(2 * np.pi * frequency[0, 0] * y + phase[0, 0]) \
            + amplitude[0, 1] * np.sin(2 * np.pi * frequency[0, 1] * x + phase[0, 1])
        dy = amplitude[1, 0] * np.sin(2 * np.pi * frequency[1, 0] * x + phase[1, 0]) \
            + amplitude[1, 1] * np.sin(2 * np.pi * frequency[1, 1] * y + phase[1, 1])
        return np.stack([x + dx, y + dy], axis=1)
    return move


def pointer_samples(stroke, rng):
    """The positions a pointer reports along ``stroke`` (canvas pixels): every 4 to 10 pixels
    of its path (the hand's speed varies), with 0.6 pixels of tremor; the ends kept."""
    steps = np.hypot(*np.diff(stroke, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    if along[-1] == 0:
        return stroke[:1]
    marks = [0.0]
    while marks[-1] < along[-1]:
        marks.append(marks[-1] + rng.uniform(4, 10))
    marks[-1] = along[-1]
    points = np.stack([np.interp(marks, along, stroke[:, 0]), np.interp(marks, along, stroke[:, 1])], axis=1)
    return points + rng.normal(0, 0.6, points.shape)


def draw_digit(digit: int, style: str, rng) -> dict:
    """One drawing of ``digit`` in ``style``: ``{"label", "style", "pen", "strokes"}`` with the
    strokes as the file stores them (flat x, y lists of whole pixels)."""
    make, _ = STYLES[digit]
    strokes = [np.asarray(s, dtype=float) for s in make(rng, style)]
    move = wobble(rng)
    width = rng.uniform(0.55, 0.85)
    slant, rotation = np.radians(rng.uniform(-12, 22)), np.radians(rng.normal(0, 3))
    shaped = []
    for s in strokes:
        p = move(s)
        x, y = (p[:, 0] - 0.5) * width, p[:, 1] - 0.5        # centred, height 1
        x = x - np.tan(slant) * y                               # top to the right for a positive slant
        c, s_ = np.cos(rotation), np.sin(rotation)
        shaped.append(np.stack([c * x - s_ * y, s_ * x + c * y], axis=1))
    height, pen = rng.uniform(100, 250), PAGE_PEN * rng.uniform(0.75, 1.3)
    points = np.concatenate(shaped)
    low, high = points.min(axis=0), points.max(axis=0)
    room = CANVAS - pen - 8                                     # a tall or wide, slanted digit stays on the canvas
    scale = min(height / (high[1] - low[1]), room / (high[1] - low[1]), room / (high[0] - low[0]))
    margin = pen / 2 + 2
    size = (high - low) * scale
    corner = np.array([rng.uniform(margin, CANVAS - margin - size[0]), rng.uniform(margin, CANVAS - margin - size[1])])
    stored = []
    for s in shaped:
        canvas_points = np.clip(pointer_samples((s - low) * scale + corner, rng), 0, CANVAS)
        stored.append([int(v) for v in np.round(canvas_points / UNIT).ravel()])
    return {"label": digit, "style": style, "pen": round(float(pen), 2), "strokes": stored}


def make_split(seed: int, per_digit: int = PER_DIGIT) -> list[dict]:
    """``per_digit`` drawings of each digit, digit by digit, the digit's styles in turn."""
    rng = np.random.default_rng(seed)
    return [draw_digit(digit, STYLES[digit][1][k % len(STYLES[digit][1])], rng)
            for digit in range(10) for k in range(per_digit)]


def make_table(per_digit: int = PER_DIGIT) -> dict:
    return {"format": "handgrad drawn digits 1", "canvas": CANVAS, "unit": UNIT,
            "made_by": "python benchmarks/drawn_digits.py make",
            "splits": {split: {"seed": seed, "drawings": make_split(seed, per_digit)} for split, seed in SEEDS.items()}}


def write_set(path: Path = DATA_FILE) -> Path:
    body = gzip.compress(json.dumps(make_table(), separators=(",", ":")).encode("utf-8"), compresslevel=9, mtime=0)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


# --- scoring --------------------------------------------------------------------------------------


def train(out: Path, *options: str) -> Path:
    """``handgrad train OPTIONS --out OUT`` as a user runs it; its model file."""
    subprocess.run([sys.executable, "-m", "handgrad", "train", *options, "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return out / "model.safetensors"


def score_file(path: Path, split: str) -> dict:
    """The model file's share of the split recognised, as the page would show it."""
    from handgrad.serve.models import load_served_model

    served = load_served_model(path, "model", copies=1)
    result = served.drawn_digits(split)
    return {"dataset": served.dataset, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("make", help="write the drawn digits (both splits) to src/handgrad/data/drawn_digits.json.gz")
    score = commands.add_parser("score", help="the share each model recognises")
    score.add_argument("--split", choices=("dev", "test"), default="test")
    score.add_argument("--seeds", type=int, default=5, help="train seeds 0..SEEDS-1 of the first run (default 5)")
    score.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"), help="a data root holding mnist/")
    score.add_argument("--model", action="append", default=[], metavar="NAME=FILE",
                       help="another model file to score, named NAME in the table (repeatable)")
    score.add_argument("--no-mnist", action="store_true", help="skip the MNIST MLP")
    score.add_argument("--unaugmented", action="store_true",
                       help="also train each seed with --augment none (see above)")
    score.add_argument("--keep", metavar="DIR", help="keep the trained models in DIR (run0, run1, ... as in the table)")
    score.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "drawn_digits.json"))
    args = parser.parse_args()
    if args.command == "make":
        print(f"wrote {write_set()}")
        return
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    named = [model.partition("=") for model in args.model]
    for name, equals, path in named:
        if not equals or not name or not Path(path).is_file():
            parser.error(f"--model {name}{equals}{path}: expected NAME=FILE naming a model file")
    from machine import describe, machine_line, write_results

    machine = describe()
    print(machine_line(machine))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or scratch
        runs = [(f"handgrad train --seed {seed}", ("--seed", str(seed))) for seed in range(args.seeds)]
        if args.unaugmented:
            runs += [(f"handgrad train --seed {seed} --augment none", ("--seed", str(seed), "--augment", "none"))
                     for seed in range(args.seeds)]
        mnist = Path(args.data_dir or "") / "mnist" / "t10k-images-idx3-ubyte.gz"
        if not args.no_mnist and args.data_dir and mnist.is_file():
            runs.append(("handgrad train --dataset mnist --epochs 3",
                         ("--dataset", "mnist", "--epochs", "3", "--data-dir", args.data_dir)))
        for i, (name, options) in enumerate(runs):
            started = time.perf_counter()
            path = train(Path(folder) / f"run{i}", *options)
            rows.append({"model": name, "train_seconds": round(time.perf_counter() - started, 1),
                         **score_file(path, args.split)})
        for name, _, path in named:
            rows.append({"model": name, **score_file(Path(path), args.split)})
    header = f"{'model':44} {'dataset':8} " + " ".join(f"{d:>4}" for d in range(10)) + "   all"
    print(f"drawn digits, {args.split} split ({rows[0]['count']} drawings): share recognised")
    print(header)
    for row in rows:
        print(f"{row['model'][:44]:44} {row['dataset']:8} " + " ".join(f"{p:4.0%}" for p in row["per_digit"])
              + f" {row['recognised']:6.1%}")
    summary = {}
    for what, group in (("first_run", rows[:args.seeds]), ("first_run_unaugmented", rows[args.seeds:2 * args.seeds])):
        if what == "first_run_unaugmented" and not args.unaugmented:
            continue
        shares = [row["recognised"] for row in group]
        summary[what] = {"mean": float(np.mean(shares)), "lowest": float(min(shares)), "seed_0": shares[0]}
        print(f"{what.replace('_', ' ')}, seeds 0-{args.seeds - 1}: mean {np.mean(shares):.1%}, "
              f"lowest {min(shares):.1%}, seed 0 {shares[0]:.1%}")
    write_results(args.json, {"benchmark": "drawn_digits", "split": args.split, "rows": rows, **summary,
                              "command": " ".join(["python benchmarks/drawn_digits.py", *sys.argv[1:]])})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
