"""Sequential, mlp, TwoLayerNet and init."""

import re
import numpy as np
import pytest

import handgrad as hg
from handgrad import init
from handgrad.gradcheck import gradient_check, relative_error
from handgrad.layers import Affine, Layer, Relu, Sigmoid, SoftmaxWithLoss
from handgrad.model import Sequential, TwoLayerNet, mlp


def test_mlp_structure_and_params_are_the_layers_arrays():
    model = mlp(6, [5, 4], 3, activation="tanh", seed=0)
    assert [type(layer).__name__ for layer in model.layers] == ["Affine", "Tanh", "Affine", "Tanh", "Affine"]
    assert list(model.params) == ["0.W", "0.b", "2.W", "2.b", "4.W", "4.b"]
    assert model.params["2.W"] is model.layers[2].W
    assert model.grads["2.W"] is model.layers[2].dW
    assert model.params["0.W"].dtype == np.float32
    assert model.num_params == 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3


def test_mlp_gradients_match_numerical():
    rng = np.random.default_rng(1)
    model = mlp(5, [7, 4], 3, activation="sigmoid", seed=2, dtype=np.float64)
    report = gradient_check(model, rng.standard_normal((6, 5)), rng.integers(0, 3, 6))
    assert set(report.errors) == {"0.W", "0.b", "2.W", "2.b", "4.W", "4.b", "x"}
    assert report.passed, str(report)


def test_same_seed_same_weights_and_generator_accepted():
    a, b = mlp(4, [3], 2, seed=7), mlp(4, [3], 2, seed=7)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    c = mlp(4, [3], 2, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a.params["0.W"], c.params["0.W"])


@pytest.mark.parametrize("name, std", [("he", np.sqrt(2 / 400)), ("xavier", np.sqrt(2 / 500))])
def test_initializer_scales(name, std):
    w = init.get(name)((400, 100), np.random.default_rng(0), np.float64)
    assert w.std() == pytest.approx(std, rel=0.02) and abs(w.mean()) < 0.01 * std * 10
    bound = np.sqrt(6 / 400) if name == "he" else np.sqrt(6 / 500)
    u = init.get(name + "_uniform")((400, 100), np.random.default_rng(0), np.float64)
    assert np.abs(u).max() <= bound and np.abs(u).max() > 0.95 * bound
    assert init.get(0.01)((300, 300), np.random.default_rng(0), np.float64).std() == pytest.approx(0.01, rel=0.02)


def test_initializer_errors():
    with pytest.raises(ValueError, match="unknown initializer 'kaiming_magic'"):
        init.get("kaiming_magic")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        mlp(2, [2], 2, activation="swish")


def test_accuracy_counts_every_sample_including_the_last_partial_batch():
    model = Sequential([Affine(np.eye(3), np.zeros(3))])
    x = np.eye(3)[[0, 1, 2, 0, 1, 2, 0]]
    t = np.array([0, 1, 2, 0, 1, 2, 1])  # only the 7th, in the last partial batch, is wrong
    assert model.accuracy(x, t, batch_size=3) == pytest.approx(6 / 7)
    assert model.accuracy(x, np.eye(3)[t], batch_size=2) == pytest.approx(6 / 7)


def test_backward_returns_input_gradient_and_train_eval_reach_every_layer():
    model = mlp(4, [3], 2, seed=0)
    model.eval()
    assert not any(layer.training for layer in model.layers + [model.loss_layer])
    model.train()
    assert all(layer.training for layer in model.layers + [model.loss_layer])
    x = np.ones((2, 4), np.float32)
    model.loss(x, np.array([0, 1]))
    assert model.backward().shape == (2, 4)


def test_errors_say_which_layer():
    model = mlp(4, [3], 2, seed=0)
    with pytest.raises(ValueError, match=r"layer 0: Affine: expected input of shape \(N, 4\)"):
        model.predict(np.ones((2, 5)))


def test_summary_text_lists_shapes_and_parameter_counts():
    text = mlp(784, [100], 10, seed=0).summary_text()
    assert "(N, 100)" in text and "(N, 10)" in text and "78,500" in text and "1,010" in text
    assert "total parameters: 79,510" in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_summary_prints_the_table_and_returns_none(capsys):
    # README says model.summary() prints the table (Keras's convention); it used to return it.
    model = mlp(784, [100], 10, seed=0)
    assert model.summary() is None
    assert capsys.readouterr().out == model.summary_text() + "\n"


def test_summary_without_a_known_input_shape_asks_for_one():
    model = Sequential([Relu()])
    with pytest.raises(ValueError, match="summary: give input_shape"):
        model.summary_text()
    assert "(N, 3)" in model.summary_text(input_shape=(3,))


def test_two_layer_net_is_the_books_network():
    net = TwoLayerNet(input_size=5, hidden_size=4, output_size=3, seed=0)
    assert list(net.params) == ["W1", "b1", "W2", "b2"]
    assert net.params["W1"] is net.layers[0].W and net.params["W1"].dtype == np.float64
    assert net.params["W1"].std() < 0.05  # weight_init_std = 0.01
    assert isinstance(net, hg.Sequential) and isinstance(net.layers[1], Relu)
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((4, 5)), rng.integers(0, 3, 4)
    backprop, numerical = net.gradient(x, t), net.numerical_gradient(x, t)
    for name in net.params:
        assert relative_error(backprop[name], numerical[name]) < 1e-6, name
    # The book's update loop works on it.
    before = net.loss(x, t)
    for _ in range(50):
        grads = net.gradient(x, t)
        for name in net.params:
            net.params[name] -= 0.5 * grads[name]
    assert net.loss(x, t) < before


class DuckRelu:
    """Has forward and backward, but is not a handgrad Layer (no params, grads, train, spec)."""

    def forward(self, x):
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout


@pytest.mark.parametrize("layers, message", [
    ([Sigmoid(), "relu"], r"Sequential: layer 1 must be a handgrad.layers.Layer, got str"),
    ([DuckRelu()], r"Sequential: layer 0 must be a handgrad.layers.Layer, got DuckRelu"),
    ([Sigmoid, Relu()], r"Sequential: layer 0 must be a handgrad.layers.Layer, got type"),  # the class, not an instance
    (Relu(), r"Sequential: layers must be a list of layers, got a single Relu; wrap it in a list"),
])
def test_sequential_refuses_non_layers_at_construction(layers, message):
    with pytest.raises(TypeError, match=message):
        Sequential(layers)


@pytest.mark.parametrize("loss", [DuckRelu(), "softmax", SoftmaxWithLoss])
def test_sequential_refuses_a_loss_that_is_not_a_layer(loss):
    with pytest.raises(TypeError, match=f"Sequential: loss must be a handgrad.layers.Layer .*got {type(loss).__name__}"):
        Sequential([Relu()], loss=loss)


def test_a_subclass_of_layer_is_accepted():
    class Double(Layer):
        def forward(self, x):
            return 2 * self._input(x)

        def backward(self, dout):
            return 2 * np.asarray(dout)

    model = Sequential([Double(), Affine(np.eye(2), np.zeros(2))])
    np.testing.assert_array_equal(model.predict(np.array([[1.0, 2.0]])), [[2.0, 4.0]])


def test_layer_forward_and_backward_name_the_layer_and_keep_the_original_error():
    model = mlp(4, [3], 2, seed=0)
    with pytest.raises(ValueError, match=r"^layer 2: Affine: expected input of shape \(N, 3\)") as caught:
        model.layer_forward(2, np.ones((1, 4)))
    assert isinstance(caught.value.__cause__, ValueError)  # the layer's own error and traceback, chained
    assert str(caught.value.__cause__).startswith("Affine:")
    x = np.ones((2, 4), np.float32)
    model.loss(x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"^layer 1: Relu: backward expected dout of shape \(2, 3\)"):
        model.layer_backward(1, np.ones((3, 2)))


def test_layer_backward_skips_the_input_gradient_only_where_the_layer_can():
    rng = np.random.default_rng(0)
    model = hg.model.SimpleConvNet(input_dim=(1, 6, 6), filter_num=2, filter_size=3, hidden_size=4, seed=0)
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    out = model.layers[0].forward(x)
    dout = np.ones_like(out)
    assert model.layer_backward(0, dout, input_grad=False) is None  # Convolution can skip dx
    assert model.layer_backward(0, dout).shape == x.shape
    relu = Sequential([Relu()])
    relu.predict(np.ones((1, 2)))
    assert relu.layer_backward(0, np.ones((1, 2)), input_grad=False).shape == (1, 2)  # Relu cannot


def test_decayed_weights_are_every_W_and_their_gradients_get_lambda_W():
    model = hg.mlp(3, [4], 2, batchnorm=True, seed=0, dtype=np.float64, weight_decay=0.5)
    decayed = model.decayed_weights()
    assert list(decayed) == ["0.W", "3.W"]  # not the biases, not BatchNorm's gamma
    assert decayed["0.W"] is model.layers[0].W
    for grad in model.grads.values():
        grad[...] = 1.0
    model.add_weight_decay_grads()
    np.testing.assert_array_equal(model.layers[0].dW, 1.0 + 0.5 * model.layers[0].W)
    np.testing.assert_array_equal(model.layers[0].db, 1.0)
    np.testing.assert_array_equal(model.layers[1].grads["gamma"], 1.0)
    assert model.weight_penalty() == pytest.approx(0.25 * sum(np.sum(W ** 2) for W in decayed.values()), rel=1e-15)


def test_mode_switches_for_the_block_and_restores_even_on_error():
    model = hg.mlp(4, [3], 2, dropout=0.5, seed=0)
    with model.mode(False):
        assert not any(layer.training for layer in model.layers)
    assert all(layer.training for layer in model.layers)
    model.eval()
    with pytest.raises(ValueError):
        with model.mode(True):
            assert model.layers[2].training
            model.predict(np.ones((1, 5)))  # wrong width: raises inside the block
    assert not model.training and not any(layer.training for layer in model.layers)


@pytest.mark.parametrize("kwargs, message", [
    (dict(weight_decay=float("inf")), "Sequential: weight_decay must be >= 0, got inf"),
    (dict(weight_decay=-1.0), "Sequential: weight_decay must be >= 0, got -1.0"),
    (dict(input_shape=(1, 0, 8)), "Sequential: input_shape must be a positive integer, got 0"),
    (dict(input_shape=(1, 8.5)), "Sequential: input_shape must be a positive integer, got 8.5"),
])
def test_sequential_refuses_at_construction_what_load_would_refuse(kwargs, message):
    """Sequential(weight_decay=inf) and a 0 in input_shape were accepted, trained, and then
    refused by save and load."""
    with pytest.raises(ValueError, match=re.escape(message)):
        Sequential([Relu()], **kwargs)
