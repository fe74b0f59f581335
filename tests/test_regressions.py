"""One regression test for each pitfall of the tutorial's listings, named after what handgrad
guarantees instead; the comment in each says which pitfall it guards against."""

import warnings

import numpy as np
import pytest

from handgrad import functions as F
from handgrad.gradcheck import numerical_gradient
from handgrad.layers import Affine, Relu, SoftmaxWithLoss


def test_softmax_and_loss_stay_finite_for_large_scores():
    # The tutorial computes c = np.max(a) and never subtracts it: exp(1010) = inf, inf/inf = nan.
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        p = F.softmax(np.array([1000.0, 1010.0]))
        p_neg = F.softmax(np.array([-1000.0, -1010.0]))
        loss = SoftmaxWithLoss().forward(np.array([[1000.0, 1010.0]]), np.array([0]))
    np.testing.assert_allclose(p, [1 / (1 + np.exp(10)), 1 / (1 + np.exp(-10))], rtol=1e-14)
    np.testing.assert_allclose(p_neg, p[::-1], rtol=1e-14)
    assert loss == pytest.approx(10.0 + np.log1p(np.exp(-10.0)), rel=1e-14)


def test_softmax_normalises_each_row_of_a_batch():
    # The tutorial's np.sum(exp_a) sums over every element of the batch, not each row.
    batch = np.array([[1.0, 2.0], [3.0, 4.0]])
    p = F.softmax(batch)
    np.testing.assert_allclose(p.sum(axis=1), [1.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(p[0], F.softmax(batch[0]), rtol=1e-15)
    np.testing.assert_allclose(p[0], p[1], rtol=1e-15)  # softmax is shift-invariant per row


def test_loss_is_never_negative_and_not_capped_by_a_delta():
    # The tutorial's network: scores [93, 211], the right class has probability 1.0 in float64.
    out = np.array([[93.0, 211.0]])
    t = np.array([[0.0, 1.0]])
    tutorial_loss = F.cross_entropy_error(F.softmax(out), t)
    assert tutorial_loss == pytest.approx(-np.log(1 + 1e-7), rel=1e-12)  # documented bias, < 0
    assert tutorial_loss < 0
    # The loss handgrad trains with never goes below zero and has no delta bias.
    assert SoftmaxWithLoss().forward(out, t) >= 0.0
    assert F.cross_entropy(out, t) >= 0.0
    # ... and the delta caps the tutorial's loss at 16.118 however wrong the network is.
    assert F.cross_entropy_error(F.softmax(out), np.array([[1.0, 0.0]])) == pytest.approx(-np.log(1e-7), rel=1e-9)
    assert F.cross_entropy(out, np.array([[1.0, 0.0]])) == pytest.approx(118.0, rel=1e-12)


def test_relu_backward_leaves_dout_unchanged():
    # The tutorial's Relu.backward does dout[self.mask] = 0: the caller's array changes.
    relu = Relu()
    relu.forward(np.array([[-1.0, 2.0, -3.0]]))
    dout = np.array([[5.0, 6.0, 7.0]])
    dx = relu.backward(dout)
    np.testing.assert_array_equal(dout, [[5.0, 6.0, 7.0]])
    np.testing.assert_array_equal(dx, [[0.0, 6.0, 0.0]])
    assert not np.shares_memory(dx, dout)


def test_loss_backward_scales_by_dout():
    # The tutorial's SoftmaxWithloss.backward(dout=1) never uses dout.
    layer = SoftmaxWithLoss()
    layer.forward(np.array([[0.2, -0.1, 0.4]]), np.array([1]))
    np.testing.assert_allclose(layer.backward(3.0), 3.0 * layer.backward(1.0), rtol=1e-15)
    np.testing.assert_array_equal(layer.backward(0.0), np.zeros((1, 3)))


def test_one_sample_loss_gradient_is_not_divided_by_the_number_of_classes():
    # The tutorial divides by t.shape[0]: for one 1-D sample with a one-hot t, that is the
    # number of classes, not 1.
    x = np.array([0.3, -0.2, 0.1, 0.5])
    t = np.array([0.0, 0.0, 1.0, 0.0])
    layer = SoftmaxWithLoss()
    layer.forward(x, t)
    np.testing.assert_allclose(layer.backward(), F.softmax(x) - t, rtol=1e-15)
    x_held = x.copy()
    numerical = numerical_gradient(lambda _: SoftmaxWithLoss().forward(x_held, t), x_held)
    np.testing.assert_allclose(layer.backward(), numerical, rtol=1e-8)


def test_numerical_gradient_refuses_integer_arrays():
    # The tutorial's W1 is an integer array: x[i] + 1e-4 is stored back as x[i], every
    # numerical gradient silently comes out 0.
    W1 = np.array([[1, 3, 5], [2, 4, 6]])
    with pytest.raises(TypeError, match="integer"):
        numerical_gradient(lambda _: 0.0, W1)
    np.testing.assert_array_equal(W1, [[1, 3, 5], [2, 4, 6]])  # left as it was


def test_integer_weights_are_stored_as_float64_so_updates_are_not_truncated():
    # Affine(int W) holds float64 weights, so an in-place update is not truncated.
    layer = Affine(np.array([[1, 3, 5], [2, 4, 6]]), np.array([1, 2, 3]))
    layer.params["W"] -= 0.25
    np.testing.assert_array_equal(layer.W, [[0.75, 2.75, 4.75], [1.75, 3.75, 5.75]])


def test_assigning_a_layers_weight_writes_into_its_params_array():
    # In the book, replacing net.params["W1"] leaves the Affine layer on the old array. Here
    # assignment through the layer writes into the one array both see.
    layer = Affine(np.zeros((2, 2)), np.zeros(2))
    params = layer.params
    layer.W = np.eye(2)
    assert params["W"] is layer.W
    np.testing.assert_array_equal(layer.forward(np.array([1.0, 2.0])), [1.0, 2.0])
