"""handgrad.gradcheck: numerical gradients and the backprop check itself."""

import numpy as np
import pytest

from handgrad.gradcheck import DEFAULT_THRESHOLD, gradient_check, numerical_gradient, relative_error
from handgrad.layers import Affine, Layer, Relu, SoftmaxWithLoss


def test_numerical_gradient_of_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = numerical_gradient(lambda a: np.sum(a**3), x)
    np.testing.assert_allclose(grad, 3 * x**2, rtol=1e-9)


def test_numerical_gradient_restores_x_exactly_and_perturbs_in_place():
    x = np.random.default_rng(0).standard_normal((3, 4))
    before = x.copy()
    held = x  # f ignores its argument and reads the array it holds, as in the book
    numerical_gradient(lambda _: float(np.sum(np.sin(held))), x)
    np.testing.assert_array_equal(x, before)
    assert numerical_gradient(lambda _: float(np.sum(np.sin(held))), x) == pytest.approx(np.cos(before), rel=1e-9)


def test_numerical_gradient_through_a_layer_parameter():
    layer = Affine(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, -0.5]))
    x = np.array([[1.0, -1.0]])
    grad_W = numerical_gradient(lambda _: float(np.sum(layer.forward(x))), layer.W)
    np.testing.assert_allclose(grad_W, [[1.0, 1.0], [-1.0, -1.0]], rtol=1e-9)


def test_numerical_gradient_refuses_integer_arrays():
    with pytest.raises(TypeError, match="integer array.*Use x.astype"):
        numerical_gradient(lambda a: float(np.sum(a)), np.array([1, 2, 3]))


def test_numerical_gradient_refuses_non_arrays_and_read_only():
    with pytest.raises(TypeError, match="must be a NumPy array"):
        numerical_gradient(lambda a: 0.0, [1.0, 2.0])
    x = np.ones(3)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        numerical_gradient(lambda a: 0.0, x)


def test_numerical_gradient_warns_for_float32():
    with pytest.warns(RuntimeWarning, match="float64"):
        numerical_gradient(lambda a: float(np.sum(a)), np.ones(2, dtype=np.float32))


def test_relative_error_definition():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([1.0, 0.0], [1.0, 1e-3]) == pytest.approx(1e-3)
    assert relative_error([1e-51], [0.0]) == 1.0  # invisible to differences: a total mismatch
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(np.ones(2), np.ones(3))


class ReluThatForgetsTheMask(Layer):
    """A wrong backward (passes the gradient everywhere): the check must catch it."""

    def forward(self, x):
        self.x = np.asarray(x)
        return np.maximum(self.x, 0)

    def backward(self, dout):
        return np.array(dout, copy=True)


class AffineThatAveragesDW(Affine):
    """A wrong dW (divided by the batch size a second time): the check must catch it."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"][...] = self.grads["W"] / self._x2d.shape[0]
        return dx


def test_gradient_check_catches_wrong_backward():
    x = np.array([[-1.0, 2.0, -3.0]])
    report = gradient_check(ReluThatForgetsTheMask(), x)
    assert not report.passed and report.errors["x"] > 0.1
    assert "FAIL" in str(report)
    rng = np.random.default_rng(0)
    wrong = AffineThatAveragesDW(rng.standard_normal((3, 2)), rng.standard_normal(2))
    report = gradient_check(wrong, rng.standard_normal((4, 3)))
    assert not report.passed and report.errors["W"] > 0.1 and report.errors["b"] < 1e-6


def test_gradient_check_passes_correct_layers_and_reports_each_gradient():
    rng = np.random.default_rng(1)
    report = gradient_check(Affine(rng.standard_normal((3, 2)), rng.standard_normal(2)), rng.standard_normal((4, 3)))
    assert report.passed and bool(report)
    assert set(report.errors) == {"W", "b", "x"}
    assert all(err < 1e-8 for err in report.errors.values())
    assert "W" in str(report) and "ok" in str(report)


def test_gradient_check_on_a_loss_layer():
    report = gradient_check(SoftmaxWithLoss(), np.array([[0.1, -0.4, 0.3]]), np.array([2]))
    assert report.passed and set(report.errors) == {"x"}


class TinyModel:
    """The model protocol gradient_check accepts: loss(x, t), backward(), params, grads."""

    def __init__(self, rng):
        self.layers = [Affine(rng.standard_normal((4, 5)), rng.standard_normal(5)), Relu(),
                       Affine(rng.standard_normal((5, 3)), rng.standard_normal(3))]
        self.loss_layer = SoftmaxWithLoss()
        self.params = {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}
        self.grads = {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    def loss(self, x, t):
        for layer in self.layers:
            x = layer.forward(x)
        return self.loss_layer.forward(x, t)

    def backward(self):
        dout = self.loss_layer.backward()
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


def test_gradient_check_on_a_small_model():
    rng = np.random.default_rng(5)
    report = gradient_check(TinyModel(rng), rng.standard_normal((6, 4)), rng.integers(0, 3, 6))
    assert set(report.errors) == {"0.W", "0.b", "2.W", "2.b", "x"}
    assert report.passed, str(report)


def test_gradient_check_refuses_float32_parameters():
    layer = Affine(np.ones((2, 2), dtype=np.float32), np.zeros(2, dtype=np.float32))
    with pytest.raises(TypeError, match="parameter 'W' has dtype float32; gradient checks need float64"):
        gradient_check(layer, np.ones((1, 2)))


class AffineWithScaledDW(Affine):
    """An Affine whose dW is off by the factor 1 + error (a relative error of about `error`)."""

    def __init__(self, W, b, error):
        super().__init__(W, b)
        self.error = error

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"] *= 1 + self.error
        return dx


@pytest.mark.parametrize("error, passes", [(0.0, True), (1e-8, True), (1e-5, False), (1e-3, False)])
def test_gradient_check_fails_a_layer_whose_gradient_is_off_by_more_than_the_threshold(error, passes):
    # README: a check passes when every relative error is below 1e-6 (DEFAULT_THRESHOLD).
    rng = np.random.default_rng(6)
    layer = AffineWithScaledDW(rng.standard_normal((3, 4)), rng.standard_normal(4), error)
    report = gradient_check(layer, rng.standard_normal((5, 3)))
    assert report.passed is passes, str(report)
    assert (report.errors["W"] < DEFAULT_THRESHOLD) is passes
    assert report.errors["b"] < DEFAULT_THRESHOLD and report.errors["x"] < DEFAULT_THRESHOLD
