"""handgrad.layers.activations: Relu, Sigmoid and Tanh on random shapes (hypothesis), GELU on odd
shapes, each against numerical gradients and PyTorch (float64, float32), and GELU's errors. The
checks every layer gets (gradient check, contract, spec, PyTorch, ONNX) come from its row in the
table of layer cases, tests/layer_cases.py, run by tests/test_layer_cases.py."""

import math

import numpy as np
import pytest
from helpers import DTYPES, assert_matches, close, seeds, sizes, torch_input
from hypothesis import given
from hypothesis import strategies as st

from handgrad import functions as F
from handgrad.gradcheck import gradient_check
from handgrad.layers import GELU, Relu, Sigmoid, Tanh

RNG = np.random.default_rng(1234)


# --- Relu, Sigmoid, Tanh ------------------------------------------------------------------------------


def away_from_zero(rng, shape, margin=0.05):
    """Random values at least `margin` from 0, so Relu's kink is never within eps."""
    u = rng.standard_normal(shape)
    return np.sign(u + (u == 0)) * (margin + np.abs(u))


@given(seed=seeds, shape=st.lists(sizes, min_size=1, max_size=4))
def test_relu_gradient_matches_numerical(seed, shape):
    rng = np.random.default_rng(seed)
    report = gradient_check(Relu(), away_from_zero(rng, shape), seed=seed)
    assert report.passed, str(report)


@pytest.mark.parametrize("layer_type", [Sigmoid, Tanh])
@given(seed=seeds, shape=st.lists(sizes, min_size=1, max_size=4))
def test_smooth_activation_gradients_match_numerical(layer_type, seed, shape):
    rng = np.random.default_rng(seed)
    # |x| <= 3 keeps the derivative above 1e-2; far out in saturation it is so small that the
    # loss's own rounding dominates the central difference.
    report = gradient_check(layer_type(), rng.uniform(-3, 3, shape), seed=seed)
    assert report.passed, str(report)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ours, theirs", [(Relu, "relu"), (Sigmoid, "sigmoid"), (Tanh, "tanh")])
def test_activations(torch, dtype, ours, theirs):
    rng = np.random.default_rng(11)
    x = (4 * rng.standard_normal((5, 3, 2))).astype(dtype)
    x[0, 0, 0] = 0.0  # Relu at exactly 0: torch's derivative there is 0, as is ours
    dout = rng.standard_normal(x.shape).astype(dtype)
    layer = ours()
    out = layer.forward(x)
    dx = layer.backward(dout)
    x_t = torch_input(torch, x)
    out_t = getattr(torch, theirs)(x_t)
    out_t.backward(torch.from_numpy(dout))
    close(out, out_t, dtype)
    close(dx, x_t.grad, dtype)


# --- GELU ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (1, 1, 1), (3, 1, 5), (2, 7)])
def test_gelu_gradient_check(approximate, shape):
    report = gradient_check(GELU(approximate), RNG.standard_normal(shape) * 2)
    assert report.passed, str(report)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gelu_matches_torch(torch, approximate, dtype):
    # Inputs within +-5, plus the branch points of the erf approximation (|x / sqrt 2| = 0.46875, 4).
    x = np.concatenate([RNG.uniform(-5, 5, 2000), [0.0, 0.46875 * math.sqrt(2), -0.46875 * math.sqrt(2),
                                                    4 * math.sqrt(2), -4 * math.sqrt(2)]]).astype(dtype).reshape(-1, 5)
    dout = RNG.standard_normal(x.shape).astype(dtype)
    layer = GELU(approximate)
    y = layer.forward(x)
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt, approximate=approximate)
    yt.backward(torch.tensor(dout))
    assert y.dtype == dtype and dx.dtype == dtype
    # float64: PyTorch's 1 + erf (1 + tanh) cancels for negative x, so its own result is exact
    # only to ~|x| 1.1e-16 absolute (2.8e-16 seen at x = -4.9, 1e-9 relative there): atol 1e-15.
    assert_matches(y, yt.detach().numpy(), dtype, atol64=1e-15)
    assert_matches(dx, xt.grad.numpy(), dtype, atol64=1e-15)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gelu_apply_gives_forwards_y_to_the_last_bit(approximate, dtype):
    """Generation (apply, with a KV cache) and training (forward) compute the same y: the same
    arithmetic, not just the same formula (the tanh forward's y once differed by rounding)."""
    x = (RNG.standard_normal((3, 70_001)) * 3).astype(dtype)
    layer = GELU(approximate)
    np.testing.assert_array_equal(layer.apply(x), layer.forward(x))


def test_gelu_refuses_unknown_approximation():
    with pytest.raises(ValueError, match="GELU: approximate must be 'none' or 'tanh', got 'fast'"):
        GELU("fast")
    with pytest.raises(ValueError, match="gelu: approximate must be"):
        F.gelu(np.ones(2), "fast")
