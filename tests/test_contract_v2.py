"""Contract v2 in a model: layers made of layers, parameter paths, gradients that add up, one owner
per weight, errors that name the nested layer, save and load, the summary. The registry of layer
types is tested in tests/layers/test_base.py, Residual and Chain in
tests/layers/test_composite.py, every row of the table of layer cases in
tests/test_layer_cases.py."""

import numpy as np
import pytest
from helpers import affine

import handgrad as hg
from handgrad import layers as L
from handgrad.gradcheck import gradient_check, numerical_gradient
from handgrad.layers import Affine, Layer, Relu, Residual, Tanh


def nested_model(seed=0):
    rng = np.random.default_rng(seed)
    return hg.Sequential([affine(rng, 3, 4), Residual([affine(rng, 4, 4), Tanh(), affine(rng, 4, 4)]), Relu(),
                          affine(rng, 4, 2)])


def test_nested_parameters_are_named_by_path_and_flat_models_keep_their_keys():
    model = nested_model()
    assert list(model.params) == ["0.W", "0.b", "1.body.0.W", "1.body.0.b", "1.body.2.W", "1.body.2.b", "3.W", "3.b"]
    assert list(model.grads) == list(model.params)
    assert model.params["1.body.2.W"] is model.layers[1].body.layers[2].W  # the layer's own array
    assert list(hg.mlp(3, [4], 2).params) == ["0.W", "0.b", "2.W", "2.b"]
    assert [path for path, _ in model.named_layers()] == ["0", "1", "1.body", "1.body.0", "1.body.1", "1.body.2",
                                                          "2", "3"]


class UsesItsWeightTwice(Layer):
    """``y = (x W) W``: one owner (the child ``a``), the second use adds into its grads."""

    def __init__(self, W):
        super().__init__()
        self.add_child("a", Affine(W, np.zeros(W.shape[1])))

    def forward(self, x):
        self._h = self.call_child("a", self._children["a"].forward, x)
        return self._h @ self._children["a"].W

    def backward(self, dout):
        a = self._children["a"]
        a.grads["W"] += self._h.T @ dout  # the second use: dL/dW from y = h W
        return self.call_child("a", a.backward, dout @ a.W.T)


def test_a_weight_used_twice_receives_the_sum_of_both_gradients():
    rng = np.random.default_rng(2)
    layer = UsesItsWeightTwice(rng.standard_normal((4, 4)))
    model = hg.Sequential([layer, Affine(rng.standard_normal((4, 3)), np.zeros(3))])
    x, t = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    assert list(model.params) == ["0.a.W", "0.a.b", "1.W", "1.b"]
    result = gradient_check(model, x, t)
    assert result.passed, result
    W = layer.params["a.W"]
    model.loss(x, t)
    model.backward()
    analytic = model.grads["0.a.W"].copy()
    numeric = numerical_gradient(lambda _: model.loss(x, t), W)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    # The sum of the two uses' gradients, each written out: y = h W with h = x W.
    model.loss(x, t)
    dy = model.loss_layer.backward() @ model.layers[1].params["W"].T
    first_use, second_use = x.T @ (dy @ W.T), (x @ W).T @ dy
    np.testing.assert_allclose(analytic, first_use + second_use, rtol=1e-12)
    assert np.abs(first_use).max() > 1e-3 and np.abs(second_use).max() > 1e-3


def test_one_loss_and_backward_give_one_steps_gradients_however_often_repeated():
    model = nested_model()
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    model.loss(x, t)
    model.backward()
    first = {k: v.copy() for k, v in model.grads.items()}
    model.backward()  # backward again without a new forward: still one step (zeroed first)
    for _ in range(2):
        model.loss(x, t)
        model.backward()
    for key, value in model.grads.items():
        np.testing.assert_allclose(value, first[key], rtol=1e-14, err_msg=key)


class UsesBranchB(Layer):
    """``y = a(x)``, plus ``b(x)`` when ``use_b``: b's forward always runs, its backward only
    when it was used, so b's gradient must read zero in a step that left it out."""

    def __init__(self, rng):
        super().__init__()
        self.add_child("a", affine(rng, 3, 2))
        self.add_child("b", affine(rng, 3, 2))
        self.use_b = True

    def forward(self, x):
        y, y_b = self.a.forward(x), self.b.forward(x)
        return y + y_b if self.use_b else y

    def backward(self, dout):
        dx = self.a.backward(dout)
        return dx + self.b.backward(dout) if self.use_b else dx


def test_lazily_zeroed_gradients_read_as_zeros_and_are_assigned_by_the_first_use():
    # Model.backward and a layer's forward zero gradients lazily (the step's first share is
    # assigned): whatever reads them must see exactly what eager zeroing gave.
    rng = np.random.default_rng(7)
    layer = UsesBranchB(rng)
    model = hg.Sequential([layer, affine(rng, 2, 2)])
    x, t = rng.standard_normal((4, 3)), rng.integers(0, 2, 4)
    held = model.grads["0.b.W"]  # an array held across steps, as an optimizer's caller may
    model.loss(x, t)
    model.backward()
    assert np.abs(held).max() > 1e-3
    layer.use_b = False
    model.loss(x, t)
    model.backward()  # b's backward never ran this step: its gradient is zero, not the last step's
    assert model.grads["0.b.W"] is held
    assert not model.grads["0.b.W"].any() and not model.grads["0.b.b"].any()
    result = gradient_check(model, x, t)
    assert result.passed, result

    bare = affine(rng, 3, 2)  # the book's way: forward, backward, read dW
    bare.forward(x)
    bare.backward(np.ones((4, 2)))
    dW = bare.dW
    np.testing.assert_allclose(dW, x.T @ np.ones((4, 2)), rtol=1e-14)
    bare.forward(x)  # a new step: nothing written yet reads as zero
    assert bare.dW is dW and not bare.dW.any() and not bare.db.any()
    bare.backward(np.ones((4, 2)))
    bare.backward(np.ones((4, 2)))  # two uses in one step add up
    np.testing.assert_allclose(bare.dW, 2 * x.T @ np.ones((4, 2)), rtol=1e-14)

    arrays = list(model.grads.values())
    model.zero_grad()  # zero_grad writes the zeros at once, into the arrays themselves
    assert not any(array.any() for array in arrays)


def test_gradients_of_a_nested_model_match_numerical_ones():
    rng = np.random.default_rng(4)
    model = nested_model(seed=4)
    result = gradient_check(model, rng.standard_normal((5, 3)), rng.integers(0, 2, 5))
    assert result.passed, result


def test_one_layer_object_at_two_places_is_refused():
    shared = Affine(np.ones((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="the same Affine object is at 0 and at 1.body"):
        hg.Sequential([shared, Residual(shared)])


def test_one_array_under_two_names_is_refused():
    W = np.ones((3, 3))
    with pytest.raises(ValueError, match="one array is listed as 0.W and as 1.W; a shared weight must have one owner"):
        hg.Sequential([Affine(W, np.zeros(3)), Affine(W, np.zeros(3))])


def test_errors_name_the_nested_layer_by_path():
    model = nested_model()
    model.layers[1].body.layers[2].params["W"] = np.ones((5, 4))  # a broken inner layer
    with pytest.raises(ValueError, match=r"^layer 1\.body\.2: Affine: expected input of shape \(N, 5\)"):
        model.predict(np.ones((2, 3)))


def test_a_nested_model_saves_and_loads_exactly(tmp_path):
    model = nested_model()
    hg.save(model, tmp_path / "nested.safetensors")
    again = hg.load(tmp_path / "nested.safetensors")
    assert again.spec() == model.spec()
    x = np.random.default_rng(5).standard_normal((4, 3))
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_summary_lists_nested_layers_by_path():
    text = nested_model().summary_text()
    lines = text.splitlines()
    assert any(line.startswith("1 Residual") and "(N, 4)" in line for line in lines)
    nested = [line.split()[0] for line in lines if line.startswith("  ")]
    assert nested == ["1.body", "1.body.0", "1.body.1", "1.body.2"]
    assert lines[-1] == f"total parameters: {nested_model().num_params:,}"
    ids_first = hg.Sequential([L.Embedding(np.ones((5, 3))), affine(np.random.default_rng(0), 3, 2)])
    assert "(N, 4, 3)" in ids_first.summary_text(input_shape=(4,))  # ids stay integers
