"""Seq2seq (the second book's chapters 7 and 8): gradients against numerical ones for every
variant, greedy answers, exact-answer accuracy, save/load, and learning a task for real."""

import numpy as np
import pytest

import handgrad as hg
from handgrad.data import CharVocab
from handgrad.gradcheck import numerical_gradient
from handgrad.model import Seq2seq

VOCAB = CharVocab("0123456789+ _")


def toy_sums(n, seed=0):
    """Questions 'a+b' (one digit each, 3 characters) and answers '_s ' padded to 4: a small
    problem of the book's kind that a seq2seq learns in seconds."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 10, n), rng.integers(0, 10, n)
    x = np.stack([VOCAB.encode(f"{i}+{j}") for i, j in zip(a, b)])
    t = np.stack([VOCAB.encode(f"_{i + j}".ljust(4)) for i, j in zip(a, b)])
    return x, t


VARIANTS = [dict(), dict(peeky=True), dict(attention=True), dict(reverse_input=True), dict(peeky=True, reverse_input=True)]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(v) or "plain")
def test_every_gradient_matches_the_numerical_one(variant):
    model = Seq2seq(VOCAB, 3, 4, embed=3, hidden=5, seed=1, dtype=np.float64, **variant)
    rng = np.random.default_rng(2)
    for value in model.params.values():  # weights of order 1: gradients well above rounding
        value[...] = rng.standard_normal(value.shape)
    x, t = toy_sums(4, seed=3)
    model.loss(x, t)
    model.backward()
    analytic = {name: grad.copy() for name, grad in model.grads.items()}
    for name, value in model.params.items():
        numerical = numerical_gradient(lambda _: model.loss(x, t), value)
        error = np.abs(analytic[name] - numerical).max() / np.abs(numerical).max()
        assert error < 1e-6, (name, error)


def test_generation_is_greedy_decoding_of_the_models_own_scores():
    model = Seq2seq(VOCAB, 3, 4, embed=4, hidden=6, attention=True, seed=0, dtype=np.float64)
    x, _ = toy_sums(5)
    answers = model.generate(x)
    assert answers.shape == (5, 4) and answers.dtype == np.int64 and np.all(answers[:, 0] == VOCAB.id_of("_"))
    with model.mode(False):  # step by step: each character is the argmax given the ones before it
        scores = model.decode(model.encode(x), answers[:, :-1])
    np.testing.assert_array_equal(scores.argmax(axis=-1), answers[:, 1:])


def test_learns_one_digit_sums_and_answers_in_text(tmp_path):
    x, t = toy_sums(2000)
    x_test, t_test = toy_sums(300, seed=9)
    model = Seq2seq(VOCAB, 3, 4, embed=8, hidden=32, attention=True, seed=0)
    history = hg.fit(model, hg.optim.Adam(lr=1e-2), (x, t), val=(x_test, t_test), epochs=8, batch_size=64, seed=0)
    assert history["val_accuracy"][-1] >= 0.9  # whole answers right, generated
    assert history["val_accuracy"][-1] == pytest.approx(model.accuracy(x_test, t_test))
    assert model.answer("3+4") == "7" and model.answer("9+8") == "17"
    hg.save(model, tmp_path / "s2s.safetensors")
    again = hg.load(tmp_path / "s2s.safetensors")
    assert again.spec() == model.spec()
    np.testing.assert_array_equal(again.generate(x_test), model.generate(x_test))


def test_bad_questions_are_refused_clearly():
    model = Seq2seq(VOCAB, 3, 4, embed=4, hidden=6, seed=0)
    with pytest.raises(ValueError, match="the question has 5 characters; this model reads at most 3"):
        model.answer("12+34")
    with pytest.raises(ValueError, match="characters 'x' are not in the vocabulary"):
        model.answer("1+x")
    with pytest.raises(ValueError, match=r"Seq2seq: expected questions of shape \(N, 3\), got \(2, 4\)"):
        model.generate(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="choose peeky or attention, not both"):
        Seq2seq(VOCAB, 3, 4, peeky=True, attention=True)


@pytest.mark.parametrize("variant", VARIANTS[:3], ids=["plain", "peeky", "attention"])
def test_loss_and_every_gradient_equal_pytorchs_mirror_in_float64(torch, variant):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from sequences import torch_seq2seq  # the mirror benchmarks/sequences.py trains beside handgrad

    model = Seq2seq(VOCAB, 3, 4, embed=5, hidden=7, seed=3, dtype=np.float64, reverse_input=True, **variant)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the mirror's modules are built in float64, not rounded to float32
    try:
        net = torch_seq2seq(torch, model)
    finally:
        torch.set_default_dtype(previous)
    x, t = toy_sums(6, seed=4)
    loss = model.loss(x, t)
    model.backward()
    X, T = torch.from_numpy(x), torch.from_numpy(t)
    scores = net(X, T[:, :-1])
    torch_loss = torch.nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]), T[:, 1:].reshape(-1))
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    theirs = {"enc_embed.W": net.enc_embed.weight.grad, "dec_embed.W": net.dec_embed.weight.grad,
              "out.W": net.out.weight.grad.T, "out.b": net.out.bias.grad}
    for name, lstm in (("encoder", net.encoder), ("decoder", net.decoder)):
        theirs.update({f"{name}.Wx": lstm.weight_ih_l0.grad.T, f"{name}.Wh": lstm.weight_hh_l0.grad.T,
                       f"{name}.b": lstm.bias_ih_l0.grad})
    assert set(theirs) == set(model.grads)
    for name, grad in theirs.items():
        np.testing.assert_allclose(model.grads[name], grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_a_crafted_spec_is_refused_before_building():
    spec = Seq2seq(VOCAB, 3, 4, embed=4, hidden=6, seed=0).spec()
    with pytest.raises(ValueError, match="start symbol '_'"):
        Seq2seq.param_shapes({**spec, "vocab": "0123456789+ "})
    with pytest.raises(ValueError, match="answer_length must be a positive integer"):
        Seq2seq.param_shapes({**spec, "answer_length": 10**9})


def test_a_vocabulary_without_the_start_symbol_is_refused():
    with pytest.raises(ValueError, match="the vocabulary needs the start symbol '_'"):
        Seq2seq(CharVocab("0123456789+ "), 3, 4)
