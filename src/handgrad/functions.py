"""Pure, stateless maths: activations, stable softmax, losses, one-hot.

Everything here takes and returns NumPy arrays and keeps no state; the layers in
:mod:`handgrad.layers` are built on these functions. Conventions:

* The class axis is the last one: scores of shape ``(N, C)`` are N samples of C classes,
  ``(N, T, C)`` are N sequences of T positions, and a 1-D array of shape ``(C,)`` is one sample.
* Targets ``t`` come in three kinds, which give the same loss where they mean the same thing:
  integer class indices of shape ``(N,)`` (a scalar for one sample), one-hot rows of shape
  ``(N, C)``, or probability rows of shape ``(N, C)``.
* Integer inputs are computed in float64; float inputs keep their dtype.

This module imports only NumPy.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "softmax",
    "log_softmax",
    "sigmoid",
    "relu",
    "tanh",
    "one_hot",
    "erf",
    "normal_cdf",
    "gelu",
    "gelu_with_slope",
    "tanh_gelu_with_slope",
    "column_sums",
    "row_sums",
    "row_max",
    "cross_entropy_error",
    "cross_entropy",
    "softmax_cross_entropy",
    "CROSS_ENTROPY_DELTA",
]

#: The small constant the tutorial adds inside ``log`` so that ``log(0)`` never happens.
CROSS_ENTROPY_DELTA = 1e-7


def as_float_array(x, name: str = "input") -> np.ndarray:
    """Return ``x`` as a floating-point array: floats keep their dtype, integers and bools
    become float64 (so ``[[1, 2]]`` is not silently truncated anywhere downstream)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x
    if x.dtype.kind in "iub":
        return x.astype(np.float64)
    raise TypeError(f"{name}: expected a numeric array, got dtype {x.dtype}")


def softmax(x, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` (the class axis, last by default), computed per row.

    ``softmax(x)_k = exp(x_k - m) / sum_j exp(x_j - m)`` with ``m = max_j x_j`` of the same row.
    Subtracting the row maximum changes nothing mathematically (it cancels in the ratio) but
    keeps every exponent <= 0, so ``[1000, 1010]`` or ``-1000`` neither overflow nor warn.

    Shapes: any; the result has the shape of ``x``, and each slice along ``axis`` sums to 1.

    Example:
        >>> import numpy as np
        >>> from handgrad import functions as F
        >>> F.softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]])).round(3)
        array([[0.09 , 0.245, 0.665],
               [0.333, 0.333, 0.333]])
    """
    x = as_float_array(x, "softmax")
    shifted = x - np.max(x, axis=axis, keepdims=True)
    exp_shifted = np.exp(shifted)
    return exp_shifted / np.sum(exp_shifted, axis=axis, keepdims=True)


def log_softmax(x, axis: int = -1) -> np.ndarray:
    """Logarithm of :func:`softmax`, by log-sum-exp: ``x_k - m - log(sum_j exp(x_j - m))``.

    Exact where ``log(softmax(x))`` underflows to ``-inf`` (a probability below ~1e-308 still has
    a finite log). Shapes: any; the result has the shape of ``x``.
    """
    x = as_float_array(x, "log_softmax")
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def sigmoid(x) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-x))``, without overflow for any input.

    For ``x >= 0`` it evaluates ``1 / (1 + exp(-x))`` and for ``x < 0`` the equal
    ``exp(x) / (1 + exp(x))``, so ``exp`` only ever sees ``-|x|`` and ``+-1000`` give 1 and 0
    with no warning. Shapes: any; the result has the shape of ``x``.
    """
    x = as_float_array(x, "sigmoid")
    exp_minus_abs = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + exp_minus_abs), exp_minus_abs / (1.0 + exp_minus_abs)).astype(
        x.dtype, copy=False
    )


def relu(x) -> np.ndarray:
    """Rectified linear unit ``max(x, 0)``, element-wise. Shapes: any."""
    x = as_float_array(x, "relu")
    return np.maximum(x, 0)


def tanh(x) -> np.ndarray:
    """Hyperbolic tangent, element-wise (NumPy's, which never overflows). Shapes: any."""
    return np.tanh(as_float_array(x, "tanh"))


# --- sums along one axis, by BLAS ----------------------------------------------------------------
# A layer's gradient of a bias (a column sum over the batch's rows) and a row's mean or softmax
# denominator (a sum along the last axis) are matrix-vector products with a vector of ones.
# BLAS's gemv reads the array once with vector instructions; NumPy's reduce over a short axis
# loops row by row. Measured for a training step's shapes (2-core Intel Xeon, float32): 512 x 64,
# 2.5 us against 12.9 us (axis 0) and 17 us (axis 1); 768 x 512, 27-29 us against 53 and 87 us.
# The order of the additions differs from np.sum's (last bits only).


def _ones(n: int, dtype) -> np.ndarray:
    """A read-only vector of n ones, kept for the next call (a training run uses a few lengths)."""
    ones = _ONES.get((n, dtype))
    if ones is None:
        ones = np.ones(n, dtype)
        ones.flags.writeable = False
        if len(_ONES) >= 256:  # many lengths (generation, evaluation): start over, never grow without end
            _ONES.clear()
        _ONES[(n, dtype)] = ones  # a race between threads writes the same array twice: harmless
    return ones


_ONES: dict = {}


def _check_floats(x, name: str, min_ndim: int) -> None:
    """The reductions below take float arrays only (BLAS and their halving keep the dtype): a
    clear error, not NumPy's, for anything else. Attribute checks: nothing on the hot path."""
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.ndim < min_ndim:
        what = f"{type(x).__name__}" if not isinstance(x, np.ndarray) else f"dtype {x.dtype}, shape {x.shape}"
        raise TypeError(f"{name}: expected a float array with at least {min_ndim} axes, got {what}")


def column_sums(rows: np.ndarray) -> np.ndarray:
    """``rows.sum(axis=0)`` of a 2-D float array ``(M, D)`` as ``ones(M) @ rows``: ``(D,)``."""
    _check_floats(rows, "column_sums", 1)
    if rows.ndim != 2:
        raise ValueError(f"column_sums: expected a 2-D array (M, D), got shape {rows.shape}")
    return _ones(rows.shape[0], rows.dtype) @ rows


def row_sums(rows: np.ndarray) -> np.ndarray:
    """``rows.sum(axis=-1)`` of a float array ``(..., D)`` as ``rows @ ones(D)``: ``(...)``."""
    _check_floats(rows, "row_sums", 1)
    flat = rows.reshape(-1, rows.shape[-1])  # one gemv, not one per leading index
    return (flat @ _ones(rows.shape[-1], rows.dtype)).reshape(rows.shape[:-1])


def row_max(x: np.ndarray) -> np.ndarray:
    """``x.max(axis=-1)`` of a float array ``(..., T)``, T >= 1, NaN propagating as in max.

    NumPy's reduce handles each row in an inner loop of its own, about 100 ns a row, which
    dominates for short rows (attention's scores, a small vocabulary's logits). Up to 64
    columns: halve the columns (the larger of each pair, element-wise) down to at most 16, then
    take the maximum over the rows of the transposed copy, which NumPy runs element-wise along
    whole rows. Measured (2-core Intel Xeon, float32): (32, 4, 16, 16) 23 us against np.max's
    217; (12, 4, 64, 64) 147 against 320; longer rows keep np.max (256 columns: 1.1 ms against
    1.6 ms halving)."""
    _check_floats(x, "row_max", 1)
    width = x.shape[-1]
    if width == 0:
        raise ValueError(f"row_max: rows of no values have no maximum, got shape {x.shape}")
    if width > 64:
        return x.max(axis=-1)
    rows = x.reshape(-1, width)
    while width > 16:
        half = width // 2
        kept = width - half  # the middle column stays where it is when width is odd
        halved = np.empty((rows.shape[0], kept), dtype=x.dtype)
        np.maximum(rows[:, :half], rows[:, kept:], out=halved[:, :half])
        if kept > half:
            halved[:, half] = rows[:, half]
        rows, width = halved, kept
    return np.ascontiguousarray(rows.T).max(axis=0).reshape(x.shape[:-1])


# --- the error function and GELU ---------------------------------------------------------------
# NumPy has no erf. W. J. Cody's rational approximations ("Rational Chebyshev approximations for
# the error function", Math. Comp. 23, 1969; his CALERF routine) are good to about 1e-16
# relative in float64 on three ranges of |z|: erf itself below 0.46875, erfc above it (so the
# tail of the normal distribution keeps its relative precision where 1 + erf(z) would cancel).
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
          1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_ERFC_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
           8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
           2.15311535474403846e-8)
_ERFC_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
           3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
_ERFC_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
           6.58749161529837803e-4, 1.63153871373020978e-2)
_ERFC_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
           2.33520497626869185e-3)
_ERF_SMALL = 0.46875
_RSQRT_PI = 0.56418958354775628695


def _rational(u, num, den, lead):
    """Cody's ``(num[-1] u^(n) + num[0] u^(n-1) + ...) / (u^(n) + den[0] u^(n-1) + ...)`` by Horner,
    in place (two passes per coefficient, no temporaries): ``lead`` is num's leading index."""
    top = u * num[lead]
    bottom = u.copy()
    for a, b in zip(num[:lead - 1], den[:lead - 1]):
        top += a
        top *= u
        bottom += b
        bottom *= u
    top += num[lead - 1]
    bottom += den[lead - 1]
    top /= bottom
    return top


def _erf_small(z):
    """erf(z) for |z| <= 0.46875: ``z * R(z^2)``."""
    return z * _rational(z * z, _ERF_A, _ERF_B, 4)


def _erfc_positive(w):
    """erfc(w) for w > 0.46875 (w finite, 1-D): ``exp(-w^2) R(w)`` up to 4, beyond it
    ``exp(-w^2) / w (1 / sqrt(pi) - R(1 / w^2) / w^2)``. ``exp(-w^2)`` is taken as
    ``exp(-s^2) exp(-(w - s)(w + s))`` with s = w truncated to 1/16: s^2 is exact, so the
    rounding of w^2 (which exp would amplify by w^2) never happens."""
    far = np.flatnonzero(w > 4.0)
    if far.size:
        out = np.empty_like(w)
        mid = np.flatnonzero(w <= 4.0)
        out[mid] = _rational(w.take(mid), _ERFC_C, _ERFC_D, 8)
        v = w.take(far)
        inv_sq = 1.0 / (v * v)
        tail = _rational(inv_sq, _ERFC_P, _ERFC_Q, 5)
        tail *= inv_sq
        out[far] = (_RSQRT_PI - tail) / v
    else:
        out = _rational(w, _ERFC_C, _ERFC_D, 8)
    s = np.trunc(w * 16.0)
    s /= 16.0
    out *= np.exp(-s * s)
    s -= w  # s - w, and (s - w)(s + w) = (s - w)(s - w + 2w) is the rest of -w^2
    rest = s + 2 * w
    rest *= s
    out *= np.exp(rest, out=rest)
    return out


# Selecting the elements of a region: np.flatnonzero + take/put, not a boolean mask. With signs
# and magnitudes mixed at random (GELU's input), x[mask] and np.where mispredict a branch per
# element: 3.4 ms and 1.4 ms for 393k elements, against 0.14 + 0.07 ms (take) and 0.4 ms (put).


# Large arrays go through the approximations in chunks: ~20 passes over a chunk of 65,536 values
# (256 KiB in float32) stay in the core's cache, where the same passes over a GPT's 393,216 GELU
# inputs (1.5 MiB) go to memory each time. Measured on nanoGPT's GPT step (2-core Intel Xeon):
# one thread 72 -> 58 ms; with the batch over two threads 32,768 was slower (52 ms: more NumPy
# calls, each taking the GIL) and 65,536 as fast as no chunks (48 ms). Each value's result is the
# same either way (element-wise arithmetic).
_CHUNK = 65_536


def _by_chunks(compute, x: np.ndarray) -> np.ndarray:
    """``compute(flat_chunk, out_chunk)`` over ``x`` flattened, chunk by chunk; x's shape."""
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    for start in range(0, flat.size, _CHUNK):
        compute(flat[start:start + _CHUNK], out[start:start + _CHUNK])
    return out.reshape(x.shape)


def _value_and_slope_by_chunks(compute, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``compute(x_chunk, y_chunk, slope_chunk, scratch, scratch2)`` over ``x`` flattened, chunk
    by chunk, with two scratch arrays of the chunk's size; (y, slope) in x's shape."""
    flat = x.reshape(-1)
    y, slope = np.empty_like(flat), np.empty_like(flat)
    size = min(flat.size, _CHUNK)
    scratch, scratch2 = np.empty(size, x.dtype), np.empty(size, x.dtype)
    for start in range(0, flat.size, _CHUNK):
        chunk = slice(start, start + _CHUNK)
        n = min(_CHUNK, flat.size - start)
        compute(flat[chunk], y[chunk], slope[chunk], scratch[:n], scratch2[:n])
    return y.reshape(x.shape), slope.reshape(x.shape)


def erf(x) -> np.ndarray:
    """The error function ``erf(x) = 2 / sqrt(pi) int_0^x exp(-t^2) dt``, element-wise, by
    W. J. Cody's rational approximations (about 1e-16 relative error in float64; float32 input
    is computed in float32). Shapes: any; the result has x's shape."""
    return _by_chunks(_erf_into, as_float_array(x, "erf"))


def _erf_into(flat: np.ndarray, out: np.ndarray) -> None:
    w = np.minimum(np.abs(flat), 28.0, dtype=flat.dtype)  # erfc(28) underflows to 0: erf is +-1 beyond
    small = np.flatnonzero(w <= _ERF_SMALL)
    big = np.flatnonzero(w > _ERF_SMALL)
    out[small] = _erf_small(flat.take(small))
    one_minus = 1.0 - _erfc_positive(w.take(big))
    out[big] = np.copysign(one_minus, flat.take(big), out=one_minus)
    out[np.isnan(flat)] = np.nan  # nan is in neither region


def normal_cdf(x) -> np.ndarray:
    """The standard normal distribution function ``Phi(x) = (1 + erf(x / sqrt 2)) / 2``,
    element-wise, accurate to about 1e-16 relative in float64 also in the far left tail (as
    ``erfc(-x / sqrt 2) / 2``, where ``1 + erf`` would cancel). float32 input takes a shorter
    formula made for float32 (within 8 ulp of the exact value for every x, the tails included;
    see ``_normal_cdf_float32_into``). Shapes: any."""
    x = as_float_array(x, "normal_cdf")
    return _by_chunks(_normal_cdf_float32_into if x.dtype == np.float32 else _normal_cdf_into, x)


def _normal_cdf_into(flat: np.ndarray, out: np.ndarray) -> None:
    z = np.multiply(flat, np.sqrt(0.5), dtype=flat.dtype)
    # Beyond |z| = 28, erfc(|z|) underflows to 0 in float64; clipping there keeps +-inf
    # from becoming inf - inf = nan inside the approximation.
    w = np.minimum(np.abs(z), 28.0, dtype=flat.dtype)
    small = np.flatnonzero(w <= _ERF_SMALL)
    big = np.flatnonzero(w > _ERF_SMALL)
    if small.size:
        half_erf = _erf_small(z.take(small))
        half_erf *= 0.5
        half_erf += 0.5
        out[small] = half_erf
    if big.size:
        # Phi = h on the left (z < 0) and 1 - h on the right, h = erfc(|z|) / 2, as
        # h + right * (1 - 2h): branch-free, and exactly h on the left (no 0.5 - (0.5 - h)).
        h = _erfc_positive(w.take(big))
        h *= 0.5
        right = (z.take(big) > 0).astype(flat.dtype)
        right *= 1.0 - 2.0 * h
        h += right
        out[big] = h
    out[np.isnan(z)] = np.nan  # nan is in neither region


_RSQRT_2PI = 0.3989422804014327  # 1 / sqrt(2 pi)


# Phi in float32 (a float32 GPT's exact GELU): Cody's three ranges aim at float64's 1e-16 and
# cost ~60 passes with gathers and scatters. One formula for every x does in ~35 passes: with
# a = |x| and t = 1 / (1 + c a), which maps a in [0, inf) onto (0, 1],
#     Phi(-a) = t exp(-a^2 / 2) P(t),
# P a degree-8 polynomial fitted to the float64 Phi (relative error 3.2e-8, below float32's
# 6e-8 half-ulp) by benchmarks/fit_normal_cdf.py, which prints these coefficients and the
# float32 errors (results/normal_cdf_float32.json). P is smooth up to t = 0 because the tail is
# Phi(-a) ~ exp(-a^2 / 2) / (a sqrt(2 pi)): P(0) = c / sqrt(2 pi).
_PHI32_C = 0.35
_PHI32_P = tuple(np.float32(v) for v in (
    0.1396214012437077, 0.13986192626204066, 0.11983243450698436, 0.10550979720808945,
    -0.023114244261963443, 0.15918078386136067, -0.2557202176951981, 0.14397465230402026,
    -0.02914654937854552))
_PHI32_A_MAX = 16.0  # exp(-128) is 0 in float32; clipping also keeps inf from making inf - inf
_ROUND_TO_64THS = np.float32(2.0 ** 17)  # a + 2^17 keeps no bit of a below 2^-6 (a <= 16)


def _normal_cdf_float32_into(flat: np.ndarray, out: np.ndarray, density: np.ndarray | None = None) -> None:
    a = np.minimum(np.abs(flat), _PHI32_A_MAX, dtype=np.float32)
    t = a * np.float32(_PHI32_C)
    t += 1
    np.divide(1, t, out=t)
    h = t * _PHI32_P[-1]  # Horner: P(t)
    for coefficient in _PHI32_P[-2:0:-1]:
        h += coefficient
        h *= t
    h += _PHI32_P[0]
    h *= t
    # exp(-a^2 / 2) without rounding a^2, which exp would turn into a relative error of
    # a^2 / 2 * 6e-8 (60 ulp at a = 10): s = a rounded to 1/64 has s^2 exact, a - s is exact, and
    # -a^2 / 2 = -s^2 / 2 - (a - s)(a + s) / 2, the second part small, so rounding it costs little.
    s = a + _ROUND_TO_64THS
    s -= _ROUND_TO_64THS
    a -= s  # a - s
    a_plus_s = s + s
    a_plus_s += a
    a *= a_plus_s
    a *= -0.5
    s *= s
    s *= -0.5
    gauss = np.exp(a, out=a)
    gauss *= np.exp(s, out=s)  # exp(-x^2 / 2)
    h *= gauss  # h = Phi(-|x|)
    if density is not None:
        np.multiply(gauss, np.float32(_RSQRT_2PI), out=density)
    # Phi = h left of 0 and 1 - h right of it, as h + right (1 - 2h): branch-free (a mask or
    # np.where costs a mispredicted branch per element), exactly h on the left, nan for nan.
    right = (flat > 0).astype(np.float32)
    np.multiply(h, -2, out=out)
    out += 1
    out *= right
    out += h


def gelu_with_slope(x) -> tuple[np.ndarray, np.ndarray]:
    """The exact GELU and its derivative, ``(x Phi(x), Phi(x) + x phi(x))``: what a layer keeps
    for its backward (``dx = dout * slope``). float32 computes both chunk by chunk while the
    chunk's Phi and phi are still in the cache, and keeps neither. Shapes: any."""
    x = as_float_array(x, "gelu_with_slope")
    if x.dtype != np.float32:
        cdf = normal_cdf(x)
        slope = x * x
        slope *= -0.5
        np.exp(slope, out=slope)
        slope *= _RSQRT_2PI  # phi(x)
        slope *= x
        slope += cdf
        return x * cdf, slope
    return _value_and_slope_by_chunks(_gelu_and_slope_float32_into, x)


def _gelu_and_slope_float32_into(x, y, slope, cdf, density):
    _normal_cdf_float32_into(x, cdf, density)
    np.multiply(x, cdf, out=y)
    np.multiply(x, density, out=slope)
    slope += cdf


def gelu(x, approximate: str = "none") -> np.ndarray:
    """Gaussian error linear unit, PyTorch's two formulas:
    ``"none"``: ``x Phi(x) = x (1 + erf(x / sqrt 2)) / 2``;
    ``"tanh"``: ``x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2``. Shapes: any."""
    x = as_float_array(x, "gelu")
    if approximate == "none":
        return x * normal_cdf(x)
    if approximate == "tanh":
        return tanh_gelu_with_slope(x)[0]  # the GELU layer's own arithmetic (its dy/dx unused here)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


_SQRT_2_OVER_PI = 0.7978845608028654  # sqrt(2 / pi)
_GELU_KAPPA = 0.044715


def tanh_gelu_with_slope(x) -> tuple[np.ndarray, np.ndarray]:
    """tanh-GELU and its derivative, ``(y, dy/dx)``: what a layer keeps for its backward.

    With ``u = sqrt(2 / pi) (x + 0.044715 x^3)``, ``q = (1 + tanh u) / 2`` and ``y = x q``:
    ``dy/dx = q + x (1 - tanh^2 u) / 2 du/dx``, and since ``1 - tanh^2 u = 4 q (1 - q)``,
    ``dy/dx = q + 2 y (1 - q) g`` with ``g = du/dx = sqrt(2 / pi) (1 + 3 * 0.044715 x^2)``.
    Computed chunk by chunk while each chunk's tanh and x^2 are in the cache (14 passes over a
    chunk, against 8 over memory forward and 14 backward with x and tanh u kept); the float64
    result equals the textbook formula to rounding (tests/test_sequence_layers.py). Shapes: any."""
    x = as_float_array(x, "tanh_gelu_with_slope")
    return _value_and_slope_by_chunks(_tanh_gelu_and_slope_into, x)


def _tanh_gelu_and_slope_into(x, y, slope, square, q):
    np.multiply(x, x, out=square)
    np.multiply(square, _SQRT_2_OVER_PI * _GELU_KAPPA, out=q)
    q += _SQRT_2_OVER_PI
    q *= x  # u
    np.tanh(q, out=q)
    q *= 0.5
    q += 0.5  # q = (1 + tanh u) / 2
    np.multiply(x, q, out=y)  # y = x q
    square *= 6.0 * _SQRT_2_OVER_PI * _GELU_KAPPA
    square += 2.0 * _SQRT_2_OVER_PI  # 2 g
    np.subtract(1.0, q, out=slope)
    slope *= y
    slope *= square
    slope += q  # q + 2 y (1 - q) g


def one_hot(labels, num_classes: int, dtype=np.float64) -> np.ndarray:
    """One-hot rows for integer class labels.

    ``labels`` of shape ``(N,)`` (or a scalar) with values in ``[0, num_classes)`` give an array
    of shape ``(N, num_classes)`` (or ``(num_classes,)``) with a single 1 per row.

    Example:
        >>> import numpy as np
        >>> from handgrad import functions as F
        >>> F.one_hot(np.array([0, 2]), 3)
        array([[1., 0., 0.],
               [0., 0., 1.]])
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be a positive integer, got {num_classes!r}")
    labels = _check_labels(labels, int(num_classes), np.shape(labels), "one_hot")
    encoded = np.zeros(labels.shape + (int(num_classes),), dtype=dtype)
    np.put_along_axis(encoded, labels[..., None], 1, axis=-1)
    return encoded


# --- targets ------------------------------------------------------------------------------------


def _check_labels(labels, num_classes: int, batch_shape: tuple, who: str, ignore_index: int | None = None) -> np.ndarray:
    """Validate integer class indices: integer dtype, one per position, each in [0, C) or equal
    to ``ignore_index`` (when given: positions that count in no loss)."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(
            f"{who}: class labels must be integers, got dtype {labels.dtype}"
            + (" (use t.astype(int) if they are whole numbers)" if labels.dtype.kind == "f" else "")
        )
    if labels.shape != batch_shape:
        raise ValueError(
            f"{who}: expected {_describe_batch(batch_shape)} label(s) of shape {batch_shape}, "
            f"got labels of shape {labels.shape}"
        )
    if labels.size:
        checked = labels if ignore_index is None else labels[labels != ignore_index]
        if checked.size and (checked.min() < 0 or checked.max() >= num_classes):
            ignoring = "" if ignore_index is None else f" (or equal ignore_index={ignore_index})"
            raise ValueError(
                f"{who}: labels must lie in [0, {num_classes}) for {num_classes} classes, "
                f"got values from {checked.min()} to {checked.max()}{ignoring}"
            )
    return labels


def _describe_batch(batch_shape: tuple) -> str:
    return "one" if batch_shape == () else str(int(np.prod(batch_shape)))


def parse_targets(t, scores_shape: tuple, who: str, ignore_index: int | None = None):
    """Decide which of the three target kinds ``t`` is, and validate it against the scores.

    Returns ``("index", labels)`` with integer labels of shape ``scores_shape[:-1]`` (one per
    position: ``(N,)`` for ``(N, C)`` scores, ``(N, T)`` for ``(N, T, C)``, ``()`` for ``(C,)``),
    or ``("distribution", rows)`` with float rows of shape ``scores_shape`` (one-hot or soft).
    The rule: a ``t`` with the scores' full shape is a distribution; otherwise it must be one
    integer label per position, in ``[0, C)`` or equal to ``ignore_index`` (if given; it applies
    to labels only, as in PyTorch). ``who`` names the caller in error messages.
    """
    t = np.asarray(t)
    if t.shape == tuple(scores_shape) and scores_shape != ():
        if t.dtype.kind not in "fiub":
            raise TypeError(f"{who}: target rows must be numeric, got dtype {t.dtype}")
        return "distribution", t
    batch_shape = tuple(scores_shape[:-1])
    if t.ndim == len(scores_shape):
        raise ValueError(
            f"{who}: target rows of shape {t.shape} do not match scores of shape "
            f"{tuple(scores_shape)} (give one-hot or probability rows of the scores' shape, "
            f"or integer labels of shape {batch_shape})"
        )
    return "index", _check_labels(t, scores_shape[-1], batch_shape, who, ignore_index)


def check_scores(x, who: str) -> np.ndarray:
    """Scores (logits or probabilities) must be ``(N, C)``, ``(N, T, C)`` (a sequence: C classes
    at each of T positions) or ``(C,)``, every size >= 1. The class axis is the last one."""
    x = as_float_array(x, who)
    if x.ndim not in (1, 2, 3) or 0 in x.shape:
        raise ValueError(
            f"{who}: expected scores of shape (N, C), (N, T, C) or (C,) with N, T, C >= 1, got shape {x.shape}"
        )
    return x


def check_ignore_index(ignore_index, who: str) -> int:
    """``ignore_index`` as a Python int (PyTorch's default is -100); bools and floats refused."""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{who}: ignore_index must be an integer, got {ignore_index!r:.40}")
    return int(ignore_index)


# --- losses -------------------------------------------------------------------------------------


def cross_entropy_error(y, t) -> float:
    """The tutorial's cross-entropy on *probabilities*: ``-sum(t * log(y + delta)) / N``.

    ``y`` has shape ``(N, C)`` (rows of probabilities, e.g. a softmax output) or ``(C,)`` for one
    sample, where N = 1. ``t`` is one-hot or probability rows of ``y``'s shape, or integer labels
    of shape ``(N,)`` (a scalar for one sample). Returns the mean over the batch as a float.

    Kept for readers of the tutorial, with its bias documented: ``delta = 1e-7`` inside the log
    avoids ``log(0) = -inf`` but changes the value. A correct class with probability 0 costs at
    most ``-log(1e-7) = 16.118``, however wrong the network is, and a correct class with
    probability 1 gives ``-log(1 + 1e-7) ~ -1e-7``: a slightly *negative* loss. Train with
    :func:`cross_entropy` (on logits, no delta) instead.
    """
    y = check_scores(y, "cross_entropy_error")
    kind, target = parse_targets(t, y.shape, "cross_entropy_error")
    y2 = y.reshape(-1, y.shape[-1])
    batch_size = y2.shape[0]  # from the scores, never from the labels' length
    if kind == "index":
        picked = y2[np.arange(batch_size), target.reshape(-1)]
        return float(-np.sum(np.log(picked + CROSS_ENTROPY_DELTA)) / batch_size)
    return float(-np.sum(target.reshape(y2.shape) * np.log(y2 + CROSS_ENTROPY_DELTA)) / batch_size)


def target_distribution(kind: str, target: np.ndarray, num_classes: int, label_smoothing: float, dtype):
    """Target rows as probabilities, smoothed the way PyTorch does: ``(1 - eps) t + eps / C``."""
    if kind == "index":
        rows = one_hot(target, num_classes, dtype=dtype)
    else:
        rows = target.astype(dtype, copy=False)
    if label_smoothing:
        rows = rows * (1.0 - label_smoothing) + label_smoothing / num_classes
    return rows


def cross_entropy_from_log_probs(log_probs, kind: str, target, label_smoothing: float = 0.0):
    """Per-sample ``-sum_k q_k log p_k`` from log-probabilities and parsed targets
    (see :func:`parse_targets`); shape ``log_probs.shape[:-1]``."""
    if kind == "index" and not label_smoothing:
        # Pick the log-probability of each label: no one-hot matrix needed.
        return -np.take_along_axis(log_probs, target[..., None], axis=-1)[..., 0]
    q = target_distribution(kind, target, log_probs.shape[-1], label_smoothing, log_probs.dtype)
    return -np.sum(q * log_probs, axis=-1)


def softmax_cross_entropy(logits, kind: str, target, label_smoothing: float = 0.0,
                          ignore_index: int | None = None, want_probs: bool = False):
    """Per-position cross-entropy of logits against parsed targets (see :func:`parse_targets`),
    the core shared by :func:`cross_entropy` and ``SoftmaxWithLoss``.

    With ``s = x - max(x)`` and ``Z = sum_k exp(s_k)`` along the class axis, ``log p_k = s_k - log Z``:
    a label t costs ``-log p_t = log Z - s_t``; with smoothing eps the target is
    ``(1 - eps) one_hot(t) + eps / C`` and the cost ``(1 - eps)(log Z - s_t) + eps (C log Z -
    sum_k s_k) / C``; a target row q costs ``-sum_k q_k log p_k`` (q smoothed the same way).
    Neither form builds a one-hot matrix or a second ``(.., C)`` exponential, which matters for
    a GPT's ``(N, T, 50257)`` scores.

    Returns ``(losses, valid, probs)``: ``losses`` of shape ``logits.shape[:-1]`` with 0 where the
    label equals ``ignore_index``; ``valid``, a boolean mask of the counted positions, or None
    when every position counts; ``probs = softmax(logits)`` if ``want_probs`` else None.
    """
    num_classes = logits.shape[-1]
    shifted = logits - row_max(logits)[..., None]
    exp_shifted = np.exp(shifted)
    sum_exp = row_sums(exp_shifted)[..., None]
    log_z = np.log(sum_exp)
    valid = None
    if kind == "index":
        if ignore_index is not None and np.any(target == ignore_index):
            valid = target != ignore_index
            target = np.where(valid, target, 0)  # any class will do: those positions are zeroed
        losses = log_z[..., 0] - np.take_along_axis(shifted, target[..., None], axis=-1)[..., 0]
        if label_smoothing:
            uniform = num_classes * log_z[..., 0] - np.sum(shifted, axis=-1)  # -sum_k log p_k
            losses = (1.0 - label_smoothing) * losses + (label_smoothing / num_classes) * uniform
        if valid is not None:
            losses = np.where(valid, losses, 0).astype(logits.dtype, copy=False)
    else:
        q = target_distribution(kind, target, num_classes, label_smoothing, logits.dtype)
        shifted -= log_z  # now log p
        losses = -np.sum(q * shifted, axis=-1)
    probs = None
    if want_probs:
        exp_shifted /= sum_exp  # in place: softmax without a second exponential
        probs = exp_shifted
    return losses, valid, probs


def reduce_losses(losses: np.ndarray, valid, reduction: str):
    """``"none"``: the per-position losses; ``"sum"``: their sum; ``"mean"``: the sum over the
    counted positions divided by their number (PyTorch's rule; nan when none counts, as 0 / 0
    in PyTorch)."""
    if reduction == "none":
        return losses
    total = float(np.sum(losses))
    if reduction == "sum":
        return total
    count = losses.size if valid is None else int(np.count_nonzero(valid))
    return total / count if count else float("nan")


def cross_entropy(logits, t, reduction: str = "mean", label_smoothing: float = 0.0, ignore_index: int = -100):
    """Cross-entropy of raw scores (logits) against targets, computed stably from log-softmax.

    ``loss_n = -sum_k q_nk * log_softmax(x_n)_k`` where ``q_n`` is the target row: one-hot of the
    label, or the given probability row, smoothed as ``(1 - eps) q + eps / C`` when
    ``label_smoothing = eps > 0``. The same definition and results as
    ``torch.nn.functional.cross_entropy`` (without class weights).

    Shapes: ``logits`` ``(N, C)``, ``(N, T, C)`` (a sequence, batch-first; PyTorch wants it as
    ``(N, C, T)``) or ``(C,)``; ``t`` integer labels ``(N,)``, ``(N, T)`` (a scalar for one
    sample), or rows of the logits' shape.
    ``ignore_index`` (integer labels only): positions whose label equals it count in neither the
    loss nor the mean; their loss is 0 under ``"none"``. If every position is ignored, ``"mean"``
    is nan (0 / 0, as PyTorch) and ``"sum"`` is 0.
    ``reduction``: ``"mean"`` (over the counted positions) or ``"sum"`` return a float;
    ``"none"`` returns the per-position losses, shape ``logits.shape[:-1]``.

    Example:
        Two samples, two classes; the first is right and confident, the second unsure:

        >>> import numpy as np
        >>> from handgrad import functions as F
        >>> logits = np.array([[2.0, 0.0], [0.0, 0.0]])
        >>> F.cross_entropy(logits, np.array([0, 1]), reduction="none").round(4)  # log(1 + e^-2), log 2
        array([0.1269, 0.6931])
        >>> round(F.cross_entropy(logits, np.array([0, 1])), 4)
        0.41
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    ignore_index = check_ignore_index(ignore_index, "cross_entropy")
    logits = check_scores(logits, "cross_entropy")
    kind, target = parse_targets(t, logits.shape, "cross_entropy", ignore_index)
    losses, valid, _ = softmax_cross_entropy(logits, kind, target, label_smoothing, ignore_index)
    return reduce_losses(losses, valid, reduction)
