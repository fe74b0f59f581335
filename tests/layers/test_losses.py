"""handgrad.layers.losses: SoftmaxWithLoss with index, one-hot and soft targets, label smoothing,
one sample, and sequences with ignore_index: numerical gradients (hypothesis and many shapes),
PyTorch parity (float64, float32), the messages for bad labels, and old specs. The checks every
layer gets (gradient check, contract, spec, PyTorch, ONNX) come from its row in the table of
layer cases, tests/layer_cases.py, run by tests/test_layer_cases.py."""

import math

import numpy as np
import pytest
from helpers import TOL_BY_DTYPE as TOL
from helpers import DTYPES, close, seeds, sizes, targets, torch_input
from helpers import random_ids as _ids
from hypothesis import given
from hypothesis import strategies as st

from handgrad import functions as F
from handgrad.gradcheck import gradient_check
from handgrad.layers import SoftmaxWithLoss

RNG = np.random.default_rng(1234)


# --- numerical gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("target_kind", ["index", "one_hot", "soft"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@given(seed=seeds, n=sizes, c=st.integers(2, 6))
def test_softmax_with_loss_gradient_matches_numerical(target_kind, label_smoothing, seed, n, c):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    soft = F.softmax(rng.standard_normal((n, c)))
    t = {"index": labels, "one_hot": F.one_hot(labels, c), "soft": soft}[target_kind]
    # Unit-scale logits: deep in saturation the loss is ~1e-6, float64 rounds it at ~1e-16 and
    # central differences lose the digits the relative error needs (see the walkthrough).
    report = gradient_check(SoftmaxWithLoss(label_smoothing), rng.standard_normal((n, c)), t)
    assert report.passed, str(report)


@given(seed=seeds, c=st.integers(2, 6))
def test_softmax_with_loss_gradient_for_one_sample(seed, c):
    rng = np.random.default_rng(seed)
    label = int(rng.integers(0, c))
    report = gradient_check(SoftmaxWithLoss(), rng.standard_normal(c), label)
    assert report.analytic["x"].shape == (c,)
    assert report.passed, str(report)


def test_softmax_with_loss_unnormalised_soft_targets_get_the_exact_gradient():
    # Rows that do not sum to 1: (y - t) / N would be wrong; y * sum(t) - t is exact.
    rng = np.random.default_rng(3)
    t = rng.uniform(0, 2, (3, 4))
    report = gradient_check(SoftmaxWithLoss(), rng.standard_normal((3, 4)), t)
    assert report.passed, str(report)


def test_softmax_with_loss_target_kinds_agree():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3))
    labels = rng.integers(0, 3, 5)
    results = []
    for t in (labels, F.one_hot(labels, 3), F.one_hot(labels, 3).astype(np.int64)):
        layer = SoftmaxWithLoss()
        results.append((layer.forward(x, t), layer.backward()))
    for loss, dx in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-14)
        np.testing.assert_allclose(dx, results[0][1], rtol=1e-14, atol=1e-16)
    assert results[0][0] == pytest.approx(F.cross_entropy(x, labels), rel=1e-14)


# --- PyTorch parity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["index", "one_hot", "soft"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_softmax_with_loss(torch, dtype, kind, label_smoothing):
    rng = np.random.default_rng(13)
    x = (2 * rng.standard_normal((8, 5))).astype(dtype)
    t, t_torch = targets(torch, kind, rng.integers(0, 5, 8), 5, rng, dtype)
    layer = SoftmaxWithLoss(label_smoothing=label_smoothing)
    loss = layer.forward(x, t)
    dx = layer.backward(2.5)
    x_t = torch_input(torch, x)
    loss_t = torch.nn.functional.cross_entropy(x_t, t_torch, label_smoothing=label_smoothing)
    (2.5 * loss_t).backward()
    close(loss, loss_t, dtype)
    close(dx, x_t.grad, dtype)


def test_softmax_with_loss_one_sample(torch):
    x = np.array([0.3, -1.2, 2.0, 0.1])
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, 2)
    dx = layer.backward()
    x_t = torch_input(torch, x)
    loss_t = torch.nn.functional.cross_entropy(x_t, torch.tensor(2))
    loss_t.backward()
    close(loss, loss_t, np.float64)
    close(dx, x_t.grad, np.float64)


# --- sequences, ignore_index --------------------------------------------------------------------------


def _seq_targets(N, T, C, seed, ignore=-100):
    t = _ids((N, T), C, seed)
    if N * T > 1:
        t.flat[::3] = ignore
    return t


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("N, T, C", [(1, 1, 3), (2, 5, 7), (3, 1, 4), (1, 4, 5)])
def test_softmax_with_loss_sequence_gradient_check(label_smoothing, N, T, C):
    t = _seq_targets(N, T, C, seed=N * T)
    report = gradient_check(SoftmaxWithLoss(label_smoothing), RNG.standard_normal((N, T, C)), t)
    assert report.passed, str(report)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_sequence_cross_entropy_matches_torch(torch, dtype, label_smoothing, ignore_index):
    N, T, C = 3, 5, 6
    x = (RNG.standard_normal((N, T, C)) * 2).astype(dtype)
    t = _seq_targets(N, T, C, seed=7, ignore=ignore_index)
    layer = SoftmaxWithLoss(label_smoothing=label_smoothing, ignore_index=ignore_index)
    loss = layer.forward(x, t)
    dx = layer.backward(1.0)
    xt = torch.tensor(x, requires_grad=True)
    # PyTorch wants the class axis second: (N, C, T).
    loss_t = torch.nn.functional.cross_entropy(xt.transpose(1, 2), torch.tensor(t), ignore_index=ignore_index,
                                               label_smoothing=label_smoothing)
    loss_t.backward()
    assert dx.dtype == dtype
    np.testing.assert_allclose(loss, loss_t.item(), **TOL[dtype])
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL[dtype])
    assert np.all(dx[t == ignore_index] == 0)
    for reduction in ("mean", "sum", "none"):
        ours = F.cross_entropy(x, t, reduction=reduction, label_smoothing=label_smoothing, ignore_index=ignore_index)
        ref = torch.nn.functional.cross_entropy(torch.tensor(x).transpose(1, 2), torch.tensor(t), reduction=reduction,
                                                ignore_index=ignore_index, label_smoothing=label_smoothing)
        np.testing.assert_allclose(ours, ref.numpy(), **TOL[dtype])


def test_all_ignored_mean_is_nan_and_gradient_zero_as_torch(torch):
    x = RNG.standard_normal((2, 3, 4))
    t = np.full((2, 3), -100)
    layer = SoftmaxWithLoss()
    assert math.isnan(layer.forward(x, t))
    assert np.all(layer.backward() == 0)
    assert math.isnan(F.cross_entropy(x, t))
    assert F.cross_entropy(x, t, reduction="sum") == 0.0
    assert math.isnan(torch.nn.functional.cross_entropy(torch.tensor(x).transpose(1, 2), torch.tensor(t)).item())


def test_sequence_loss_with_probability_rows_equals_labels():
    x = RNG.standard_normal((2, 3, 5))
    t = _ids((2, 3), 5, 3)
    by_labels, by_rows = SoftmaxWithLoss(), SoftmaxWithLoss()
    assert by_labels.forward(x, t) == pytest.approx(by_rows.forward(x, F.one_hot(t, 5)), rel=1e-12)
    np.testing.assert_allclose(by_labels.backward(), by_rows.backward(), rtol=1e-12, atol=1e-15)


# --- errors and specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "t, error, message",
    [
        (np.array([0, 5]), ValueError, r"SoftmaxWithLoss: labels must lie in \[0, 3\) for 3 classes, got values from 0 to 5"),
        (np.array([-1, 0]), ValueError, r"SoftmaxWithLoss: labels must lie in \[0, 3\)"),
        (np.array([0, 1, 2]), ValueError, r"SoftmaxWithLoss: expected 2 label\(s\) of shape \(2,\), got labels of shape \(3,\)"),
        (np.array([[0, 1]]), ValueError, r"SoftmaxWithLoss: target rows of shape \(1, 2\) do not match scores of shape \(2, 3\)"),
        (np.array(["a", "b"]), TypeError, "SoftmaxWithLoss: class labels must be integers"),
    ],
)
def test_softmax_with_loss_refuses_bad_labels(t, error, message):
    with pytest.raises(error, match=message):
        SoftmaxWithLoss().forward(np.zeros((2, 3)), t)


def test_softmax_with_loss_refuses_non_scalar_dout():
    layer = SoftmaxWithLoss()
    layer.forward(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="scalar dout"):
        layer.backward(np.ones((2, 3)))


def test_sequence_loss_errors_name_layer_and_range():
    with pytest.raises(ValueError, match=r"SoftmaxWithLoss: labels must lie in \[0, 3\) for 3 classes, got values from 0 "
                                         r"to 3 \(or equal ignore_index=-100\)"):
        SoftmaxWithLoss().forward(np.zeros((2, 2, 3)), np.array([[0, -100], [3, 1]]))
    with pytest.raises(ValueError, match=r"SoftmaxWithLoss: expected 4 label\(s\) of shape \(2, 2\)"):
        SoftmaxWithLoss().forward(np.zeros((2, 2, 3)), np.array([0, 1]))
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        SoftmaxWithLoss(ignore_index=1.5)


def test_old_softmax_spec_without_ignore_index_loads_with_torchs_default():
    assert SoftmaxWithLoss.from_spec({"type": "SoftmaxWithLoss", "label_smoothing": 0.0}).ignore_index == -100
