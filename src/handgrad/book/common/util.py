"""The book's ``common.util``: im2col/col2im (handgrad's), dataset shuffling, curve smoothing."""

import numpy as np

from handgrad.layers import conv as _conv


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """Every ``filter_h x filter_w`` receptive field of the zero-padded ``(N, C, H, W)`` input as
    one row: shape ``(N*OH*OW, C*filter_h*filter_w)``, rows in (n, oh, ow) order, columns in
    (c, fh, fw) order, ``OH = (H + 2 pad - filter_h) // stride + 1``."""
    return _conv.im2col(np.asarray(input_data), filter_h, filter_w, stride, pad)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The adjoint of :func:`im2col`: add each row back onto the pixels it was read from (where
    windows overlap the values add up) and drop the padding; returns ``input_shape``."""
    return _conv.col2im(np.asarray(col), tuple(input_shape), filter_h, filter_w, stride, pad)


def conv_output_size(input_size, filter_size, stride=1, pad=0):
    """Positions a filter takes along one axis, ``(input_size + 2 pad - filter_size) / stride + 1``
    (a float, as the book's: a fractional value means the filter does not tile the input)."""
    return (input_size + 2 * pad - filter_size) / stride + 1


def shuffle_dataset(x, t):
    """``x`` and ``t`` in one random order (the same permutation of their first axis), drawn from
    NumPy's global generator."""
    order = np.random.permutation(len(x))
    return x[order], t[order]


def smooth_curve(x, window=11):
    """A loss curve smoothed by a normalised Kaiser window (beta 2) of ``window`` points, the ends
    mirrored so the result has x's length."""
    x = np.asarray(x, dtype=np.float64)
    half = window // 2
    if len(x) <= half:
        return x.copy()
    padded = np.concatenate([x[half:0:-1], x, x[-2:-half - 2:-1]])
    weights = np.kaiser(window, 2)
    return np.convolve(padded, weights / weights.sum(), mode="valid")
