"""Reader and writer for IDX files (the MNIST file format), gzipped or raw.

The format (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"), all integers big-endian:

    bytes 0-1   0x00 0x00                       (the magic number's zero prefix)
    byte  2     dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    then        d uint32 sizes, then prod(sizes) items of the dtype (big-endian), nothing after.

MNIST images are magic 0x00000803 (uint8, 3 dims: count, rows, cols); labels 0x00000801 (uint8, 1 dim).
A gzip file is recognised by its content (bytes 1f 8b), not by its name. Every problem raises
:class:`IDXError` naming the file and what is wrong; nothing here uses ``assert``.
"""
from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from fnn.data.validate import DataError

# dtype code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(DataError):
    """An IDX file is malformed or is not what was expected. The message names the file."""


def _codes() -> str:
    return ", ".join(f"0x{c:02X} ({d.name})" for c, d in IDX_DTYPES.items())


def _read_exact(f, n: int, path: Path, what: str) -> bytes:
    buf = f.read(n)
    if len(buf) != n:
        raise IDXError(f"{path}: truncated {what}: expected {n} bytes, found {len(buf)}")
    return buf


def _read_into(f, out: np.ndarray, path: Path) -> None:
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise IDXError(
                f"{path}: truncated data: the header declares {len(view)} data bytes, found {got}"
            )
        got += n
    extra = f.read(1)
    if extra:
        rest = 1 + len(f.read())
        raise IDXError(
            f"{path}: {rest} unexpected byte(s) after the {len(view)} data bytes the header declares "
            "(count mismatch)"
        )


def read_idx(
    path: str | os.PathLike,
    *,
    dtype: np.dtype | str | None = None,
    ndim: int | None = None,
) -> np.ndarray:
    """Read the array an IDX file holds.

    Args:
      path: file, gzip-compressed or raw (detected from the content).
      dtype: if given, the dtype the header must declare (e.g. ``np.uint8``).
      ndim: if given, the number of dimensions the header must declare (3 for images, 1 for labels).

    Returns:
      A writable array of the declared shape ``(d0, d1, ...)`` in native byte order
      (MNIST images: uint8 ``(count, 28, 28)``; labels: uint8 ``(count,)``).

    Raises:
      IDXError: unreadable, bad gzip data, wrong magic number, unknown dtype code, unexpected
        dtype/ndim, truncated header or data, or trailing bytes after the data.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise IDXError(f"{path}: cannot open ({e.strerror or e})") from None
    with raw:
        head = raw.read(2)
        raw.seek(0)
        gz = head == _GZIP_MAGIC
        f = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        try:
            return _parse(f, path, dtype=dtype, ndim=ndim, gz=gz)
        except (gzip.BadGzipFile, zlib.error) as e:
            raise IDXError(f"{path}: corrupt gzip data ({e})") from None
        except EOFError as e:
            raise IDXError(f"{path}: truncated gzip stream ({e})") from None


def _parse(f, path: Path, *, dtype, ndim, gz: bool) -> np.ndarray:
    magic = f.read(4)
    hint = " (the name ends in .gz but the content is not gzip)" if (path.suffix == ".gz" and not gz) else ""
    if len(magic) < 4:
        raise IDXError(f"{path}: truncated header: expected a 4-byte magic number, found {len(magic)} byte(s){hint}")
    if magic[0:2] != b"\x00\x00":
        raise IDXError(
            f"{path}: bad magic number 0x{magic.hex().upper()}: expected 0x0000 followed by a dtype code "
            f"and the number of dimensions (e.g. 0x00000803 for images){hint}"
        )
    code, d = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise IDXError(f"{path}: unknown dtype code 0x{code:02X} in the magic number; expected one of {_codes()}")
    file_dtype = IDX_DTYPES[code]
    if dtype is not None and file_dtype.newbyteorder("=") != np.dtype(dtype).newbyteorder("="):
        want = np.dtype(dtype)
        want_code = next((c for c, t in IDX_DTYPES.items() if t.newbyteorder("=") == want.newbyteorder("=")), None)
        want_s = f"{want.name}" + (f" (code 0x{want_code:02X})" if want_code is not None else "")
        raise IDXError(f"{path}: dtype code 0x{code:02X} ({file_dtype.name}), expected {want_s}")
    if d == 0:
        raise IDXError(f"{path}: the header declares 0 dimensions; expected at least 1")
    if ndim is not None and d != ndim:
        raise IDXError(
            f"{path}: the header declares {d} dimension(s) (magic 0x{magic.hex().upper()}), expected {ndim}"
        )
    shape = struct.unpack(f">{d}I", _read_exact(f, 4 * d, path, "header (dimension sizes)"))
    declared = file_dtype.itemsize
    for n in shape:
        declared *= n
    if not gz:  # the real size is known: refuse a crafted count before allocating it
        held = os.fstat(f.fileno()).st_size - 4 - 4 * d
        if declared > held:
            raise IDXError(f"{path}: truncated data: the header declares {declared} data bytes, "
                           f"found {held} (shape {shape})")
        out = np.empty(shape, dtype=file_dtype)
        _read_into(f, out, path)
    else:  # compressed: read in chunks, so memory follows the real data, not the header
        out = np.frombuffer(_read_chunks(f, declared, path), dtype=file_dtype).reshape(shape).copy()
    return out.astype(file_dtype.newbyteorder("="), copy=False)


def _read_chunks(f, n: int, path: Path, chunk: int = 1 << 24) -> bytes:
    """Exactly ``n`` bytes then end of stream, read ``chunk`` bytes at a time."""
    buf = bytearray()
    while len(buf) < n:
        part = f.read(min(chunk, n - len(buf)))
        if not part:
            raise IDXError(f"{path}: truncated data: the header declares {n} data bytes, found {len(buf)}")
        buf += part
    extra = f.read(1)
    if extra:
        rest = 1 + len(f.read())
        raise IDXError(
            f"{path}: {rest} unexpected byte(s) after the {n} data bytes the header declares "
            "(count mismatch)"
        )
    return bytes(buf)


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write an array as an IDX file (the inverse of :func:`read_idx`).

    Args:
      path: destination; written gzip-compressed when ``compress`` is True, or when ``compress``
        is None and the name ends in ``.gz``.
      array: array of at least one dimension with a dtype listed in ``IDX_DTYPES``.
      compress: see ``path``.

    Raises:
      ValueError: unsupported dtype or a 0-d array.
    """
    a = np.asarray(array)
    codes = {t.newbyteorder("="): c for c, t in IDX_DTYPES.items()}
    if a.dtype.newbyteorder("=") not in codes:
        raise ValueError(f"write_idx: dtype {a.dtype} has no IDX code; expected one of {_codes()}")
    if a.ndim == 0 or a.ndim > 255:
        raise ValueError(f"write_idx: array of {a.ndim} dimensions; expected 1 to 255")
    code = codes[a.dtype.newbyteorder("=")]
    buf = io.BytesIO()
    buf.write(bytes([0, 0, code, a.ndim]))
    buf.write(struct.pack(f">{a.ndim}I", *a.shape))
    buf.write(np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes())
    data = buf.getvalue()
    path = Path(path)
    if compress or (compress is None and path.suffix == ".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
