"""Accuracy of the deeper networks on MNIST, quoted in README; run by hand.

    python benchmarks/convnet_accuracy.py [--data-dir ../shared/data] [--json benchmarks/results/convnet_accuracy.json]

Rows:
  SimpleConvNet (conv 30x5x5, relu, max pool 2x2/2, affine 100, relu, affine 10), He init,
      L2 weight decay 1e-4 (the model's), Adam lr 1e-3 with cosine annealing, batch 100, 15 epochs,
      float32: test accuracy per epoch and seconds per epoch
      (same as: handgrad train --dataset mnist --model cnn --weight-decay-l2 1e-4 --schedule cosine --epochs 15)
  MLP 784-100-100-10 with BatchNorm and Dropout 0.2 after each hidden layer, He init,
      Adam lr 1e-3, batch 100, 20 epochs
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import handgrad as hg  # noqa: E402
from machine import machine_line, write_results  # noqa: E402


def run(name, model, data, epochs, target, cosine=False):
    (x, t), (x_test, t_test) = data
    optimizer = hg.optim.Adam(lr=1e-3)
    scheduler = hg.optim.CosineAnnealingLR(optimizer, epochs) if cosine else None
    history = hg.fit(model, optimizer, (x, t), val=(x_test, t_test), epochs=epochs, batch_size=100,
                     seed=0, scheduler=scheduler, log=lambda r: print(f"  {name}: epoch {r['epoch']:2d} test acc {r['val_accuracy']:.4f} "
                                                 f"({r['seconds']:.1f} s)", flush=True))
    return {"run": name, "accuracy": history["val_accuracy"][-1], "best_epoch_accuracy": max(history["val_accuracy"]),
            "per_epoch": history["val_accuracy"], "seconds_per_epoch": float(np.mean(history["seconds"])),
            "epochs": epochs, "target": target}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "convnet_accuracy.json"))
    args = parser.parse_args()
    images = hg.data.load_dataset("mnist", data_dir=args.data_dir, flatten=False)
    flat = hg.data.load_dataset("mnist", data_dir=args.data_dir)
    rows = [
        run("SimpleConvNet, L2 1e-4, Adam 1e-3 cosine, batch 100, 15 epochs",
            hg.model.SimpleConvNet(seed=0, weight_decay=1e-4), images, 15, 0.99, cosine=True),
        run("MLP 784-100-100-10 + BatchNorm + Dropout 0.2, Adam 1e-3, batch 100, 20 epochs",
            hg.mlp(784, [100, 100], 10, batchnorm=True, dropout=0.2, seed=0), flat, 20, 0.98),
    ]
    print("| run | test accuracy (last epoch) | target | seconds per epoch |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} | {row['accuracy']:.4f} | >= {row['target']} | {row['seconds_per_epoch']:.1f} |")
    print(machine_line())
    write_results(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
