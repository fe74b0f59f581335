"""Dropout, BatchNorm, Convolution, Pooling, AvgPooling, Flatten: numerical gradients on odd
shapes, PyTorch parity in float64 for every geometry, what each layer does of its own, and the
ready-made ConvNets. The checks every layer gets (one gradient check, the contract, the spec, PyTorch,
ONNX) come from the table of layer cases, tests/layer_cases.py."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from handgrad.gradcheck import gradient_check
from handgrad.layers import AvgPooling, BatchNorm, Convolution, Dropout, Pooling
from handgrad.layers.conv import col2im, im2col

seeds = st.integers(0, 2**32 - 1)
# (kernel h, kernel w, stride, pad): odd, non-square, stride 2, padding 1.
geometries = st.sampled_from([(3, 3, 1, 0), (3, 2, 2, 1), (2, 3, 1, 1), (1, 1, 1, 0), (3, 3, 2, 1), (2, 2, 2, 0),
                              (5, 3, 3, 2)])
# Pooling allows padding of at most half the window on each axis (as PyTorch does), so its
# largest-padding case is (5, 3) with pad 1, not 2.
pooling_geometries = st.sampled_from([(3, 3, 1, 0), (3, 2, 2, 1), (2, 3, 1, 1), (1, 1, 1, 0), (3, 3, 2, 1),
                                      (2, 2, 2, 0), (5, 3, 3, 1), (5, 5, 2, 2)])


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


@given(seed=seeds, shape=st.sampled_from([(4, 3), (1 + 2, 5), (3, 2, 3, 3), (2, 4, 1, 2)]))
def test_batchnorm_gradients_match_numerical_in_both_modes(seed, shape):
    rng = np.random.default_rng(seed)
    layer = BatchNorm(shape[1], dtype=np.float64)
    layer.params["gamma"][...] = rng.uniform(0.5, 2, shape[1])
    layer.params["beta"][...] = rng.standard_normal(shape[1])
    x = rng.standard_normal(shape) * 2 + 1
    assert gradient_check(layer, x, seed=seed).passed
    layer.forward(x)  # some running statistics, then evaluation mode
    layer.eval()
    assert gradient_check(layer, x, seed=seed).passed


def test_convolution_batch_of_one_and_im2col_col2im_are_adjoint():
    rng = np.random.default_rng(1)
    layer = Convolution(rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2), stride=2, pad=1)
    assert gradient_check(layer, rng.standard_normal((1, 3, 5, 5))).passed
    x = rng.standard_normal((2, 3, 6, 5))
    col = im2col(x, 3, 2, 2, 1)
    y = rng.standard_normal(col.shape)
    # <im2col(x), y> == <x, col2im(y)>: col2im accumulates overlaps exactly.
    assert np.sum(col * y) == pytest.approx(np.sum(x * col2im(y, x.shape, 3, 2, 2, 1)), rel=1e-12)


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


def test_dropout_is_inverted_and_seeded():
    x = np.ones((2000, 50), np.float32)
    layer = Dropout(0.3, rng=np.random.default_rng(0))
    y = layer.forward(x)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.7)}
    assert abs(y.mean() - 1.0) < 0.01 and abs((y == 0).mean() - 0.3) < 0.01
    again = Dropout(0.3, rng=np.random.default_rng(0)).forward(x)
    np.testing.assert_array_equal(y, again)
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x), x)


def test_batchnorm_running_statistics_follow_pytorchs_convention():
    rng = np.random.default_rng(3)
    layer = BatchNorm(3, momentum=0.1, dtype=np.float64)
    x = rng.standard_normal((8, 3)) * 3 + 2
    layer.forward(x)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(layer.buffers["running_var"], 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-12)


@pytest.mark.parametrize("layer, x, message", [
    (Convolution(np.zeros((2, 3, 3, 3)), np.zeros(2)), np.zeros((1, 2, 5, 5)), r"Convolution: expected input of shape \(N, 3, H, W\), got \(1, 2, 5, 5\)"),
    (Convolution(np.zeros((2, 3, 3, 3)), np.zeros(2)), np.zeros((1, 3, 2, 2)), r"does not fit an input of shape \(1, 3, 2, 2\)"),
    (Pooling(2, 2, 2), np.zeros((3, 4)), r"Pooling: expected input of shape \(N, C, H, W\)"),
    (BatchNorm(4), np.zeros((2, 3)), r"BatchNorm: expected input of shape \(N, 4\) or \(N, 4, H, W\), got \(2, 3\)"),
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


# --- models ---------------------------------------------------------------------------------------


def test_simple_convnet_shapes_gradients_and_save_load(tmp_path):
    model = hg.model.SimpleConvNet(input_dim=(1, 10, 10), filter_num=4, filter_size=3, hidden_size=8, seed=0,
                                   dtype=np.float64)
    text = model.summary_text()
    assert "total parameters" in text and "(N, 4, 8, 8)" in text
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((3, 1, 10, 10)), rng.integers(0, 10, 3)
    report = gradient_check(model, x, t)
    assert report.passed, str(report)
    hg.save(model, tmp_path / "cnn")
    loaded = hg.load(tmp_path / "cnn")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.input_shape == (1, 10, 10)


def test_deep_convnet_runs_and_round_trips(tmp_path):
    model = hg.model.DeepConvNet(input_dim=(1, 12, 12), seed=0)
    assert sum(isinstance(layer, Convolution) for layer in model.layers) == 6
    assert sum(isinstance(layer, Dropout) for layer in model.layers) == 2
    x = np.random.default_rng(1).standard_normal((2, 1, 12, 12)).astype(np.float32)
    model.eval()
    hg.save(model, tmp_path / "deep")
    loaded = hg.load(tmp_path / "deep")
    loaded.eval()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_mlp_with_batchnorm_and_dropout_saves_running_statistics(tmp_path):
    (x, t), (x_test, t_test) = hg.data.load_dataset("digits")
    model = hg.mlp(64, [32, 32], 10, batchnorm=True, dropout=0.2, seed=0)
    names = [type(layer).__name__ for layer in model.layers]
    assert names == ["Affine", "BatchNorm", "Relu", "Dropout", "Affine", "BatchNorm", "Relu", "Dropout", "Affine"]
    hg.fit(model, hg.optim.Adam(lr=3e-3), (x, t), epochs=5, batch_size=64, seed=0)
    assert model.accuracy(x_test, t_test) > 0.9
    hg.save(model, tmp_path / "bn")
    loaded = hg.load(tmp_path / "bn")
    np.testing.assert_array_equal(loaded.layers[1].buffers["running_var"], model.layers[1].buffers["running_var"])
    assert not np.all(model.layers[1].buffers["running_var"] == 1.0)
    np.testing.assert_array_equal(loaded.predict_classes(x_test), model.predict_classes(x_test))


def test_train_eval_reach_every_layer_and_dropout_uses_the_models_generator():
    model = hg.mlp(8, [8], 3, dropout=0.5, batchnorm=True, seed=4)
    assert model.layers[3].rng is model.rng
    model.eval()
    assert not any(layer.training for layer in model.layers)
    x = np.ones((4, 8), np.float32)
    np.testing.assert_array_equal(model.predict(x), model.predict(x))
    a, b = hg.mlp(8, [8], 3, dropout=0.5, seed=4), hg.mlp(8, [8], 3, dropout=0.5, seed=4)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))  # same seed, same masks


def test_weight_decay_from_the_model_matches_numerical_and_the_book():
    rng = np.random.default_rng(5)
    model = hg.mlp(4, [5], 3, seed=0, dtype=np.float64, weight_decay=0.1)
    x, t = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    plain = hg.mlp(4, [5], 3, seed=0, dtype=np.float64)
    penalty = 0.05 * sum(np.sum(model.params[k] ** 2) for k in ("0.W", "2.W"))
    assert model.loss(x, t) == pytest.approx(plain.loss(x, t) + penalty, rel=1e-12)
    assert gradient_check(model, x, t).passed


def test_interrupted_and_resumed_with_dropout_equals_uninterrupted(tmp_path):
    (x, t), _ = hg.data.load_dataset("digits")
    straight = hg.mlp(64, [16], 10, dropout=0.3, batchnorm=True, seed=2)
    hg.fit(straight, hg.optim.Adam(), (x, t), epochs=3, batch_size=128, seed=1)
    first = hg.mlp(64, [16], 10, dropout=0.3, batchnorm=True, seed=2)
    hg.fit(first, hg.optim.Adam(), (x, t), epochs=1, batch_size=128, seed=1, checkpoint=tmp_path / "c", checkpoint_every=1)
    resumed = hg.mlp(64, [16], 10, dropout=0.3, batchnorm=True, seed=99)
    hg.fit(resumed, hg.optim.Adam(), (x, t), epochs=3, batch_size=128, seed=1, checkpoint=tmp_path / "c",
           checkpoint_every=1, resume=True)
    for key in straight.params:
        np.testing.assert_array_equal(resumed.params[key], straight.params[key])
    np.testing.assert_array_equal(resumed.layers[1].buffers["running_mean"], straight.layers[1].buffers["running_mean"])


# --- PyTorch parity (float64, 1e-9) -----------------------------------------------------------------

# Each parity test takes the session fixture `torch` (tests/conftest.py): it skips without
# PyTorch and fails under HANDGRAD_REQUIRE_TORCH=1.
TOL = 1e-9


def torch_grads(torch, module_call, x, dout):
    x_t = torch.tensor(x, requires_grad=True)
    out = module_call(x_t)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), x_t.grad.numpy()


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


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 5)])
def test_batchnorm_matches_torch_in_train_and_eval_after_steps(shape, torch):
    rng = np.random.default_rng(8)
    ours = BatchNorm(4, momentum=0.2, eps=1e-4, dtype=np.float64)
    theirs = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(4, momentum=0.2, eps=1e-4,
                                                                                 dtype=torch.float64)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.standard_normal(4)
    ours.params["gamma"][...], ours.params["beta"][...] = gamma, beta
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(gamma))
        theirs.bias.copy_(torch.tensor(beta))
    for step in range(3):
        x = rng.standard_normal(shape) * (step + 1) + step
        dout = rng.standard_normal(shape)
        out = ours.forward(x)
        dx = ours.backward(dout)
        theirs.zero_grad()  # torch accumulates gradients across backward calls
        out_t, dx_t = torch_grads(torch, theirs, x, dout)
        np.testing.assert_allclose(out, out_t, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(dx, dx_t, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(ours.grads["gamma"], theirs.weight.grad.numpy(), rtol=TOL, atol=TOL)
        np.testing.assert_allclose(ours.grads["beta"], theirs.bias.grad.numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ours.buffers["running_mean"], theirs.running_mean.numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var.numpy(), rtol=TOL, atol=TOL)
    ours.eval()
    theirs.eval()
    x, dout = rng.standard_normal(shape), rng.standard_normal(shape)
    out = ours.forward(x)
    dx = ours.backward(dout)
    out_t, dx_t = torch_grads(torch, theirs, x, dout)
    np.testing.assert_allclose(out, out_t, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(dx, dx_t, rtol=TOL, atol=TOL)


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


def test_dropout_eval_mode_matches_torch(torch):
    x = np.random.default_rng(9).standard_normal((4, 5))
    layer = Dropout(0.5)
    layer.eval()
    module = torch.nn.Dropout(0.5)
    module.eval()
    out_t, dx_t = torch_grads(torch, module, x, np.ones_like(x))
    np.testing.assert_array_equal(layer.forward(x), out_t)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), dx_t)
