"""Recurrent layers: RNN (tanh), LSTM and GRU, with backpropagation through time written out.

All three are batch-first, ``x (N, T, D) -> hs (N, T, H)`` (every hidden state), with the time
loop inside the layer (the second book's ``TimeRNN``/``TimeLSTM``), and PyTorch's gate orders and
equations, so weights move between the two with a transpose:

    PyTorch ``weight_ih_l0`` = ``Wx.T``, ``weight_hh_l0`` = ``Wh.T``,
    ``bias_ih_l0 + bias_hh_l0`` = ``b`` (GRU: ``bias_ih_l0`` = ``bx``, ``bias_hh_l0`` = ``bh``).

State (the same for the three layers):

* Every forward starts from an initial state ``h0`` (and ``c0`` for the LSTM), ``(N, H)``:
  zeros, unless ``set_state(h, c=None)`` gave one. ``set_state`` applies to the *next* forward
  in both modes; a missing ``c`` is zeros.
* ``stateful=False`` (the default): the state given by ``set_state`` is used by one forward
  and then forgotten, so unrelated batches never share a state by accident.
* ``stateful=True`` (truncated backpropagation through time, as the book's ``TimeLSTM``): the
  last state of a forward is the initial state of the next, until ``reset_state()`` (back to
  zeros) or ``set_state``. ``backward`` stops at the start of the current call: the carried
  state is a constant for it.
* After forward, ``h`` (and ``c``) is the last state ``(N, H)`` of that forward, a copy
  (PyTorch's ``h_n``/``c_n``); after backward, ``dh`` (and ``dc``) is the gradient with
  respect to the initial state of that forward, ``(N, H)`` -- a seq2seq decoder hands it to its
  encoder, whose last hidden state was the decoder's ``h0``.

Cost: the input part of every gate, ``x Wx + b``, is one GEMM over all ``N T`` rows before the
loop, and ``dWx``, ``dWh``, ``db`` and ``dx`` are GEMMs over all rows after it; only the
recurrent part, ``h Wh`` and the gate arithmetic, loops over time. Inside, the arrays are
time-major ``(T, N, .)`` so that each step reads and writes contiguous ``(N, .)`` slices, and
the inputs and states share one array ``xh (T + 1, N, D + 1 + H)`` whose row t is
``[x_t | 1 | h_{t-1}]``: each step writes ``h_t`` into row t + 1, and the parameter gradients are
then products with rows 0 .. T-1 as they stand (``dWx``, ``db`` and ``dWh`` in one; the GRU, whose
x and h sides differ, in two).
"""

from __future__ import annotations

import numpy as np

from ..functions import as_float_array
from .base import Layer, check_sizes


def _param(key: str, doc: str) -> property:
    return property(lambda self: self.params[key], doc=doc)


def _grad(key: str) -> property:
    return property(lambda self: self.grads[key], doc=f"The gradient of {key} (``grads[{key!r}]``).")


class _Recurrent(Layer):
    """What RNN, LSTM and GRU share: weights and their checks, state, input checks, spec.

    Subclasses set ``_gates`` (gate blocks in ``Wx``'s columns), ``_bias_keys`` and
    ``_has_cell``, and write the time loops: ``_forward_steps(xh, hs, h0, c0, given)``, which
    writes each ``h_t`` into ``hs[t]`` (a view of row t + 1 of ``xh``) and returns
    ``(c_last, cache)``, and
    ``_backward_steps(dout, h_prev, c0, hs, cache)`` (time-major ``dout``, ``h_prev`` the states
    ``h_{t-1}``), which returns ``(dX, dG, dh0, dc0)``.
    """

    _gates = 1
    _bias_keys = ("b",)
    _has_cell = False
    #: Sequential may ask the first layer to skip dx, which nobody needs.
    can_skip_input_grad = True

    def __init__(self, Wx, Wh, biases, stateful: bool = False) -> None:
        super().__init__()
        if not isinstance(stateful, (bool, np.bool_)):
            raise TypeError(f"{self.name}: stateful must be True or False, got {stateful!r:.40}")
        self.stateful = bool(stateful)
        g = self._gates
        blocks = "" if g == 1 else str(g)
        Wx = as_float_array(Wx, f"{self.name} Wx")
        Wh = as_float_array(Wh, f"{self.name} Wh")
        if Wh.ndim != 2 or Wh.shape[0] == 0 or Wh.shape[1] != g * Wh.shape[0]:
            raise ValueError(f"{self.name}: Wh must have shape (H, {blocks}H), got {Wh.shape}")
        H = Wh.shape[0]
        if Wx.ndim != 2 or Wx.shape[0] == 0 or Wx.shape[1] != g * H:
            raise ValueError(
                f"{self.name}: Wx must have shape (D, {blocks}H) = (D, {g * H}) to match Wh {Wh.shape}, got {Wx.shape}")
        dtype = Wx.dtype
        params = {"Wx": Wx, "Wh": Wh.astype(dtype, copy=False)}
        for key, bias in zip(self._bias_keys, biases):
            bias = as_float_array(bias, f"{self.name} {key}")
            if bias.shape != (g * H,):
                raise ValueError(f"{self.name}: {key} must have shape ({blocks}H,) = ({g * H},), got {bias.shape}")
            params[key] = bias.astype(dtype, copy=False)
        self.params = params
        self.grads = {key: np.zeros_like(value) for key, value in params.items()}
        self._pending = None  # the initial state of the next forward: (h, c or None), or None for zeros
        self._last = None  # (h, c) at the end of the last forward
        self._cache = None
        self.dh: np.ndarray | None = None

    # --- sizes, spec ------------------------------------------------------------------------

    Wx = _param("Wx", "Input weights ``(D, G H)``, gate blocks side by side (PyTorch's weight_ih_l0.T).")
    Wh = _param("Wh", "Recurrent weights ``(H, G H)`` (PyTorch's weight_hh_l0.T).")
    dWx = _grad("Wx")
    dWh = _grad("Wh")

    @property
    def input_size(self) -> int:
        return int(self.params["Wx"].shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.params["Wh"].shape[0])

    def spec(self) -> dict:
        return {"type": self.name, "input_size": self.input_size, "hidden_size": self.hidden_size,
                "stateful": self.stateful}

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        D, H = check_sizes(spec, "input_size", "hidden_size")
        G = cls._gates * H
        return {"Wx": (D, G), "Wh": (H, G), **{key: (G,) for key in cls._bias_keys}}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> _Recurrent:
        shapes = cls.param_shapes(spec)
        stateful = spec.get("stateful", False)
        if not isinstance(stateful, bool):
            raise ValueError(f"{cls.__name__}: stateful must be true or false, got {stateful!r:.40}")
        arrays = [np.zeros(shape, dtype) for shape in shapes.values()]
        return cls(*arrays, stateful=stateful)

    def __repr__(self) -> str:
        return (f"{self.name}(input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"stateful={self.stateful}, dtype={self.params['Wx'].dtype})")

    # --- state ------------------------------------------------------------------------------

    def set_state(self, h, c=None) -> None:
        """Make ``h`` (and for the LSTM ``c``; zeros if omitted), ``(N, H)``, the initial state
        of the next forward (copied, in the parameters' dtype). With ``stateful=False`` it is
        used by that one forward only; with ``stateful=True`` the following forwards carry on
        from where that one ends."""
        H, dtype = self.hidden_size, self.params["Wx"].dtype
        if c is not None and not self._has_cell:
            raise TypeError(f"{self.name}: has no cell state; call set_state(h) without c")
        h = self._state_array(h, "h", H, dtype)
        if c is not None:
            c = self._state_array(c, "c", H, dtype)
            if c.shape != h.shape:
                raise ValueError(f"{self.name}: set_state expected c of h's shape {h.shape}, got {c.shape}")
        self._pending = (h, c)

    def _state_array(self, value, which: str, H: int, dtype) -> np.ndarray:
        value = as_float_array(value, f"{self.name} set_state {which}")
        if value.ndim != 2 or value.shape[1] != H:
            raise ValueError(f"{self.name}: set_state expected {which} of shape (N, {H}), got {value.shape}")
        return np.array(value, dtype=dtype)  # a copy: the caller may reuse its array

    def reset_state(self) -> None:
        """Forget any state: the next forward starts from zeros."""
        self._pending = None
        self._last = None

    @property
    def h(self) -> np.ndarray | None:
        """The last hidden state ``(N, H)`` of the last forward (None before any, or after
        ``reset_state``). With ``stateful=True`` the next forward starts from it."""
        return None if self._last is None else self._last[0]

    def _initial_state(self, N: int) -> tuple:
        """``(h0, c0, given)`` for a batch of N; ``given`` is False when the state is zeros."""
        H, dtype = self.hidden_size, self.params["Wx"].dtype
        pending = self._pending
        if pending is None:
            zeros = np.zeros((N, H), dtype)
            return zeros, (np.zeros((N, H), dtype) if self._has_cell else None), False
        h0, c0 = pending
        if h0.shape[0] != N:
            origin = "carried over from the last forward (stateful=True; reset_state() to start afresh)" \
                if self.stateful else "given by set_state"
            raise ValueError(f"{self.name}: the initial state {origin} has shape {h0.shape}, "
                             f"but the input has batch size {N}: expected ({N}, {H})")
        if self._has_cell and c0 is None:
            c0 = np.zeros((N, H), dtype)
        return h0, c0, True

    # --- forward and backward ---------------------------------------------------------------

    def _sequence(self, x) -> np.ndarray:
        D = self.input_size
        x = np.asarray(x)
        if x.dtype.kind != "f":
            hint = "; token ids (integers) go through an Embedding first" if x.dtype.kind in "iub" else ""
            raise TypeError(f"{self.name}: expected a float sequence of shape (N, T, {D}), got dtype {x.dtype}{hint}")
        if x.ndim != 3 or x.shape[2] != D:
            raise ValueError(f"{self.name}: expected input of shape (N, T, {D}) (batch-first), got {x.shape}")
        if x.shape[1] == 0:
            raise ValueError(f"{self.name}: expected at least one time step, got input of shape {x.shape}")
        return x.astype(self.params["Wx"].dtype, copy=False)

    def forward(self, x):
        """Every hidden state ``(N, T, H)`` of the sequence ``x (N, T, D)``; see the class."""
        x = self._sequence(x)
        N, T, D = x.shape
        h0, c0, given = self._initial_state(N)
        self._zero_own_grads()
        xh = self._inputs_and_states(x, h0)
        hs = xh[1:, :, D + 1:]  # (T, N, H): h_t, written by the steps into row t + 1 of xh
        c_last, cache = self._forward_steps(xh, hs, h0, c0, given)
        self._cache = (xh, c0, hs, cache)
        self._last = (hs[-1].copy(), None if c_last is None else c_last.copy())
        self._pending = self._last if self.stateful else None
        self.dh = None
        # A copy, always: for one sequence of one step the transpose is contiguous already, and
        # ascontiguousarray would hand out a view of the states that backward reads.
        return hs.transpose(1, 0, 2).copy()

    def _inputs_and_states(self, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
        """``xh (T + 1, N, D + 1 + H)``, time-major, row t ``[x_t | 1 | h_{t-1}]`` (see the
        module): the inputs and h0 filled in, the later states left for the steps to write."""
        N, T, D = x.shape
        xh = np.empty((T + 1, N, D + 1 + self.hidden_size), self.params["Wx"].dtype)
        xh[:T, :, :D] = x.transpose(1, 0, 2)
        xh[T, :, :D] = 0  # the last row holds h_{T-1} only: no garbage in the part never read
        xh[:, :, D] = 1
        xh[0, :, D + 1:] = h0
        return xh

    def _input_projection(self, xh: np.ndarray, W: np.ndarray, bias: np.ndarray, scale: np.ndarray | float = 1) -> np.ndarray:
        """``(x_t W + bias) * scale`` for every step at once, ``(T, N, G H)``: one GEMM of the rows
        ``[x_t | 1]`` by ``[W; bias]``."""
        T, N, D = xh.shape[0] - 1, xh.shape[1], self.input_size
        W_and_bias = np.concatenate([W, bias[None]]) * scale
        return (xh[:T, :, :D + 1].reshape(T * N, D + 1) @ W_and_bias).reshape(T, N, W_and_bias.shape[1])

    def backward(self, dout, input_grad: bool = True):
        """``dx (N, T, D)`` from ``dout = dL/dhs (N, T, H)``, after adding into the parameter
        gradients; ``dh`` (and ``dc``) is then the gradient with respect to the initial state.
        With ``input_grad=False`` dx is not computed and None is returned."""
        self._require_forward(self._cache)
        xh, c0, hs, cache = self._cache
        T, N, H = hs.shape
        D = self.input_size
        dtype = self.params["Wx"].dtype
        dout = self._check_dout(dout, (N, T, H)).astype(dtype, copy=False)
        # dX (T, N, G H): the gradient of each step's gate pre-activations (for the GRU, of
        # their x side; dG, of their h side, is then another array): every parameter gradient
        # is a sum over steps and samples of a product with one of them.
        dX, dG, dh0, dc0 = self._backward_steps(dout.transpose(1, 0, 2), xh[:T, :, D + 1:], c0, hs, cache)
        dX_rows, dG_rows = dX.reshape(T * N, dX.shape[-1]), dG.reshape(T * N, dG.shape[-1])
        rows = xh[:T].reshape(T * N, D + 1 + H)  # [x_t | 1 | h_{t-1}] of every step
        grads = self.grads
        if dG is dX:  # [dWx; db; dWh] = sum over steps and samples of [x_t | 1 | h_{t-1}]^T da_t
            d = rows.T @ dX_rows
            grads["Wx"] += d[:D]
            grads["b"] += d[D]
            grads["Wh"] += d[D + 1:]
        else:  # the GRU: [x_t | 1] with the x side, [1 | h_{t-1}] with the h side
            d = rows[:, :D + 1].T @ dX_rows
            grads["Wx"] += d[:D]
            grads["bx"] += d[D]
            d = rows[:, D:].T @ dG_rows
            grads["bh"] += d[0]
            grads["Wh"] += d[1:]
        self.dh = dh0
        if self._has_cell:
            self.dc = dc0
        if not input_grad:
            return None
        dx_rows = dX_rows @ self.params["Wx"].T
        return np.ascontiguousarray(dx_rows.reshape(T, N, D).transpose(1, 0, 2))


def _contiguous_transpose(Wh: np.ndarray) -> np.ndarray:
    """``Wh^T`` as a contiguous copy, for the backward's ``dh_{t-1} = da_t Wh^T`` at every step:
    OpenBLAS multiplies by a transposed view a third slower than by the same matrix laid out
    row by row (``benchmarks/lstm_breakdown.py``), and the copy is made once per backward."""
    return np.ascontiguousarray(Wh.T)


def _sigmoid_scale(H: int, blocks: str, dtype) -> np.ndarray:
    """Per-column factors: 0.5 for sigmoid gates ("s"), 1 for tanh gates ("t"). The layers
    compute ``sigmoid(a) = 0.5 + 0.5 tanh(a / 2)``: one transcendental pass per row of gates
    (tanh) that never overflows, and a / 2 comes free by halving the weights' sigmoid columns
    (exact in binary floating point)."""
    return np.repeat(np.array([0.5 if kind == "s" else 1.0 for kind in blocks], dtype), H)


class RNN(_Recurrent):
    """Elman RNN with tanh over a sequence (PyTorch's ``nn.RNN(nonlinearity="tanh")``).

    Forward, for t = 0 .. T-1, from the initial state ``h_{-1} = h0``:
        ``h_t = tanh(x_t Wx + h_{t-1} Wh + b)``

    Shapes:
        Wx: ``(D, H)``; Wh: ``(H, H)``; b: ``(H,)`` (PyTorch's ``bias_ih + bias_hh``).
        x: ``(N, T, D)`` floats (token ids go through an Embedding first).
        y: ``(N, T, H)``, every ``h_t``; initial state ``(N, H)`` (see the module on state).

    Backward through time, with ``dh_t`` the gradient reaching ``h_t`` (from dout at t plus
    from step t+1), in reverse order:
        ``da_t = dh_t * (1 - h_t^2)``; ``dh_{t-1} = dout_{t-1} + da_t Wh^T``;
        ``dx_t = da_t Wx^T``; ``dWx += sum_t x_t^T da_t``; ``dWh += sum_t h_{t-1}^T da_t``;
        ``db += sum_t sum_n da_t``; ``dh`` (gradient of h0) ``= da_0 Wh^T``.

    The layer computes in its parameters' dtype (the input is cast to it); ``forward`` zeroes
    the gradients, ``backward`` adds into them.
    """

    _gates = 1

    def __init__(self, Wx, Wh, b, stateful: bool = False) -> None:
        super().__init__(Wx, Wh, (b,), stateful)

    b = _param("b", "Bias ``(H,)`` (PyTorch's bias_ih_l0 + bias_hh_l0).")
    db = _grad("b")

    def _forward_steps(self, xh, hs, h0, c0, given):
        Wh, T = self.params["Wh"], hs.shape[0]
        a_all = self._input_projection(xh, self.params["Wx"], self.params["b"])  # x_t Wx + b, every step
        h = h0
        for t in range(T):
            a = a_all[t]
            if t > 0 or given:
                a += h @ Wh
            h = np.tanh(a, out=hs[t])
        return None, None

    def _backward_steps(self, dout, h_prev, c0, hs, cache):
        Wh_T = _contiguous_transpose(self.params["Wh"])
        T = hs.shape[0]
        dA = 1 - hs * hs  # (T, N, H): tanh' for every step at once, then da_t in place
        dh = dout[T - 1].copy()
        for t in range(T - 1, -1, -1):
            da = dA[t]
            da *= dh
            dh = da @ Wh_T  # dh_{t-1}, up to dout_{t-1}
            if t > 0:
                dh += dout[t - 1]
        return dA, dA, dh, None


class LSTM(_Recurrent):
    """Long short-term memory over a sequence (PyTorch's ``nn.LSTM``, the same gate order).

    Forward, for t = 0 .. T-1, from the initial state ``(h_{-1}, c_{-1}) = (h0, c0)``, with
    ``a_t = x_t Wx + h_{t-1} Wh + b`` split into four blocks of H columns ``[i | f | g | o]``:
        ``i = sigmoid(a_i)`` (input gate), ``f = sigmoid(a_f)`` (forget gate),
        ``g = tanh(a_g)`` (candidate), ``o = sigmoid(a_o)`` (output gate);
        ``c_t = f * c_{t-1} + i * g``; ``h_t = o * tanh(c_t)``.

    Shapes:
        Wx: ``(D, 4H)``; Wh: ``(H, 4H)``; b: ``(4H,)`` (PyTorch's ``bias_ih + bias_hh``).
        x: ``(N, T, D)`` floats (token ids go through an Embedding first).
        y: ``(N, T, H)``, every ``h_t``; states ``h0``, ``c0``, ``h``, ``c``, ``dh``, ``dc``:
        ``(N, H)`` (see the module on state).

    Backward through time, in reverse order, with ``dh_t`` and ``dc_t`` the gradients reaching
    ``h_t`` and ``c_t`` (from dout at t, and from step t+1):
        ``dc_t += dh_t * o * (1 - tanh(c_t)^2)``;
        ``da_o = dh_t * tanh(c_t) * o (1 - o)``, ``da_i = dc_t * g * i (1 - i)``,
        ``da_f = dc_t * c_{t-1} * f (1 - f)``, ``da_g = dc_t * i * (1 - g^2)``;
        ``dc_{t-1} = dc_t * f``; ``dh_{t-1} = dout_{t-1} + da_t Wh^T``;
        ``dx_t = da_t Wx^T``; ``dWx += sum_t x_t^T da_t``; ``dWh += sum_t h_{t-1}^T da_t``;
        ``db += sum_t sum_n da_t``. ``dh`` and ``dc`` are ``dh_{-1}`` and ``dc_{-1}``.

    The layer computes in its parameters' dtype (the input is cast to it); ``forward`` zeroes
    the gradients, ``backward`` adds into them.
    """

    _gates = 4
    _has_cell = True

    def __init__(self, Wx, Wh, b, stateful: bool = False) -> None:
        super().__init__(Wx, Wh, (b,), stateful)
        self.dc: np.ndarray | None = None

    b = _param("b", "Bias ``(4H,)``, blocks i, f, g, o (PyTorch's bias_ih_l0 + bias_hh_l0).")
    db = _grad("b")

    @property
    def c(self) -> np.ndarray | None:
        """The last cell state ``(N, H)`` of the last forward (None before any, or after
        ``reset_state``). With ``stateful=True`` the next forward starts from it."""
        return None if self._last is None else self._last[1]

    def forward(self, x):
        self.dc = None
        return super().forward(x)

    def _forward_steps(self, xh, hs, h0, c0, given):
        Wx, Wh = self.params["Wx"], self.params["Wh"]
        T, N, H = hs.shape
        scale = _sigmoid_scale(H, "ssts", Wx.dtype)
        shift = 1 - scale  # 0.5 after the sigmoid columns' 0.5 tanh, 0 after the tanh column's
        # The pre-activations' x side (T, N, 4H), then the gates in place.
        gates = self._input_projection(xh, Wx, self.params["b"], scale)
        Wh_half = Wh * scale
        cs = np.empty((T, N, H), Wx.dtype)  # c_t
        tanh_cs = np.empty((T, N, H), Wx.dtype)  # tanh(c_t), kept for backward
        h, c = h0, c0
        ig = np.empty((N, H), Wx.dtype)
        for t in range(T):
            a = gates[t]
            if t > 0 or given:
                a += h @ Wh_half
            np.tanh(a, out=a)
            a *= scale
            a += shift
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            c_t = cs[t]
            np.multiply(f, c, out=c_t)
            np.multiply(i, g, out=ig)
            c_t += ig
            np.tanh(c_t, out=tanh_cs[t])
            np.multiply(o, tanh_cs[t], out=hs[t])
            h, c = hs[t], c_t
        return cs[-1], (gates, cs, tanh_cs)

    def _backward_steps(self, dout, h_prev, c0, hs, cache):
        gates, cs, tanh_cs = cache
        T, N, H = hs.shape
        Wh_T = _contiguous_transpose(self.params["Wh"])
        # Local derivatives of every gate at every step, computed once for all steps:
        # sigmoid' = s (1 - s) for i, f, o and tanh' = 1 - g^2 for g ...
        local = gates * (1 - gates)
        g_all = gates[:, :, 2 * H:3 * H]
        np.subtract(1, g_all * g_all, out=local[:, :, 2 * H:3 * H])
        # ... and the path h_t -> c_t: o * (1 - tanh(c_t)^2).
        o_dtanh = gates[:, :, 3 * H:] * (1 - tanh_cs * tanh_cs)
        dA = np.empty_like(gates)
        dh = dout[T - 1].copy()
        dc = np.zeros((N, H), gates.dtype)
        tmp = np.empty((N, H), gates.dtype)
        for t in range(T - 1, -1, -1):
            i, f, g = gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:3 * H]
            c_prev = cs[t - 1] if t > 0 else c0
            da = dA[t]
            np.multiply(dh, o_dtanh[t], out=tmp)
            dc += tmp
            np.multiply(dc, g, out=da[:, :H])  # through i
            np.multiply(dc, c_prev, out=da[:, H:2 * H])  # through f
            np.multiply(dc, i, out=da[:, 2 * H:3 * H])  # through g
            np.multiply(dh, tanh_cs[t], out=da[:, 3 * H:])  # through o
            da *= local[t]
            dc *= f  # dc_{t-1}
            dh = da @ Wh_T
            if t > 0:
                dh += dout[t - 1]
        return dA, dA, dh, dc


class GRU(_Recurrent):
    """Gated recurrent unit over a sequence (PyTorch's ``nn.GRU``: its gate order and equations).

    Forward, for t = 0 .. T-1, from ``h_{-1} = h0``, with column blocks ``[r | z | n]``:
        ``r = sigmoid(x_t Wx_r + bx_r + h_{t-1} Wh_r + bh_r)`` (reset gate),
        ``z = sigmoid(x_t Wx_z + bx_z + h_{t-1} Wh_z + bh_z)`` (update gate),
        ``n = tanh(x_t Wx_n + bx_n + r * (h_{t-1} Wh_n + bh_n))`` (candidate),
        ``h_t = (1 - z) * n + z * h_{t-1}``.
    The two biases stay apart (unlike RNN's and LSTM's ``b``) because ``bh_n`` is inside
    ``r * (...)``.

    Shapes:
        Wx: ``(D, 3H)``; Wh: ``(H, 3H)``; bx, bh: ``(3H,)`` (PyTorch's bias_ih_l0, bias_hh_l0).
        x: ``(N, T, D)`` floats (token ids go through an Embedding first).
        y: ``(N, T, H)``, every ``h_t``; states ``(N, H)`` (see the module on state).

    Backward through time, in reverse order, with ``dh_t`` the gradient reaching ``h_t`` and
    ``hn = h_{t-1} Wh_n + bh_n``:
        ``da_n = dh_t * (1 - z) * (1 - n^2)``, ``da_z = dh_t * (h_{t-1} - n) * z (1 - z)``,
        ``da_r = da_n * hn * r (1 - r)``;
        the x side ``dX_t = [da_r | da_z | da_n]``, the h side ``dG_t = [da_r | da_z | da_n * r]``;
        ``dh_{t-1} = dout_{t-1} + dh_t * z + dG_t Wh^T``; ``dx_t = dX_t Wx^T``;
        ``dWx += sum_t x_t^T dX_t``, ``dbx += sum dX_t``; ``dWh += sum_t h_{t-1}^T dG_t``,
        ``dbh += sum dG_t``.

    The layer computes in its parameters' dtype (the input is cast to it); ``forward`` zeroes
    the gradients, ``backward`` adds into them.
    """

    _gates = 3
    _bias_keys = ("bx", "bh")

    def __init__(self, Wx, Wh, bx, bh, stateful: bool = False) -> None:
        super().__init__(Wx, Wh, (bx, bh), stateful)

    bx = _param("bx", "Input-side bias ``(3H,)``, blocks r, z, n (PyTorch's bias_ih_l0).")
    bh = _param("bh", "Recurrent-side bias ``(3H,)``, blocks r, z, n (PyTorch's bias_hh_l0).")
    dbx = _grad("bx")
    dbh = _grad("bh")

    def _forward_steps(self, xh, hs, h0, c0, given):
        Wx, Wh, bh = (self.params[k] for k in ("Wx", "Wh", "bh"))
        T, N, H = hs.shape
        scale = _sigmoid_scale(H, "sst", Wx.dtype)
        # x side, pre-activations of all steps; r, z and n then replace them in place.
        gates = self._input_projection(xh, Wx, self.params["bx"], scale)
        Wh_half, bh_half = Wh * scale, bh * scale
        hside = np.empty((T, N, 3 * H), Wx.dtype)  # h_{t-1} Wh + bh (halved r, z columns)
        rhn = np.empty((N, H), Wx.dtype)
        h = h0
        for t in range(T):
            a, gh = gates[t], hside[t]
            if t > 0 or given:
                np.matmul(h, Wh_half, out=gh)
                gh += bh_half
            else:
                gh[...] = bh_half
            rz = a[:, :2 * H]
            rz += gh[:, :2 * H]
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
            np.multiply(r, gh[:, 2 * H:], out=rhn)
            n += rhn
            np.tanh(n, out=n)
            h_t = hs[t]
            np.subtract(h, n, out=h_t)  # h_t = n + z (h_{t-1} - n)
            h_t *= z
            h_t += n
            h = h_t
        return None, (gates, hside)

    def _backward_steps(self, dout, h_prev, c0, hs, cache):
        gates, hside = cache
        T, N, H = hs.shape
        Wh_T = _contiguous_transpose(self.params["Wh"])
        r, z, n = gates[:, :, :H], gates[:, :, H:2 * H], gates[:, :, 2 * H:]
        hn = hside[:, :, 2 * H:]
        # Factors of every step at once: dh_t times each gives a gate's pre-activation gradient.
        dz_factor = (h_prev - n) * z * (1 - z)
        dn_factor = (1 - z) * (1 - n * n)
        dr_factor = hn * r * (1 - r)  # times da_n
        dG = np.empty_like(gates)  # the h side, [da_r | da_z | da_n * r]
        da_n = np.empty((T, N, H), gates.dtype)
        dh = dout[T - 1].copy()
        through_z = np.empty((N, H), gates.dtype)
        for t in range(T - 1, -1, -1):
            dg = dG[t]
            np.multiply(dh, dz_factor[t], out=dg[:, H:2 * H])
            np.multiply(dh, dn_factor[t], out=da_n[t])
            np.multiply(da_n[t], dr_factor[t], out=dg[:, :H])
            np.multiply(da_n[t], r[t], out=dg[:, 2 * H:])
            np.multiply(dh, z[t], out=through_z)
            dh = dg @ Wh_T
            dh += through_z
            if t > 0:
                dh += dout[t - 1]
        dX = dG.copy()  # the x side differs from the h side only in the n block
        dX[:, :, 2 * H:] = da_n
        return dX, dG, dh, None
