"""Attention: multi-head self-attention (the Transformer's, a GPT's), the second book's
dot-product attention over encoder states (seq2seq), and its plainest form, a causal mean
(makemore.py's bag of words).

Both weigh a set of values by a softmax over scores, and both backpropagate through that softmax
the same way: with ``A = softmax(S)`` along the last axis and ``dA = dL/dA``,
``dS = A * (dA - sum_j(dA * A))`` (the Jacobian of a softmax row, ``diag(a) - a a^T``, applied
to ``dA`` without ever being formed).
"""

from __future__ import annotations

import math

import numpy as np

from ..functions import as_float_array, column_sums, row_max, row_sums
from .base import Layer, check_sizes


def _masked_softmax_(scores: np.ndarray, bias, may_mask_whole_rows: bool) -> np.ndarray:
    """Softmax of ``scores + bias`` along the last axis, computed IN PLACE in ``scores`` (which
    is returned). ``bias`` (broadcastable to ``scores``, or None) holds 0 for a key a query may
    see and ``-inf`` for one it may not. A row whose keys are all masked becomes all zeros
    (only checked when ``may_mask_whole_rows``: a causal mask alone always leaves the diagonal).

    Memory passes over ``scores``: add the mask (1), row max (1), subtract (1), exp (1), row sum
    (1), scale (1); the row max and sum as functions.row_max (halving) and row_sums (BLAS),
    faster than NumPy's reductions over short rows."""
    if bias is not None:
        scores += bias
    shift = row_max(scores)[..., None]
    if may_mask_whole_rows:
        # A row of -inf would give -inf - -inf = nan; shifting it by 0 gives exp(-inf) = 0.
        shift[np.isneginf(shift)] = 0
    scores -= shift  # every exponent <= 0: no overflow (the row maximum gives exp(0) = 1)
    np.exp(scores, out=scores)
    row_sum = row_sums(scores)[..., None]
    if may_mask_whole_rows:
        row_sum[row_sum == 0] = 1  # only an all-masked row sums to 0 (else the max gives 1)
    scores *= 1 / row_sum  # one reciprocal per row, then a multiply per element
    return scores


def _softmax_backward_(dA: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``dS = A * (dA - sum_j(dA * A))`` along the last axis, computed IN PLACE in ``dA`` (a
    scratch array of the caller's). Masked entries have ``A = 0`` and get ``dS = 0``; so does
    an all-masked (all-zero) row. Passes: a dot product per row (einsum reads dA and A without
    writing a product array), subtract (1), multiply (1)."""
    row_dot = np.einsum("...j,...j->...", dA, A)[..., None]
    dA -= row_dot
    dA *= A
    return dA


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view, to hand out an array that backward still needs."""
    view = array.view()
    view.flags.writeable = False
    return view


def _key_padding_bias(mask, n: int, s: int, dtype, who: str) -> np.ndarray:
    """``-inf`` where ``mask`` is True (a padded key), 0 elsewhere, shaped ``(N, 1, 1, S)`` to
    broadcast over heads and queries. ``mask`` must be a bool array ``(N, S)``."""
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"{who}: key_padding_mask must be a bool array (True = a padded key to ignore, "
                        f"PyTorch's convention), got dtype {mask.dtype}")
    if mask.shape != (n, s):
        raise ValueError(f"{who}: key_padding_mask must have shape (N, S) = {(n, s)}, got {mask.shape}")
    bias = np.zeros((n, 1, 1, s), dtype=dtype)
    bias[mask[:, None, None, :]] = -np.inf
    return bias


def _causal_bias(n_queries: int, n_keys: int, dtype) -> np.ndarray:
    """``(Tq, Tk)``: ``-inf`` where key ``j`` comes after query ``i``. The queries are the last
    ``Tq`` positions of the ``Tk`` keys (``Tq < Tk`` when earlier keys come from a cache), so
    query ``i`` sits at position ``Tk - Tq + i`` and sees keys ``0 .. Tk - Tq + i``."""
    future = np.triu(np.ones((n_queries, n_keys), dtype=bool), k=n_keys - n_queries + 1)
    bias = np.zeros((n_queries, n_keys), dtype=dtype)
    bias[future] = -np.inf
    return bias


class MultiHeadAttention(Layer):
    """Multi-head self-attention (Vaswani et al. 2017; nanoGPT's ``CausalSelfAttention``).

    Each position's vector is projected to a query, a key and a value; each head compares its
    query with every key, turns the scaled scores into weights by a softmax over the keys, and
    takes the weighted sum of the values; the heads' results are concatenated and projected back.
    With ``hd = D / n_heads`` and, per head ``h``, ``q_h, k_h, v_h`` its ``hd`` columns:

        ``[q | k | v] = x W_qkv + b_qkv``
        ``A_h = softmax(q_h k_h^T / sqrt(hd) + mask)``   (over the keys, the last axis)
        ``O_h = A_h v_h``;  ``y = [O_1 | ... | O_heads] W_o + b_o``

    Shapes:
        W_qkv: ``(D, 3D)``, columns ``[q | k | v]``, each split into ``n_heads`` contiguous blocks
        of ``hd`` (PyTorch's ``in_proj_weight`` is ``W_qkv.T``, nanoGPT's ``c_attn.weight`` too;
        Hugging Face GPT-2's Conv1D ``c_attn.weight`` is ``W_qkv`` itself);
        b_qkv: ``(3D,)``; W_o: ``(D, D)`` (PyTorch's ``out_proj.weight.T``); b_o: ``(D,)``.
        x: ``(N, T, D)``; y: ``(N, T, D)``.
        key_padding_mask (optional): bool ``(N, T)``, True = a padded key that no query may
        attend to (PyTorch's ``key_padding_mask`` convention).
        ``.attention`` after forward: the weights ``A``, ``(N, n_heads, T, T)``, read-only;
        rows sum to 1 (query t, key s: how much of value s goes into position t).

    Masks: with ``causal=True`` query ``t`` sees keys ``0 .. t`` only (a language model must not
    read the future). A query whose keys are ALL masked (a padded position under a causal mask
    with left padding, or a whole padded sequence) gets attention weights of zero, so its heads
    output 0 and ``y = b_o`` there, with zero gradient through it. PyTorch returns NaN for such
    rows; zeros keep a batch usable, and a loss that ignores padded positions never sees them.

    Backward, in reverse order, with ``dy = dL/dy``:
        ``dW_o += O^T dy``, ``db_o += sum dy``, ``dO = dy W_o^T`` (split into heads);
        ``dv_h = A_h^T dO_h``, ``dA_h = dO_h v_h^T``;
        ``dS_h = A_h * (dA_h - rowsum(dA_h * A_h))`` (the softmax; masked entries have A = 0);
        ``dq_h = dS_h k_h / sqrt(hd)``, ``dk_h = dS_h^T q_h / sqrt(hd)`` (the scaling);
        ``dW_qkv += x^T [dq | dk | dv]``, ``db_qkv += sum [dq | dk | dv]``,
        ``dx = [dq | dk | dv] W_qkv^T``.

    Layout, for speed (see DESIGN.md's performance notes): the projection writes ``(N, T, 3, heads,
    hd)``; the heads' q, k, v are strided views ``(N, heads, T, hd)`` of it, which BLAS reads
    directly (each head's matrix has unit column stride), so the batched matmuls need no copies;
    ``A v`` is written straight into the concatenated ``(N, T, D)`` layout, and backward writes
    ``dq, dk, dv`` straight into ``(N, T, 3D)``. ``1 / sqrt(hd)`` is folded into q (N T D
    multiplies instead of N heads T T). Kept for backward: x, the projection ``(N, T, 3D)``,
    ``A`` and the concatenated heads ``(N, T, D)``. Passes over the ``(N, heads, T, T)`` scores,
    the only arrays that grow with T^2: forward writes them once (``q k^T``), the softmax makes
    six passes in place (mask, max, shift, exp, sum, scale) and ``A v`` reads them; backward
    writes ``dA`` once, makes three passes in place (row dot, subtract, multiply) and three
    matmuls read ``A`` or ``dS``. Nothing of size ``T^2`` is allocated beyond ``A`` and ``dA``.

    The layer computes in its parameters' dtype (W_qkv's; the other parameters must match it);
    the input is cast to it. ``forward`` zeroes the layer's gradients, ``backward`` adds into them.

    For generation with a key/value cache, :meth:`forward_step` runs new positions against the
    keys and values of earlier ones; :meth:`project_qkv` gives the heads' q, k, v.
    """

    can_skip_input_grad = True

    def __init__(self, W_qkv, b_qkv, W_o, b_o, n_heads: int, causal: bool = False) -> None:
        super().__init__()
        if isinstance(n_heads, bool) or not isinstance(n_heads, (int, np.integer)) or n_heads < 1:
            raise ValueError(f"MultiHeadAttention: n_heads must be a positive integer, got {n_heads!r}")
        if not isinstance(causal, (bool, np.bool_)):
            raise TypeError(f"MultiHeadAttention: causal must be True or False, got {causal!r}")
        W_qkv = as_float_array(W_qkv, "MultiHeadAttention W_qkv")
        if W_qkv.ndim != 2 or W_qkv.shape[1] != 3 * W_qkv.shape[0]:
            raise ValueError(f"MultiHeadAttention: W_qkv must have shape (D, 3D), columns [q | k | v], "
                             f"got {W_qkv.shape}")
        dim = W_qkv.shape[0]
        if dim % n_heads:
            raise ValueError(f"MultiHeadAttention: the model width D = {dim} must be divisible by "
                             f"n_heads = {n_heads} (each head takes D / n_heads columns)")
        dtype = W_qkv.dtype
        params = {"W_qkv": W_qkv}
        for key, value, shape in (("b_qkv", b_qkv, (3 * dim,)), ("W_o", W_o, (dim, dim)), ("b_o", b_o, (dim,))):
            value = as_float_array(value, f"MultiHeadAttention {key}")
            if value.shape != shape:
                raise ValueError(f"MultiHeadAttention: {key} must have shape {shape} for D = {dim}, got {value.shape}")
            if value.dtype != dtype:
                # One precision per layer: a silently mixed layer would compute in neither.
                raise TypeError(f"MultiHeadAttention: {key} has dtype {value.dtype}, W_qkv has {dtype}; "
                                "all parameters must share one dtype")
            params[key] = value
        self.params = params
        self.grads = {key: np.zeros_like(value) for key, value in params.items()}
        self.n_heads = int(n_heads)
        self.causal = bool(causal)
        self.attention: np.ndarray | None = None
        self._cache = None

    @property
    def dim(self) -> int:
        return self.params["W_qkv"].shape[0]

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    # --- description ---------------------------------------------------------------------------

    def spec(self) -> dict:
        return {"type": self.name, "dim": int(self.dim), "n_heads": self.n_heads, "causal": self.causal}

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        dim, n_heads = check_sizes(spec, "dim", "n_heads")
        if dim % n_heads:
            raise ValueError(f"MultiHeadAttention: dim = {dim} must be divisible by n_heads = {n_heads}")
        if not isinstance(spec.get("causal", False), bool):
            raise ValueError(f"MultiHeadAttention: causal must be true or false, got {spec.get('causal')!r:.40}")
        return {"W_qkv": (dim, 3 * dim), "b_qkv": (3 * dim,), "W_o": (dim, dim), "b_o": (dim,)}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "MultiHeadAttention":
        shapes = cls.param_shapes(spec)
        return cls(*(np.zeros(shapes[key], dtype) for key in ("W_qkv", "b_qkv", "W_o", "b_o")),
                   n_heads=spec["n_heads"], causal=spec.get("causal", False))

    def __repr__(self) -> str:
        return f"{self.name}(dim={self.dim}, n_heads={self.n_heads}, causal={self.causal})"

    # --- the pieces forward and forward_step share -----------------------------------------------

    def _check_x(self, x, what: str = "x") -> np.ndarray:
        x = self._input(x).astype(self.params["W_qkv"].dtype, copy=False)
        if x.ndim != 3 or x.shape[2] != self.dim:
            raise ValueError(f"{self.name}: expected {what} of shape (N, T, {self.dim}), got {x.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{self.name}: {what} needs at least one sequence and one position, got {x.shape}")
        return x

    def _project(self, x: np.ndarray, scale_q: bool = True) -> np.ndarray:
        """``x W_qkv + b_qkv`` as ``(N, T, 3D)``, with q scaled by ``1 / sqrt(hd)`` unless asked."""
        n, t, d = x.shape
        qkv = x.reshape(n * t, d) @ self.params["W_qkv"]
        qkv += self.params["b_qkv"]
        if scale_q:
            qkv[:, :d] *= qkv.dtype.type(1 / math.sqrt(self.head_dim))
        return qkv.reshape(n, t, 3 * d)

    def _heads(self, qkv: np.ndarray):
        """Views ``q, k, v`` of ``(N, heads, T, hd)`` into a projection ``(N, T, 3D)``: no copy."""
        n, t, _ = qkv.shape
        return qkv.reshape(n, t, 3, self.n_heads, self.head_dim).transpose(2, 0, 3, 1, 4)

    def project_qkv(self, x):
        """The heads' queries, keys and values for ``x`` (N, T, D): three arrays
        ``(N, n_heads, T, hd)`` (q unscaled, exactly ``x W_q + b_q`` split into heads). For a
        key/value cache or a picture of what the heads look at; forward does not use it."""
        x = self._check_x(x)
        return tuple(np.ascontiguousarray(part) for part in self._heads(self._project(x, scale_q=False)))

    def _attend(self, q, k, v, bias, may_mask_whole_rows: bool, out: np.ndarray):
        """Scores, softmax and weighted sum for every head at once: ``A = softmax(q k^T + bias)``
        ``(N, heads, Tq, Tk)`` (q already scaled), ``A v`` written into ``out`` (a view
        ``(N, heads, Tq, hd)``). Returns A."""
        scores = q @ k.swapaxes(-1, -2)
        A = _masked_softmax_(scores, bias, may_mask_whole_rows)
        np.matmul(A, v, out=out)
        return A

    def _project_out(self, heads_out: np.ndarray) -> np.ndarray:
        """``y = [O_1 | ... | O_heads] W_o + b_o``, ``(N, T, D)``."""
        n, t, d = heads_out.shape
        y = heads_out.reshape(n * t, d) @ self.params["W_o"]
        y += self.params["b_o"]
        return y.reshape(n, t, d)

    def _bias(self, n, t_queries, t_keys, key_padding_mask, dtype):
        # One query, the last position (a generated token after its cache), sees every key: a causal
        # mask would be all zeros, a pass over the scores for nothing.
        bias = _causal_bias(t_queries, t_keys, dtype) if self.causal and t_queries > 1 else None
        if key_padding_mask is not None:
            padding = _key_padding_bias(key_padding_mask, n, t_keys, dtype, self.name)
            bias = padding if bias is None else padding + bias  # (N, 1, Tq, Tk)
        return bias

    # --- forward and backward --------------------------------------------------------------------

    def forward(self, x, key_padding_mask=None):
        """``y`` (N, T, D) for ``x`` (N, T, D); ``key_padding_mask`` bool (N, T), True = ignore
        that key. Keeps ``.attention`` (N, n_heads, T, T)."""
        x = self._check_x(x)
        n, t, d = x.shape
        bias = self._bias(n, t, t, key_padding_mask, x.dtype)
        self._zero_own_grads()
        qkv = self._project(x)
        q, k, v = self._heads(qkv)
        heads_out = np.empty((n, t, d), dtype=x.dtype)  # [O_1 | ... | O_heads], filled by _attend
        A = self._attend(q, k, v, bias, key_padding_mask is not None,
                         out=heads_out.reshape(n, t, self.n_heads, self.head_dim).transpose(0, 2, 1, 3))
        self._cache = (x, qkv, A, heads_out)
        self.attention = _read_only(A)
        return self._project_out(heads_out)

    def backward(self, dout, input_grad: bool = True):
        """``dx`` (N, T, D), after adding into every parameter's gradient; with
        ``input_grad=False`` dx is skipped and None returned (the first layer of a model)."""
        self._require_forward(self._cache)
        x, qkv, A, heads_out = self._cache
        n, t, d = x.shape
        W_qkv, W_o = self.params["W_qkv"], self.params["W_o"]
        dy = self._check_dout(dout, (n, t, d)).astype(x.dtype, copy=False).reshape(n * t, d)
        # Output projection: y = O W_o + b_o.
        self.add_to_grad("W_o", heads_out.reshape(n * t, d).T @ dy)
        self.add_to_grad("b_o", column_sums(dy))
        d_heads = (dy @ W_o.T).reshape(n, t, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)  # dO, a view
        q, k, v = self._heads(qkv)  # q holds q / sqrt(hd)
        dqkv = np.empty((n, t, 3 * d), dtype=x.dtype)
        dq, dk, dv = self._heads(dqkv)  # views: the matmuls below write straight into [dq | dk | dv]
        # Weighted sum O = A v.
        np.matmul(A.swapaxes(-1, -2), d_heads, out=dv)
        dS = _softmax_backward_(d_heads @ v.swapaxes(-1, -2), A)  # dA, then dS in place
        # Scores S = (q / sqrt(hd)) k^T: dk uses the scaled q as it is; dq takes the 1 / sqrt(hd).
        np.matmul(dS.swapaxes(-1, -2), q, out=dk)
        np.matmul(dS, k, out=dq)
        dqkv_rows = dqkv.reshape(n * t, 3 * d)
        dqkv_rows[:, :d] *= x.dtype.type(1 / math.sqrt(self.head_dim))
        # Input projection: [q | k | v] = x W_qkv + b_qkv.
        self.add_to_grad("W_qkv", x.reshape(n * t, d).T @ dqkv_rows)
        self.add_to_grad("b_qkv", column_sums(dqkv_rows))
        if not input_grad:
            return None
        return (dqkv_rows @ W_qkv.T).reshape(n, t, d)

    # --- generation with a key/value cache (inference only) --------------------------------------

    def forward_step(self, x_new, cache=None):
        """Attention for new positions given the keys and values of the earlier ones, for
        generation with a key/value cache: one new token costs O(T), not a whole forward.

        ``x_new`` (N, T_new, D) are the positions after those in ``cache``, a tuple ``(k, v)``
        of ``(N, n_heads, T_past, hd)`` arrays as this method returned it (or None at the start).
        Returns ``(y_new, cache)``: ``y_new`` (N, T_new, D) equals the last T_new positions of
        ``forward`` on the whole sequence, and the new cache holds T_past + T_new positions.
        With ``causal=True`` the new positions see the cache and the new positions up to their
        own; otherwise they see everything in the cache and in ``x_new``. Cropping a context that
        outgrows its block is the caller's. With learned absolute positions (nanoGPT) the cached
        keys carry the positions they were computed at, so slicing the cache is NOT nanoGPT's
        crop: rebuild it from the cropped window (``forward_step(x_window)``) instead.

        Inference only: no backward, gradients and ``.attention`` are left as they were."""
        x = self._check_x(x_new, "x_new")
        n, t, d = x.shape
        qkv = self._project(x)
        q, k, v = self._heads(qkv)
        if cache is not None:
            k_past, v_past = (np.asarray(past, dtype=x.dtype) for past in cache)
            for name, past in (("k", k_past), ("v", v_past)):
                if (past.ndim != 4 or past.shape[:2] != (n, self.n_heads) or past.shape[3] != self.head_dim
                        or past.shape != k_past.shape):
                    raise ValueError(f"{self.name}: forward_step cache {name} must have shape (N, n_heads, T_past, "
                                     f"hd) = ({n}, {self.n_heads}, T_past, {self.head_dim}), the same for k and v, "
                                     f"got k {k_past.shape} and v {v_past.shape}")
            k = np.concatenate([k_past, k], axis=2)
            v = np.concatenate([v_past, v], axis=2)
        else:
            k, v = np.ascontiguousarray(k), np.ascontiguousarray(v)
        bias = self._bias(n, t, k.shape[2], None, x.dtype)
        heads_out = np.empty((n, t, d), dtype=x.dtype)
        self._attend(q, k, v, bias, False,
                     out=heads_out.reshape(n, t, self.n_heads, self.head_dim).transpose(0, 2, 1, 3))
        return self._project_out(heads_out), (k, v)


class Attention(Layer):
    """Dot-product attention over encoder states (the second book's ``Attention`` of chapter 8,
    every decoder step at once), for seq2seq. No parameters.

    For each decoder step t, its hidden state is compared with every encoder state s by a dot
    product, the scores become weights by a softmax over s, and the context is the weighted sum
    of the encoder states:

        ``a[n, t, :] = softmax_s(h_dec[n, t] . h_enc[n, s])``;  ``c[n, t] = sum_s a[n, t, s] h_enc[n, s]``

    (no ``1 / sqrt(H)`` scaling, as in the book). Shapes: h_dec ``(N, T, H)``, h_enc
    ``(N, S, H)``; context ``(N, T, H)``; ``.attention`` after forward: ``(N, T, S)``, rows
    sum to 1 (the book's chapter-8 picture: which input step each output step read).
    ``key_padding_mask`` (optional): bool ``(N, S)``, True = a padded encoder step to ignore;
    a decoder step whose encoder steps are all masked gets weights and context of zero.

    Backward, with ``dc = dL/dc``: ``da = dc h_enc^T``, ``ds = a * (da - rowsum(da * a))``,
    ``d_dec = ds h_enc``, ``d_enc = a^T dc + ds^T h_dec`` (h_enc is used twice: as the keys of
    the scores and as the values of the sum). Returns the tuple ``(d_dec, d_enc)``.

    Computes in the inputs' common float dtype (float32 with float32 inputs).
    """

    def __init__(self) -> None:
        super().__init__()
        self.attention: np.ndarray | None = None
        self._cache = None

    def forward(self, h_dec, h_enc, key_padding_mask=None):
        h_dec = as_float_array(h_dec, f"{self.name} h_dec")
        h_enc = as_float_array(h_enc, f"{self.name} h_enc")
        if h_dec.ndim != 3 or h_enc.ndim != 3:
            raise ValueError(f"{self.name}: expected h_dec (N, T, H) and h_enc (N, S, H), got {h_dec.shape} "
                             f"and {h_enc.shape}")
        if h_dec.shape[0] != h_enc.shape[0] or h_dec.shape[2] != h_enc.shape[2]:
            raise ValueError(f"{self.name}: h_dec (N, T, H) and h_enc (N, S, H) must agree on N and H, got "
                             f"{h_dec.shape} and {h_enc.shape}")
        if 0 in h_dec.shape or 0 in h_enc.shape:
            raise ValueError(f"{self.name}: empty input, h_dec {h_dec.shape}, h_enc {h_enc.shape}")
        dtype = np.result_type(h_dec, h_enc)
        h_dec, h_enc = h_dec.astype(dtype, copy=False), h_enc.astype(dtype, copy=False)
        n, s = h_enc.shape[:2]
        bias = None
        if key_padding_mask is not None:
            bias = _key_padding_bias(key_padding_mask, n, s, dtype, self.name)[:, 0]  # (N, 1, S)
        a = _masked_softmax_(h_dec @ h_enc.swapaxes(-1, -2), bias, key_padding_mask is not None)
        self._cache = (h_dec, h_enc, a)
        self.attention = _read_only(a)
        return a @ h_enc

    def backward(self, dout):
        self._require_forward(self._cache)
        h_dec, h_enc, a = self._cache
        dc = self._check_dout(dout, h_dec.shape).astype(a.dtype, copy=False)
        d_enc = a.swapaxes(-1, -2) @ dc  # as the values
        ds = _softmax_backward_(dc @ h_enc.swapaxes(-1, -2), a)
        d_dec = ds @ h_enc
        d_enc += ds.swapaxes(-1, -2) @ h_dec  # as the keys
        return d_dec, d_enc


class CausalMean(Layer):
    """Each position's mean of the inputs up to it: ``y[:, t] = (1 / (t + 1)) sum_{s <= t} x[:, s]``.

    Attention whose scores are all equal: a softmax of zeros over a causal mask weighs every
    visible position ``1 / (t + 1)`` (makemore.py's ``CausalBoW``, a causal bag of words). No
    parameters. Shapes: x ``(N, T, C)``; y x's shape.

    Backward: ``x[:, s]`` reaches every ``y[:, t]`` with ``t >= s``, each with weight
    ``1 / (t + 1)``, so ``dx[:, s] = sum_{t >= s} dout[:, t] / (t + 1)``: a cumulative sum taken
    from the last position back.
    """

    def __init__(self) -> None:
        super().__init__()
        self._weights = None  # 1 / (t + 1), shape (T, 1)

    def forward(self, x):
        x = self._input(x)
        if x.ndim != 3 or x.shape[1] == 0:
            raise ValueError(f"{self.name}: expected input of shape (N, T, C) with T >= 1, got {x.shape}")
        self._weights = 1.0 / np.arange(1, x.shape[1] + 1, dtype=x.dtype)[:, None]
        self._x_shape = x.shape
        return np.cumsum(x, axis=1) * self._weights

    def backward(self, dout):
        self._require_forward(self._weights)
        dout = self._check_dout(dout, self._x_shape)
        from_the_end = np.cumsum((dout * self._weights)[:, ::-1], axis=1)
        return np.ascontiguousarray(from_the_end[:, ::-1])
