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

``load`` also refuses weights that are not finite (NaN, infinity) and text that is not Unicode (a
lone surrogate such as ``"\\ud800"`` in the vocabulary or any other header string: valid JSON,
but no UTF-8 writer can carry it); ``save`` refuses both too, so it never writes what ``load``
refuses.

Writing (:func:`atomic_write_bytes`: models, checkpoints, ONNX exports, run histories): a
temporary file beside the target, renamed over it; only a regular file (or nothing) is ever
replaced, and a symbolic link is written through to its target (:func:`check_writable_target`
states the rule, for writers that cannot hand over bytes, such as matplotlib's ``savefig``).
Temporaries left by a writer that was killed are removed later (:func:`remove_stale_temporaries`).

Every problem with a file raises :class:`SerializationError` naming the file (a missing file:
``FileNotFoundError``); a digest is a check against corruption and editing by mistake, not a
signature: whoever can write the file can recompute it, so every check after it still runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import socket
import stat
import struct
from pathlib import Path

import numpy as np

from . import validate
from ._version import __version__
from .layers import LAYER_TYPES

__all__ = ["save", "load", "read_metadata", "write_safetensors", "read_safetensors", "SerializationError",
           "atomic_write_bytes", "check_writable_target", "remove_stale_temporaries"]

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
_FLOAT_DTYPES = set(validate.FLOAT_DTYPES)
_MAX_HEADER = 100 * 1024 * 1024
_MAX_NDIM = 32      # NumPy 1's limit; no handgrad tensor comes near it
_MAX_INT = 2 ** 63  # safetensors stores sizes and offsets as 64-bit unsigned integers


class SerializationError(ValueError):
    """A model or checkpoint file that cannot be trusted, understood, or written."""


# --- writing -------------------------------------------------------------------------------------


# Temporary files are named ".<target's name>.tmp-<host>-<pid>-<random>": <host> is a digest of
# the machine's name and <pid> the writing process, so that a later run can tell a temporary
# left behind by a writer that died (kill -9, a power cut) from one that is being written now.
_TEMP_INFIX = ".tmp-"
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.tmp-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}")
_FILE_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symbolic link"), (stat.S_ISFIFO, "FIFO (named pipe)"),
               (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8", "backslashreplace")).hexdigest()[:8]


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}{_TEMP_INFIX}{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}")


def _create_temp_beside(path: Path) -> tuple[int, Path]:
    """A new, empty file next to ``path`` (so the final rename stays on one filesystem), named
    as the comment above ``_TEMP_NAME`` says. Unlike ``tempfile.mkstemp`` (always 0600) it asks
    for mode 0666, which the kernel reduces by the umask: the result gets the permissions any
    other new file would, with no need to read (and, for a moment, change) the process-wide umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = _temp_name(path)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # another writer drew the same random name: draw again
            continue


def _process_is_gone(pid: int) -> bool:
    """True only when no process ``pid`` exists on this machine. Where that cannot be told
    safely (Windows, whose ``os.kill(pid, 0)`` would send a Ctrl-C), False: the file is kept."""
    if pid < 1 or pid == os.getpid() or os.name == "nt":
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: it exists, and belongs to someone else
        return False
    return False


def remove_stale_temporaries(folder, target: str | None = None) -> list[Path]:
    """Delete the temporary files that writers on this machine left in ``folder`` when they
    died before renaming them (``kill -9`` or a crash during a save; a checkpoint's can be
    hundreds of MB), and return their paths. A temporary is stale when its name has the form
    ``.<name>.tmp-<host>-<pid>-<random>`` that :func:`atomic_write_bytes` gives, ``<host>`` is
    this machine and no process ``<pid>`` runs here; anything else (a live writer's file, another
    machine's on a shared disk, a file of another program) is left alone. ``target``: only the
    temporaries of that file name. :func:`atomic_write_bytes` calls this for its own target; call
    it on a run's output folder when the run starts to sweep the others (a plot's, a history's).
    Best effort: a file that cannot be deleted stays, silently."""
    host, removed = _host_tag(), []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if (match is None or match["host"] != host or (target is not None and match["target"] != target)
                or not _process_is_gone(int(match["pid"]))):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def _kind_of(mode: int) -> str | None:
    """What a file of ``st_mode`` ``mode`` is, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "special file")


def check_writable_target(path) -> Path:
    """The file that writing ``path`` replaces, after checking that replacing it is safe; call it
    before writing (matplotlib's ``savefig`` paths too). Raises :class:`SerializationError`
    naming ``path`` (one line) when the file is anything but a regular file or absent: a
    directory, a FIFO, a character or block device (``/dev/full``), a socket, a link loop.

    A symbolic link is written through: the file it points to (resolved fully, relative links
    too) is the one replaced, the link stays, and the same rule applies to that file (a link to
    ``/dev/null`` is refused; a dangling link creates its target, whose folder must exist)."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if os.path.islink(path) else path
    try:
        mode = os.lstat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):  # absent (or below a file: the writer says so)
        return target
    except OSError as error:
        raise SerializationError(f"{path}: cannot check what the path is ({error.strerror or error})") from error
    kind = _kind_of(mode)
    if kind is None:
        return target
    if kind == "symbolic link":  # realpath stops at a link that loops
        raise SerializationError(f"{path}: is a symbolic link that loops ({target}); give the name of a file to write")
    what = f"is a {kind}" if target == path else f"is a link to {target}, a {kind}"
    if kind == "directory":
        raise SerializationError(f"{path}: {what}; give the name of a file to write")
    raise SerializationError(f"{path}: {what}, not a regular file; handgrad writes only regular files and will "
                             f"not replace it")


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
    new file's permissions follow the umask.

    What may be replaced (:func:`check_writable_target`, checked before anything is written and
    again just before the rename): a regular file, or nothing. A directory, FIFO, device or
    socket is refused; a symbolic link is written through, its target replaced atomically (the
    temporary file sits beside the target) and the link kept.

    Temporary files are named ``.<name>.tmp-<host>-<pid>-<random>``; one that a writer killed
    mid-write left behind is deleted by the next write of the same file on this machine
    (:func:`remove_stale_temporaries`; call it on an output folder to sweep every target's).

    Any failure (a folder in the way, a full disk) raises one :class:`SerializationError` naming
    ``path``, caused by the ``OSError``."""
    path = Path(path)
    target = check_writable_target(path)
    if target == path:  # a link's target folder is the link's business: it must exist
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SerializationError(f"{path}: cannot create the folder {path.parent} "
                                     f"({error.strerror or error}; is part of the path a file?)") from error
    remove_stale_temporaries(target.parent, target.name)
    tmp = None
    try:
        fd, tmp = _create_temp_beside(target)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if check_writable_target(path) != target:  # the link was pointed elsewhere meanwhile
            raise SerializationError(f"{path}: the link changed while the file was written; nothing was replaced")
        os.replace(tmp, target)
        tmp = None
    except OSError as error:
        raise SerializationError(f"{path}: cannot write the file ({error.strerror or error})") from error
    finally:
        if tmp is not None:  # never leave a half-written temporary file behind
            try:
                Path(tmp).unlink(missing_ok=True)
            except OSError:
                pass
    _fsync_directory(target.parent)


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
    where = validate.lone_surrogate_at({"tensor names": list(header), "metadata": meta})
    if where is not None:  # json.dumps would escape it, and every reader refuse the file
        raise SerializationError(f"{path}: {where} holds a lone surrogate, which is not Unicode text (not "
                                 f"encodable as UTF-8); a file with it could not be read back")
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
    key twice in one object (other readers may keep the other copy), nothing nested too deep, no
    string with a lone surrogate (``"\\udc80"``: a Python str, but no text a web page, a terminal
    or another safetensors reader can carry)."""
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
        parsed = json.loads(text, parse_constant=refuse_constant, parse_float=finite_float,
                            object_pairs_hook=unique_keys)
        where = validate.lone_surrogate_at(parsed)
        if where is not None:  # "\ud800" is valid JSON, but not text: UTF-8 cannot encode it
            raise _Refused(f"{what} holds a lone surrogate (\\uD800-\\uDFFF escape) in {where}, which is not "
                           f"Unicode text (not encodable as UTF-8)")
        return parsed
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

    A model :func:`load` would refuse is refused here, before anything is written, by the same
    checks: weights that are not finite or not of one float dtype, an architecture whose limits
    or shapes load refuses, text with a lone surrogate.

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
    # What load checks, save checks first, with the same functions: it never writes a file that
    # load would refuse (a model whose constructor let through what load does not, NaN weights).
    spec = model.spec()
    where = validate.lone_surrogate_at(spec, "architecture")
    if where is not None:
        raise SerializationError(f"save {path}: {where} holds a lone surrogate, which is not Unicode text (not "
                                 f"encodable as UTF-8); load would refuse the file")
    architecture = json.dumps(spec)
    tensors = layer_tensors(model)
    _model_dtype(f"save {path}", tensors)
    for name, array in tensors.items():
        _check_finite(f"save {path}", name, array)
    _check_spec(f"save {path}", _strict_json(architecture, f"save {path}", "architecture"), tensors)
    write_safetensors(path, tensors, {
        **extra, "format": FORMAT, "handgrad_version": __version__, "architecture": architecture,
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


def _check_finite(where, name: str, array) -> None:
    """Refuse a weight with NaN or infinity: such a model answers NaN (and a server streams
    invalid JSON), so it is neither written nor loaded."""
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise SerializationError(f"{where}: weight {name!r} has {bad} NaN or infinite value{'' if bad == 1 else 's'} "
                                 f"of {array.size}; a model's weights must be finite numbers")


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
    dtype = _model_dtype(path, tensors)
    for name, array in tensors.items():
        _check_finite(path, name, array)
    model = build_model(spec, path, dtype, tensors)
    load_weights_into(model, tensors, path)
    return model, {k: v for k, v in metadata.items() if not _is_own_key(k)}


def load(path):
    """The model saved at ``path``, rebuilt from its architecture and weights, after every check
    (the file's digest, its structure, float weights of one dtype, all finite, shapes that match
    the architecture, text that is Unicode). Raises :class:`SerializationError` naming the file
    and what is wrong."""
    return _load_checked(path)[0]


def read_metadata(path) -> dict:
    """The user metadata saved with the model at ``path`` (``save(..., metadata=...)``; ``{}`` for
    files without any), after the same checks as :func:`load`."""
    return _load_checked(path)[1]
