"""Accuracy results quoted in README: run by hand, prints a table and writes JSON.

    python benchmarks/accuracy.py [--data-dir ../shared/data] [--json benchmarks/results/accuracy.json]

Rows (each through handgrad's public API, float32 unless the book says otherwise):
  digits        64-100-10 relu, Adam lr 1e-3, batch 32, 30 epochs (the `handgrad train` defaults), on
                the fixed split for init seeds 0-4, and on five other stratified splits (seed 0)
  book ch. 5    TwoLayerNet 784-50-10, weight_init_std 0.01, SGD lr 0.1, batch 100, 10,000 iterations
                (float64 as in the book; batches from per-epoch permutations, not drawn with replacement)
  mnist         784-100-10 relu He, Adam lr 1e-3, batch 100, 5 epochs, init seeds 0-2; beside it the same
                network and settings in PyTorch when torch is installed
  fashion-mnist the same network and settings
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import handgrad as hg
import handgrad.data as D
from machine import machine_line, write_results


def digits_rows() -> list[dict]:
    rows = []
    (x, t), (x_test, t_test) = D.load_dataset("digits")
    fixed = []
    for seed in range(5):
        model = hg.mlp(64, [100], 10, seed=seed)
        hg.fit(model, hg.optim.Adam(lr=1e-3), (x, t), epochs=30, batch_size=32, seed=seed)
        fixed.append(model.accuracy(x_test, t_test))
    rows.append({"run": "digits 64-100-10, fixed split, init seeds 0-4", "accuracy": float(np.mean(fixed)),
                 "min": float(np.min(fixed)), "max": float(np.max(fixed)), "target": 0.97})
    other = []
    original = D.DIGITS_SPLIT_SEED
    try:
        for split in range(1, 6):
            D.DIGITS_SPLIT_SEED = split
            (x, t), (x_test, t_test) = D.load_dataset("digits")
            model = hg.mlp(64, [100], 10, seed=0)
            hg.fit(model, hg.optim.Adam(lr=1e-3), (x, t), epochs=30, batch_size=32, seed=0)
            other.append(model.accuracy(x_test, t_test))
    finally:
        D.DIGITS_SPLIT_SEED = original
    rows.append({"run": "digits 64-100-10, five other stratified splits", "accuracy": float(np.mean(other)),
                 "min": float(np.min(other)), "max": float(np.max(other)), "target": 0.97})
    return rows


def book_chapter5(data_dir) -> dict:
    (x, t), (x_test, t_test) = D.load_dataset("mnist", data_dir=data_dir)
    x, x_test = x.astype(np.float64), x_test.astype(np.float64)
    net = hg.TwoLayerNet(784, 50, 10, weight_init_std=0.01, seed=0)
    started = time.perf_counter()
    history = hg.fit(net, hg.optim.SGD(lr=0.1), (x, t), epochs=17, batch_size=100, seed=0, max_steps=10_000)
    return {"run": "book ch.5 TwoLayerNet 784-50-10, SGD 0.1, 10,000 iterations", "accuracy": net.accuracy(x_test, t_test),
            "train_accuracy": net.accuracy(x, t), "steps": history["steps"][-1],
            "seconds": time.perf_counter() - started, "target": 0.97}


SEEDS = range(3)


def mnist_like(name, data_dir, target) -> list[dict]:
    """handgrad, and PyTorch CPU with the same settings when it is installed; mean of 3 seeds."""
    (x, t), (x_test, t_test) = D.load_dataset(name, data_dir=data_dir)
    accuracies, seconds = [], []
    for seed in SEEDS:
        model = hg.mlp(784, [100], 10, seed=seed)
        history = hg.fit(model, hg.optim.Adam(lr=1e-3), (x, t), epochs=5, batch_size=100, seed=seed)
        accuracies.append(model.accuracy(x_test, t_test))
        seconds.append(float(np.mean(history["seconds"])))
    rows = [{"run": f"{name} 784-100-10, Adam 1e-3, batch 100, 5 epochs (handgrad, He init)",
             "accuracy": float(np.mean(accuracies)), "min": min(accuracies), "max": max(accuracies),
             "seconds_per_epoch": float(np.mean(seconds)), "target": target}]
    try:
        import torch
    except ImportError:
        return rows
    torch.set_num_threads(2)
    accuracies = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        inputs, labels = torch.from_numpy(x), torch.from_numpy(t)
        for _ in range(5):
            order = torch.randperm(len(x))
            for start in range(0, len(x), 100):
                index = order[start:start + 100]
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(net(inputs[index]), labels[index]).backward()
                optimizer.step()
        with torch.no_grad():
            accuracies.append(float((net(torch.from_numpy(x_test)).argmax(1).numpy() == t_test).mean()))
    rows.append({"run": f"{name} same settings in PyTorch {torch.__version__} (its default init)",
                 "accuracy": float(np.mean(accuracies)), "min": min(accuracies), "max": max(accuracies), "target": target})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "accuracy.json"))
    args = parser.parse_args()

    rows = digits_rows()
    rows.append(book_chapter5(args.data_dir))
    rows += mnist_like("mnist", args.data_dir, 0.975)
    rows += mnist_like("fashion-mnist", args.data_dir, 0.87)

    print("| run | test accuracy | target | met |")
    print("|---|---|---|---|")
    for row in rows:
        spread = f" (min {row['min']:.4f}, max {row['max']:.4f})" if "min" in row else ""
        print(f"| {row['run']} | {row['accuracy']:.4f}{spread} | >= {row['target']} | "
              f"{'yes' if row['accuracy'] >= row['target'] else 'no'} |")
    for row in rows:
        if "seconds" in row:
            print(f"{row['run']}: {row['seconds']:.1f} s in all")
        if "seconds_per_epoch" in row:
            print(f"{row['run']}: {row['seconds_per_epoch']:.2f} s per epoch")
    print(machine_line())
    write_results(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
