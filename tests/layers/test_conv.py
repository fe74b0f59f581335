"""handgrad.layers.conv: Convolution (both of its paths), Pooling, AvgPooling, im2col and col2im:
numerical gradients on odd geometries (hypothesis), PyTorch parity in float64 for every
geometry, padding and ties, and clear errors (Dropout's and BatchNorm's too, in the same
parametrized tests). The checks every layer gets (gradient check, contract, spec, PyTorch, ONNX)
come from its row in the table of layer cases, tests/layer_cases.py, run by
tests/test_layer_cases.py."""

import re

import numpy as np
import pytest
from helpers import TOL_FLOAT64 as TOL
from helpers import seeds, torch_grads
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from handgrad.gradcheck import gradient_check
from handgrad.layers import AvgPooling, BatchNorm, Convolution, Dropout, Pooling
from handgrad.layers.conv import col2im, im2col


# (kernel h, kernel w, stride, pad): odd, non-square, stride 2, padding 1.
geometries = st.sampled_from([(3, 3, 1, 0), (3, 2, 2, 1), (2, 3, 1, 1), (1, 1, 1, 0), (3, 3, 2, 1), (2, 2, 2, 0),
                              (5, 3, 3, 2)])
# Pooling allows padding of at most half the window on each axis (as PyTorch does), so its
# largest-padding case is (5, 3) with pad 1, not 2.
pooling_geometries = st.sampled_from([(3, 3, 1, 0), (3, 2, 2, 1), (2, 3, 1, 1), (1, 1, 1, 0), (3, 3, 2, 1),
                                      (2, 2, 2, 0), (5, 3, 3, 1), (5, 5, 2, 2)])


# --- numerical gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("row_shift_min_inner", [10**9, 0], ids=["gemm-per-image", "row-shifts"])
@given(seed=seeds, n=st.integers(1, 3), c=st.integers(1, 3), fn=st.integers(1, 3), hw=st.tuples(st.integers(5, 8),
       st.integers(5, 8)), geometry=geometries)
def test_convolution_gradients_match_numerical(row_shift_min_inner, seed, n, c, fn, hw, geometry):
    kh, kw, stride, pad = geometry
    rng = np.random.default_rng(seed)
    layer = Convolution(rng.standard_normal((fn, c, kh, kw)), rng.standard_normal(fn), stride=stride, pad=pad)
    layer.ROW_SHIFT_MIN_INNER = row_shift_min_inner  # both paths (only stride 1 takes the row shifts)
    report = gradient_check(layer, rng.standard_normal((n, c) + hw), seed=seed)
    assert report.passed, str(report)


@pytest.mark.parametrize("layer_type", [Pooling, AvgPooling])
@given(seed=seeds, n=st.integers(1, 3), c=st.integers(1, 3), hw=st.tuples(st.integers(4, 7), st.integers(4, 7)),
       geometry=pooling_geometries)
def test_pooling_gradients_match_numerical(layer_type, seed, n, c, hw, geometry):
    kh, kw, stride, pad = geometry
    rng = np.random.default_rng(seed)
    # Distinct, well-separated values: the max never changes under a +-eps nudge.
    x = rng.permutation(n * c * hw[0] * hw[1]).reshape((n, c) + hw) * 0.1
    report = gradient_check(layer_type(kh, kw, stride=stride, pad=pad), x, seed=seed)
    assert report.passed, str(report)


def test_convolution_batch_of_one_and_im2col_col2im_are_adjoint():
    rng = np.random.default_rng(1)
    layer = Convolution(rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2), stride=2, pad=1)
    assert gradient_check(layer, rng.standard_normal((1, 3, 5, 5))).passed
    x = rng.standard_normal((2, 3, 6, 5))
    col = im2col(x, 3, 2, 2, 1)
    y = rng.standard_normal(col.shape)
    # <im2col(x), y> == <x, col2im(y)>: col2im accumulates overlaps exactly.
    assert np.sum(col * y) == pytest.approx(np.sum(x * col2im(y, x.shape, 3, 2, 2, 1)), rel=1e-12)


# --- padding, the two pooling types, errors -----------------------------------------------------------


def test_padding_never_wins_the_max():
    x = -np.ones((1, 1, 2, 2)) * np.array([[1.0, 2.0], [3.0, 4.0]])  # all negative
    out = Pooling(2, 2, stride=2, pad=1).forward(x)
    np.testing.assert_array_equal(out[0, 0], [[-1.0, -2.0], [-3.0, -4.0]])
    assert out.shape == (1, 1, 2, 2)


@pytest.mark.parametrize("layer_type", [Pooling, AvgPooling])
@pytest.mark.parametrize("pool, pad", [((2, 2), 2), ((3, 2), 2), ((1, 1), 1), ((5, 3), 2)])
def test_pooling_refuses_padding_above_half_the_window(layer_type, pool, pad):
    # Pooling(2, 2, stride=2, pad=2) used to be accepted and output -inf (windows of padding only).
    expected = f"{layer_type.__name__}: pad {pad} is more than half the ({pool[0]}, {pool[1]}) window; " \
               f"pad must be at most {min(pool) // 2}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        layer_type(*pool, stride=2, pad=pad)


@pytest.mark.parametrize("layer_type", [Pooling, AvgPooling])
def test_pooling_with_the_most_padding_allowed_outputs_only_finite_values(layer_type):
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # all negative: padding must never win the max
    out = layer_type(2, 2, stride=2, pad=1).forward(x)
    assert out.shape == (1, 1, 3, 3) and np.all(np.isfinite(out))


def test_max_and_average_pooling_are_separate_types_with_the_same_saved_description():
    assert not issubclass(AvgPooling, Pooling) and not issubclass(Pooling, AvgPooling)
    for layer_type in (Pooling, AvgPooling):
        layer = layer_type(3, 2, stride=2, pad=1)
        assert layer.spec() == {"type": layer_type.__name__, "pool": [3, 2], "stride": 2, "pad": 1}
        again = hg.layers.LAYER_TYPES[layer.spec()["type"]].from_spec(layer.spec())
        assert type(again) is layer_type and again.spec() == layer.spec()


@pytest.mark.parametrize("layer, x, message", [
    (Convolution(np.zeros((2, 3, 3, 3)), np.zeros(2)), np.zeros((1, 2, 5, 5)), r"Convolution: expected input of shape \(N, 3, H, W\), got \(1, 2, 5, 5\)"),
    (Convolution(np.zeros((2, 3, 3, 3)), np.zeros(2)), np.zeros((1, 3, 2, 2)), r"does not fit an input of shape \(1, 3, 2, 2\)"),
    (Pooling(2, 2, 2), np.zeros((3, 4)), r"Pooling: expected input of shape \(N, C, H, W\)"),
    (BatchNorm(4), np.zeros((2, 3)), r"BatchNorm: expected input of shape \(N, 4\), \(N, T, 4\) or \(N, 4, H, W\), got \(2, 3\)"),
    (BatchNorm(3), np.zeros((1, 3)), "more than one value per feature"),
])
def test_clear_errors(layer, x, message):
    with pytest.raises(ValueError, match=message):
        layer.forward(x)


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="Dropout: p must be in"):
        Dropout(1.0)
    with pytest.raises(ValueError, match=r"W must have shape \(FN, C, FH, FW\)"):
        Convolution(np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="Pooling: kernel and stride must be >= 1 and pad >= 0"):
        Pooling(2, 2, stride=0)
    with pytest.raises(ValueError, match="AvgPooling: kernel and stride must be >= 1 and pad >= 0"):
        AvgPooling(2, 2, pad=-1)


# --- PyTorch parity (float64, 1e-9) -------------------------------------------------------------------


# Each parity test takes the session fixture `torch` (tests/conftest.py): it skips without
# PyTorch and fails under HANDGRAD_REQUIRE_TORCH=1.


@pytest.mark.parametrize("geometry", [(3, 3, 1, 0), (3, 2, 2, 1), (5, 5, 1, 2), (2, 3, 2, 0)])
def test_convolution_matches_torch(geometry, torch):
    kh, kw, stride, pad = geometry
    rng = np.random.default_rng(6)
    W, b = rng.standard_normal((4, 3, kh, kw)), rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 9, 8))
    layer = Convolution(W, b, stride=stride, pad=pad)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    conv = torch.nn.Conv2d(3, 4, (kh, kw), stride=stride, padding=pad, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W))
        conv.bias.copy_(torch.tensor(b))
    out_t, dx_t = torch_grads(torch, conv, x, dout)
    np.testing.assert_allclose(out, out_t, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(dx, dx_t, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(layer.dW, conv.weight.grad.numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(layer.db, conv.bias.grad.numpy(), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("ours, theirs", [(Pooling, "MaxPool2d"), (AvgPooling, "AvgPool2d")])
@pytest.mark.parametrize("geometry", [(2, 2, 2, 0), (3, 3, 2, 1), (3, 2, 1, 1), (2, 3, 3, 1), (2, 2, 2, 1), (2, 2, 3, 1)])
def test_pooling_matches_torch(ours, theirs, geometry, torch):
    kh, kw, stride, pad = geometry
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 7, 9))
    layer = ours(kh, kw, stride=stride, pad=pad)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    out_t, dx_t = torch_grads(torch, getattr(torch.nn, theirs)((kh, kw), stride=stride, padding=pad), x, dout)
    np.testing.assert_allclose(out, out_t, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(dx, dx_t, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("layer_type, theirs", [(Pooling, "MaxPool2d"), (AvgPooling, "AvgPool2d")])
def test_pooling_accepts_exactly_the_padding_torch_accepts(layer_type, theirs, torch):
    x = torch.zeros((1, 1, 8, 8), dtype=torch.float64)
    for pool in [(1, 1), (2, 2), (3, 2), (5, 3), (4, 4)]:
        for pad in range(4):
            try:
                getattr(torch.nn, theirs)(pool, stride=2, padding=pad)(x)
                torch_accepts = True
            except RuntimeError:
                torch_accepts = False
            try:
                layer_type(*pool, stride=2, pad=pad)
                we_accept = True
            except ValueError:
                we_accept = False
            assert we_accept == torch_accepts, (pool, pad)


@pytest.mark.parametrize("geometry", [(2, 2, 2, 0), (3, 3, 1, 1), (2, 2, 1, 0)])
def test_max_pooling_ties_go_where_torch_sends_them(geometry, torch):
    kh, kw, stride, pad = geometry
    x = np.random.default_rng(10).integers(0, 3, (2, 2, 6, 6)).astype(np.float64)  # many ties
    layer = Pooling(kh, kw, stride=stride, pad=pad)
    out = layer.forward(x)
    dout = np.random.default_rng(11).standard_normal(out.shape)
    out_t, dx_t = torch_grads(torch, torch.nn.MaxPool2d((kh, kw), stride=stride, padding=pad), x, dout)
    np.testing.assert_array_equal(out, out_t)
    np.testing.assert_allclose(layer.backward(dout), dx_t, rtol=TOL, atol=TOL)
