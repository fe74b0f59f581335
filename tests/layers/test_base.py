"""handgrad.layers.base: what every layer shares, written out on Affine and the activations:
backward adds into the layer's own gradient arrays and forward starts a new step; a layer
computes in its parameters' dtype; train and eval; backward before forward and a wrong dout are
refused by name; one registry of layer types, and errors that name a nested layer by its path.
The checks every layer gets (gradient check, contract, spec, PyTorch, ONNX) come from its row in
the table of layer cases, tests/layer_cases.py, run by tests/test_layer_cases.py."""

import numpy as np
import pytest

from handgrad import layers as L
from handgrad.layers import Affine, Relu, Sigmoid, SoftmaxWithLoss, Tanh


# --- the contract, written out for Affine -------------------------------------------------------------


def test_backward_adds_into_grads_and_forward_starts_a_new_step():
    # Contract v2: backward adds (a weight used twice receives the sum); a layer's forward
    # zeroes its own gradients, so the book's loop (forward, backward, read dW) holds one step.
    rng = np.random.default_rng(1)
    layer = Affine(rng.standard_normal((4, 3)), rng.standard_normal(3))
    x, dout = rng.standard_normal((2, 4)), rng.standard_normal((2, 3))
    layer.forward(x)
    dx1, dW1 = layer.backward(dout), layer.dW.copy()
    np.testing.assert_allclose(dW1, x.T @ dout, rtol=1e-14)
    dx2 = layer.backward(dout)
    np.testing.assert_array_equal(dx1, dx2)  # dx depends on nothing accumulated
    np.testing.assert_allclose(layer.dW, 2 * dW1, rtol=1e-14)  # the second use adds
    for _ in range(3):  # the book's way, repeated: one step's gradients each time
        layer.forward(x)
        layer.backward(dout)
        np.testing.assert_allclose(layer.dW, dW1, rtol=1e-14)
        np.testing.assert_allclose(layer.db, dout.sum(axis=0), rtol=1e-14)


def test_params_and_grads_are_the_layers_own_arrays():
    layer = Affine(np.ones((2, 3)), np.zeros(3))
    W_array, dW_array = layer.params["W"], layer.grads["W"]
    assert layer.W is W_array and layer.dW is dW_array and layer.db is layer.grads["b"]
    layer.forward(np.ones((1, 2)))
    layer.backward(np.ones((1, 3)))
    assert layer.grads["W"] is dW_array  # gradients written in place, not rebound
    layer.W = np.full((2, 3), 5.0)  # assignment writes into the same array
    assert layer.params["W"] is W_array and np.all(W_array == 5.0)
    layer.params["W"] -= 0.5 * layer.grads["W"]  # an optimizer's in-place update is seen by forward
    np.testing.assert_array_equal(layer.forward(np.array([1.0, 0.0])), np.full(3, 4.5))


def test_a_layer_computes_in_its_parameters_dtype():
    # A model's precision is its parameters': float64 weights compute in float64 whatever the
    # input (NumPy's promotion, as in the book), float32 weights in float32.
    rng = np.random.default_rng(2)
    x32 = rng.standard_normal((2, 4)).astype(np.float32)
    layer = Affine(rng.standard_normal((4, 3)), rng.standard_normal(3))  # float64 weights
    out = layer.forward(x32)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, x32.astype(np.float64) @ layer.W + layer.b, rtol=1e-15)
    assert layer.backward(np.ones((2, 3), np.float32)).dtype == np.float64
    assert layer.dW.dtype == np.float64
    layer32 = Affine(rng.standard_normal((4, 3)).astype(np.float32), np.zeros(3, np.float32))
    assert layer32.forward(x32.astype(np.float64)).dtype == np.float32
    assert layer32.backward(np.ones((2, 3))).dtype == np.float32
    for act in (Relu(), Sigmoid(), Tanh()):  # no parameters: the input's dtype
        assert act.forward(x32).dtype == np.float32
        assert act.backward(np.ones((2, 4), np.float32)).dtype == np.float32
    loss = SoftmaxWithLoss()
    assert isinstance(loss.forward(x32[:, :3], np.array([0, 1])), float)
    assert loss.backward().dtype == np.float32


def test_integer_input_and_weights_are_computed_in_float64():
    layer = Affine(np.array([[1, 3, 5], [2, 4, 6]]), np.array([1, 2, 3]))
    assert layer.W.dtype == np.float64
    out = layer.forward(np.array([[1, 2]]))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[6.0, 13.0, 20.0]])
    assert Relu().forward(np.array([-1, 2])).dtype == np.float64


def test_train_and_eval_modes():
    layer = Relu()
    assert layer.training
    assert layer.eval() is layer and not layer.training
    assert layer.train().training


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [Affine(np.ones((2, 2)), np.zeros(2)), Relu(), Sigmoid(), Tanh(), SoftmaxWithLoss()])
def test_backward_before_forward_says_so(layer):
    with pytest.raises(RuntimeError, match=f"{layer.name}: backward\\(\\) called before forward\\(\\)"):
        layer.backward(np.ones((1, 2))) if layer.name != "SoftmaxWithLoss" else layer.backward()


def test_backward_with_wrong_dout_shape_names_layer_and_shapes():
    layer = Relu()
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Relu: backward expected dout of shape \(2, 3\).*got \(3, 2\)"):
        layer.backward(np.ones((3, 2)))
    affine = Affine(np.ones((3, 4)), np.zeros(4))
    affine.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Affine: backward expected dout of shape \(2, 4\)"):
        affine.backward(np.ones((2, 3)))


# --- one registry of layer types; errors that name the path -------------------------------------------


def _make_doubler():
    class _Doubler(L.Layer, register=True):
        """A layer of a user's own, registered so that load can rebuild it."""

        def forward(self, x):
            x = self._input(x)
            if x.shape[-1] != 2:
                raise ValueError(f"Doubler: expected 2 features, got {x.shape[-1]}")
            return 2 * x

        def backward(self, dout):
            return 2 * dout

    return _Doubler


def test_a_layer_type_registers_itself_once_and_its_errors_name_its_path(tmp_path):
    """Registration happens in one place (Layer.__init_subclass__), and a child names its own path
    in the errors its forward and backward raise: no call needs wrapping by its parent."""
    import handgrad as hg
    from handgrad.layers.base import LAYER_TYPES

    _Doubler = _make_doubler()
    try:
        _check_registration_and_paths(_Doubler, LAYER_TYPES, hg, tmp_path)
    finally:
        LAYER_TYPES.pop("_Doubler", None)
    assert "_Doubler" not in LAYER_TYPES


def _check_registration_and_paths(_Doubler, LAYER_TYPES, hg, tmp_path):
    assert LAYER_TYPES["_Doubler"] is _Doubler and "_Doubler" not in L.__all__
    _make_doubler()  # defined again where it was (a notebook cell run twice): it replaces itself
    assert LAYER_TYPES["_Doubler"] is not _Doubler
    LAYER_TYPES["_Doubler"] = _Doubler
    assert all(name in LAYER_TYPES for name in L.__all__ if name not in ("LAYER_TYPES", "Layer"))
    model = hg.Sequential([L.Affine(np.ones((3, 2)), np.zeros(2)), L.Residual(L.Chain([L.Relu(), _Doubler()]))])
    hg.save(model, tmp_path / "m.safetensors")  # a registered layer of one's own saves and loads
    assert type(hg.load(tmp_path / "m.safetensors").layers[1].body.layers[1]) is _Doubler

    def another_doubler():
        class _Doubler(L.Layer, register=True):  # another class under a registered name
            pass
        return _Doubler

    with pytest.raises(TypeError, match="layer type '_Doubler' is already registered"):
        another_doubler()
    with pytest.raises(ValueError, match=r"^layer 1\.body\.1: Doubler: expected 2 features, got 3$"):
        model.layers[1].forward(np.ones((4, 3)))  # named "1" by the model, "body" and "1" below
    assert model.layers[1].body is model.layers[1]._children["body"]  # children are attributes
    # A layer on its own names no path; a subclass calling super().forward adds its name once.
    with pytest.raises(ValueError, match=r"^Affine: expected input of shape \(N, 3\)"):
        L.Affine(np.ones((3, 2)), np.zeros(2)).forward(np.ones((4, 5)))

    class Loud(L.Affine, register=False):
        def forward(self, x):
            return super().forward(x)

    chain = L.Chain([L.Relu(), Loud(np.ones((3, 2)), np.zeros(2))])
    with pytest.raises(ValueError, match=r"^layer 1: Affine: expected input of shape \(N, 3\)"):
        chain.forward(np.ones((4, 5)))
