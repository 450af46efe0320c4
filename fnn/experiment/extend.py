"""Continuing a finished run to more epochs: ``fnn train --resume RUN_DIR --set
training.epochs=N``.

The resumed run trains epochs E+1 .. N from the checkpoint of epoch E, exactly as the epochs
of one uninterrupted N-epoch run (chunked and unchunked runs are bitwise equal: every epoch's
randomness comes from the carried key, every counter is carried). That holds while nothing
before epoch E depended on the run's length, so a longer run is refused, one line each, when

* the learning-rate schedule is fitted to the length (``linear``, ``cosine``,
  ``warmup_cosine``, ``one_cycle`` decay to the last step: a 20-epoch cosine is not a 10-epoch
  cosine continued);
* early stopping's ``restore_best`` put the best epoch's parameters in place at epoch E and
  the best epoch was an earlier one (a member that stopped early, or whose best epoch is E,
  ends on epoch E's parameters and continues exactly);
* N is not larger than E (a shorter run is a new run: train it with ``--overwrite``).

Step-based runs (``training.iterations``) continue the same way with a larger
``training.iterations``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from fnn.experiment import checkpoint
from fnn.experiment.rundir import UsageError

LENGTH_KEYS = ("training.epochs", "training.iterations")
LENGTH_SCHEDULES = ("linear", "cosine", "warmup_cosine", "one_cycle")  # decay to the last step


def length_key(cfg) -> str:
    """The key that sets a run's length: training.iterations (step-based) or training.epochs."""
    return "training.iterations" if cfg.training.iterations else "training.epochs"


def _length(cfg) -> int:
    return cfg.training.iterations or cfg.training.epochs


def _ends_on_last_epoch(path: Path) -> bool:
    """Whether every member of a checkpoint holds its last trained epoch's parameters: it
    stopped early (the run had ended there anyway), or its best epoch is the last one (the
    restored parameters are that epoch's)."""
    with np.load(path, allow_pickle=False) as z:
        names = ("state.epoch", "state.early.best_epoch", "state.early.stopped")
        if not all(n in z.files for n in names):
            return False
        epoch, best, stopped = (np.asarray(z[n]) for n in names)
    return bool(np.all(stopped.astype(bool) | (best == epoch)))


def check(saved, cfg, run_dir: Path, checkpoint_dirs) -> Optional[tuple[int, int]]:
    """Whether ``cfg`` continues the finished run ``saved`` to a longer one.

    Args:
      saved: the run's config (its ``config.toml``).  cfg: the config resumed with.
      run_dir: the run directory (for messages).
      checkpoint_dirs: every group's checkpoint directory.
    Returns:
      None when the length is unchanged, else (old, new) length.
    Raises:
      UsageError: the length cannot be changed exactly (the module docstring's cases).
    """
    key = length_key(saved)
    old, new = _length(saved), _length(cfg)
    if length_key(cfg) != key or (key == "training.iterations"
                                  and cfg.training.epochs != saved.training.epochs):
        raise UsageError(f"--resume: {run_dir} is a run of {key} = {old}; a resumed run keeps "
                         f"that kind of length (set {key} to continue it further)")
    if new == old:
        return None
    head = f"--resume: {key}: {old} -> {new}"
    if new < old:
        raise UsageError(f"{head}; a resumed run can only be made longer (expected > {old}); "
                         f"train a shorter one anew with --overwrite or --out")
    unit = "iterations" if key == "training.iterations" else "epochs"
    sched = saved.optimizer.schedule.name
    if sched in LENGTH_SCHEDULES:
        raise UsageError(f"{head}: optimizer.schedule.name = {sched!r} decays over the run's "
                         f"length, so the first {old} {unit} would differ in a {new}-{unit[:-1]} run; "
                         f"continuing "
                         f"is exact for constant, step and exponential schedules (fine-tune a "
                         f"new run from this one with --init-from instead)")
    es = saved.early_stopping
    if es.enabled and es.restore_best:
        for d in checkpoint_dirs:
            path = checkpoint.latest(d)
            if path is not None and not _ends_on_last_epoch(path):
                raise UsageError(
                    f"{head}: early_stopping.restore_best put the best epoch's parameters in "
                    f"place at epoch {old}, and the best epoch was an earlier one, so the run "
                    f"does not end on epoch {old}'s; set early_stopping.restore_best = false "
                    f"in runs meant to be continued")
    return old, new
