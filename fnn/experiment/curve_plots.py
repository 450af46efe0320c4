"""The loss and accuracy curves of a run or a sweep (``curves.png``)."""

from __future__ import annotations

import io
import os
from typing import Optional, Sequence, Union

import numpy as np

from fnn.experiment.history import ACCURACY_KEYS, LOSS_KEYS, history_arrays, member_labels_of
from fnn.experiment.plot_style import (MAX_LEGEND_MEMBERS, distinct_colors, import_matplotlib,
                                       log_locator)
from fnn.util.fileio import atomic_write_bytes

PathLike = Union[str, os.PathLike]


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
    labels = [str(x) for x in member_labels_of(member_labels, members)]
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
        colors = dict(zip(idx, distinct_colors(len(idx))))  # colors by position within the group
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
                ax.yaxis.set_major_locator(log_locator(ticker, finite.min(), finite.max()))
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
