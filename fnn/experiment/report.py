"""What a run leaves behind besides checkpoints: metrics CSV, summary JSON, curves, tables.

* :func:`write_metrics_csv` — one row per (member, epoch) actually trained.
* :func:`write_summary` — JSON, NaN/inf as null.
* :func:`plot_curves` — loss and accuracy vs epoch (PNG); matplotlib is optional and imported
  lazily, without touching pyplot's global backend.
* :func:`format_table` — a plain aligned text table for the terminal.

A history is what :class:`fnn.train.Trainer` returns: metric name -> array of shape (epochs,)
for a single run or (members, epochs) for a sweep, plus the boolean ``"trained"`` (False for
epochs skipped after an early stop or a NaN halt; their metrics are NaN).

Every file is written atomically (:func:`atomic_write_bytes`): a temporary file in the same
directory, flushed and fsynced, then ``os.replace``-d over the final name.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
import threading
from typing import Any, Optional, Sequence, Union

import numpy as np

from fnn.util import fileio
from fnn.util.table import format_table

PathLike = Union[str, os.PathLike]

LOSS_KEYS = ("train_loss", "val_loss")
ACCURACY_KEYS = ("train_accuracy", "val_accuracy")
MAX_LEGEND_MEMBERS = 40  # beyond this a sweep's legend names only the first and last member


# --------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------
def atomic_write_bytes(path: PathLike, data: bytes) -> pathlib.Path:
    """Write ``data`` to ``path`` atomically (readers see the old file or the new one).

    Args:
      path: destination; its directory is created if missing.
      data: the file's contents.
    Returns:
      ``path`` as a :class:`pathlib.Path`.
    """
    return fileio.atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: PathLike, text: str) -> pathlib.Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`.

    Args:
      path: destination.
      text: the file's contents.
    Returns:
      ``path`` as a :class:`pathlib.Path`.
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# History helpers
# --------------------------------------------------------------------------------------------
def history_arrays(history: dict) -> tuple[dict[str, np.ndarray], int, int, bool]:
    """NumPy arrays of shape (members, epochs); members, epochs, and whether it is a sweep."""
    if not history:
        raise ValueError("history: empty; expected metric name -> (epochs,) or (members, epochs)")
    arrays = {str(k): np.asarray(v) for k, v in history.items()}
    shapes = {k: a.shape for k, a in arrays.items()}
    first = next(iter(shapes.values()))
    if len(first) not in (1, 2) or any(s != first for s in shapes.values()):
        raise ValueError(
            f"history: metric shapes {shapes}; expected all (epochs,) or all (members, epochs)")
    sweep = len(first) == 2
    arrays = {k: (a if sweep else a[None]) for k, a in arrays.items()}
    members, epochs = next(iter(arrays.values())).shape
    return arrays, members, epochs, sweep


def _labels(member_labels: Optional[Sequence], members: int) -> list:
    if member_labels is None:
        return list(range(members))
    labels = list(member_labels)
    if len(labels) != members:
        raise ValueError(f"member_labels: {len(labels)} labels for {members} members")
    return labels


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


# --------------------------------------------------------------------------------------------
# CSV / JSON
# --------------------------------------------------------------------------------------------
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
    labels = _labels(member_labels, members)
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


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
def prefetch_matplotlib() -> None:
    """Import matplotlib in a daemon thread, so a later :func:`plot_curves` finds it loaded.

    The CLI calls this at the start of a run: the import (~0.6 s, a quarter of a warm
    quickstart run) then overlaps data loading, compilation and training instead of following
    them. A missing matplotlib is left for :func:`plot_curves` to report.
    """
    threading.Thread(target=import_matplotlib, name="fnn-import-matplotlib",
                     daemon=True).start()


def import_matplotlib():
    """(Figure, FigureCanvasAgg, matplotlib.ticker, Line2D), or None when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib import ticker
    except ImportError:
        return None
    return Figure, FigureCanvasAgg, ticker, Line2D


def plot_curves(path: PathLike, history: dict, *, member_labels: Optional[Sequence] = None,
                groups: Optional[Sequence[tuple[str, Sequence[int]]]] = None,
                title: Optional[str] = None) -> bool:
    """Plot loss and accuracy vs epoch to a PNG (atomically).

    Columns: loss (train solid, validation dashed; log-scale y when every value is > 0) and
    accuracy (when the history has it). A single run has one row; a sweep has one row per
    member group, each member a color (by its position in the group) with a legend beside the
    row. Skipped epochs (NaN, or
    ``trained`` False) leave gaps.

    Args:
      path: the PNG file.
      history: metric name -> (epochs,) or (members, epochs); uses ``train_loss``,
        ``val_loss``, ``train_accuracy``, ``val_accuracy`` where present.
      member_labels: one label per member for the legends (default "member i").
      groups: sweeps only: a list of (group title, [member indices]), one row each; default one
        group of all members.
      title: the figure title.
    Returns:
      True when the PNG was written; False when matplotlib is not installed (nothing written;
      the caller may print a note).
    Raises:
      ValueError: a history with neither loss nor accuracy metrics, bad groups or labels.
    """
    arrays, members, epochs, sweep = history_arrays(history)
    labels = [str(x) for x in _labels(member_labels, members)]
    if member_labels is None:
        labels = [f"member {i}" for i in range(members)]
    trained = arrays.get("trained", np.ones((members, epochs), bool)).astype(bool)
    panels = [(name, keys) for name, keys in (("loss", LOSS_KEYS), ("accuracy", ACCURACY_KEYS))
              if any(k in arrays for k in keys)]
    if not panels:
        raise ValueError(f"history: no loss or accuracy metrics to plot (has {sorted(arrays)})")
    if groups is None:
        groups = [("" if not sweep else "all members", list(range(members)))]
    groups = [(str(t), [int(i) for i in idx]) for t, idx in groups]
    for t, idx in groups:
        bad = [i for i in idx if not 0 <= i < members]
        if bad or not idx:
            raise ValueError(f"groups: group {t!r} has member indices {idx}; expected a"
                             f" non-empty list from 0 to {members - 1}")

    mpl = import_matplotlib()
    if mpl is None:
        return False
    Figure, FigureCanvasAgg, ticker, Line2D = mpl
    MaxNLocator = ticker.MaxNLocator
    FuncFormatter, NullFormatter = ticker.FuncFormatter, ticker.NullFormatter

    series = {k: np.where(trained, arrays[k].astype(np.float64), np.nan)
              for keys in (LOSS_KEYS, ACCURACY_KEYS) for k in keys if k in arrays}
    x = np.arange(1, epochs + 1)
    ncols, nrows = len(panels), len(groups)
    legend_width = 2.2 if sweep else 0.0
    fig = Figure(figsize=(5.0 * ncols + legend_width, 3.6 * nrows + (0.5 if title else 0.2)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    styles = {"train": "-", "val": "--"}
    for r, (gtitle, idx) in enumerate(groups):
        colors = dict(zip(idx, _colors(len(idx))))  # colors by position within the group
        for c, (panel, keys) in enumerate(panels):
            ax = axes[r][c]
            for key in keys:
                if key not in series:
                    continue
                split = key.split("_", 1)[0]
                for i in idx:
                    y = series[key][i]
                    marker = "o" if epochs <= 1 or np.sum(np.isfinite(y)) == 1 else None
                    ax.plot(x, y, styles[split], color=colors[i] if sweep else
                            ("C0" if split == "train" else "C1"), marker=marker, markersize=3,
                            linewidth=1.4, label=(f"{split} {panel}" if not sweep else None))
            values = np.concatenate([series[k][idx].ravel() for k in keys if k in series])
            finite = values[np.isfinite(values)]
            if panel == "loss" and finite.size and np.all(finite > 0):
                ax.set_yscale("log")
                ax.yaxis.set_major_locator(_log_locator(ticker, finite.min(), finite.max()))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("epoch")
            ax.set_ylabel(panel + (" (log scale)" if ax.get_yscale() == "log" else ""))
            if epochs < 5:
                ax.set_xlim(0.5, epochs + 0.5)
                ax.xaxis.set_major_locator(ticker.FixedLocator(list(range(1, epochs + 1))))
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3, which="major")
            heading = panel.capitalize()
            if gtitle:
                heading = f"{gtitle}: {heading}"
            ax.set_title(heading, fontsize=10)
            if not sweep:
                ax.legend(fontsize=8, loc="best")
        if sweep:  # member colors + line styles, outside the last panel of the row
            handles = [Line2D([], [], color=colors[i], linewidth=2, label=labels[i]) for i in idx]
            if len(handles) > MAX_LEGEND_MEMBERS:  # too many to read: name the range only
                handles = [Line2D([], [], color=colors[idx[0]], linewidth=2, label=labels[idx[0]]),
                           Line2D([], [], color="none", label=f"... {len(idx) - 2} more ..."),
                           Line2D([], [], color=colors[idx[-1]], linewidth=2,
                                  label=labels[idx[-1]])]
            handles += [Line2D([], [], color="black", linestyle=styles[s], label=s_label)
                        for s, s_label in (("train", "train"), ("val", "validation"))
                        if any(k.startswith(s) and k in series for k in LOSS_KEYS + ACCURACY_KEYS)]
            axes[r][-1].legend(handles=handles, fontsize=8, loc="upper left",
                               bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                               ncol=1 if len(handles) <= 18 else 2)
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return True


def wrap_title(text: str, inches: float, fontsize: float) -> str:
    """``text`` broken at spaces into lines that fit ``inches`` of width at ``fontsize``
    points (about 0.6 em a character), so a panel's title never runs into its neighbour's."""
    import textwrap

    width = max(12, int(inches * 72.0 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False)
                     for line in str(text).split("\n"))


def _log_locator(ticker, lo: float, hi: float):
    """A fixed locator of :func:`log_ticks` over [lo, hi]."""
    return ticker.FixedLocator(log_ticks(lo, hi))


def log_ticks(lo: float, hi: float, *, max_ticks: int = 7) -> list[float]:
    """Readable major ticks for a log axis over [lo, hi] (0 < lo <= hi).

    Candidates are m·10^k, taken by preference (1, then 2 and 5, then 3, then 4, 6, 7, 8, 9);
    one is kept only if it is at least 1/max_ticks of the axis (in log10) from every tick kept
    already, so no two labels collide (0.09 next to 0.1, say). When fewer than three survive (a
    range of well under a decade), evenly spaced round values are used, thinned the same way.

    Returns:
      the sorted tick values.
    """
    lo, hi = float(lo), float(hi)
    if not (0 < lo <= hi) or not np.isfinite(hi):
        return []
    if hi / lo < 1.0 + 1e-9:
        return [lo]
    span = float(np.log10(hi) - np.log10(lo))
    gap = span / max_ticks

    def thin(candidates):
        kept = []
        for v in candidates:
            if lo <= v <= hi and all(abs(np.log10(v) - np.log10(k)) >= gap for k in kept):
                kept.append(v)
        return sorted(kept)

    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    order = (1, 2, 5, 3, 4, 6, 7, 8, 9)
    ticks = thin([float(f"{m}e{d}") for m in order for d in decades])
    if len(ticks) >= 3:
        return ticks
    from matplotlib import ticker

    even = [float(f"{v:.6g}") for v in ticker.MaxNLocator(nbins=5).tick_values(lo, hi)]
    return thin(sorted(set(ticks) | set(even), key=lambda v: (v not in ticks, v)))


def _colors(n: int) -> list:
    """n distinguishable colors: tab10, then tab20, then a sampled colormap."""
    from matplotlib import colormaps

    if n <= 10:
        return [f"C{i}" for i in range(n)]
    if n <= 20:
        cmap = colormaps["tab20"]
        return [cmap(i) for i in range(n)]
    cmap = colormaps["viridis"]
    return [cmap(i / max(1, n - 1)) for i in range(n)]


# --------------------------------------------------------------------------------------------
# Terminal tables
# --------------------------------------------------------------------------------------------
