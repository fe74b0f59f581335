"""A GPT from the command line: train by steps on Tiny Shakespeare, generate text, and refuse
what does not fit."""

import json

import pytest
from conftest import SHARED_DATA

import handgrad as hg
from handgrad.cli import main

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
    assert main(["train", "--dataset", "shakespeare", "--model", "mlp", "--out", str(tmp_path / "o")]) == 1
    assert "--model mlp cannot learn shakespeare (text); use --model gpt" in capsys.readouterr().err
    assert main(["train", "--n-layer", "2", "--out", str(tmp_path / "o")]) == 1
    assert "--n-layer applies to --model gpt or transformer, not mlp" in capsys.readouterr().err


def test_generate_refuses_a_model_that_is_not_a_language_model(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "mlp")]) == 0
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "mlp" / "model.safetensors")]) == 1
    assert "generate needs a language model (--model gpt, or a makemore model), this is a Sequential" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A GPT and a seq2seq model saved as files (untrained: what the commands do with them
    matters here, not what they say)."""
    from handgrad.data import CharVocab
    from handgrad.model import GPT, Seq2seq

    folder = tmp_path_factory.mktemp("models")
    chars = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    hg.save(GPT(65, 16, 1, 2, 8, seed=0, vocab=CharVocab(chars)), folder / "gpt.safetensors",
            metadata={"dataset": "shakespeare"})
    hg.save(Seq2seq(CharVocab("0123456789+ _"), 3, 4, embed=3, hidden=4, seed=0), folder / "s2s.safetensors",
            metadata={"dataset": "addition"})
    return folder


@pytest.mark.parametrize("args, message", [
    (["trace", "{gpt}"], "trace works on classifiers (mlp, cnn, lstm); this is a language model"),
    (["trace", "{s2s}"], "trace works on classifiers (mlp, cnn, lstm); this is a seq2seq model"),
    (["plot", "{gpt}", "--what", "weights"], "plot works on classifiers"),
    (["plot", "{s2s}", "--what", "confusion"], "plot works on classifiers"),
    (["evaluate", "{gpt}", "--dataset", "digits"], "a language model is evaluated on text (shakespeare), not digits"),
    (["predict", "{gpt}", "--text", "ROMEO"], "use 'handgrad generate MODEL --prompt TEXT'"),
    (["predict", "{s2s}", "--text", ""], "the question is empty"),
    (["plot", "{gpt}", "--what", "attention", "--text", ""], "--text '': the prompt is empty"),
])
def test_commands_refuse_models_they_do_not_fit_in_one_line(tiny_models, capsys, args, message):
    paths = {"gpt": tiny_models / "gpt.safetensors", "s2s": tiny_models / "s2s.safetensors"}
    assert main([a.format(**paths) for a in args]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_a_classifier_is_not_run_on_text(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "mlp")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "mlp" / "model.safetensors"), "--dataset", "shakespeare"]) == 1
    assert "a classifier cannot be run on shakespeare (text)" in capsys.readouterr().err


@needs_shakespeare
def test_evaluate_a_gpt_gives_its_loss_on_both_splits(tiny_models, capsys):
    assert main(["evaluate", str(tiny_models / "gpt.safetensors"), "--data-dir", str(SHARED_DATA)]) == 0
    lines = capsys.readouterr().out.splitlines()
    train_loss, val_loss = (float(line.split(": ")[1]) for line in lines[1:3])
    assert lines[1].startswith("train loss:") and 3.5 < train_loss < 4.5 and 3.5 < val_loss < 4.5  # about ln 65


@needs_shakespeare
def test_language_model_settings_are_checked_before_building(tmp_path, capsys):
    base = ["train", "--dataset", "shakespeare", "--model", "gpt", "--data-dir", str(SHARED_DATA), "--out", str(tmp_path)]
    assert main(base + ["--block-size", "2000000"]) == 1
    assert "--block-size 2000000 is longer than the validation text (111,539 tokens)" in capsys.readouterr().err
    assert main(base + ["--min-lr", "1"]) == 1
    assert "--min-lr must lie between 0 and the learning rate 0.001, got 1" in capsys.readouterr().err


def _reordered(chars: str, seed: int = 3) -> tuple:
    """The same characters in another order, and ``order``: new id i is old id order[i]."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(chars))
    return "".join(chars[i] for i in order), order


@needs_shakespeare
def test_evaluate_reads_the_text_with_the_models_own_vocabulary_order(tmp_path, capsys):
    """A GPT whose vocabulary held the same 65 characters in another order evaluated to the very
    same loss: the text was encoded with the dataset's vocabulary, not the model's."""
    import numpy as np

    from handgrad.data import CharVocab
    from handgrad.model import GPT

    chars = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    shuffled, order = _reordered(chars)
    original = GPT(65, 8, 1, 2, 8, seed=0, vocab=CharVocab(chars))
    original.params["wte.W"][...] = np.random.default_rng(1).normal(0, 2, (65, 8))  # far from uniform predictions
    # The same function of the characters: its token rows (wte is tied to the output) follow the vocabulary.
    same_function = GPT(65, 8, 1, 2, 8, seed=0, vocab=CharVocab(shuffled))
    for name, value in original.params.items():
        same_function.params[name][...] = value[order] if name == "wte.W" else value
    other_function = GPT(65, 8, 1, 2, 8, seed=0, vocab=CharVocab(shuffled))
    for name, value in original.params.items():
        other_function.params[name][...] = value
    losses = {}
    for name, model in [("original", original), ("same", same_function), ("other", other_function)]:
        hg.save(model, tmp_path / f"{name}.safetensors", metadata={"dataset": "shakespeare"})
        assert main(["evaluate", str(tmp_path / f"{name}.safetensors"), "--data-dir", str(SHARED_DATA)]) == 0
        lines = capsys.readouterr().out.splitlines()
        losses[name] = [float(line.split(": ")[1]) for line in lines[1:3]]
    np.testing.assert_allclose(losses["same"], losses["original"], rtol=1e-4)  # printed to 4 decimals
    assert abs(losses["other"][1] - losses["original"][1]) > 0.05, losses


@needs_shakespeare
def test_evaluate_refuses_text_with_characters_the_gpt_never_saw(tmp_path, capsys):
    from handgrad.data import CharVocab
    from handgrad.model import GPT

    chars = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxy#"  # no 'z'
    hg.save(GPT(65, 8, 1, 2, 8, seed=0, vocab=CharVocab(chars)), tmp_path / "m.safetensors",
            metadata={"dataset": "shakespeare"})
    assert main(["evaluate", str(tmp_path / "m.safetensors"), "--data-dir", str(SHARED_DATA)]) == 1
    err = capsys.readouterr().err.strip()
    assert "shakespeare has 1 character that the model's vocabulary lacks ('z')" in err and len(err.splitlines()) == 1


needs_addition = pytest.mark.skipif(not (SHARED_DATA / "book2-seq2seq").is_dir(), reason="book2-seq2seq not found")


@needs_addition
def test_evaluate_seq2seq_reads_questions_with_the_models_own_vocabulary_order(tmp_path, capsys):
    """A seq2seq model whose vocabulary lists the addition data's characters in another order is
    evaluated with its own ids (the same function of the characters scores the same)."""
    import numpy as np

    from handgrad.data import CharVocab, load_seq2seq
    from handgrad.model import Seq2seq

    _, _, data_vocab = load_seq2seq("addition", data_dir=SHARED_DATA)
    chars = "".join(data_vocab.chars)
    shuffled, order = _reordered(chars)
    original = Seq2seq(CharVocab(chars), 7, 5, embed=4, hidden=8, seed=0)
    for value in original.params.values():
        value[...] = np.random.default_rng(2).normal(0, 1.5, value.shape)
    same_function = Seq2seq(CharVocab(shuffled), 7, 5, embed=4, hidden=8, seed=0)
    for name, value in original.params.items():
        rows = name in ("enc_embed.W", "dec_embed.W")
        same_function.params[name][...] = value[order] if rows else value[..., order] if name.startswith("out.") else value
    printed = []
    for name, model in [("original", original), ("same", same_function)]:
        hg.save(model, tmp_path / f"{name}.safetensors", metadata={"dataset": "addition"})
        assert main(["evaluate", str(tmp_path / f"{name}.safetensors"), "--data-dir", str(SHARED_DATA)]) == 0
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1]  # the same answers, printed with the same characters
    assert "exact answers:" in printed[0]


# --- the data root a model was trained from ---------------------------------------------------------------


@pytest.fixture
def no_download(monkeypatch, tmp_path):
    """No HANDGRAD_DATA, an empty cache, and a download that records where it would have
    written and fails: ``calls`` lists the target folder of every attempt."""
    from handgrad.data import DataError, fetch

    monkeypatch.delenv("HANDGRAD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    calls = []

    def refuse(dataset, file, target, where):
        calls.append(target)
        raise DataError(f"{dataset.name}: a download into {target} was attempted")

    monkeypatch.setattr(fetch, "_download", refuse)
    return calls


@needs_shakespeare
def test_evaluate_ignored_the_data_root_a_gpt_was_trained_from_and_tried_to_download(tmp_path, capsys, no_download):
    """`train --data-dir DIR` then `evaluate MODEL` looked for the text in the cache and tried to
    download it; the data root recorded with the model is used (an explicit --data-dir wins)."""
    out = tmp_path / "gpt"
    assert main(["train", "--dataset", "shakespeare", "--model", "gpt", "--n-layer", "1", "--n-head", "2",
                 "--n-embd", "8", "--block-size", "8", "--max-steps", "1", "--eval-iters", "1",
                 "--data-dir", str(SHARED_DATA), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.safetensors")]) == 0
    assert "val loss:" in capsys.readouterr().out and no_download == []
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert main(["evaluate", str(out / "model.safetensors"), "--data-dir", str(elsewhere)]) == 1
    assert no_download == [elsewhere / "tinyshakespeare"]  # searched first, so the download would go there
    assert "a download into" in capsys.readouterr().err


@needs_shakespeare
def test_a_recorded_data_root_that_is_gone_is_passed_over_not_downloaded_into(tiny_models, tmp_path, capsys,
                                                                              no_download, monkeypatch):
    gone = tmp_path / "moved-away"
    hg.save(hg.load(tiny_models / "gpt.safetensors"), tmp_path / "gpt.safetensors",
            metadata={"dataset": "shakespeare", "data_dir": str(gone)})
    monkeypatch.setenv("HANDGRAD_DATA", str(SHARED_DATA))  # where the text is now
    assert main(["evaluate", str(tmp_path / "gpt.safetensors")]) == 0
    captured = capsys.readouterr()
    assert "val loss:" in captured.out and no_download == [] and not gone.exists()
    assert f"the data root the model was trained from, {gone}, is not a folder any more" in captured.err


def test_generate_reads_no_data_and_says_so_to_a_data_dir(tiny_models, capsys, monkeypatch):
    """The trial read `generate` as needing the training data as `evaluate` does: it never looks
    for any (the vocabulary is in the model file), and --data-dir gets a line that says so
    instead of argparse's 'unrecognized arguments'."""
    from handgrad.data import fetch

    def no_data(*args, **kwargs):
        raise AssertionError("generate looked for data")

    monkeypatch.setattr(fetch, "search_roots", no_data)
    monkeypatch.setenv("HANDGRAD_DATA", "/nonexistent-handgrad-data")
    assert main(["generate", str(tiny_models / "gpt.safetensors"), "--prompt", "RO", "--tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("RO")
    assert main(["generate", str(tiny_models / "gpt.safetensors"), "--data-dir", str(SHARED_DATA)]) == 1
    err = capsys.readouterr().err.strip()
    assert "--data-dir: generate reads no data for a text model (the model file holds its vocabulary)" in err
    assert len(err.splitlines()) == 1


def test_each_dataset_trains_its_own_model_when_none_is_given():
    """`handgrad train --dataset shakespeare` (and names, addition, dates) answered "--model mlp
    cannot learn ...": the user had typed no --model. Each dataset now names its model."""
    from handgrad.cli import build_parser
    from handgrad.cli.train import recipe_of
    from handgrad.registry import DATASETS, MODELS

    for dataset, expected in (("shakespeare", "gpt"), ("names", "transformer"), ("addition", "seq2seq"),
                              ("dates", "seq2seq-attention"), ("digits", "mlp"), ("mnist", "mlp")):
        args = build_parser().parse_args(["train", "--dataset", dataset])
        assert recipe_of(args).model == expected and args.model == expected
        assert DATASETS[dataset].kind in MODELS[expected].kinds
    args = build_parser().parse_args(["train", "--data-file", "words.txt"])
    assert recipe_of(args).dataset == "names" and args.model == "transformer"
