"""save / load: safetensors files, exact round trips, and refusal of anything untrustworthy."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import handgrad as hg
from handgrad.serialize import SerializationError, read_safetensors, write_safetensors


@pytest.fixture
def model():
    return hg.mlp(6, [5, 4], 3, activation="tanh", seed=0)


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


def test_pytorch_reads_the_weights(model, tmp_path):
    pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    hg.save(model, tmp_path / "m.safetensors")
    tensors = safetensors_torch.load_file(str(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(tensors["0.W"].numpy(), model.params["0.W"])


def test_truncated_file_is_refused(model, tmp_path):
    path = tmp_path / "m.safetensors"
    hg.save(model, path)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(SerializationError, match="truncated or tampered"):
        hg.load(path)
    path.write_bytes(b"\x05\x00")
    with pytest.raises(SerializationError, match="too short"):
        hg.load(path)


def test_tampered_weights_are_refused(model, tmp_path):
    path = tmp_path / "m.safetensors"
    hg.save(model, path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(SerializationError, match="do not match their recorded SHA-256"):
        hg.load(path)


def rewrite_architecture(path, change):
    tensors, metadata = read_safetensors(path)
    spec = json.loads(metadata["architecture"])
    change(spec)
    metadata["architecture"] = json.dumps(spec)
    metadata.pop("data_sha256")
    write_safetensors(path, tensors, metadata)


def test_unknown_layer_types_are_refused_without_running_anything(model, tmp_path):
    path = tmp_path / "m.safetensors"
    hg.save(model, path)
    rewrite_architecture(path, lambda spec: spec["layers"][1].update(type="os.system"))
    with pytest.raises(SerializationError, match="layer 1 has unknown layer type 'os.system'"):
        hg.load(path)


def test_mismatched_shapes_are_refused(model, tmp_path):
    path = tmp_path / "m.safetensors"
    hg.save(model, path)
    rewrite_architecture(path, lambda spec: spec["layers"][2].update(out_features=7))
    with pytest.raises(SerializationError, match=r"weight '2.W' has shape \(5, 4\), the architecture needs \(5, 7\)"):
        hg.load(path)


def test_not_a_model_file(tmp_path):
    (tmp_path / "p.pkl").write_bytes(b"\x80\x04\x95" + b"\x00" * 40)
    with pytest.raises(SerializationError, match="not a safetensors file"):
        hg.load(tmp_path / "p.pkl")
    header = json.dumps({"__metadata__": {"format": "other"}}).encode()
    (tmp_path / "o").write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(SerializationError, match="not a handgrad model file"):
        hg.load(tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="no such file"):
        hg.load(tmp_path / "missing")


def test_a_failed_save_keeps_the_previous_file(model, tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    hg.save(model, path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        hg.save(hg.mlp(6, [2], 3), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


# --- files written by earlier releases ------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name, sample_shape", [("mlp_v0.1.0", (64,)), ("convnet_v0.1.0", (1, 8, 8))])
def test_model_files_written_by_release_0_1_0_still_load_and_predict_the_same(name, sample_shape):
    model = hg.load(FIXTURES / f"{name}.safetensors")
    x = np.load(FIXTURES / "digits_test_first20.npy").reshape((-1,) + sample_shape)
    expected = np.load(FIXTURES / f"{name}_probabilities.npy")
    # float32 models: the same numbers up to float32 rounding, whatever the processor's SIMD paths.
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict_proba(x).argmax(axis=1), expected.argmax(axis=1))
