"""handgrad.layers: every row of the table of layer cases (tests/layer_cases.py) against
numerical gradients (float64) and the layer contract of docs/design.md#layer-contract; the dense
layers, activations and loss on random sizes (hypothesis); and clear errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_cases import CASES, case_id

from handgrad import functions as F
from handgrad.gradcheck import (DEFAULT_THRESHOLD, GradientCheckReport, gradient_check, numerical_gradient,
                                relative_error)
from handgrad.layers import Affine, Relu, Sigmoid, SoftmaxWithLoss, Tanh

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(1, 6)


def away_from_zero(rng, shape, margin=0.05):
    """Random values at least `margin` from 0, so Relu's kink is never within eps."""
    u = rng.standard_normal(shape)
    return np.sign(u + (u == 0)) * (margin + np.abs(u))


# --- every row of the table: numerical gradients ------------------------------------------------


def check_gradients(layer, inputs, t):
    """``gradient_check`` for a layer of one input; for one of several (``forward(h_dec, h_enc)``,
    a tuple from backward), the same check written out with ``numerical_gradient``, per input."""
    if len(inputs) == 1:
        return gradient_check(layer, inputs[0], t)
    dout = np.random.default_rng(0).standard_normal(np.shape(layer.forward(*inputs)))

    def scalar(_):
        return float(np.sum(layer.forward(*inputs) * dout))

    dxs = layer.backward(dout)
    report = GradientCheckReport(errors={}, threshold=DEFAULT_THRESHOLD, analytic={}, numerical={})
    for name, grad in {**{k: v.copy() for k, v in layer.grads.items()},
                       **{f"x{i}": dx for i, dx in enumerate(dxs)}}.items():
        array = layer.params[name] if name in layer.params else inputs[int(name[1:])]
        report.analytic[name], report.numerical[name] = grad, numerical_gradient(scalar, array)
        report.errors[name] = relative_error(grad, report.numerical[name])
    return report


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_case_passes_the_gradient_check(case):
    layer, inputs, t = case.build(np.float64)
    report = check_gradients(layer, inputs, t)
    float_inputs = [i for i, x in enumerate(inputs) if np.asarray(x).dtype.kind == "f"]
    expected_inputs = {"x"} if len(inputs) == 1 else {f"x{i}" for i in range(len(inputs))}
    assert set(report.errors) == set(layer.params) | (expected_inputs if float_inputs else set())
    assert report.passed, str(report)


# --- every row of the table: the layer contract ------------------------------------------------------


def _arrays(value, where: str, found: dict) -> None:
    if isinstance(value, np.ndarray):
        found[where] = value.copy()
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            _arrays(item, f"{where}[{i}]", found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _arrays(item, f"{where}[{key!r}]", found)


def forward_cache(layer) -> dict:
    """A copy of every array a layer and its children hold, besides params, grads and buffers:
    what forward cached for backward (``_x2d``, ``mask``, ``_cache``, ``y``, ...)."""
    found = {}
    for path, each in [("", layer), *layer.named_layers()]:
        for name, value in vars(each).items():
            if name not in ("_own", "_children"):
                _arrays(value, f"{path}.{name}" if path else name, found)
    return found


def run_forward(layer, inputs, t):
    return layer.forward(*inputs) if t is None else layer.forward(*inputs, t)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_case_keeps_the_layer_contract(case):
    layer, inputs, t = case.build(np.float64)
    # backward never writes into dout, the input, the output or what forward cached; run twice, it
    # gives the same dx (it depends on nothing accumulated).
    inputs_before = [np.copy(x) for x in inputs]
    out = run_forward(layer, inputs, t)
    out_before, cache_before = np.copy(out), forward_cache(layer)
    dout = 2.0 if t is not None else case.rng(1).standard_normal(np.shape(out))
    dout_before = np.copy(dout)
    first, second = layer.backward(dout), layer.backward(dout)
    for dx_first, dx_second in zip(first if isinstance(first, tuple) else [first],
                                   second if isinstance(second, tuple) else [second]):
        np.testing.assert_array_equal(dx_first, dx_second)
    np.testing.assert_array_equal(dout, dout_before)
    np.testing.assert_array_equal(out, out_before)
    for x, x_before in zip(inputs, inputs_before):
        np.testing.assert_array_equal(x, x_before)
    cache_after = forward_cache(layer)
    for name, value in cache_before.items():
        np.testing.assert_array_equal(cache_after[name], value, err_msg=f"{case.id}: backward changed {name}")

    # A bare layer used the book's way (forward, backward, read the gradients, repeat) holds one
    # step's gradients each time, never the sum of the steps; a second backward of one forward adds.
    layer, inputs, t = case.build(np.float64)
    steps = []
    for _ in range(3):
        run_forward(layer, inputs, t)
        layer.backward(dout)
        steps.append({key: grad.copy() for key, grad in layer.grads.items()})
    for step in steps[1:]:
        for key, grad in step.items():
            np.testing.assert_array_equal(grad, steps[0][key], err_msg=key)
    layer.backward(dout)
    for key, grad in layer.grads.items():
        np.testing.assert_allclose(grad, 2 * steps[0][key], rtol=1e-12, atol=1e-14, err_msg=key)

    # Evaluation mode is deterministic.
    layer.eval()
    np.testing.assert_array_equal(run_forward(layer, inputs, t), run_forward(layer, inputs, t))


# --- gradients against numerical differences, on random sizes ---------------------------------------


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


@pytest.mark.parametrize("target_kind", ["index", "one_hot", "soft"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@given(seed=seeds, n=sizes, c=st.integers(2, 6))
def test_softmax_with_loss_gradient_matches_numerical(target_kind, label_smoothing, seed, n, c):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    soft = F.softmax(rng.standard_normal((n, c)))
    t = {"index": labels, "one_hot": F.one_hot(labels, c), "soft": soft}[target_kind]
    # Unit-scale logits: deep in saturation the loss is ~1e-6, float64 rounds it at ~1e-16 and
    # central differences lose the digits the relative error needs (see the walkthrough).
    report = gradient_check(SoftmaxWithLoss(label_smoothing), rng.standard_normal((n, c)), t)
    assert report.passed, str(report)


@given(seed=seeds, c=st.integers(2, 6))
def test_softmax_with_loss_gradient_for_one_sample(seed, c):
    rng = np.random.default_rng(seed)
    label = int(rng.integers(0, c))
    report = gradient_check(SoftmaxWithLoss(), rng.standard_normal(c), label)
    assert report.analytic["x"].shape == (c,)
    assert report.passed, str(report)


def test_softmax_with_loss_unnormalised_soft_targets_get_the_exact_gradient():
    # Rows that do not sum to 1: (y - t) / N would be wrong; y * sum(t) - t is exact.
    rng = np.random.default_rng(3)
    t = rng.uniform(0, 2, (3, 4))
    report = gradient_check(SoftmaxWithLoss(), rng.standard_normal((3, 4)), t)
    assert report.passed, str(report)


# --- the contract, written out for Affine -----------------------------------------------------------


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


def test_softmax_with_loss_target_kinds_agree():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3))
    labels = rng.integers(0, 3, 5)
    results = []
    for t in (labels, F.one_hot(labels, 3), F.one_hot(labels, 3).astype(np.int64)):
        layer = SoftmaxWithLoss()
        results.append((layer.forward(x, t), layer.backward()))
    for loss, dx in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-14)
        np.testing.assert_allclose(dx, results[0][1], rtol=1e-14, atol=1e-16)
    assert results[0][0] == pytest.approx(F.cross_entropy(x, labels), rel=1e-14)


# --- errors ---------------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    "t, error, message",
    [
        (np.array([0, 5]), ValueError, r"SoftmaxWithLoss: labels must lie in \[0, 3\) for 3 classes, got values from 0 to 5"),
        (np.array([-1, 0]), ValueError, r"SoftmaxWithLoss: labels must lie in \[0, 3\)"),
        (np.array([0, 1, 2]), ValueError, r"SoftmaxWithLoss: expected 2 label\(s\) of shape \(2,\), got labels of shape \(3,\)"),
        (np.array([[0, 1]]), ValueError, r"SoftmaxWithLoss: target rows of shape \(1, 2\) do not match scores of shape \(2, 3\)"),
        (np.array(["a", "b"]), TypeError, "SoftmaxWithLoss: class labels must be integers"),
    ],
)
def test_softmax_with_loss_refuses_bad_labels(t, error, message):
    with pytest.raises(error, match=message):
        SoftmaxWithLoss().forward(np.zeros((2, 3)), t)


def test_softmax_with_loss_refuses_non_scalar_dout():
    layer = SoftmaxWithLoss()
    layer.forward(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="scalar dout"):
        layer.backward(np.ones((2, 3)))


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
