"""The book's scripts, run by the book's own code and by handgrad, side by side.

    python benchmarks/book_scripts.py ../shared/book1 [--scripts ch05/gradient_check.py,...]

For each script: (1) the book's own code, ``python script.py`` inside a temporary copy of the
book's repository, from the script's folder, with MNIST's verified files copied where the book's
``dataset/mnist.py`` looks for them (so nothing is downloaded; the book's one-off conversion to
its pickle cache is done before any timing); (2) ``handgrad book-run`` on the same, unchanged
script in the given checkout. Both run in fresh processes with matplotlib's Agg backend; the
table shows the key figures each printed (the last lines that matter) and the seconds each took.
Results go to ``benchmarks/results/book_scripts.json`` (with the machine, see machine.py).
Run it under the heavy lock; the long scripts take minutes each (train_convnet.py: tens).
``python benchmarks/book_scripts.py --markdown RESULTS.json ...`` prints README's table from results.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import ROOT, machine_line, write_results  # noqa: E402

SCRIPTS = ["ch05/gradient_check.py", "ch05/train_neuralnet.py", "ch06/batch_norm_gradient_check.py",
           "ch06/optimizer_compare_mnist.py", "ch06/weight_init_compare.py", "ch06/overfit_weight_decay.py",
           "ch06/overfit_dropout.py", "ch07/gradient_check.py", "ch07/train_convnet.py"]


NOT_RUN = "not run"  # a side left out with --sides


def key_figures(script: str, stdout: str) -> str:
    """The lines of a script's output that carry its result: every line of a gradient check,
    the last block of a comparison, the last line of a training run."""
    lines = [line.strip() for line in stdout.splitlines()
             if line.strip() and not line.startswith("train loss:") and line.strip() != "Saved Network Parameters!"]
    if "gradient_check" in script:
        return "; ".join(lines)
    if "compare" in script:
        last = max((i for i, line in enumerate(lines) if line.startswith("===")), default=-1)
        return "; ".join(lines[last:])
    return lines[-1] if lines else ""


def run(command, cwd, timeout) -> dict:
    env = dict(os.environ, MPLBACKEND="Agg")
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "timed out", "seconds": round(time.perf_counter() - start, 1), "stdout": ""}
    seconds = round(time.perf_counter() - start, 1)
    status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
    return {"status": status, "seconds": seconds, "stdout": done.stdout}


def markdown(paths) -> str:
    """README's table from results files written by earlier runs."""
    import json

    lines = ["| Script | The book's code prints | s | handgrad prints | s |", "|---|---|---|---|---|"]
    rows = {}  # a side run again in a later file replaces its earlier figures; the row keeps its place
    for path in paths:
        for row in json.loads(Path(path).read_text())["scripts"]:
            merged = rows.setdefault(row["script"], dict(row))
            for side in ("book", "handgrad"):
                if row[side]["status"] != NOT_RUN:
                    merged[side] = row[side]
    for row in rows.values():
        book, ours = row["book"], row["handgrad"]
        shown = [r["prints"] if r["status"] == "ok" else r["status"] for r in (book, ours)]
        lines.append(f"| `{row['script']}` | {shown[0]} | {book['seconds']} | {shown[1]} | {ours['seconds']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--markdown"]:
        print(markdown(sys.argv[2:]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("book", type=Path, help="a checkout of the book's repository")
    parser.add_argument("--scripts", default=",".join(SCRIPTS), help="comma-separated scripts (default: all nine)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data",
                        help="data root with mnist/ (default: ../shared/data)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per script and side")
    parser.add_argument("--sides", default="book,handgrad",
                        help="which runs to make: book, handgrad or both (default: both)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "book_scripts.json")
    args = parser.parse_args(argv)
    book = args.book.resolve()
    scripts = [s.strip() for s in args.scripts.split(",") if s.strip()]
    print(machine_line())
    rows = []
    with tempfile.TemporaryDirectory(prefix="book-copy-") as temporary:
        copy = Path(temporary) / "book"
        shutil.copytree(book, copy)
        for gz in (args.data_dir / "mnist").glob("*.gz"):
            shutil.copy(gz, copy / "dataset" / gz.name)
        subprocess.run([sys.executable, "-c", "import mnist; mnist.init_mnist()"], cwd=copy / "dataset",
                       check=True, capture_output=True)
        out = Path(temporary) / "handgrad-out"
        sides = {side.strip() for side in args.sides.split(",")}
        skipped = {"status": NOT_RUN, "seconds": 0.0, "stdout": ""}
        for script in scripts:
            books = (run([sys.executable, Path(script).name], copy / Path(script).parent, args.timeout)
                     if "book" in sides else skipped)
            ours = (run([sys.executable, "-m", "handgrad", "book-run", "--out", str(out), "--data-dir",
                         str(args.data_dir), str(book / script)], Path(temporary), args.timeout)
                    if "handgrad" in sides else skipped)
            row = {"script": script,
                   "book": {"status": books["status"], "seconds": books["seconds"],
                            "prints": key_figures(script, books["stdout"])},
                   "handgrad": {"status": ours["status"], "seconds": ours["seconds"],
                                "prints": key_figures(script, ours["stdout"])}}
            rows.append(row)
            for side in ("book", "handgrad"):
                r = row[side]
                print(f"{script:36s} {side:8s} {r['seconds']:8.1f} s  {r['status']:4s}  {r['prints']}", flush=True)
    write_results(args.json, {"book": str(args.book), "scripts": rows})
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
