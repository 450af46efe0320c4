"""What a run leaves behind besides checkpoints and pictures: the metrics CSV, the summary JSON.

* :func:`write_metrics_csv` — one row per (member, epoch) actually trained.
* :func:`write_summary` — JSON, NaN/inf as null.

A history is :mod:`fnn.experiment.history`'s. The pictures are their own modules
(:mod:`~fnn.experiment.curve_plots` and the others, sharing :mod:`~fnn.experiment.plot_style`).
Every file is written atomically (:func:`fnn.util.fileio.atomic_write_bytes`): a temporary file
in the same directory, flushed and fsynced, then ``os.replace``-d over the final name.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
from typing import Any, Optional, Sequence, Union

import numpy as np

from fnn.experiment.history import history_arrays, member_labels_of
from fnn.util.fileio import atomic_write_text

PathLike = Union[str, os.PathLike]


def _cell(value: Any) -> str:
    """A CSV cell: integers and bools as integers, floats in their shortest round-trip form."""
    v = np.asarray(value)
    if v.dtype.kind == "b":
        return str(int(v))
    if v.dtype.kind in "iu":
        return str(int(v))
    if v.dtype.kind == "f" or v.dtype.kind == "V":  # V: bfloat16 & co.
        return str(v[()])  # NumPy scalar str: shortest repr of its own precision; nan, inf
    return str(value)


def _natural(name: str):
    """Sort key that orders layer2 before layer10."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def write_metrics_csv(path: PathLike, history: dict, *,
                      member_labels: Optional[Sequence] = None) -> pathlib.Path:
    """Write the per-epoch metrics as CSV, one row per member per trained epoch.

    Columns: ``member`` (the member's label; 0 for a single run, the member index for a sweep
    without labels), ``epoch`` (1-based), then every metric of ``history`` sorted by name (numbers in names
    sorted numerically: layer2 before layer10),
    except ``trained``, which only drops the rows of skipped epochs.

    Args:
      path: the CSV file to write (atomically).
      history: metric name -> array (epochs,) or (members, epochs).
      member_labels: one label per member (strings or numbers), or None.
    Returns:
      ``path`` as a :class:`pathlib.Path`.
    Raises:
      ValueError: empty history, inconsistent shapes, wrong number of labels.
    """
    arrays, members, epochs, sweep = history_arrays(history)
    labels = member_labels_of(member_labels, members)
    trained = arrays.pop("trained", np.ones((members, epochs), bool)).astype(bool)
    names = sorted(arrays, key=_natural)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["member", "epoch", *names])
    for m in range(members):
        for e in range(epochs):
            if trained[m, e]:
                writer.writerow([labels[m], e + 1, *(_cell(arrays[n][m, e]) for n in names)])
    return atomic_write_text(path, buf.getvalue())


def _jsonable(value: Any) -> Any:
    """Plain JSON values: NumPy/JAX scalars and arrays unpacked, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (pathlib.PurePath,)):
        return str(value)
    if hasattr(value, "__array__") or isinstance(value, np.generic):
        arr = np.asarray(value)
        if arr.dtype.kind in "fV":
            arr = arr.astype(np.float64)
        return _jsonable(arr.tolist())
    raise TypeError(
        f"summary: a value of type {type(value).__name__} is not JSON-serializable: {value!r}")


def write_summary(path: PathLike, summary: dict) -> pathlib.Path:
    """Write ``summary`` as JSON (indent 2, atomically), NaN and ±inf as ``null``.

    NumPy / JAX scalars and arrays are converted to numbers and lists.

    Args:
      path: the JSON file.
      summary: a dict of JSON-like values.
    Returns:
      ``path`` as a :class:`pathlib.Path`.
    Raises:
      TypeError: a value that has no JSON form (named in the message), before writing.
    """
    text = json.dumps(_jsonable(summary), indent=2, allow_nan=False) + "\n"
    return atomic_write_text(path, text)
