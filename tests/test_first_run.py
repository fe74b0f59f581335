"""The first run a newcomer makes, `handgrad train` with no options, lands above 97 % on the
embedded digits' fixed test split (the mean over init seeds 0-4), with defaults chosen by
cross-validation on the training split alone (benchmarks/choose_defaults.py)."""

import json
from pathlib import Path

import numpy as np

from handgrad.cli import main
from handgrad.registry import DATASETS, DIGITS_MLP

SEARCH = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "choose_defaults_search.json"


def test_the_defaults_are_what_the_validation_search_chose():
    chosen = json.loads(SEARCH.read_text())["chosen"]
    assert DIGITS_MLP == {"hidden": [int(w) for w in chosen["hidden"].split("-")], "lr": chosen["lr"],
                          "epochs": chosen["epochs"]}
    assert chosen["schedule"] == "constant" and chosen["dropout"] == 0.0  # `handgrad train`'s own defaults
    assert DATASETS["digits"].batch_size == json.loads(SEARCH.read_text())["batch_size"]


def test_the_first_run_lands_above_97_percent(tmp_path, capsys):
    accuracies = []
    for seed in range(5):
        out = tmp_path / f"seed{seed}"
        assert main(["train", "--seed", str(seed), "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert printed.startswith("dataset digits: 1438 train, 359 test samples; model mlp 64-512-10 relu; "
                                  "adam lr 0.003; 100 epochs of batch 32")
        accuracies.append(json.loads((out / "history.json").read_text())["test_accuracy"])
    assert np.mean(accuracies) >= 0.97, accuracies
