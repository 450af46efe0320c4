"""What CSV and NPZ files share: the :class:`TabularData` record and the rules that turn a
file's target column(s) into class ids or regression targets.

The readers are :mod:`fnn.data.csv_file` (``read_csv``) and :mod:`fnn.data.npz_file`
(``read_npz``); :func:`peek_targets` reads just the targets of either.

Targets (both formats), with ``task="auto"``: text labels -> classification, classes sorted by
name (``classes[i]`` is the name of id i, kept on the dataset for reporting). NPZ: integer ``y`` ->
classification with the values as class ids, float ``y`` -> regression. CSV: a single column of
integers in ``[0, 100)`` -> classification, any other numbers -> regression. Class ids give
``num_classes = max + 1`` unless ``num_classes=`` is given. Regression targets are float32 ``(n, k)``.
Pass ``task="classification"`` or ``task="regression"`` to decide explicitly.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fnn.data.names import MAX_CLASSES
from fnn.data.validate import DataError, to_float32

TASK_CHOICES = ("auto", "classification", "regression")
AUTO_MAX_CLASSES = 100  # CSV, task="auto": integer targets in [0, 100) are class ids


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


def check_task(task: Any) -> str:
    """``task`` itself if it is one of :data:`TASK_CHOICES`, else a one-line DataError."""
    if task not in TASK_CHOICES:
        raise DataError(f"task={task!r}: expected one of {', '.join(TASK_CHOICES)}")
    return task


def _row_name(nm: str, r: int, lines: Sequence[int] | None) -> str:
    return f"line {lines[r]}" if lines is not None else f"index {r}"


def encode_targets(
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
