"""Save and load models: one safetensors file, weights as tensors, the architecture as JSON in
its metadata. No pickle and no code execution, ever: ``load`` rebuilds only the layer types in
:data:`handgrad.layers.LAYER_TYPES`, and checks every byte count, shape, dtype and a SHA-256
digest of the whole file before it trusts anything in it.

The safetensors format (as published by Hugging Face): an 8-byte little-endian header length,
a JSON header ``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}``,
then the raw little-endian tensor bytes. PyTorch users read the weights with
``safetensors.torch.load_file`` (Affine's ``W`` is ``(in, out)``, the transpose of
``nn.Linear.weight``). handgrad writes the format itself so that NumPy stays its only runtime
dependency; the tests check the files against the reference ``safetensors`` library.

What handgrad adds in ``__metadata__`` (file version 2, every file this version writes):

- ``handgrad_file_version``: ``"2"``.
- ``handgrad_sha256``: SHA-256 of ``b"handgrad/2\\0"``, the 8-byte little-endian length of the
  canonical header, the canonical header, and every data byte after the header. The canonical
  header is the parsed JSON header without ``handgrad_sha256`` itself, written with sorted keys,
  no spaces and ASCII only; so the digest covers the architecture, every tensor's name, dtype,
  shape and offsets, and all other metadata, as well as the weights. Editing any of them (an
  ``F32`` turned ``I32``, ``"Relu"`` turned ``"Tanh"``), or deleting the digest, is refused.
- models (``format`` ``handgrad.Sequential``): ``handgrad_version``, ``architecture`` (JSON of
  :meth:`Sequential.spec`), and any user metadata given to :func:`save` (string keys and values).

Files written by release 0.1.0 carry only ``data_sha256`` (over the data bytes); they still load,
checked by that digest and by every structural check (their header is not covered: that is what
file version 2 fixes). A file whose ``format`` starts with ``handgrad`` and has no digest at all is
refused. Plain safetensors files from other tools (no handgrad metadata) have no digest by
design; :func:`read_safetensors` still reads them, after the same structural checks.

Every problem with a file raises :class:`SerializationError` naming the file (a missing file:
``FileNotFoundError``); a digest is a check against corruption and editing by mistake, not a
signature: whoever can write the file can recompute it, so every check after it still runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import struct
from pathlib import Path

import numpy as np

from . import __version__
from .layers import LAYER_TYPES

__all__ = ["save", "load", "read_metadata", "write_safetensors", "read_safetensors", "SerializationError",
           "atomic_write_bytes"]

FORMAT = "handgrad.Sequential"
FILE_VERSION = "2"
VERSION_KEY, DIGEST_KEY, LEGACY_DIGEST_KEY = "handgrad_file_version", "handgrad_sha256", "data_sha256"
_DIGEST_PREFIX = b"handgrad/2\0"
# Metadata keys that belong to handgrad, never to the user (see save(metadata=...)).
_OWN_KEYS = {"format", "architecture", LEGACY_DIGEST_KEY}
_OWN_PREFIX = "handgrad_"

_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "I64": np.dtype("<i8"),
           "I32": np.dtype("<i4"), "U8": np.dtype("u1"), "I8": np.dtype("i1"), "BOOL": np.dtype("?")}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
_FLOAT_DTYPES = {np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)}
_MAX_HEADER = 100 * 1024 * 1024
_MAX_NDIM = 32      # NumPy 1's limit; no handgrad tensor comes near it
_MAX_INT = 2 ** 63  # safetensors stores sizes and offsets as 64-bit unsigned integers


class SerializationError(ValueError):
    """A model or checkpoint file that cannot be trusted, understood, or written."""


# --- writing -------------------------------------------------------------------------------------


def _create_temp_beside(path: Path) -> tuple[int, Path]:
    """A new, empty file next to ``path`` (so the final rename stays on one filesystem).
    Unlike ``tempfile.mkstemp`` (always 0600) it asks for mode 0666, which the kernel reduces by
    the umask: the result gets the permissions any other new file would, with no need to read
    (and, for a moment, change) the process-wide umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # another writer drew the same random name: draw again
            continue


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable. Best effort: some filesystems cannot fsync a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path, chunks) -> None:
    """Write ``chunks`` (bytes-like) to a temporary file beside ``path``, flush it to disk, then
    rename it over ``path``: a crash leaves the old file or the new one, never half of one. The
    new file's permissions follow the umask. Any failure (a folder in the way, a full disk)
    raises one :class:`SerializationError` naming ``path``, caused by the ``OSError``."""
    path = Path(path)
    if path.is_dir():
        raise SerializationError(f"{path}: is a directory; give the name of a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SerializationError(f"{path}: cannot create the folder {path.parent} "
                                 f"({error.strerror or error}; is part of the path a file?)") from error
    tmp = None
    try:
        fd, tmp = _create_temp_beside(path)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as error:
        raise SerializationError(f"{path}: cannot write the file ({error.strerror or error})") from error
    finally:
        if tmp is not None:  # never leave a half-written temporary file behind
            try:
                Path(tmp).unlink(missing_ok=True)
            except OSError:
                pass
    _fsync_directory(path.parent)


def _canonical_header(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _file_digest(header: dict, data) -> str:
    """``handgrad_sha256`` of a file whose parsed header is ``header`` and whose bytes after the
    header are ``data`` (see the module docstring)."""
    metadata = {k: v for k, v in header["__metadata__"].items() if k != DIGEST_KEY}
    canonical = _canonical_header({**header, "__metadata__": metadata})
    digest = hashlib.sha256(_DIGEST_PREFIX)
    digest.update(struct.pack("<Q", len(canonical)))
    digest.update(canonical)
    digest.update(data)
    return digest.hexdigest()


def write_safetensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write named arrays (and string metadata) as a safetensors file, atomically, with the
    file version and the digest that covers the header and the data."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        if str(name) == "__metadata__":
            raise SerializationError(f"{path}: a tensor may not be named __metadata__ (the format's metadata key)")
        array = np.asarray(array)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in _DTYPE_NAMES:
            raise SerializationError(f"{path}: tensor {name!r} has unsupported dtype {array.dtype}")
        blob = np.ascontiguousarray(array, dtype=dtype).tobytes()
        header[str(name)] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(array.shape),
                             "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta[VERSION_KEY] = FILE_VERSION
    meta.pop(DIGEST_KEY, None)
    meta.pop(LEGACY_DIGEST_KEY, None)  # a stale digest copied from another file would mislead
    header["__metadata__"] = meta
    meta[DIGEST_KEY] = _file_digest(header, b"".join(blobs))
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # the format pads the header to 8 bytes
    atomic_write_bytes(path, [struct.pack("<Q", len(header_bytes)), header_bytes, *blobs])


# --- reading -------------------------------------------------------------------------------------


class _Refused(Exception):
    """A JSON text handgrad refuses although Python's parser would accept it."""


def _strict_json(text, path, what: str):
    """Parse ``text`` as strict JSON: no NaN or Infinity, no numbers that overflow to inf, no
    key twice in one object (other readers may keep the other copy), nothing nested too deep."""
    def refuse_constant(name):
        raise _Refused(f"{what} contains {name}, which is not JSON")

    def finite_float(literal):
        value = float(literal)
        if not math.isfinite(value):
            raise _Refused(f"{what} contains the number {literal[:40]}, out of range")
        return value

    def unique_keys(pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                raise _Refused(f"{what} has the key {key[:80]!r} twice")
            obj[key] = value
        return obj

    try:
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode("utf-8")
        return json.loads(text, parse_constant=refuse_constant, parse_float=finite_float,
                          object_pairs_hook=unique_keys)
    except _Refused as error:
        raise SerializationError(f"{path}: {error}") from None
    except RecursionError as error:
        raise SerializationError(f"{path}: {what} is nested too deeply") from error
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, integers of > 4300 digits
        raise SerializationError(f"{path}: {what} is not valid JSON ({str(error)[:200]})") from error


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(path, name: str, info) -> tuple:
    """``(dtype, shape, begin, stop)`` of one tensor's header entry, every field checked."""
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        got = sorted(info) if isinstance(info, dict) else type(info).__name__
        raise SerializationError(f"{path}: tensor {name!r} needs exactly the fields dtype, shape and "
                                 f"data_offsets, got {str(got)[:200]}")
    dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
        raise SerializationError(f"{path}: tensor {name!r} has unsupported dtype {str(dtype_name)[:40]!r} "
                                 f"(handgrad reads {', '.join(_DTYPES)})")
    if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
            or not all(_is_int(d) and 0 <= d < _MAX_INT for d in shape)):
        raise SerializationError(f"{path}: tensor {name!r} has shape {str(shape)[:200]}; a shape is a list of "
                                 f"at most {_MAX_NDIM} non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_is_int(v) and 0 <= v < _MAX_INT for v in offsets) or offsets[0] > offsets[1]):
        raise SerializationError(f"{path}: tensor {name!r} has data_offsets {str(offsets)[:200]}; they must be "
                                 f"[begin, end], two integers with 0 <= begin <= end")
    return _DTYPES[dtype_name], tuple(shape), offsets[0], offsets[1]


def _check_digest(path, header: dict, metadata: dict, data) -> None:
    """Verify the file's digest: version 2 covers header and data, release 0.1.0's covers the
    data only; a handgrad file without any digest is refused (deleting it must not turn the
    check off)."""
    if VERSION_KEY in metadata or DIGEST_KEY in metadata:
        version = metadata.get(VERSION_KEY)
        if version != FILE_VERSION:
            if version is None:
                raise SerializationError(f"{path}: has {DIGEST_KEY} but no {VERSION_KEY} (file edited?)")
            raise SerializationError(f"{path}: file version {version[:40]!r} is not one this handgrad reads "
                                     f"(it reads version {FILE_VERSION}); written by a newer handgrad?")
        if DIGEST_KEY not in metadata:
            raise SerializationError(f"{path}: its {DIGEST_KEY} digest is missing (file corrupt or edited)")
        if _file_digest(header, data) != metadata[DIGEST_KEY]:
            raise SerializationError(f"{path}: header or weights do not match their recorded SHA-256 "
                                     f"(file corrupt or edited)")
    elif LEGACY_DIGEST_KEY in metadata:  # written by release 0.1.0
        if hashlib.sha256(data).hexdigest() != metadata[LEGACY_DIGEST_KEY]:
            raise SerializationError(f"{path}: weights do not match their recorded SHA-256 (file corrupt or edited)")
    elif metadata.get("format", "").startswith("handgrad"):
        raise SerializationError(f"{path}: a handgrad file ({metadata['format'][:40]}) without its SHA-256 "
                                 f"digest (file corrupt or edited)")


def read_safetensors(path) -> tuple[dict, dict]:
    """``(tensors, metadata)`` of a safetensors file, after checking its structure, that the data
    fill the file exactly, and the digest (handgrad's files; see the module docstring).

    Raises :class:`SerializationError` naming the file for anything wrong with it, and
    ``FileNotFoundError`` if there is no file. Memory: the file, and one copy of the tensors."""
    path = Path(path)
    if path.is_dir():
        raise SerializationError(f"{path}: is a directory, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SerializationError(f"{path}: cannot read the file ({error.strerror or error})") from error
    if len(raw) < 8:
        raise SerializationError(f"{path}: too short to be a safetensors file ({len(raw)} bytes)")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len > min(_MAX_HEADER, len(raw) - 8):
        raise SerializationError(f"{path}: not a safetensors file, or truncated (header length {header_len}, "
                                 f"file {len(raw)} bytes)")
    header = _strict_json(raw[8:8 + header_len], path, "header")
    if not isinstance(header, dict):
        raise SerializationError(f"{path}: header is not a JSON object")
    metadata = header.get("__metadata__")
    if metadata is None:  # the reference library writes no __metadata__ (or null) when there is none
        metadata = {}
    elif not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise SerializationError(f"{path}: __metadata__ must be a JSON object of strings, got "
                                 f"{str(metadata)[:200]}")
    data = memoryview(raw)[8 + header_len:]
    entries = sorted(((name, *_entry(path, name, info)) for name, info in header.items() if name != "__metadata__"),
                     key=lambda entry: entry[3])
    end = 0
    for name, dtype, shape, begin, stop in entries:
        # Python integers: a product of huge dimensions cannot overflow, and nothing is allocated.
        if begin != end or stop - begin != math.prod(shape) * dtype.itemsize or stop > len(data):
            raise SerializationError(f"{path}: tensor {name!r} has inconsistent offsets {begin}..{stop} for shape "
                                     f"{shape} {_DTYPE_NAMES[dtype]} (file truncated or tampered)")
        end = stop
    if end != len(data):
        raise SerializationError(f"{path}: {len(data) - end} unexpected bytes after the tensors (tampered?)")
    _check_digest(path, header, metadata, data)
    tensors = {name: np.frombuffer(data[begin:stop], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
               for name, dtype, shape, begin, stop in entries}
    return tensors, dict(metadata)


# --- models --------------------------------------------------------------------------------------


def layer_tensors(model, prefix: str = "") -> dict:
    """Every parameter and buffer (running statistics) of the model, keyed by path
    (``"<index>.<name>"`` for a Sequential, ``"decoder.Wx"`` for a composite model)."""
    from .model import Sequential

    # A Sequential's by layer index, whatever names a subclass shows (TwoLayerNet's "W1").
    params = Sequential.params.fget(model) if isinstance(model, Sequential) else model.params
    return {f"{prefix}{key}": value for key, value in {**params, **model.buffers}.items()}


def _is_own_key(key: str) -> bool:
    return key in _OWN_KEYS or key.startswith(_OWN_PREFIX)


def save(model, path, *, metadata: dict | None = None) -> None:
    """Write ``model`` (a :class:`handgrad.Sequential`) to ``path`` atomically.

    ``metadata``: extra ``{str: str}`` the user wants kept with the model (the CLI stores the
    dataset's name); :func:`read_metadata` gives it back. Keys handgrad uses itself (``format``,
    ``architecture``, ``data_sha256``, ``handgrad_*``) are refused.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> import handgrad as hg
        >>> model = hg.mlp(4, [8], 3, seed=0)
        >>> x = np.ones((2, 4), np.float32)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     hg.save(model, os.path.join(folder, "model.safetensors"), metadata={"dataset": "mine"})
        ...     loaded = hg.load(os.path.join(folder, "model.safetensors"))
        ...     hg.serialize.read_metadata(os.path.join(folder, "model.safetensors"))
        {'dataset': 'mine'}
        >>> bool(np.array_equal(loaded.predict(x), model.predict(x)))
        True
    """
    extra = dict(metadata or {})
    for key, value in extra.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SerializationError(f"save {path}: metadata must map strings to strings, got "
                                     f"{key!r}: {type(value).__name__}")
        if _is_own_key(key):
            raise SerializationError(f"save {path}: metadata key {key!r} is one handgrad uses itself; choose another")
    write_safetensors(path, layer_tensors(model), {
        **extra, "format": FORMAT, "handgrad_version": __version__, "architecture": json.dumps(model.spec()),
    })


def _expected_shapes(path, where: str, layer_spec) -> dict:
    if not isinstance(layer_spec, dict):
        raise SerializationError(f"{path}: {where} is not a layer description (a JSON object with a type), "
                                 f"got {str(layer_spec)[:80]}")
    kind = layer_spec.get("type")
    if not isinstance(kind, str) or kind not in LAYER_TYPES:
        raise SerializationError(f"{path}: {where} has unknown layer type {str(kind)[:80]!r}; "
                                 f"known: {', '.join(sorted(LAYER_TYPES))}")
    # Each layer type states the shapes its from_spec would allocate (Layer.param_shapes),
    # computed from the spec alone: they are compared with the stored tensors BEFORE anything
    # is allocated (a crafted in_features of 10**12 must not ask for 364 TiB).
    try:
        shapes = LAYER_TYPES[kind].param_shapes(layer_spec)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as error:
        raise SerializationError(f"{path}: {where} ({kind}) has a bad description: {error}") from error
    return {name: tuple(shape) for name, shape in shapes.items()}


def _model_class(path, spec):
    """The registered model class a spec names (``{"model": "Seq2seq", ...}``), or None for a
    Sequential's spec (``{"layers": [...], ...}``)."""
    from .model import MODEL_TYPES

    if not isinstance(spec, dict) or "model" not in spec:
        return None
    kind = spec["model"]
    if not isinstance(kind, str) or kind not in MODEL_TYPES:
        raise SerializationError(f"{path}: unknown model type {str(kind)[:80]!r}; known: {', '.join(sorted(MODEL_TYPES))}")
    return MODEL_TYPES[kind]


def _compare_shapes(path, expected: dict, tensors: dict) -> None:
    if set(tensors) != set(expected):
        raise SerializationError(f"{path}: weights {sorted(set(tensors) ^ set(expected))[:20]} do not match "
                                 f"the architecture")
    for name, shape in expected.items():
        if tensors[name].shape != tuple(shape):
            raise SerializationError(f"{path}: weight {name!r} has shape {tensors[name].shape}, "
                                     f"the architecture needs {tuple(shape)}")


def _check_spec(path, spec, tensors: dict) -> None:
    """Everything in the architecture that could allocate or misbehave, checked against the
    stored tensors before a single layer is built."""
    model_class = _model_class(path, spec)
    if model_class is not None:
        try:
            expected = model_class.param_shapes(spec)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as error:
            raise SerializationError(f"{path}: {spec['model']} has a bad description: {error}") from error
        _compare_shapes(path, expected, tensors)
        return
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise SerializationError(f"{path}: architecture has no list of layers")
    expected = {}
    for i, layer_spec in enumerate(spec["layers"]):
        for name, shape in _expected_shapes(path, f"layer {i}", layer_spec).items():
            expected[f"{i}.{name}"] = shape
    if _expected_shapes(path, "the loss layer", spec.get("loss", {"type": "SoftmaxWithLoss"})):
        raise SerializationError(f"{path}: the loss layer has parameters, which a model file does not store")
    _compare_shapes(path, expected, tensors)
    decay = spec.get("weight_decay", 0.0)
    if not (isinstance(decay, (int, float)) and not isinstance(decay, bool) and decay >= 0):
        raise SerializationError(f"{path}: weight_decay must be a number >= 0, got {str(decay)[:40]}")
    input_shape = spec.get("input_shape")
    if input_shape is not None and not (isinstance(input_shape, list) and 1 <= len(input_shape) <= _MAX_NDIM
                                        and all(_is_int(d) and 1 <= d < _MAX_INT for d in input_shape)):
        raise SerializationError(f"{path}: input_shape must be null or a list of positive integers, "
                                 f"got {str(input_shape)[:80]}")


def build_model(spec, path="model", dtype=np.float32, tensors: dict | None = None):
    """A Sequential with zero weights from an architecture spec, trusting only known layer types.
    With ``tensors`` (the stored weights), the parameter shapes the spec asks for are checked
    against theirs first, so a crafted spec cannot make it allocate more than the file holds."""
    from .model import Sequential

    if tensors is not None:
        _check_spec(path, spec, tensors)
    model_class = _model_class(path, spec)
    if model_class is not None:
        try:
            return model_class.from_spec(spec, dtype)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as error:
            raise SerializationError(f"{path}: {spec['model']} has a bad description: {error}") from error
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise SerializationError(f"{path}: architecture has no list of layers")

    def make(layer_spec, where):
        _expected_shapes(path, where, layer_spec)  # a known type with a sound description
        try:
            return LAYER_TYPES[layer_spec["type"]].from_spec(layer_spec, dtype)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as error:
            raise SerializationError(f"{path}: {where} ({layer_spec['type']}) has a bad description: {error}") from error

    layers = [make(layer_spec, f"layer {i}") for i, layer_spec in enumerate(spec["layers"])]
    try:
        return Sequential(layers, loss=make(spec.get("loss", {"type": "SoftmaxWithLoss"}), "the loss layer"),
                          weight_decay=float(spec.get("weight_decay", 0.0)), input_shape=spec.get("input_shape"))
    except (TypeError, ValueError, OverflowError) as error:
        raise SerializationError(f"{path}: bad model description: {error}") from error


def _check_float(path, name: str, array) -> None:
    if array.dtype not in _FLOAT_DTYPES:
        raise SerializationError(f"{path}: weight {name!r} has dtype {array.dtype}; model parameters must be "
                                 f"float16, float32 or float64")


def load_weights_into(model, tensors: dict, path="model", prefix: str = "") -> None:
    """Copy ``tensors`` into the model's parameters, requiring the exact same names, shapes and
    dtypes (a copy that converted would silently change the model's precision, or its values)."""
    expected = layer_tensors(model, prefix)
    present = {k for k in tensors if k.startswith(prefix)}
    if present != set(expected):
        raise SerializationError(f"{path}: weights {sorted(present ^ set(expected))[:20]} do not match the architecture")
    for name, param in expected.items():
        _check_float(path, name, tensors[name])
        if tensors[name].shape != param.shape:
            raise SerializationError(f"{path}: weight {name!r} has shape {tensors[name].shape}, "
                                     f"the architecture needs {param.shape}")
        if tensors[name].dtype != param.dtype:
            raise SerializationError(f"{path}: weight {name!r} has dtype {tensors[name].dtype}, "
                                     f"the model's parameters are {param.dtype}")
    for name, param in expected.items():
        param[...] = tensors[name]


def _model_dtype(path, tensors: dict):
    """The one float dtype of all the stored weights: a model's precision is its parameters'."""
    for name, array in tensors.items():
        _check_float(path, name, array)
    dtypes = {array.dtype for array in tensors.values()}
    if len(dtypes) > 1:
        first = {}
        for name, array in tensors.items():
            first.setdefault(array.dtype, name)
        listed = ", ".join(f"{name!r} is {dtype}" for dtype, name in first.items())
        raise SerializationError(f"{path}: the weights do not share one dtype ({listed}); a model's parameters do")
    return dtypes.pop() if dtypes else np.dtype(np.float32)


def _load_checked(path):
    """``(model, user metadata)`` of a handgrad model file, after every check."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise SerializationError(f"{path}: not a handgrad model file (format {str(metadata.get('format'))[:40]!r})")
    if "architecture" not in metadata:
        raise SerializationError(f"{path}: the architecture is missing")
    spec = _strict_json(metadata["architecture"], path, "architecture")
    model = build_model(spec, path, _model_dtype(path, tensors), tensors)
    load_weights_into(model, tensors, path)
    return model, {k: v for k, v in metadata.items() if not _is_own_key(k)}


def load(path):
    """The model saved at ``path``, rebuilt from its architecture and weights, after every check
    (the file's digest, its structure, float weights of one dtype, shapes that match the
    architecture). Raises :class:`SerializationError` naming the file and what is wrong."""
    return _load_checked(path)[0]


def read_metadata(path) -> dict:
    """The user metadata saved with the model at ``path`` (``save(..., metadata=...)``; ``{}`` for
    files without any), after the same checks as :func:`load`."""
    return _load_checked(path)[1]
