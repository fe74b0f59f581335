"""Datasets: the embedded digits, the IDX reader, verified lookup and download (against a local
HTTP server, never the internet), MNIST-1D, minibatches. Full MNIST is read from the shared
data root when present (HANDGRAD_TEST_DATA, or ../shared/data beside the checkout)."""

import gzip
import hashlib
import http.server
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from handgrad import data as D
from handgrad.data import fetch
from handgrad.data.fetch import DataError, DataFile, RemoteDataset
from handgrad.data.idx import IdxError, read_idx

from conftest import SHARED_DATA  # noqa: E402
needs_mnist = pytest.mark.skipif(not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file(),
                                 reason=f"full MNIST not found under {SHARED_DATA}")


@pytest.fixture(autouse=True)
def isolated_roots(tmp_path, monkeypatch):
    """No test sees the user's cache or HANDGRAD_DATA, and none can reach a real mirror."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HANDGRAD_DATA", raising=False)


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype("u1"): 0x08, np.dtype(">i4"): 0x0C}
    array = array.astype(">i4") if array.dtype.kind == "i" and array.dtype.itemsize > 1 else array
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.tobytes()


# --- digits ---------------------------------------------------------------------------------------


def test_digits_is_embedded_stratified_and_fixed():
    (x, t), (x_test, t_test) = D.load_dataset("digits")
    assert x.shape == (1438, 64) and x_test.shape == (359, 64)
    assert x.dtype == np.float32 and t.dtype == np.int64
    assert 0.0 <= x.min() and x.max() == 1.0
    counts = np.bincount(np.concatenate([t, t_test]))
    np.testing.assert_array_equal(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    np.testing.assert_array_equal(np.bincount(t_test), np.round(0.2 * counts))  # 20 % of every class
    (x2, _), (x_test2, t_test2) = D.load_dataset("digits", flatten=False)
    assert x2.shape == (1438, 1, 8, 8)
    np.testing.assert_array_equal(x_test2.reshape(359, 64), x_test)
    np.testing.assert_array_equal(t_test2, t_test)


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; choose from digits, mnist"):
        D.load_dataset("cifar")


# --- IDX ------------------------------------------------------------------------------------------


def test_idx_round_trip_plain_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), images)
    ints = np.array([-1, 70000, 3], dtype=np.int64)
    (tmp_path / "i").write_bytes(idx_bytes(ints))
    np.testing.assert_array_equal(read_idx(tmp_path / "i"), ints)


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b[:-5], r"header says shape \(2, 3, 4\) \(24 bytes of data\), the file has 19 bytes"),
    (lambda b: b + b"xx", "the file has 26 bytes"),
    (lambda b: b"\x01" + b[1:], "not an IDX file"),
    (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX data type 0x07"),
    (lambda b: b"<html>404</html>", "not an IDX file"),
    (lambda b: b"", "not an IDX file"),
])
def test_idx_refuses_corrupt_files_naming_them(tmp_path, mangle, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mangle(idx_bytes(np.zeros((2, 3, 4), np.uint8))))
    with pytest.raises(IdxError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_idx_refuses_truncated_gzip(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 20), np.uint8)))[:-30])
    with pytest.raises(IdxError, match=f"{path}: corrupt or truncated gzip"):
        read_idx(path)


# --- lookup, verification and download -------------------------------------------------------------


def tiny_dataset(tmp_path, mirrors=()):
    """A four-file IDX dataset of 5 train / 3 test 2x2 images, with its true checksums."""
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (5, 2, 2), dtype=np.uint8),
              "train_labels": np.array([0, 1, 2, 1, 0], np.uint8),
              "test_images": rng.integers(0, 256, (3, 2, 2), dtype=np.uint8),
              "test_labels": np.array([2, 0, 1], np.uint8)}
    source = tmp_path / "published"
    source.mkdir()
    files = {}
    for role, array in arrays.items():
        raw = idx_bytes(array)
        packed = gzip.compress(raw)
        name = role.replace("_", "-") + "-idx-ubyte.gz"
        (source / name).write_bytes(packed)
        files[role] = DataFile(name, hashlib.sha256(packed).hexdigest(), hashlib.sha256(raw).hexdigest())
    return RemoteDataset("tiny", files, tuple(mirrors), "test data"), source, arrays


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    dataset, source, arrays = tiny_dataset(tmp_path)
    monkeypatch.setitem(D.REMOTE_DATASETS, "tiny", dataset)
    return dataset, source, arrays


def install(source: Path, root: Path, name="tiny") -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        (root / name / path.name).write_bytes(path.read_bytes())


def test_lookup_order_data_dir_then_env_then_cache(tiny, tmp_path, monkeypatch):
    dataset, source, _ = tiny
    file = dataset.files["train_labels"]
    for root in ("dir", "env", "cache/handgrad"):
        install(source, tmp_path / root)
    monkeypatch.setenv("HANDGRAD_DATA", str(tmp_path / "env"))
    assert fetch.locate(dataset, file, tmp_path / "dir") == tmp_path / "dir" / "tiny" / file.name
    assert fetch.locate(dataset, file, None) == tmp_path / "env" / "tiny" / file.name
    monkeypatch.delenv("HANDGRAD_DATA")
    assert fetch.locate(dataset, file, None) == tmp_path / "cache" / "handgrad" / "tiny" / file.name


def test_load_dataset_from_a_data_dir(tiny, tmp_path):
    _, source, arrays = tiny
    install(source, tmp_path / "root")
    (x, t), (x_test, t_test) = D.load_dataset("tiny", data_dir=tmp_path / "root", download=False)
    assert x.shape == (5, 4) and x.dtype == np.float32 and t.dtype == np.int64
    np.testing.assert_allclose(x, arrays["train_images"].reshape(5, 4) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(t_test, arrays["test_labels"])
    (x4, _), _ = D.load_dataset("tiny", data_dir=tmp_path / "root", flatten=False, download=False)
    assert x4.shape == (5, 1, 2, 2)


def test_uncompressed_files_are_accepted_and_verified(tiny, tmp_path):
    dataset, source, arrays = tiny
    folder = tmp_path / "root" / "tiny"
    folder.mkdir(parents=True)
    for path in source.iterdir():
        (folder / path.name[:-3]).write_bytes(gzip.decompress(path.read_bytes()))
    (_, t), _ = D.load_dataset("tiny", data_dir=tmp_path / "root", download=False)
    np.testing.assert_array_equal(t, arrays["train_labels"])


def test_a_hand_placed_corrupt_file_is_refused_with_its_path(tiny, tmp_path):
    dataset, source, _ = tiny
    install(source, tmp_path / "root")
    bad = tmp_path / "root" / "tiny" / dataset.files["test_images"].name
    content = bad.read_bytes()
    bad.write_bytes(content[:-1] + bytes([content[-1] ^ 0xFF]))
    with pytest.raises(DataError, match=f"{bad}: checksum mismatch"):
        D.load_dataset("tiny", data_dir=tmp_path / "root", download=False)


def test_offline_without_files_says_where_to_put_which_files(tiny, tmp_path):
    with pytest.raises(DataError) as info:
        D.load_dataset("tiny", data_dir=tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "tiny") in message and "train-images-idx-ubyte.gz" in message


def test_a_data_dir_that_is_a_file_is_named(tiny, tmp_path):
    not_a_folder = tmp_path / "data.txt"
    not_a_folder.write_text("oops")
    with pytest.raises(DataError, match=f"data root {not_a_folder} is a file, not a folder"):
        D.load_dataset("tiny", data_dir=not_a_folder)


def test_a_dataset_entry_that_is_a_file_is_named(tiny, tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "tiny").write_text("oops")
    with pytest.raises(DataError, match=f"tiny entry of the data root: {tmp_path / 'root' / 'tiny'} is a file"):
        D.load_dataset("tiny", data_dir=tmp_path / "root")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **k: QuietHandler(*a, directory=str(root), **k))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def serve(source: Path, folder: Path, spoil=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        content = path.read_bytes()
        if spoil is not None:
            content = spoil(path.name, content)
        if content is not None:
            (folder / path.name).write_bytes(content)


def test_download_verifies_and_installs_into_the_data_dir(tmp_path, monkeypatch, http_server):
    www, base = http_server
    dataset, source, arrays = tiny_dataset(tmp_path, mirrors=[f"{base}/good/"])
    monkeypatch.setitem(D.REMOTE_DATASETS, "tiny", dataset)
    serve(source, www / "good")
    (_, t), (x_test, _) = D.load_dataset("tiny", data_dir=tmp_path / "root")
    np.testing.assert_array_equal(t, arrays["train_labels"])
    files = sorted(p.name for p in (tmp_path / "root" / "tiny").iterdir())
    assert files == sorted(f.name for f in dataset.files.values())  # no temporary leftovers


@pytest.mark.parametrize("spoil, what", [
    (lambda name, b: b[:-1] + bytes([b[-1] ^ 1]), "corrupted"),
    (lambda name, b: b[: len(b) // 2], "truncated"),
    (lambda name, b: b"<html><body>Service unavailable</body></html>", "HTML error page"),
    (lambda name, b: None, "404"),
])
def test_bad_downloads_are_refused_and_leave_nothing(tmp_path, monkeypatch, http_server, spoil, what):
    www, base = http_server
    dataset, source, _ = tiny_dataset(tmp_path, mirrors=[f"{base}/bad/"])
    monkeypatch.setitem(D.REMOTE_DATASETS, "tiny", dataset)
    serve(source, www / "bad", spoil)
    with pytest.raises(DataError, match="could not download") as info:
        D.load_dataset("tiny", data_dir=tmp_path / "root")
    assert f"{base}/bad/" in str(info.value), what
    assert not (tmp_path / "root").exists()  # no file that passes for complete, and no empty folder


def test_download_falls_back_to_the_next_mirror(tmp_path, monkeypatch, http_server):
    www, base = http_server
    dataset, source, arrays = tiny_dataset(tmp_path, mirrors=[f"{base}/broken/", f"{base}/good/"])
    monkeypatch.setitem(D.REMOTE_DATASETS, "tiny", dataset)
    serve(source, www / "broken", lambda name, b: b"<html>moved</html>")
    serve(source, www / "good")
    (_, t), _ = D.load_dataset("tiny", data_dir=tmp_path / "root")
    np.testing.assert_array_equal(t, arrays["train_labels"])


def test_published_checksums_match_the_shared_copies():
    # The SHA256SUMS files next to the shared data are the reference for our table.
    for name in ("mnist", "fashion-mnist"):
        sums_file = SHARED_DATA / name / "SHA256SUMS"
        if not sums_file.is_file():
            pytest.skip(f"{sums_file} not found")
        sums = dict(reversed(line.split()) for line in sums_file.read_text().splitlines() if line.strip())
        assert {f.name: f.sha256 for f in D.REMOTE_DATASETS[name].files.values()} == sums


@needs_mnist
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_full_dataset_from_the_shared_root(name, monkeypatch):
    monkeypatch.setenv("HANDGRAD_DATA", str(SHARED_DATA))  # the user's environment-variable path
    (x, t), (x_test, t_test) = D.load_dataset(name, download=False)
    assert x.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() == 1.0
    assert t.min() == 0 and t.max() == 9
    if name == "mnist":
        np.testing.assert_array_equal(np.bincount(t_test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    else:
        np.testing.assert_array_equal(np.bincount(t), [6000] * 10)


# --- MNIST-1D --------------------------------------------------------------------------------------

# Reference values from the reference generator, the `mnist1d` package 0.0.2.post1
# (`make_dataset(get_dataset_args())`, default seed 42, NumPy 2.4, SciPy 1.17), written by
# benchmarks/verify_mnist1d.py --write-fixture: the labels, every 10th signal whole, and two
# linear functionals (the sum and a ramp-weighted sum) of every signal. The signals go through
# exp, sin and interpolation, whose last bits differ between processors (AVX-512 and AVX2 paths
# of the same NumPy differ by up to 9e-16 here), so they are compared to 1e-12, the labels exactly.
MNIST1D_REFERENCE = Path(__file__).parent / "fixtures" / "mnist1d_reference.npz"


def test_mnist1d_equals_the_reference_generator_to_float64_rounding():
    (x, y), (x_test, y_test) = D.make_mnist1d()
    reference = np.load(MNIST1D_REFERENCE)
    ramp = np.linspace(-1, 1, 40)
    np.testing.assert_array_equal(y, reference["y"])
    np.testing.assert_array_equal(y_test, reference["y_test"])
    for name, signals in (("x", x), ("x_test", x_test)):
        assert signals.dtype == np.float64 and signals.shape == (len(reference[f"{name}_row_sums"]), 40)
        np.testing.assert_allclose(signals[::10], reference[f"{name}_every_10th_row"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(signals.sum(axis=1), reference[f"{name}_row_sums"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(signals @ ramp, reference[f"{name}_row_ramps"], rtol=0, atol=1e-12)


def test_mnist1d_through_load_dataset():
    (x, t), (x_test, t_test) = D.load_dataset("mnist1d")
    assert x.shape == (4000, 40) and x_test.shape == (1000, 40) and x.dtype == np.float32
    assert sorted(np.unique(t)) == list(range(10))
    (x3, _), _ = D.load_dataset("mnist1d", flatten=False)
    assert x3.shape == (4000, 1, 40)
    (a, _), _ = D.make_mnist1d(seed=1, num_samples=100)
    assert a.shape == (80, 40)
    with pytest.raises(TypeError, match="unknown arguments"):
        D.make_mnist1d(noise=3)
