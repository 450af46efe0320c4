"""``misclassified.png``: the test images an image classifier gets most confidently wrong.

The examples whose predicted class differs from the true one, ordered by the probability the
model gave its (wrong) prediction, highest first; each drawn as its raw image with the true and
predicted class names and that probability. :func:`fnn.experiment.model_report.write_all` calls
it for the run's best member (a sweep: the best by ``early_stopping.monitor``) on the split the
confusion matrix uses (test, else validation, else training).

Pure drawing besides :func:`most_confident_errors`; matplotlib is optional (False, nothing
written, without it).
"""

from __future__ import annotations

import io
import math
from typing import NamedTuple, Optional, Sequence

import numpy as np

from fnn.experiment.plot_style import import_matplotlib
from fnn.util.fileio import atomic_write_bytes

MAX_SHOWN = 24  # images in the grid at most
COLUMNS = 8


class Errors(NamedTuple):
    """images (k, H, W) or (k, H, W, C) raw; true (k,), pred (k,) class ids; confidence (k,)
    the probability of the predicted class; index (k,) positions in the split; of: the number
    of wrong predictions in the split; total: the split's size; split: its name."""

    images: np.ndarray
    true: np.ndarray
    pred: np.ndarray
    confidence: np.ndarray
    index: np.ndarray
    of: int
    total: int
    split: str


def most_confident_errors(probs: np.ndarray, y: np.ndarray, k: int = MAX_SHOWN) -> np.ndarray:
    """Indices of the ``k`` wrong predictions with the highest predicted-class probability.

    Args:
      probs: (n, classes) class probabilities.  y: (n,) true class ids.  k: at most this many.
    Returns:
      (m,) int64 indices, m = min(k, number wrong), confidence descending (ties: lower index
      first).
    """
    pred = np.argmax(probs, axis=1)
    conf = probs[np.arange(probs.shape[0]), pred]
    wrong = np.flatnonzero(pred != np.asarray(y))
    order = np.argsort(-conf[wrong], kind="stable")
    return wrong[order[:k]].astype(np.int64)


def errors(probs: np.ndarray, x: np.ndarray, y: np.ndarray, image_shape: tuple, split: str,
           k: int = MAX_SHOWN) -> Errors:
    """The :class:`Errors` of a split: ``x`` (n, H·W·C) raw images, ``image_shape`` (H, W)."""
    idx = most_confident_errors(probs, y, k)
    h, w = int(image_shape[0]), int(image_shape[1])
    c = int(np.prod(x.shape[1:])) // (h * w)
    imgs = np.asarray(x)[idx].reshape((idx.size, h, w) + ((c,) if c > 1 else ()))
    pred = np.argmax(probs, axis=1)
    return Errors(imgs, np.asarray(y)[idx], pred[idx], probs[idx, pred[idx]], idx,
                  int(np.sum(pred != np.asarray(y))), int(y.shape[0]), split)


def _percent(p: float) -> str:
    """A probability as a percentage that never rounds a mistake up to 100 %."""
    if p < 0.995:
        return f"{p:.0%}"
    return f"{p:.1%}" if p < 0.9995 else ">99.9%"


def plot_misclassified(path, e: Errors, class_names: Sequence[str], *,
                       title: Optional[str] = None) -> bool:
    """A grid of the images of ``e``: "true NAME / pred NAME p=0.97" above each.

    Returns True when written; False without matplotlib (or when nothing is wrong: no file).
    """
    mpl = import_matplotlib()
    if mpl is None or e.images.shape[0] == 0:
        return False
    Figure, FigureCanvasAgg = mpl[0], mpl[1]
    n = e.images.shape[0]
    cols = min(COLUMNS, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(max(1.55 * cols, 6.0), 1.75 * rows + (0.7 if title else 0.4)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title, fontsize=11)
    grid = fig.subplots(rows, cols, squeeze=False)
    lo, hi = (0, 255) if e.images.dtype == np.uint8 else (float(e.images.min()),
                                                          float(e.images.max()))
    for i, ax in enumerate(grid.ravel()):
        ax.set_axis_off()
        if i >= n:
            continue
        img = e.images[i]
        if img.ndim == 3 and img.dtype != np.uint8:  # RGB floats: scaled into [0, 1]
            img = (img - lo) / max(hi - lo, 1e-12)
        ax.imshow(img, cmap=None if img.ndim == 3 else "gray", vmin=lo, vmax=hi,
                  interpolation="nearest")
        ax.set_title(f"true {class_names[int(e.true[i])]}\npred {class_names[int(e.pred[i])]}"
                     f" ({_percent(e.confidence[i])})", fontsize=7.5, color="black", pad=2)
    fig.supxlabel(f"the {n} most confident of {e.of} wrong predictions on the {e.split} split "
                  f"({e.total} images); (%): the probability given to the predicted class",
                  fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return True
