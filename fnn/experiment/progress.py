"""The progress bar: a tqdm bar over epochs, fed from inside the compiled run.

The compiled run calls the bar (an unordered host callback, so it works on any number of devices
and processes) at about 100 trained epochs per run; after each chunk the host sets the bar from
the chunk's history, which is exact: an early-stopped or halted run's bar ends at its last
trained epoch with that epoch's metrics (the skipped epochs' metrics are NaN). The first report
restarts the bar's clock, so its rate and ETA exclude compilation.
"""

from __future__ import annotations

import sys

import numpy as np

from fnn.experiment.history import short_name

SHOWN = ("train_loss", "val_loss", "val_accuracy")  # shown as train_loss, val_loss, val_acc


class ProgressBar:
    """A tqdm bar over epochs fed from inside the compiled run (or nothing when quiet)."""

    def __init__(self, total: int, desc: str, *, enabled: bool):
        self.bar = None
        self._clock_started = False
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=True,
                                dynamic_ncols=True, mininterval=0.2, file=sys.stderr)
            except ImportError:  # pragma: no cover - tqdm is a CLI extra
                self.bar = None

    def __call__(self, epoch, metrics) -> None:
        """A report from the compiled run: epoch (1-based, trained) and its scalar metrics."""
        if self.bar is None:
            return
        e = int(epoch)
        if e < self.bar.n:  # unordered callbacks: a late report never moves the bar back
            return
        if not self._clock_started:
            # The first report arrives after compilation: restart the clock there, and count
            # the epochs before it as done before the clock, so no rate includes compiling.
            self._clock_started = True
            self.bar.unpause()
            self.bar.n = self.bar.last_print_n = e
            self.bar.initial = e
            self._postfix(metrics)
            self.bar.refresh()
            return
        else:
            self.bar.update(e - self.bar.n)
        self._postfix(metrics)

    def _postfix(self, metrics) -> None:
        shown = {}
        for k in SHOWN:
            if k in metrics and np.isfinite(float(metrics[k])):
                shown[short_name(k)] = f"{float(metrics[k]):.4g}"
        if shown:
            self.bar.set_postfix(shown, refresh=False)

    def sync(self, history, start: int) -> None:
        """Set the bar from the host history after a chunk: it stands at the last trained epoch.

        Args:
          history: metric name -> (epochs,) or (members, epochs) arrays of the whole run so
            far, with "trained" (False for skipped epochs).
          start: the first epoch of the run's history (0, or the resume epoch).
        """
        if self.bar is None or history is None or "trained" not in history:
            return
        import jax

        jax.effects_barrier()  # the chunk's reports are all in before the host's word
        trained = np.asarray(history["trained"], bool)
        if trained.ndim == 2:  # a sweep: an epoch trained if any member trained
            trained = trained.any(axis=0)
        done = np.flatnonzero(trained)
        if done.size == 0:
            return
        last = int(done[-1])
        metrics = {}
        for k in SHOWN:
            if k in history:
                v = np.asarray(history[k], np.float64)
                v = v[..., last]
                finite = v[np.isfinite(v)]
                metrics[k] = float(finite.mean()) if finite.size else float("nan")
        e = start + last + 1
        if e > self.bar.n:
            self.bar.update(e - self.bar.n)
        self._postfix(metrics)
        self.bar.refresh()

    def start_at(self, epoch: int) -> None:
        if self.bar is not None:
            self.bar.update(epoch)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
