"""Export a trained model to ONNX, to run it outside Python (onnxruntime, a browser, a phone).

``hg.export_onnx(model, "model.onnx")`` writes the model's inference graph, built node by node
with the ``onnx`` package's helpers and checked with ``onnx.checker``; ``to_onnx(model)`` gives
the ``onnx.ModelProto`` without writing it. Both need the ``onnx`` extra
(``pip install "handgrad[onnx]"``); nothing here imports ``onnx`` until it is called.

What the graph computes: the model's ``predict`` in evaluation mode, that is the scores (logits)
**before any softmax**; the loss layer is not part of it. Dropout is the identity, BatchNorm
uses its running statistics. Everything is float32 (a float64 model is exported in float32).

* A :class:`handgrad.Sequential` (``mlp``, ``SimpleConvNet``, ``DeepConvNet``, the ``lstm``
  model, your own): input ``"x"`` of shape ``(N, *input_shape)`` float32, output ``"scores"``.
  A model whose first layer is an Embedding or PreviousTokens takes ``"x"`` as int64 token ids
  ``(N, T)`` (makemore's zoo: ``bigram``, ``mlp-words``, ``bow``, ``rnn``, ``gru``).
* A :class:`handgrad.model.GPT`: input ``"idx"``, int64 ``(N, T)`` with ``T <= block_size``
  (the file's metadata records ``block_size``; a longer input fails in the runtime), output
  ``"logits"`` ``(N, T, vocab_size)``.

``N`` (and ``T``) are dynamic: any batch size, any length. Opset 17 (ONNX 1.12, 2022), the
first with ``LayerNormalization`` as one operator; GELU is written with ``Erf`` / ``Tanh``
(the ``Gelu`` operator needs opset 20, which fewer runtimes read), so older runtimes load it.

Layers, and the ONNX operators they become: Affine (``Gemm``, or ``MatMul`` + ``Add`` on
``(N, T, D)``), Relu, Sigmoid, Tanh, GELU (both formulas), Dropout (``Identity``), BatchNorm
(``BatchNormalization``; over ``(N, T, C)`` between two ``Transpose``), Convolution (``Conv``), Pooling (``MaxPool``), AvgPooling
(``AveragePool``, padding counted, as handgrad does), Flatten, Reshape, FlattenConsecutive
(``Reshape`` to a shape computed from one sample's), LastStep (``Gather``),
Embedding (``Gather``), PositionEmbedding (``Slice`` of its rows + ``Add``), PreviousTokens
(``Pad`` with the blank id, then one ``Slice`` per step back), CausalMean (``CumSum`` times
``1 / (t + 1)``), LayerNorm (``LayerNormalization``), MultiHeadAttention (its
projections, a ``Softmax`` and the causal mask, written out), RNN, LSTM and GRU (ONNX's own
``RNN`` / ``LSTM`` / ``GRU``, gates reordered; not ``stateful=True``, whose state outlives a
call), Chain and Residual (their children). Anything else (a layer type of your own, a
two-input ``Attention``, a ``Seq2seq`` model) is refused with :class:`OnnxExportError`, naming
the layer's path and type: never exported wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._version import __version__
from .layers import (GELU, GRU, LSTM, RNN, Affine, AvgPooling, BatchNorm, CausalMean, Chain, Convolution, Dropout,
                     Embedding, Flatten, FlattenConsecutive, LastStep, Layer, LayerNorm, MultiHeadAttention, Pooling,
                     PositionEmbedding, PreviousTokens, Relu, Reshape, Residual, Sigmoid, Tanh)

__all__ = ["export_onnx", "to_onnx", "signature", "OnnxExportError", "OPSET"]

#: The ONNX operator set the files use (LayerNormalization needs 17).
OPSET = 17
#: The IR version of ONNX 1.12, the release that brought opset 17: runtimes of that age read it.
IR_VERSION = 8


class OnnxExportError(ValueError):
    """A model or layer that cannot be exported (yet), or an input shape it cannot take."""


def _require_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError('ONNX export needs the onnx package: pip install "handgrad[onnx]"') from error
    return onnx


@dataclass(frozen=True)
class _Value:
    """A tensor of the graph: its name, its shape (ints, or names of dynamic axes: ``"N"``,
    ``"T"``; None where unknown) and whether it holds token ids (int64) rather than floats."""

    name: str
    shape: tuple
    ids: bool = False


def _text(shape: tuple) -> str:
    """A shape as it reads in handgrad's messages: ``(N, 1, 28, 28)``."""
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _refuse(path: str, layer, reason: str) -> OnnxExportError:
    return OnnxExportError(f"layer {path} ({type(layer).__name__}): cannot export to ONNX: {reason}")


class _Graph:
    """The nodes and weights of the graph being built, with unique names."""

    def __init__(self, onnx) -> None:
        self.onnx = onnx
        self.nodes, self.initializers = [], []
        self._used: set[str] = set()
        self._scalars: dict = {}

    def _unique(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._used:
            i += 1
            name = f"{hint}_{i}"
        self._used.add(name)
        return name

    def reserve(self, name: str) -> str:
        """Claim a name (the graph's input and output)."""
        return self._unique(name)

    def weight(self, name: str, array, dtype=np.float32) -> str:
        """A constant tensor (a weight), float32 unless ``dtype`` says otherwise."""
        name = self._unique(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def scalar(self, value: float) -> str:
        """A float32 scalar constant, shared by every node that uses the same value."""
        if value not in self._scalars:
            self._scalars[value] = self.weight(f"const_{value:g}", np.float32(value))
        return self._scalars[value]

    def ints(self, name: str, values) -> str:
        return self.weight(name, np.asarray(values, dtype=np.int64), dtype=np.int64)

    def node(self, op: str, inputs: list, where: str, outputs: int = 1, **attributes):
        """Add one ``op`` node named ``where/op``; returns its output name (or names)."""
        names = [self._unique(f"{where}/{op}" + (f":{i}" if outputs > 1 else "")) for i in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op, inputs, names, name=self._unique(f"{where}/{op}#node"),
                                                     **attributes))
        return names[0] if outputs == 1 else names


# --- one function per layer type: (graph, layer, input value, path) -> output value ------------------


def _per_sample(shape: tuple) -> int | None:
    """Values per sample, if every axis after the batch is known."""
    rest = shape[1:]
    return int(np.prod(rest)) if all(isinstance(d, int) for d in rest) else None


def _add_bias(g: _Graph, y: str, b, path: str) -> str:
    return g.node("Add", [y, g.weight(f"{path}.b", b)], path)


def _affine(g: _Graph, layer: Affine, x: _Value, path: str) -> _Value:
    W, b = layer.params["W"], layer.params["b"]
    n_in, n_out = W.shape
    if len(x.shape) == 3 and x.shape[-1] == n_in:  # a sequence (N, T, in): the last axis, as handgrad
        y = _add_bias(g, g.node("MatMul", [x.name, g.weight(f"{path}.W", W)], path), b, path)
        return _Value(y, x.shape[:-1] + (n_out,))
    if _per_sample(x.shape) != n_in:
        raise _refuse(path, layer, f"expects (N, {n_in}) or (N, *) with {n_in} values per sample, "
                                   f"its input here has shape {_text(x.shape)}")
    rows = x.name if len(x.shape) == 2 else g.node("Flatten", [x.name], path, axis=1)
    y = g.node("Gemm", [rows, g.weight(f"{path}.W", W), g.weight(f"{path}.b", b)], path)
    return _Value(y, (x.shape[0], n_out))


def _elementwise(op: str):
    def convert(g: _Graph, layer: Layer, x: _Value, path: str) -> _Value:
        return _Value(g.node(op, [x.name], path), x.shape)
    return convert


def _gelu(g: _Graph, layer: GELU, x: _Value, path: str) -> _Value:
    """``x Phi(x)``, ``Phi(x) = (1 + erf(x / sqrt 2)) / 2``; or the tanh formula
    ``x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2``."""
    if layer.approximate == "none":
        inner = g.node("Erf", [g.node("Mul", [x.name, g.scalar(1 / math.sqrt(2))], path)], path)
    else:
        cube = g.node("Mul", [g.node("Mul", [x.name, x.name], path), x.name], path)
        u = g.node("Add", [x.name, g.node("Mul", [cube, g.scalar(0.044715)], path)], path)
        inner = g.node("Tanh", [g.node("Mul", [u, g.scalar(math.sqrt(2 / math.pi))], path)], path)
    gate = g.node("Mul", [g.node("Add", [inner, g.scalar(1.0)], path), g.scalar(0.5)], path)
    return _Value(g.node("Mul", [x.name, gate], path), x.shape)


def _identity(g: _Graph, layer: Dropout, x: _Value, path: str) -> _Value:
    return _Value(g.node("Identity", [x.name], path), x.shape, x.ids)  # dropout at inference


def _batchnorm(g: _Graph, layer: BatchNorm, x: _Value, path: str) -> _Value:
    sequence = len(x.shape) == 3  # (N, T, C): ONNX normalises axis 1, so the features go there and back
    if len(x.shape) not in (2, 3, 4) or x.shape[2 if sequence else 1] != layer.num_features:
        raise _refuse(path, layer, f"expects (N, {layer.num_features}), (N, T, {layer.num_features}) or "
                                   f"(N, {layer.num_features}, H, W), its input here has shape {_text(x.shape)}")
    name = g.node("Transpose", [x.name], f"{path}.to_channels", perm=[0, 2, 1]) if sequence else x.name
    inputs = [name] + [g.weight(f"{path}.{key}", value) for key, value in
                       (("gamma", layer.params["gamma"]), ("beta", layer.params["beta"]),
                        ("running_mean", layer.buffers["running_mean"]),
                        ("running_var", layer.buffers["running_var"]))]
    out = g.node("BatchNormalization", inputs, path, epsilon=layer.eps)
    if sequence:
        out = g.node("Transpose", [out], f"{path}.from_channels", perm=[0, 2, 1])
    return _Value(out, x.shape)


def _window_output(layer, x: _Value, path: str, kh: int, kw: int, channels: int | None) -> tuple:
    """(OH, OW) of a convolution or pooling window over ``x`` (N, C, H, W)."""
    if len(x.shape) != 4 or (channels is not None and x.shape[1] != channels):
        raise _refuse(path, layer, f"expects (N, {channels or 'C'}, H, W), its input here has shape {_text(x.shape)}")
    h, w = x.shape[2:]
    oh, ow = ((size + 2 * layer.pad - k) // layer.stride + 1 for size, k in ((h, kh), (w, kw)))
    if oh < 1 or ow < 1:
        raise _refuse(path, layer, f"a ({kh}, {kw}) window with pad {layer.pad} does not fit its input {_text(x.shape)}")
    return oh, ow


def _convolution(g: _Graph, layer: Convolution, x: _Value, path: str) -> _Value:
    fn, c, fh, fw = layer.W.shape
    oh, ow = _window_output(layer, x, path, fh, fw, c)
    y = g.node("Conv", [x.name, g.weight(f"{path}.W", layer.W), g.weight(f"{path}.b", layer.b)], path,
               kernel_shape=[fh, fw], strides=[layer.stride] * 2, pads=[layer.pad] * 4)
    return _Value(y, (x.shape[0], fn, oh, ow))


def _pooling(op: str, **extra):
    def convert(g: _Graph, layer, x: _Value, path: str) -> _Value:
        oh, ow = _window_output(layer, x, path, layer.pool_h, layer.pool_w, None)
        y = g.node(op, [x.name], path, kernel_shape=[layer.pool_h, layer.pool_w], strides=[layer.stride] * 2,
                   pads=[layer.pad] * 4, **extra)
        return _Value(y, x.shape[:2] + (oh, ow))
    return convert


def _flatten(g: _Graph, layer: Flatten, x: _Value, path: str) -> _Value:
    return _Value(g.node("Flatten", [x.name], path, axis=1), (x.shape[0], _per_sample(x.shape)))


def _reshape(g: _Graph, layer: Reshape, x: _Value, path: str) -> _Value:
    per_sample, known = _per_sample(x.shape), int(np.prod([s for s in layer.shape if s != -1]))
    shape = layer.shape
    if per_sample is not None:
        if -1 in shape and per_sample % known == 0:
            shape = tuple(per_sample // known if s == -1 else s for s in shape)
        if int(np.prod(shape)) != per_sample or -1 in shape:
            raise _refuse(path, layer, f"cannot reshape its input {_text(x.shape)} to (N, *{layer.shape})")
    else:
        # One axis of unknown length (a sequence's T) and the rest of the values exactly what the
        # known target axes hold: -1 is that axis, and keeps its name ((N, T, K, C) -> (N, T, K C)).
        unknown = [d for d in x.shape[1:] if not isinstance(d, int)]
        rest = int(np.prod([d for d in x.shape[1:] if isinstance(d, int)]))
        if len(unknown) == 1 and unknown[0] is not None and -1 in shape and rest == known:
            shape = tuple(unknown[0] if s == -1 else s for s in shape)
    # 0 copies the batch axis (ONNX's Reshape); -1 is inferred, as in NumPy.
    y = g.node("Reshape", [x.name, g.ints(f"{path}.shape", (0,) + layer.shape)], path)
    return _Value(y, (x.shape[0],) + tuple(s if s != -1 else None for s in shape), x.ids)


def _flatten_consecutive(g: _Graph, layer: FlattenConsecutive, x: _Value, path: str) -> _Value:
    """``(N, T, C) -> (N, T // n, C n)``, or ``(N, C n)`` when ``T == n``: one ``Reshape`` to the
    shape computed here from the layer and one sample's shape (0 copies the batch axis). T and C
    must be known: whether the time axis stays depends on T, and a graph has one output rank."""
    if len(x.shape) != 3 or not all(isinstance(d, int) for d in x.shape[1:]):
        raise _refuse(path, layer, f"expects (N, T, C) with T and C known (whether the time axis stays depends on "
                                   f"T // n), its input here has shape {_text(x.shape)}; give input_shape=(T, C)")
    if x.shape[1] % layer.n:
        raise _refuse(path, layer, f"expects (N, T, C) with T a multiple of n = {layer.n}, its input here has "
                                   f"shape {_text(x.shape)}")
    per_sample = layer.output_shape((1,) + x.shape[1:])[1:]
    y = g.node("Reshape", [x.name, g.ints(f"{path}.shape", (0,) + per_sample)], path)
    return _Value(y, x.shape[:1] + per_sample, x.ids)


def _last_step(g: _Graph, layer: LastStep, x: _Value, path: str) -> _Value:
    if len(x.shape) < 2:
        raise _refuse(path, layer, f"expects (N, T, *), its input here has shape {_text(x.shape)}")
    y = g.node("Gather", [x.name, g.ints(f"{path}.last", -1)], path, axis=1)
    return _Value(y, x.shape[:1] + x.shape[2:], x.ids)


def _embedding(g: _Graph, layer: Embedding, x: _Value, path: str) -> _Value:
    if not x.ids or len(x.shape) not in (1, 2, 3):
        raise _refuse(path, layer, f"expects integer token ids (N,), (N, T) or (N, T, K), its input here is "
                                   f"{'ids' if x.ids else 'floats'} of shape {_text(x.shape)}")
    y = g.node("Gather", [g.weight(f"{path}.W", layer.W), x.name], path, axis=0)
    return _Value(y, x.shape + (layer.W.shape[1],))


def _length(g: _Graph, x: str, path: str) -> str:
    """T, the length of ``x`` (N, T, ...) at run time, as a 1-element int64 tensor."""
    return g.node("Shape", [x], path, start=1, end=2)


def _position_embedding(g: _Graph, layer: PositionEmbedding, x: _Value, path: str) -> _Value:
    """``x + W[0 .. T-1]``: the first T rows of W, for the T of the input at run time."""
    block_size, dim = layer.W.shape
    if len(x.shape) != 3 or x.shape[-1] != dim or (isinstance(x.shape[1], int) and x.shape[1] > block_size):
        raise _refuse(path, layer, f"expects (N, T, {dim}) with T <= {block_size}, its input here has shape "
                                   f"{_text(x.shape)}")
    rows = g.node("Slice", [g.weight(f"{path}.W", layer.W), g.ints(f"{path}.start", [0]), _length(g, x.name, path)],
                  path)  # (T, D); a T beyond block_size gives fewer rows, and Add then fails in the runtime
    return _Value(g.node("Add", [x.name, rows], path), x.shape)


def _previous_tokens(g: _Graph, layer: PreviousTokens, x: _Value, path: str) -> _Value:
    """``y[n, t, k] = x[n, t - k]`` or the blank id before the start: x padded on the left with
    ``block_size - 1`` blanks, then for each k the T columns that start ``block_size - 1 - k`` in."""
    if not x.ids or len(x.shape) != 2:
        raise _refuse(path, layer, f"expects integer token ids (N, T), its input here is "
                                   f"{'ids' if x.ids else 'floats'} of shape {_text(x.shape)}")
    back = layer.block_size - 1
    padded = g.node("Pad", [x.name, g.ints(f"{path}.pads", [0, back, 0, 0]), g.ints(f"{path}.blank", layer.blank)],
                    path)  # (N, back + T)
    length = _length(g, x.name, path)
    steps = []
    for k in range(layer.block_size):
        start = g.ints(f"{path}.start{k}", [back - k])
        stop = g.node("Add", [length, start], path)
        column = g.node("Slice", [padded, start, stop, g.ints(f"{path}.axis", [1])], path)  # x[:, t - k]
        steps.append(g.node("Unsqueeze", [column, g.ints(f"{path}.last", [2])], path))
    y = g.node("Concat", steps, path, axis=2) if len(steps) > 1 else steps[0]
    return _Value(y, x.shape + (layer.block_size,), ids=True)


def _causal_mean(g: _Graph, layer: CausalMean, x: _Value, path: str) -> _Value:
    """``cumsum(x, axis 1) / (t + 1)``, the weights ``1 / (t + 1)`` built for the T at run time."""
    if len(x.shape) != 3:
        raise _refuse(path, layer, f"expects (N, T, C), its input here has shape {_text(x.shape)}")
    sums = g.node("CumSum", [x.name, g.ints(f"{path}.axis", 1)], path)
    length = g.node("Cast", [g.node("Reshape", [_length(g, x.name, path), g.ints(f"{path}.scalar", [])], path)],
                    path, to=g.onnx.TensorProto.FLOAT)
    counts = g.node("Range", [g.scalar(1.0), g.node("Add", [length, g.scalar(1.0)], path), g.scalar(1.0)], path)
    weights = g.node("Unsqueeze", [g.node("Reciprocal", [counts], path), g.ints(f"{path}.column", [1])], path)
    return _Value(g.node("Mul", [sums, weights], path), x.shape)  # (N, T, C) * (T, 1)


def _layernorm(g: _Graph, layer: LayerNorm, x: _Value, path: str) -> _Value:
    if x.shape[-1] != layer.num_features:
        raise _refuse(path, layer, f"expects (..., {layer.num_features}), its input here has shape {_text(x.shape)}")
    inputs = [x.name, g.weight(f"{path}.gamma", layer.gamma), g.weight(f"{path}.beta", layer.beta)]
    return _Value(g.node("LayerNormalization", inputs, path, axis=-1, epsilon=layer.eps), x.shape)


def _causal_scores(g: _Graph, scores: str, x: str, path: str) -> str:
    """``scores`` (N, heads, T, T) with ``-inf`` where key j comes after query i, for any T (the
    mask is built from x's length at run time)."""
    length = g.node("Reshape", [g.node("Shape", [x], path, start=1, end=2), g.ints(f"{path}.scalar", [])], path)
    positions = g.node("Range", [g.ints(f"{path}.zero", 0), length, g.ints(f"{path}.one", 1)], path)
    queries = g.node("Unsqueeze", [positions, g.ints(f"{path}.axis1", [1])], path)   # (T, 1)
    keys = g.node("Unsqueeze", [positions, g.ints(f"{path}.axis0", [0])], path)      # (1, T)
    future = g.node("Greater", [keys, queries], path)                                # (T, T): j > i
    return g.node("Where", [future, g.scalar(-np.inf), scores], path)


def _attention(g: _Graph, layer: MultiHeadAttention, x: _Value, path: str) -> _Value:
    """``[q | k | v] = x W_qkv + b_qkv``, per head ``softmax(q k^T / sqrt(hd) + mask) v``, the heads
    side by side, ``W_o``, ``b_o`` (see MultiHeadAttention)."""
    D, H, hd = layer.dim, layer.n_heads, layer.head_dim
    if len(x.shape) != 3 or x.shape[-1] != D:
        raise _refuse(path, layer, f"expects (N, T, {D}), its input here has shape {_text(x.shape)}")
    p = layer.params
    qkv = g.node("Add", [g.node("MatMul", [x.name, g.weight(f"{path}.W_qkv", p["W_qkv"])], path),
                         g.weight(f"{path}.b_qkv", p["b_qkv"])], path)                       # (N, T, 3D)
    qkv = g.node("Reshape", [qkv, g.ints(f"{path}.qkv_shape", [0, 0, 3, H, hd])], path)
    qkv = g.node("Transpose", [qkv], path, perm=[2, 0, 3, 1, 4])                             # (3, N, H, T, hd)
    q, k, v = (g.node("Gather", [qkv, g.ints(f"{path}.{part}", i)], path, axis=0) for i, part in enumerate("qkv"))
    q = g.node("Mul", [q, g.scalar(1 / math.sqrt(hd))], path)
    scores = g.node("MatMul", [q, g.node("Transpose", [k], path, perm=[0, 1, 3, 2])], path)  # (N, H, T, T)
    if layer.causal:
        scores = _causal_scores(g, scores, x.name, path)
    weights = g.node("Softmax", [scores], path, axis=-1)
    heads = g.node("Transpose", [g.node("MatMul", [weights, v], path)], path, perm=[0, 2, 1, 3])  # (N, T, H, hd)
    heads = g.node("Reshape", [heads, g.ints(f"{path}.heads_shape", [0, 0, D])], path)
    y = g.node("Add", [g.node("MatMul", [heads, g.weight(f"{path}.W_o", p["W_o"])], path),
                       g.weight(f"{path}.b_o", p["b_o"])], path)
    return _Value(y, x.shape)


def _gate_blocks(matrix: np.ndarray, order: tuple, H: int) -> np.ndarray:
    """The gate blocks of ``matrix`` (columns, H each) rearranged into ``order``."""
    return np.concatenate([matrix[..., k * H:(k + 1) * H] for k in order], axis=-1)


def _recurrent(op: str, order: tuple):
    """handgrad's RNN / LSTM / GRU as ONNX's operator: weights ``W`` (1, G H, D) = Wx^T and
    ``R`` (1, G H, H) = Wh^T with the gate blocks in ONNX's order (LSTM i o f c, handgrad i f g o;
    GRU z r h, handgrad r z n), ``B`` = [input biases | recurrent biases]; the sequence goes
    time-major through the operator and back to (N, T, H); the initial state is zero."""

    def convert(g: _Graph, layer, x: _Value, path: str) -> _Value:
        if layer.stateful:
            raise _refuse(path, layer, "stateful=True carries its state from one call to the next, which an "
                                       "ONNX graph cannot; export a copy with stateful=False")
        H, D = layer.hidden_size, layer.input_size
        if len(x.shape) != 3 or x.shape[-1] != D:
            raise _refuse(path, layer, f"expects (N, T, {D}), its input here has shape {_text(x.shape)}")
        p = layer.params
        W = _gate_blocks(p["Wx"], order, H).T[None]
        R = _gate_blocks(p["Wh"], order, H).T[None]
        if op == "GRU":
            biases = np.concatenate([_gate_blocks(p["bx"], order, H), _gate_blocks(p["bh"], order, H)])
            extra = {"linear_before_reset": 1}  # PyTorch's (and handgrad's) n = tanh(.. + r (h Wh_n + bh_n))
        else:  # one bias b = PyTorch's two summed: all of it on the input side
            biases = np.concatenate([_gate_blocks(p["b"], order, H), np.zeros_like(p["b"])])
            extra = {}
        time_major = g.node("Transpose", [x.name], path, perm=[1, 0, 2])                       # (T, N, D)
        inputs = [time_major, g.weight(f"{path}.W", W), g.weight(f"{path}.R", R), g.weight(f"{path}.B", biases[None])]
        states = g.node(op, inputs, path, hidden_size=H, **extra)                             # (T, 1, N, H)
        states = g.node("Squeeze", [states, g.ints(f"{path}.direction_axis", [1])], path)
        return _Value(g.node("Transpose", [states], path, perm=[1, 0, 2]), x.shape[:2] + (H,))
    return convert


def _chain(g: _Graph, layer: Chain, x: _Value, path: str) -> _Value:
    for name, child in layer.children():
        x = _convert(g, child, x, f"{path}.{name}")
    return x


def _residual(g: _Graph, layer: Residual, x: _Value, path: str) -> _Value:
    body = _convert(g, layer.body, x, f"{path}.body")
    if body.shape != x.shape:
        raise _refuse(path, layer, f"its body changes the shape {_text(x.shape)} to {_text(body.shape)}")
    return _Value(g.node("Add", [x.name, body.name], path), x.shape)


#: The exportable layer types, by exact type: a subclass may compute something else, so it is
#: refused rather than exported as its parent.
CONVERTERS = {
    Affine: _affine, Relu: _elementwise("Relu"), Sigmoid: _elementwise("Sigmoid"), Tanh: _elementwise("Tanh"),
    GELU: _gelu, Dropout: _identity, BatchNorm: _batchnorm, Convolution: _convolution,
    Pooling: _pooling("MaxPool"), AvgPooling: _pooling("AveragePool", count_include_pad=1), Flatten: _flatten,
    Reshape: _reshape, FlattenConsecutive: _flatten_consecutive, LastStep: _last_step, Embedding: _embedding,
    LayerNorm: _layernorm,
    MultiHeadAttention: _attention, RNN: _recurrent("RNN", (0,)), LSTM: _recurrent("LSTM", (0, 3, 1, 2)),
    GRU: _recurrent("GRU", (1, 0, 2)), Chain: _chain, Residual: _residual,
    PositionEmbedding: _position_embedding, PreviousTokens: _previous_tokens, CausalMean: _causal_mean,
}


def _convert(g: _Graph, layer: Layer, x: _Value, path: str) -> _Value:
    converter = CONVERTERS.get(type(layer))
    if converter is None:
        known = ", ".join(sorted(cls.__name__ for cls in CONVERTERS))
        raise _refuse(path, layer, f"no ONNX form for this layer type yet (exportable: {known})")
    if x.ids and type(layer) not in (Embedding, PreviousTokens, Reshape, FlattenConsecutive, LastStep, Dropout):
        raise _refuse(path, layer, "its input is integer token ids; only an Embedding can read them")
    return converter(g, layer, x, path)


# --- whole models ------------------------------------------------------------------------------------


def _sequential_graph(g: _Graph, model, input_shape) -> tuple:
    first = model.layers[0] if model.layers else None
    ids = isinstance(first, (Embedding, PreviousTokens))
    if input_shape is None:
        input_shape = model.input_shape
    if input_shape is None and ids:
        input_shape = ("T",)
    if input_shape is None and isinstance(first, Affine):
        input_shape = (first.W.shape[0],)
    if input_shape is None:
        raise OnnxExportError(f"export_onnx: cannot tell the shape of one sample of this {type(model).__name__}; "
                              "give input_shape=(C, H, W) (or (features,))")
    shape = ("N",) + tuple(input_shape)
    x = _Value(g.reserve("x"), shape, ids)
    value = x
    for index, layer in enumerate(model.layers):
        value = _convert(g, layer, value, str(index))
    return x, value, "scores", {}


def _gpt_graph(g: _Graph, model) -> tuple:
    """nanoGPT's forward: ``x = wte[idx] + wpe[0 .. T-1]``, the blocks
    ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))``, ``logits = ln_f(x) wte^T`` (or ``ln_f(x) W_head``, untied)."""
    from .model.gpt import _Block, _MLP

    c = dict(model.children())
    idx = _Value(g.reserve("idx"), ("N", "T"), ids=True)
    x = _embedding(g, c["wte"], idx, "wte")
    length = g.node("Shape", [idx.name], "wpe", start=1, end=2)
    positions = g.node("Slice", [g.weight("wpe.W", c["wpe"].W), g.ints("wpe.start", [0]), length], "wpe")  # (T, C)
    x = _Value(g.node("Add", [x.name, positions], "wpe"), x.shape)
    for i, block in enumerate(model.blocks):
        path = f"h.{i}"
        if type(block) is not _Block or type(block._children["mlp"]) is not _MLP:
            raise _refuse(path, block, "not the GPT's own block")
        b = dict(block.children())
        a = _attention(g, b["attn"], _layernorm(g, b["ln_1"], x, f"{path}.ln_1"), f"{path}.attn")
        x = _Value(g.node("Add", [x.name, a.name], path), x.shape)       # dropout: the identity
        m = _chain(g, b["mlp"], _layernorm(g, b["ln_2"], x, f"{path}.ln_2"), f"{path}.mlp")
        x = _Value(g.node("Add", [x.name, m.name], path), x.shape)
    x = _layernorm(g, c["ln_f"], x, "ln_f")
    if model.tied_head:
        head = g.node("Transpose", [g.weight("lm_head.W", c["wte"].W)], "lm_head", perm=[1, 0])  # wte^T (C, V)
    else:
        head = g.weight("lm_head.W", c["lm_head"].W)                                              # (C, V)
    logits = _Value(g.node("MatMul", [x.name, head], "lm_head"), ("N", "T", model.vocab_size))
    return idx, logits, "logits", {"handgrad.block_size": str(model.block_size)}


def to_onnx(model, input_shape=None):
    """The ONNX graph (an ``onnx.ModelProto``, opset 17, checked by ``onnx.checker``) of
    ``model``'s inference in float32: see the module's description for inputs, outputs and the
    layers it takes. ``input_shape``: one sample's shape for a Sequential that does not record
    it (``model.input_shape``) and does not start with an Affine. Raises
    :class:`OnnxExportError` for a model or layer it cannot export."""
    from .model import GPT, Sequential

    onnx = _require_onnx()
    helper = onnx.helper
    g = _Graph(onnx)
    if isinstance(model, GPT) and type(model) is GPT:
        x, y, output_name, metadata = _gpt_graph(g, model)
    elif isinstance(model, Sequential):
        x, y, output_name, metadata = _sequential_graph(g, model, input_shape)
    else:
        raise OnnxExportError(f"export_onnx: a {type(model).__name__} cannot be exported to ONNX yet; exportable: "
                              "Sequential models (mlp, cnn, deep-cnn, lstm, your own) and GPT")
    output = g.reserve(output_name)
    g.nodes.append(helper.make_node("Identity", [y.name], [output], name=f"{output_name}#node"))

    def info(name: str, value: _Value, ids: bool):
        dims = [d if isinstance(d, int) else (d or None) for d in value.shape]
        return helper.make_tensor_value_info(name, onnx.TensorProto.INT64 if ids else onnx.TensorProto.FLOAT, dims)

    graph = helper.make_graph(g.nodes, f"handgrad {type(model).__name__}", [info(x.name, x, x.ids)],
                              [info(output, y, y.ids)], initializer=g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="handgrad", producer_version=__version__,
                              doc_string=f"{model!r:.500}: the scores before any softmax (no loss layer)")
    helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path, input_shape=None, *, force: bool = False) -> Path:
    """Write ``model``'s inference graph to the ONNX file ``path`` (to a temporary name beside
    it, then renamed: a reader never sees half a file) and return the path. See :func:`to_onnx`.

    ``path`` must end in ``.onnx``: the file is binary protobuf, and ONNX's own tools read a
    ``.json`` or ``.textproto`` name as text. An existing file there is replaced only if it is an
    ONNX model itself (an earlier export), or with ``force=True``: ``--onnx history.json`` must
    not destroy the run's history.

    Run it with onnxruntime::

        import onnxruntime
        session = onnxruntime.InferenceSession("model.onnx")
        scores = session.run(None, {"x": x.astype(np.float32)})[0]   # a GPT: {"idx": ids (int64)}
    """
    from .serialize import atomic_write_bytes

    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"{path}: an ONNX file's name ends in .onnx (it is written as binary protobuf), "
                         f"not {path.suffix or 'no extension'!r}")
    onnx = _require_onnx()
    if path.is_file() and not force and not _is_onnx_model(onnx, path):
        raise ValueError(f"{path} exists and is not an ONNX model; choose another name, or pass force=True "
                         "(--force) to replace it")
    proto = to_onnx(model, input_shape)
    atomic_write_bytes(path, [proto.SerializeToString()])
    return path


def _is_onnx_model(onnx, path: Path) -> bool:
    """Whether ``path`` holds an ONNX model: binary protobuf with a graph of at least one node
    (protobuf parses many a short byte string as an empty message)."""
    try:
        model = onnx.load_model(str(path), format="protobuf", load_external_data=False)
    except Exception:  # noqa: BLE001 -- protobuf raises its own DecodeError and others; any failure means "no"
        return False
    return len(model.graph.node) > 0 and model.ir_version > 0


def signature(model) -> str:
    """One line naming an ONNX model's inputs and outputs with their shapes and types, e.g.
    ``"x (N, 64) float32 -> scores (N, 10) float32"``; ``model`` is an ``onnx.ModelProto`` or
    the path of an ONNX file."""
    onnx = _require_onnx()
    if not isinstance(model, onnx.ModelProto):  # always binary protobuf, whatever the file's name
        model = onnx.load_model(str(model), format="protobuf", load_external_data=False)

    def describe(values) -> str:
        parts = []
        for value in values:
            tensor = value.type.tensor_type
            dims = ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                             for d in tensor.shape.dim)
            parts.append(f"{value.name} ({dims}) {onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)}")
        return ", ".join(parts)

    return f"{describe(model.graph.input)} -> {describe(model.graph.output)}"
