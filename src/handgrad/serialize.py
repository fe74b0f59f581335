"""Save and load models: one safetensors file, weights as tensors, the architecture as JSON in
its metadata. No pickle and no code execution, ever: ``load`` rebuilds only the layer types in
:data:`handgrad.layers.LAYER_TYPES`, and checks every byte count, shape and the weights' SHA-256.

The safetensors format (as published by Hugging Face): an 8-byte little-endian header length,
a JSON header ``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}``,
then the raw little-endian tensor bytes. PyTorch users read the weights with
``safetensors.torch.load_file`` (Affine's ``W`` is ``(in, out)``, the transpose of
``nn.Linear.weight``). handgrad writes the format itself so that NumPy stays its only runtime
dependency; the tests check the files against the reference ``safetensors`` library.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from . import __version__
from .layers import LAYER_TYPES

__all__ = ["save", "load", "write_safetensors", "read_safetensors", "SerializationError", "atomic_write_bytes"]

FORMAT = "handgrad.Sequential"
_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "I64": np.dtype("<i8"),
           "I32": np.dtype("<i4"), "U8": np.dtype("u1"), "I8": np.dtype("i1"), "BOOL": np.dtype("?")}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


class SerializationError(ValueError):
    """A model or checkpoint file that cannot be trusted or understood."""


def atomic_write_bytes(path, chunks) -> None:
    """Write ``chunks`` (bytes-like) to a temporary file beside ``path``, flush it to disk, then
    rename it over ``path``: a crash leaves the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_safetensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write named arrays (and string metadata) as a safetensors file, atomically."""
    header, blobs, offset = {}, [], 0
    digest = hashlib.sha256()
    for name, array in tensors.items():
        array = np.asarray(array)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in _DTYPE_NAMES:
            raise SerializationError(f"save: tensor {name!r} has unsupported dtype {array.dtype}")
        blob = np.ascontiguousarray(array, dtype=dtype).tobytes()
        header[name] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        digest.update(blob)
        offset += len(blob)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["data_sha256"] = digest.hexdigest()
    header["__metadata__"] = meta
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # the format pads the header to 8 bytes
    atomic_write_bytes(path, [struct.pack("<Q", len(header_bytes)), header_bytes, *blobs])


def read_safetensors(path) -> tuple[dict, dict]:
    """``(tensors, metadata)`` of a safetensors file, after checking its structure, that the data
    fill the file exactly, and (for handgrad's files) the data's SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    if len(raw) < 8:
        raise SerializationError(f"{path}: too short to be a safetensors file ({len(raw)} bytes)")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len > min(_MAX_HEADER, len(raw) - 8):
        raise SerializationError(f"{path}: not a safetensors file, or truncated (header length {header_len}, "
                                 f"file {len(raw)} bytes)")
    try:
        header = json.loads(raw[8:8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SerializationError(f"{path}: header is not valid JSON ({error})") from None
    if not isinstance(header, dict):
        raise SerializationError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + header_len:]
    tensors, end = {}, 0
    for name, info in sorted(header.items(), key=lambda item: item[1].get("data_offsets", [0])[0]
                             if isinstance(item[1], dict) else 0):
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = tuple(int(d) for d in info["shape"])
            begin, stop = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SerializationError(f"{path}: tensor {name!r} has a malformed or unsupported entry {info!r}") from None
        if begin != end or stop - begin != int(np.prod(shape)) * dtype.itemsize or stop > len(data):
            raise SerializationError(f"{path}: tensor {name!r} has inconsistent offsets {begin}..{stop} for shape "
                                     f"{shape} {info['dtype']} (file truncated or tampered)")
        tensors[name] = np.frombuffer(data[begin:stop], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
        end = stop
    if end != len(data):
        raise SerializationError(f"{path}: {len(data) - end} unexpected bytes after the tensors (tampered?)")
    expected = metadata.get("data_sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise SerializationError(f"{path}: weights do not match their recorded SHA-256 (file corrupt or tampered)")
    return tensors, metadata


def layer_tensors(model, prefix: str = "") -> dict:
    """Every layer's parameters and buffers (running statistics) keyed ``"<index>.<name>"``,
    whatever names the model itself shows."""
    return {f"{prefix}{i}.{key}": value for i, layer in enumerate(model.layers)
            for key, value in {**layer.params, **getattr(layer, "buffers", {})}.items()}


def save(model, path) -> None:
    """Write ``model`` (a :class:`handgrad.Sequential`) to ``path`` atomically."""
    write_safetensors(path, layer_tensors(model), {
        "format": FORMAT, "handgrad_version": __version__, "architecture": json.dumps(model.spec()),
    })


def build_model(spec, path="model", dtype=np.float32):
    """A Sequential with zero weights from an architecture spec, trusting only known layer types."""
    from .model import Sequential

    def make(layer_spec, where):
        if not isinstance(layer_spec, dict) or layer_spec.get("type") not in LAYER_TYPES:
            kind = layer_spec.get("type") if isinstance(layer_spec, dict) else layer_spec
            raise SerializationError(f"{path}: {where} has unknown layer type {kind!r}; "
                                     f"known: {', '.join(sorted(LAYER_TYPES))}")
        try:
            return LAYER_TYPES[layer_spec["type"]].from_spec(layer_spec, dtype)
        except (KeyError, TypeError, ValueError) as error:
            raise SerializationError(f"{path}: {where} ({layer_spec['type']}) has a bad description: {error}") from None

    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise SerializationError(f"{path}: architecture has no list of layers")
    layers = [make(layer_spec, f"layer {i}") for i, layer_spec in enumerate(spec["layers"])]
    try:
        return Sequential(layers, loss=make(spec.get("loss", {"type": "SoftmaxWithLoss"}), "the loss layer"),
                          weight_decay=float(spec.get("weight_decay", 0.0)), input_shape=spec.get("input_shape"))
    except (TypeError, ValueError) as error:
        raise SerializationError(f"{path}: bad model description: {error}") from None


def load_weights_into(model, tensors: dict, path="model", prefix: str = "") -> None:
    """Copy ``tensors`` into the model's parameters, requiring the exact same names and shapes."""
    expected = layer_tensors(model, prefix)
    present = {k for k in tensors if k.startswith(prefix)}
    if present != set(expected):
        raise SerializationError(f"{path}: weights {sorted(present ^ set(expected))} do not match the architecture")
    for name, param in expected.items():
        if tensors[name].shape != param.shape:
            raise SerializationError(f"{path}: weight {name!r} has shape {tensors[name].shape}, "
                                     f"the architecture needs {param.shape}")
    for name, param in expected.items():
        param[...] = tensors[name]


def load(path):
    """The model saved at ``path``, rebuilt from its architecture and weights."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise SerializationError(f"{path}: not a handgrad model file (format {metadata.get('format')!r})")
    try:
        spec = json.loads(metadata["architecture"])
    except (KeyError, json.JSONDecodeError) as error:
        raise SerializationError(f"{path}: architecture missing or not JSON ({error})") from None
    dtype = next(iter(tensors.values())).dtype if tensors else np.float32
    model = build_model(spec, path, dtype)
    load_weights_into(model, tensors, path)
    return model
