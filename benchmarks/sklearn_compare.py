"""handgrad.sklearn's MLPClassifier beside scikit-learn's own, the same network and settings:
test accuracy and fit time side by side. Run by hand (under the heavy-job lock):

    python benchmarks/sklearn_compare.py [--data-dir ../shared/data] [--mnist-epochs 10]

Both get the same float32 arrays (pixels scaled to [0, 1], flattened) and the same settings:
one hidden layer of 100 ReLU units, Adam with learning_rate_init 1e-3, batch_size 200 ('auto'),
alpha 1e-4, a fixed number of epochs (tol=0 and n_iter_no_change=max_iter, so neither stops
early). Both compute in float32, because the input is float32.

Rows: the embedded digits (handgrad's fixed split, 1438 / 359) for random_state 0-4, 200
epochs (scikit-learn's default max_iter); MNIST (60000 / 10000) for random_state 0, 10 epochs.
A last row shows handgrad's ConvNetClassifier on the digits (no scikit-learn counterpart).
Results: benchmarks/results/sklearn_compare.json.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SklearnMLP

import handgrad.sklearn as hs
from handgrad.data import load_dataset
from machine import machine_line, write_results

RESULTS = Path(__file__).resolve().parent / "results"


def flat(pair):
    x, t = pair
    return x.reshape(len(x), -1).astype(np.float32), t


def timed_fit(estimator, x, t, x_test, t_test) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        estimator.fit(x, t)
        seconds = time.perf_counter() - started
    return estimator.score(x_test, t_test), seconds


def compare(name, train, test, epochs, seeds) -> dict:
    settings = dict(hidden_layer_sizes=(100,), activation="relu", solver="adam", alpha=1e-4, batch_size="auto",
                    learning_rate_init=1e-3, max_iter=epochs, tol=0.0, n_iter_no_change=epochs)
    runs = {"handgrad": [], "scikit-learn": []}
    for seed in seeds:
        for library, cls in (("handgrad", hs.MLPClassifier), ("scikit-learn", SklearnMLP)):
            accuracy, seconds = timed_fit(cls(random_state=seed, **settings), *train, *test)
            runs[library].append({"seed": seed, "accuracy": accuracy, "seconds": seconds})
    row = {"dataset": name, "model": "MLP 100 relu", "epochs": epochs, "seeds": list(seeds)}
    for library, results in runs.items():
        row[library] = {"accuracy": float(np.mean([r["accuracy"] for r in results])),
                        "seconds": float(np.mean([r["seconds"] for r in results])), "runs": results}
    return row


def convnet_row(train, test, seeds) -> dict:
    results = []
    for seed in seeds:
        clf = hs.ConvNetClassifier(n_filters=16, kernel_size=3, hidden_layer_sizes=(100,), max_iter=30, tol=0.0,
                                   n_iter_no_change=30, random_state=seed)
        accuracy, seconds = timed_fit(clf, *train, *test)
        results.append({"seed": seed, "accuracy": accuracy, "seconds": seconds})
    return {"dataset": "digits", "model": "ConvNet 16x3x3, pool, 100", "epochs": 30, "seeds": list(seeds),
            "handgrad": {"accuracy": float(np.mean([r["accuracy"] for r in results])),
                         "seconds": float(np.mean([r["seconds"] for r in results])), "runs": results},
            "scikit-learn": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--mnist-epochs", type=int, default=10)
    args = parser.parse_args()

    digits_train, digits_test = (flat(pair) for pair in load_dataset("digits"))
    mnist_train, mnist_test = (flat(pair) for pair in load_dataset("mnist", data_dir=args.data_dir))
    rows = [compare("digits", digits_train, digits_test, 200, range(5)),
            compare("mnist", mnist_train, mnist_test, args.mnist_epochs, range(1)),
            convnet_row(digits_train, digits_test, range(5))]

    print(machine_line())
    print(f"{'dataset':<8} {'model':<26} {'epochs':>6} {'seeds':>5} {'handgrad acc':>12} {'sklearn acc':>11} "
          f"{'handgrad s':>10} {'sklearn s':>9} {'time ratio':>10}")
    for row in rows:
        ours, theirs = row["handgrad"], row["scikit-learn"]
        their_acc = f"{theirs['accuracy']:.4f}" if theirs else "-"
        their_s = f"{theirs['seconds']:.2f}" if theirs else "-"
        ratio = f"{ours['seconds'] / theirs['seconds']:.2f}" if theirs else "-"
        print(f"{row['dataset']:<8} {row['model']:<26} {row['epochs']:>6} {len(row['seeds']):>5} "
              f"{ours['accuracy']:>12.4f} {their_acc:>11} {ours['seconds']:>10.2f} {their_s:>9} {ratio:>10}")
    print("time ratio = handgrad's fit time / scikit-learn's (below 1: handgrad is faster)")
    path = write_results(RESULTS / "sklearn_compare.json", {"rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
