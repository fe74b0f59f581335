"""ONNX export: every exported layer and ready model, run in onnxruntime, gives handgrad's own
predictions (float32, 1e-5); what cannot be exported is refused, naming the layer."""

from __future__ import annotations

import os

import numpy as np
import pytest

import handgrad as hg
from layer_cases import CASES, case_id

from handgrad.layers import (GRU, LSTM, RNN, Affine, Attention, BatchNorm, Chain, Convolution, Embedding,
                             FlattenConsecutive, Layer, LayerNorm, MultiHeadAttention, Relu, Residual, Tanh)
from handgrad.model import GPT, DeepConvNet, Sequential, SimpleConvNet
from handgrad.onnx_export import CONVERTERS, OPSET, OnnxExportError, signature, to_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = dict(rtol=1e-5, atol=1e-5)  # float32 on both sides


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(*shape, seed=0, scale=1.0):
    return (rng(seed).standard_normal(shape) * scale).astype(np.float32)


def session(proto):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the test machines are small and shared
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def onnx_output(proto, x):
    sess = session(proto)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def handgrad_output(model, x):
    with model.mode(False):
        return model.predict(x)


def assert_exports(model, *inputs, input_shape=None):
    """Export ``model`` once and compare onnxruntime with handgrad on every input (batches and
    lengths may differ: the exported axes are dynamic)."""
    proto = to_onnx(model, input_shape)
    for x in inputs:
        expected = handgrad_output(model, x)
        got = onnx_output(proto, x)
        # Scores are float32; a model that ends in ids (PreviousTokens alone) gives int64 ids.
        assert got.dtype == (np.int64 if expected.dtype.kind in "iu" else np.float32) and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, **TOL)
    return proto


def randomize(model, scale=0.5, seed=1):
    """Weights far from their initial values (a GPT's 0.02 would make every logit ~0)."""
    generator = rng(seed)
    for value in model.params.values():
        value[...] = generator.standard_normal(value.shape) * scale


# --- each layer alone ------------------------------------------------------------------------------


def alone(layer):
    return Sequential([layer])


@pytest.mark.parametrize("case", [case for case in CASES if case.onnx], ids=case_id)
def test_every_exportable_case_alone_matches_handgrad(case):
    """Every row of tests/layer_cases.py with ``onnx``, on its batch and on a batch of one."""
    layer, (x,), _ = case.build(np.float32)
    input_shape = case.onnx if isinstance(case.onnx, tuple) else x.shape[1:]
    assert_exports(alone(layer), x, x[:1], input_shape=input_shape)


def test_the_table_of_layer_cases_covers_every_converter():
    exportable = {cls.__name__ for cls in CONVERTERS}
    rows = {case.layer_type for case in CASES if case.onnx}
    assert rows == exportable, f"converters without a row: {sorted(exportable - rows)}; " \
                               f"rows without a converter: {sorted(rows - exportable)}"


def test_flatten_consecutive_needs_a_known_length_that_n_divides():
    """Its output's rank depends on whether T // n is 1, which a graph with a dynamic T cannot know."""
    with pytest.raises(OnnxExportError, match=r"layer 0 \(FlattenConsecutive\): .*T and C known.*\(N, T, 3\)"):
        to_onnx(Sequential([FlattenConsecutive(2)]), input_shape=("T", 3))
    with pytest.raises(OnnxExportError, match=r"layer 0 \(FlattenConsecutive\): .*T a multiple of n = 2.*\(N, 5, 3\)"):
        to_onnx(Sequential([FlattenConsecutive(2)]), input_shape=(5, 3))


def test_a_wavenet_of_flatten_consecutive_layers_exports():
    """makemore part 5's hierarchy: 8 characters, fused two by two three times, then the scores."""
    C, H = 4, 6
    model = Sequential([Embedding(randn(11, C)),
                        FlattenConsecutive(2), Affine(randn(2 * C, H, seed=1), randn(H, seed=2)), Tanh(),
                        FlattenConsecutive(2), Affine(randn(2 * H, H, seed=3), randn(H, seed=4)), Tanh(),
                        FlattenConsecutive(2), Affine(randn(2 * H, H, seed=5), randn(H, seed=6)), Tanh(),
                        Affine(randn(H, 11, seed=7), randn(11, seed=8))], input_shape=(8,))
    ids = rng(9).integers(0, 11, (5, 8))
    proto = assert_exports(model, ids, ids[:1])
    assert signature(proto) == "x (N, 8) int64 -> scores (N, 11) float32"


@pytest.mark.parametrize("input_shape", [(6,), (6, 5, 4)])
def test_batchnorm_exports_its_inference_form_with_the_running_statistics(input_shape):
    layer = BatchNorm(6, momentum=0.5)
    layer.params["gamma"][...] = randn(6, seed=1) + 1
    layer.params["beta"][...] = randn(6, seed=2)
    model = alone(layer)
    model.train()
    for seed in range(3):  # move the running statistics away from 0 and 1
        model.predict(randn(8, *input_shape, seed=seed, scale=3.0) + 2)
    assert not np.allclose(layer.buffers["running_mean"], 0)
    model.train()  # exported in either mode: the graph is always the inference form
    assert_exports(model, randn(5, *input_shape, seed=9), input_shape=input_shape)


def test_embedding_exports_as_a_lookup_of_int64_ids():
    model = Sequential([Embedding(randn(11, 4)), Affine(randn(4, 3), randn(3, seed=1))])
    ids = rng().integers(0, 11, (3, 5))
    proto = assert_exports(model, ids, ids[:, :2])
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert_exports(alone(Embedding(randn(11, 4))), rng().integers(0, 11, (6,)), input_shape=())


@pytest.mark.parametrize("causal", [True, False])
def test_attention_exports_for_any_length(causal):
    D, heads = 8, 2
    layer = MultiHeadAttention(randn(D, 3 * D, scale=0.5), randn(3 * D, seed=1), randn(D, D, seed=2, scale=0.5),
                               randn(D, seed=3), n_heads=heads, causal=causal)
    assert_exports(alone(layer), randn(3, 5, D, seed=4), randn(2, 1, D, seed=5), randn(1, 9, D, seed=6),
                   input_shape=("T", D))


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_recurrent_layers_export_with_their_gates_in_onnx_order(cls):
    D, H, gates = 3, 4, {RNN: 1, LSTM: 4, GRU: 3}[cls]
    weights = [randn(D, gates * H, seed=1), randn(H, gates * H, seed=2), randn(gates * H, seed=3)]
    if cls is GRU:
        weights.append(randn(gates * H, seed=4))
    assert_exports(alone(cls(*weights)), randn(2, 6, D, seed=5), randn(4, 1, D, seed=6), input_shape=("T", D))


def test_composite_layers_export_their_children():
    body = Chain([Affine(randn(5, 5), randn(5, seed=1)), Tanh(), LayerNorm(5)])
    model = Sequential([Residual(body), Residual(Relu()), Affine(randn(5, 2, seed=2), randn(2, seed=3))])
    assert_exports(model, randn(4, 5, seed=4), input_shape=(5,))


# --- the ready models ------------------------------------------------------------------------------


def test_mlp_with_batchnorm_and_dropout_trained_a_little():
    model = hg.mlp(64, [32, 16], 10, batchnorm=True, dropout=0.2, seed=0)
    opt = hg.optim.Adam(lr=1e-2)
    x, t = randn(40, 64), rng().integers(0, 10, 40)
    for _ in range(3):
        model.loss(x, t)
        model.backward()
        opt.update(model.params, model.grads)
    assert_exports(model, randn(7, 64, seed=3))


def test_two_layer_net_in_float64_exports_in_float32():
    model = hg.TwoLayerNet(20, 10, 3, weight_init_std=0.5, seed=0)
    x = randn(4, 20, seed=2)
    got = onnx_output(to_onnx(model), x)
    np.testing.assert_allclose(got, handgrad_output(model, x.astype(np.float64)), **TOL)


def test_simple_conv_net():
    assert_exports(SimpleConvNet(input_dim=(1, 28, 28), seed=0), randn(3, 1, 28, 28, seed=1))


def test_deep_conv_net():
    assert_exports(DeepConvNet(input_dim=(1, 28, 28), seed=0), randn(2, 1, 28, 28, seed=1))


def test_the_lstm_model_of_the_registry():
    from handgrad.registry import Task, build_model

    task = Task("digits", "images", None, None, (1, 8, 8), 10)
    model, _ = build_model("lstm", task, {"hidden": [16], "seed": 0})
    assert_exports(model, randn(5, 1, 8, 8, seed=1))


@pytest.mark.parametrize("name", ["bigram", "mlp-words", "bow", "rnn", "gru", "transformer", "mlp-bn", "wavenet"])
def test_every_model_of_makemores_zoo_exports(name):
    """makemore's models read words as token ids: whole sequences of any length up to the block
    size (bigram ... transformer; mlp-words looks back through PreviousTokens, bow adds position
    embeddings and a CausalMean), or fixed contexts (mlp-bn, wavenet)."""
    from handgrad.model.makemore import MAKEMORE_MODELS

    build, kind = MAKEMORE_MODELS[name]
    V, block_size = 9, 8
    model = build(V) if name in ("bigram", "rnn", "gru", "mlp-bn") else build(V, block_size)
    randomize(model, scale=0.3)
    model.eval()  # BatchNorm's running statistics, as the graph has them
    if kind == "contexts":
        context = model.input_shape[0]
        assert_exports(model, rng(3).integers(0, V, (5, context)), rng(4).integers(0, V, (1, context)))
    else:
        proto = assert_exports(model, rng(3).integers(0, V, (4, block_size)), rng(4).integers(0, V, (2, 3)),
                               rng(5).integers(0, V, (1, 1)))
        # The length keeps its name through mlp-words' Reshape((-1, K C)): (N, T, V), not (N, ?, V).
        assert signature(proto).endswith(f"(N, T, {V}) float32"), signature(proto)


@pytest.mark.parametrize("options", [{}, {"bias": False, "gelu": "tanh", "dropout": 0.1},
                                     {"tied_head": False, "init": "pytorch"}])
def test_small_gpt_logits_for_any_batch_and_length_up_to_block_size(options):
    model = GPT(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, seed=0, **options)
    randomize(model)
    ids = rng(2).integers(0, 13, (3, 8))
    proto = assert_exports(model, ids, ids[:1, :5], ids[:, :1])
    assert proto.graph.output[0].name == "logits"
    assert {p.key: p.value for p in proto.metadata_props}["handgrad.block_size"] == "8"


def test_gpt_input_longer_than_block_size_fails_in_the_runtime_not_silently():
    model = GPT(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4, seed=0)
    sess = session(to_onnx(model))
    with pytest.raises(Exception, match="(?i)broadcast|shape|dimension"):
        sess.run(None, {"idx": np.zeros((1, 5), np.int64)})


# --- what the file says ----------------------------------------------------------------------------


def test_the_file_is_checked_opset_17_with_a_dynamic_batch(tmp_path):
    model = hg.mlp(6, [4], 3, seed=0)
    path = hg.export_onnx(model, tmp_path / "m.onnx")
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert [o.version for o in loaded.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    assert signature(path) == "x (N, 6) float32 -> scores (N, 3) float32"
    assert not [n for n in loaded.graph.node if n.op_type == "Softmax"]  # scores, before any softmax
    x = randn(9, 6)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], handgrad_output(model, x), **TOL)


def test_export_replaces_a_file_atomically_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "m.onnx"
    hg.export_onnx(hg.mlp(5, [4], 3, seed=0), path)  # an earlier export: replaced without asking
    hg.export_onnx(hg.mlp(6, [4], 3, seed=0), path)
    assert os.listdir(tmp_path) == ["m.onnx"]
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[1].dim_value == 6
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(hg.serialize.SerializationError, match="is a directory"):
        hg.export_onnx(hg.mlp(6, [4], 3, seed=0), tmp_path / "folder.onnx")


@pytest.mark.parametrize("name", ["m.json", "m.textproto", "m.txt", "m"])
def test_export_to_a_name_other_than_onnx_is_refused_before_writing(tmp_path, name):
    """`--onnx m.json` wrote the file, then failed reading it back as JSON text (UTF-8 decode error)."""
    with pytest.raises(ValueError, match=r"an ONNX file's name ends in \.onnx"):
        hg.export_onnx(hg.mlp(6, [4], 3, seed=0), tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_export_does_not_overwrite_a_file_that_is_not_an_onnx_model_without_force(tmp_path, capsys):
    """`--onnx history.json` overwrote the run's history.json while reporting failure."""
    from handgrad.cli import main

    hg.save(hg.mlp(6, [4], 3, seed=0), tmp_path / "model.safetensors")
    precious = tmp_path / "notes.onnx"
    precious.write_text('{"val_loss": 1.5}')
    assert main(["export", str(tmp_path / "model.safetensors"), "--onnx", str(precious)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not an ONNX model" in err and "--force" in err
    assert precious.read_text() == '{"val_loss": 1.5}'
    assert main(["export", str(tmp_path / "model.safetensors"), "--onnx", str(tmp_path / "history.json")]) == 1
    assert "an ONNX file's name ends in .onnx" in capsys.readouterr().err
    assert not (tmp_path / "history.json").exists()
    assert main(["export", str(tmp_path / "model.safetensors"), "--onnx", str(precious), "--force"]) == 0
    assert onnx.load(str(precious)).graph.input[0].name == "x"


def test_the_exported_graph_does_not_depend_on_the_mode_or_disturb_the_model():
    model = hg.mlp(6, [4], 3, dropout=0.5, seed=0)
    model.train()
    before = {k: v.copy() for k, v in model.params.items()}
    first = to_onnx(model).SerializeToString()
    model.eval()
    assert to_onnx(model).SerializeToString() == first
    assert model.training is False
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())


# --- refusals ---------------------------------------------------------------------------------------


class Double(Layer):
    def forward(self, x):
        return 2 * np.asarray(x)


class MyRelu(Relu):
    def forward(self, x):
        return super().forward(x) + 1


@pytest.mark.parametrize("layers, where", [
    ([Affine(randn(4, 4), randn(4)), Double()], r"layer 1 \(Double\)"),
    ([Residual(Chain([Relu(), Double()]))], r"layer 0\.body\.1 \(Double\)"),
    ([MyRelu()], r"layer 0 \(MyRelu\)"),  # a subclass is not exported as its parent
])
def test_a_layer_without_an_onnx_form_is_refused_by_path_and_type(layers, where):
    with pytest.raises(OnnxExportError, match=where + ".*no ONNX form"):
        to_onnx(Sequential(layers, input_shape=(4,)))


def test_a_stateful_lstm_is_refused():
    model = alone(LSTM(randn(3, 8), randn(2, 8), randn(8), stateful=True))
    with pytest.raises(OnnxExportError, match=r"layer 0 \(LSTM\).*stateful=True"):
        to_onnx(model, input_shape=("T", 3))


def test_two_input_attention_and_seq2seq_are_refused():
    with pytest.raises(OnnxExportError, match=r"layer 0\.1 \(Attention\)"):
        to_onnx(Sequential([Chain([Relu(), Attention()])], input_shape=(3, 4)))
    seq2seq = hg.model.Seq2seq("_0123456789+", 5, 4, seed=0)
    with pytest.raises(OnnxExportError, match="Seq2seq cannot be exported"):
        to_onnx(seq2seq)


def test_wrong_or_missing_input_shape_is_refused_with_the_shapes():
    with pytest.raises(OnnxExportError, match=r"layer 0 \(Affine\): cannot export to ONNX: expects \(N, 6\).*shape \(N, 5\)"):
        to_onnx(hg.mlp(6, [4], 3, seed=0), input_shape=(5,))
    with pytest.raises(OnnxExportError, match="give input_shape"):
        to_onnx(Sequential([Relu()]))
    with pytest.raises(OnnxExportError, match=r"layer 1 \(Convolution\): .*expects \(N, 3, H, W\), its input here has shape \(N, 2, 5, 5\)"):
        to_onnx(Sequential([Relu(), Convolution(randn(2, 3, 3, 3), randn(2))], input_shape=(2, 5, 5)))


def test_missing_onnx_package_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "handgrad\[onnx\]"'):
        to_onnx(hg.mlp(6, [4], 3, seed=0))


# --- the command ------------------------------------------------------------------------------------


def test_cli_export_writes_a_file_onnxruntime_runs(tmp_path, capsys):
    from handgrad.cli import main

    model = SimpleConvNet(input_dim=(1, 8, 8), filter_num=4, filter_size=3, hidden_size=10, seed=0)
    hg.save(model, tmp_path / "model.safetensors")
    out = tmp_path / "model.onnx"
    assert main(["export", str(tmp_path / "model.safetensors"), "--onnx", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (ONNX opset 17): x (N, 1, 8, 8) float32 -> scores (N, 10) float32" in printed
    x = randn(3, 1, 8, 8)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], handgrad_output(model, x), **TOL)


def test_cli_export_refuses_in_one_line(tmp_path, capsys):
    from handgrad.cli import main

    seq2seq = hg.model.Seq2seq("_0123456789+", 5, 4, seed=0)
    hg.save(seq2seq, tmp_path / "s.safetensors")
    assert main(["export", str(tmp_path / "s.safetensors"), "--onnx", str(tmp_path / "s.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "handgrad export: error: export_onnx: a Seq2seq cannot be exported" in err
    assert not (tmp_path / "s.onnx").exists()
    # --onnx naming the model file itself once replaced the model with the ONNX file.
    model_file = tmp_path / "m.safetensors"
    hg.save(hg.mlp(4, [3], 2, seed=0), model_file)
    before = model_file.read_bytes()
    assert main(["export", str(model_file), "--onnx", str(model_file)]) == 1
    assert "is the model file itself: writing there would destroy the model" in capsys.readouterr().err
    assert model_file.read_bytes() == before
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "s.safetensors")])
    assert exit_info.value.code == 2 and "--onnx" in capsys.readouterr().err
