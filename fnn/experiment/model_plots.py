"""Pictures of what a trained model learned: confusion matrices, decision regions, fitted curves.

Pure drawing: every function takes arrays already computed (by
:mod:`fnn.experiment.model_report`), writes one PNG atomically and returns True, or returns
False when matplotlib is not installed (imported lazily, pyplot's global state untouched).
Each figure has a title, axis labels and a legend (or a labelled colour bar), one panel per
entry of ``panels`` (one per sweep group).
"""

from __future__ import annotations

import io
from typing import NamedTuple, Optional, Sequence

import numpy as np

from fnn.experiment.plot_style import wrap_title
from fnn.util.fileio import atomic_write_bytes

MAX_POINTS = 3000  # training points drawn per panel (a random subset beyond this)


class ConfusionPanel(NamedTuple):
    """title; counts (k, k) int, rows = true class, columns = predicted; split name."""

    title: str
    counts: np.ndarray
    split: str


class RegionPanel(NamedTuple):
    """title; grid axes gx (W,), gy (H,); probs (H, W, k) class probabilities on the grid;
    the training points x (n, 2) and labels y (n,)."""

    title: str
    gx: np.ndarray
    gy: np.ndarray
    probs: np.ndarray
    x: np.ndarray
    y: np.ndarray


class CurvePanel(NamedTuple):
    """title; data x (n,), y (n,); fitted curve xs (m,), ys (m,)."""

    title: str
    x: np.ndarray
    y: np.ndarray
    xs: np.ndarray
    ys: np.ndarray


def _mpl():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure, FigureCanvasAgg


def _figure(ncols: int, width: float, height: float, title: Optional[str]):
    Figure, FigureCanvasAgg = _mpl()
    fig = Figure(figsize=(width * ncols, height + (0.4 if title else 0.0)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    if title:
        fig.suptitle(title, fontsize=12)
    return fig, axes


def _save(fig, path) -> bool:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return True


def _subsample(x, y, n=MAX_POINTS, seed=0):
    if x.shape[0] <= n:
        return x, y
    idx = np.random.default_rng(seed).choice(x.shape[0], n, replace=False)
    return x[idx], y[idx]


def plot_confusion(path, panels: Sequence[ConfusionPanel], class_names: Sequence[str], *,
                   title: Optional[str] = None) -> bool:
    """Confusion matrices: counts in each cell, per-class accuracy beside each true class."""
    if _mpl() is None:
        return False
    k = len(class_names)
    side = 3.2 + 0.42 * k
    fig, axes = _figure(len(panels), side + 1.6, side, title)
    for ax, p in zip(axes, panels):
        counts = np.asarray(p.counts, np.int64)
        im = ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(1, counts.max()))
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                        fontsize=8 if k > 6 else 10,
                        color="white" if counts[i, j] > 0.6 * counts.max() else "black")
        rows = counts.sum(axis=1)
        recall = np.divide(np.diag(counts), rows, out=np.zeros(k), where=rows > 0)
        ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), [f"{n} ({r:.0%})" for n, r in zip(class_names, recall)],
                     fontsize=8)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class (per-class accuracy)")
        acc = np.trace(counts) / max(1, counts.sum())
        what = f"{p.split} split, {counts.sum()} examples, accuracy {acc:.1%}"
        ax.set_title(wrap_title(f"{p.title}\n{what}" if p.title else what, side + 1.2, 9),
                     fontsize=9)
        bar = fig.colorbar(im, ax=ax, shrink=0.8)
        bar.set_label("examples (count)")
    return _save(fig, path)


def plot_decision_regions(path, panels: Sequence[RegionPanel], class_names: Sequence[str], *,
                          title: Optional[str] = None, feature_names=("x1", "x2")) -> bool:
    """Predicted class regions, probability contours, and the training points on top."""
    mpl = _mpl()
    if mpl is None:
        return False
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    k = len(class_names)
    colors = [f"C{i % 10}" for i in range(k)]
    fig, axes = _figure(len(panels), 5.6, 4.8, title)
    for ax, p in zip(axes, panels):
        probs = np.asarray(p.probs, np.float32)  # a bfloat16 network's too (matplotlib: floats)
        cls = np.argmax(probs, axis=-1)
        ax.contourf(p.gx, p.gy, cls, levels=np.arange(k + 1) - 0.5,
                    cmap=ListedColormap(colors), alpha=0.25)
        if k == 2:
            levels, values = [0.1, 0.25, 0.5, 0.75, 0.9], probs[..., 1]
            what = f"P({class_names[1]})"
        else:
            levels, values = [0.5, 0.7, 0.9], probs.max(axis=-1)
            what = "max class probability"
        cs = ax.contour(p.gx, p.gy, values, levels=levels, colors="0.25",
                        linewidths=[2.0 if v == 0.5 and k == 2 else 0.8 for v in levels])
        ax.clabel(cs, fontsize=7, fmt="%.2g")
        x, y = _subsample(np.asarray(p.x), np.asarray(p.y))
        for c in range(k):
            m = y == c
            ax.scatter(x[m, 0], x[m, 1], s=9, color=colors[c], edgecolors="white",
                       linewidths=0.3, zorder=3)
        ax.set_xlim(p.gx[0], p.gx[-1])
        ax.set_ylim(p.gy[0], p.gy[-1])
        ax.set_xlabel(feature_names[0])
        ax.set_ylabel(feature_names[1])
        ax.set_title(wrap_title(p.title or "predicted class regions", 5.2, 10), fontsize=10)
        handles = [Line2D([], [], marker="o", linestyle="", color=colors[c], label=f"{n} (train)")
                   for c, n in enumerate(class_names)]
        handles += [Patch(color=colors[c], alpha=0.25, label=f"predicted {n}")
                    for c, n in enumerate(class_names)]
        handles.append(Line2D([], [], color="0.25", linewidth=0.8, label=f"{what} contours"))
        # below the axes: inside, it would cover the contour labels and the points
        ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13),
                  ncol=min(3, len(handles)), framealpha=0.85)
    return _save(fig, path)


def plot_fitted_curve(path, panels: Sequence[CurvePanel], *, title: Optional[str] = None,
                      x_label: str = "x", y_label: str = "y") -> bool:
    """Regression on one input: the data as points and the network's curve over them."""
    if _mpl() is None:
        return False
    fig, axes = _figure(len(panels), 5.6, 4.0, title)
    for ax, p in zip(axes, panels):
        x, y = _subsample(np.asarray(p.x), np.asarray(p.y))
        ax.scatter(x, y, s=8, color="C0", alpha=0.5, label="training data")
        ax.plot(p.xs, p.ys, color="C3", linewidth=2.2, label="fitted curve")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(wrap_title(p.title or "fitted curve", 5.2, 10), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)
