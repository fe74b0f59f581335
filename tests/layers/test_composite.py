"""handgrad.layers.composite: a Residual's gradient is the sum of both paths; a Chain keeps its
children's names through its spec. The checks every layer gets (gradient check, contract, spec,
PyTorch, ONNX) come from its row in the table of layer cases, tests/layer_cases.py, run by
tests/test_layer_cases.py."""

import numpy as np
import pytest
from helpers import affine

from handgrad import layers as L
from handgrad.gradcheck import numerical_gradient
from handgrad.layers import Chain, Residual, Tanh


def test_a_residual_connection_gets_the_gradient_of_both_paths():
    rng = np.random.default_rng(1)
    block = Residual([affine(rng, 5, 5), Tanh()])
    x, dout = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    y = block.forward(x)
    np.testing.assert_allclose(y, x + np.tanh(x @ block.body.layers[0].W + block.body.layers[0].b), rtol=1e-14)
    dx = block.backward(dout)
    numerical = numerical_gradient(lambda _: float(np.sum(block.forward(x) * dout)), x)
    np.testing.assert_allclose(dx, numerical, rtol=1e-7, atol=1e-9)


def test_a_chain_with_named_children_keeps_its_names_through_its_spec():
    rng = np.random.default_rng(7)
    chain = Chain({"c_fc": affine(rng, 3, 4), "gelu": L.GELU(), "c_proj": affine(rng, 4, 3)})
    assert list(chain.params) == ["c_fc.W", "c_fc.b", "c_proj.W", "c_proj.b"]
    spec = chain.spec()
    assert spec["names"] == ["c_fc", "gelu", "c_proj"]
    assert list(Chain.from_spec(spec).params) == list(chain.params)
    assert Chain.param_shapes(spec) == {k: v.shape for k, v in chain.params.items()}
    with pytest.raises(ValueError, match="names must be 3 distinct strings"):
        Chain.param_shapes({**spec, "names": ["a", "a", "b"]})
