"""The progress bar: a tqdm bar over epochs, fed from inside the compiled run."""

from __future__ import annotations

import sys

import numpy as np


class ProgressBar:
    """A tqdm bar over epochs fed from inside the compiled run (or nothing when quiet)."""

    def __init__(self, total: int, desc: str, *, enabled: bool):
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=True,
                                dynamic_ncols=True, mininterval=0.2, file=sys.stderr)
            except ImportError:  # pragma: no cover - tqdm is a CLI extra
                self.bar = None

    def __call__(self, epoch, metrics) -> None:
        if self.bar is None:
            return
        e = int(epoch)
        self.bar.update(max(0, e - self.bar.n))
        shown = {}
        for k in ("train_loss", "val_loss", "val_accuracy"):
            if k in metrics and np.isfinite(float(metrics[k])):
                shown[k.replace("accuracy", "acc")] = f"{float(metrics[k]):.4g}"
        self.bar.set_postfix(shown, refresh=False)

    def start_at(self, epoch: int) -> None:
        if self.bar is not None:
            self.bar.update(epoch)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
