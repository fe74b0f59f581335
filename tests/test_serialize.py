"""save / load: safetensors files, exact round trips, and refusal of anything untrustworthy."""

import errno
import json
import os
import shutil
import stat
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import handgrad as hg
from handgrad import serialize
from handgrad.serialize import SerializationError, read_metadata, read_safetensors, write_safetensors

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def model():
    return hg.mlp(6, [5, 4], 3, activation="tanh", seed=0)


@pytest.fixture
def saved(model, tmp_path):
    path = tmp_path / "m.safetensors"
    hg.save(model, path)
    return path


# --- helpers that craft files byte by byte, as an attacker or a bad disk would -------------------


def split(path):
    """``(header dict, data bytes)`` of a safetensors file, parsed without any check."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def write_raw(path, header, data=b"", redigest=True):
    """Write ``header`` (a dict, or raw JSON bytes) and ``data``. With ``redigest`` a dict header
    gets a correct handgrad_sha256, as a deliberate forger would compute it, so that the checks
    behind the digest are the ones tested."""
    if isinstance(header, dict):
        metadata = header.get("__metadata__")
        if redigest and isinstance(metadata, dict) and serialize.DIGEST_KEY in metadata:
            metadata[serialize.DIGEST_KEY] = serialize._file_digest(header, data)
        header = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def refused(path, match, load=hg.load):
    """Assert that ``load(path)`` raises SerializationError naming the file and matching ``match``."""
    with pytest.raises(SerializationError, match=match) as info:
        load(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    return info.value


# --- round trips ---------------------------------------------------------------------------------


def test_round_trip_is_exact(model, tmp_path):
    path = tmp_path / "m.safetensors"
    hg.save(model, path)
    loaded = hg.load(path)
    assert loaded.spec() == model.spec()
    for k in model.params:
        assert loaded.params[k].dtype == model.params[k].dtype
        np.testing.assert_array_equal(loaded.params[k], model.params[k])
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_float64_and_two_layer_net_round_trip(tmp_path):
    net = hg.TwoLayerNet(4, 3, 2, seed=0)
    hg.save(net, tmp_path / "n")
    loaded = hg.load(tmp_path / "n")
    assert loaded.params["0.W"].dtype == np.float64
    np.testing.assert_array_equal(loaded.params["2.W"], net.params["W2"])


def test_convnet_with_batchnorm_round_trips(tmp_path):
    net = hg.model.SimpleConvNet(input_dim=(1, 8, 8), filter_num=3, filter_size=3, pad=1, hidden_size=5, seed=0)
    hg.save(net, tmp_path / "c.safetensors")
    loaded = hg.load(tmp_path / "c.safetensors")
    x = np.random.default_rng(1).standard_normal((2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    bn = hg.mlp(4, [3], 2, batchnorm=True, seed=0)
    hg.save(bn, tmp_path / "b.safetensors")
    assert hg.load(tmp_path / "b.safetensors").spec() == bn.spec()


def test_files_are_real_safetensors(model, tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "m.safetensors"
    hg.save(model, path)
    tensors = safetensors_numpy.load_file(str(path))
    assert set(tensors) == set(model.params)
    np.testing.assert_array_equal(tensors["2.W"], model.params["2.W"])
    # ... and files written by the reference library are read by ours.
    safetensors_numpy.save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(tmp_path / "ref"))
    tensors, _ = read_safetensors(tmp_path / "ref")
    np.testing.assert_array_equal(tensors["a"], np.arange(6, dtype=np.float32).reshape(2, 3))


def test_pytorch_reads_the_weights(model, tmp_path, torch):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    hg.save(model, tmp_path / "m.safetensors")
    tensors = safetensors_torch.load_file(str(tmp_path / "m.safetensors"))
    assert isinstance(tensors["0.W"], torch.Tensor)
    np.testing.assert_array_equal(tensors["0.W"].numpy(), model.params["0.W"])


def test_plain_safetensors_files_without_handgrad_metadata_are_read_without_a_digest(tmp_path):
    # Files from other tools have no digest (the format has none); they are read after the
    # structural checks, and are not handgrad models.
    data = np.arange(3, dtype=np.float32).tobytes()
    write_raw(tmp_path / "plain", {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}, data)
    tensors, metadata = read_safetensors(tmp_path / "plain")
    np.testing.assert_array_equal(tensors["a"], [0, 1, 2])
    assert metadata == {}
    refused(tmp_path / "plain", "not a handgrad model file")


# --- the digest covers the header as well as the data ---------------------------------------------


def test_every_file_carries_a_version_and_a_digest_over_header_and_data(saved):
    header, data = split(saved)
    metadata = header["__metadata__"]
    assert metadata["handgrad_file_version"] == "2"
    assert metadata["handgrad_sha256"] == serialize._file_digest(header, data)
    assert "data_sha256" not in metadata


def test_a_changed_dtype_in_the_header_is_refused(saved):
    raw = saved.read_bytes()
    saved.write_bytes(raw.replace(b'"F32"', b'"I32"', 1))
    refused(saved, "header or weights do not match their recorded SHA-256")


def test_an_edited_architecture_is_refused(saved):
    raw = saved.read_bytes()
    assert raw.count(b"Tanh") == 2
    saved.write_bytes(raw.replace(b"Tanh", b"Relu", 1))
    refused(saved, "header or weights do not match their recorded SHA-256")


@pytest.mark.parametrize("old, new", [
    (b'"shape":[6,5]', b'"shape":[5,6]'),          # a shape, same byte count
    (b'"0.W"', b'"0.X"'),                            # a tensor's name
    (b'"handgrad_version":"0.1.0"', b'"handgrad_version":"9.9.9"'),  # other metadata
])
def test_any_edit_of_the_header_is_refused(saved, old, new):
    raw = saved.read_bytes()
    assert old in raw
    saved.write_bytes(raw.replace(old, new, 1))
    refused(saved, "do not match their recorded SHA-256")


def test_tampered_weights_are_refused(saved):
    raw = bytearray(saved.read_bytes())
    raw[-3] ^= 0x40
    saved.write_bytes(bytes(raw))
    refused(saved, "header or weights do not match their recorded SHA-256")


def test_a_deleted_digest_is_refused(saved):
    header, data = split(saved)
    del header["__metadata__"]["handgrad_sha256"]
    write_raw(saved, header, data)
    refused(saved, "handgrad_sha256 digest is missing")
    del header["__metadata__"]["handgrad_file_version"]  # no trace of a digest left
    write_raw(saved, header, data)
    refused(saved, r"a handgrad file \(handgrad.Sequential\) without its SHA-256 digest")


def test_a_handgrad_checkpoint_without_a_digest_is_refused(tmp_path):
    header = {"__metadata__": {"format": "handgrad.checkpoint", "architecture": "{}"}}
    write_raw(tmp_path / "ckpt", header)
    refused(tmp_path / "ckpt", "without its SHA-256 digest", load=read_safetensors)


def test_a_file_version_from_the_future_is_refused(saved):
    header, data = split(saved)
    header["__metadata__"]["handgrad_file_version"] = "3"
    write_raw(saved, header, data)
    refused(saved, "file version '3' is not one this handgrad reads")


# --- files written by release 0.1.0 ----------------------------------------------------------------


@pytest.mark.parametrize("name, sample_shape", [("mlp_v0.1.0", (64,)), ("convnet_v0.1.0", (1, 8, 8))])
def test_model_files_written_by_release_0_1_0_still_load_and_predict_the_same(name, sample_shape):
    model = hg.load(FIXTURES / f"{name}.safetensors")
    x = np.load(FIXTURES / "digits_test_first20.npy").reshape((-1,) + sample_shape)
    expected = np.load(FIXTURES / f"{name}_probabilities.npy")
    # float32 models: the same numbers up to float32 rounding, whatever the processor's SIMD paths.
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=1e-5, atol=1e-6)
    top_two = np.sort(expected, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-3  # a near tie may fall either way on another processor
    np.testing.assert_array_equal(model.predict_proba(x).argmax(axis=1)[clear], expected.argmax(axis=1)[clear])


def test_release_0_1_0_files_are_checked_by_their_data_digest(tmp_path):
    path = tmp_path / "old.safetensors"
    shutil.copy(FIXTURES / "mlp_v0.1.0.safetensors", path)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01
    path.write_bytes(bytes(raw))
    refused(path, "weights do not match their recorded SHA-256")


def test_a_release_0_1_0_file_with_its_digest_deleted_is_refused(tmp_path):
    header, data = split(FIXTURES / "mlp_v0.1.0.safetensors")
    del header["__metadata__"]["data_sha256"]
    write_raw(tmp_path / "old.safetensors", header, data)
    refused(tmp_path / "old.safetensors", "without its SHA-256 digest")


def test_a_release_0_1_0_file_with_an_integer_dtype_is_refused(tmp_path):
    # Release 0.1.0's digest does not cover the header: the dtype check must catch the edit.
    path = tmp_path / "old.safetensors"
    path.write_bytes((FIXTURES / "mlp_v0.1.0.safetensors").read_bytes().replace(b'"F32"', b'"I32"', 1))
    refused(path, "weight '0.W' has dtype int32; model parameters must be float16, float32 or float64")


# --- what the weights may be ----------------------------------------------------------------------


def test_non_float_weights_are_refused(model, tmp_path):
    tensors = serialize.layer_tensors(model)
    tensors["2.b"] = tensors["2.b"].astype(np.int64)
    write_safetensors(tmp_path / "m", tensors, {"format": "handgrad.Sequential",
                                                "architecture": json.dumps(model.spec())})
    refused(tmp_path / "m", "weight '2.b' has dtype int64; model parameters must be float16, float32 or float64")


def test_weights_of_different_dtypes_are_refused(model, tmp_path):
    tensors = serialize.layer_tensors(model)
    tensors["4.W"] = tensors["4.W"].astype(np.float64)
    write_safetensors(tmp_path / "m", tensors, {"format": "handgrad.Sequential",
                                                "architecture": json.dumps(model.spec())})
    refused(tmp_path / "m", r"do not share one dtype \('0.W' is float32, '4.W' is float64\)")


def test_float16_models_load_as_float16(model, tmp_path):
    tensors = {k: v.astype(np.float16) for k, v in serialize.layer_tensors(model).items()}
    write_safetensors(tmp_path / "m", tensors, {"format": "handgrad.Sequential",
                                                "architecture": json.dumps(model.spec())})
    assert {p.dtype for p in hg.load(tmp_path / "m").params.values()} == {np.dtype(np.float16)}


# --- crafted architectures (digest recomputed, as a forger would) ---------------------------------


def rewrite_architecture(path, change):
    tensors, metadata = read_safetensors(path)
    spec = json.loads(metadata["architecture"])
    change(spec)
    metadata["architecture"] = json.dumps(spec)
    write_safetensors(path, tensors, metadata)


def test_unknown_layer_types_are_refused_without_running_anything(saved):
    rewrite_architecture(saved, lambda spec: spec["layers"][1].update(type="os.system"))
    refused(saved, "layer 1 has unknown layer type 'os.system'")


def test_mismatched_shapes_are_refused(saved):
    rewrite_architecture(saved, lambda spec: spec["layers"][2].update(out_features=7))
    refused(saved, r"weight '2.W' has shape \(5, 4\), the architecture needs \(5, 7\)")


def test_an_edited_activation_with_a_recomputed_digest_still_loads_as_written(saved, model):
    # The digest guards against corruption and accidental edits, not forgery: a file rewritten
    # with a fresh digest is a different, valid model, and loads as exactly what it says.
    rewrite_architecture(saved, lambda spec: spec["layers"][1].update(type="Relu"))
    assert type(hg.load(saved).layers[1]).__name__ == "Relu"


def peak_allocation(function):
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_huge_affine_layer_is_refused_before_anything_is_allocated(saved):
    rewrite_architecture(saved, lambda spec: spec["layers"][0].update(in_features=10 ** 12))
    peak = peak_allocation(lambda: refused(saved, r"weight '0.W' has shape \(6, 5\), the architecture needs "
                                                  r"\(1000000000000, 5\)"))
    assert peak < 10 * 2 ** 20


def test_a_huge_convolution_is_refused_before_anything_is_allocated(tmp_path):
    path = tmp_path / "c.safetensors"
    shutil.copy(FIXTURES / "convnet_v0.1.0.safetensors", path)
    rewrite_architecture(path, lambda spec: spec["layers"][0].update(filters=10 ** 9, kernel=[10 ** 5, 10 ** 5]))
    peak = peak_allocation(lambda: refused(path, r"weight '0.W' has shape \(4, 1, 3, 3\), the architecture needs "
                                                 r"\(1000000000, 1, 100000, 100000\)"))
    assert peak < 10 * 2 ** 20


def test_a_huge_batchnorm_is_refused_before_anything_is_allocated(tmp_path):
    path = tmp_path / "b.safetensors"
    shutil.copy(FIXTURES / "mlp_v0.1.0.safetensors", path)
    rewrite_architecture(path, lambda spec: spec["layers"][1].update(num_features=10 ** 12))
    peak = peak_allocation(lambda: refused(path, r"weight '1.gamma' has shape \(32,\), the architecture needs"))
    assert peak < 10 * 2 ** 20


def test_a_loss_layer_with_parameters_is_refused(saved):
    rewrite_architecture(saved, lambda spec: spec.update(loss={"type": "Affine", "in_features": 10 ** 12,
                                                               "out_features": 10 ** 12}))
    refused(saved, "the loss layer has parameters")


@pytest.mark.parametrize("change, match", [
    (lambda spec: spec["layers"][0].update(in_features="6"), r"layer 0 \(Affine\) has a bad description: in_features must be a positive integer"),
    (lambda spec: spec["layers"][0].update(in_features=6.0), r"layer 0 \(Affine\) has a bad description: in_features must be a positive integer"),
    (lambda spec: spec["layers"][0].update(in_features=True), r"layer 0 \(Affine\) has a bad description: in_features must be a positive integer"),
    (lambda spec: spec["layers"][0].update(in_features=-6), r"layer 0 \(Affine\) has a bad description: in_features must be a positive integer"),
    (lambda spec: spec["layers"][0].pop("out_features"), r"layer 0 \(Affine\) has a bad description: out_features must be a positive integer"),
    (lambda spec: spec["layers"][1].update(type=["Tanh"]), r"layer 1 has unknown layer type \"\['Tanh'\]\""),
    (lambda spec: spec["layers"].__setitem__(1, "Tanh"), r"layer 1 is not a layer description \(a JSON object with a type\), got Tanh"),
    (lambda spec: spec["layers"].__setitem__(1, None), "layer 1 is not a layer description"),
    (lambda spec: spec.update(layers={"0": 1}), "architecture has no list of layers"),
    (lambda spec: spec.update(weight_decay="0.1"), "weight_decay must be a number >= 0"),
    (lambda spec: spec.update(weight_decay=-1), "weight_decay must be a number >= 0"),
    (lambda spec: spec.update(weight_decay=10 ** 400), "bad model description"),
    (lambda spec: spec.update(input_shape=[6, -1]), "input_shape must be null or a list of positive integers"),
    (lambda spec: spec.update(input_shape="6"), "input_shape must be null or a list of positive integers"),
    (lambda spec: spec["loss"].update(label_smoothing=[1]), r"the loss layer \(SoftmaxWithLoss\) has a bad description"),
    (lambda spec: spec["loss"].update(label_smoothing=7), r"the loss layer \(SoftmaxWithLoss\) has a bad description"),
])
def test_a_crafted_architecture_is_refused_with_a_message_naming_the_file(saved, change, match):
    rewrite_architecture(saved, change)
    refused(saved, match)


def set_architecture(text):
    def change(header):
        header["__metadata__"]["architecture"] = text
    return change


def set_entry(name, key, value):
    def change(header):
        header[name][key] = value
    return change


def set_header(key, value):
    def change(header):
        header[key] = value
    return change


def set_metadata(key, value):
    def change(header):
        header["__metadata__"][key] = value
    return change


@pytest.mark.parametrize("change, match", [
    (set_entry("0.W", "data_offsets", []), r"tensor '0.W' has data_offsets \[\]"),
    (set_entry("0.W", "data_offsets", 5), "tensor '0.W' has data_offsets 5"),
    (set_entry("0.W", "data_offsets", None), "tensor '0.W' has data_offsets None"),
    (set_entry("0.W", "data_offsets", ["0", 120]), r"tensor '0.W' has data_offsets \['0', 120\]"),
    (set_entry("0.W", "data_offsets", [120, 0]), r"data_offsets \[120, 0\]; they must be \[begin, end\]"),
    (set_entry("0.W", "data_offsets", [0, 2 ** 64]), "tensor '0.W' has data_offsets"),
    (set_entry("0.W", "shape", [-6, -5]), r"tensor '0.W' has shape \[-6, -5\]"),
    (set_entry("0.W", "shape", [6.0, 5]), r"tensor '0.W' has shape \[6.0, 5\]"),
    (set_entry("0.W", "shape", [True, 30]), r"tensor '0.W' has shape \[True, 30\]"),
    (set_entry("0.W", "shape", [2 ** 64, 5]), "tensor '0.W' has shape"),
    (set_entry("0.W", "shape", [1] * 33), "a list of at most 32 non-negative integers"),
    (set_entry("0.W", "shape", "6x5"), "tensor '0.W' has shape 6x5"),
    (set_entry("0.W", "shape", [10 ** 12, 10 ** 12]), r"tensor '0.W' has inconsistent offsets 0..120"),
    (set_entry("0.W", "dtype", "BF16"), "tensor '0.W' has unsupported dtype 'BF16'"),
    (set_entry("0.W", "dtype", 5), "tensor '0.W' has unsupported dtype '5'"),
    (set_entry("0.W", "extra", 1), "tensor '0.W' needs exactly the fields dtype, shape and data_offsets"),
    (set_header("0.W", 5), "tensor '0.W' needs exactly the fields"),
    (set_header("__metadata__", ["format"]), "__metadata__ must be a JSON object of strings"),
    (set_header("__metadata__", "handgrad.Sequential"), "__metadata__ must be a JSON object of strings"),
    (set_metadata("architecture", 5), "__metadata__ must be a JSON object of strings"),
    (set_metadata("architecture", {"layers": []}), "__metadata__ must be a JSON object of strings"),
    (set_metadata("note", None), "__metadata__ must be a JSON object of strings"),
    (set_architecture("5"), "architecture has no list of layers"),
    (set_architecture('{"layers": 5}'), "architecture has no list of layers"),
    (set_architecture("{"), "architecture is not valid JSON"),
    (set_architecture('{"layers": [], "layers": []}'), "architecture has the key 'layers' twice"),
    (set_architecture('{"layers": [], "weight_decay": NaN}'), "architecture contains NaN, which is not JSON"),
    (set_architecture('{"layers": [], "weight_decay": 1e400}'), "architecture contains the number 1e400, out of range"),
    (set_architecture("[" * 100_000), "architecture is nested too deeply"),
])
def test_a_crafted_header_is_refused_with_a_message_naming_the_file(saved, change, match):
    header, data = split(saved)
    change(header)
    write_raw(saved, header, data)
    refused(saved, match)


@pytest.mark.parametrize("old, new, match", [
    (b'"data_offsets":[0,120]', b'"data_offsets":[0,1e400]', "header contains the number 1e400, out of range"),
    (b'"data_offsets":[0,120]', b'"data_offsets":[0,NaN]', "header contains NaN, which is not JSON"),
    (b'"data_offsets":[0,120]', b'"data_offsets":[0,Infinity]', "header contains Infinity, which is not JSON"),
    (b'"0.b":', b'"0.W":', "header has the key '0.W' twice"),
    (b'{"0.W"', b'[{"0.W"', "header is not valid JSON"),
])
def test_a_crafted_header_text_is_refused(saved, old, new, match):
    raw = saved.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = raw[8:8 + length]
    assert old in header
    header = header.replace(old, new, 1)
    saved.write_bytes(struct.pack("<Q", len(header)) + header + raw[8 + length:])
    refused(saved, match)


def test_a_header_that_is_not_an_object_is_refused(tmp_path):
    write_raw(tmp_path / "m", b"[1, 2]")
    refused(tmp_path / "m", "header is not a JSON object")
    write_raw(tmp_path / "m", b"\xff\xfe{}")
    refused(tmp_path / "m", "header is not valid JSON")


def test_a_header_length_beyond_the_file_is_refused(saved):
    raw = saved.read_bytes()
    saved.write_bytes(struct.pack("<Q", len(raw)) + raw[8:])
    refused(saved, "not a safetensors file, or truncated")
    saved.write_bytes(struct.pack("<Q", 2 ** 64 - 1) + raw[8:])
    refused(saved, "not a safetensors file, or truncated")


def test_truncated_file_is_refused(saved):
    saved.write_bytes(saved.read_bytes()[:-7])
    refused(saved, "truncated or tampered")
    saved.write_bytes(b"\x05\x00")
    refused(saved, "too short")


def test_bytes_after_the_tensors_are_refused(saved):
    saved.write_bytes(saved.read_bytes() + b"\x00" * 8)
    refused(saved, "8 unexpected bytes after the tensors")


def test_not_a_model_file(tmp_path):
    (tmp_path / "p.pkl").write_bytes(b"\x80\x04\x95" + b"\x00" * 40)
    refused(tmp_path / "p.pkl", "not a safetensors file")
    header = json.dumps({"__metadata__": {"format": "other"}}).encode()
    (tmp_path / "o").write_bytes(struct.pack("<Q", len(header)) + header)
    refused(tmp_path / "o", "not a handgrad model file")
    with pytest.raises(FileNotFoundError, match="no such file"):
        hg.load(tmp_path / "missing")


def test_a_directory_given_as_a_model_file_is_refused(tmp_path):
    refused(tmp_path, "is a directory, not a model file")


# --- writing: atomic, umask, clear errors ---------------------------------------------------------


def test_a_failed_save_keeps_the_previous_file(model, saved, monkeypatch):
    before = saved.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(SerializationError, match="cannot write the file \\(No space left on device\\)") as info:
        hg.save(hg.mlp(6, [2], 3), saved)
    assert str(saved) in str(info.value)
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == ["m.safetensors"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_honour_the_umask(model, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        hg.save(model, tmp_path / "m.safetensors")
        serialize.atomic_write_bytes(tmp_path / "h.json", [b"{}"])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.safetensors").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "h.json").stat().st_mode) == mode


def test_saving_onto_a_directory_is_refused(model, tmp_path):
    (tmp_path / "model.safetensors").mkdir()
    with pytest.raises(SerializationError, match="is a directory; give the name of a file to write") as info:
        hg.save(model, tmp_path / "model.safetensors")
    assert str(tmp_path / "model.safetensors") in str(info.value)
    assert list((tmp_path / "model.safetensors").iterdir()) == []


def test_saving_below_a_file_is_refused(model, tmp_path):
    (tmp_path / "out").write_text("a file, not a folder")
    for target in (tmp_path / "out" / "m.safetensors", tmp_path / "out" / "sub" / "m.safetensors"):
        with pytest.raises(SerializationError, match="cannot create the folder") as info:
            hg.save(model, target)
        assert str(target) in str(info.value) and isinstance(info.value.__cause__, OSError)
    assert (tmp_path / "out").read_text() == "a file, not a folder"


# --- user metadata --------------------------------------------------------------------------------


def test_user_metadata_is_saved_and_read_back(model, tmp_path):
    hg.save(model, tmp_path / "m", metadata={"dataset": "mnist", "note": "ü"})
    assert read_metadata(tmp_path / "m") == {"dataset": "mnist", "note": "ü"}
    assert "read_metadata" in serialize.__all__
    hg.save(model, tmp_path / "plain")
    assert read_metadata(tmp_path / "plain") == {}
    assert read_metadata(FIXTURES / "mlp_v0.1.0.safetensors") == {}


def test_read_metadata_checks_the_file_like_load(model, tmp_path):
    path = tmp_path / "m"
    hg.save(model, path, metadata={"dataset": "mnist"})
    path.write_bytes(path.read_bytes().replace(b"mnist", b"digit"))
    refused(path, "do not match their recorded SHA-256", load=read_metadata)


@pytest.mark.parametrize("metadata, match", [
    ({"format": "x"}, "metadata key 'format' is one handgrad uses itself"),
    ({"handgrad_sha256": "0"}, "metadata key 'handgrad_sha256' is one handgrad uses itself"),
    ({"epochs": 3}, "metadata must map strings to strings"),
    ({1: "x"}, "metadata must map strings to strings"),
])
def test_bad_user_metadata_is_refused(model, tmp_path, metadata, match):
    with pytest.raises(SerializationError, match=match):
        hg.save(model, tmp_path / "m", metadata=metadata)
    assert not (tmp_path / "m").exists()


def test_a_tensor_named_like_the_metadata_is_refused(tmp_path):
    with pytest.raises(SerializationError, match="a tensor may not be named __metadata__") as info:
        write_safetensors(tmp_path / "t", {"__metadata__": np.zeros(2)})
    assert str(tmp_path / "t") in str(info.value)
    assert not (tmp_path / "t").exists()


# --- values load refuses: non-finite weights, text that is not Unicode (issue 22, items 9, 12) ----


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_model_whose_weights_are_not_finite_is_refused_at_load(model, tmp_path, bad):
    """A GPT with NaN weights loaded, and the server streamed invalid JSON from it."""
    path = tmp_path / "m.safetensors"
    hg.save(model, path)
    tensors, metadata = read_safetensors(path)
    tensors["2.W"][1, 2] = bad
    write_safetensors(path, tensors, metadata)  # a valid file, digest and all
    refused(path, r"weight '2.W' has 1 NaN or infinite value of 20; a model's weights must be finite numbers")


def test_saving_a_model_whose_weights_are_not_finite_is_refused(model, tmp_path):
    model.params["0.b"][3] = np.nan
    with pytest.raises(SerializationError, match=r"save .*m.safetensors: weight '0.b' has 1 NaN or infinite value"):
        hg.save(model, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_a_vocabulary_with_a_lone_surrogate_is_refused_at_load(tmp_path):
    path = tmp_path / "gpt.safetensors"
    hg.save(hg.model.GPT(3, 4, 1, 1, 2, seed=0, vocab="abc"), path)
    rewrite_architecture(path, lambda spec: spec.update(vocab="ab\udc80"))  # json.dumps escapes it: a valid file
    error = refused(path, r"architecture holds a lone surrogate .* in vocab, which is not Unicode text")
    str(error).encode("utf-8")  # the message itself can be printed


def test_any_header_string_with_a_lone_surrogate_is_refused(model, tmp_path):
    path = tmp_path / "m.safetensors"
    hg.save(model, path)
    header, data = split(path)
    header["__metadata__"]["dataset"] = "digits\ud800"
    write_raw(path, header, data)
    refused(path, r"header holds a lone surrogate .* in __metadata__.dataset", load=read_metadata)
    header["__metadata__"].pop("dataset")
    header["0.W\udfff"] = header.pop("0.W")
    write_raw(path, header, data)
    refused(path, r"header holds a lone surrogate .* in a key of the top level", load=read_safetensors)


def test_saving_text_with_a_lone_surrogate_is_refused(model, tmp_path):
    path = tmp_path / "m.safetensors"
    with pytest.raises(SerializationError, match=r"metadata.dataset holds a lone surrogate") as info:
        hg.save(model, path, metadata={"dataset": "\udc80"})
    str(info.value).encode("utf-8")
    with pytest.raises(SerializationError, match=r"tensor names\[0\] holds a lone surrogate"):
        write_safetensors(path, {"w\ud800": np.zeros(2)})
    gpt = hg.model.GPT(3, 4, 1, 1, 2, seed=0, vocab="abc")
    gpt.vocab.chars = ("a", "b", "\udc80")  # what the constructor would have refused
    with pytest.raises(SerializationError, match=r"architecture.vocab holds a lone surrogate"):
        hg.save(gpt, path)
    assert list(tmp_path.iterdir()) == []


def test_the_0_1_0_fixtures_still_load_and_a_save_writes_what_it_wrote(model, tmp_path):
    for name in ("mlp_v0.1.0", "convnet_v0.1.0"):
        assert isinstance(hg.load(FIXTURES / f"{name}.safetensors"), hg.Sequential)
    hg.save(model, tmp_path / "a.safetensors", metadata={"dataset": "digits"})
    hg.save(hg.load(tmp_path / "a.safetensors"), tmp_path / "b.safetensors", metadata={"dataset": "digits"})
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


@pytest.mark.parametrize("kwargs, match", [
    ({"weight_decay": float("inf")}, r"architecture contains Infinity, which is not JSON"),
    ({"input_shape": (0, 6)}, r"input_shape must be null or a list of positive integers, got \[0, 6\]"),
])
def test_save_refuses_a_model_that_load_would_refuse(model, tmp_path, kwargs, match):
    """Training wrote models that load refused; save now runs load's checks before writing (the
    constructor refuses these too: set afterwards, they reach save)."""
    odd = hg.Sequential(model.layers, loss=model.loss_layer)
    for name, value in kwargs.items():
        setattr(odd, name, value)
    with pytest.raises(SerializationError, match=match) as info:
        hg.save(odd, tmp_path / "m.safetensors")
    assert str(info.value).startswith(f"save {tmp_path / 'm.safetensors'}: ")
    assert list(tmp_path.iterdir()) == []
