"""``output.tensorboard = true``: each epoch's metrics as TensorBoard event files, live.

    tensorboard --logdir RUN_DIR/tensorboard

A single run writes into ``RUN_DIR/tensorboard/``; a sweep writes one TensorBoard *run* per
member, ``RUN_DIR/tensorboard/<member label>/`` (the labels of ``metrics.csv``), so TensorBoard
draws the members side by side. Each metric of ``metrics.csv`` is one scalar tag of the same
name (``train_loss``, ``val_accuracy``, ``grad_norm/layer1``, ...) at step = epoch (1-based);
epochs a member did not train (after an early stop or a NaN halt), and non-finite values,
are not written.

The events are written after every chunk of epochs (one compiled call; ``output.
checkpoint_every`` sets its length), before that chunk's checkpoint, so TensorBoard shows a run
while it trains. A resumed run purges the events past its checkpoint's epoch (TensorBoard's
``purge_step``), so an epoch is never shown twice.

The writer is ``tensorboardX``'s ``SummaryWriter``, an optional extra
(``pip install 'fnn[tensorboard]'``); :func:`require` is called before anything is built or
written, so a missing extra is one line (exit status 2).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

DIR = "tensorboard"


class MissingExtra(ValueError):
    """tensorboardX is not installed (one line; exit status 2)."""


def require():
    """tensorboardX's ``SummaryWriter`` class. Raises :class:`MissingExtra` when absent."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise MissingExtra("output.tensorboard: true needs the tensorboardX package, which is "
                           "not installed; pip install 'fnn[tensorboard]' (or pip install "
                           "tensorboardX), or set output.tensorboard = false") from None
    return SummaryWriter


def member_dir(run_dir, label: str, members: int) -> Path:
    """``RUN_DIR/tensorboard`` for a single run; ``RUN_DIR/tensorboard/<label>`` in a sweep
    (a ``/`` in a label becomes ``_``)."""
    base = Path(run_dir) / DIR
    return base if members == 1 else base / str(label).replace("/", "_").replace("\\", "_")


def _suffix(directory: Path) -> str:
    """A file name suffix after every events file already in ``directory``.

    The writer names its file ``events.out.tfevents.<seconds>.<host>``: a resumed run started
    within the same second would truncate the earlier file, and TensorBoard reads the files of
    a directory in name order. The suffix (the count of files already there) keeps both apart
    and in order.
    """
    n = sum(1 for p in directory.glob("events.out.tfevents.*")) if directory.is_dir() else 0
    return f".{n:04d}"


class EpochLog:
    """The writers of one group of members (one compiled program): one writer per member.

    Args:
      run_dir: the run directory (created).  labels: the group's member labels.
      members: members in the whole run (1: the run writes into ``RUN_DIR/tensorboard``).
      resume_epoch: the epoch training continues after (0 for a fresh run); events past it
        from an earlier process are purged.
    """

    def __init__(self, run_dir, labels: Sequence[str], *, members: int, resume_epoch: int = 0):
        writer_cls = require()
        purge = {"purge_step": resume_epoch + 1} if resume_epoch > 0 else {}
        self.writers = []
        for lab in labels:
            d = member_dir(run_dir, lab, members)
            self.writers.append(writer_cls(str(d), filename_suffix=_suffix(d), **purge))

    def write(self, first: int, history: dict, *, batched: bool) -> None:
        """Write one chunk: epochs ``first + 1, first + 2, ...`` of every member, then flush.

        Args:
          first: epochs completed before this chunk.
          history: metric -> (epochs,), or (members, epochs) when ``batched``; ``trained``
            (bool, same shape) marks the epochs really trained.
        """
        arrays = {k: np.asarray(v) if batched else np.asarray(v)[None]
                  for k, v in history.items()}
        trained = arrays.pop("trained", None)
        for j, w in enumerate(self.writers):
            for name in sorted(arrays):
                for e, v in enumerate(arrays[name][j]):
                    if trained is not None and not bool(trained[j][e]):
                        continue
                    if math.isfinite(float(v)):
                        w.add_scalar(name, float(v), first + e + 1)
            w.flush()

    def close(self) -> None:
        for w in self.writers:
            w.close()
