"""The sequence models from the command line: train, evaluate, predict --text, trace by time
step and attention pictures (on small stand-ins for the book's data, through the same registry)."""

import dataclasses
import json

import numpy as np
import pytest

import handgrad as hg
from handgrad import registry
from handgrad.cli import main
from handgrad.data import CharVocab

VOCAB = CharVocab("0123456789+ _")


def small_sums(n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 10, n), rng.integers(0, 10, n)
    x = np.stack([VOCAB.encode(f"{i}+{j}") for i, j in zip(a, b)])
    t = np.stack([VOCAB.encode(f"_{i + j}".ljust(4)) for i, j in zip(a, b)])
    return x, t


@pytest.fixture
def small_addition(monkeypatch):
    """'addition' replaced by one-digit sums (2000 / 200): the same code path, seconds to learn."""
    def load(data_dir):
        return registry.Task("addition", "seq2seq", small_sums(2000, 0), small_sums(200, 1), (3,), len(VOCAB), VOCAB)

    monkeypatch.setitem(registry.DATASETS, "addition", dataclasses.replace(registry.DATASETS["addition"], load=load))
    from handgrad import data

    monkeypatch.setattr(data, "load_seq2seq", lambda name, data_dir=None, download=True:
                        (small_sums(2000, 0), small_sums(200, 1), VOCAB))


def test_train_evaluate_predict_and_picture_an_attention_seq2seq(small_addition, tmp_path, capsys):
    out = tmp_path / "s2s"
    assert main(["train", "--dataset", "addition", "--model", "seq2seq-attention", "--hidden", "32", "--embed", "8",
                 "--lr", "0.01", "--epochs", "8", "--batch-size", "64", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "model seq2seq (attention), embedding 8, LSTM 32, vocabulary 13" in lines[0]
    accuracy = float(lines[-1].split(": ")[1])
    assert accuracy >= 0.9  # whole answers, generated
    model_file = out / "model.safetensors"
    assert json.loads((out / "history.json").read_text())["test_accuracy"] == pytest.approx(accuracy)
    assert main(["evaluate", str(model_file)]) == 0  # the dataset comes from the model file
    text = capsys.readouterr().out
    assert f"exact answers: {accuracy:.4f}" in text and "examples (question -> answer, expected), the first five" in text
    assert main(["predict", str(model_file), "--text", "3+4", "--text", "9+9"]) == 0
    model = hg.load(model_file)
    assert capsys.readouterr().out.splitlines() == [f"'3+4' -> {model.answer('3+4')!r}",
                                                    f"'9+9' -> {model.answer('9+9')!r}"]
    assert main(["predict", str(model_file), "--text", "3+4"]) == 0  # one question: the bare answer
    assert capsys.readouterr().out == model.answer("3+4") + "\n"
    right = sum(model.answer(f"{a}+{b}") == str(a + b) for a in range(10) for b in range(10))
    assert right >= 90  # the model answers as it was measured to
    assert main(["predict", str(model_file), "--text", "3+x"]) == 1
    assert "--text '3+x': characters 'x' are not in the vocabulary" in capsys.readouterr().err
    pytest.importorskip("matplotlib")
    assert main(["plot", str(model_file), "--what", "attention", "--text", "3+4", "--out", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").stat().st_size > 1000
    assert main(["plot", str(model_file), "--what", "attention"]) == 1
    assert "--what attention needs --text QUESTION" in capsys.readouterr().err


def test_peeky_and_reversed_seq2seq_options(small_addition, tmp_path, capsys):
    out = tmp_path / "peeky"
    assert main(["train", "--dataset", "addition", "--model", "seq2seq", "--peeky", "--reverse-input", "--hidden", "16",
                 "--epochs", "1", "--out", str(out)]) == 0
    assert "seq2seq (peeky, reversed input)" in capsys.readouterr().out
    assert hg.load(out / "model.safetensors").spec()["reverse_input"] is True
    assert main(["train", "--dataset", "addition", "--model", "seq2seq-attention", "--peeky", "--out", str(out)]) == 1
    assert "--peeky applies to --model seq2seq, not seq2seq-attention" in capsys.readouterr().err
    assert main(["train", "--dataset", "addition", "--model", "mlp", "--out", str(out)]) == 1
    assert "--model mlp cannot learn addition (seq2seq); use --model seq2seq or seq2seq-attention" in capsys.readouterr().err
    assert main(["predict", str(out / "model.safetensors"), "x.npy"]) == 1
    assert "a seq2seq model answers --text QUESTION (and takes no files)" in capsys.readouterr().err


def test_an_lstm_reads_digits_row_by_row_and_trace_shows_gradients_by_time_step(tmp_path, capsys):
    out = tmp_path / "lstm"
    assert main(["train", "--model", "lstm", "--hidden", "32", "--epochs", "3", "--grad-clip", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "LSTM 32 over 8 steps of 8 values" in text
    assert float(text.strip().splitlines()[-1].split(": ")[1]) > 0.5
    model = hg.load(out / "model.safetensors")
    assert [type(layer).__name__ for layer in model.layers] == ["Reshape", "LSTM", "LastStep", "Affine"]
    assert main(["trace", str(out / "model.safetensors"), "--samples", "20"]) == 0
    trace_text = capsys.readouterr().out
    assert "dL/d input rms by time step (first ... last), sequence layers:" in trace_text
    row = trace_text.split("sequence layers:\n")[1].splitlines()[0]
    assert row.startswith("1 LSTM") and len(row.split()) == 2 + 8
    assert main(["evaluate", str(out / "model.safetensors")]) == 0
    assert "per-class accuracy" in capsys.readouterr().out


def test_several_questions_got_bare_answers_that_could_not_be_told_apart(tmp_path, capsys):
    """`predict --text Q1 --text Q2` printed the answers alone, one per line: which answer was
    whose could only be guessed from the order (and an empty answer left no line to count)."""
    model = hg.model.Seq2seq(VOCAB, 5, 4, embed=3, hidden=4, seed=0)
    hg.save(model, tmp_path / "s.safetensors", metadata={"dataset": "addition"})
    questions = ["12+3", "1+1", "9+9"]
    assert main(["predict", str(tmp_path / "s.safetensors"), *[a for q in questions for a in ("--text", q)]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{q!r} -> {model.answer(q)!r}" for q in questions]
