"""``optimizer.*`` of a config as an optimizer: the learning-rate schedule (in epochs, or in
steps for a step-based run) and the chain of clipping, weight decay and the optimizer itself.

Wiring only (the formulas are :mod:`fnn.optim`'s); :mod:`fnn.experiment.build` re-exports these
names.
"""

from __future__ import annotations

import jax

from fnn import optim
from fnn.engine import HParams
from fnn.experiment.config import Config
from fnn.optim import schedules


def rounds(cfg: Config) -> int:
    """The Trainer's epochs: ``training.epochs``, or in a step-based run its evaluations
    (``iterations / eval_interval``)."""
    t = cfg.training
    return t.iterations // t.eval_interval if t.iterations else t.epochs


def build_schedule(cfg: Config, learning_rate, steps_per_epoch: int):
    """``optimizer.schedule`` as a step -> value function peaking at ``learning_rate``.

    Lengths in the config are in epochs; they are converted with ``steps_per_epoch``. In a
    step-based run (``training.iterations``) they are steps: warmup_steps, boundaries, and
    the decay runs to the last iteration (nanoGPT's lr_decay_iters = max_iters).
    """
    s = cfg.optimizer.schedule
    t = cfg.training
    total = t.iterations or t.epochs * steps_per_epoch
    warm = s.warmup_steps if t.iterations else s.warmup_epochs * steps_per_epoch
    if t.iterations:
        steps_per_epoch = 1  # boundaries are steps
    lr = learning_rate
    if s.name == "constant":
        sched = None if not warm else schedules.constant_schedule(lr)
    elif s.name == "step":
        values = [lr * (s.factor ** i) for i in range(len(s.boundaries) + 1)]
        bounds = [max(1, b * steps_per_epoch - warm) for b in s.boundaries]
        sched = schedules.piecewise_constant_schedule(bounds, values) if bounds else \
            schedules.constant_schedule(lr)
    elif s.name == "exponential":
        sched = schedules.exponential_decay(lr, steps_per_epoch, s.decay_rate)
    elif s.name == "linear":
        sched = schedules.linear_schedule(lr, lr * s.alpha, max(1, total - warm))
    elif s.name in ("cosine", "warmup_cosine"):
        sched = schedules.cosine_decay_schedule(lr, max(1, total - warm), alpha=s.alpha)
    elif s.name == "one_cycle":
        sched = schedules.one_cycle_schedule(max(1, total - warm), lr, pct_start=s.pct_start)
    else:  # pragma: no cover - validated by the config
        raise ValueError(f"optimizer.schedule.name: {s.name!r}")
    if warm:
        sched = schedules.with_warmup(sched, warm, 0.0)
    return lr if sched is None else sched


def optimizer_factory(cfg: Config, steps_per_epoch: int):
    """``hparams -> Optimizer`` for ``optimizer.*`` (hyperparameters may be traced)."""
    o = cfg.optimizer

    def make(hp: HParams) -> optim.Optimizer:
        lr = build_schedule(cfg, hp.learning_rate, steps_per_epoch)
        kwargs = {"learning_rate": lr}
        for name in ("momentum", "b1", "b2", "eps", "decay", "centered"):
            value = getattr(o, name)
            if value is not None:
                kwargs[name] = value
        wd = hp.weight_decay
        decoupled = o.name in ("adamw", "lion")
        mask = None if o.decay_biases else optim.weights_only_mask
        wd_on = isinstance(wd, jax.Array) or float(wd) != 0.0
        if decoupled:
            kwargs["weight_decay"] = wd
            kwargs["mask"] = mask
        try:
            base = optim.get(o.name, **kwargs)
        except ValueError as err:
            raise ValueError(f"optimizer: {err}") from None
        parts = []
        if o.clip_value:
            parts.append(optim.clip(o.clip_value))
        if o.clip_norm:
            parts.append(optim.clip_by_global_norm(o.clip_norm))
        if wd_on and not decoupled:
            parts.append(optim.add_decayed_weights(wd, mask))  # g + wd·w, before the optimizer
        return optim.chain(*parts, base) if parts else base

    return make
