"""What the sequence layers are built on, beyond the layers themselves: erf, the normal CDF and
F.gelu's far tail; F.cross_entropy with ignore_index against PyTorch; clip_grad_norm against
PyTorch. The layers' own tests (Embedding, LayerNorm, GELU, SoftmaxWithLoss on sequences) are in
tests/layers/, one file per module of src/handgrad/layers/."""

import math

import numpy as np
import pytest

import handgrad.functions as F
from handgrad.optim import clip_grad_norm


RNG = np.random.default_rng(1234)


# --- erf, the normal CDF and F.gelu -------------------------------------------------------------------


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


def test_float32_normal_cdf_is_within_8_ulp_everywhere_the_tails_included():
    """float32 input takes its own formula (t exp(-a^2/2) P(t)): measured against the float64 Phi
    in units of float32's last place, down to the left tail where float32 still has normal numbers
    (Cody's float64 formula run in float32 was 187 ulp off there, from the rounding of a^2)."""
    x = np.concatenate([np.linspace(-13, 13, 200_001), RNG.standard_normal(50_000) * 3]).astype(np.float32)
    exact = F.normal_cdf(x.astype(np.float64))
    got = F.normal_cdf(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    ulp = np.abs(got.astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert ulp.max() <= 8.0, (ulp.max(), x[np.argmax(ulp)])
    special = F.normal_cdf(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 40.0, -40.0], np.float32))
    assert special[0] == 1.0 and special[1] == 0.0 and np.isnan(special[2])
    assert abs(special[3] - 0.5) <= 6e-8 and abs(special[4] - 0.5) <= 6e-8
    assert special[5] == 1.0 and special[6] == 0.0
    assert np.all(np.diff(F.normal_cdf(np.linspace(-6, 6, 10_001, dtype=np.float32))) >= -6e-8)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-15), (np.float32, 8 * 6e-8)])
def test_gelu_with_slope_equals_its_formulas_value_by_value(dtype, tolerance):
    """y = x Phi(x) and dy/dx = Phi(x) + x phi(x) (float32: Phi and phi from one exp, chunk by
    chunk), against math's erfc and exp, in x's shape and dtype, across chunks (F._CHUNK); nan
    stays nan, and at +-inf dy/dx is inf * 0 = nan, as PyTorch's GELU backward gives."""
    x = (RNG.standard_normal(F._CHUNK + 999) * 4).reshape(-1, 1).astype(dtype)
    x[:3, 0] = [np.nan, np.inf, -np.inf]
    with np.errstate(invalid="ignore"):  # inf * 0 at +-inf
        y, slope = F.gelu_with_slope(x)
        assert y.shape == slope.shape == x.shape and y.dtype == slope.dtype == dtype
        np.testing.assert_array_equal(y, x * F.normal_cdf(x))
    v = x[3:, 0].astype(np.float64)
    cdf = np.array([0.5 * math.erfc(-value / math.sqrt(2)) for value in v])
    density = np.array([math.exp(-value * value / 2) / math.sqrt(2 * math.pi) for value in v])
    # dy/dx crosses 0 near x = -0.75, where a relative tolerance means nothing: one on the scale of Phi.
    np.testing.assert_allclose(slope[3:, 0], cdf + v * density, rtol=tolerance, atol=tolerance)
    assert np.isnan(y[0, 0]) and np.isnan(slope[0, 0]) and y[1, 0] == np.inf
    assert np.isnan(slope[1, 0]) and np.isnan(slope[2, 0])


def test_gelu_with_slope_gives_gelu_and_its_derivative():
    """The exact GELU's forward keeps dy/dx = Phi(x) + x phi(x): against central differences of
    gelu in float64, and float32 (chunk by chunk, over more than one chunk) against float64."""
    x = np.concatenate([np.linspace(-9, 9, 1001), RNG.standard_normal(F._CHUNK + 77) * 3])
    y, slope = F.gelu_with_slope(x)
    np.testing.assert_array_equal(y, F.gelu(x))
    h = 1e-6
    numerical = (F.gelu(x + h) - F.gelu(x - h)) / (2 * h)
    np.testing.assert_allclose(slope, numerical, rtol=1e-7, atol=1e-9)
    y32, slope32 = F.gelu_with_slope(x.astype(np.float32).reshape(-1, 1))
    assert y32.dtype == slope32.dtype == np.float32 and y32.shape == slope32.shape == (x.size, 1)
    x64 = x.astype(np.float32).astype(np.float64)  # the same inputs, exactly
    y64, slope64 = F.gelu_with_slope(x64)
    np.testing.assert_allclose(y32[:, 0], y64, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(slope32[:, 0], slope64, rtol=1e-6, atol=1e-7)


def test_tanh_gelu_with_slope_gives_tanh_gelu_and_its_derivative():
    """tanh-GELU's forward keeps dy/dx, rewritten as q + 2 y (1 - q) g: in float64 against the
    textbook derivative (1 + tanh u) / 2 + x / 2 (1 - tanh^2 u) du/dx value by value, and
    against central differences; float32 (over more than one chunk) against float64; nan stays
    nan, and at +-inf as the textbook formula (and PyTorch) give: y = inf, nan; dy/dx nan."""
    x = np.concatenate([np.linspace(-12, 12, 1001), RNG.standard_normal(F._CHUNK + 77) * 3])
    y, slope = F.tanh_gelu_with_slope(x)
    assert y.shape == slope.shape == x.shape and y.dtype == slope.dtype == np.float64
    # 1 + tanh u cancels for negative x (both ways of writing it): agreement to ~1e-16 absolute.
    np.testing.assert_allclose(y, F.gelu(x, "tanh"), rtol=1e-15, atol=1e-15)
    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
    textbook = (1 + np.tanh(u)) / 2 + x / 2 * (1 - np.tanh(u) ** 2) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x ** 2)
    # dy/dx is a sum of terms up to ~1.1 that cancel near its zero (x ~ -0.75) and for x < -2:
    # each formula's ~10 roundings of such terms bound the difference, ~2.5e-15 absolute.
    np.testing.assert_allclose(slope, textbook, rtol=1e-14, atol=3e-15)
    h = 1e-6
    numerical = (F.gelu(x + h, "tanh") - F.gelu(x - h, "tanh")) / (2 * h)
    np.testing.assert_allclose(slope, numerical, rtol=1e-7, atol=1e-9)
    y32, slope32 = F.tanh_gelu_with_slope(x.astype(np.float32).reshape(-1, 1))
    assert y32.dtype == slope32.dtype == np.float32 and y32.shape == slope32.shape == (x.size, 1)
    y64, slope64 = F.tanh_gelu_with_slope(x.astype(np.float32).astype(np.float64))  # the same inputs
    # float32's 1 + tanh u cancels for negative x (an error of ~6e-8 in q, times |x| in y, and
    # times |x| du/dx in dy/dx): measured at most 1.07 and 0.88 of these bounds, PyTorch's own
    # float32 tanh-GELU 0.99 and 0.74.
    size = np.abs(x.astype(np.float32).astype(np.float64))
    assert np.all(np.abs(y32[:, 0] - y64) <= 2 * 6e-8 * (np.abs(y64) + size))
    assert np.all(np.abs(slope32[:, 0] - slope64) <= 2 * 6e-8 * (np.abs(slope64) + 1 + size + size ** 3 / 4))
    with np.errstate(invalid="ignore", over="ignore"):
        special_y, special_slope = F.tanh_gelu_with_slope(np.array([np.nan, np.inf, -np.inf]))
    assert np.isnan(special_y[0]) and special_y[1] == np.inf and np.isnan(special_y[2])
    assert np.isnan(special_slope).all()


def test_float32_gelu_matches_float64_gelu_to_float32_precision():
    x = (RNG.standard_normal(100_000) * 3).astype(np.float32)
    np.testing.assert_allclose(F.gelu(x), F.gelu(x.astype(np.float64)), rtol=1e-6, atol=1e-9)


def test_erf_special_values_and_shapes():
    out = F.erf(np.array([np.inf, -np.inf, np.nan, 0.0]))
    assert out[0] == 1.0 and out[1] == -1.0 and np.isnan(out[2]) and out[3] == 0.0
    cdf = F.normal_cdf(np.array([np.inf, -np.inf, np.nan]))
    assert cdf[0] == 1.0 and cdf[1] == 0.0 and np.isnan(cdf[2])
    assert F.erf(np.zeros((2, 0))).shape == (2, 0)
    assert F.erf(np.float32(0.5)).dtype == np.float32
    assert F.normal_cdf(0.3).shape == ()


# --- cross-entropy on sequences, ignore_index ---------------------------------------------------------


def test_cross_entropy_2d_and_1d_with_ignore_index_match_torch(torch):
    x = RNG.standard_normal((6, 4))
    t = np.array([0, -100, 3, 1, -100, 2])
    for smoothing in (0.0, 0.3):
        ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), label_smoothing=smoothing)
        np.testing.assert_allclose(F.cross_entropy(x, t, label_smoothing=smoothing), ref.item(), rtol=1e-9)
    x1 = RNG.standard_normal(4)
    np.testing.assert_allclose(F.cross_entropy(x1, np.array(2)),
                               torch.nn.functional.cross_entropy(torch.tensor(x1), torch.tensor(2)).item(), rtol=1e-9)


def test_ignored_positions_change_nothing():
    x = RNG.standard_normal((2, 4, 3))
    t = np.array([[0, 1, -100, 2], [-100, -100, 1, 0]])
    kept = t != -100
    assert F.cross_entropy(x, t) == pytest.approx(F.cross_entropy(x[kept], t[kept]), rel=1e-12)


# --- clip_grad_norm -----------------------------------------------------------------------------------


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
