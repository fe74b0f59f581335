"""The table of layer cases: one row per layer configuration, at least one row per layer type of
``handgrad.layers.LAYER_TYPES``. A new layer is its file plus one row here
(docs/design.md#adding-a-layer); every row is run by the generic tests:

- tests/test_layer_cases.py: every exported layer type has a row; the numerical gradient check of
  every parameter and of the input (float64, ``handgrad.gradcheck``); the layer contract (backward
  leaves ``dout``, the input, the output and the forward cache unchanged and can be repeated; a
  bare layer used the book's way holds one step's gradients and a second backward adds;
  evaluation mode is deterministic); the spec survives a round trip (``from_spec(spec)``) and
  ``param_shapes(spec)`` equals what ``from_spec`` allocates; the row's PyTorch mirror
  (``torch_forward``) in float64 at 1e-10: the output, the input gradient and every parameter's
  gradient;
- tests/test_onnx.py: rows with ``onnx``: the layer alone, exported and run in onnxruntime
  (float32, 1e-5), on the row's batch and on a batch of one; the rows cover every converter.

Tests of one layer's own behaviour (Convolution's paths, recurrent states, attention masks,
BatchNorm's running statistics, ...) stay in the test file of its module:
tests/layers/test_<module>.py for src/handgrad/layers/<module>.py.

This module is a plain Python module (no tests in it); the test files import it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from handgrad import layers as L

@dataclass(frozen=True)
class LayerCase:
    """One configuration of one layer type.

    ``make_layer(rng, dtype)``: the layer, its parameters of ``dtype`` drawn from ``rng``.
    ``make_input(rng, dtype)``: its input (a float array of ``dtype``, integer ids, or a tuple of
    arrays for a layer with several inputs).
    ``make_target(rng)``: a loss layer's targets ``t`` (``forward(x, t)``); None otherwise.
    ``torch_forward(torch, layer, params, *inputs)``: the same computation in PyTorch (its own
    layer where it has one); ``params`` are leaf tensors holding ``layer.params``, keyed and laid
    out as handgrad's (so their gradients compare with ``layer.grads`` as they are); a loss
    layer's targets come last in ``inputs``. None, with the reason in ``no_torch``, where no
    mirror can compute the same thing.
    ``onnx``: False if the layer type has no ONNX form (the reason in ``notes``), else True or one
    sample's shape to export with (named axes such as ``"T"`` are dynamic).
    """

    id: str
    make_layer: Callable
    make_input: Callable
    make_target: Callable | None = None
    torch_forward: Callable | None = None
    no_torch: str = ""
    onnx: bool | tuple = False
    notes: str = ""

    @property
    def layer_type(self) -> str:
        """The name of the type the row builds (its id up to the first ``-``)."""
        return self.id.split("-")[0]

    def rng(self, seed: int = 0) -> np.random.Generator:
        """A generator of this row's own, the same on every run and machine."""
        return np.random.default_rng([zlib.crc32(self.id.encode()), seed])

    def build(self, dtype, seed: int = 0):
        """``(layer, inputs, t)``: a fresh layer of ``dtype``, its inputs as a tuple (one array
        for most layers), and the targets (None unless a loss layer)."""
        rng = self.rng(seed)
        layer = self.make_layer(rng, dtype)
        inputs = self.make_input(rng, dtype)
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        t = self.make_target(rng) if self.make_target is not None else None
        return layer, inputs, t


# --- helpers for the rows ----------------------------------------------------------------------------


def normal(*shape, scale=1.0):
    """``make_input`` of standard normal values of ``shape`` (the batch first), times ``scale``."""
    return lambda rng, dtype: (rng.standard_normal(shape) * scale).astype(dtype)


def away_from_zero(*shape, margin=0.05):
    """Random values at least ``margin`` from 0, so that Relu's kink is never within eps."""
    def make(rng, dtype):
        u = rng.standard_normal(shape)
        return (np.sign(u + (u == 0)) * (margin + np.abs(u))).astype(dtype)
    return make


def distinct(*shape):
    """Distinct values 0.1 apart: the maximum of a window never changes under a +-eps nudge."""
    return lambda rng, dtype: (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1).astype(dtype)


def weights(rng, dtype, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def affine(n_in, n_out):
    return lambda rng, dtype: L.Affine(weights(rng, dtype, n_in, n_out), weights(rng, dtype, n_out))


def with_random_gamma_beta(layer, rng):
    """Scale and shift away from ones and zeros, so that their gradients are not special."""
    n = layer.params["gamma"].shape[0]
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, n)
    layer.params["beta"][...] = rng.standard_normal(n)
    return layer


class SameDraws:
    """A stand-in for Dropout's generator that draws the same numbers on every call, so that the
    mask is the same at every forward and central differences are defined."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def random(self, shape, dtype=np.float64):
        return np.random.default_rng(self.seed).random(shape, dtype=dtype)


# PyTorch mirrors: ``(torch, layer, params, *inputs) -> output``.

def linear_torch(torch, x, W, b):
    return torch.nn.functional.linear(x, W.T, b)  # nn.Linear stores W transposed: (out, in)


def affine_torch(torch, layer, p, x):
    return linear_torch(torch, x if x.ndim in (2, 3) else x.flatten(1), p["W"], p["b"])


def recurrent_torch(torch, layer, p, x):
    """nn.RNN / nn.LSTM / nn.GRU with the layer's weights: weight_ih_l0 = Wx^T, weight_hh_l0 =
    Wh^T; handgrad's one bias b on the input side (the two of PyTorch add up), GRU's bx, bh."""
    module_type = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[layer.name]
    module = module_type(layer.input_size, layer.hidden_size, batch_first=True, dtype=x.dtype)
    biases = (p["bx"], p["bh"]) if layer.name == "GRU" else (p["b"], torch.zeros_like(p["b"]))
    tensors = {"weight_ih_l0": p["Wx"].T, "weight_hh_l0": p["Wh"].T, "bias_ih_l0": biases[0], "bias_hh_l0": biases[1]}
    return torch.func.functional_call(module, tensors, (x,))[0]


def attention_torch(torch, layer, p, x):
    """nn.MultiheadAttention: in_proj_weight = W_qkv^T, out_proj.weight = W_o^T; the causal mask
    hides key j > i."""
    module = torch.nn.MultiheadAttention(layer.dim, layer.n_heads, batch_first=True, dtype=x.dtype)
    T = x.shape[1]
    mask = torch.ones(T, T, dtype=torch.bool).triu(1) if layer.causal else None
    tensors = {"in_proj_weight": p["W_qkv"].T, "in_proj_bias": p["b_qkv"], "out_proj.weight": p["W_o"].T,
               "out_proj.bias": p["b_o"]}
    return torch.func.functional_call(module, tensors, (x, x, x), {"attn_mask": mask, "need_weights": False})[0]


def batchnorm_torch(torch, layer, p, x):
    """Training mode: the batch's statistics (BatchNorm1d / BatchNorm2d's functional form)."""
    n = layer.num_features
    running_mean, running_var = torch.zeros(n, dtype=x.dtype), torch.ones(n, dtype=x.dtype)
    return torch.nn.functional.batch_norm(x, running_mean, running_var, p["gamma"], p["beta"], training=True,
                                          momentum=layer.momentum, eps=layer.eps)


def flatten_consecutive_torch(torch, layer, p, x):
    """Karpathy's FlattenConsecutive (makemore part 5), as he wrote it."""
    B, T, C = x.shape
    x = x.view(B, T // layer.n, C * layer.n)
    if x.shape[1] == 1:
        x = x.squeeze(1)
    return x


def cross_entropy_torch(torch, layer, p, x, t):
    scores = x if x.ndim == 2 else x.transpose(1, 2)  # PyTorch wants the class axis second: (N, C, T)
    return torch.nn.functional.cross_entropy(scores, t, label_smoothing=layer.label_smoothing,
                                             ignore_index=layer.ignore_index)


def recurrent(kind, D, H):
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind]

    def make(rng, dtype):
        Wx, Wh = weights(rng, dtype, D, gates * H, scale=0.6), weights(rng, dtype, H, gates * H, scale=0.6)
        biases = [weights(rng, dtype, gates * H, scale=0.3) for _ in range(2 if kind == "GRU" else 1)]
        return getattr(L, kind)(Wx, Wh, *biases)
    return make


def multi_head_attention(D, n_heads, causal):
    return lambda rng, dtype: L.MultiHeadAttention(weights(rng, dtype, D, 3 * D), weights(rng, dtype, 3 * D),
                                                   weights(rng, dtype, D, D), weights(rng, dtype, D),
                                                   n_heads=n_heads, causal=causal)


def convolution(filters, channels, kh, kw, stride=1, pad=0):
    return lambda rng, dtype: L.Convolution(weights(rng, dtype, filters, channels, kh, kw),
                                            weights(rng, dtype, filters), stride=stride, pad=pad)


def labels(shape, classes, ignored=None):
    """Integer labels; every third one ``ignored`` (an ignore_index) if given."""
    def make(rng):
        t = rng.integers(0, classes, shape)
        if ignored is not None:
            t.flat[::3] = ignored
        return t
    return make


def torch_function(name, **kwargs):
    return lambda torch, layer, p, x: getattr(torch.nn.functional, name)(x, **kwargs)


# --- the table ---------------------------------------------------------------------------------------

def causal_bow_torch(torch, layer, p, x):
    """makemore.py's ``CausalBoW`` as it is written: a softmax of zeros over a causal mask, times x."""
    steps = x.shape[1]
    allowed = torch.tril(torch.ones(steps, steps, dtype=torch.bool))
    scores = torch.zeros((x.shape[0], steps, steps), dtype=x.dtype).masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ x


CASES = [
    # dense.py
    LayerCase("Affine", affine(12, 5), normal(4, 12), torch_forward=affine_torch, onnx=True),
    LayerCase("Affine-images", affine(12, 5), normal(3, 3, 2, 2), torch_forward=affine_torch, onnx=True,
              notes="(N, C, H, W) flattens to (N, 12)"),
    LayerCase("Affine-sequence", affine(6, 5), normal(3, 4, 6), torch_forward=affine_torch, onnx=True,
              notes="(N, T, D): the last axis, as nn.Linear"),
    # activations.py
    LayerCase("Relu", lambda rng, dtype: L.Relu(), away_from_zero(5, 7), torch_forward=torch_function("relu"),
              onnx=True),
    LayerCase("Sigmoid", lambda rng, dtype: L.Sigmoid(), normal(5, 2, 3, 4, scale=2.0),
              torch_forward=lambda torch, layer, p, x: torch.sigmoid(x), onnx=True),
    LayerCase("Tanh", lambda rng, dtype: L.Tanh(), normal(5, 7, scale=2.0),
              torch_forward=lambda torch, layer, p, x: torch.tanh(x), onnx=True),
    LayerCase("GELU", lambda rng, dtype: L.GELU(), normal(5, 3, 7, scale=2.0),
              torch_forward=torch_function("gelu", approximate="none"), onnx=True),
    LayerCase("GELU-tanh", lambda rng, dtype: L.GELU("tanh"), normal(5, 3, 7, scale=2.0),
              torch_forward=torch_function("gelu", approximate="tanh"), onnx=True),
    # losses.py
    LayerCase("SoftmaxWithLoss", lambda rng, dtype: L.SoftmaxWithLoss(label_smoothing=0.1), normal(6, 5),
              make_target=labels((6,), 5), torch_forward=cross_entropy_torch,
              notes="a loss layer: not part of an exported graph (the scores are)"),
    LayerCase("SoftmaxWithLoss-sequence", lambda rng, dtype: L.SoftmaxWithLoss(0.1, ignore_index=0),
              normal(2, 5, 4), make_target=labels((2, 5), 4, ignored=0), torch_forward=cross_entropy_torch,
              notes="(N, T, C) scores, every third target ignored"),
    # regularization.py
    LayerCase("Dropout", lambda rng, dtype: L.Dropout(0.3, rng=SameDraws(7)), normal(5, 7), onnx=True,
              no_torch="PyTorch draws its own masks; evaluation mode against torch: "
                       "layers/test_regularization.py::test_dropout_eval_mode_matches_torch",
              notes="training mode, the same mask at every forward; exported as the identity"),
    LayerCase("BatchNorm", lambda rng, dtype: with_random_gamma_beta(L.BatchNorm(4, momentum=0.2, eps=1e-4,
                                                                               dtype=dtype), rng),
              normal(6, 4, scale=2.0), torch_forward=batchnorm_torch, onnx=True,
              notes="training mode; running statistics and evaluation: layers/test_regularization.py"),
    LayerCase("BatchNorm-sequences", lambda rng, dtype: with_random_gamma_beta(L.BatchNorm(4, dtype=dtype), rng),
              normal(3, 5, 4, scale=2.0), torch_forward=lambda torch, layer, p, x: batchnorm_torch(
                  torch, layer, p, x.transpose(1, 2)).transpose(1, 2), onnx=True,
              notes="(N, T, C), statistics over N and T (makemore part 5); PyTorch's BatchNorm1d on (N, C, T)"),
    LayerCase("BatchNorm-images", lambda rng, dtype: with_random_gamma_beta(L.BatchNorm(3, dtype=dtype), rng),
              normal(2, 3, 4, 5, scale=2.0), torch_forward=batchnorm_torch, onnx=True),
    # conv.py
    LayerCase("Convolution", convolution(4, 3, 3, 2, stride=2, pad=1), normal(2, 3, 9, 8),
              torch_forward=lambda torch, layer, p, x: torch.nn.functional.conv2d(
                  x, p["W"], p["b"], stride=layer.stride, padding=layer.pad), onnx=True,
              notes="every geometry and both paths: layers/test_conv.py, test_conv_speed_paths.py"),
    LayerCase("Convolution-5x5", convolution(2, 1, 5, 5), normal(2, 1, 8, 7),
              torch_forward=lambda torch, layer, p, x: torch.nn.functional.conv2d(x, p["W"], p["b"]), onnx=True),
    LayerCase("Pooling", lambda rng, dtype: L.Pooling(3, 3, stride=1, pad=1), distinct(2, 2, 6, 7),
              torch_forward=lambda torch, layer, p, x: torch.nn.functional.max_pool2d(x, 3, stride=1, padding=1),
              onnx=True, notes="overlapping windows, -inf padding"),
    LayerCase("Pooling-2x2", lambda rng, dtype: L.Pooling(2, 2, stride=2), distinct(2, 2, 7, 6),
              torch_forward=lambda torch, layer, p, x: torch.nn.functional.max_pool2d(x, 2, stride=2), onnx=True,
              notes="the tiled 2x2 path"),
    LayerCase("AvgPooling", lambda rng, dtype: L.AvgPooling(3, 2, stride=2, pad=1), normal(2, 2, 7, 6),
              torch_forward=lambda torch, layer, p, x: torch.nn.functional.avg_pool2d(
                  x, (3, 2), stride=2, padding=1, count_include_pad=True), onnx=True,
              notes="zero padding counts in the mean"),
    LayerCase("Flatten", lambda rng, dtype: L.Flatten(), normal(2, 3, 2, 2),
              torch_forward=lambda torch, layer, p, x: x.flatten(1), onnx=True),
    # composite.py
    LayerCase("Chain", lambda rng, dtype: L.Chain({"fc": affine(5, 4)(rng, dtype), "act": L.Tanh()}), normal(3, 5),
              torch_forward=lambda torch, layer, p, x: torch.tanh(linear_torch(torch, x, p["fc.W"], p["fc.b"])),
              onnx=True, notes="named children: params fc.W, fc.b"),
    LayerCase("Residual", lambda rng, dtype: L.Residual([affine(5, 5)(rng, dtype), L.Tanh()]), normal(3, 5),
              torch_forward=lambda torch, layer, p, x: x + torch.tanh(
                  linear_torch(torch, x, p["body.0.W"], p["body.0.b"])), onnx=True),
    # embedding.py
    LayerCase("Embedding", lambda rng, dtype: L.Embedding(weights(rng, dtype, 7, 3, scale=1.0)),
              lambda rng, dtype: np.array([[1, 1, 3, 6], [0, 6, 1, 3], [2, 2, 2, 5]]),
              torch_forward=lambda torch, layer, p, ids: torch.nn.functional.embedding(ids, p["W"]), onnx=True,
              notes="integer ids (repeated), so no input gradient"),
    LayerCase("Embedding-contexts", lambda rng, dtype: L.Embedding(weights(rng, dtype, 8, 2, scale=1.0)),
              lambda rng, dtype: np.array([[[1, 7], [3, 1]], [[7, 7], [0, 6]]]),
              torch_forward=lambda torch, layer, p, ids: torch.nn.functional.embedding(ids, p["W"]), onnx=True,
              notes="ids (N, T, K), as PreviousTokens gives them (makemore's MLP)"),
    LayerCase("PositionEmbedding", lambda rng, dtype: L.PositionEmbedding(weights(rng, dtype, 6, 3, scale=1.0)),
              normal(2, 4, 3), torch_forward=lambda torch, layer, p, x: x + p["W"][:x.shape[1]], onnx=("T", 3),
              notes="T = 4 of block_size 6: rows 4 and 5 get nothing"),
    # normalization.py
    LayerCase("LayerNorm", lambda rng, dtype: with_random_gamma_beta(L.LayerNorm(6, eps=1e-6, dtype=dtype), rng),
              normal(3, 4, 6, scale=2.0),
              torch_forward=lambda torch, layer, p, x: torch.nn.functional.layer_norm(
                  x, (layer.num_features,), p["gamma"], p["beta"], eps=layer.eps), onnx=True),
    # attention.py
    LayerCase("MultiHeadAttention", multi_head_attention(4, 2, causal=True), normal(2, 5, 4),
              torch_forward=attention_torch, onnx=("T", 4),
              notes="masks, padding and the cache: layers/test_attention.py"),
    LayerCase("MultiHeadAttention-full", multi_head_attention(6, 3, causal=False), normal(2, 3, 6),
              torch_forward=attention_torch, onnx=("T", 6)),
    LayerCase("Attention", lambda rng, dtype: L.Attention(),
              lambda rng, dtype: (normal(2, 3, 4)(rng, dtype), normal(2, 5, 4)(rng, dtype)),
              torch_forward=lambda torch, layer, p, h_dec, h_enc: torch.softmax(
                  h_dec @ h_enc.transpose(1, 2), dim=-1) @ h_enc,
              notes="two inputs (h_dec, h_enc): no ONNX form (refused, test_onnx.py)"),
    LayerCase("CausalMean", lambda rng, dtype: L.CausalMean(), normal(2, 5, 3), torch_forward=causal_bow_torch,
              onnx=("T", 3), notes="makemore.py's CausalBoW"),
    # recurrent.py
    LayerCase("RNN", recurrent("RNN", 3, 5), normal(2, 4, 3), torch_forward=recurrent_torch, onnx=("T", 3),
              notes="states, stateful, dh and dc: layers/test_recurrent.py"),
    LayerCase("LSTM", recurrent("LSTM", 3, 5), normal(2, 4, 3), torch_forward=recurrent_torch, onnx=("T", 3)),
    LayerCase("GRU", recurrent("GRU", 3, 5), normal(2, 4, 3), torch_forward=recurrent_torch, onnx=("T", 3)),
    # shape.py
    LayerCase("Reshape", lambda rng, dtype: L.Reshape((4, -1)), normal(3, 12),
              torch_forward=lambda torch, layer, p, x: x.reshape(x.shape[0], 4, -1), onnx=True),
    LayerCase("Reshape-3d", lambda rng, dtype: L.Reshape((2, 3, 2)), normal(3, 3, 4),
              torch_forward=lambda torch, layer, p, x: x.reshape(x.shape[0], 2, 3, 2), onnx=True),
    LayerCase("LastStep", lambda rng, dtype: L.LastStep(), normal(3, 5, 3),
              torch_forward=lambda torch, layer, p, x: x[:, -1], onnx=True),
    LayerCase("FlattenConsecutive", lambda rng, dtype: L.FlattenConsecutive(2), normal(3, 8, 3),
              torch_forward=flatten_consecutive_torch, onnx=True, notes="(N, 8, 3) -> (N, 4, 6)"),
    LayerCase("FlattenConsecutive-last", lambda rng, dtype: L.FlattenConsecutive(4), normal(3, 4, 5),
              torch_forward=flatten_consecutive_torch, onnx=True,
              notes="one group left: (N, 4, 5) -> (N, 20), the time axis dropped"),
    LayerCase("PreviousTokens", lambda rng, dtype: L.PreviousTokens(3, 7),
              lambda rng, dtype: np.array([[1, 1, 3, 6], [0, 6, 1, 3]]),
              no_torch="integer ids in and out, nothing to differentiate (the makemore MLP's test compares it with "
                       "makemore.py's torch.roll)", onnx=("T",)),
]


def case_id(case: LayerCase) -> str:
    return case.id
