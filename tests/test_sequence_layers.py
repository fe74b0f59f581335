"""Embedding, LayerNorm, GELU, sequence cross-entropy with ignore_index, clip_grad_norm:
numerical gradient checks on many shapes, PyTorch parity (float64 at 1e-9, float32 at 1e-5),
errors, old specs. The checks every layer gets (the contract, the bare-layer loop, the spec round
trip, PyTorch in float64, ONNX) come from the table of layer cases, tests/layer_cases.py."""

import math

import numpy as np
import pytest

import handgrad.functions as F
from handgrad.gradcheck import gradient_check
from handgrad.layers.activations import GELU
from handgrad.layers.embedding import Embedding
from handgrad.layers.losses import SoftmaxWithLoss
from handgrad.layers.normalization import LayerNorm
from handgrad.optim import clip_grad_norm

RNG = np.random.default_rng(1234)
TOL = {np.float64: dict(rtol=1e-9, atol=0), np.float32: dict(rtol=1e-5, atol=0)}


def assert_matches(actual, desired, dtype, atol64=0.0):
    """PyTorch parity: float64 to 1e-9 relative; float32 to 1e-5 relative, plus 1e-6 of the
    largest value as an absolute floor, since float32 sums that cancel (LayerNorm's dx, 1 + erf
    near -1) are only exact to the rounding of their largest term (~6e-8 of it)."""
    desired = np.asarray(desired)
    if dtype == np.float64:
        np.testing.assert_allclose(actual, desired, rtol=1e-9, atol=atol64)
    else:
        np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-6 * float(np.max(np.abs(desired))))


def _ids(shape, vocab, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, size=shape)


# --- Embedding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1,), (5,), (1, 1), (3, 1), (1, 7), (3, 5)])
def test_embedding_gradient_check_ids_stay_integers(shape):
    layer = Embedding(RNG.standard_normal((7, 3)))
    ids = _ids(shape, 7)
    ids.flat[0] = ids.flat[-1]  # at least one repeat when there are two positions
    report = gradient_check(layer, ids)
    assert report.passed, str(report)
    assert set(report.errors) == {"W"}  # no "x": there is no gradient w.r.t. integer ids


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_embedding_matches_torch_with_repeated_ids(torch, dtype):
    W = RNG.standard_normal((11, 5)).astype(dtype)
    ids = np.array([[1, 1, 3, 10], [0, 1, 1, 3], [10, 10, 10, 10]])
    dout = RNG.standard_normal(ids.shape + (5,)).astype(dtype)
    layer = Embedding(W.copy())
    y = layer.forward(ids)
    assert layer.backward(dout) is None
    ref = torch.nn.Embedding(11, 5, dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(W))
    y_ref = ref(torch.tensor(ids))
    y_ref.backward(torch.tensor(dout))
    assert y.dtype == dtype and layer.dW.dtype == dtype
    np.testing.assert_allclose(y, y_ref.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(layer.dW, ref.weight.grad.numpy(), **TOL[dtype])
    assert np.all(layer.dW[[2, 4, 5, 6, 7, 8, 9]] == 0)  # ids that never occur get nothing


def test_embedding_repeated_ids_add_not_overwrite():
    layer = Embedding(np.zeros((4, 2)))
    layer.forward(np.array([2, 2, 2]))
    layer.backward(np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]))
    np.testing.assert_allclose(layer.dW[2], [6.0, 60.0], rtol=1e-15)


def test_embedding_shapes_and_vocab_50257():
    layer = Embedding(np.ones((50257, 4), np.float32))
    ids = _ids((2, 3), 50257)
    ids[0, 0] = 50256
    assert layer.forward(ids).shape == (2, 3, 4)
    assert layer.forward(ids[0]).shape == (3, 4)
    layer.backward(np.ones((3, 4), np.float32))
    assert layer.dW.sum() == pytest.approx(12.0, rel=1e-6)


@pytest.mark.parametrize(
    "ids, error, message",
    [
        (np.array([0.0, 1.0]), TypeError, r"Embedding: token ids must be integers in \[0, 5\), got dtype float64 \(use ids.astype"),
        (np.array([True, False]), TypeError, r"Embedding: token ids must be integers in \[0, 5\), got dtype bool"),
        (np.array([0, 5]), ValueError, r"Embedding: token ids must lie in \[0, 5\) for a vocabulary of 5, got values from 0 to 5"),
        (np.array([-1, 2]), ValueError, r"Embedding: token ids must lie in \[0, 5\).*from -1 to 2"),
        (np.zeros((2, 2, 2), int), ValueError, r"Embedding: expected token ids of shape \(N,\) or \(N, T\), got shape \(2, 2, 2\)"),
    ],
)
def test_embedding_refuses_bad_ids_naming_layer_and_range(ids, error, message):
    with pytest.raises(error, match=message):
        Embedding(np.zeros((5, 3))).forward(ids)


def test_embedding_refuses_bad_dout_and_bad_weight():
    layer = Embedding(np.zeros((5, 3)))
    layer.forward(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"Embedding: backward expected dout of shape \(1, 2, 3\).*got \(2, 3\)"):
        layer.backward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Embedding: W must have shape \(vocab_size, dim\).*got shape \(5,\)"):
        Embedding(np.zeros(5))


def test_embedding_keeps_its_ids_when_the_caller_reuses_the_buffer():
    layer = Embedding(np.eye(4))
    ids = np.array([1, 2])
    layer.forward(ids)
    ids[:] = 3  # the caller refills its buffer before backward
    layer.backward(np.ones((2, 4)))
    assert layer.dW[3].sum() == 0 and layer.dW[1].sum() == 4


# --- LayerNorm ----------------------------------------------------------------------------------


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


# --- GELU and erf -------------------------------------------------------------------------------


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (1, 1, 1), (3, 1, 5), (2, 7)])
def test_gelu_gradient_check(approximate, shape):
    report = gradient_check(GELU(approximate), RNG.standard_normal(shape) * 2)
    assert report.passed, str(report)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gelu_matches_torch(torch, approximate, dtype):
    # Inputs within +-5, plus the branch points of the erf approximation (|x / sqrt 2| = 0.46875, 4).
    x = np.concatenate([RNG.uniform(-5, 5, 2000), [0.0, 0.46875 * math.sqrt(2), -0.46875 * math.sqrt(2),
                                                    4 * math.sqrt(2), -4 * math.sqrt(2)]]).astype(dtype).reshape(-1, 5)
    dout = RNG.standard_normal(x.shape).astype(dtype)
    layer = GELU(approximate)
    y = layer.forward(x)
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt, approximate=approximate)
    yt.backward(torch.tensor(dout))
    assert y.dtype == dtype and dx.dtype == dtype
    # float64: PyTorch's 1 + erf (1 + tanh) cancels for negative x, so its own result is exact
    # only to ~|x| 1.1e-16 absolute (2.8e-16 seen at x = -4.9, 1e-9 relative there): atol 1e-15.
    assert_matches(y, yt.detach().numpy(), dtype, atol64=1e-15)
    assert_matches(dx, xt.grad.numpy(), dtype, atol64=1e-15)


def test_gelu_far_left_tail_is_exact_where_one_plus_erf_cancels():
    # PyTorch's 1 + erf(x / sqrt 2) loses every digit below x ~ -8; x Phi(x) via erfc keeps them.
    x = np.array([-6.0, -10.0, -20.0, -37.0])
    expected = np.array([v * 0.5 * math.erfc(-v * math.sqrt(0.5)) for v in x])
    np.testing.assert_allclose(F.gelu(x), expected, rtol=1e-14)


def test_erf_and_normal_cdf_against_math_module():
    x = np.concatenate([np.linspace(-8, 8, 4001), [0.46875, -0.46875, 4.0, -4.0, 1e-300, 30.0, -30.0]])
    np.testing.assert_allclose(F.erf(x), [math.erf(v) for v in x], rtol=1e-15, atol=0)
    z = x * math.sqrt(0.5)
    np.testing.assert_allclose(F.normal_cdf(x), [0.5 * math.erfc(-v) for v in z], rtol=2e-15, atol=0)


def test_erf_special_values_and_shapes():
    out = F.erf(np.array([np.inf, -np.inf, np.nan, 0.0]))
    assert out[0] == 1.0 and out[1] == -1.0 and np.isnan(out[2]) and out[3] == 0.0
    cdf = F.normal_cdf(np.array([np.inf, -np.inf, np.nan]))
    assert cdf[0] == 1.0 and cdf[1] == 0.0 and np.isnan(cdf[2])
    assert F.erf(np.zeros((2, 0))).shape == (2, 0)
    assert F.erf(np.float32(0.5)).dtype == np.float32
    assert F.normal_cdf(0.3).shape == ()


def test_gelu_refuses_unknown_approximation():
    with pytest.raises(ValueError, match="GELU: approximate must be 'none' or 'tanh', got 'fast'"):
        GELU("fast")
    with pytest.raises(ValueError, match="gelu: approximate must be"):
        F.gelu(np.ones(2), "fast")


# --- cross-entropy on sequences, ignore_index ------------------------------------------------------


def _seq_targets(N, T, C, seed, ignore=-100):
    t = _ids((N, T), C, seed)
    if N * T > 1:
        t.flat[::3] = ignore
    return t


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("N, T, C", [(1, 1, 3), (2, 5, 7), (3, 1, 4), (1, 4, 5)])
def test_softmax_with_loss_sequence_gradient_check(label_smoothing, N, T, C):
    t = _seq_targets(N, T, C, seed=N * T)
    report = gradient_check(SoftmaxWithLoss(label_smoothing), RNG.standard_normal((N, T, C)), t)
    assert report.passed, str(report)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_sequence_cross_entropy_matches_torch(torch, dtype, label_smoothing, ignore_index):
    N, T, C = 3, 5, 6
    x = (RNG.standard_normal((N, T, C)) * 2).astype(dtype)
    t = _seq_targets(N, T, C, seed=7, ignore=ignore_index)
    layer = SoftmaxWithLoss(label_smoothing=label_smoothing, ignore_index=ignore_index)
    loss = layer.forward(x, t)
    dx = layer.backward(1.0)
    xt = torch.tensor(x, requires_grad=True)
    # PyTorch wants the class axis second: (N, C, T).
    loss_t = torch.nn.functional.cross_entropy(xt.transpose(1, 2), torch.tensor(t), ignore_index=ignore_index,
                                               label_smoothing=label_smoothing)
    loss_t.backward()
    assert dx.dtype == dtype
    np.testing.assert_allclose(loss, loss_t.item(), **TOL[dtype])
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL[dtype])
    assert np.all(dx[t == ignore_index] == 0)
    for reduction in ("mean", "sum", "none"):
        ours = F.cross_entropy(x, t, reduction=reduction, label_smoothing=label_smoothing, ignore_index=ignore_index)
        ref = torch.nn.functional.cross_entropy(torch.tensor(x).transpose(1, 2), torch.tensor(t), reduction=reduction,
                                                ignore_index=ignore_index, label_smoothing=label_smoothing)
        np.testing.assert_allclose(ours, ref.numpy(), **TOL[dtype])


def test_cross_entropy_2d_and_1d_with_ignore_index_match_torch(torch):
    x = RNG.standard_normal((6, 4))
    t = np.array([0, -100, 3, 1, -100, 2])
    for smoothing in (0.0, 0.3):
        ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), label_smoothing=smoothing)
        np.testing.assert_allclose(F.cross_entropy(x, t, label_smoothing=smoothing), ref.item(), rtol=1e-9)
    x1 = RNG.standard_normal(4)
    np.testing.assert_allclose(F.cross_entropy(x1, np.array(2)),
                               torch.nn.functional.cross_entropy(torch.tensor(x1), torch.tensor(2)).item(), rtol=1e-9)


def test_all_ignored_mean_is_nan_and_gradient_zero_as_torch(torch):
    x = RNG.standard_normal((2, 3, 4))
    t = np.full((2, 3), -100)
    layer = SoftmaxWithLoss()
    assert math.isnan(layer.forward(x, t))
    assert np.all(layer.backward() == 0)
    assert math.isnan(F.cross_entropy(x, t))
    assert F.cross_entropy(x, t, reduction="sum") == 0.0
    assert math.isnan(torch.nn.functional.cross_entropy(torch.tensor(x).transpose(1, 2), torch.tensor(t)).item())


def test_sequence_loss_with_probability_rows_equals_labels():
    x = RNG.standard_normal((2, 3, 5))
    t = _ids((2, 3), 5, 3)
    by_labels, by_rows = SoftmaxWithLoss(), SoftmaxWithLoss()
    assert by_labels.forward(x, t) == pytest.approx(by_rows.forward(x, F.one_hot(t, 5)), rel=1e-12)
    np.testing.assert_allclose(by_labels.backward(), by_rows.backward(), rtol=1e-12, atol=1e-15)


def test_ignored_positions_change_nothing():
    x = RNG.standard_normal((2, 4, 3))
    t = np.array([[0, 1, -100, 2], [-100, -100, 1, 0]])
    kept = t != -100
    assert F.cross_entropy(x, t) == pytest.approx(F.cross_entropy(x[kept], t[kept]), rel=1e-12)


def test_sequence_loss_errors_name_layer_and_range():
    with pytest.raises(ValueError, match=r"SoftmaxWithLoss: labels must lie in \[0, 3\) for 3 classes, got values from 0 "
                                         r"to 3 \(or equal ignore_index=-100\)"):
        SoftmaxWithLoss().forward(np.zeros((2, 2, 3)), np.array([[0, -100], [3, 1]]))
    with pytest.raises(ValueError, match=r"SoftmaxWithLoss: expected 4 label\(s\) of shape \(2, 2\)"):
        SoftmaxWithLoss().forward(np.zeros((2, 2, 3)), np.array([0, 1]))
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        SoftmaxWithLoss(ignore_index=1.5)


# --- clip_grad_norm ------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(torch, norm_type, max_norm):
    grads = {"0.W": RNG.standard_normal((3, 4)), "0.b": RNG.standard_normal(4), "1.W": RNG.standard_normal((4, 2))}
    params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads.values()]
    for p, g in zip(params, grads.values()):
        p.grad = torch.tensor(g)
    total_ref = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    total = clip_grad_norm(grads, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, total_ref.item(), rtol=1e-12)
    for p, g in zip(params, grads.values()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_scales_in_place_a_list_float32(torch):
    grads = [np.full(4, 3.0, np.float32), np.full(2, 4.0, np.float32)]
    held = grads[0]
    total = clip_grad_norm(grads, 1.0)
    assert total == pytest.approx(math.sqrt(4 * 9 + 2 * 16), rel=1e-6)
    assert held is grads[0] and held.dtype == np.float32
    assert math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads)) == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_non_finite_as_torch(torch):
    grads = [np.array([1.0, np.inf]), np.array([2.0])]
    params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g)
    ref = torch.nn.utils.clip_grad_norm_(params, 1.0)
    assert clip_grad_norm(grads, 1.0) == ref.item() == math.inf
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(g, p.grad.numpy())  # 0 and nan: exact values, not rounding
    nan_grads = [np.array([np.nan, 1.0])]
    assert math.isnan(clip_grad_norm(nan_grads, 1.0)) and np.all(np.isnan(nan_grads[0]))
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm([np.array([np.inf])], 1.0, error_if_nonfinite=True)


def test_clip_grad_norm_leaves_small_gradients_alone_and_refuses_non_float():
    grads = [np.array([0.3, 0.4])]
    assert clip_grad_norm(grads, 1.0) == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_array_equal(grads[0], [0.3, 0.4])
    assert clip_grad_norm([], 1.0) == 0.0
    with pytest.raises(TypeError, match="clip_grad_norm: gradients must be float NumPy arrays"):
        clip_grad_norm([np.array([1, 2])], 1.0)


# --- specs ----------------------------------------------------------------------------------------


def test_old_softmax_spec_without_ignore_index_loads_with_torchs_default():
    assert SoftmaxWithLoss.from_spec({"type": "SoftmaxWithLoss", "label_smoothing": 0.0}).ignore_index == -100


def test_param_shapes_refuse_crafted_sizes_before_allocating():
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        Embedding.param_shapes({"vocab_size": -1, "dim": 4})
    with pytest.raises(ValueError, match="num_features must be a positive integer"):
        LayerNorm.param_shapes({"num_features": 2**50})
