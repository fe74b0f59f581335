"""How the defaults of `handgrad train` (an MLP on the embedded digits) were chosen: by
cross-validation on the training split alone; the test split is read only once, at the end,
to measure the chosen defaults.

    python benchmarks/choose_defaults.py search    # 5-fold CV on the 1438 training digits
    python benchmarks/choose_defaults.py measure   # `handgrad train` as shipped, init seeds 0-4, test split

``search`` trains every setting of the grid below on four fifths of the training split and
scores it on the remaining fifth, for each of five stratified folds (the init seed is the fold's
index), and prints every setting's mean validation accuracy and training time, best first. It
picks the setting with the highest mean validation accuracy; equal accuracies go to the cheaper
(fewer epochs times weights). The grid stops at sizes that train in a few seconds (the first
run must be quick), so every setting in it is affordable; the training times are shown for
information only (on a shared machine they vary too much to decide by). It never loads the
test images. Results: benchmarks/results/choose_defaults_search.json.

``measure`` runs the command a newcomer runs, ``handgrad train`` with no options (so with the
defaults written in src/handgrad/registry.py after the search), for ``--seed 0`` to ``4``, and
reports the test accuracy of each, their mean and the wall time. Results:
benchmarks/results/choose_defaults_measure.json.

The grid: width and depth of the hidden layers, Adam's learning rate, a constant or a cosine
learning-rate schedule, the number of epochs (for a constant rate, 30, 60 and 100 epochs are
read from one 100-epoch run, which is the same run stopped earlier), and dropout. The batch
size stays 32 and the inputs stay the pixel counts scaled to [0, 1]: standardising them would
need a preprocessing step stored in the model file, which `handgrad train` does not have.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import handgrad as hg
from handgrad.data import load_dataset
from machine import machine_line, write_results

RESULTS = Path(__file__).resolve().parent / "results"
FOLDS = 5
BATCH_SIZE = 32
HIDDEN = ([100], [256], [512], [256, 256])
LEARNING_RATES = (1e-3, 3e-3)
DROPOUTS = (0.0,)
CONSTANT_EPOCHS = (30, 60, 100)
COSINE_EPOCHS = (60,)


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold index per sample: every class dealt round-robin over the folds, in a fixed random order."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold[members] = np.arange(len(members)) % folds
    return fold


def weights(hidden: str) -> int:
    """Weights of the 64-...-10 network whose hidden widths are ``hidden`` ("256-256")."""
    sizes = [64, *map(int, hidden.split("-")), 10]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def train_and_score(train, val, hidden, lr, dropout, schedule, epochs, seed) -> tuple[dict, float]:
    """Validation accuracy after each epoch, and the seconds the whole run took."""
    model = hg.mlp(train[0][0].size, hidden, 10, seed=seed, dropout=dropout)
    optimizer = hg.optim.Adam(lr=lr)
    scheduler = hg.optim.CosineAnnealingLR(optimizer, epochs) if schedule == "cosine" else None
    accuracy = {}
    started = time.perf_counter()
    history = hg.fit(model, optimizer, train, val=val, epochs=epochs, batch_size=BATCH_SIZE, seed=seed,
                     scheduler=scheduler)
    seconds = time.perf_counter() - started
    for record in history.records:
        accuracy[record["epoch"]] = record["val_accuracy"]
    return accuracy, seconds


def search() -> dict:
    (x, t), _ = load_dataset("digits")  # the training split only; the test split is not looked at
    fold = stratified_folds(t, FOLDS)
    scores: dict[tuple, list] = {}
    times: dict[tuple, list] = {}
    started = time.perf_counter()
    for k in range(FOLDS):
        train, val = (x[fold != k], t[fold != k]), (x[fold == k], t[fold == k])
        for hidden, lr, dropout in itertools.product(HIDDEN, LEARNING_RATES, DROPOUTS):
            runs = [("constant", max(CONSTANT_EPOCHS), CONSTANT_EPOCHS)] + [("cosine", e, (e,)) for e in COSINE_EPOCHS]
            for schedule, epochs, readings in runs:
                accuracy, seconds = train_and_score(train, val, hidden, lr, dropout, schedule, epochs, seed=k)
                for e in readings:
                    key = ("-".join(map(str, hidden)), lr, dropout, schedule, e)
                    scores.setdefault(key, []).append(accuracy[e])
                    # The time a run of e epochs takes, scaled from the fold (4/5 of the data) to the whole split.
                    times.setdefault(key, []).append(seconds * e / epochs * FOLDS / (FOLDS - 1))
        print(f"fold {k + 1}/{FOLDS} done ({time.perf_counter() - started:.0f} s)", flush=True)

    rows = [{"hidden": key[0], "lr": key[1], "dropout": key[2], "schedule": key[3], "epochs": key[4],
             "val_accuracy": float(np.mean(acc)), "val_accuracy_std": float(np.std(acc)),
             "fold_accuracies": [float(a) for a in acc], "train_seconds": float(np.mean(times[key]))}
            for key, acc in scores.items()]
    rows.sort(key=lambda r: (-r["val_accuracy"], r["epochs"] * weights(r["hidden"])))
    chosen = rows[0]
    print(machine_line())
    print(f"{FOLDS}-fold cross-validation on the {len(x)} training digits; batch {BATCH_SIZE}; Adam; best first")
    print(f"{'hidden':>8} {'lr':>6} {'dropout':>7} {'schedule':>8} {'epochs':>6} {'val acc':>8} {'std':>6} {'train s':>7}")
    for r in rows[:25]:
        print(f"{r['hidden']:>8} {r['lr']:>6g} {r['dropout']:>7g} {r['schedule']:>8} {r['epochs']:>6} "
              f"{r['val_accuracy']:>8.4f} {r['val_accuracy_std']:>6.4f} {r['train_seconds']:>7.2f}")
    print(f"... {len(rows)} settings in all")
    print(f"chosen (best mean validation accuracy): {json.dumps(chosen)}")
    path = write_results(RESULTS / "choose_defaults_search.json", {
        "folds": FOLDS, "batch_size": BATCH_SIZE, "training_samples": len(x),
        "grid": {"hidden": HIDDEN, "lr": LEARNING_RATES, "dropout": DROPOUTS, "constant_epochs": CONSTANT_EPOCHS,
                 "cosine_epochs": COSINE_EPOCHS},
        "rule": "highest mean validation accuracy; ties to the fewer epochs x weights",
        "chosen": chosen, "settings": rows})
    print(f"wrote {path}")
    return chosen


def measure(seeds=range(5)) -> dict:
    """`handgrad train` with its defaults, as a newcomer types it, once per init seed."""
    from handgrad.cli import main

    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in seeds:
            out = Path(folder) / f"seed{seed}"
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                status = main(["train", "--seed", str(seed), "--out", str(out)])
            seconds = time.perf_counter() - started
            if status != 0:
                sys.exit(f"handgrad train --seed {seed} failed:\n{printed.getvalue()}")
            summary = json.loads((out / "history.json").read_text())
            runs.append({"seed": seed, "test_accuracy": summary["test_accuracy"], "seconds": seconds,
                         "first_line": printed.getvalue().splitlines()[0]})
    accuracies = [r["test_accuracy"] for r in runs]
    print(machine_line())
    print(runs[0]["first_line"])
    print(f"{'seed':>4} {'test acc':>8} {'seconds':>7}")
    for r in runs:
        print(f"{r['seed']:>4} {r['test_accuracy']:>8.4f} {r['seconds']:>7.2f}")
    result = {"mean_test_accuracy": float(np.mean(accuracies)), "min": float(np.min(accuracies)),
              "max": float(np.max(accuracies)), "mean_seconds": float(np.mean([r["seconds"] for r in runs]))}
    print(f"mean {result['mean_test_accuracy']:.4f} (min {result['min']:.4f}, max {result['max']:.4f}), "
          f"{result['mean_seconds']:.2f} s per run")
    path = write_results(RESULTS / "choose_defaults_measure.json", {**result, "runs": runs})
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["search", "measure"])
    args = parser.parse_args()
    search() if args.step == "search" else measure()
