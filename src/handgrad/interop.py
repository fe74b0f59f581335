"""Bridges to PyTorch checkpoints: nanoGPT's state dicts and Hugging Face GPT-2 files.

Names and layouts, nanoGPT (``nn.Linear`` stores ``weight`` as (out, in), handgrad's Affine
``W`` as (in, out), so every Linear weight is transposed) -> handgrad's :class:`GPT`:

    transformer.wte.weight (V, C)          -> wte.W            (lm_head.weight: the same, tied)
    lm_head.weight (V, C), when it differs -> lm_head.W (C, V) = weight^T   (untied: makemore.py's)
    transformer.wpe.weight (B, C)          -> wpe.W
    transformer.h.<i>.ln_1.weight / .bias  -> h.<i>.ln_1.gamma / .beta       (ln_2, ln_f alike)
    transformer.h.<i>.attn.c_attn.weight (3C, C) -> h.<i>.attn.W_qkv (C, 3C) = weight^T; .bias -> b_qkv
    transformer.h.<i>.attn.c_proj.weight (C, C)  -> h.<i>.attn.W_o = weight^T;  .bias -> b_o
    transformer.h.<i>.mlp.c_fc.weight (4C, C)    -> h.<i>.mlp.c_fc.W = weight^T; .bias -> .b
    transformer.h.<i>.mlp.c_proj.weight (C, 4C)  -> h.<i>.mlp.c_proj.W = weight^T; .bias -> .b

Hugging Face's GPT-2 uses the same names but ``Conv1D`` layers, which store (in, out) already:
no transpose. Buffers (``attn.bias``, the causal mask; ``attn.masked_bias``) are ignored.
Arrays keep their dtype (all must share one). Nothing here imports torch.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import validate
from .layers.normalization import check_eps
from .model.gpt import GPT
from .serialize import SerializationError, _strict_json, read_safetensors

__all__ = ["from_nanogpt", "to_nanogpt", "from_huggingface_gpt2"]

# (name inside a block, handgrad's name inside a block, a Linear/Conv1D weight?, a bias?)
_BLOCK = (
    ("ln_1.weight", "ln_1.gamma", False, False), ("ln_1.bias", "ln_1.beta", False, True),
    ("attn.c_attn.weight", "attn.W_qkv", True, False), ("attn.c_attn.bias", "attn.b_qkv", False, True),
    ("attn.c_proj.weight", "attn.W_o", True, False), ("attn.c_proj.bias", "attn.b_o", False, True),
    ("ln_2.weight", "ln_2.gamma", False, False), ("ln_2.bias", "ln_2.beta", False, True),
    ("mlp.c_fc.weight", "mlp.c_fc.W", True, False), ("mlp.c_fc.bias", "mlp.c_fc.b", False, True),
    ("mlp.c_proj.weight", "mlp.c_proj.W", True, False), ("mlp.c_proj.bias", "mlp.c_proj.b", False, True),
)
_IGNORED = re.compile(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$")  # causal-mask buffers, not parameters


def _layout(n_layer: int, bias: bool, prefix: str = "transformer.", tied_head: bool = True):
    """``(their name, handgrad's name, transposed?)`` for every parameter, in model order."""
    rows = [(prefix + "wte.weight", "wte.W", False), (prefix + "wpe.weight", "wpe.W", False)]
    for i in range(n_layer):
        rows += [(f"{prefix}h.{i}.{theirs}", f"h.{i}.{ours}", is_weight)
                 for theirs, ours, is_weight, is_bias in _BLOCK if bias or not is_bias]
    rows.append((prefix + "ln_f.weight", "ln_f.gamma", False))
    if bias:
        rows.append((prefix + "ln_f.bias", "ln_f.beta", False))
    if not tied_head:
        rows.append(("lm_head.weight", "lm_head.W", True))
    return rows


def _as_array(who: str, key: str, value) -> np.ndarray:
    """``value`` as a NumPy array without copying it (a CPU torch tensor's ``.numpy()`` is a view)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor slipped in: no import needed
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype not in validate.FLOAT_DTYPES:
        raise TypeError(f"{who}: {key}: expected a float16, float32 or float64 array, got dtype {array.dtype}")
    return array


def _load_state(state_dict: dict, n_head: int, vocab, transpose: bool, gelu: str, eps: float, who: str,
                config: dict | None = None, config_where: str = "config") -> GPT:
    """A GPT from ``{their name: array}`` (nanoGPT's names; ``transpose``: Linear layouts).

    Every stored array's name, shape and dtype is checked against the architecture the shapes
    of ``wte``, ``wpe`` and the block numbers describe (and the sizes ``config`` states, if
    given: ``n_positions``, ``n_embd``, ``n_layer``, ``vocab_size``) BEFORE the model is built,
    with :meth:`GPT.param_shapes`, load's own check: a crafted state dict cannot make it
    allocate more than the arrays it holds."""
    state = {}
    for key, value in state_dict.items():
        key = key.removeprefix("_orig_mod.")  # a state dict of a torch.compile'd model (nanoGPT strips it too)
        if not _IGNORED.search(key):
            state[key] = value
    prefix = "transformer." if any(k.startswith("transformer.") for k in state) else ""
    for needed in ("wte.weight", "wpe.weight", "ln_f.weight"):
        if prefix + needed not in state:
            raise ValueError(f"{who}: no {prefix + needed!r} in the state dict (keys: {sorted(state)[:8]} ...)")
    wte, wpe = (_as_array(who, prefix + key, state[prefix + key]) for key in ("wte.weight", "wpe.weight"))
    if wte.ndim != 2 or wpe.ndim != 2 or wte.shape[1] != wpe.shape[1]:
        raise ValueError(f"{who}: {prefix}wte.weight (V, C) and {prefix}wpe.weight (block_size, C) must share C, "
                         f"got {wte.shape} and {wpe.shape}")
    (V, C), B = wte.shape, wpe.shape[0]
    layers = {int(m.group(1)) for k in state for m in [re.match(re.escape(prefix) + r"h\.(\d+)\.", k)] if m}
    n_layer = len(layers)
    if layers != set(range(n_layer)) or not n_layer:
        raise ValueError(f"{who}: blocks must be numbered 0 .. n_layer - 1, found {sorted(layers)[:20]}")
    found = {"n_positions": (B, f"{prefix}wpe.weight has {B} rows"),
             "n_embd": (C, f"{prefix}wte.weight has {C} columns"),
             "n_layer": (n_layer, f"the weights have {n_layer} blocks"),
             "vocab_size": (V, f"{prefix}wte.weight has {V} rows")}
    for key, stated in (config or {}).items():
        if stated != found[key][0]:
            raise SerializationError(f"{config_where}: {key} is {stated}, but {found[key][1]}")
    bias = prefix + "ln_f.bias" in state
    what = f"a positive integer dividing n_embd = {C}"
    if validate.integer(n_head, "n_head", who=who, minimum=1, what=what) and C % n_head:
        raise ValueError(f"{who}: n_head must be {what}, got {n_head!r:.40}")
    # The vocabulary is checked by the constructor, before it allocates anything.
    # An lm_head.weight that is not wte's array is its own matrix (makemore.py's untied head);
    # Hugging Face's GPT-2 always ties it.
    head = state.get("lm_head.weight")
    tied_head = head is None or _same_array(who, head, wte)
    if not tied_head and not transpose:
        raise ValueError(f"{who}: lm_head.weight differs from {prefix}wte.weight; a GPT-2 checkpoint ties the output "
                         "layer to the token embedding")
    spec = {"vocab_size": V, "block_size": B, "n_layer": n_layer, "n_head": int(n_head), "n_embd": C,
            "bias": bias, "gelu": gelu, "eps": eps, "tied_head": tied_head}
    try:
        expected = GPT.param_shapes(spec)  # the limits load applies (n_layer <= 10000, eps, ...)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{who}: {error}") from None
    rows = _layout(n_layer, bias, prefix, tied_head)
    unknown = sorted(set(state) - {theirs for theirs, _, _ in rows} - {"lm_head.weight"})
    if unknown:
        raise ValueError(f"{who}: unexpected keys {unknown[:10]} (bias={bias}, {n_layer} layers: not a GPT-2 / "
                         "nanoGPT state dict, or a different architecture)")
    missing = [theirs for theirs, _, _ in rows if theirs not in state]
    if missing:
        raise ValueError(f"{who}: missing {missing[0]!r} (a model with bias={bias} and {n_layer} layers has it)")
    arrays = {key: _as_array(who, key, value) for key, value in state.items()}
    for theirs, ours, transposed in rows:
        array = arrays[theirs]
        if array.dtype != wte.dtype:
            raise TypeError(f"{who}: {theirs} has dtype {array.dtype}, {prefix}wte.weight has {wte.dtype}; a "
                            "model's parameters share one dtype (convert the state dict first)")
        shape = expected[ours][::-1] if transposed and transpose else expected[ours]
        if array.shape != shape:
            raise ValueError(f"{who}: {theirs} has shape {array.shape}, expected {shape} for n_embd = {C}, "
                             f"vocab_size = {V}")
    for theirs, _, _ in rows:
        if not np.isfinite(arrays[theirs]).all():
            raise ValueError(f"{who}: {theirs} holds NaN or infinite values; a model's weights must be finite")
    # Every array is now known to have the shape the model allocates: building it costs no more
    # than the state dict holds.
    model = GPT(V, B, n_layer, int(n_head), C, bias=bias, dtype=wte.dtype, vocab=vocab, gelu=gelu, eps=eps,
                tied_head=tied_head, init="zeros")
    params = model.params
    for theirs, ours, transposed in rows:
        array = arrays[theirs]
        params[ours][...] = array.T if transposed and transpose else array
    return model


def _same_array(who: str, head, wte: np.ndarray) -> bool:
    """Whether the state's lm_head.weight is the token embedding (a tied head)."""
    head = _as_array(who, "lm_head.weight", head)
    return head.shape == wte.shape and bool(np.array_equal(head, wte))


def from_nanogpt(state_dict: dict, n_head: int, vocab=None, gelu: str = "none") -> GPT:
    """A :class:`GPT` with nanoGPT's weights: ``state_dict`` maps nanoGPT's names to arrays
    (``{k: v.numpy() for k, v in model.state_dict().items()}``; tensors are accepted too).
    The architecture (vocab_size, block_size, n_layer, n_embd, bias) is read from the shapes;
    ``n_head`` cannot be, so it is given. dtype kept. ``lm_head.weight``, when absent or equal
    to ``transformer.wte.weight``, is the tied output layer (nanoGPT's); when it differs, the
    model's own (``tied_head=False``, as makemore.py's Transformer, whose state dict has
    nanoGPT's names). ``gelu``: ``"none"``, nanoGPT's exact GELU, or ``"tanh"`` (makemore.py's
    ``NewGELU``): the state dict cannot tell. The causal-mask buffers are ignored. Errors name
    the key: missing, unexpected, or of the wrong shape."""
    return _load_state(state_dict, n_head, vocab, transpose=True, gelu=gelu, eps=1e-5, who="from_nanogpt")


def to_nanogpt(model: GPT, grads: bool = False) -> dict:
    """nanoGPT's state dict of ``model`` as NumPy arrays (new arrays, Linear weights transposed to
    (out, in)), with ``lm_head.weight`` the same array as ``transformer.wte.weight`` (tied), or
    the untied head's ``lm_head.W`` transposed.
    ``grads=True``: the gradients under the same names and layouts (the tied weight's is the sum
    of its two uses, as PyTorch's ``.grad`` of the shared parameter). Feed it to PyTorch with
    ``{k: torch.from_numpy(v) for k, v in sd.items()}``."""
    if not isinstance(model, GPT):
        raise TypeError(f"to_nanogpt: expected a handgrad GPT, got {type(model).__name__}")
    source = model.grads if grads else model.params
    out = {}
    for theirs, ours, transposed in _layout(model.n_layer, model.bias, tied_head=model.tied_head):
        out[theirs] = np.ascontiguousarray(source[ours].T) if transposed else source[ours].copy()
    if model.tied_head:
        out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


_HF_GELUS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}


def _read_hf_config(path: Path) -> dict:
    """The settings of a Hugging Face ``config.json`` that handgrad uses, each checked: one
    :class:`SerializationError` line naming the file and the key for anything malformed."""
    if not path.exists():
        raise FileNotFoundError(f"from_huggingface_gpt2: no config.json in {path.parent}")
    if not path.is_file():
        raise SerializationError(f"{path}: is not a file (a Hugging Face checkpoint's config.json is)")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SerializationError(f"{path}: cannot read the file ({error.strerror or error})") from error
    config = _strict_json(raw, path, "config")
    if not isinstance(config, dict):
        raise SerializationError(f"{path}: expected a JSON object of settings, got a {type(config).__name__} "
                                 f"({str(config)[:40]})")

    def setting(key, check, default=None):
        if key not in config:
            return default
        try:
            return check(config[key], key, who=str(path))
        except ValueError as error:
            raise SerializationError(str(error)) from None

    def known_activation(value, key, who):
        if not isinstance(value, str) or value not in _HF_GELUS:
            kind = "" if isinstance(value, str) else f" (a {type(value).__name__}, where a string is needed)"
            raise ValueError(f"{who}: {key} {value!r:.40}{kind} is not supported (known: {sorted(_HF_GELUS)})")
        return value

    settings = {
        "n_head": setting("n_head", validate.positive_int),
        "gelu": _HF_GELUS[setting("activation_function", known_activation, "gelu_new")],
        "eps": setting("layer_norm_epsilon", lambda v, k, who: check_eps(v, who=who, name=k), 1e-5),
        # Stated sizes must agree with the weights' shapes (checked before anything is built).
        "sizes": {key: setting(key, validate.positive_int) for key in ("n_positions", "n_embd", "n_layer", "vocab_size")
                  if key in config},
    }
    if settings["n_head"] is None:
        raise SerializationError(f"{path}: n_head is missing (the number of attention heads; the weights cannot "
                                 "tell it)")
    if setting("scale_attn_by_inverse_layer_idx", validate.boolean, False) \
            or not setting("scale_attn_weights", validate.boolean, True):
        raise SerializationError(f"{path}: only GPT-2's standard attention scaling (1 / sqrt(head_dim)) is supported "
                                 "(scale_attn_weights true, scale_attn_by_inverse_layer_idx false)")
    return settings


def from_huggingface_gpt2(directory, vocab=None) -> GPT:
    """A :class:`GPT` from a local Hugging Face GPT-2 checkpoint: ``directory/config.json`` and
    ``directory/model.safetensors``, read with handgrad's own safetensors reader (no torch).

    GPT-2's Conv1D weights are stored (in, out) already, handgrad's layout: no transpose. Keys
    may or may not start with ``transformer.`` (GPT2LMHeadModel or GPT2Model). From the config:
    ``n_head`` (required), ``layer_norm_epsilon`` (-> ``eps``, in LayerNorm's (0, 1)),
    ``activation_function`` (``gelu_new`` and ``gelu_pytorch_tanh`` -> ``gelu="tanh"``, ``gelu``
    -> exact); ``n_positions``, ``n_embd``, ``n_layer`` and ``vocab_size``, where given, must agree
    with the weights' shapes. Variants handgrad's GPT does not compute
    (``scale_attn_by_inverse_layer_idx``, unscaled attention) are refused.

    A malformed config (not JSON, not an object, a key of the wrong type or out of range) is one
    :class:`~handgrad.serialize.SerializationError` naming the file and the key. Every tensor's
    name, shape and dtype is checked against the architecture before the model is allocated."""
    directory = Path(directory)
    settings = _read_hf_config(directory / "config.json")
    weights = directory / "model.safetensors"
    tensors, _ = read_safetensors(weights)
    return _load_state(tensors, settings["n_head"], vocab, transpose=False, gelu=settings["gelu"],
                       eps=settings["eps"], who=f"from_huggingface_gpt2: {weights}", config=settings["sizes"],
                       config_where=str(directory / "config.json"))
