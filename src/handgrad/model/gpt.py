"""A GPT whose every gradient is written out by hand: nanoGPT's model (Radford et al. 2019's
GPT-2 architecture) in NumPy, read as llm.c's ``gpt2_backward``.

Sizes (:class:`GPTConfig`): N sequences, T <= B = block_size positions, V = vocab_size,
C = n_embd, H = n_head heads of hd = C / H, L = n_layer blocks. The forward, for ids ``idx`` (N, T):

    x = wte[idx] + wpe[0 .. T-1]                     token + position embeddings       (N, T, C)
    for each block:  x1 = x  + attn(ln_1(x))         causal self-attention, pre-norm   (N, T, C)
                     x  = x1 + mlp(ln_2(x1))         mlp = c_proj(gelu(c_fc(.)))       via (N, T, 4C)
    logits = ln_f(x) wte^T                           output layer tied to wte          (N, T, V)
             (tied_head=False: ln_f(x) W_head, its own matrix lm_head.W (C, V), makemore.py's)

With dropout p > 0, dropout also acts after the embeddings' sum (``drop``) and on the outputs of
attn and mlp (``drop_attn``, ``drop_mlp``); with p = 0 those layers do not exist.

The backward, op by op in the order it runs (llm.c's ``gpt2_backward``), once every gradient is
zeroed (``Model.backward``). Each op ADDS into its parameters' gradients and hands on the gradient
of its input; ``dy`` is the gradient arriving at a block, ``dx1`` at its middle ``x1``:

    loss                SoftmaxWithLoss.backward            layers/losses.py
        dlogits = (softmax(logits) - onehot(targets)) / M     (N, T, V); M counted positions
    lm_head (tied wte)  GPT.backward_from_scores            model/gpt.py
        dwte += dlogits^T x_f (V, C);  dx = dlogits wte (N, T, C)
        (untied: Affine.backward, layers/dense.py: dW_head = x_f^T dlogits (C, V);  dx = dlogits W_head^T)
    ln_f                LayerNorm.backward                  layers/normalization.py
        dx (N, T, C) -> dy of the last block (N, T, C);  dgamma, dbeta (C,)
    for each block, L-1 .. 0 (Chain.backward, layers/composite.py; _Block.backward, model/gpt.py):
      [drop_mlp]        Dropout.backward                    layers/regularization.py    (N, T, C)
      mlp.c_proj        Affine.backward                     layers/dense.py
          dy (N, T, C) -> dh (N, T, 4C);  dW (4C, C), db (C,)
      mlp.gelu          GELU.backward                       layers/activations.py
          dh (N, T, 4C) -> dh_pre (N, T, 4C)
      mlp.c_fc          Affine.backward                     layers/dense.py
          dh_pre (N, T, 4C) -> dln_2 (N, T, C);  dW (C, 4C), db (4C,)
      ln_2              LayerNorm.backward                  layers/normalization.py
          dln_2 (N, T, C) -> dx1 (N, T, C);  dgamma, dbeta (C,)
      residual          _Block.backward                     model/gpt.py
          dx1 += dy (N, T, C): x1 also reaches the block's output directly
      [drop_attn]       Dropout.backward                    layers/regularization.py    (N, T, C)
      attn c_proj       MultiHeadAttention.backward         layers/attention.py
          dx1 (N, T, C) -> dO (N, H, T, hd);  dW_o (C, C), db_o (C,)
      attention         MultiHeadAttention.backward, _softmax_backward_     layers/attention.py
          dv = A^T dO;  dA = dO v^T (N, H, T, T) -> dS (in place);  dq = dS k, dk = dS^T q:
          dq, dk, dv (N, H, T, hd), written into dqkv (N, T, 3C)
      attn c_attn       MultiHeadAttention.backward         layers/attention.py
          dqkv (N, T, 3C) -> dln_1 (N, T, C);  dW_qkv (C, 3C), db_qkv (3C,)
      ln_1              LayerNorm.backward                  layers/normalization.py
          dln_1 (N, T, C) -> dx (N, T, C);  then dx += dx1, the residual x1 = x + ...
    [drop]              Dropout.backward                    layers/regularization.py    (N, T, C)
    wpe                 Embedding.backward                  layers/embedding.py
        dx summed over the batch (1, T, C) -> dwpe rows 0 .. T-1 (B, C)
    wte                 Embedding.backward                  layers/embedding.py
        dx (N, T, C) -> dwte rows idx (V, C): the tied weight's second share

Generation runs the same layers' pure ``apply`` (LayerNorm, Affine, GELU) and the attention's
``forward_step`` with a key/value cache: each forward formula is written once, in its layer.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields, replace

import numpy as np

from .. import init as initializers
from .. import validate
from ..data.text import CharVocab
from ..layers import GELU, Affine, Chain, Dropout, Embedding, Layer, LayerNorm, MultiHeadAttention
from ..layers.normalization import check_eps
from .base import Model

__all__ = ["GPT", "GPTConfig"]

_GELUS = ("none", "tanh")
_INITS = ("nanogpt", "pytorch", "zeros")

# The limits of a GPT's settings, in one place: GPTConfig applies them, for the constructor and
# for load. Sizes are below validate.MAX_SIZE (2**40); n_layer at most 10000 (load loops over the
# layers before it allocates anything, so a crafted count must stay small); eps: LayerNorm's EPS_RANGE.
MAX_N_LAYER = 10_000
DROPOUT_RANGE = (0.0, 1.0)  # 0 <= dropout < 1


@dataclass(frozen=True)
class GPTConfig:
    """A GPT's architecture: nanoGPT's ``GPTConfig`` (its names), plus ``gelu`` (``"none"``:
    exact, nanoGPT's ``nn.GELU()``; ``"tanh"``: GPT-2's ``gelu_new``), ``eps`` (LayerNorm's,
    GPT-2's ``layer_norm_epsilon``) and ``vocab`` (None, or the V characters of the ids as one
    string), ``tied_head`` (True: the output layer is the token embedding, ``logits = x wte^T``,
    nanoGPT's and GPT-2's; False: its own matrix, makemore.py's ``lm_head``). Everything :class:`GPT` builds, saves (``spec``), counts (``param_shapes``) and
    describes follows from it.

    Checked once, when created, against the limits of this module: sizes positive integers below
    2**40, ``n_layer`` <= ``MAX_N_LAYER`` (10000), ``n_embd`` divisible by ``n_head``, ``dropout``
    in [0, 1), ``eps`` in (0, 1) (LayerNorm's ``EPS_RANGE``), ``bias`` a bool, ``vocab``
    ``vocab_size`` distinct characters of Unicode text. ValueError names the first wrong setting,
    with the words load uses for a saved GPT (it checks the file's description the same way).
    Settings are stored normalised (ints, floats, a bool); frozen: ``dataclasses.replace`` gives
    a changed copy, checked again.
    """

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    gelu: str = "none"
    eps: float = 1e-5
    tied_head: bool = True
    vocab: str | None = None

    def __post_init__(self) -> None:
        settings = {key: validate.positive_int(getattr(self, key), key, who="GPT",
                                               limit=MAX_N_LAYER + 1 if key == "n_layer" else validate.MAX_SIZE)
                    for key in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")}
        V, H, C = settings["vocab_size"], settings["n_head"], settings["n_embd"]
        if C % H:
            raise ValueError(f"GPT: n_embd = {C} must be divisible by n_head = {H} (each head takes n_embd / n_head)")
        settings["dropout"] = validate.real(self.dropout, "dropout", who="GPT", low=DROPOUT_RANGE[0],
                                            high=DROPOUT_RANGE[1], high_open=True)
        settings["eps"] = check_eps(self.eps, who="GPT")
        settings["bias"] = validate.boolean(self.bias, "bias", who="GPT")
        settings["tied_head"] = validate.boolean(self.tied_head, "tied_head", who="GPT")
        settings["gelu"] = validate.choice(self.gelu, "gelu", _GELUS, who="GPT",
                                           meaning="'none' (exact, nanoGPT) or 'tanh' (GPT-2's gelu_new)")
        vocab = self.vocab
        if vocab is not None:
            if not isinstance(vocab, str):
                raise ValueError(f"GPT: vocab must be null or a string of vocab_size = {V} distinct characters, "
                                 f"got a {type(vocab).__name__}")
            if len(vocab) != V:
                raise ValueError(f"GPT: vocab must list vocab_size = {V} single characters, got {len(vocab)} entries")
            if len(set(vocab)) != V:
                raise ValueError(f"GPT: vocab lists a character twice ({V} entries, {len(set(vocab))} distinct)")
            validate.unicode_text(vocab, "vocab", who="GPT")
        for key, value in settings.items():
            object.__setattr__(self, key, value)  # frozen: the checked, normalised values

    @classmethod
    def from_spec(cls, spec: dict) -> "GPTConfig":
        """The configuration a GPT's ``spec()`` describes (as read from a model file: a missing
        size is None, and refused; other keys, such as ``"model"``, are not settings)."""
        return cls(**{f.name: spec.get(f.name, None if f.default is MISSING else f.default) for f in fields(cls)})

    def param_shapes(self) -> dict[str, tuple]:
        """The shape of every parameter of a GPT of this configuration, by path, in ``params``'
        order (llm.c's ``fill_in_parameter_sizes``); no biases when ``bias=False``. Computed from
        the settings alone: load compares them with a file's tensors before allocating anything."""
        V, B, C = self.vocab_size, self.block_size, self.n_embd
        block = {"ln_1.gamma": (C,), "ln_1.beta": (C,), "attn.W_qkv": (C, 3 * C), "attn.b_qkv": (3 * C,),
                 "attn.W_o": (C, C), "attn.b_o": (C,), "ln_2.gamma": (C,), "ln_2.beta": (C,),
                 "mlp.c_fc.W": (C, 4 * C), "mlp.c_fc.b": (4 * C,), "mlp.c_proj.W": (4 * C, C), "mlp.c_proj.b": (C,)}
        shapes = {"wte.W": (V, C), "wpe.W": (B, C)}
        for i in range(self.n_layer):
            shapes.update({f"h.{i}.{key}": shape for key, shape in block.items()})
        shapes.update({"ln_f.gamma": (C,), "ln_f.beta": (C,)})
        if not self.tied_head:
            shapes["lm_head.W"] = (C, V)
        if not self.bias:
            shapes = {k: v for k, v in shapes.items() if not _is_bias(k)}
        return shapes


def _is_bias(path: str) -> bool:
    return path.endswith((".beta", ".b", ".b_qkv", ".b_o"))


def _setting(name: str) -> property:
    return property(lambda self: getattr(self._config, name), doc=f"``config.{name}``")


class _MLP(Chain):
    """The block's feed-forward part, nanoGPT's ``MLP``: ``c_proj(gelu(c_fc(x)))``, a Chain
    with nanoGPT's names. Backward in reverse: ``dx = c_fc'(gelu'(c_proj'(dy)))``."""

    def __init__(self, c_fc: Affine, gelu: GELU, c_proj: Affine) -> None:
        super().__init__({"c_fc": c_fc, "gelu": gelu, "c_proj": c_proj})

    def forward(self, x):                   # x (N, T, C)
        h = self.c_fc.forward(x)            # (N, T, 4C)
        h = self.gelu.forward(h)            # (N, T, 4C)
        return self.c_proj.forward(h)       # (N, T, C)

    def backward(self, dy):                 # dy (N, T, C)
        dh = self.c_proj.backward(dy)       # (N, T, 4C)
        dh = self.gelu.backward(dh)         # (N, T, 4C)
        return self.c_fc.backward(dh)       # (N, T, C)

    def apply(self, x):
        """Forward for inference, caching nothing."""
        return self.c_proj.apply(self.gelu.apply(self.c_fc.apply(x)))


class _Block(Layer):
    """One pre-norm Transformer block (nanoGPT's ``Block``), on the residual stream x (N, T, C):

        ``x1 = x + drop(attn(ln_1(x)))``;  ``y = x1 + drop(mlp(ln_2(x1)))``

    Backward, with ``dy = dL/dy``: each residual connection passes its gradient straight through
    AND through its branch, so the two add:
        ``dx1 = dy + ln_2'(mlp'(drop'(dy)))``;  ``dx = dx1 + ln_1'(attn'(drop'(dx1)))``.
    Dropout children exist only when p > 0 (p = 0 is then exactly the identity, no copy)."""

    def __init__(self, ln_1, attn, ln_2, mlp, dropout: float, rng) -> None:
        super().__init__()
        self.dropout = dropout
        self.add_child("ln_1", ln_1)
        self.add_child("attn", attn)
        if dropout > 0:
            self.add_child("drop_attn", Dropout(dropout, rng=rng))  # nanoGPT's attn.resid_dropout
        self.add_child("ln_2", ln_2)
        self.add_child("mlp", mlp)
        if dropout > 0:
            self.add_child("drop_mlp", Dropout(dropout, rng=rng))  # nanoGPT's mlp.dropout

    def forward(self, x):                               # x (N, T, C)
        a = self.attn.forward(self.ln_1.forward(x))     # (N, T, C), a new array
        if self.dropout > 0:
            a = self.drop_attn.forward(a)
        a += x                                          # x1 = x + attn(ln_1(x)), in the new array
        m = self.mlp.forward(self.ln_2.forward(a))      # (N, T, C), via (N, T, 4C)
        if self.dropout > 0:
            m = self.drop_mlp.forward(m)
        m += a                                          # y = x1 + mlp(ln_2(x1))
        return m

    def backward(self, dy):                             # dy (N, T, C) = dL/dy
        dm = self.drop_mlp.backward(dy) if self.dropout > 0 else dy
        dx1 = self.ln_2.backward(self.mlp.backward(dm))  # mlp: c_proj, gelu, c_fc; then ln_2: a new array
        dx1 += dy                                       # residual: x1 reaches y = x1 + ... directly too
        da = self.drop_attn.backward(dx1) if self.dropout > 0 else dx1
        dx = self.ln_1.backward(self.attn.backward(da))  # attn: c_proj, attention, c_attn; then ln_1
        dx += dx1                                       # residual: x1 = x + ...
        return dx

    def forward_step(self, x: np.ndarray, cache):
        """Inference forward of new positions ``x`` (N, T_new, C) after those in ``cache`` (the
        attention's keys and values, or None): ``(y, new cache)``. Caches and gradients of the
        layers are left alone."""
        a, cache = self.attn.forward_step(self.ln_1.apply(x), cache)
        a += x
        m = self.mlp.apply(self.ln_2.apply(a))
        m += a
        return m, cache


class GPT(Model):
    """nanoGPT's GPT: token and position embeddings, ``n_layer`` pre-norm Transformer blocks, a
    final LayerNorm and an output layer tied to the token embedding (``tied_head=False``: its own
    matrix, as makemore.py's Transformer).

    Arguments: ``vocab_size`` V, ``block_size`` B (the longest context: B learned positions),
    ``n_layer``, ``n_head``, ``n_embd`` C (divisible by n_head). ``dropout`` p (see below).
    ``bias=False``: no biases in LayerNorm and Affine (nanoGPT's option). ``seed``: an int or a
    ``numpy.random.Generator``, for the initial weights and then for the dropout masks.
    ``dtype``: the parameters' (float32 to train, float64 for gradient checks). ``vocab``:
    optional characters of the ids (a string, a sequence of single characters or a CharVocab of
    V characters), saved with the model: :meth:`encode` / :meth:`decode` use it. ``gelu``:
    ``"none"`` (exact, nanoGPT's ``nn.GELU()``) or ``"tanh"`` (GPT-2's ``gelu_new``, for
    Hugging Face checkpoints). ``eps``: LayerNorm's (GPT-2's ``layer_norm_epsilon``).
    ``init``: ``"nanogpt"``, ``"pytorch"`` or ``"zeros"`` (to load weights into; :meth:`from_spec`
    uses it).
    The settings make a :class:`GPTConfig`, ``gpt.config``; :meth:`from_config` builds a GPT
    from one, and ``gpt.vocab_size``, ``gpt.n_layer``, ... read it.

    Children (paths of ``params``): ``wte.W`` (V, C), ``wpe.W`` (B, C), ``h.<i>.ln_1.gamma/beta``,
    ``h.<i>.attn.W_qkv`` (C, 3C) / ``b_qkv`` / ``W_o`` (C, C) / ``b_o``, ``h.<i>.ln_2.*``,
    ``h.<i>.mlp.c_fc.W`` (C, 4C) / ``b``, ``h.<i>.mlp.c_proj.W`` (4C, C) / ``b``,
    ``ln_f.gamma/beta``. There is no lm_head entry: the output layer uses ``wte.W`` and adds its
    gradient into ``wte``'s (one owner), so ``params`` lists the array once. With
    ``tied_head=False`` the output layer is an Affine ``lm_head`` whose ``lm_head.W`` (C, V) is
    the last parameter; its bias stays zero and is not a parameter (makemore's ``bias=False``).

    Initialisation (nanoGPT's): every weight matrix and embedding N(0, 0.02); the two residual
    projections of each block (``attn.W_o``, ``mlp.c_proj.W``) N(0, 0.02 / sqrt(2 n_layer));
    biases 0; LayerNorm gains 1. ``init="pytorch"``: what PyTorch's modules start from when
    nothing re-initialises them, as in makemore.py's Transformer: embeddings N(0, 1); every
    Affine's W and b uniform in +-1/sqrt(fan_in) (``nn.Linear``'s); LayerNorm gains 1, biases 0.

    Dropout (p > 0, training mode only; masks drawn from the model's generator ``rng``, which
    checkpoints save): after the embeddings' sum, on the attention's output projection
    (nanoGPT's ``resid_dropout``) and on the MLP's output (nanoGPT's ``mlp.dropout``). NOT on
    the attention weights (nanoGPT's ``attn_dropout``): MultiHeadAttention has no dropout inside,
    so with p > 0 this model regularises a little less than nanoGPT. p = 0 adds no layer at all:
    exactly nanoGPT's deterministic model.

    ``bias=False``: the LayerNorm and Affine layers keep their bias arrays, fixed at zero, and the
    model does not list them in ``params``/``grads`` (they are never trained, saved or decayed);
    adding an exact zero changes nothing, so this is nanoGPT's bias-free model.

    Settings are refused at construction by :class:`GPTConfig`'s checks, the ones ``load``
    applies to a saved GPT (so a model that trains can be saved and loaded); so is a dtype other
    than float16/32/64.

    Model protocol (``handgrad.fit``, ``save``/``load``): ``predict(idx)`` -> logits (N, T, V);
    ``loss(idx, targets)`` mean cross-entropy over targets (N, T), positions with target -100
    ignored; ``backward()``; ``scores_and_targets``; ``loss_layer``; ``mode``; ``params``,
    ``grads``, ``buffers``; ``spec`` / ``param_shapes`` / ``from_spec``.
    """

    task = "language model"

    can_skip_input_grad = True

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
                 dropout: float = 0.0, bias: bool = True, seed=None, dtype=np.float32, vocab=None,
                 gelu: str = "none", eps: float = 1e-5, tied_head: bool = True, init: str = "nanogpt") -> None:
        super().__init__()
        if init not in _INITS:
            raise ValueError(f"GPT: init must be one of {', '.join(map(repr, _INITS))}, got {init!r}")
        dtype = validate.float_dtype(dtype, who="GPT")
        if vocab is not None:
            vocab = vocab if isinstance(vocab, CharVocab) else CharVocab(vocab)
            if any(not isinstance(ch, str) or len(ch) != 1 for ch in vocab.chars):
                raise ValueError(f"GPT: vocab must list single characters, got {vocab.chars[:5]!r:.60}")
        # GPTConfig checks everything else, as load checks a saved GPT: a model that can be built
        # (and trained) can be saved and loaded back.
        self._config = config = GPTConfig(vocab_size, block_size, n_layer, n_head, n_embd, dropout=dropout,
                                          bias=bias, gelu=gelu, eps=eps, tied_head=tied_head,
                                          vocab=None if vocab is None else "".join(vocab.chars))
        self.vocab = vocab
        self.rng = initializers.as_generator(seed)
        V, B, L, H, C = config.vocab_size, config.block_size, config.n_layer, config.n_head, config.n_embd
        p = config.dropout

        def embedding(shape):
            if init == "zeros":
                return np.zeros(shape, dtype)
            return (self.rng.standard_normal(shape) * (1.0 if init == "pytorch" else 0.02)).astype(dtype)

        def affine(n_in, n_out, std=0.02):
            """An Affine (n_in, n_out): nanoGPT's N(0, std) and zero bias, or nn.Linear's uniform."""
            if init == "pytorch":
                return initializers.pytorch_linear(n_in, n_out, self.rng, dtype)
            W = np.zeros((n_in, n_out), dtype) if init == "zeros" else \
                (self.rng.standard_normal((n_in, n_out)) * std).astype(dtype)
            return W, np.zeros(n_out, dtype)

        proj_std = 0.02 / math.sqrt(2 * L)
        self.add_child("wte", Embedding(embedding((V, C))))
        self.add_child("wpe", Embedding(embedding((B, C))))
        if p > 0:
            self.add_child("drop", Dropout(p, rng=self.rng))  # nanoGPT's transformer.drop
        blocks = []
        for _ in range(L):
            attn = MultiHeadAttention(*affine(C, 3 * C), *affine(C, C, proj_std), n_heads=H, causal=True)
            mlp = _MLP(Affine(*affine(C, 4 * C)), GELU(config.gelu), Affine(*affine(4 * C, C, proj_std)))
            blocks.append(_Block(LayerNorm(C, config.eps, dtype), attn, LayerNorm(C, config.eps, dtype), mlp, p,
                                 self.rng))
        self.add_child("h", Chain(blocks))
        self.add_child("ln_f", LayerNorm(C, config.eps, dtype))
        if not config.tied_head:  # makemore's lm_head = nn.Linear(n_embd, vocab_size, bias=False)
            W_head, _ = affine(C, V)
            self.add_child("lm_head", Affine(W_head, np.zeros(V, dtype)))
        # bias=False: the bias arrays stay zero and are not the model's parameters (see above);
        # nor is an untied lm_head's bias.
        self._fixed_zero = frozenset(k for k in super().params
                                     if (not config.bias and _is_bias(k)) or k == "lm_head.b")
        self._positions = np.arange(B)[None, :]  # (1, B): the position ids wpe looks up
        self._xf = None
        self._nt = None  # (N, T) of the last predict

    @classmethod
    def from_config(cls, config: GPTConfig, seed=None, dtype=np.float32, init: str = "nanogpt") -> "GPT":
        """A new GPT of ``config``'s architecture (nanoGPT's ``GPT(config)``); ``seed``, ``dtype``
        and ``init`` as for the constructor."""
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT.from_config: expected a GPTConfig, got {type(config).__name__}")
        return cls(**asdict(config), seed=seed, dtype=dtype, init=init)

    @property
    def config(self) -> GPTConfig:
        """The architecture (frozen), with the vocabulary the model holds now (``vocab`` is an
        attribute one may replace: a new one is checked here)."""
        if self._vocab_text() != self._config.vocab:
            self._config = replace(self._config, vocab=self._vocab_text())
        return self._config

    def _vocab_text(self) -> str | None:
        return None if self.vocab is None else "".join(self.vocab.chars)

    # The settings, read from the config (a built GPT's architecture does not change).
    vocab_size, block_size, n_layer, n_head, n_embd, dropout, bias, gelu, eps, tied_head = map(_setting, (
        "vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "gelu", "eps", "tied_head"))

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
        """Parameters, each array once (a tied wte counted once, as nanoGPT's count with
        position embeddings included; an untied lm_head.W counted too)."""
        return int(sum(value.size for value in self.params.values()))

    @property
    def dtype(self) -> np.dtype:
        return self.wte.W.dtype

    @property
    def blocks(self) -> list[_Block]:
        return self.h.layers

    # --- description: everything from the config --------------------------------------------------

    def spec(self) -> dict:
        # The vocabulary as the model holds it now, unchecked: save refuses one it cannot write.
        spec = {"model": "GPT", **asdict(self._config), "vocab": self._vocab_text()}
        if spec["tied_head"]:  # a tied GPT's file stays what it was before untied heads existed
            del spec["tied_head"]
        return spec

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        return GPTConfig.from_spec(spec).param_shapes()

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "GPT":
        return cls.from_config(GPTConfig.from_spec(spec), dtype=dtype, init="zeros")

    def describe(self) -> str:
        c = self.config
        return (f"GPT: {c.n_layer} layers, {c.n_head} heads, {c.n_embd} wide, context {c.block_size}, "
                f"vocabulary {c.vocab_size}, {self.num_params:,} parameters")

    def __repr__(self) -> str:
        settings = ", ".join(f"{f.name}={getattr(self.config, f.name)!r}" for f in fields(GPTConfig) if f.name != "vocab")
        return f"GPT({settings})"

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
        x = self.wte.forward(idx)                                   # (N, T, C)
        x += self.wpe.forward(self._positions[:, :t])               # + (1, T, C)
        if self.dropout > 0:
            x = self.drop.forward(x)
        x = self.h.forward(x)                                       # every block, first to last (N, T, C)
        x = self.ln_f.forward(x)                                    # (N, T, C)
        self._xf, self._nt = x.reshape(n * t, self.n_embd), (n, t)  # x_f (N*T, C), kept for backward
        if not self.tied_head:
            return self.lm_head.forward(x)                          # lm_head: x_f W_head (N, T, V)
        return (self._xf @ self.wte.W.T).reshape(n, t, self.vocab_size)  # lm_head: x_f wte^T (N, T, V)

    def backward_from_logits(self, dlogits) -> None:
        """Backpropagate ``dL/dlogits`` (N, T, V) of the last :meth:`predict` into every
        gradient (zeroed first, so they hold this one backward's)."""
        self._zero_grads_lazily()
        return self.backward_from_scores(dlogits)

    def backward_from_scores(self, dlogits, input_grad: bool = False) -> None:
        """Add the gradients of ``dL/dlogits`` (N, T, V) of the last :meth:`predict` into every
        gradient, op by op in reverse (the module's description lists them); returns None
        (token ids have no gradient)."""
        self._require_forward(self._xf)
        (n, t), C, V = self._nt, self.n_embd, self.vocab_size
        dlogits = self._check_dout(dlogits, (n, t, V)).astype(self.dtype, copy=False)
        if self.tied_head:  # lm_head, logits = x_f wte^T: its share of the tied weight's gradient, and dx_f.
            dlogits = dlogits.reshape(n * t, V)
            self.wte.add_to_grad("W", dlogits.T @ self._xf)        # (V, C)
            dx = (dlogits @ self.wte.W).reshape(n, t, C)            # (N, T, C)
        else:               # lm_head, logits = x_f W_head: dW_head = x_f^T dlogits, dx_f = dlogits W_head^T
            dx = self.lm_head.backward(dlogits)                     # (N, T, C)
        dx = self.ln_f.backward(dx)                                 # (N, T, C)
        dx = self.h.backward(dx)                                    # every block, last to first (N, T, C)
        if self.dropout > 0:
            dx = self.drop.backward(dx)
        self.wpe.backward(dx.sum(axis=0, keepdims=True))            # (1, T, C): the same positions in every row
        self.wte.backward(dx)                                       # the embedding's share of dwte (V, C)
        return None

    # --- generation -----------------------------------------------------------------------------------

    def _step_logits(self, idx: np.ndarray, caches, start: int):
        """Inference: logits (N, V) after the last of ``idx`` (N, T_new), which sit at positions
        ``start ..`` after the cached ones; returns ``(logits, new caches)``."""
        x = self.wte.W[idx] + self.wpe.W[start:start + idx.shape[1]]  # (N, T_new, C)
        new_caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block.forward_step(x, None if caches is None else caches[i])
            new_caches.append(cache)
        last = self.ln_f.apply(x[:, -1])                              # (N, C)
        logits = last @ self.wte.W.T if self.tied_head else self.lm_head.apply(last)
        return logits, new_caches                                     # (N, V)

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
