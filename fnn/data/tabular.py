"""User data from CSV and NPZ files, read on the host into NumPy arrays.

CSV (``load("csv", path=..., target=...)``): the first row is a header of unique column names; the
target column is chosen by name (default: the last column; a list of names gives a multi-output
regression target); every other column is a feature and must be numeric. Blank lines are skipped.

NPZ (``load("npz", path=...)``): arrays ``x`` ``(n, features)`` (or uint8 images ``(n, H, W)``) and
``y`` ``(n,)``/``(n, k)``; optionally ``x_val, y_val, x_test, y_test`` (explicit splits) and
``classes`` (label names). Loaded with ``allow_pickle=False``.

Targets (both formats), with ``task="auto"``: text labels -> classification, classes sorted by
name (``classes[i]`` is the name of id i, kept on the dataset for reporting). NPZ: integer ``y`` ->
classification with the values as class ids, float ``y`` -> regression. CSV: a single column of
integers in ``[0, 100)`` -> classification, any other numbers -> regression. Class ids give
``num_classes = max + 1`` unless ``num_classes=`` is given. Regression targets are float32 ``(n, k)``.
Pass ``task="classification"`` or ``task="regression"`` to decide explicitly.

One concept needs the length: reading a user's CSV or NPZ file with every check that file needs.
"""
from __future__ import annotations

import csv
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fnn.data.validate import DataError, to_float32

TASK_CHOICES = ("auto", "classification", "regression")
AUTO_MAX_CLASSES = 100  # CSV, task="auto": integer targets in [0, 100) are class ids
MAX_CLASSES = 100_000  # more classes is a mistake, not a data set (10**9 labels: a 32 GB one-hot)


@dataclass(frozen=True, eq=False)
class TabularData:
    """Arrays read from a user file, before splitting.

    Attributes:
      x, y: training features ``(n, features)`` and targets (``(n,)`` int32 or ``(n, k)`` float32).
      task: "classification" or "regression".
      num_classes: k, or None for regression.
      classes: label names or None.
      x_val, y_val, x_test, y_test: explicit splits from the file, or None.
      image_shape: ``(H, W)`` when x holds flattened uint8 images, else None.
    """

    x: np.ndarray
    y: np.ndarray
    task: str
    num_classes: int | None = None
    classes: tuple[str, ...] | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    image_shape: tuple[int, int] | None = None


def _check_task(task: Any) -> str:
    if task not in TASK_CHOICES:
        raise DataError(f"task={task!r}: expected one of {', '.join(TASK_CHOICES)}")
    return task


def _row_name(nm: str, r: int, lines: Sequence[int] | None) -> str:
    return f"line {lines[r]}" if lines is not None else f"index {r}"


def _encode_targets(
    parts: list[np.ndarray], *, task: str, num_classes: int | None, where: str, names: Sequence[str],
    parsed_text: bool = False, lines: Sequence[Sequence[int]] | None = None,
) -> tuple[list[np.ndarray], str, int | None, tuple[str, ...] | None]:
    """Turn raw target arrays (one per split) into labels or regression targets.

    Args:
      parts: per-split raw targets, each ``(n_i,)`` or ``(n_i, k)``; numeric or string.
      task: "auto", "classification" or "regression".
      num_classes: declared number of classes or None.
      where: file description for messages; names: split names for messages.
      parsed_text: the numbers were parsed from text (CSV), so their dtype says nothing.
      lines: per split, the file line of each row (CSV), so that messages name the line.

    Returns:
      ``(encoded parts, task, num_classes, classes)``.

    Raises:
      DataError: empty targets, an unsupported dtype (complex, datetime, bytes objects), NaN/inf,
        non-integer or negative class ids, more than ``MAX_CLASSES`` classes, or sparse integer
        ids (fewer than half of ``0..max`` used, with num_classes unset: say so rather than
        train a mostly empty one-hot; the message gives the remedies).
    """
    for p, nm in zip(parts, names):
        if p.dtype.kind not in "biufUS":
            raise DataError(f"{where}: {nm} has dtype {p.dtype}; expected integer class ids, "
                            "numbers or text labels")
        if p.ndim == 0 or p.shape[0] == 0:
            raise DataError(f"{where}: {nm} has shape {p.shape}; expected at least one example")
    is_str = [p.dtype.kind in "US" for p in parts]
    if any(is_str):
        if task == "regression":
            i = is_str.index(True)
            raise DataError(f"{where}: {names[i]} holds text labels; expected numbers for task='regression'")
        for p, nm in zip(parts, names):
            if p.ndim == 2 and p.shape[1] != 1:
                raise DataError(f"{where}: {nm} has shape {p.shape}; expected one label per example")
        flat = [p.reshape(-1).astype(str) for p in parts]
        classes = tuple(sorted(set(np.concatenate(flat).tolist())))
        if len(classes) > MAX_CLASSES:
            raise DataError(f"{where}: {len(classes)} distinct text labels; expected at most "
                            f"{MAX_CLASSES} classes")
        if num_classes is not None and num_classes != len(classes):
            raise DataError(
                f"num_classes={num_classes}: {where} has {len(classes)} distinct text labels; "
                f"expected num_classes={len(classes)} (or unset)"
            )
        index = {c: i for i, c in enumerate(classes)}
        enc = [np.array([index[v] for v in f.tolist()], dtype=np.int32) for f in flat]
        return enc, "classification", (num_classes or len(classes)), classes
    nums = [p.astype(np.float64) for p in parts]
    for s_i, (p, nm) in enumerate(zip(nums, names)):
        bad = ~np.isfinite(p)
        if bad.any():
            r = int(np.argwhere(bad)[0][0])
            at = f"line {lines[s_i][r]}" if lines else f"row {r}"
            raise DataError(f"{where}: {nm} has {int(bad.sum())} non-finite target value(s) (NaN/inf), first at {at}")
    one_col = all(p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1) for p in nums)
    if task == "auto":
        if parsed_text:
            # CSV numbers carry no dtype: small non-negative integers are taken as class ids.
            looks_like_ids = one_col and all(
                bool(np.all(p == np.round(p))) and p.min() >= 0 and p.max() < AUTO_MAX_CLASSES for p in nums
            )
        else:
            looks_like_ids = one_col and all(p.dtype.kind in "biu" for p in parts)
        inferred = True
        task = "classification" if looks_like_ids else "regression"
    else:
        inferred = False
    if task == "classification":
        if not one_col:
            raise DataError(f"{where}: targets of shape {nums[0].shape}; expected one class label per example")
        for s_i, (p, raw, nm) in enumerate(zip(nums, parts, names)):
            flat, exact = p.reshape(-1), raw.reshape(-1)
            at = lambda i: _row_name(nm, i, lines[s_i] if lines else None)  # noqa: E731
            shown = lambda i: int(exact[i]) if exact.dtype.kind in "biu" else f"{float(flat[i]):g}"  # noqa: E731
            frac = flat != np.round(flat)
            if frac.any():
                i = int(np.argmax(frac))
                raise DataError(f"{where}: {nm} label {float(flat[i]):g} at {at(i)} is not an integer class id")
            neg = flat < 0
            if neg.any():
                i = int(np.argmax(neg))
                raise DataError(f"{where}: {nm} label {shown(i)} at {at(i)} is negative; expected class ids >= 0")
            big = flat >= MAX_CLASSES
            if big.any():
                i = int(np.argmax(big))
                raise DataError(f"{where}: {nm} label {shown(i)} at {at(i)} is too large; expected class "
                                f"ids below {MAX_CLASSES} (at most {MAX_CLASSES} classes)")
        k = int(max(int(p.max()) for p in nums)) + 1
        if num_classes is not None and num_classes < k:
            raise DataError(f"num_classes={num_classes}: {where} has label {k - 1}; expected num_classes >= {k}")
        if num_classes is None and k > 2:
            used = np.unique(np.concatenate([p.reshape(-1) for p in nums])).astype(np.int64)
            if 2 * len(used) < k:
                shown_ids = ", ".join(str(v) for v in used[:5]) + (", ..." if len(used) > 5 else "")
                how = "read as class ids" if inferred else "class ids"
                raise DataError(
                    f"{where}: integer labels {{{shown_ids}}} ({how}) use {len(used)} of the {k} ids "
                    f"0..{k - 1}; expected ids 0..{len(used) - 1}: remap them, write them as text "
                    f"labels (numbered in sorted order), or set num_classes={k} to keep them"
                )
        return [p.reshape(-1).astype(np.int32) for p in nums], task, (num_classes or k), None
    if num_classes is not None:
        raise DataError(f"num_classes={num_classes}: not used for regression; expected it unset")
    enc = [to_float32(p[:, None] if p.ndim == 1 else p, f"{where}: {nm} target")
           for p, nm in zip(nums, names)]
    return enc, "regression", None, None


# --------------------------------------------------------------------------------------------- CSV

def _csv_error(where: str, line: int, e: Exception) -> DataError:
    text = str(e)
    if "field larger than field limit" in text:
        return DataError(f"{where}: line {line}: not readable as CSV (a field longer than "
                         f"{csv.field_size_limit()} characters, the csv module's limit)")
    if "NUL" in text:
        return DataError(f"{where}: line {line}: not readable as CSV (a NUL character); expected a text file")
    if isinstance(e, UnicodeDecodeError):
        return DataError(f"{where}: not readable as CSV (not UTF-8 text: byte 0x{e.object[e.start]:02x} "
                         f"at offset {e.start}); expected a text file")
    return DataError(f"{where}: line {line}: not readable as CSV ({text.splitlines()[0] if text else e!r})")


def regular_file(path: Path, what: str) -> None:
    """A one-line DataError unless ``path`` is a regular file: /dev/zero, a FIFO or a socket
    would be read without end (a MemoryError), a directory not at all."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"path={str(path)!r}: no such {what} file") from None
    except OSError as e:
        raise DataError(f"path={str(path)!r}: cannot open the {what} file ({e.strerror or e})"
                        ) from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise DataError(f"path={str(path)!r}: {kind}, not a regular file; expected a {what} file")


def _csv_rows(path: Path, where: str, delimiter: str) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the non-blank data rows and each row's file line (1-based)."""
    regular_file(path, "csv")
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise DataError(f"path={str(path)!r}: cannot open the csv file ({e.strerror or e})") from None
    with f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise DataError(f"{where}: empty; expected a header row of column names")
            header = [h.strip() for h in header]
            if "" in header:
                raise DataError(f"{where}: header column {header.index('') + 1} has no name")
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise DataError(f"{where}: duplicate column name(s) {', '.join(map(repr, dup))} in the header")
            rows, lines = [], []
            for row in reader:
                if not row or all(c.strip() == "" for c in row):
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{where}: line {reader.line_num} has {len(row)} field(s), expected {len(header)} (as in the header)"
                    )
                rows.append(row)
                lines.append(reader.line_num)
        except (csv.Error, UnicodeDecodeError) as e:
            raise _csv_error(where, max(reader.line_num, 1), e) from None
    if not rows:
        raise DataError(f"{where}: no data rows after the header; expected at least one example")
    return header, rows, lines


def read_csv(
    path: str | os.PathLike,
    *,
    target: str | Sequence[str] | None = None,
    delimiter: str = ",",
    task: str = "auto",
    num_classes: int | None = None,
) -> TabularData:
    """Read a CSV file with a header into features and targets.

    Args:
      path: the file (UTF-8, optional BOM).
      target: target column name, a list of names (multi-output regression) or None (last column).
      delimiter: field separator.
      task: "auto", "classification" or "regression" (see the module docstring).
      num_classes: declared number of classes (classification with integer labels).

    Returns:
      :class:`TabularData` with ``x`` float32 ``(n, columns - targets)``.

    Raises:
      DataError: missing/empty file, bad header, unknown target, ragged rows, a non-numeric feature
        (the message names the first offending column, line and value), bad labels.
    """
    path = Path(path)
    task = _check_task(task)
    where = f"csv file {str(path)!r}"
    header, rows, lines = _csv_rows(path, where, delimiter)
    if target is None:
        targets = [header[-1]]
    elif isinstance(target, str):
        targets = [target]
    else:
        targets = list(target)
    for t in targets:
        if t not in header:
            raise DataError(f"target={t!r}: no such column in {where}; columns are {', '.join(header)}")
    if len(targets) > 1 and task == "classification":
        raise DataError(f"target={targets!r}: several target columns need task='regression'")
    t_idx = [header.index(t) for t in targets]
    f_idx = [j for j in range(len(header)) if j not in t_idx]
    if not f_idx:
        raise DataError(f"{where}: only the target column(s); expected at least one feature column")
    cells = np.array(rows, dtype=object)
    try:
        x = np.array(cells[:, f_idx].astype(str), dtype=np.float64)
    except ValueError:
        x = None
    if x is None:
        for r, row in enumerate(rows):
            for j in f_idx:
                try:
                    float(row[j])
                except ValueError:
                    raise DataError(
                        f"{where}: column {header[j]!r}, line {lines[r]}: value {row[j]!r} is not numeric; "
                        "expected numeric features (only the target may hold text)"
                    ) from None
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"{where}: column {header[f_idx[c]]!r}, line {lines[r]}: value {rows[r][f_idx[c]]!r} is not finite "
            f"({int(bad.sum())} NaN/inf feature value(s)); expected finite numbers"
        )
    raw_y = cells[:, t_idx]
    if len(targets) == 1:
        col = raw_y[:, 0].astype(str)
        stripped = np.char.strip(col)
        empty = stripped == ""
        if empty.any():
            r = int(np.argmax(empty))
            raise DataError(f"{where}: column {targets[0]!r}, line {lines[r]}: missing target value")
        try:
            y_raw = np.array(stripped, dtype=np.float64)
        except ValueError:
            if task == "regression":
                for r, v in enumerate(stripped.tolist()):
                    try:
                        float(v)
                    except ValueError:
                        raise DataError(
                            f"{where}: column {targets[0]!r}, line {lines[r]}: value {v!r} is not numeric; "
                            "expected numbers for task='regression'"
                        ) from None
            y_raw = stripped
    else:
        try:
            y_raw = np.array(raw_y.astype(str), dtype=np.float64)
        except ValueError:
            for r, row in enumerate(rows):
                for j in t_idx:
                    try:
                        float(row[j])
                    except ValueError:
                        raise DataError(
                            f"{where}: column {header[j]!r}, line {lines[r]}: value {row[j]!r} is not numeric; "
                            "expected numbers for a multi-column regression target"
                        ) from None
            raise
    (y,), task, k, classes = _encode_targets([y_raw], task=task, num_classes=num_classes, where=where,
                                             names=[f"column {targets[0]!r}" if len(targets) == 1 else "target"],
                                             parsed_text=True, lines=[lines])
    return TabularData(x=to_float32(x, f"{where}: features"), y=y, task=task, num_classes=k,
                       classes=classes)


# --------------------------------------------------------------------------------------------- NPZ

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
    task = _check_task(task)
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
    enc, task, k, classes = _encode_targets(ys, task=task, num_classes=num_classes, where=where, names=names)
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


# --------------------------------------------------------------------------------------------- peek

def peek_targets(
    kind: str, path: str | os.PathLike, *, target: str | None = None, num_classes: int | None = None,
) -> tuple[str, int | None, int]:
    """The task, class count and training rows of a CSV/NPZ file, read from its targets only.

    For the config layer's defaults (an empty ``loss.name`` means mse for a regression file)
    and its step-count check; it reads the same targets :func:`read_csv`/:func:`read_npz` read
    and applies the same ``task="auto"`` rules, but no features.

    Returns:
      ``(task, num_classes or None, rows of the training split)``.

    Raises:
      DataError: the same problems the full readers report about the targets.
    """
    path = Path(path)
    if kind == "npz":
        where = f"npz file {str(path)!r}"
        arrays = load_npz_arrays(path, where, only=("y", "y_val", "y_test"))
        ys = [arrays[k] for k in ("y", "y_val", "y_test") if k in arrays]
        if "y" not in arrays:
            raise DataError(f"{where}: missing array 'y'")
        names = [k for k in ("y", "y_val", "y_test") if k in arrays]
        _, task, k, _ = _encode_targets(ys, task="auto", num_classes=num_classes, where=where, names=names)
        return task, k, int(arrays["y"].shape[0]) if arrays["y"].ndim else 0
    where = f"csv file {str(path)!r}"
    header, rows, lines = _csv_rows(path, where, ",")
    t = target if target is not None else header[-1]
    if t not in header:
        raise DataError(f"target={t!r}: no such column in {where}")
    j = header.index(t)
    col = np.char.strip(np.array([r[j] for r in rows], dtype=str))
    try:
        y_raw = np.array(col, dtype=np.float64)
    except ValueError:
        y_raw = col
    (_,), task, k, _ = _encode_targets([y_raw], task="auto", num_classes=num_classes, where=where,
                                       names=["target"], parsed_text=True, lines=[lines])
    return task, k, len(rows)
