"""A GPT whose every gradient is written out by hand: nanoGPT's model (Radford et al. 2019's
GPT-2 architecture) in NumPy, in llm.c's spirit.

The model, for token ids ``idx`` (N, T) with T <= block_size and C = n_embd:

    x = wte[idx] + wpe[0 .. T-1]                       token + position embeddings   (N, T, C)
    for each block:  x = x + attn(ln_1(x))              causal self-attention, pre-norm
                     x = x + mlp(ln_2(x))               mlp = c_proj(gelu(c_fc(.))), 4C wide
    logits = ln_f(x) wte^T                              output layer tied to wte      (N, T, V)

Backward retraces it in reverse order, one child layer at a time (each child's backward is its
derivative written out, see the layers); the gradients of wte are the sum of its two uses.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functions as F
from .. import init as initializers
from .. import validate
from ..data.text import CharVocab
from ..layers import GELU, Affine, Chain, Dropout, Embedding, Layer, LayerNorm, MultiHeadAttention
from ..layers.normalization import check_eps
from .base import Model

__all__ = ["GPT"]

_GELUS = ("none", "tanh")

# The limits of a GPT's settings, in one place: the constructor and load apply them (_check_spec).
# Sizes are below validate.MAX_SIZE (2**40); n_layer at most 10000 (load loops over the layers
# before it allocates anything, so a crafted count must stay small); eps: LayerNorm's EPS_RANGE.
MAX_N_LAYER = 10_000
DROPOUT_RANGE = (0.0, 1.0)  # 0 <= dropout < 1


# --- pure inference helpers (generation): they read the layers' parameters and touch nothing else


def _layernorm(x: np.ndarray, ln: LayerNorm) -> np.ndarray:
    """LayerNorm's forward formula on ``x`` (..., C), without caching or zeroing anything."""
    centred = x - x.mean(axis=-1, keepdims=True)
    var = np.einsum("...d,...d->...", centred, centred)[..., None] / x.shape[-1]
    centred *= 1.0 / np.sqrt(var + x.dtype.type(ln.eps))
    centred *= ln.params["gamma"]
    centred += ln.params["beta"]
    return centred


def _affine(x: np.ndarray, layer: Affine) -> np.ndarray:
    y = x @ layer.params["W"]
    y += layer.params["b"]
    return y


class _MLP(Chain):
    """The block's feed-forward part: ``c_proj(gelu(c_fc(x)))``, x (N, T, C) -> (N, T, 4C) ->
    (N, T, C); a Chain with nanoGPT's names. Backward in reverse: ``dx = c_fc'(gelu'(c_proj'(dy)))``."""

    def __init__(self, c_fc: Affine, gelu: GELU, c_proj: Affine) -> None:
        super().__init__({"c_fc": c_fc, "gelu": gelu, "c_proj": c_proj})

    def step(self, x: np.ndarray) -> np.ndarray:
        """Forward for inference, caching nothing."""
        c = self._children
        return _affine(F.gelu(_affine(x, c["c_fc"]), c["gelu"].approximate), c["c_proj"])


class _Block(Layer):
    """One pre-norm Transformer block (nanoGPT's ``Block``), on the residual stream x (N, T, C):

        ``x1 = x + drop(attn(ln_1(x)))``;  ``y = x1 + drop(mlp(ln_2(x1)))``

    Backward, with ``dy = dL/dy``: each residual connection passes its gradient straight through
    AND through its branch, so the two add:
        ``dx1 = dy + ln_2'(mlp'(drop'(dy)))``;  ``dx = dx1 + ln_1'(attn'(drop'(dx1)))``.
    Dropout children exist only when p > 0 (p = 0 is then exactly the identity, no copy)."""

    def __init__(self, ln_1, attn, ln_2, mlp, dropout: float, rng) -> None:
        super().__init__()
        self.add_child("ln_1", ln_1)
        self.add_child("attn", attn)
        if dropout > 0:
            self.add_child("drop_attn", Dropout(dropout, rng=rng))  # nanoGPT's attn.resid_dropout
        self.add_child("ln_2", ln_2)
        self.add_child("mlp", mlp)
        if dropout > 0:
            self.add_child("drop_mlp", Dropout(dropout, rng=rng))  # nanoGPT's mlp.dropout

    def _call(self, name: str, method: str, x):
        layer = self._children.get(name)
        return x if layer is None else self.call_child(name, getattr(layer, method), x)

    def forward(self, x):                               # x (N, T, C)
        a = self._call("ln_1", "forward", x)            # (N, T, C)
        a = self._call("attn", "forward", a)            # (N, T, C), a new array
        a = self._call("drop_attn", "forward", a)
        a += x                                          # x1 = x + attn(ln_1(x)), in the new array
        m = self._call("ln_2", "forward", a)
        m = self._call("mlp", "forward", m)             # (N, T, C): via (N, T, 4C)
        m = self._call("drop_mlp", "forward", m)
        m += a                                          # y = x1 + mlp(ln_2(x1))
        return m

    def backward(self, dout):                           # dout (N, T, C) = dL/dy
        dm = self._call("drop_mlp", "backward", dout)
        dm = self._call("mlp", "backward", dm)
        dx1 = self._call("ln_2", "backward", dm)        # a new array
        dx1 += dout                                     # the skip path of y = x1 + ...
        da = self._call("drop_attn", "backward", dx1)
        da = self._call("attn", "backward", da)
        dx = self._call("ln_1", "backward", da)
        dx += dx1                                       # the skip path of x1 = x + ...
        return dx

    def step(self, x: np.ndarray, cache):
        """Inference forward of new positions ``x`` (N, T_new, C) after those in ``cache`` (the
        attention's keys and values, or None): ``(y, new cache)``. Caches and gradients of the
        layers are left alone."""
        c = self._children
        a, cache = c["attn"].forward_step(_layernorm(x, c["ln_1"]), cache)
        a += x
        m = c["mlp"].step(_layernorm(a, c["ln_2"]))
        m += a
        return m, cache


class GPT(Model):
    """nanoGPT's GPT: token and position embeddings, ``n_layer`` pre-norm Transformer blocks, a
    final LayerNorm and an output layer tied to the token embedding.

    Arguments: ``vocab_size`` V, ``block_size`` B (the longest context: B learned positions),
    ``n_layer``, ``n_head``, ``n_embd`` C (divisible by n_head). ``dropout`` p (see below).
    ``bias=False``: no biases in LayerNorm and Affine (nanoGPT's option). ``seed``: an int or a
    ``numpy.random.Generator``, for the initial weights and then for the dropout masks.
    ``dtype``: the parameters' (float32 to train, float64 for gradient checks). ``vocab``:
    optional characters of the ids (a string, a sequence of single characters or a CharVocab of
    V characters), saved with the model: :meth:`encode` / :meth:`decode` use it. ``gelu``:
    ``"none"`` (exact, nanoGPT's ``nn.GELU()``) or ``"tanh"`` (GPT-2's ``gelu_new``, for
    Hugging Face checkpoints). ``eps``: LayerNorm's (GPT-2's ``layer_norm_epsilon``).
    ``init``: ``"nanogpt"`` or ``"zeros"`` (to load weights into; :meth:`from_spec` uses it).

    Children (paths of ``params``): ``wte.W`` (V, C), ``wpe.W`` (B, C), ``h.<i>.ln_1.gamma/beta``,
    ``h.<i>.attn.W_qkv`` (C, 3C) / ``b_qkv`` / ``W_o`` (C, C) / ``b_o``, ``h.<i>.ln_2.*``,
    ``h.<i>.mlp.c_fc.W`` (C, 4C) / ``b``, ``h.<i>.mlp.c_proj.W`` (4C, C) / ``b``,
    ``ln_f.gamma/beta``. There is no lm_head entry: the output layer uses ``wte.W`` and adds its
    gradient into ``wte``'s (one owner), so ``params`` lists the array once.

    Initialisation (nanoGPT's): every weight matrix and embedding N(0, 0.02); the two residual
    projections of each block (``attn.W_o``, ``mlp.c_proj.W``) N(0, 0.02 / sqrt(2 n_layer));
    biases 0; LayerNorm gains 1.

    Dropout (p > 0, training mode only; masks drawn from the model's generator ``rng``, which
    checkpoints save): after the embeddings' sum, on the attention's output projection
    (nanoGPT's ``resid_dropout``) and on the MLP's output (nanoGPT's ``mlp.dropout``). NOT on
    the attention weights (nanoGPT's ``attn_dropout``): MultiHeadAttention has no dropout inside,
    so with p > 0 this model regularises a little less than nanoGPT. p = 0 adds no layer at all:
    exactly nanoGPT's deterministic model.

    ``bias=False``: the LayerNorm and Affine layers keep their bias arrays, fixed at zero, and the
    model does not list them in ``params``/``grads`` (they are never trained, saved or decayed);
    adding an exact zero changes nothing, so this is nanoGPT's bias-free model.

    Settings refused at construction, by the same check ``load`` applies to a saved GPT (so a
    model that trains can be saved and loaded): sizes that are not positive integers below
    2**40, ``n_layer`` above ``MAX_N_LAYER`` (10000), ``n_embd`` not divisible by ``n_head``,
    ``dropout`` outside [0, 1), ``eps`` outside (0, 1) (LayerNorm's ``EPS_RANGE``), a dtype other
    than float16/32/64, a vocabulary that is not ``vocab_size`` distinct single characters of
    Unicode text (no lone surrogate).

    Model protocol (``handgrad.fit``, ``save``/``load``): ``predict(idx)`` -> logits (N, T, V);
    ``loss(idx, targets)`` mean cross-entropy over targets (N, T), positions with target -100
    ignored; ``backward()``; ``scores_and_targets``; ``loss_layer``; ``mode``; ``params``,
    ``grads``, ``buffers``; ``spec`` / ``param_shapes`` / ``from_spec``.
    """

    task = "language model"

    can_skip_input_grad = True

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
                 dropout: float = 0.0, bias: bool = True, seed=None, dtype=np.float32, vocab=None,
                 gelu: str = "none", eps: float = 1e-5, init: str = "nanogpt") -> None:
        super().__init__()
        if init not in ("nanogpt", "zeros"):
            raise ValueError(f"GPT: init must be 'nanogpt' or 'zeros', got {init!r}")
        dtype = validate.float_dtype(dtype, who="GPT")
        if vocab is not None:
            vocab = vocab if isinstance(vocab, CharVocab) else CharVocab(vocab)
            if any(not isinstance(ch, str) or len(ch) != 1 for ch in vocab.chars):
                raise ValueError(f"GPT: vocab must list single characters, got {vocab.chars[:5]!r:.60}")
        # Everything else is checked by the very function load checks a saved GPT with, so a
        # model that can be built (and trained) can be saved and loaded back.
        spec = {"vocab_size": vocab_size, "block_size": block_size, "n_layer": n_layer, "n_head": n_head,
                "n_embd": n_embd, "dropout": dropout, "bias": bias, "gelu": gelu, "eps": eps,
                "vocab": None if vocab is None else "".join(vocab.chars)}
        V, B, L, H, C = self._check_spec(spec)
        dropout, eps = float(dropout), float(eps)
        self.vocab_size, self.block_size, self.n_layer, self.n_head, self.n_embd = V, B, L, H, C
        self.dropout, self.bias, self.gelu, self.eps = dropout, bool(bias), str(gelu), eps
        self.vocab = vocab
        self.rng = initializers.as_generator(seed)

        def normal(shape, std):
            if init == "zeros":
                return np.zeros(shape, dtype)
            return (self.rng.standard_normal(shape) * std).astype(dtype)

        zeros = lambda n: np.zeros(n, dtype)  # noqa: E731
        proj_std = 0.02 / math.sqrt(2 * L)
        self.add_child("wte", Embedding(normal((V, C), 0.02)))
        self.add_child("wpe", Embedding(normal((B, C), 0.02)))
        if dropout > 0:
            self.add_child("drop", Dropout(dropout, rng=self.rng))  # nanoGPT's transformer.drop
        blocks = []
        for _ in range(L):
            attn = MultiHeadAttention(normal((C, 3 * C), 0.02), zeros(3 * C), normal((C, C), proj_std), zeros(C),
                                      n_heads=H, causal=True)
            mlp = _MLP(Affine(normal((C, 4 * C), 0.02), zeros(4 * C)), GELU(gelu),
                       Affine(normal((4 * C, C), proj_std), zeros(C)))
            blocks.append(_Block(LayerNorm(C, eps, dtype), attn, LayerNorm(C, eps, dtype), mlp, dropout, self.rng))
        self.add_child("h", Chain(blocks))
        self.add_child("ln_f", LayerNorm(C, eps, dtype))
        # bias=False: the bias arrays stay zero and are not the model's parameters (see above).
        everything = super().params
        self._fixed_zero = frozenset(k for k in everything if k.endswith((".beta", ".b", ".b_qkv", ".b_o"))) \
            if not self.bias else frozenset()
        self._positions = np.arange(B)[None, :]  # (1, B): the position ids wpe looks up
        self._xf = None
        self._nt = None  # (N, T) of the last predict

    # --- parameters ----------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, np.ndarray]:
        flat = super().params
        return {k: v for k, v in flat.items() if k not in self._fixed_zero} if self._fixed_zero else flat

    @property
    def grads(self) -> dict[str, np.ndarray]:
        flat = super().grads
        return {k: v for k, v in flat.items() if k not in self._fixed_zero} if self._fixed_zero else flat

    @property
    def num_params(self) -> int:
        """Parameters, each array once (the tied wte counted once, as nanoGPT's count with
        position embeddings included)."""
        return int(sum(value.size for value in self.params.values()))

    @property
    def dtype(self) -> np.dtype:
        return self._children["wte"].W.dtype

    @property
    def blocks(self) -> list[_Block]:
        return self._children["h"].layers

    # --- description -----------------------------------------------------------------------------

    def spec(self) -> dict:
        return {"model": "GPT", "vocab_size": self.vocab_size, "block_size": self.block_size,
                "n_layer": self.n_layer, "n_head": self.n_head, "n_embd": self.n_embd, "dropout": self.dropout,
                "bias": self.bias, "gelu": self.gelu, "eps": self.eps,
                "vocab": None if self.vocab is None else "".join(self.vocab.chars)}

    @classmethod
    def _check_spec(cls, spec: dict):
        """``(V, B, L, H, C)`` of a GPT's description, every setting checked against the limits
        at the top of this module; ValueError naming the first one that is wrong. The one check
        both the constructor and ``load`` (before allocating anything) apply."""
        V, B, L, H, C = (validate.positive_int(spec.get(key), key, who="GPT",
                                               limit=MAX_N_LAYER + 1 if key == "n_layer" else validate.MAX_SIZE)
                         for key in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"))
        if C % H:
            raise ValueError(f"GPT: n_embd = {C} must be divisible by n_head = {H} (each head takes n_embd / n_head)")
        validate.real(spec.get("dropout", 0.0), "dropout", who="GPT", low=DROPOUT_RANGE[0], high=DROPOUT_RANGE[1],
                      high_open=True)
        check_eps(spec.get("eps", 1e-5), who="GPT")
        validate.boolean(spec.get("bias", True), "bias", who="GPT")
        validate.choice(spec.get("gelu", "none"), "gelu", _GELUS, who="GPT",
                        meaning="'none' (exact, nanoGPT) or 'tanh' (GPT-2's gelu_new)")
        vocab = spec.get("vocab")
        if vocab is not None:
            if not isinstance(vocab, str):
                raise ValueError(f"GPT: vocab must be null or a string of vocab_size = {V} distinct characters, "
                                 f"got a {type(vocab).__name__}")
            if len(vocab) != V:
                raise ValueError(f"GPT: vocab must list vocab_size = {V} single characters, got {len(vocab)} entries")
            if len(set(vocab)) != V:
                raise ValueError(f"GPT: vocab lists a character twice ({V} entries, {len(set(vocab))} distinct)")
            validate.unicode_text(vocab, "vocab", who="GPT")
        return V, B, L, H, C

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        V, B, L, H, C = cls._check_spec(spec)
        bias = spec.get("bias", True)
        shapes = {"wte.W": (V, C), "wpe.W": (B, C)}
        for i in range(L):
            p = f"h.{i}."
            shapes.update({p + "ln_1.gamma": (C,), p + "ln_1.beta": (C,), p + "attn.W_qkv": (C, 3 * C),
                           p + "attn.b_qkv": (3 * C,), p + "attn.W_o": (C, C), p + "attn.b_o": (C,),
                           p + "ln_2.gamma": (C,), p + "ln_2.beta": (C,), p + "mlp.c_fc.W": (C, 4 * C),
                           p + "mlp.c_fc.b": (4 * C,), p + "mlp.c_proj.W": (4 * C, C), p + "mlp.c_proj.b": (C,)})
        shapes.update({"ln_f.gamma": (C,), "ln_f.beta": (C,)})
        if not bias:
            shapes = {k: v for k, v in shapes.items() if not k.endswith((".beta", ".b", ".b_qkv", ".b_o"))}
        return shapes

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "GPT":
        cls._check_spec(spec)
        return cls(spec["vocab_size"], spec["block_size"], spec["n_layer"], spec["n_head"], spec["n_embd"],
                   dropout=spec.get("dropout", 0.0), bias=spec.get("bias", True), dtype=dtype,
                   vocab=spec.get("vocab"), gelu=spec.get("gelu", "none"), eps=spec.get("eps", 1e-5), init="zeros")

    def describe(self) -> str:
        return (f"GPT: {self.n_layer} layers, {self.n_head} heads, {self.n_embd} wide, context {self.block_size}, "
                f"vocabulary {self.vocab_size}, {self.num_params:,} parameters")

    def __repr__(self) -> str:
        return (f"GPT(vocab_size={self.vocab_size}, block_size={self.block_size}, n_layer={self.n_layer}, "
                f"n_head={self.n_head}, n_embd={self.n_embd}, dropout={self.dropout}, bias={self.bias})")

    # --- text ---------------------------------------------------------------------------------------

    def _require_vocab(self):
        if self.vocab is None:
            raise ValueError("GPT: this model has no vocabulary (create it with vocab=...) to encode or decode text")
        return self.vocab

    def encode(self, text: str) -> np.ndarray:
        """Ids (T,) int64 of ``text``, with the model's character vocabulary."""
        return self._require_vocab().encode(text)

    def decode(self, ids) -> str:
        """The text of ids (any shape, read in order)."""
        return self._require_vocab().decode(ids)

    # --- modes ----------------------------------------------------------------------------------------

    # --- forward --------------------------------------------------------------------------------------

    def _check_idx(self, idx, what: str = "token ids") -> np.ndarray:
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"GPT: {what} must be integers in [0, {self.vocab_size}), got dtype {idx.dtype}")
        if idx.ndim != 2 or 0 in idx.shape:
            hint = " (one sequence: idx[None])" if idx.ndim == 1 else ""
            raise ValueError(f"GPT: expected {what} of shape (N, T) with N, T >= 1, got {idx.shape}{hint}")
        if idx.min() < 0 or idx.max() >= self.vocab_size:
            raise ValueError(f"GPT: {what} must lie in [0, {self.vocab_size}), got values from {idx.min()} "
                             f"to {idx.max()}")
        return idx

    def _check_length(self, t: int) -> None:
        if t > self.block_size:
            raise ValueError(f"GPT: sequence length T = {t} exceeds block_size = {self.block_size} (the model has "
                             f"{self.block_size} learned positions); crop the context to its last "
                             f"{self.block_size} tokens")

    def predict(self, idx) -> np.ndarray:
        """Logits (N, T, V) of the next token after each position of ``idx`` (N, T) ints,
        T <= block_size. Keeps what :meth:`backward` needs (dropout active in training mode)."""
        idx = self._check_idx(idx)
        n, t = idx.shape
        self._check_length(t)
        c = self._children
        x = self.call_child("wte", c["wte"].forward, idx)                        # (N, T, C)
        x += self.call_child("wpe", c["wpe"].forward, self._positions[:, :t])     # + (1, T, C)
        if "drop" in c:
            x = self.call_child("drop", c["drop"].forward, x)
        x = self.call_child("h", c["h"].forward, x)                              # (N, T, C)
        x = self.call_child("ln_f", c["ln_f"].forward, x)                        # (N, T, C)
        self._xf, self._nt = x.reshape(n * t, self.n_embd), (n, t)
        return (self._xf @ c["wte"].W.T).reshape(n, t, self.vocab_size)        # lm_head: x wte^T

    def backward_from_logits(self, dlogits) -> None:
        """Backpropagate ``dL/dlogits`` (N, T, V) of the last :meth:`predict` into every
        gradient (zeroed first, so they hold this one backward's)."""
        self.zero_grad()
        return self.backward_from_scores(dlogits)

    def backward_from_scores(self, dlogits, input_grad: bool = False) -> None:
        """Add the gradients of ``dL/dlogits`` (N, T, V) of the last :meth:`predict` into every
        gradient; returns None (token ids have no gradient)."""
        self._require_forward(self._xf)
        c = self._children
        (n, t), C = self._nt, self.n_embd
        dlogits = self._check_dout(dlogits, (n, t, self.vocab_size))
        dlogits = dlogits.reshape(n * t, self.vocab_size).astype(self.dtype, copy=False)
        wte = c["wte"]
        # lm_head, logits = x_f wte^T: its share of the tied weight's gradient, and dx_f.
        wte.grads["W"] += dlogits.T @ self._xf                                   # (V, C)
        dx = (dlogits @ wte.W).reshape(n, t, C)                                  # (N, T, C)
        dx = self.call_child("ln_f", c["ln_f"].backward, dx)
        dx = self.call_child("h", c["h"].backward, dx)
        if "drop" in c:
            dx = self.call_child("drop", c["drop"].backward, dx)
        # Every sequence used the same positions: their gradients add over the batch.
        self.call_child("wpe", c["wpe"].backward, dx.sum(axis=0, keepdims=True))  # (1, T, C)
        self.call_child("wte", wte.backward, dx)                                  # the embedding's share
        return None

    # --- generation -----------------------------------------------------------------------------------

    def _step_logits(self, idx: np.ndarray, caches, start: int):
        """Inference: logits (N, V) after the last of ``idx`` (N, T_new), which sit at positions
        ``start ..`` after the cached ones; returns ``(logits, new caches)``."""
        c = self._children
        x = c["wte"].W[idx] + c["wpe"].W[start:start + idx.shape[1]]            # (N, T_new, C)
        new_caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block.step(x, None if caches is None else caches[i])
            new_caches.append(cache)
        last = _layernorm(x[:, -1], c["ln_f"])                                   # (N, C)
        return last @ c["wte"].W.T, new_caches                                   # (N, V)

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None, seed=None,
                 use_cache: bool = True, return_logits: bool = False):
        """Continue each sequence of ``idx`` (N, T) by ``max_new_tokens`` sampled tokens:
        ids (N, T + max_new_tokens) int64 (and, with ``return_logits``, the logits (N,
        max_new_tokens, V) each new token was drawn from, before temperature and top-k).

        As nanoGPT's ``generate``: the context is cropped to its last ``block_size`` tokens;
        the last position's logits are divided by ``temperature``, all but the ``top_k`` largest
        (ties with the k-th kept) set to -inf, turned into probabilities by a softmax, and one
        token drawn from them. ``temperature=0`` means greedy decoding (the argmax; nanoGPT
        would divide by zero). Any temperature > 0, however small (1e-320 included), is that
        softmax computed without overflow (see :func:`_sample`): below about (the gap between the
        two largest logits) / 745 it is exactly greedy, except that tokens whose logits tie for the
        largest are drawn among. A negative, NaN or infinite temperature is refused. Logits that
        are not finite (a model whose weights are not, or overflow) raise ValueError rather than
        sample a wrong token. ``seed``: an int or a Generator for the draws (None: fresh
        entropy); the model's own generator (dropout's) is not touched. Runs in evaluation mode:
        no dropout.

        Key/value cache (``use_cache=True``): each block keeps the keys and values of the
        positions seen so far, so one new token costs O(T), not a whole forward. Positions are
        learned and absolute, so once the context outgrows ``block_size`` the cropped window's
        tokens sit at new positions and every cached key is stale: the cache is then rebuilt
        from the window at each step (a forward over block_size tokens, what nanoGPT does at
        every step). ``use_cache=False`` runs :meth:`predict` on the cropped window every step
        (nanoGPT's way; it overwrites what a pending backward would need, as any forward does).
        """
        idx = self._check_idx(idx, "the prompt")
        max_new_tokens = validate.integer(max_new_tokens, "max_new_tokens", who="GPT.generate", minimum=0)
        temperature = validate.real(temperature, "temperature", who="GPT.generate", low=0.0,
                                    what="a finite number >= 0 (0: greedy)")
        if top_k is not None:
            top_k = validate.integer(top_k, "top_k", who="GPT.generate", minimum=1, what="None or an integer >= 1")
        rng = initializers.as_generator(seed)
        n, t0 = idx.shape
        B = self.block_size
        out = np.empty((n, t0 + max_new_tokens), dtype=np.int64)
        out[:, :t0] = idx
        all_logits = np.empty((n, max_new_tokens, self.vocab_size), self.dtype) if return_logits else None
        caches = None
        with self.mode(False):
            for step in range(max_new_tokens):
                length = t0 + step
                start = max(0, length - B)
                if not use_cache:
                    logits = self.predict(out[:, start:length])[:, -1]
                elif caches is None or length > B:  # the start, or a window whose positions moved
                    logits, caches = self._step_logits(out[:, start:length], None, 0)
                else:                               # the cache holds positions 0 .. length - 2
                    logits, caches = self._step_logits(out[:, length - 1:length], caches, length - 1)
                if return_logits:
                    all_logits[:, step] = logits
                out[:, length] = _sample(logits, temperature, top_k, rng)
        return (out, all_logits) if return_logits else out


def _sample(logits: np.ndarray, temperature: float, top_k, rng: np.random.Generator) -> np.ndarray:
    """One token per row of ``logits`` (N, V), as nanoGPT: softmax(logits / temperature) over
    the top_k largest, drawn by inverting the cumulative sum with one uniform number per row
    (float64). temperature = 0: the argmax.

    The softmax is computed as ``exp((logits - max) / temperature)``: the difference is at most
    about 7e38 (two float32 extremes) and <= 0, so dividing by any temperature > 0, even a
    subnormal one, gives a finite number or -inf, never inf - inf = NaN; its exp lies in [0, 1]
    and is 1 at the maximum, so the cumulative sum is finite and >= 1. Non-finite logits are
    refused (ValueError) before any of this: NaN would otherwise come out as token 0."""
    if not np.isfinite(logits).all():
        rows = np.flatnonzero(~np.isfinite(logits).all(axis=-1))
        raise ValueError(f"GPT.generate: the model's logits are not finite (NaN or infinity in row(s) "
                         f"{rows[:5].tolist()} of {len(logits)}): its weights are not finite or overflow "
                         f"{logits.dtype}; no token can be drawn from them")
    if temperature == 0:
        return logits.argmax(axis=-1)
    z = logits.astype(np.float64)
    V = z.shape[-1]
    if top_k is not None and top_k < V:
        kth = np.partition(z, V - top_k, axis=-1)[:, V - top_k, None]  # the k-th largest of each row
        z[z < kth] = -np.inf
    z -= z.max(axis=-1, keepdims=True)  # <= 0, and 0 at each row's maximum
    with np.errstate(over="ignore"):    # a tiny temperature: -inf, whose exp is the 0 it means
        z /= temperature                # finite or -inf, never NaN (see above)
    cdf = np.cumsum(np.exp(z), axis=-1)
    total = cdf[:, -1:]
    u = np.minimum(rng.random((len(z), 1)) * total, np.nextafter(total, 0))  # in [0, total)
    return (cdf <= u).sum(axis=-1)  # the first index whose cumulative sum exceeds u
