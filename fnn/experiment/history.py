"""A run's history as arrays: metric name -> (epochs,) for one run or (members, epochs) for a
sweep, plus the boolean ``"trained"`` (False for epochs skipped after an early stop or a NaN
halt; their metrics are NaN). What :class:`fnn.train.Trainer` returns; what the metrics file and
the pictures read.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

LOSS_KEYS = ("train_loss", "val_loss")
ACCURACY_KEYS = ("train_accuracy", "val_accuracy")


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


def member_labels_of(member_labels: Optional[Sequence], members: int) -> list:
    """One label per member (default: the member's index); a count mismatch is a ValueError."""
    if member_labels is None:
        return list(range(members))
    labels = list(member_labels)
    if len(labels) != members:
        raise ValueError(f"member_labels: {len(labels)} labels for {members} members")
    return labels


def short_name(metric: str) -> str:
    """A history metric's short label (progress bar, compare): val_accuracy -> val_acc."""
    return metric.replace("accuracy", "acc")
