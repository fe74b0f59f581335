"""Fuzzing the model-file reader: whatever the bytes, ``hg.load`` and ``read_safetensors`` either
return what the file truly holds or raise SerializationError (FileNotFoundError only for a
missing path), quickly and without allocating much more than the file's size.

Four kinds of input: random bytes, truncations, bit flips, and JSON edits of a valid file (any
value replaced by another JSON value of any type, keys deleted or added, with and without a
recomputed digest, so that the checks behind the digest are fuzzed too). The default profile
keeps these to a few seconds; ``HYPOTHESIS_PROFILE=thorough`` searches much longer.
"""

import json
import struct
import tracemalloc
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import handgrad as hg
from handgrad import serialize
from handgrad.serialize import SerializationError, read_safetensors

# Cheap examples (a ~2 KB file), so many more of them than the profile's default; a generous
# per-example deadline bounds the time (each takes about a millisecond).
EXAMPLES = max(settings().max_examples, 150)
fuzz = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# Reading a file of n bytes needs the bytes, one copy of the tensors and the parsed header: a
# few times n. Anything near this bound for a 2 KB file would mean a size was trusted.
MEMORY_LIMIT = 4 * 2 ** 20


def _valid_file(tmp_factory):
    model = hg.mlp(4, [3], 2, batchnorm=True, seed=0)
    path = tmp_factory.mktemp("valid") / "m.safetensors"
    hg.save(model, path, metadata={"dataset": "digits"})
    return path.read_bytes()


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    return _valid_file(tmp_path_factory)


def split(raw):
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def join(header, data, redigest):
    if redigest and isinstance(header, dict) and isinstance(header.get("__metadata__"), dict):
        try:
            header["__metadata__"][serialize.DIGEST_KEY] = serialize._file_digest(header, data)
        except (TypeError, ValueError):  # a header no canonical form exists for (refused anyway)
            pass
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def attempt(function, path):
    """``function(path)``'s result, or the SerializationError it raised; anything else fails the
    test, and so does a peak allocation above MEMORY_LIMIT."""
    tracemalloc.start()
    try:
        try:
            return function(path)
        except SerializationError as error:
            assert str(path) in str(error)
            return error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_LIMIT, f"reading a {path.stat().st_size}-byte file allocated {peak} bytes"


def check_load(path):
    """hg.load: an error, or a model whose weights are exactly the file's (float, one dtype)."""
    result = attempt(hg.load, path)
    if isinstance(result, SerializationError):
        return result
    tensors, _ = read_safetensors(path)
    weights = serialize.layer_tensors(result)
    assert set(weights) == set(tensors)
    assert len({w.dtype for w in weights.values()}) <= 1
    for name, array in weights.items():
        assert array.dtype in (np.float16, np.float32, np.float64)
        np.testing.assert_array_equal(array, tensors[name])
    return result


def assert_same_model(model, path, valid):
    """An input that loads must be the original model (an edit that changes no meaning)."""
    original = split(valid)[1]
    _, data = split(path.read_bytes())
    assert data == original
    assert model.spec() == hg.mlp(4, [3], 2, batchnorm=True, seed=0).spec()


# --- random bytes, truncations, bit flips -------------------------------------------------------


@fuzz
@given(raw=st.binary(max_size=600))
def test_random_bytes_are_refused_or_read(tmp_path, raw):
    path = tmp_path / "f"
    path.write_bytes(raw)
    assert isinstance(check_load(path), SerializationError)  # never a model from noise
    attempt(read_safetensors, path)


@settings(fuzz, max_examples=settings().max_examples)  # generating nested JSON is the slow part
@given(header=st.dictionaries(st.text(max_size=6), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8), max_size=4), data=st.binary(max_size=64))
def test_random_json_headers_are_refused_or_read(tmp_path, header, data):
    path = tmp_path / "f"
    path.write_bytes(join(header, data, redigest=False))
    attempt(read_safetensors, path)
    assert isinstance(check_load(path), SerializationError)


@fuzz
@given(data=st.data())
def test_every_truncation_is_refused(tmp_path, valid, data):
    length = data.draw(st.integers(0, len(valid) - 1))
    path = tmp_path / "f"
    path.write_bytes(valid[:length])
    assert isinstance(check_load(path), SerializationError)


@fuzz
@given(data=st.data())
def test_bit_flips_are_refused_or_change_nothing(tmp_path, valid, data):
    raw = bytearray(valid)
    for position in data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=4, unique=True)):
        raw[position // 8] ^= 1 << (position % 8)
    path = tmp_path / "f"
    path.write_bytes(bytes(raw))
    result = check_load(path)
    if not isinstance(result, SerializationError):
        # Only a flip that means the same JSON (e.g. "\u00fc" vs "\u00FC") may load.
        assert_same_model(result, path, valid)


# --- JSON edits of a valid file -------------------------------------------------------------------

INTERESTING = st.sampled_from([0, 1, -1, 2 ** 31, 2 ** 63, 2 ** 64, 10 ** 12, 1.5, 1e300, True, None, "", "0",
                               "F32", "F16", "F64", "I32", "I64", "U8", "BOOL", "BF16", "Affine", "Relu", "Tanh",
                               "Convolution", "BatchNorm", "SoftmaxWithLoss", "handgrad.Sequential", "2", [],
                               [0], [0, 10 ** 12], [3, 2], [10 ** 12, 10 ** 12], {}, {"type": "Affine"}])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | INTERESTING,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6)


def paths(node, prefix=()):
    """Every place in a JSON document, as a tuple of keys and indices."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, prefix + (index,))


def document(valid):
    """The file's header and its parsed architecture, as one JSON document to edit."""
    header, data = split(valid)
    return {"header": header, "architecture": json.loads(header["__metadata__"]["architecture"])}, data


def edit(doc, path, action, value):
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    if action == "replace":
        parent[key] = value
    elif action == "delete":
        del parent[key]
    elif action == "add" and isinstance(parent[key], dict):
        parent[key][str(value)[:8]] = value
    elif action == "add" and isinstance(parent[key], list):
        parent[key].append(value)
    else:
        parent[key] = value


@fuzz
@given(data=st.data())
def test_json_edits_are_refused_or_load_as_written(tmp_path, valid, data):
    doc, tensor_bytes = document(valid)
    for _ in range(data.draw(st.integers(1, 3))):
        # Half the edits go to the architecture: the header alone has many more places.
        part = data.draw(st.sampled_from(["header", "architecture"]))
        places = list(paths(doc[part], (part,)))[1:]
        assume(places)
        place = data.draw(st.sampled_from(places))
        edit(doc, place, data.draw(st.sampled_from(["replace", "delete", "add"])), data.draw(JSON_VALUES))
    header = doc["header"]
    if "architecture" in doc and isinstance(header.get("__metadata__"), dict):
        if doc.get("architecture") != document(valid)[0]["architecture"]:
            header["__metadata__"]["architecture"] = json.dumps(doc["architecture"])
    redigest = data.draw(st.booleans())
    path = tmp_path / "f"
    path.write_bytes(join(header, tensor_bytes, redigest))
    result = check_load(path)
    attempt(read_safetensors, path)
    attempt(serialize.read_metadata, path)
    if not redigest and not isinstance(result, SerializationError):
        # Without a new digest only an edit that changed nothing may load.
        assert serialize._canonical_header(split(path.read_bytes())[0]) == \
            serialize._canonical_header(split(valid)[0])
        assert_same_model(result, path, valid)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        hg.load(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_safetensors(tmp_path / "missing.safetensors")
