"""The book's ``common.layers`` on handgrad's layers: the same names and signatures, handgrad's
forward and backward.

What a reader of the book may notice:

* ``Affine`` and ``Convolution`` compute in their parameters' dtype: the book's float64 weights
  compute in float64 even on the float32 images ``load_mnist`` returns (as NumPy's promotion does
  in the book), so gradient checks print differences near 1e-10.
* ``dW``, ``db`` (and BatchNormalization's ``dgamma``, ``dbeta``) are snapshots of the last
  backward: a network may keep the dict its ``gradient`` returned while it computes numerical
  gradients (the book's ``batch_norm_gradient_check.py`` does), and it stays what backward said.
* ``Relu.backward`` leaves ``dout`` untouched; ``SoftmaxWithLoss.backward(dout)`` scales by dout
  and takes the batch size from the scores, not from the labels.
* ``Dropout`` is inverted (kept units are scaled by ``1 / (1 - ratio)`` while training, and
  evaluation is the identity); the book scales by ``1 - ratio`` at evaluation instead. Same
  expected output.
* ``Pooling`` pads with ``-inf`` (padding never wins the max) and counts the padding in the
  output size; the book pads with zeros and leaves the padding out of the output size.
* ``BatchNormalization`` keeps running statistics as handgrad's BatchNorm does (variance starts
  at 1 and is unbiased; the book's starts at 0). Its ``momentum`` is the book's: the weight of
  the old running value.
"""

import warnings

import numpy as np

from handgrad.layers import Affine as _Affine
from handgrad.layers import BatchNorm as _BatchNorm
from handgrad.layers import Convolution as _Convolution
from handgrad.layers import Dropout as _Dropout
from handgrad.layers import Pooling as _Pooling
from handgrad.layers import Relu, Sigmoid  # noqa: F401  (the book's names, handgrad's layers)
from handgrad.layers import SoftmaxWithLoss as _SoftmaxWithLoss

from .functions import *  # noqa: F401,F403  (the book's module exports its functions too)
from .util import col2im, im2col  # noqa: F401


def _snapshot(key):
    """A property giving a copy of ``grads[key]`` as the last backward left it: handgrad's layers
    zero their gradient arrays at the next forward, and the book's networks keep the dict their
    ``gradient`` returned while they compute more losses."""
    return property(lambda self: self.grads[key].copy(), doc=f"A copy of grads[{key!r}] after the last backward.")


class _SnapshotGrads:
    """``dW`` and ``db`` as snapshots (see :func:`_snapshot`)."""

    dW = _snapshot("W")
    db = _snapshot("b")


class Affine(_SnapshotGrads, _Affine):
    """``y = x W + b``, W ``(in, out)``; an ``(N, C, H, W)`` input is flattened to ``(N, in)``."""


class Convolution(_SnapshotGrads, _Convolution):
    """``Convolution(W, b, stride=1, pad=0)``: W ``(FN, C, FH, FW)``, x ``(N, C, H, W)``."""


class Pooling(_Pooling):
    """Max pooling, ``Pooling(pool_h, pool_w, stride=2, pad=0)`` (the book's default stride)."""

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        super().__init__(pool_h, pool_w, stride=stride, pad=pad)


class SoftmaxWithLoss(_SoftmaxWithLoss):
    """Softmax and cross-entropy; labels as integers ``(N,)`` or one-hot rows ``(N, C)``.

    The book's code also takes integer labels shaped ``(N, 1)`` (its ``ch07/gradient_check.py``
    does); they are read as ``(N,)``.
    """

    def forward(self, x, t):
        t = np.asarray(t)
        x_shape = np.shape(x)
        if t.dtype.kind in "iu" and len(x_shape) == 2 and t.shape == (x_shape[0], 1) and x_shape[1] != 1:
            t = t.reshape(-1)
        return super().forward(x, t)


class Dropout(_Dropout):
    """``Dropout(dropout_ratio=0.5)``; ``forward(x, train_flg=True)``. Inverted dropout; the random
    numbers come from NumPy's global generator, so ``np.random.seed`` makes a run repeatable."""

    def __init__(self, dropout_ratio=0.5):
        super().__init__(p=dropout_ratio, rng=np.random.default_rng(np.random.randint(2**31)))
        self.dropout_ratio = dropout_ratio

    def forward(self, x, train_flg=True):
        self.train(train_flg)
        return super().forward(x)


class BatchNormalization(_BatchNorm):
    """``BatchNormalization(gamma, beta, momentum=0.9, running_mean=None, running_var=None)``;
    ``forward(x, train_flg=True)``. Normalises each feature of ``(N, D)`` input over the batch; an
    ``(N, C, H, W)`` input is seen as ``(N, C*H*W)``, as in the book. ``gamma`` and ``beta`` are
    the arrays given (a network's ``params`` hold the same arrays); eps is the book's 1e-6.

    A batch of one sample while training normalises every value to exactly 0, so the layer
    outputs ``beta`` whatever its input (PyTorch refuses such a batch). The book allows it, and so
    does this layer, with a warning: the output, ``dbeta = dout`` and ``dx = dgamma = 0`` are then
    exact, and the running statistics are left alone.
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        gamma, beta = np.asarray(gamma), np.asarray(beta)
        super().__init__(gamma.size, momentum=1.0 - momentum, eps=1e-6, dtype=gamma.dtype)
        self.params = {"gamma": gamma, "beta": beta}  # the caller's arrays: updates reach the layer
        self.grads = {"gamma": np.zeros_like(gamma), "beta": np.zeros_like(beta)}
        for name, given in (("running_mean", running_mean), ("running_var", running_var)):
            if given is not None:
                self.buffers[name][...] = given
        self._batch_of_one = False

    running_mean = property(lambda self: self.buffers["running_mean"])
    running_var = property(lambda self: self.buffers["running_var"])
    dgamma = _snapshot("gamma")
    dbeta = _snapshot("beta")

    def forward(self, x, train_flg=True):
        x = np.asarray(x)
        self._input_shape = x.shape
        rows = x.reshape(x.shape[0], -1) if x.ndim != 2 else x
        self.train(train_flg)
        self._batch_of_one = train_flg and rows.shape[0] == 1
        if self._batch_of_one:
            warnings.warn("BatchNormalization: a batch of one sample while training: every normalised value is 0, "
                          "so the layer outputs beta whatever its input (and a ReLU after it sits exactly on its "
                          "kink when beta is 0)", RuntimeWarning, stacklevel=2)
            self._zero_own_grads()
            beta = self.params["beta"]
            return np.broadcast_to(beta, rows.shape).astype(beta.dtype).reshape(x.shape)
        return super().forward(rows).reshape(x.shape)

    def backward(self, dout):
        dout = np.asarray(dout)
        rows = dout.reshape(dout.shape[0], -1)
        if self._batch_of_one:
            self.grads["beta"] += rows.sum(axis=0)  # y = beta: dy/dbeta = 1, dy/dgamma = dy/dx = 0
            return np.zeros(self._input_shape, dtype=self.params["beta"].dtype)
        return super().backward(rows).reshape(self._input_shape)
