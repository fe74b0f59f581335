"""Training a language model by steps, as nanoGPT does: random windows, evaluation every few
steps, warmup and cosine decay, weight decay on matrices only, exact resume."""

import math

import numpy as np
import pytest

import handgrad as hg
from handgrad.layers import Affine, Embedding
from handgrad.train import ResumeMismatch, fit_lm, lm_batch


def bigram(vocab=5, dim=8, seed=0):
    """The smallest language model: an embedding, then scores for the next token (N, T, V)."""
    rng = np.random.default_rng(seed)
    return hg.Sequential([Embedding(rng.standard_normal((vocab, dim)) * 0.1),
                          Affine(rng.standard_normal((dim, vocab)) * 0.1, np.zeros(vocab))])


def cyclic_stream(n, vocab=5):
    ids = np.arange(n) % vocab  # each token fully predicts the next
    return ids[:-1], ids[1:]


def test_batches_are_aligned_random_windows():
    x, t = cyclic_stream(100)
    xb, tb = lm_batch(x, t, block_size=7, batch_size=4, rng=np.random.default_rng(0))
    assert xb.shape == tb.shape == (4, 7) and xb.dtype.kind == "i"
    np.testing.assert_array_equal(tb, (xb + 1) % 5)
    assert np.all(np.diff(xb, axis=1) % 5 == 1)  # consecutive tokens of the stream
    starts = {int(lm_batch(x, t, 98, 1, np.random.default_rng(s))[0][0, 0]) for s in range(40)}
    assert starts == {0, 1}  # every start that fits, and only those (len 99, block 98)


def test_a_bigram_model_learns_a_deterministic_stream_and_logs_evaluations():
    records = []
    history = fit_lm(bigram(), hg.optim.AdamW(lr=3e-2, weight_decay=0.0), cyclic_stream(400), cyclic_stream(100),
                     block_size=8, batch_size=4, max_steps=60, eval_interval=20, eval_iters=3, log=records.append)
    assert [r["step"] for r in history.records] == [0, 20, 40, 60] and records == history.records
    assert history["val_loss"][0] == pytest.approx(math.log(5), abs=0.05)  # uniform at the start
    assert history["val_loss"][-1] < 0.1
    assert all(r["tokens_per_second"] > 0 for r in history.records[1:])


def test_warmup_then_cosine_decay_follows_nanogpts_formula():
    schedule = hg.optim.WarmupCosineLR(1e-3, warmup_steps=100, decay_steps=2000, min_lr=1e-4)

    def nanogpt_get_lr(it, learning_rate=1e-3, warmup_iters=100, lr_decay_iters=2000, min_lr=1e-4):
        if it < warmup_iters:
            return learning_rate * (it + 1) / (warmup_iters + 1)
        if it > lr_decay_iters:
            return min_lr
        decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (learning_rate - min_lr)

    for it in [0, 1, 50, 99, 100, 101, 1000, 1999, 2000, 2001, 5000]:
        assert schedule.lr_at(it) == pytest.approx(nanogpt_get_lr(it), rel=1e-15)
    with pytest.raises(ValueError, match="need 0 <= warmup_steps <= decay_steps"):
        hg.optim.WarmupCosineLR(1e-3, warmup_steps=10, decay_steps=5)


def test_adamw_can_decay_matrices_only_as_nanogpts_groups():
    params = {"W": np.ones((2, 2)), "b": np.ones(2)}
    grads = {"W": np.zeros((2, 2)), "b": np.zeros(2)}
    hg.optim.AdamW(lr=0.1, weight_decay=0.5, matrices_only=True).update(params, grads)
    np.testing.assert_allclose(params["W"], 0.95, rtol=1e-15)  # p -= lr λ p
    np.testing.assert_array_equal(params["b"], 1.0)


def test_an_interrupted_run_resumes_exactly(tmp_path):
    data = dict(train=cyclic_stream(300), val=cyclic_stream(80))
    kwargs = dict(block_size=6, batch_size=3, eval_interval=5, eval_iters=2, seed=3, grad_clip=1.0)

    def run(max_steps, resume=False, path=tmp_path / "ckpt.safetensors"):
        model = bigram(seed=7)
        optimizer = hg.optim.AdamW(lr=1e-2, weight_decay=0.1, matrices_only=True)
        schedule = hg.optim.WarmupCosineLR(1e-2, warmup_steps=3, decay_steps=20, min_lr=1e-3)
        history = fit_lm(model, optimizer, data["train"], data["val"], max_steps=max_steps, schedule=schedule,
                         checkpoint=path, resume=resume, **kwargs)
        return model, history

    straight, straight_history = run(20, path=tmp_path / "straight.safetensors")
    run(10)
    resumed, resumed_history = run(20, resume=True)
    for key, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[key], value, err_msg=key)
    assert resumed_history["val_loss"] == straight_history["val_loss"]
    with pytest.raises(ResumeMismatch, match="already trained 20 steps; max_steps=10 asks for fewer"):
        run(10, resume=True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(block_size=0), "block_size must be an integer >= 1"),
    (dict(block_size=500), "the training stream has 399 tokens, fewer than block_size=500"),
    (dict(eval_iters=0), "eval_iters must be an integer >= 1"),
    (dict(train=(np.zeros(50), np.zeros(50))), "two aligned 1-D streams of token ids"),
])
def test_bad_arguments_are_refused(kwargs, message):
    arguments = dict(train=cyclic_stream(400), val=cyclic_stream(100), block_size=8)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        fit_lm(bigram(), hg.optim.AdamW(), arguments.pop("train"), arguments.pop("val"), **arguments)


def test_ctrl_c_during_training_by_steps_saves_the_step_and_resumes_exactly(tmp_path):
    from test_train import _CtrlCAt

    data = dict(train=cyclic_stream(300), val=cyclic_stream(80))
    kwargs = dict(block_size=6, batch_size=3, eval_interval=5, eval_iters=2, seed=3, grad_clip=1.0, max_steps=20,
                  log_interval=4)

    def run(optimizer_of=lambda o: o, resume=False, path=tmp_path / "ckpt.safetensors"):
        model = bigram(seed=7)
        optimizer = optimizer_of(hg.optim.AdamW(lr=1e-2, weight_decay=0.1, matrices_only=True))
        schedule = hg.optim.WarmupCosineLR(1e-2, warmup_steps=3, decay_steps=20, min_lr=1e-3)
        history = fit_lm(model, optimizer, data["train"], data["val"], schedule=schedule, checkpoint=path,
                         checkpoint_every=0, resume=resume, **kwargs)
        return model, history

    straight, straight_history = run(path=tmp_path / "straight.safetensors")
    assert not (tmp_path / "straight.safetensors").exists()  # checkpoint_every=0: none without Ctrl-C
    assert [r["step"] for r in straight_history.steps] == [4, 8, 12, 16, 20]  # log_interval
    with pytest.raises(hg.train.TrainingInterrupted, match="step 7 of 20"):
        run(lambda o: _CtrlCAt(o, at=7))
    resumed, resumed_history = run(resume=True)
    for key, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[key], value, err_msg=key)
    assert resumed_history["val_loss"] == straight_history["val_loss"]
    assert [r["step"] for r in resumed_history.steps] == [4, 8, 12, 16, 20]
