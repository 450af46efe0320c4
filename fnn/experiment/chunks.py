"""Training one group in chunks of epochs, with checkpoints between chunks and Ctrl-C honoured.

A chunk is one call of the compiled run (chunked and unchunked runs are bitwise equal). Between
chunks the state is saved; the first Ctrl-C finishes the current chunk, saves a checkpoint and
raises :class:`Interrupted` (exit 130); a second one aborts.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Optional

import jax
import numpy as np

from fnn.engine import parallel
from fnn.engine.hparams import traced_for
from fnn.experiment import build as exp
from fnn.experiment import checkpoint
from fnn.experiment.progress import ProgressBar


class Interrupted(Exception):
    """Ctrl-C was honoured after saving a checkpoint: the CLI exits with status 130."""

def chunk_size(cfg) -> int:
    """Epochs per compiled call: ``checkpoint_every``, else a divisor of the epochs near 1/5
    (epochs: rounds of ``eval_interval`` steps in a step-based run, :func:`~fnn.experiment.build.rounds`)."""
    total = exp.rounds(cfg)
    if cfg.output.checkpoint_every:
        return min(cfg.output.checkpoint_every, total)
    target = max(1, total // 5)
    return max(d for d in range(1, target + 1) if total % d == 0)


class InterruptFlag:
    """First SIGINT sets a flag (honoured at the next chunk); a second one aborts."""

    def __init__(self):
        self.set = False
        self._old = None

    def __enter__(self):
        if threading_main():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        print("\ninterrupt: finishing the current chunk and saving a checkpoint "
              "(Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def concat(history, new):
    new = {k: np.asarray(v) for k, v in new.items()}
    if history is None:
        return new
    return {k: np.concatenate([history[k], new[k]], axis=-1) for k in new}


def traced_names(cfg, group) -> Optional[tuple]:
    """Hyperparameters a group traces: the defaults plus those its sweep varies."""
    return traced_for(exp.hparams_of(group.config), group.traced)


def initial_state(group, trainer, start=None):
    """(first TrainState, hyperparameters) of a group: a vmapped sweep, or one run.

    ``start``: an :class:`fnn.experiment.init_from.Start` (fine-tuning) or None."""
    hp = exp.group_hparams(group)
    given = {} if start is None else {"params": start.params, "net_state": start.net_state}
    if len(group.members) > 1:
        return trainer.init_sweep(exp.member_keys(group.seeds), hp, **given), hp
    hp = {k: float(v[0]) for k, v in hp.items()}
    return trainer.init(jax.random.key(group.seeds[0]), hp, **given), hp


def train_group(group, trainer, ckpt_dir: Path, *, resume: bool, quiet: bool,
                interrupt: InterruptFlag, config_text: str, log=None, start=None):
    """Train one group (one compiled program) with its already built ``trainer``.

    ``log``, when given, is called as ``log(resume_epoch=E)`` once the starting epoch E is
    known and returns a :class:`fnn.experiment.tensorboard_log.EpochLog` (process 0 only),
    which receives each chunk's metrics before the chunk's checkpoint.

    ``start``, when given, is the :class:`fnn.experiment.init_from.Start` of a fresh run
    (``model.init_from``); a checkpoint to resume from takes its place.

    Returns:
      (state, history, seconds) with state and history as host (NumPy) copies.
    """
    gcfg = group.config
    batched = len(group.members) > 1
    main = parallel.is_main_process()
    bar = ProgressBar(exp.rounds(gcfg), group.title if batched else "train",
                      enabled=gcfg.output.progress and not quiet and main)
    state, hp = initial_state(group, trainer, start)
    history, epoch = None, 0
    if resume:
        path = checkpoint.latest(ckpt_dir)
        if path is not None:
            state, history, meta = checkpoint.load(path, state)
            state = trainer.place(state, shard=batched)
            history = {k: np.asarray(v) for k, v in history.items()} if history else None
            epoch = int(meta["epoch"])
            bar.start_at(epoch)
    total, chunk = exp.rounds(gcfg), chunk_size(gcfg)
    writer = log(resume_epoch=epoch) if log is not None and main else None
    t0 = time.perf_counter()
    try:
        while epoch < total:
            n = min(chunk, total - epoch)
            state, h = trainer.run(state, hp, epochs=n, batched=batched, progress=bar)
            h = parallel.to_host(h)
            history = concat(history, h)
            if writer is not None:
                writer.write(epoch, h, batched=batched)
            epoch += n
            bar.sync(history, start=epoch - np.shape(history["trained"])[-1])
            every = gcfg.output.checkpoint_every
            if interrupt.set or (every and epoch % every == 0) or epoch == total:
                host_state = parallel.to_host(state)  # a collective on multi-process runs
                if main:
                    checkpoint.save(ckpt_dir, host_state, history, epoch=epoch,
                                    config_text=config_text, meta={"group": group.title},
                                    keep=gcfg.output.keep_checkpoints)
            if interrupt.set and epoch < total:
                bar.close()
                raise Interrupted(f"interrupted at epoch {epoch}/{total}; checkpoint saved in "
                                  f"{ckpt_dir}; continue with --resume")
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return parallel.to_host(state), history, time.perf_counter() - t0
