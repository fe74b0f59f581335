"""MNIST-1D (Greydanus, "Scaling down deep learning", 2020): 1-D signals of 40 points, 10
classes, made locally from ten 12-point templates, with no download.

Each sample takes its class's template and, in this order: pads it with 36-60 zeros, stretches
it to 72 points, scales it by up to +-20 %, rolls it by 0-47 points, fills the padded region
with Gaussian-smoothed noise, adds white noise, shears it (adds a random linear ramp) and
resamples it to 40 points. The 5000 samples are shuffled, standardised to mean 0 and std 1
(over the whole set), and split 4000 / 1000.

The random draws come from a legacy ``numpy.random.RandomState(seed)`` in the reference's order,
so the default seed 42 reproduces the reference generator's dataset (checked against the
``mnist1d`` package: labels and signals identical, bit for bit; see tests/test_data.py).
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_mnist1d", "templates", "DEFAULTS"]

DEFAULTS = dict(num_samples=5000, train_split=0.8, template_len=12, padding=(36, 60), scale_coeff=0.4,
                max_translation=48, corr_noise_scale=0.25, iid_noise_scale=2e-2, shear_scale=0.75,
                final_seq_length=40, seed=42)

# The published 12-point templates of the digits 0..9 (Greydanus 2020).
_TEMPLATES = np.array([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
])


def templates() -> np.ndarray:
    """The ten templates, each standardised, shifted to start at 0, and divided by 6: (10, 12)."""
    x = _TEMPLATES.copy()
    x -= x.mean(1, keepdims=True)
    x /= x.std(1, keepdims=True)
    x -= x[:, :1]
    return x / 6.0


def _resample(signal: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of a signal on [0, 1] at ``length`` evenly spaced points."""
    return np.interp(np.linspace(0, 1, length), np.linspace(0, 1, len(signal)), signal)


def _gaussian_smooth(signal: np.ndarray, sigma: float = 2.0, truncate: float = 4.0) -> np.ndarray:
    """Gaussian filter with mirror ("d c b a | a b c d") boundaries and kernel radius 4 sigma.
    The sum runs centre first, then symmetric pairs from the outermost in: the order
    scipy.ndimage uses, so the result is the same to the last bit."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 / (sigma * sigma) * offsets**2)
    weights = weights / weights.sum()
    padded = np.pad(signal, radius, mode="symmetric")
    n = len(signal)
    out = padded[radius:radius + n] * weights[radius]
    for j in range(radius, 0, -1):
        out = out + (padded[radius - j:radius - j + n] + padded[radius + j:radius + j + n]) * weights[radius - j]
    return out


def _transform(template: np.ndarray, rs: np.random.RandomState, a: dict, eps: float = 1e-8) -> np.ndarray:
    low, high = a["padding"]
    pad = low + int(rs.rand() * (high - low + 1))
    x = np.concatenate([template + eps, np.zeros(pad)])
    x = _resample(x, a["template_len"] + high)
    x = x * (1 + a["scale_coeff"] * (rs.rand() - 0.5))
    shift = rs.choice(a["max_translation"])
    x = np.concatenate([x[-shift:], x[:-shift]]) if shift else x
    signal = x != 0  # the padding is exactly 0 (templates were offset by eps)
    noise = _gaussian_smooth(a["corr_noise_scale"] * rs.randn(len(x)))
    x = signal * x + (1 - signal) * noise
    x = x + a["iid_noise_scale"] * rs.randn(len(x))
    x = x - a["shear_scale"] * (rs.rand() - 0.5) * np.linspace(-0.5, 0.5, len(x))
    return _resample(x, a["final_seq_length"])


def make_mnist1d(**overrides):
    """``(x_train, t_train), (x_test, t_test)``: float64 signals (N, 40) and int64 labels.
    Keyword arguments override :data:`DEFAULTS` (``seed=...``, ``num_samples=...``)."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"make_mnist1d: unknown arguments {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    a = {**DEFAULTS, **overrides}
    rs = np.random.RandomState(a["seed"])
    shapes = templates()
    per_class = a["num_samples"] // len(shapes)
    xs = np.stack([_transform(shapes[label], rs, a) for label in range(len(shapes)) for _ in range(per_class)])
    ys = np.repeat(np.arange(len(shapes)), per_class)
    order = rs.permutation(len(ys))
    xs, ys = xs[order], ys[order]
    xs = (xs - xs.mean()) / xs.std()
    split = int(len(ys) * a["train_split"])
    return (xs[:split], ys[:split].astype(np.int64)), (xs[split:], ys[split:].astype(np.int64))
