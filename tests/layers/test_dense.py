"""handgrad.layers.dense: Affine against numerical gradients on random sizes (hypothesis), for
image-shaped input and for one sample; against PyTorch's Linear (float64, float32); the messages
for bad input and bad parameters. The checks every layer gets (gradient check, contract, spec,
PyTorch, ONNX) come from its row in the table of layer cases, tests/layer_cases.py, run by
tests/test_layer_cases.py."""

import numpy as np
import pytest
from helpers import DTYPES, close, seeds, sizes, torch_input
from hypothesis import given
from hypothesis import strategies as st

from handgrad.gradcheck import gradient_check
from handgrad.layers import Affine


@given(seed=seeds, n=sizes, d_in=sizes, d_out=sizes)
def test_affine_gradients_match_numerical(seed, n, d_in, d_out):
    rng = np.random.default_rng(seed)
    layer = Affine(rng.standard_normal((d_in, d_out)), rng.standard_normal(d_out))
    report = gradient_check(layer, rng.standard_normal((n, d_in)), seed=seed)
    assert set(report.errors) == {"W", "b", "x"}
    assert report.passed, str(report)


@given(seed=seeds, n=sizes, shape=st.tuples(sizes, sizes, sizes), d_out=sizes)
def test_affine_gradients_for_image_shaped_input(seed, n, shape, d_out):
    rng = np.random.default_rng(seed)
    d_in = int(np.prod(shape))
    layer = Affine(rng.standard_normal((d_in, d_out)), rng.standard_normal(d_out))
    x = rng.standard_normal((n,) + shape)
    report = gradient_check(layer, x, seed=seed)
    assert report.analytic["x"].shape == x.shape
    assert report.passed, str(report)


@given(seed=seeds, d_in=sizes, d_out=sizes)
def test_affine_gradients_for_one_sample(seed, d_in, d_out):
    rng = np.random.default_rng(seed)
    layer = Affine(rng.standard_normal((d_in, d_out)), rng.standard_normal(d_out))
    x = rng.standard_normal(d_in)
    assert layer.forward(x).shape == (d_out,)
    report = gradient_check(layer, x, seed=seed)
    assert report.analytic["x"].shape == (d_in,)
    assert report.passed, str(report)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_affine(torch, dtype, seed):
    rng = np.random.default_rng(seed)
    n, d_in, d_out = rng.integers(1, 8, 3)
    W = rng.standard_normal((d_in, d_out)).astype(dtype)
    b = rng.standard_normal(d_out).astype(dtype)
    x = rng.standard_normal((n, 2, d_in // 2 or 1)).astype(dtype) if d_in % 2 == 0 else rng.standard_normal((n, d_in)).astype(dtype)
    dout = rng.standard_normal((n, d_out)).astype(dtype)

    layer = Affine(W, b)
    out = layer.forward(x)
    dx = layer.backward(dout)

    linear = torch.nn.Linear(d_in, d_out, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(W.T))  # torch stores (out, in): the transpose
        linear.bias.copy_(torch.from_numpy(b))
    x_t = torch_input(torch, x)
    out_t = linear(x_t.reshape(int(n), -1))
    out_t.backward(torch.from_numpy(dout))
    close(out, out_t, dtype)
    close(dx, x_t.grad, dtype)
    close(layer.dW, linear.weight.grad.T, dtype)
    close(layer.db, linear.bias.grad, dtype)


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, message",
    [
        (np.ones((2, 5)), r"Affine: expected input of shape \(N, 4\).*got \(2, 5\)"),
        (np.ones((2, 2, 3)), r"Affine: expected input of shape \(N, 4\).*got \(2, 2, 3\)"),
        (np.ones(3), r"Affine: .*\(4,\) for one sample\), got \(3,\)"),
        (np.float64(1.0), "Affine: expected an array input, got a scalar"),
    ],
)
def test_affine_shape_mismatch_names_layer_and_shapes(x, message):
    layer = Affine(np.ones((4, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=message):
        layer.forward(x)


def test_affine_refuses_bad_parameters():
    with pytest.raises(ValueError, match=r"W must have shape \(in, out\), got shape \(3,\)"):
        Affine(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"b must have shape \(3,\) to match W \(4, 3\), got \(4,\)"):
        Affine(np.ones((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"W must keep shape \(4, 3\)"):
        Affine(np.ones((4, 3)), np.zeros(3)).W = np.ones((3, 4))
