"""A GPT from the command line: train by steps on Tiny Shakespeare, generate text, and refuse
what does not fit."""

import json
import os
from pathlib import Path

import pytest

import handgrad as hg
from handgrad.cli import main

SHARED_DATA = Path(os.environ.get("HANDGRAD_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_shakespeare = pytest.mark.skipif(not (SHARED_DATA / "tinyshakespeare" / "input.txt").is_file(),
                                       reason=f"tinyshakespeare not found under {SHARED_DATA}")


@needs_shakespeare
def test_train_a_small_gpt_by_steps_then_generate(tmp_path, capsys):
    out = tmp_path / "gpt"
    assert main(["train", "--dataset", "shakespeare", "--model", "gpt", "--n-layer", "1", "--n-head", "2",
                 "--n-embd", "32", "--block-size", "16", "--max-steps", "30", "--eval-interval", "15",
                 "--eval-iters", "4", "--lr", "3e-3", "--warmup", "5", "--data-dir", str(SHARED_DATA),
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("dataset shakespeare: 1,003,853 train, 111,539 val tokens; model GPT: 1 layers")
    steps = [line for line in lines if line.startswith("step ")]
    assert [line.split(":")[0].split()[1] for line in steps] == ["0", "15", "30"]
    val_losses = [float(line.split("val loss ")[1].split()[0]) for line in steps]
    assert val_losses[0] > 4.0 and val_losses[-1] < val_losses[0] - 0.3  # 65 characters: ln 65 = 4.17 at first
    assert lines[-1] == f"val loss: {val_losses[-1]:.4f}"
    history = json.loads((out / "history.json").read_text())
    assert history["arguments"]["max_steps"] == 30 and history["arguments"]["optimizer"] is None
    model = hg.load(out / "model.safetensors")
    assert type(model).__name__ == "GPT" and model.vocab is not None

    assert main(["generate", str(out / "model.safetensors"), "--prompt", "ROMEO:", "--tokens", "40", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text.rstrip("\n")) >= 40
    assert main(["generate", str(out / "model.safetensors"), "--prompt", "ROMEO:", "--tokens", "40", "--seed", "1"]) == 0
    assert capsys.readouterr().out == text  # seeded: the same text again
    assert main(["generate", str(out / "model.safetensors"), "--prompt", "€uro"]) == 1
    assert "--prompt: characters '€' are not in the vocabulary" in capsys.readouterr().err
    pytest.importorskip("matplotlib")
    assert main(["plot", str(out / "model.safetensors"), "--what", "attention", "--text", "ROMEO: hi",
                 "--out", str(tmp_path / "heads.png")]) == 0
    assert (tmp_path / "heads.png").stat().st_size > 1000
    assert main(["plot", str(out / "model.safetensors"), "--what", "attention", "--text", "x" * 17,
                 "--out", str(tmp_path / "long.png")]) == 1
    assert "the prompt has 17 characters; the model's context is 16" in capsys.readouterr().err


def test_language_model_options_are_refused_where_they_do_not_apply(tmp_path, capsys):
    assert main(["train", "--warmup", "10", "--out", str(tmp_path / "o")]) == 1
    assert "--warmup applies to training a language model by steps" in capsys.readouterr().err
    assert main(["train", "--dataset", "shakespeare", "--model", "gpt", "--epochs", "2", "--out", str(tmp_path / "o")]) == 1
    assert "trains by steps: give --max-steps, not --epochs" in capsys.readouterr().err
    assert main(["train", "--dataset", "shakespeare", "--out", str(tmp_path / "o")]) == 1
    assert "--model mlp cannot learn shakespeare (text); use --model gpt" in capsys.readouterr().err
    assert main(["train", "--n-layer", "2", "--out", str(tmp_path / "o")]) == 1
    assert "--n-layer applies to --model gpt, not mlp" in capsys.readouterr().err


def test_generate_refuses_a_model_that_is_not_a_language_model(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "mlp")]) == 0
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "mlp" / "model.safetensors")]) == 1
    assert "generate needs a language model (--model gpt), this is a Sequential" in capsys.readouterr().err
