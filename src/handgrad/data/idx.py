"""Reading IDX files (the MNIST format), gzip-compressed or not, with every header checked.

An IDX file is a 4-byte magic number ``0 0 <type> <ndim>``, then ``ndim`` big-endian uint32
dimensions, then the values in row-major order, big-endian.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "IdxError"]

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IdxError(ValueError):
    """A file that is not a complete, well-formed IDX file."""


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise IdxError(f"{path}: corrupt or truncated gzip data ({error})") from None


def read_idx(path) -> np.ndarray:
    """The array stored in the IDX file at ``path`` (``.gz`` or plain), in native byte order.

    Raises :class:`IdxError` naming the file when the magic number, the number of dimensions
    or the length of the data is wrong (a truncated download, an HTML page saved as .gz, ...).
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    type_code, ndim = data[2], data[3]
    if type_code not in _TYPES:
        raise IdxError(f"{path}: unknown IDX data type 0x{type_code:02x}")
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_size:
        raise IdxError(f"{path}: IDX header truncated or with {ndim} dimensions")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _TYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header_size != expected:
        raise IdxError(f"{path}: IDX header says shape {shape} ({expected} bytes of data), "
                       f"the file has {len(data) - header_size} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))
