"""makemore with every gradient by hand: the names data and its two splits, the models against
PyTorch mirrors (float64, 1e-9), training by steps on random rows, generation, and the command
line (train on names or on any file of words, generate with makemore's three groups)."""

import json

import numpy as np
import pytest
from conftest import SHARED_DATA
from mirrors import ContextsMirror, SequencesMirror

import handgrad as hg
from handgrad.cli import main
from handgrad.data import DataError
from handgrad.data.words import (IGNORE, Words, contexts, load_names, makemore_split, read_words, sequences,
                                 zero_to_hero_split)
from handgrad.model.makemore import (bigram, bow, generate_words, gru, mark_words, mlp, mlp_bn, rnn, transformer,
                                     wavenet)

NAMES = SHARED_DATA / "names" / "names.txt"
needs_names = pytest.mark.skipif(not NAMES.is_file(), reason=f"names.txt not found under {SHARED_DATA}")


@pytest.fixture(scope="module")
def names():
    if not NAMES.is_file():
        pytest.skip(f"names.txt not found under {SHARED_DATA}")
    return load_names(SHARED_DATA, download=False)


# --- the data --------------------------------------------------------------------------------------


def test_names_are_makemores_file_read_as_makemore_reads_it(names):
    assert len(names.words) == 32_033 and names.chars == "abcdefghijklmnopqrstuvwxyz"
    assert names.vocab_size == 27 and names.block_size == 16  # the longest name has 15 letters
    assert names.words[:3] == ("emma", "olivia", "ava")
    assert names.decode(np.r_[names.encode("emma"), 0, 5]) == "emma"  # up to the end token


def test_zero_to_hero_split_is_the_notebooks_to_the_example(names):
    """random.seed(42); random.shuffle(words); 80/10/10 %: the notebooks print Xtr (182625, 3),
    Xdev (22655, 3), Xte (22866, 3), and their first training words are yuheng, diondre, xavien."""
    train, dev, test = zero_to_hero_split(names)
    assert (len(train.words), len(dev.words), len(test.words)) == (25_626, 3_203, 3_204)
    assert train.words[:3] == ("yuheng", "diondre", "xavien")
    assert [contexts(part, 3)[0].shape for part in (train, dev, test)] == [(182_625, 3), (22_655, 3), (22_866, 3)]
    assert set(train.words) | set(dev.words) | set(test.words) == set(names.words)


def test_makemore_split_keeps_a_test_set_of_min_1000_or_a_tenth(names):
    train, test = makemore_split(names)
    assert (len(train.words), len(test.words)) == (31_033, 1_000)
    assert sorted(train.words + test.words) == sorted(names.words)
    small = Words.of([f"w{'a' * (i % 7)}b" for i in range(50)])
    assert [len(part.words) for part in makemore_split(small)] == [45, 5]
    assert makemore_split(names)[1] == test  # seeded: the same split every time


def test_contexts_and_sequences_are_the_two_series_examples():
    words = Words.of(["ab", "b"])
    x, y = contexts(words, 3)  # every character and the end, with the 3 ids before it
    assert x.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 0, 0], [0, 0, 2]]
    assert y.tolist() == [1, 2, 0, 2, 0]
    x, y = sequences(words, words.block_size)
    assert x.tolist() == [[0, 1, 2], [0, 2, 0]]
    assert y.tolist() == [[1, 2, 0], [2, 0, IGNORE]]
    with pytest.raises(ValueError, match="needs block_size >= 3, got 2"):
        sequences(words, 2)


@pytest.mark.parametrize("content, message", [
    (b"", "no words in it"),
    (b"\n  \n\t\n", "no words in it"),
    (b"abc\x00def\n", "a binary file"),
    (b"caf\xe9\n", "not UTF-8 text"),
    (b"aaa\naa\n\na\n", "made of the one character 'a'"),
    (b"ok\n" + b"x" * 65 + b"\n", "line 2 is 65 characters long, over the limit of 64"),
])
def test_a_words_file_that_cannot_be_learned_is_refused_in_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "words.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as error:
        read_words(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_missing_files_and_folders_are_refused_too(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_words(tmp_path / "absent.txt")
    with pytest.raises(DataError, match="is a folder"):
        read_words(tmp_path)


def test_a_fifo_a_device_or_a_huge_file_is_refused_before_reading(tmp_path, monkeypatch):
    """read_bytes on a FIFO waited forever and on /dev/zero never ended."""
    import os

    fifo = tmp_path / "words.fifo"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        read_words(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        read_words("/dev/zero")
    big = tmp_path / "big.txt"
    big.write_text("anna\nbob\n")
    monkeypatch.setattr("handgrad.data.words.MAX_FILE_BYTES", 5)
    with pytest.raises(DataError, match="9 bytes, over the limit of 5"):
        read_words(big)


def test_generate_refuses_more_samples_than_it_draws_in_one_call(tmp_path, capsys):
    words = tmp_path / "w.txt"
    words.write_text("\n".join(["anna", "bob", "carla", "dan", "eve"] * 4))
    assert main(["train", "--data-file", str(words), "--model", "bigram", "--max-steps", "2", "--eval-interval", "1",
                 "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "run" / "model.safetensors"), "--samples", "10001"]) == 1
    err = capsys.readouterr().err
    assert "--samples 10,001: at most 10,000 words per call" in err and len(err.strip().splitlines()) == 1


def test_any_file_of_words_is_read_stripped_with_its_own_vocabulary(tmp_path):
    path = tmp_path / "companies.txt"
    path.write_text("  Acme Corp \n\nZeta-9\nacme corp\n", encoding="utf-8")
    words = read_words(path)
    assert words.words == ("Acme Corp", "Zeta-9", "acme corp")
    assert words.chars == "".join(sorted(set("Acme CorpZeta-9acme corp"))) == " -9ACZacemoprt" and words.block_size == 10 and words.source == "companies.txt"


# --- the models against PyTorch mirrors --------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: mlp_bn(27, seed=3, dtype=np.float64),
                                  lambda: wavenet(27, seed=4, dtype=np.float64),
                                  lambda: mlp_bn(27, block_size=4, n_embd=5, n_hidden=16, seed=5, dtype=np.float64)],
                         ids=["mlp-bn", "wavenet", "mlp-bn-small"])
def test_the_zero_to_hero_models_equal_their_pytorch_mirror_in_float64(make):
    torch = pytest.importorskip("torch")
    model = make()
    block = model.input_shape[0]
    rng = np.random.default_rng(0)
    x, t = rng.integers(0, 27, (32, block)), rng.integers(0, 27, 32)
    loss = model.loss(x, t)
    model.backward()
    mirror = ContextsMirror(torch, model)
    expected = torch.nn.functional.cross_entropy(mirror.logits(x), torch.from_numpy(t))
    expected.backward()
    assert abs(loss - expected.item()) < 1e-9
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, mirror.params[name].grad.numpy(), rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("make", [lambda V, B: bigram(V, dtype=np.float64),
                                  lambda V, B: mlp(V, B, n_embd=5, n_embd2=7, seed=4, dtype=np.float64),
                                  lambda V, B: mlp(V, 3, n_embd=4, n_embd2=6, seed=5, dtype=np.float64),
                                  lambda V, B: bow(V, B, n_embd=6, n_embd2=9, seed=6, dtype=np.float64),
                                  lambda V, B: rnn(V, n_embd=6, n_embd2=7, seed=1, dtype=np.float64),
                                  lambda V, B: gru(V, n_embd=6, n_embd2=7, seed=2, dtype=np.float64),
                                  lambda V, B: transformer(V, B, n_layer=2, n_head=2, n_embd=8, seed=3,
                                                           dtype=np.float64)],
                         ids=["bigram", "mlp", "mlp-block-3", "bow", "rnn", "gru", "transformer"])
def test_makemores_models_of_whole_words_equal_their_pytorch_mirror_in_float64(make):
    """Padding targets are ignored by both; every gradient, the shared ones included."""
    torch = pytest.importorskip("torch")
    words = Words.of(["anna", "bob", "carla", "dan", "eve"])
    model = make(words.vocab_size, words.block_size)
    x, t = sequences(words, words.block_size)
    loss = model.loss(x, t)
    model.backward()
    mirror = SequencesMirror(torch, model)
    logits = mirror.logits(x)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, words.vocab_size), torch.from_numpy(t).reshape(-1))
    expected.backward()
    assert abs(loss - expected.item()) < 1e-9
    if isinstance(model, hg.model.GPT):
        theirs = {k: v.grad.numpy() for k, v in mirror.net.named_parameters()}
        ours = hg.interop.to_nanogpt(model, grads=True)
        assert set(ours) == set(theirs)  # makemore's lm_head is its own matrix
        for name, grad in ours.items():
            np.testing.assert_allclose(grad, theirs[name], rtol=0, atol=1e-9, err_msg=name)
        return
    if mirror.by_path:  # makemore.py's MLP and BoW: every parameter, keyed as handgrad's
        assert set(mirror.params) == set(model.grads)
        for name, grad in model.grads.items():
            assert np.abs(grad).max() > 0, name  # every parameter is reached
            np.testing.assert_allclose(grad, mirror.params[name].grad.numpy(), rtol=0, atol=1e-9, err_msg=name)
        return
    np.testing.assert_allclose(model.grads["0.W"], mirror.params["table"].grad.numpy(), rtol=0, atol=1e-9)
    if mirror.recurrent is not None:
        cell, r = model.layers[1], mirror.recurrent
        np.testing.assert_allclose(cell.grads["Wx"], r.weight_ih_l0.grad.numpy().T, rtol=0, atol=1e-9)
        np.testing.assert_allclose(cell.grads["Wh"], r.weight_hh_l0.grad.numpy().T, rtol=0, atol=1e-9)
        bias = cell.grads["b"] if "b" in cell.grads else cell.grads["bx"]
        np.testing.assert_allclose(bias, r.bias_ih_l0.grad.numpy(), rtol=0, atol=1e-9)
        if "bh" in cell.grads:
            np.testing.assert_allclose(cell.grads["bh"], r.bias_hh_l0.grad.numpy(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(model.grads["2.W"], mirror.params["W"].grad.numpy(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(model.grads["2.b"], mirror.params["b"].grad.numpy(), rtol=0, atol=1e-9)


def test_the_zero_to_hero_models_have_their_published_sizes():
    """Part 3's BatchNorm MLP: 12,297 parameters, as the notebook prints (its b1 before the
    BatchNorm included); part 5's WaveNet: 76,579, whose Linears before a BatchNorm have no bias
    (here they have, initialised to 0: +384, 76,963)."""
    count = lambda model: sum(p.size for p in model.params.values())  # noqa: E731
    assert count(mlp_bn(27)) == 12_297
    assert count(wavenet(27)) == 76_579 + 3 * 128
    with pytest.raises(ValueError, match="block_size must be a power of 2"):
        wavenet(27, block_size=6)


def test_bigram_and_transformer_score_every_position_of_a_word():
    words = Words.of(["ab", "ba", "abb"])
    x, y = sequences(words, words.block_size)
    for model in (bigram(words.vocab_size), transformer(words.vocab_size, words.block_size, n_layer=1, n_head=2,
                                                        n_embd=8, seed=0)):
        scores = model.predict(x)
        assert scores.shape == (3, words.block_size, words.vocab_size)
    assert bigram(words.vocab_size).loss(x, y) == pytest.approx(np.log(words.vocab_size))  # a table of zeros


# --- training and generating -------------------------------------------------------------------------


def test_fit_lm_on_examples_draws_rows_with_replacement_and_resumes_exactly(tmp_path):
    words = Words.of(["anna", "bob", "carla", "dan", "eve", "fay", "gus"] * 3)
    x, y = contexts(words, 3)
    seen = []
    model = mlp_bn(words.vocab_size, n_embd=4, n_hidden=8, seed=0, dtype=np.float64)
    real = model.scores_and_targets
    model.scores_and_targets = lambda xb, tb: seen.append(tb.copy()) or real(xb, tb)
    hg.train.fit_lm(model, hg.optim.SGD(lr=0.1), (x, y), (x, y), block_size=None, batch_size=5, max_steps=3,
                    eval_interval=100, eval_iters=1, seed=9, progress=False)
    rng = np.random.default_rng(9)  # seen[0:2]: the evaluation of both splits at step 0 (its own generator)
    assert [s.tolist() for s in seen[2:5]] == [y[rng.integers(0, len(x), 5)].tolist() for _ in range(3)]

    kwargs = dict(block_size=None, batch_size=5, max_steps=8, eval_interval=4, eval_iters=2, seed=1, progress=False,
                  schedule=hg.optim.StepLR(0.1, 6, 0.1))
    straight = mlp_bn(words.vocab_size, n_embd=4, n_hidden=8, seed=0, dtype=np.float64)
    whole = hg.train.fit_lm(straight, hg.optim.SGD(lr=0.1), (x, y), (x, y), **kwargs)
    path = tmp_path / "ckpt.safetensors"
    first = mlp_bn(words.vocab_size, n_embd=4, n_hidden=8, seed=0, dtype=np.float64)
    hg.train.fit_lm(first, hg.optim.SGD(lr=0.1), (x, y), (x, y), checkpoint=path, **(kwargs | {"max_steps": 4}))
    resumed = mlp_bn(words.vocab_size, n_embd=4, n_hidden=8, seed=7, dtype=np.float64)
    again = hg.train.fit_lm(resumed, hg.optim.SGD(lr=0.1), (x, y), (x, y), checkpoint=path, resume=True, **kwargs)
    assert again["val_loss"] == whole["val_loss"]
    for name in straight.params:
        np.testing.assert_array_equal(resumed.params[name], straight.params[name], err_msg=name)


def test_fit_lm_refuses_examples_that_do_not_line_up():
    with pytest.raises(ValueError, match="examples, token ids x .* same N >= 1"):
        hg.train.fit_lm(bigram(5), hg.optim.SGD(), (np.zeros((4, 3), int), np.zeros(3, int)),
                        (np.zeros((4, 3), int), np.zeros((4, 3), int)), block_size=None)


@pytest.mark.parametrize("make", [lambda V, B: bigram(V), lambda V, B: mlp_bn(V, n_embd=4, n_hidden=8, seed=0),
                                  lambda V, B: wavenet(V, block_size=4, n_embd=4, n_hidden=8, seed=0),
                                  lambda V, B: rnn(V, n_embd=4, n_embd2=5, seed=0),
                                  lambda V, B: gru(V, n_embd=4, n_embd2=5, seed=0),
                                  lambda V, B: transformer(V, B, n_layer=1, n_head=2, n_embd=8, seed=0)],
                         ids=["bigram", "mlp-bn", "wavenet", "rnn", "gru", "transformer"])
def test_generated_words_use_the_vocabulary_repeat_with_the_seed_and_stop_at_the_end_token(make):
    words = Words.of(["anna", "bob", "carla"])
    model = make(words.vocab_size, words.block_size)
    first = generate_words(model, words, 6, seed=3)
    assert first == generate_words(model, words, 6, seed=3)
    assert len(first) == 6 and all(set(w) <= set(words.chars) and len(w) <= words.block_size - 1 for w in first)
    greedy = generate_words(model, words, 3, temperature=0)
    assert greedy[0] == greedy[1] == greedy[2]  # the most likely character every time: one word


def test_samples_are_marked_as_makemore_groups_them():
    assert mark_words(["anna", "zed", "bob"], ["anna"], ["bob"]) == ["train", "new", "test"]


# --- the command line --------------------------------------------------------------------------------


@needs_names
def test_train_on_names_ends_with_the_test_loss_and_generate_marks_the_groups(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "names", "--model", "mlp-bn", "--max-steps", "300", "--eval-interval", "100",
                 "--data-dir", str(SHARED_DATA), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("dataset names: 32,033 words of 26 characters, 25,626 train / 3,203 dev / 3,204 test "
                                 "(zero-to-hero split); model mlp-bn (12,297 parameters, context of 3); sgd lr 0.1 -> "
                                 "0.01 at step 225, 300 steps of 32")
    test_loss = float(printed[-1].removeprefix("test loss: "))
    assert 2.0 < test_loss < 3.0  # from ln 27 = 3.30, after 300 steps of SGD
    samples = [line for line in printed if line.startswith("  ")]
    assert len(samples) == 10 and all(line.endswith(("(new)", "(in the training set)", "(in the test set)"))
                                      for line in samples)
    dev_loss = float(printed[-2].removeprefix("dev loss: "))  # DESIGN: and for Zero to Hero's split, dev loss: X
    history = json.loads((out / "history.json").read_text())
    assert history["test_loss"] == pytest.approx(test_loss, abs=5e-5)
    assert history["dev_loss"] == pytest.approx(dev_loss, abs=5e-5)
    model = hg.load(out / "model.safetensors")
    _, dev, test = zero_to_hero_split(load_names(SHARED_DATA))
    assert hg.train.evaluate(model, *contexts(test, 3))[0] == pytest.approx(test_loss, abs=5e-5)
    assert hg.train.evaluate(model, *contexts(dev, 3))[0] == pytest.approx(dev_loss, abs=5e-5)

    assert main(["generate", str(out / "model.safetensors"), "--samples", "30", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    heads = [line for line in lines if not line.startswith("  ")]
    assert [h.split(" ", 1)[1] for h in heads] == ["in the training set:", "in the test set:", "new:"]
    assert sum(int(h.split(" ")[0]) for h in heads) == 30


def test_train_on_any_file_of_words_and_generate_without_the_file(tmp_path, capsys):
    words = tmp_path / "pets.txt"
    pets = ["rex", "bella", "max", "luna", "coco", "milo", "daisy", "rocky", "lola", "toby"]
    words.write_text("\n".join(pets * 12))
    chars = len(set("".join(pets)))  # 17, and the start/end token: a table of 18 x 18 logits
    out = tmp_path / "run"
    assert main(["train", "--data-file", str(words), "--model", "bigram", "--max-steps", "50", "--eval-interval", "25",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"dataset pets.txt: 120 words of {chars} characters, 108 train / 12 test "
                                 f"(makemore split); model bigram ({(chars + 1) ** 2} parameters)")
    assert printed[-1].startswith("test loss: ")
    words.unlink()  # generate still draws words; it cannot say which are new, and says so
    assert main(["generate", str(out / "model.safetensors"), "--samples", "4"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 4 and "the words are not marked" in captured.err


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "mnist", "--data-file", "x.txt"], "--data-file is a file of words, one a line, for "
                                                                "--dataset names; not for --dataset mnist"),
    (["train", "--dataset", "names", "--model", "mlp", "--activation", "tanh"],
     "--activation applies to --model mlp, not mlp-words (what --model mlp means on words)"),
    (["train", "--dataset", "names", "--model", "cnn"], "--model cnn cannot learn names (words)"),
    (["train", "--dataset", "names", "--model", "mlp-bn", "--warmup", "10"], "--warmup applies to a warmup then a "
                                                                              "cosine decay"),
    (["train", "--dataset", "names", "--model", "wavenet", "--n-layer", "2"], "--n-layer applies to"),
    (["train", "--dataset", "names", "--model", "wavenet", "--block-size", "6"], "--block-size 6: wavenet fuses two "
                                                                                  "groups"),
    (["train", "--dataset", "digits", "--data-file", "x.txt"], "--data-file is a file of words, one a line, for "
                                                                "--dataset names; not for --dataset digits"),
])
def test_word_training_mistakes_are_one_line_errors(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args + ["--data-dir", str(SHARED_DATA)]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("count", [1, 5, 9])
def test_a_file_of_too_few_words_to_split_is_a_one_line_error(tmp_path, capsys, count):
    """Fewer than 10 words left an empty test split: "max() arg is an empty sequence"."""
    path = tmp_path / "few.txt"
    path.write_text("\n".join(f"w{'ab'[i % 2]}{i}" for i in range(count)))
    for model in ("bigram", "mlp-bn"):
        assert main(["train", "--data-file", str(path), "--model", model, "--out", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err
        assert f"few.txt: {count} words are too few to split" in err and "at least 10" in err
        assert len(err.strip().splitlines()) == 1


def test_a_binary_data_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x00\x01\x02" * 10)
    assert main(["train", "--data-file", str(path), "--model", "bigram", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "a binary file" in err and len(err.strip().splitlines()) == 1


def test_load_dataset_names_gives_makemores_examples_and_split(names):
    (x, y), (x_test, y_test) = hg.data.load_dataset("names", data_dir=SHARED_DATA, download=False)
    train, test = makemore_split(names)
    assert x.shape == (31_033, 16) and x_test.shape == (1_000, 16)
    np.testing.assert_array_equal(x_test, sequences(test, 16)[0])
    np.testing.assert_array_equal(y, sequences(train, 16)[1])


def test_a_bow_draws_no_more_characters_than_its_positions():
    """The BoW's position embeddings have block_size rows: a longer --max-length is capped, as a
    GPT's is, instead of failing halfway through the drawing."""
    words = Words.of(["anna", "bob", "carla"])
    model = bow(words.vocab_size, words.block_size, n_embd=4, n_embd2=4, seed=0)
    drawn = generate_words(model, words, 6, max_length=50, temperature=2.0, seed=1)
    assert max(len(word) for word in drawn) <= words.block_size - 1
    free = mlp(words.vocab_size, 3, n_embd=4, n_embd2=4, seed=0)  # PreviousTokens reads any length
    assert len(generate_words(free, words, 1, max_length=40, temperature=0, seed=1)[0]) <= 40


@pytest.mark.parametrize("model, expected", [("mlp", "mlp-words"), ("mlp-words", "mlp-words"), ("bow", "bow")])
def test_makemores_mlp_is_model_mlp_on_words_and_bow_trains_too(tmp_path, capsys, model, expected):
    """makemore.py's --type mlp is handgrad's --model mlp on a file of words (mlp-words, its
    long name); on images --model mlp stays handgrad's perceptron."""
    words = tmp_path / "pets.txt"
    words.write_text("\n".join(["rex", "bella", "max", "luna", "coco", "milo", "daisy", "rocky", "lola", "toby"] * 12))
    out = tmp_path / "run"
    assert main(["train", "--data-file", str(words), "--model", model, "--max-steps", "30", "--eval-interval", "15",
                 "--hidden", "8", "--n-embd", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert f"; model {expected} (" in printed[0] and printed[-1].startswith("test loss: ")
    loaded = hg.load(out / "model.safetensors")
    assert [type(layer).__name__ for layer in loaded.layers][:2] == (
        ["PreviousTokens", "Embedding"] if expected == "mlp-words" else ["Embedding", "PositionEmbedding"])
    assert main(["generate", str(out / "model.safetensors"), "--samples", "3", "--seed", "2"]) == 0
    assert hg.registry.recipe("mlp", "digits").model == "mlp" and hg.registry.recipe("mlp", "names").model == "mlp-words"
