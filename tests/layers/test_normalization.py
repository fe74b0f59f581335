"""handgrad.layers.normalization: LayerNorm's gradient check on many shapes, PyTorch parity
(float64 at 1e-9, float32 at 1e-5), its errors and its dtype. The checks every layer gets
(gradient check, contract, spec, PyTorch, ONNX) come from its row in the table of layer cases,
tests/layer_cases.py, run by tests/test_layer_cases.py."""

import numpy as np
import pytest
from helpers import assert_matches

from handgrad.gradcheck import gradient_check
from handgrad.layers.normalization import LayerNorm

RNG = np.random.default_rng(1234)


@pytest.mark.parametrize("shape", [(1, 5), (4, 5), (1, 1, 5), (3, 1, 5), (2, 3, 5), (5,)])
def test_layernorm_gradient_check(shape):
    layer = LayerNorm(5, dtype=np.float64)
    layer.params["gamma"][:] = RNG.standard_normal(5)
    layer.params["beta"][:] = RNG.standard_normal(5)
    report = gradient_check(layer, RNG.standard_normal(shape) * 2 + 1)
    assert report.passed, str(report)
    assert set(report.errors) == {"gamma", "beta", "x"}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(3, 7), (2, 5, 7), (1, 1, 7)])
def test_layernorm_matches_torch_with_weight_and_bias_grads(torch, dtype, shape):
    x = (RNG.standard_normal(shape) * 3 + 2).astype(dtype)
    dout = RNG.standard_normal(shape).astype(dtype)
    gamma, beta = RNG.standard_normal(7).astype(dtype), RNG.standard_normal(7).astype(dtype)
    layer = LayerNorm(7, eps=1e-5, dtype=dtype)
    layer.params["gamma"][:], layer.params["beta"][:] = gamma, beta
    y = layer.forward(x)
    dx = layer.backward(dout)
    ref = torch.nn.LayerNorm(7, eps=1e-5, dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(gamma))
        ref.bias.copy_(torch.tensor(beta))
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(dout))
    assert y.dtype == dtype and dx.dtype == dtype
    assert_matches(y, yt.detach().numpy(), dtype)
    assert_matches(dx, xt.grad.numpy(), dtype)
    assert_matches(layer.grads["gamma"], ref.weight.grad.numpy(), dtype)
    assert_matches(layer.grads["beta"], ref.bias.grad.numpy(), dtype)


def test_layernorm_refuses_wrong_last_axis_and_bad_arguments():
    with pytest.raises(ValueError, match=r"LayerNorm: expected input of shape \(\.\.\., 4\).*got \(2, 3\)"):
        LayerNorm(4).forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="LayerNorm: num_features must be a positive integer"):
        LayerNorm(0)
    with pytest.raises(ValueError, match="LayerNorm: eps must be > 0"):
        LayerNorm(3, eps=0.0)


def test_layernorm_computes_in_its_parameters_dtype():
    assert LayerNorm(3, dtype=np.float32).forward(np.ones((2, 3))).dtype == np.float32
    assert LayerNorm(3, dtype=np.float64).forward(np.ones((2, 3), np.float32)).dtype == np.float64
