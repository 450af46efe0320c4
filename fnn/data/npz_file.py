"""Reading a user's NPZ file (``load("npz", path=...)``) with every check it needs.

Arrays ``x`` ``(n, features)`` (or uint8 images ``(n, H, W)``) and ``y`` ``(n,)``/``(n, k)``;
optionally ``x_val, y_val, x_test, y_test`` (explicit splits) and ``classes`` (label names).
Loaded with ``allow_pickle=False``; every array's declared size is checked against the archive
before it is read. Targets follow :mod:`fnn.data.tabular`'s rules.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from fnn.data.tabular import TabularData, check_task, encode_targets, regular_file
from fnn.data.validate import DataError, to_float32


NPZ_KEYS = ("x", "y", "x_val", "y_val", "x_test", "y_test", "classes")


MAX_DEFLATE_RATIO = 1100  # zlib's deflate cannot expand one byte into more than ~1032


def _check_npz_member(zf: zipfile.ZipFile, key: str, where: str) -> None:
    """Compare an array's declared size (its .npy header) with the bytes the archive holds."""
    info = zf.getinfo(f"{key}.npy")
    with zf.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(fp, max_header_size=10000)
        header_len = fp.tell()
    declared = dtype.itemsize
    for d in shape:
        declared *= int(d)
    held = info.file_size - header_len
    if declared > held:
        raise DataError(f"{where}: array {key!r} declares shape {tuple(shape)} of {dtype} ({declared} bytes) "
                        f"but holds {max(held, 0)} bytes; the file is truncated or corrupt")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 4096:
        raise DataError(f"{where}: array {key!r} claims {info.file_size} bytes from {info.compress_size} "
                        "compressed bytes, more than deflate can produce; the file is corrupt")


def load_npz_arrays(path: str | os.PathLike, where: str, *, check_names: bool = False,
                    only: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive, each declared size checked against the file first.

    A crafted header (say 2e11 elements in a 1 KB file) is refused before anything is allocated.

    Args:
      path: the archive.  where: file description for messages.
      check_names: refuse arrays outside ``NPZ_KEYS`` and require x and y (a dataset file).
      only: read just these arrays (those present).
    Raises:
      DataError: not an archive, a single ``.npy``, unknown/missing arrays, object arrays,
        declared sizes the file does not hold, unreadable data.
    """
    path = Path(path)
    regular_file(path, "npz")
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"path={str(path)!r}: no such npz file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        # numpy reads a non-zip file as a pickle and then refuses it: say what it really is.
        why = "not a zip archive" if "pickled" in str(e) else str(e).splitlines()[0] if str(e) else repr(e)
        raise DataError(f"{where}: not a readable .npz archive ({why})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{where}: holds a single array; expected an .npz archive with arrays x and y")
    with npz:
        keys = list(npz.files)
        if check_names:
            unknown = [k for k in keys if k not in NPZ_KEYS]
            if unknown:
                raise DataError(
                    f"{where}: unknown array(s) {', '.join(map(repr, unknown))}; expected names among {', '.join(NPZ_KEYS)}"
                )
            for req in ("x", "y"):
                if req not in keys:
                    raise DataError(f"{where}: missing array {req!r} (found: {', '.join(keys) or 'none'})")
            for a, b in (("x_val", "y_val"), ("x_test", "y_test")):
                if (a in keys) != (b in keys):
                    raise DataError(f"{where}: has {a if a in keys else b} without {b if a in keys else a}")
        wanted = [k for k in keys if only is None or k in only]
        try:
            with zipfile.ZipFile(path) as zf:
                for k in wanted:
                    _check_npz_member(zf, k, where)
            return {k: npz[k] for k in wanted}
        except DataError:
            raise
        except (ValueError, OSError, KeyError, zipfile.BadZipFile, EOFError, RuntimeError,
                NotImplementedError, MemoryError, zlib.error) as e:
            text = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"{where}: cannot read its arrays ({text})") from None


def read_npz(
    path: str | os.PathLike,
    *,
    task: str = "auto",
    num_classes: int | None = None,
    image_shape: Sequence[int] | None = None,
) -> TabularData:
    """Read arrays ``x``, ``y`` (and optional splits and class names) from an ``.npz`` file.

    Args:
      path: the file (written by ``np.savez``/``np.savez_compressed``).
      task: "auto" (integer or string ``y`` -> classification, float -> regression),
        "classification" or "regression".
      num_classes: declared number of classes (classification with integer labels).
      image_shape: ``(H, W)`` when a 2-D uint8 ``x`` holds flattened images (kept uint8).

    Returns:
      :class:`TabularData`; ``x`` float32 ``(n, features)``, or uint8 ``(n, H*W)`` for images
      (3-D uint8 ``x`` is taken as images ``(n, H, W)``).

    Raises:
      DataError: unreadable file, missing/unknown arrays, bad shapes, bad labels.
    """
    path = Path(path)
    task = check_task(task)
    where = f"npz file {str(path)!r}"
    arrays = load_npz_arrays(path, where, check_names=True)
    splits = [s for s in ("", "_val", "_test") if f"x{s}" in arrays]
    names = [f"y{s}" for s in splits]
    xs, ys = [], []
    shape = tuple(int(s) for s in image_shape) if image_shape is not None else None
    for s in splits:
        x, y = arrays[f"x{s}"], arrays[f"y{s}"]
        if x.dtype.kind not in "biuf":
            raise DataError(f"{where}: x{s} has dtype {x.dtype}; expected numeric features")
        if x.ndim == 3 and x.dtype == np.uint8:
            if shape is not None and tuple(x.shape[1:]) != shape:
                raise DataError(f"{where}: x{s} images are {x.shape[1:]}, expected image_shape={shape}")
            shape = tuple(int(v) for v in x.shape[1:])
            x = x.reshape(x.shape[0], -1)
        elif x.ndim != 2:
            raise DataError(f"{where}: x{s} has shape {x.shape}; expected (n, features) or uint8 images (n, H, W)")
        if shape is not None and x.dtype == np.uint8:
            if x.shape[1] != shape[0] * shape[1]:
                raise DataError(f"{where}: x{s} has {x.shape[1]} features; image_shape={shape} needs {shape[0] * shape[1]}")
        else:
            x = to_float32(x, f"{where}: x{s}")
        if y.ndim not in (1, 2):
            raise DataError(f"{where}: y{s} has shape {y.shape}; expected (n,) or (n, outputs)")
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{where}: x{s} has {x.shape[0]} rows but y{s} has {y.shape[0]}; expected equal")
        xs.append(x)
        ys.append(y)
    if shape is not None and xs[0].dtype != np.uint8:
        raise DataError(f"image_shape={shape}: x in {where} has dtype {xs[0].dtype}; expected uint8 images")
    enc, task, k, classes = encode_targets(ys, task=task, num_classes=num_classes, where=where, names=names)
    if "classes" in arrays:
        names_arr = arrays["classes"]
        if task != "classification" or names_arr.ndim != 1:
            raise DataError(f"{where}: array 'classes' needs classification targets and shape (k,); got {names_arr.shape}")
        if classes is not None:
            raise DataError(f"{where}: has both text labels and a 'classes' array; expected one of them")
        classes = tuple(str(c) for c in names_arr.tolist())
        if len(classes) < k:
            raise DataError(f"{where}: 'classes' names {len(classes)} classes but the labels need {k}")
        k = len(classes) if num_classes is None else k
    parts = dict(zip(splits, zip(xs, enc)))
    get = lambda s, i: parts[s][i] if s in parts else None  # noqa: E731
    return TabularData(
        x=xs[0], y=enc[0], task=task, num_classes=k, classes=classes,
        x_val=get("_val", 0), y_val=get("_val", 1), x_test=get("_test", 0), y_test=get("_test", 1),
        image_shape=shape,
    )
