"""A batch split over threads (handgrad.threads): the same step as one thread up to the order of
sums (float64, 1e-12), refusals of what cannot be split, the one setting, and fit_lm with it."""

import copy

import numpy as np
import pytest

import handgrad as hg
from handgrad.cli import main
from handgrad.data.words import Words, sequences
from handgrad.model.makemore import rnn, transformer
from handgrad.threads import BatchThreads, threads_setting
from handgrad.train import train_step


def _mlp(weight_decay=0.0):
    return hg.mlp(6, [5], 3, seed=1, dtype=np.float64, weight_decay=weight_decay)


def _gpt():
    return hg.model.GPT(11, 8, 2, 2, 8, seed=2, dtype=np.float64)


def _words_rnn():
    words = Words.of(["anna", "bob", "carla", "dan", "eve", "fred", "gus"])
    return rnn(words.vocab_size, n_embd=4, n_embd2=5, seed=3, dtype=np.float64), sequences(words, words.block_size)


def _seq2seq():
    vocab = hg.data.CharVocab("0123456789+ _")
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 10, 7), rng.integers(0, 10, 7)
    x = np.stack([vocab.encode(f"{i}+{j}") for i, j in zip(a, b)])
    t = np.stack([vocab.encode(f"_{i + j}".ljust(4)) for i, j in zip(a, b)])
    return hg.model.Seq2seq(vocab, 3, 4, embed=3, hidden=5, attention=True, seed=1, dtype=np.float64), (x, t)


def _lstm_classifier():
    """``handgrad train --model lstm``'s shape (split by default on MNIST and MNIST-1D), in float64:
    each sample of 6 values read as 3 steps of 2, LSTM 5, the last state, Affine 3."""
    rng = np.random.default_rng(8)
    return hg.Sequential([hg.layers.Reshape((3, 2)), hg.layers.LSTM(rng.normal(0, 0.5, (2, 20)), rng.normal(0, 0.5, (5, 20)),
                                                                   rng.normal(0, 0.5, 20)),
                          hg.layers.LastStep(), hg.layers.Affine(rng.normal(0, 0.5, (5, 3)), np.zeros(3))], seed=0)


def _batch(model, rng):
    if isinstance(model, hg.model.GPT):
        return rng.integers(0, 11, (7, 8)), rng.integers(0, 11, (7, 8))
    return rng.standard_normal((7, 6)), rng.integers(0, 3, 7)


@pytest.mark.parametrize("make", [_mlp, lambda: _mlp(weight_decay=0.1), _gpt, _words_rnn, _seq2seq,
                                  lambda: hg.mlp(6, [5, 4], 3, seed=1, dtype=np.float64, dropout=0.5), _lstm_classifier],
                         ids=["mlp", "mlp-l2", "gpt", "rnn-padded-words", "seq2seq-attention", "mlp-dropout", "lstm"])
@pytest.mark.parametrize("threads", [2, 3])
def test_a_split_step_is_one_threads_step_up_to_the_order_of_sums(make, threads):
    """Three AdamW steps each way from the same weights: the same losses, the same right answers
    and the same weights, float64 to 1e-12. Shards of unequal size (7 rows in 2 or 3), and words
    padded with the ignore index (the shards' counted targets differ) included."""
    built = make()
    model, data = built if isinstance(built, tuple) else (built, None)
    rng = np.random.default_rng(4)
    alone = copy.deepcopy(model)
    optimizers = [hg.optim.AdamW(lr=0.01, weight_decay=0.01), hg.optim.AdamW(lr=0.01, weight_decay=0.01)]
    with BatchThreads(model, threads) as split:
        for _ in range(3):
            xb, tb = _batch(model, rng) if data is None else data
            ours = train_step(model, optimizers[0], xb, tb, parallel=split)
            theirs = train_step(alone, optimizers[1], xb, tb)
            assert ours.loss == pytest.approx(theirs.loss, rel=1e-12, abs=0)
            assert (ours.correct, ours.counted) == (theirs.correct, theirs.counted)
            for name, value in model.params.items():  # atol: see the last test (the key biases)
                np.testing.assert_allclose(value, alone.params[name], rtol=1e-12, atol=1e-12, err_msg=name)
        for name, grad in model.grads.items():  # the last step's gradients, the whole batch's
            np.testing.assert_allclose(grad, alone.grads[name], rtol=1e-11, atol=1e-14, err_msg=name)


def test_the_replicas_share_the_models_weights_and_the_blas_setting_is_put_back():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    model = _gpt()
    before = [lib.num_threads for lib in threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers]
    with BatchThreads(model, 2) as split:
        replica = split.replicas[1]
        assert all(replica.params[name] is array for name, array in model.params.items())
        assert all(replica.grads[name] is not grad for name, grad in model.grads.items())
        xb, tb = _batch(model, np.random.default_rng(0))
        split.forward_backward(model, xb, tb)
        after = [lib.num_threads for lib in threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers]
    assert after == before


def test_a_batch_smaller_than_the_threads_and_a_nan_loss():
    model = _mlp()
    alone = copy.deepcopy(model)
    x, t = np.random.default_rng(5).standard_normal((1, 6)), np.array([2])
    with BatchThreads(model, 4) as split:
        loss, correct, counted = split.forward_backward(model, x, t)
        assert counted == 1 and loss == pytest.approx(alone.loss(x, t), rel=1e-12)
        model.params["0.W"][0, 0] = np.nan
        loss, correct, counted = split.forward_backward(model, np.ones((4, 6)), np.zeros(4, int))
        assert np.isnan(loss) and (correct, counted) == (0, 0)


@pytest.mark.parametrize("make, named", [
    (lambda: hg.mlp(4, [3], 2, batchnorm=True), "layer 1 (BatchNorm)"),
    (lambda: hg.model.GPT(5, 4, 1, 1, 4, dropout=0.1), "dropout 0.1"),
    (lambda: hg.Sequential([hg.layers.LSTM(np.zeros((3, 8)), np.zeros((2, 8)), np.zeros(8), stateful=True),
                            hg.layers.LastStep(), hg.layers.Affine(np.zeros((2, 2)), np.zeros(2))]),
     "layer 0 (LSTM, stateful)"),
])
def test_what_a_split_would_change_is_refused_naming_it(make, named):
    with pytest.raises(ValueError, match="would not train the same model") as raised:
        BatchThreads(make(), 2)
    assert named in str(raised.value) and "use one thread (threads=1, --threads 1)" in str(raised.value)


def test_the_one_setting_threads_or_handgrad_threads(monkeypatch):
    monkeypatch.delenv("HANDGRAD_THREADS", raising=False)
    assert threads_setting() == 1 and threads_setting(3) == 3
    monkeypatch.setenv("HANDGRAD_THREADS", "2")
    assert threads_setting() == 2 and threads_setting(1) == 1  # the argument wins
    for bad, message in [("two", "HANDGRAD_THREADS must be a positive integer, got 'two'"),
                         ("0", "HANDGRAD_THREADS must be a positive integer <= 64, got 0")]:
        monkeypatch.setenv("HANDGRAD_THREADS", bad)
        with pytest.raises(ValueError, match=message):
            threads_setting()
    with pytest.raises(ValueError, match="threads must be a positive integer <= 64, got 65"):
        threads_setting(65)


def test_fit_lm_with_threads_trains_the_same_model_as_one_thread():
    words = Words.of(["anna", "bob", "carla", "dan", "eve", "fred", "gus", "hal"] * 3)
    data = sequences(words, words.block_size)
    runs = []
    for threads in (1, 2):
        model = transformer(words.vocab_size, words.block_size, n_layer=1, n_head=2, n_embd=8, seed=0,
                            dtype=np.float64)
        # The key biases' gradient is exactly 0 (see below): started at 0 (not PyTorch's uniform
        # draw), what they hold stays rounding, ~1e-14, instead of a decayed value plus rounding.
        model.params["h.0.attn.b_qkv"][8:16] = 0.0
        history = hg.train.fit_lm(model, hg.optim.AdamW(lr=0.01), data, data, block_size=None, batch_size=8,
                                  max_steps=6, eval_interval=3, eval_iters=2, seed=1, threads=threads)
        runs.append((model, history))
    (one, first), (two, second) = runs
    for name, value in one.params.items():
        theirs = two.params[name]
        if name.endswith("b_qkv"):
            # The attention's key biases have a gradient of exactly 0 (a softmax does not see a
            # constant added to every score): from 0, what they hold is rounding, which Adam's
            # normalised step scales up to ~1e-12, differently for each order of sums.
            for run in (value, theirs):
                assert np.abs(run[8:16]).max() < 1e-9
            value, theirs = np.r_[value[:8], value[16:]], np.r_[theirs[:8], theirs[16:]]
        np.testing.assert_allclose(theirs, value, rtol=1e-12, atol=1e-12, err_msg=name)
    assert [r["val_loss"] for r in second.records] == pytest.approx([r["val_loss"] for r in first.records], rel=1e-12)
    with pytest.raises(ValueError, match="threads= splits a batch inside one process and distributed= across"):
        hg.train.fit_lm(one, hg.optim.AdamW(), data, data, block_size=None, threads=2, distributed=True)


def test_without_threadpoolctl_more_than_one_thread_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    import builtins

    real_import = builtins.__import__

    def no_threadpoolctl(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError("No module named 'threadpoolctl'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_threadpoolctl)
    with pytest.raises(ImportError, match=r"threads > 1 needs threadpoolctl.*pip install 'handgrad\[threads\]'"):
        BatchThreads(_mlp(), 2)
    with BatchThreads(_mlp(), 1) as alone:  # one thread needs nothing
        assert alone.replicas[0].params
    monkeypatch.delenv("HANDGRAD_THREADS", raising=False)
    code = main(["train", "--dataset", "digits", "--epochs", "1", "--threads", "2", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert ("--threads 2: a batch split over threads needs threadpoolctl, to give each thread one BLAS thread: "
            "pip install 'handgrad[threads]' (or --threads 1)") in err
    assert not (tmp_path / "r").exists()  # said before anything is trained or written
    # Asked for by the environment, the line names the environment variable (it once named a flag
    # the user never gave).
    monkeypatch.setenv("HANDGRAD_THREADS", "2")
    code = main(["train", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "HANDGRAD_THREADS=2: a batch split over threads needs threadpoolctl" in err
    monkeypatch.delenv("HANDGRAD_THREADS")
    assert hg.registry.recipe("deep-cnn", "mnist").threads == 1  # the default gives way without it
    assert hg.registry.recipe("lstm", "mnist").threads == 1  # and the dataset's


def test_fit_with_threads_trains_the_same_model_as_one_thread():
    rng = np.random.default_rng(6)
    x, t = rng.standard_normal((50, 6)), rng.integers(0, 3, 50)
    runs = []
    for threads in (1, 2):
        model = _mlp(weight_decay=0.01)
        history = hg.fit(model, hg.optim.Adam(lr=0.01), (x, t), val=(x, t), epochs=2, batch_size=16, threads=threads)
        runs.append((model, history))
    (one, first), (two, second) = runs
    for name, value in one.params.items():
        np.testing.assert_allclose(two.params[name], value, rtol=1e-12, atol=1e-12, err_msg=name)
    for a, b in zip(first.records, second.records):
        assert (b["train_loss"], b["train_accuracy"]) == (pytest.approx(a["train_loss"], rel=1e-12), a["train_accuracy"])
    with pytest.raises(ValueError, match="would not train the same model with layer 1 \\(BatchNorm\\)"):
        hg.fit(hg.mlp(6, [4], 3, batchnorm=True), hg.optim.SGD(), (x, t), epochs=1, threads=2)


def test_the_command_line_takes_threads_and_says_what_is_wrong_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HANDGRAD_THREADS", raising=False)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--threads", "2", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("test accuracy: ")
    for args, env, message in [
        (["--batchnorm", "--threads", "2"], None, "would not train the same model with layer 1 (BatchNorm)"),
        ([], "two", "HANDGRAD_THREADS must be a positive integer, got 'two'"),
    ]:
        if env is not None:
            monkeypatch.setenv("HANDGRAD_THREADS", env)
        code = main(["train", "--dataset", "digits", "--epochs", "1", "--out", str(out), *args])
        err = capsys.readouterr().err
        assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.delenv("HANDGRAD_THREADS")
    with pytest.raises(SystemExit):  # argparse's own one line
        main(["train", "--dataset", "digits", "--threads", "0"])
    assert "argument --threads: must be a positive integer, got 0" in capsys.readouterr().err
    assert hg.registry.recipe("gpt", "shakespeare").threads == min(2, __import__("os").cpu_count())
    assert hg.registry.recipe("transformer", "names").threads == 1  # measured slower split: not split
    # The LSTM's default depends on the dataset (benchmarks/threads.py): split on MNIST's 28 rows
    # and MNIST-1D's 40 values at batch 100, not on the digits' 8 rows at batch 32.
    for dataset in ("mnist", "fashion-mnist", "mnist1d"):
        assert hg.registry.recipe("lstm", dataset).threads == min(2, __import__("os").cpu_count()), dataset
    assert hg.registry.recipe("lstm", "digits").threads == 1
    assert hg.registry.recipe("lstm", "mnist", threads=1).threads == 1
    monkeypatch.setenv("HANDGRAD_THREADS", "1")
    assert hg.registry.recipe("lstm", "mnist").threads == 1  # the environment's setting wins over the tuned one
    monkeypatch.delenv("HANDGRAD_THREADS")
    assert hg.registry.recipe("gpt", "shakespeare", threads=1).threads == 1


def test_dropout_masks_are_one_threads_even_after_a_step_taken_without_the_threads():
    """Each shard draws the whole batch's mask from the model's generator state (synchronised
    before every split step) and keeps its rows: a one-thread step in between (which advances
    only the model's own generator) changes nothing."""
    model = hg.mlp(6, [5, 4], 3, seed=1, dtype=np.float64, dropout=0.5)
    alone = copy.deepcopy(model)
    rng = np.random.default_rng(9)
    batches = [_batch(model, rng) for _ in range(3)]
    optimizers = [hg.optim.SGD(lr=0.1), hg.optim.SGD(lr=0.1)]
    with BatchThreads(model, 2) as split:
        for step, (xb, tb) in enumerate(batches):
            train_step(model, optimizers[0], xb, tb, parallel=split if step != 1 else None)
            train_step(alone, optimizers[1], xb, tb)
    for name, value in model.params.items():
        np.testing.assert_allclose(value, alone.params[name], rtol=1e-12, atol=1e-12, err_msg=name)
