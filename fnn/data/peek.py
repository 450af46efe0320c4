"""The task, class count and size of a CSV or NPZ file, read from its targets alone."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fnn.data.csv_file import csv_rows
from fnn.data.npz_file import load_npz_arrays
from fnn.data.tabular import encode_targets
from fnn.data.validate import DataError


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
        _, task, k, _ = encode_targets(ys, task="auto", num_classes=num_classes, where=where, names=names)
        return task, k, int(arrays["y"].shape[0]) if arrays["y"].ndim else 0
    where = f"csv file {str(path)!r}"
    header, rows, lines = csv_rows(path, where, ",")
    t = target if target is not None else header[-1]
    if t not in header:
        raise DataError(f"target={t!r}: no such column in {where}")
    j = header.index(t)
    col = np.char.strip(np.array([r[j] for r in rows], dtype=str))
    try:
        y_raw = np.array(col, dtype=np.float64)
    except ValueError:
        y_raw = col
    (_,), task, k, _ = encode_targets([y_raw], task="auto", num_classes=num_classes, where=where,
                                       names=["target"], parsed_text=True, lines=[lines])
    return task, k, len(rows)
