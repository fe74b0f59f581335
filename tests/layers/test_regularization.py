"""handgrad.layers.regularization: Dropout (inverted, seeded, the identity in evaluation) and
BatchNorm (numerical gradients in both modes, running statistics as PyTorch keeps them, PyTorch
parity in float64 in training and evaluation). The checks every layer gets (gradient check,
contract, spec, PyTorch, ONNX) come from its row in the table of layer cases,
tests/layer_cases.py, run by tests/test_layer_cases.py."""

import numpy as np
import pytest
from helpers import TOL_FLOAT64 as TOL
from helpers import seeds, torch_grads
from hypothesis import given
from hypothesis import strategies as st

from handgrad.gradcheck import gradient_check
from handgrad.layers import BatchNorm, Dropout


@given(seed=seeds, shape=st.sampled_from([(4, 3), (1 + 2, 5), (3, 2, 3, 3), (2, 4, 1, 2)]))
def test_batchnorm_gradients_match_numerical_in_both_modes(seed, shape):
    rng = np.random.default_rng(seed)
    layer = BatchNorm(shape[1], dtype=np.float64)
    layer.params["gamma"][...] = rng.uniform(0.5, 2, shape[1])
    layer.params["beta"][...] = rng.standard_normal(shape[1])
    x = rng.standard_normal(shape) * 2 + 1
    assert gradient_check(layer, x, seed=seed).passed
    layer.forward(x)  # some running statistics, then evaluation mode
    layer.eval()
    assert gradient_check(layer, x, seed=seed).passed


def test_dropout_is_inverted_and_seeded():
    x = np.ones((2000, 50), np.float32)
    layer = Dropout(0.3, rng=np.random.default_rng(0))
    y = layer.forward(x)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.7)}
    assert abs(y.mean() - 1.0) < 0.01 and abs((y == 0).mean() - 0.3) < 0.01
    again = Dropout(0.3, rng=np.random.default_rng(0)).forward(x)
    np.testing.assert_array_equal(y, again)
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x), x)


def test_batchnorm_running_statistics_follow_pytorchs_convention():
    rng = np.random.default_rng(3)
    layer = BatchNorm(3, momentum=0.1, dtype=np.float64)
    x = rng.standard_normal((8, 3)) * 3 + 2
    layer.forward(x)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(layer.buffers["running_var"], 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-12)


# --- PyTorch parity (float64, 1e-9) -------------------------------------------------------------------


# Each parity test takes the session fixture `torch` (tests/conftest.py): it skips without
# PyTorch and fails under HANDGRAD_REQUIRE_TORCH=1.


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 5)])
def test_batchnorm_matches_torch_in_train_and_eval_after_steps(shape, torch):
    rng = np.random.default_rng(8)
    ours = BatchNorm(4, momentum=0.2, eps=1e-4, dtype=np.float64)
    theirs = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(4, momentum=0.2, eps=1e-4,
                                                                                 dtype=torch.float64)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.standard_normal(4)
    ours.params["gamma"][...], ours.params["beta"][...] = gamma, beta
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(gamma))
        theirs.bias.copy_(torch.tensor(beta))
    for step in range(3):
        x = rng.standard_normal(shape) * (step + 1) + step
        dout = rng.standard_normal(shape)
        out = ours.forward(x)
        dx = ours.backward(dout)
        theirs.zero_grad()  # torch accumulates gradients across backward calls
        out_t, dx_t = torch_grads(torch, theirs, x, dout)
        np.testing.assert_allclose(out, out_t, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(dx, dx_t, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(ours.grads["gamma"], theirs.weight.grad.numpy(), rtol=TOL, atol=TOL)
        np.testing.assert_allclose(ours.grads["beta"], theirs.bias.grad.numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ours.buffers["running_mean"], theirs.running_mean.numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var.numpy(), rtol=TOL, atol=TOL)
    ours.eval()
    theirs.eval()
    x, dout = rng.standard_normal(shape), rng.standard_normal(shape)
    out = ours.forward(x)
    dx = ours.backward(dout)
    out_t, dx_t = torch_grads(torch, theirs, x, dout)
    np.testing.assert_allclose(out, out_t, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(dx, dx_t, rtol=TOL, atol=TOL)


def test_dropout_eval_mode_matches_torch(torch):
    x = np.random.default_rng(9).standard_normal((4, 5))
    layer = Dropout(0.5)
    layer.eval()
    module = torch.nn.Dropout(0.5)
    module.eval()
    out_t, dx_t = torch_grads(torch, module, x, np.ones_like(x))
    np.testing.assert_array_equal(layer.forward(x), out_t)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), dx_t)
