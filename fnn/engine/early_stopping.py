"""Early stopping on a validation metric, decided inside the compiled loop.

The policy is a static description (:class:`EarlyStopping`); its carry is
:class:`fnn.engine.state.EarlyStopState`, one scalar comparison per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jax

    from fnn.engine.state import EarlyStopState

    Array = jax.Array

# The policy and its checks import no JAX (the config checks use them before JAX is loaded);
# the two methods that run inside the compiled loop import it when called.
PyTree = Any


@dataclass(frozen=True)
class EarlyStopping:
    """Early stopping on a validation metric, decided inside the compiled loop.

    Attributes:
      monitor: "val_loss" (minimized) or "val_accuracy" (maximized).
      patience: epochs without improvement before stopping (≥ 1).
      min_delta: an improvement must beat the best by more than this (≥ 0).
      restore_best: restore the best epoch's params when stopping, and at the end of a run
        that did not stop.
    """

    monitor: str = "val_loss"
    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self):
        if self.monitor not in ("val_loss", "val_accuracy"):
            raise ValueError(
                f"early_stopping.monitor: {self.monitor!r}; expected 'val_loss' or 'val_accuracy'"
            )
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"early_stopping.patience: {self.patience!r}; expected an integer >= 1")
        if not isinstance(self.min_delta, (int, float)) or self.min_delta < 0:
            raise ValueError(f"early_stopping.min_delta: {self.min_delta!r}; expected a number >= 0")

    def check_task(self, *, classification: bool, loss: str) -> None:
        """The one place of the rule "val_accuracy needs a classification task".

        Args:
          classification: whether the task has an accuracy (a classification loss, or integer
            labels).  loss: the loss name, for the message.
        Raises:
          ValueError: monitor is "val_accuracy" on a task without accuracy.
        """
        if self.monitor == "val_accuracy" and not classification:
            raise ValueError(
                f"early_stopping.monitor: 'val_accuracy' needs a classification task (loss"
                f" {loss!r} with non-integer targets has no accuracy); use 'val_loss'")

    @property
    def mode(self) -> str:
        return "min" if self.monitor == "val_loss" else "max"

    def update(self, es: EarlyStopState, value: Array, epoch: Array, params: PyTree,
               net_state: PyTree = None):
        """One epoch of early stopping.

        Args:
          es: the carry.  value: the monitored metric this epoch (scalar).  epoch: its number.
          params: this epoch's parameters.  net_state: this epoch's network state, remembered
            with the best parameters when given (restore it with :meth:`restore_state`).
        Returns:
          (new EarlyStopState, params to continue with).
        """
        import jax.numpy as jnp

        from fnn.engine.state import EarlyStopState, select

        delta = jnp.asarray(self.min_delta, es.best.dtype)
        value = value.astype(es.best.dtype)
        improved = (value < es.best - delta) if self.mode == "min" else (value > es.best + delta)
        improved = improved & jnp.isfinite(value)
        best = jnp.where(improved, value, es.best)
        best_epoch = jnp.where(improved, epoch, es.best_epoch)
        best_params = select(improved, params, es.best_params)
        wait = jnp.where(improved, 0, es.wait + 1).astype(jnp.int32)
        stop_now = (wait >= self.patience) & ~es.stopped
        if self.restore_best:
            params = select(stop_now, best_params, params)
        best_state = es.best_net_state if net_state is None else select(
            improved, net_state, es.best_net_state)
        new = EarlyStopState(best, best_epoch, best_params, wait, es.stopped | stop_now,
                             jnp.where(stop_now, epoch, es.stop_epoch).astype(jnp.int32),
                             best_state)
        return new, params

    def restore_state(self, old: EarlyStopState, new: EarlyStopState, net_state: PyTree):
        """The network state to continue with after :meth:`update` took ``old`` to ``new``:
        the best epoch's when this epoch stopped the run and ``restore_best`` is set."""
        if not self.restore_best:
            return net_state
        from fnn.engine.state import select

        return select(new.stopped & ~old.stopped, new.best_net_state, net_state)
