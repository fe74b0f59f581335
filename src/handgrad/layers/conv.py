"""Convolution, pooling and flattening for image batches of shape (N, C, H, W).

Convolution is a matrix product after *im2col*: every receptive field of an image becomes one
column of that image's matrix (Caffe's layout; the book's rows are its transpose). The columns
are read through a strided view of the padded input (``sliding_window_view``), never by Python
loops over pixels or samples, and the product ``W_col @ col`` is then one GEMM per image that
lands directly in the (N, FN, OH, OW) layout, with no transpose of the output. Its adjoint,
*col2im*, adds every column back onto the pixels it came from; overlapping windows
(stride < kernel) accumulate, which a loop over the FH x FW kernel offsets does exactly, for any
stride and padding.

Stride-1 convolutions whose kernel rows are long enough (``FW C >= ROW_SHIFT_MIN_INNER``) are
split by kernel rows instead (see :func:`shifted_rows`): FW shifted copies of the input rather
than im2col's FH FW, and ONE GEMM for many images rather than one per image (the batch in parts
of about a MiB of output, which stay in the cache), each kernel
row's output then added in at its row offset. Everything is held channel-major,
(C, N, H, W), so that every copy and every addition runs over long contiguous stretches.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import check_sizes, Layer, WeightedLayer


def output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Positions a kernel takes along one axis: ``(size + 2 pad - kernel) // stride + 1``."""
    return (size + 2 * pad - kernel) // stride + 1


def _pad(x: np.ndarray, pad, value=0.0) -> np.ndarray:
    """x padded with ``value``: ``pad`` rows above and below and ``pad`` columns left and right,
    or ``pad = (rows, columns)``."""
    pad_h, pad_w = (pad, pad) if np.isscalar(pad) else pad
    if pad_h == pad_w == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)), constant_values=value)


def windows(x: np.ndarray, kh: int, kw: int, stride: int, pad) -> np.ndarray:
    """A view (N, C, OH, OW, kh, kw) of every kh x kw window of the zero-padded input (``pad``
    an int, or (rows, columns))."""
    view = sliding_window_view(_pad(x, pad), (kh, kw), axis=(2, 3))
    return view[:, :, ::stride, ::stride]


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad, out: np.ndarray | None = None) -> np.ndarray:
    """One matrix per image whose columns are its receptive fields: shape (N, C * kh * kw, OH * OW),
    rows in W's order (c, i, j), columns in the output's order (oh, ow). ``out``, if given, is an
    array of that shape to write into (and return); it may be a slice of a larger array."""
    n, c = x.shape[:2]
    view = windows(x, kh, kw, stride, pad)  # (N, C, OH, OW, kh, kw)
    oh, ow = view.shape[2:4]
    fields = view.transpose(0, 1, 4, 5, 2, 3)  # (N, C, kh, kw, OH, OW)
    if out is None:
        out = np.empty((n, c * kh * kw, oh * ow), dtype=x.dtype)
    # Only splitting axes (C kh kw -> C, kh, kw and OH OW -> OH, OW): always a view of out, never
    # a copy, whatever out's strides. The copy runs along OW, the longest contiguous axis.
    np.copyto(out.reshape(fields.shape), fields)
    return out


def scatter_windows(dwin: np.ndarray, input_shape: tuple, stride: int, pad: int) -> np.ndarray:
    """The adjoint of :func:`windows`: add each window's gradient (N, C, OH, OW, kh, kw) back
    onto the pixels it was read from, then drop the padding. Overlaps accumulate."""
    n, c, h, w = input_shape
    oh, ow, kh, kw = dwin.shape[2:]
    dx = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dwin.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += dwin[:, :, :, :, i, j]
    return dx[:, :, pad:pad + h, pad:pad + w]


def col2im(col: np.ndarray, input_shape: tuple, kh: int, kw: int, stride: int, pad: int) -> np.ndarray:
    """The adjoint of :func:`im2col`: columns (N, C * kh * kw, OH * OW) back to (N, C, H, W)."""
    n, c, h, w = input_shape
    oh, ow = output_size(h, kh, stride, pad), output_size(w, kw, stride, pad)
    dwin = col.reshape(n, c, kh, kw, oh, ow).transpose(0, 1, 4, 5, 2, 3)
    return scatter_windows(dwin, input_shape, stride, pad)


def _shift_ranges(kernel: int, pad: int, out_size: int, in_size: int):
    """For each kernel offset k along one axis: the output positions [lo, hi) whose window puts
    offset k on a real (unpadded) input position, and those input positions [lo + k - pad,
    hi + k - pad). Output position o sees input o + k - pad through offset k."""
    for k in range(kernel):
        lo, hi = max(0, pad - k), min(out_size, in_size + pad - k)
        yield k, lo, max(lo, hi), lo + k - pad, max(lo, hi) + k - pad


def shifted_rows(x: np.ndarray, kw: int, pad: int, out: np.ndarray) -> np.ndarray:
    """kw copies of the zero-padded input, channel-major, copy j starting at its column j:
    ``out[j, c, n, h, o] = x_pad[n, c, h, o + j]`` for the OW output columns o (x_pad: x with
    ``pad`` zero columns left and right), shape (kw, C, N, H, OW). Read as a (kw C, N H OW)
    matrix, column (n, h, o) holds every input that kernel row i multiplies into output
    (n, h - i + pad, o). ``out`` must hold zeros where o + j falls in the padding: only the other
    entries are written (the same ones for the same shapes, so a kept buffer keeps its zeros)."""
    x_channel_major = x.transpose(1, 0, 2, 3)  # a view
    for j, lo, hi, src_lo, src_hi in _shift_ranges(kw, pad, out.shape[4], x.shape[3]):
        out[j, :, :, :, lo:hi] = x_channel_major[:, :, :, src_lo:src_hi]
    return out


def add_shifted_rows(d_rows: np.ndarray, input_shape: tuple, pad: int, work: np.ndarray | None = None,
                     overwrite_rows: bool = False, channel_major: bool = False) -> np.ndarray:
    """The adjoint of :func:`shifted_rows`: ``dx[n, c, h, w] = sum_j d_rows[j, c, n, h, w + pad - j]``,
    every shifted copy's gradient added back onto the pixel it was copied from. ``work``, if
    given, is a C-contiguous (C, N, H, W) array to sum in (its contents are overwritten).
    ``overwrite_rows``: d_rows is the caller's scratch, and its entries for padding columns may
    be set to zero. ``channel_major``: return the (C, N, H, W) sum itself (``work``, if given)."""
    n, c, h, w = input_shape
    # Summed channel-major (contiguous runs along whole rows), then one transposing copy.
    dx_channel_major = np.empty((c, n, h, w), dtype=d_rows.dtype) if work is None else work
    if overwrite_rows and d_rows.shape[4] == w and d_rows.flags.c_contiguous and dx_channel_major.flags.c_contiguous:
        _add_same_width_shifts(d_rows, dx_channel_major, pad)
    else:
        dx_channel_major.fill(0)
        for j, lo, hi, src_lo, src_hi in _shift_ranges(d_rows.shape[0], pad, d_rows.shape[4], w):
            dx_channel_major[:, :, :, src_lo:src_hi] += d_rows[j, :, :, :, lo:hi]
    if channel_major:
        return dx_channel_major
    # A copy, always (not ascontiguousarray, which returns a size-1 axis move as it is): the
    # caller keeps dx, and ``work`` is overwritten by the next call.
    return dx_channel_major.transpose(1, 0, 2, 3).copy()


def _add_same_width_shifts(d_rows: np.ndarray, dx_channel_major: np.ndarray, pad: int) -> None:
    """add_shifted_rows when the output rows are as wide as the input's (a "same" convolution):
    ``dx[c, n, h, o + j - pad] += d_rows[j, c, n, h, o]`` is then, in the flattened arrays,
    ``dx[k] += d_rows[j][k - (j - pad)]``: ONE contiguous addition per shift instead of one short
    run per row. Where ``o + j - pad`` leaves the row, the flat shift reads the neighbouring row's
    entry for a padding column instead; those entries are set to 0 first (they are the gradients
    of padding, which no pixel receives), so they add nothing."""
    dx = dx_channel_major.reshape(-1)
    size = dx.size
    for j, lo, hi, _, _ in _shift_ranges(d_rows.shape[0], pad, d_rows.shape[4], dx_channel_major.shape[3]):
        d_j = d_rows[j]
        d_j[..., :lo] = 0
        d_j[..., hi:] = 0
        d_flat, shift = d_j.reshape(-1), j - pad
        # dx[k] += d[k - shift] for the k where both exist: `length` entries from `to` and `from_`
        # (none when the shift outruns the arrays, as a kernel wider than the whole map can).
        to, from_, length = max(shift, 0), max(-shift, 0), max(size - abs(shift), 0)
        if j == 0:  # the first shift assigns, and the entries it does not reach start at 0
            dx[:to] = 0
            dx[to:to + length] = d_flat[from_:from_ + length]
            dx[to + length:] = 0
        else:
            dx[to:to + length] += d_flat[from_:from_ + length]


class _ImageLayer(Layer):
    def _image(self, x, channels: int | None = None) -> np.ndarray:
        x = self._input(x)
        if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
            expected = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
            raise ValueError(f"{self.name}: expected input of shape {expected}, got {x.shape}")
        return x


def _check_geometry(name, kh, kw, stride, pad):
    if min(kh, kw, stride) < 1 or pad < 0:
        raise ValueError(f"{name}: kernel and stride must be >= 1 and pad >= 0, got kernel ({kh}, {kw}), "
                         f"stride {stride}, pad {pad}")


def _spatial_output(name, x_shape, kh, kw, stride, pad):
    oh, ow = output_size(x_shape[2], kh, stride, pad), output_size(x_shape[3], kw, stride, pad)
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: a ({kh}, {kw}) kernel with pad {pad} does not fit an input of shape {x_shape}")
    return oh, ow


class Convolution(WeightedLayer, _ImageLayer):
    """2-D convolution (cross-correlation, as in PyTorch's Conv2d) ``y = W * x + b``.

    Shapes:
        W: ``(FN, C, FH, FW)``, b: ``(FN,)``; x: ``(N, C, H, W)``;
        y: ``(N, FN, OH, OW)`` with ``OH = (H + 2 pad - FH) // stride + 1`` (OW likewise).

    With ``col = im2col(x)`` of shape ``(N, C FH FW, OH OW)`` (image n's receptive fields as
    columns), ``W_col = W`` reshaped to ``(FN, C FH FW)`` and ``dout`` read as ``(N, FN, OH OW)``:
    forward ``y_n = W_col col_n + b``; backward ``dW += sum_n dout_n col_n^T``,
    ``db += sum(dout)`` over samples and positions, ``dx = col2im(W_col^T dout_n)``.

    The bias is the weight of a constant input 1: each column gets a last entry 1 and ``W_col``
    a last column ``b``, so that ``y_n = [W_col | b] [col_n; 1]`` and
    ``[dW | db] = sum_n dout_n [col_n; 1]^T``, one GEMM each, with no separate passes over y or
    dout for the bias. The layer computes in its parameters'
    dtype (the input is cast to it); ``forward`` zeroes dW and db, ``backward`` adds into them.

    Stride-1 convolutions with ``FW C >= ROW_SHIFT_MIN_INNER`` compute the same sums grouped by
    kernel row instead (``_forward_row_shifts``): the same outputs and gradients up to rounding,
    with FW copies of the input instead of FH FW and one GEMM per part of the batch (PART_BYTES).
    """

    def __init__(self, W, b, stride: int = 1, pad: int = 0) -> None:
        super().__init__()
        self._init_weight_and_bias(W, b, "(FN, C, FH, FW)", outputs_axis=0)
        _check_geometry("Convolution", self.W.shape[2], self.W.shape[3], stride, pad)
        self.stride, self.pad = int(stride), int(pad)
        self._col = None
        self._x_shape = None
        self._work_arrays: dict[str, np.ndarray] = {}

    def spec(self) -> dict:
        fn, c, fh, fw = self.params["W"].shape
        return {"type": "Convolution", "filters": fn, "channels": c, "kernel": [fh, fw],
                "stride": self.stride, "pad": self.pad}

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        filters, channels = check_sizes(spec, "filters", "channels")
        kernel = spec.get("kernel")
        if not (isinstance(kernel, list) and len(kernel) == 2):
            raise ValueError(f"kernel must be [height, width], got {str(kernel)[:40]}")
        kh, kw = check_sizes({"kernel height": kernel[0], "kernel width": kernel[1]}, "kernel height", "kernel width")
        return {"W": (filters, channels, kh, kw), "b": (filters,)}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "Convolution":
        fh, fw = spec["kernel"]
        return cls(np.zeros((spec["filters"], spec["channels"], fh, fw), dtype), np.zeros(spec["filters"], dtype),
                   stride=spec["stride"], pad=spec["pad"])

    #: Stride-1 convolutions take the row shifts when a kernel row spans at least this many
    #: inputs (FW C, the inner dimension of their GEMM). Below it (the ConvNets' single-channel
    #: first layers: FW C = 3 or 5) the GEMM is too thin, and im2col's FH FW C inner dimension
    #: with one GEMM per image is faster (benchmarks/convnet_speed.py times both networks).
    ROW_SHIFT_MIN_INNER = 16

    def _uses_row_shifts(self) -> bool:
        fn, c, fh, fw = self.params["W"].shape
        return self.stride == 1 and fw * c >= self.ROW_SHIFT_MIN_INNER

    def forward(self, x):
        fn, c, fh, fw = self.params["W"].shape
        W, b = self.params["W"], self.params["b"]
        x = self._image(x, c).astype(W.dtype, copy=False)
        oh, ow = _spatial_output(self.name, x.shape, fh, fw, self.stride, self.pad)
        self._zero_own_grads()
        self._x_shape = x.shape
        if self._uses_row_shifts():
            return self._forward_row_shifts(x, oh, ow)
        fields = c * fh * fw
        col_and_one = self._work_array("col", (x.shape[0], fields + 1, oh * ow))  # [col_n; 1]
        im2col(x, fh, fw, self.stride, self.pad, out=col_and_one[:, :fields])  # (N, C FH FW, OH OW)
        col_and_one[:, fields] = 1.0
        # One GEMM per image, (FN, C FH FW + 1) @ (C FH FW + 1, OH OW): already the contiguous
        # (N, FN, OH, OW) layout that the element-wise layers after it want.
        out = np.matmul(np.concatenate([W.reshape(fn, fields), b[:, None]], axis=1), col_and_one)
        self._col = col_and_one
        return out.reshape(x.shape[0], fn, oh, ow)

    can_skip_input_grad = True  # see backward

    def backward(self, dout, input_grad: bool = True):
        """``dx``, after adding into dW and db; with ``input_grad=False`` only the parameter
        gradients are computed and None is returned (the first layer of a model)."""
        self._require_forward(self._col)
        fn, c, fh, fw = self.params["W"].shape
        n = self._x_shape[0]
        oh, ow = _spatial_output(self.name, self._x_shape, fh, fw, self.stride, self.pad)
        W = self.params["W"]
        dout = self._check_dout(dout, (n, fn, oh, ow)).astype(W.dtype, copy=False)
        if self._uses_row_shifts():
            return self._backward_row_shifts(dout, input_grad)
        dout_cols = dout.reshape(n, fn, oh * ow)
        # [dW | db] = sum_n dout_n [col_n; 1]^T: batched GEMMs on a transposed view (no copy),
        # then the sum over n.
        dW_and_db = np.matmul(dout_cols, self._col.transpose(0, 2, 1)).sum(axis=0)  # (FN, C FH FW + 1)
        self.add_to_grad("W", dW_and_db[:, :-1].reshape(W.shape))
        self.add_to_grad("b", dW_and_db[:, -1])
        if not input_grad:
            return None
        if self.stride == 1 and self.pad <= min(fh, fw) - 1:
            return self._input_grad_as_convolution(dout)
        dcol = np.matmul(W.reshape(fn, -1).T, dout_cols)  # (N, C FH FW, OH OW)
        return col2im(dcol, self._x_shape, fh, fw, self.stride, self.pad)

    def _input_grad_as_convolution(self, dout):
        """With stride 1, ``dx = col2im(W_col^T dout)`` is itself a convolution: of dout,
        zero-padded by ``kernel - 1 - pad`` on each side, with every filter flipped (rotated by
        180 degrees) and the roles of input and output channels swapped. As im2col and one GEMM
        per image it is about twice as fast as scattering the columns back (col2im's 9 or 25
        read-modify-write passes over dx)."""
        fn, c, fh, fw = self.params["W"].shape
        flipped = self.params["W"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, FN, FH, FW)
        n, _, h, w = self._x_shape
        dout_col = im2col(dout, fh, fw, 1, (fh - 1 - self.pad, fw - 1 - self.pad),
                          out=self._work_array("dout_col", (n, fn * fh * fw, h * w)))  # (N, FN FH FW, H W)
        return np.matmul(flipped.reshape(c, -1), dout_col).reshape(self._x_shape)

    # --- stride 1: split by kernel rows, one GEMM per part of the batch --------------------------

    def _row_weights(self) -> np.ndarray:
        """``W_rows[(i, f), (j, c)] = W[f, c, i, j]``, shape (FH FN, FW C): one block of rows per
        kernel row i; the columns match :func:`shifted_rows`' first two axes."""
        fn, c, fh, fw = self.params["W"].shape
        return self.params["W"].transpose(2, 0, 3, 1).reshape(fh * fn, fw * c)

    def _forward_row_shifts(self, x, oh, ow):
        """The convolution split by kernel rows. With ``X_rows = shifted_rows(x)`` read as
        (FW C, N H OW), ``Z = W_rows X_rows`` is ONE GEMM (per part of the batch), and Z[i, f, n, h, o]
        is what input row h adds through kernel row i to output (n, f, h - i + pad, o); so
        ``y[n, f, r, o] = b[f] + sum_i Z[i, f, n, r + i - pad, o]`` for output row r, the terms whose input row
        is real (padding rows add nothing). The copy is FW times the input (im2col's is FH FW
        times), and no GEMM column is spent on a padding row."""
        fn, c, fh, fw = self.params["W"].shape
        n, _, h, _ = x.shape
        # Zeroed once: shifted_rows writes the same entries every step and leaves the padding's zeros.
        rows = shifted_rows(x, fw, self.pad, out=self._work_array("rows", (fw, c, n, h, ow), zeroed=True))
        W_rows = self._row_weights()
        # Summed channel-major (contiguous runs along whole rows), then one transposing copy.
        y_channel_major = self._work_array("y_channel_major", (fn, n, oh, ow))
        y_channel_major[...] = self.params["b"][:, None, None, None]
        # Part by part for a large batch (see PART_BYTES): each part's Z is still in the cache
        # when its rows are added in.
        parts = self._batch_parts(n, fh * fn * h * ow * x.itemsize)
        for start, stop in parts:
            m = stop - start
            Z = np.matmul(W_rows, rows[:, :, start:stop].reshape(fw * c, -1),
                          out=self._part_array("Z", parts, m, (fh * fn, m * h * ow))).reshape(fh, fn, m, h, ow)
            for i, lo, hi, src_lo, src_hi in _shift_ranges(fh, self.pad, oh, h):
                y_channel_major[:, start:stop, lo:hi] += Z[i, :, :, src_lo:src_hi]
        self._col = rows
        # A copy, always: with one sample or one filter the transpose is already contiguous, and
        # ascontiguousarray would hand out the kept array that the next forward overwrites.
        return y_channel_major.transpose(1, 0, 2, 3).copy()

    #: The row-shift path runs over parts of the batch whose Z (or dZ: FH FN x part N H OW
    #: values) is at most this many bytes, so that one part's Z, or its dZ, d_rows and the sum
    #: of its shifted copies, are still in the cache when the next step reads them: each image's
    #: output and dx are its own columns', and dW is the sum of the parts' GEMMs. DeepConvNet's
    #: step (benchmarks/convnet_speed.py, batch over 2 threads): 55.9 ms in one pass; parts of
    #: 2 MiB above 6 MiB, 50.6; parts of 1 MiB, 48.2-49.5 (its second layer's dZ is 7.5 MB).
    PART_BYTES = 2 ** 20

    def _batch_parts(self, n: int, bytes_per_sample: int) -> list[tuple[int, int]]:
        """``[(start, stop), ...]``: the batch in equal parts (to one sample), as many as the batch's
        Z takes PART_BYTES, so each part's Z is about PART_BYTES or less (one sample at least)."""
        parts = max(1, min(n, -(-n * bytes_per_sample // self.PART_BYTES)))
        bounds = [round(k * n / parts) for k in range(parts + 1)]
        return list(zip(bounds[:-1], bounds[1:]))

    def _backward_row_shifts(self, dout, input_grad):
        """The forward's adjoint, step by step: ``dZ[i, f, n, h, o] = dout[n, f, h - i + pad, o]``
        (zero where h - i + pad is no output row), ``dW_rows = dZ X_rows^T`` (one GEMM over the
        batch's columns, no per-image sum), ``db = sum(dout)``, ``dX_rows = W_rows^T dZ`` and
        ``dx = add_shifted_rows(dX_rows)``; for a large batch part by part (each image's dx is
        its own columns', and dW the sum of the parts')."""
        fn, c, fh, fw = self.params["W"].shape
        n, _, h, w = self._x_shape
        oh, ow = dout.shape[2:]
        dout_channel_major = dout.transpose(1, 0, 2, 3)  # a view
        W_rows = self._row_weights()
        dW_rows = None
        dx = np.empty(self._x_shape, dtype=dout.dtype) if input_grad else None
        parts = self._batch_parts(n, fh * fn * h * ow * dout.itemsize)
        for start, stop in parts:
            m = stop - start
            # Kept per part size (at most two): the same entries are written every step, the rest stay 0.
            dZ = self._part_array("dZ", parts, m, (fh, fn, m, h, ow), zeroed=True)
            for i, lo, hi, src_lo, src_hi in _shift_ranges(fh, self.pad, oh, h):
                dZ[i, :, :, src_lo:src_hi] = dout_channel_major[:, start:stop, lo:hi]
            dZ = dZ.reshape(fh * fn, -1)
            rows = self._col[:, :, start:stop].reshape(fw * c, -1)  # a view: (FW C) rows of m H OW values
            part_dW = dZ @ rows.T  # (FH FN, FW C)
            dW_rows = part_dW if dW_rows is None else np.add(dW_rows, part_dW, out=dW_rows)
            if input_grad:
                d_rows = np.matmul(W_rows.T, dZ, out=self._part_array("d_rows", parts, m, (fw * c, m * h * ow)))
                dx_part = add_shifted_rows(d_rows.reshape(fw, c, m, h, ow), (m, c, h, w), self.pad,
                                           work=self._part_array("dx_channel_major", parts, m, (c, m, h, w)),
                                           overwrite_rows=True, channel_major=True)  # d_rows is our scratch
                dx[start:stop] = dx_part.transpose(1, 0, 2, 3)
        self.add_to_grad("W", dW_rows.reshape(fh, fn, fw, c).transpose(1, 3, 0, 2))
        self.add_to_grad("b", dout.sum(axis=(0, 2, 3)))
        return dx

    def _work_array(self, key: str, shape: tuple, zeroed: bool = False) -> np.ndarray:
        """A scratch array in the layer's dtype (uninitialised, or zeros when first made with
        ``zeroed``, for callers that never write some entries), kept from one step to the next
        while it fits: the column matrices reach tens of MB (45 MB in DeepConvNet), and fresh
        memory of that size costs a page fault per page, every step. Only this layer reads them,
        and nothing it returns is one of them. A kept array that no longer fits (another shape
        or dtype, or read-only, as after unpickling from a memory map) is replaced; in evaluation
        mode the new one serves this call only, unless nothing was kept yet."""
        dtype = self.params["W"].dtype
        array = self._work_arrays.get(key)
        if array is None or array.shape != shape or array.dtype != dtype or not array.flags.writeable:
            fresh = (np.zeros if zeroed else np.empty)(shape, dtype=dtype)
            # Evaluation batches (1000 samples in model.accuracy) do not evict the training
            # batch's arrays: each eval between steps would cost two reallocations.
            if self.training or array is None:
                self._work_arrays[key] = fresh
            return fresh
        return array

    def _part_array(self, kind: str, parts: list, size: int, shape: tuple, zeroed: bool = False) -> np.ndarray:
        """:meth:`_work_array` for one part of the batch (see PART_BYTES), kept per part size
        (``"dZ 12"``): a batch's parts have at most two sizes. Training keeps only the sizes of
        this batch's ``parts`` ([(start, stop), ...]), so a run whose batch size changes does
        not pile them up; evaluation keeps none that training did not."""
        key, sizes = f"{kind} {size}", {stop - start for start, stop in parts}
        if self.training:
            for stale in [k for k in self._work_arrays if k.startswith(kind + " ") and int(k.split()[-1]) not in sizes]:
                del self._work_arrays[stale]
        elif key not in self._work_arrays:
            return (np.zeros if zeroed else np.empty)(shape, dtype=self.params["W"].dtype)
        return self._work_array(key, shape, zeroed=zeroed)


class _WindowPooling(_ImageLayer):
    """What max and average pooling share: the ``pool_h x pool_w`` window geometry, its checks
    and its description. ``spec()["type"]`` is the concrete class's name ("Pooling",
    "AvgPooling"), as saved files have always recorded it."""

    def __init__(self, pool_h: int, pool_w: int, stride: int = 1, pad: int = 0) -> None:
        super().__init__()
        _check_geometry(self.name, pool_h, pool_w, stride, pad)
        # As PyTorch's pooling layers: a window more than half padding may hold no input at all
        # (max pooling would output -inf there, average pooling a meaningless 0).
        if pad > pool_h // 2 or pad > pool_w // 2:
            raise ValueError(f"{self.name}: pad {pad} is more than half the ({pool_h}, {pool_w}) window; "
                             f"pad must be at most {min(pool_h, pool_w) // 2} (pool size // 2 on each axis, "
                             "as in PyTorch)")
        self.pool_h, self.pool_w, self.stride, self.pad = int(pool_h), int(pool_w), int(stride), int(pad)
        self._out = None
        self._x_shape = None

    def spec(self) -> dict:
        return {"type": self.name, "pool": [self.pool_h, self.pool_w], "stride": self.stride, "pad": self.pad}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32):
        return cls(spec["pool"][0], spec["pool"][1], stride=spec["stride"], pad=spec["pad"])

    def _output_size(self, x_shape) -> tuple[int, int]:
        return _spatial_output(self.name, x_shape, self.pool_h, self.pool_w, self.stride, self.pad)


class Pooling(_WindowPooling):
    """Max pooling over ``pool_h x pool_w`` windows (the book's name; PyTorch's MaxPool2d).

    Padding is filled with -inf, so it never wins the max; as in PyTorch, ``pad`` is at most half
    the window on each axis, so every window holds at least one input pixel. The output has
    ``OH = (H + 2 pad - pool_h) // stride + 1`` rows (OW likewise). Backward sends each output's
    gradient to the position of its window's maximum (the first in row-major order, on ties, as
    PyTorch does) and adds where windows overlap. Shapes: x ``(N, C, H, W)``, y ``(N, C, OH, OW)``.

    2x2 windows with stride 2 and no padding (windows that tile the map) take a faster path with
    the same results: a two-round knockout whose comparisons are kept for the backward.
    """

    def __init__(self, pool_h: int, pool_w: int, stride: int = 1, pad: int = 0) -> None:
        super().__init__(pool_h, pool_w, stride, pad)
        self._padded = None
        self._winners = None

    @property
    def tiles_2x2(self) -> bool:
        """2x2 windows with stride 2 and no padding tile the map (the ConvNets' pools): they take
        the fast path below, which gives exactly what the general path gives."""
        return (self.pool_h, self.pool_w, self.stride, self.pad) == (2, 2, 2, 0)

    def forward(self, x):
        x = self._image(x)
        oh, ow = self._output_size(x.shape)
        self._x_shape = x.shape
        self._out = self._forward_2x2(x, oh, ow) if self.tiles_2x2 else self._forward_any(x, oh, ow)
        return self._out

    def backward(self, dout):
        self._require_forward(self._out)
        dout = self._check_dout(dout, self._out.shape)
        return self._backward_2x2(dout) if self.tiles_2x2 else self._backward_any(dout)

    # --- 2x2 windows, stride 2, no padding ------------------------------------------------------

    @staticmethod
    def _quarters(x, oh, ow):
        """The top-left, top-right, bottom-left and bottom-right pixels of every 2x2 window:
        four strided views of x (a last odd row or column belongs to no window)."""
        return [x[:, :, i:2 * oh:2, j:2 * ow:2] for i in (0, 1) for j in (0, 1)]

    def _forward_2x2(self, x, oh, ow):
        """A knockout in two rounds: left against right within each row, then top row against
        bottom row. Each comparison is strict, so ties go to the left, then to the top: the
        first maximum in row-major order, as the general path and PyTorch choose.

        The four pixels of every window are first copied apart into four contiguous maps (one
        pass): NumPy's maximum on strided views runs a scalar loop several times slower than its
        vector loop on contiguous arrays, and slower still on data without ties."""
        n, c = x.shape[:2]
        windows_2x2 = x[:, :, :2 * oh, :2 * ow].reshape(n, c, oh, 2, ow, 2)  # a view: axes split
        quarters = np.empty((2, 2, n, c, oh, ow), dtype=x.dtype)
        np.copyto(quarters, windows_2x2.transpose(3, 5, 0, 1, 2, 4))
        (top_left, top_right), (bottom_left, bottom_right) = quarters
        top, bottom = np.maximum(top_left, top_right), np.maximum(bottom_left, bottom_right)
        self._winners = (top_right > top_left, bottom_right > bottom_left, bottom > top)
        return np.maximum(top, bottom, out=top)

    def _backward_2x2(self, dout):
        """Route dout back through the knockout: to the winning row, then to the winning pixel
        of that row. ``to_row - to_right`` is exactly to_row or 0 (to_right is one or the other)."""
        right_wins_top, right_wins_bottom, bottom_wins = self._winners
        h, w = self._x_shape[2:]
        oh, ow = dout.shape[2:]
        covered = (2 * oh, 2 * ow) == (h, w)  # else the last odd row or column gets no gradient
        dx = (np.empty if covered else np.zeros)(self._x_shape, dtype=dout.dtype)
        top_left, top_right, bottom_left, bottom_right = self._quarters(dx, oh, ow)
        to_bottom = dout * bottom_wins
        to_top = np.subtract(dout, to_bottom)
        for to_row, right_wins, left, right in ((to_top, right_wins_top, top_left, top_right),
                                                (to_bottom, right_wins_bottom, bottom_left, bottom_right)):
            np.multiply(to_row, right_wins, out=right)
            np.subtract(to_row, right, out=left)
        return dx

    # --- any window, stride and padding ---------------------------------------------------------

    def _offsets(self):
        """The (i, j) positions inside a window, in row-major order (the tie-break order)."""
        return [(i, j) for i in range(self.pool_h) for j in range(self.pool_w)]

    def _slice(self, oh, ow, i, j):
        # The pixels at offset (i, j) of every window: one strided view of the padded input.
        return (slice(None), slice(None), slice(i, i + self.stride * oh, self.stride),
                slice(j, j + self.stride * ow, self.stride))

    def _forward_any(self, x, oh, ow):
        padded = _pad(x, self.pad, -np.inf)
        # The maximum over the kernel offsets: one element-wise maximum per offset, each over a
        # strided view (much faster in NumPy than an argmax over a window axis).
        out = None
        for i, j in self._offsets():
            candidate = padded[self._slice(oh, ow, i, j)]
            out = candidate.copy() if out is None else np.maximum(out, candidate, out=out)
        self._padded = padded
        return out

    def _backward_any(self, dout):
        n, c, h, w = self._x_shape
        oh, ow = self._out.shape[2:]
        dx = np.zeros(self._padded.shape, dtype=dout.dtype)
        # Each window's gradient goes to the first offset (row-major) that holds its maximum,
        # as in PyTorch; `unclaimed` marks the windows whose maximum is still to be found.
        unclaimed = np.ones(self._out.shape, dtype=bool)
        disjoint = self.stride >= self.pool_h and self.stride >= self.pool_w  # no pixel in two windows
        for i, j in self._offsets():
            window = self._slice(oh, ow, i, j)
            here = (self._padded[window] == self._out) & unclaimed
            unclaimed ^= here
            if disjoint:
                np.multiply(dout, here, out=dx[window])  # each pixel written once: no sum needed
            else:
                dx[window] += dout * here
        return dx[:, :, self.pad:self.pad + h, self.pad:self.pad + w]


class AvgPooling(_WindowPooling):
    """Average pooling over ``pool_h x pool_w`` windows (PyTorch's AvgPool2d with its default
    ``count_include_pad=True``: zero padding counts in the average; ``pad`` at most half the
    window, as there). Backward spreads each output's gradient evenly over its window.
    Shapes: x ``(N, C, H, W)``, y ``(N, C, OH, OW)``."""

    def forward(self, x):
        x = self._image(x)
        self._output_size(x.shape)
        view = windows(x, self.pool_h, self.pool_w, self.stride, self.pad)
        self._x_shape = x.shape
        self._out = view.mean(axis=(4, 5))
        return self._out

    def backward(self, dout):
        self._require_forward(self._out)
        dout = self._check_dout(dout, self._out.shape)
        share = dout / (self.pool_h * self.pool_w)
        dwin = np.broadcast_to(share[..., None, None], share.shape + (self.pool_h, self.pool_w))
        return scatter_windows(dwin, self._x_shape, self.stride, self.pad)


class Flatten(Layer):
    """``(N, d1, d2, ...) -> (N, d1 d2 ...)``; backward restores the shape."""

    def __init__(self) -> None:
        super().__init__()
        self._x_shape = None

    def forward(self, x):
        x = self._input(x)
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        self._require_forward(self._x_shape)
        expected = (self._x_shape[0], int(np.prod(self._x_shape[1:])))
        return self._check_dout(dout, expected).reshape(self._x_shape)
