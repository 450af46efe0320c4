"""Learning-rate schedules: pure, traceable functions ``count -> value``.

The contract
------------
A schedule is a function of the step count (a Python int or an int32 0-d array, possibly a
tracer; the optimizer passes the number of updates already taken, so the first update uses
``schedule(0)``) returning a 0-d float array of the default float dtype (float32, or float64
with x64 enabled). Schedules are pure and contain no Python control flow on the count, so they
work under ``jit``, ``vmap`` and ``lax.scan``. Pass one wherever an optimizer takes
``learning_rate``::

    opt = fnn.optim.adam(fnn.schedules.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 10_000))

Step arguments (``transition_steps``, ``boundaries``...) are static Python ints, checked at
construction (``ValueError`` naming the argument and value). Values (``init_value``,
``peak_value``...) may be Python floats or 0-d arrays, traced ones included, so a sweep over a
peak learning rate is a ``vmap``.

Composition: :func:`join_schedules` switches between schedules at step boundaries (each one
restarted from 0); :func:`with_warmup` puts a linear warmup in front of any schedule.

The argument checks and scalar coercions they share are :mod:`fnn.optim.schedule_args`.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from fnn.optim.schedule_args import (
    as_count,
    as_value,
    check_float,
    check_pieces,
    check_steps,
    cos_anneal,
)

Schedule = Callable[[Any], jax.Array]

__all__ = [
    "Schedule",
    "constant_schedule",
    "exponential_decay",
    "piecewise_constant_schedule",
    "polynomial_schedule",
    "linear_schedule",
    "cosine_decay_schedule",
    "warmup_cosine_decay_schedule",
    "one_cycle_schedule",
    "join_schedules",
    "with_warmup",
]


# --------------------------------------------------------------------------------------------
# schedules
# --------------------------------------------------------------------------------------------


def constant_schedule(value: Any) -> Schedule:
    """``lr(t) = value``.

    Args:
      value: float or 0-d array.
    Returns:
      a schedule ``count -> 0-d float array``.
    """

    def schedule(count):
        del count
        return as_value(value)

    return schedule


def exponential_decay(
    init_value: Any,
    transition_steps: int,
    decay_rate: Any,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: Any = None,
) -> Schedule:
    """``lr(t) = init_value * decay_rate ** (max(t - transition_begin, 0) / transition_steps)``,
    the exponent floored if ``staircase``, and clipped at ``end_value`` if given (a floor when
    decaying, a ceiling when ``decay_rate > 1``).

    Args:
      init_value: float or 0-d array.
      transition_steps: int > 0, steps per factor of ``decay_rate``.
      decay_rate: > 0.
      transition_begin: int >= 0, steps held at ``init_value`` first.
      staircase: decay in discrete jumps.
      end_value: optional bound.
    Returns:
      a schedule.
    """
    check_steps("transition_steps", transition_steps, positive=True)
    check_steps("transition_begin", transition_begin, positive=False)
    check_float("decay_rate", decay_rate, lambda x: x > 0, "> 0")

    def schedule(count):
        p = jnp.maximum(as_count(count) - transition_begin, 0) / transition_steps
        if staircase:
            p = jnp.floor(p)
        v = as_value(init_value) * as_value(decay_rate) ** p
        if end_value is not None:
            floor = as_value(end_value)
            v = jnp.where(as_value(decay_rate) < 1, jnp.maximum(v, floor), jnp.minimum(v, floor))
        return v

    return schedule


def piecewise_constant_schedule(boundaries: Sequence[int], values: Sequence[Any]) -> Schedule:
    """``lr(t) = values[i]`` for ``boundaries[i-1] <= t < boundaries[i]`` (``values[0]`` before
    the first boundary, ``values[-1]`` from the last on).

    Args:
      boundaries: strictly increasing ints >= 0, length n.
      values: length n + 1, floats or 0-d arrays.
    Returns:
      a schedule.
    """
    boundaries = check_pieces("values", values, boundaries)

    def schedule(count):
        table = jnp.stack([as_value(v) for v in values])
        count = jnp.asarray(count)
        index = sum((count >= b).astype(jnp.int32) for b in boundaries) if boundaries else 0
        return table[index]

    return schedule


def polynomial_schedule(
    init_value: Any,
    end_value: Any,
    power: Any,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    """``lr(t) = end + (init - end) (1 - s/transition_steps) ** power`` with
    ``s = clip(t - transition_begin, 0, transition_steps)``.

    Args:
      init_value, end_value: floats or 0-d arrays.
      power: > 0 (1 is linear).
      transition_steps: int > 0.
      transition_begin: int >= 0, steps held at ``init_value`` first.
    Returns:
      a schedule.
    """
    check_steps("transition_steps", transition_steps, positive=True)
    check_steps("transition_begin", transition_begin, positive=False)
    check_float("power", power, lambda x: x > 0, "> 0")

    def schedule(count):
        s = jnp.clip(as_count(count) - transition_begin, 0, transition_steps)
        frac = 1 - s / transition_steps
        end = as_value(end_value)
        return end + (as_value(init_value) - end) * frac ** as_value(power)

    return schedule


def linear_schedule(
    init_value: Any, end_value: Any, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """``lr(t) = init + (end - init) s / transition_steps``,
    ``s = clip(t - transition_begin, 0, transition_steps)``.

    Args:
      init_value, end_value: floats or 0-d arrays.
      transition_steps: int > 0.
      transition_begin: int >= 0.
    Returns:
      a schedule.
    """
    return polynomial_schedule(init_value, end_value, 1.0, transition_steps, transition_begin)


def cosine_decay_schedule(
    init_value: Any, decay_steps: int, alpha: Any = 0.0, exponent: Any = 1.0
) -> Schedule:
    """``lr(t) = init_value ((1 - alpha) c(t) ** exponent + alpha)``,
    ``c(t) = (1 + cos(pi min(t, decay_steps) / decay_steps)) / 2`` (Loshchilov & Hutter 2017,
    without restarts).

    Args:
      init_value: float or 0-d array.
      decay_steps: int > 0; constant ``alpha * init_value`` afterwards.
      alpha: final value as a fraction of ``init_value``, in [0, 1].
      exponent: > 0.
    Returns:
      a schedule.
    """
    check_steps("decay_steps", decay_steps, positive=True)
    check_float("alpha", alpha, lambda x: 0 <= x <= 1, "in [0, 1]")
    check_float("exponent", exponent, lambda x: x > 0, "> 0")

    def schedule(count):
        frac = jnp.minimum(as_count(count), decay_steps) / decay_steps
        c = 0.5 * (1 + jnp.cos(math.pi * frac))
        a = as_value(alpha)
        return as_value(init_value) * ((1 - a) * c ** as_value(exponent) + a)

    return schedule


def warmup_cosine_decay_schedule(
    init_value: Any,
    peak_value: Any,
    warmup_steps: int,
    decay_steps: int,
    end_value: Any = 0.0,
) -> Schedule:
    """Linear warmup then cosine decay; ``decay_steps`` counts the warmup too (as optax):
    ``lr(t) = init + (peak - init) t / W`` for ``t < W``, then
    ``end + (peak - end) (1 + cos(pi min(t - W, D - W) / (D - W))) / 2``.

    Args:
      init_value: value at step 0.
      peak_value: value at step ``warmup_steps``.
      warmup_steps: int W >= 0.
      decay_steps: int D > W, total length; ``end_value`` from step D on.
      end_value: final value.
    Returns:
      a schedule.
    """
    check_steps("warmup_steps", warmup_steps, positive=False)
    check_steps("decay_steps", decay_steps, positive=True)
    if decay_steps <= warmup_steps:
        raise ValueError(
            f"decay_steps must be > warmup_steps={warmup_steps} (it includes the warmup), "
            f"got {decay_steps}"
        )
    cosine_steps = decay_steps - warmup_steps

    def cosine(count):
        frac = jnp.minimum(as_count(count), cosine_steps) / cosine_steps
        return cos_anneal(as_value(peak_value), as_value(end_value), frac)

    if warmup_steps == 0:
        return cosine
    warmup = linear_schedule(init_value, peak_value, warmup_steps)
    return join_schedules([warmup, cosine], [warmup_steps])


def one_cycle_schedule(
    transition_steps: int,
    peak_value: Any,
    pct_start: float = 0.3,
    div_factor: Any = 25.0,
    final_div_factor: Any = 1e4,
    anneal_strategy: str = "cos",
) -> Schedule:
    """One-cycle (Smith & Topin 2018; defaults as PyTorch ``OneCycleLR``): anneal from
    ``peak/div_factor`` up to ``peak`` over ``S = int(pct_start * transition_steps)`` steps, then
    down to ``peak/(div_factor*final_div_factor)`` at ``transition_steps``, constant after.
    Cosine annealing ``a(x, y, f) = y + (x - y)(1 + cos(pi f))/2``, or linear ``x + (y - x) f``.

    Args:
      transition_steps: int > 0, total length.
      peak_value: the maximum value.
      pct_start: fraction of the steps spent increasing, in (0, 1).
      div_factor: > 0, ``initial = peak / div_factor``.
      final_div_factor: > 0, ``final = initial / final_div_factor``.
      anneal_strategy: ``"cos"`` or ``"linear"``.
    Returns:
      a schedule.
    """
    check_steps("transition_steps", transition_steps, positive=True)
    check_float("pct_start", pct_start, lambda x: 0 < x < 1, "in (0, 1)")
    check_float("div_factor", div_factor, lambda x: x > 0, "> 0")
    check_float("final_div_factor", final_div_factor, lambda x: x > 0, "> 0")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    up_steps = int(pct_start * transition_steps)
    down_steps = transition_steps - up_steps
    if up_steps < 1 or down_steps < 1:
        raise ValueError(
            f"pct_start={pct_start} with transition_steps={transition_steps} leaves "
            f"{up_steps} steps up and {down_steps} down; each phase needs >= 1"
        )

    def anneal(start, end, frac):
        if anneal_strategy == "cos":
            return cos_anneal(start, end, frac)
        return start + (end - start) * frac

    def schedule(count):
        t = as_count(count)
        peak = as_value(peak_value)
        initial = peak / as_value(div_factor)
        final = initial / as_value(final_div_factor)
        up = anneal(initial, peak, jnp.clip(t / up_steps, 0, 1))
        down = anneal(peak, final, jnp.clip((t - up_steps) / down_steps, 0, 1))
        return jnp.where(t < up_steps, up, down)

    return schedule


# --------------------------------------------------------------------------------------------
# composition
# --------------------------------------------------------------------------------------------


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Switch schedules at step boundaries, each restarted from 0:
    ``lr(t) = schedules[i](t - boundaries[i-1])`` for ``boundaries[i-1] <= t < boundaries[i]``
    (``schedules[0](t)`` before ``boundaries[0]``).

    Args:
      schedules: n + 1 schedules.
      boundaries: n strictly increasing ints >= 0.
    Returns:
      a schedule.
    """
    schedules = list(schedules)
    boundaries = check_pieces("schedules", schedules, boundaries)

    def schedule(count):
        count = jnp.asarray(count)
        value = schedules[0](count)
        for b, s in zip(boundaries, schedules[1:]):
            value = jnp.where(count >= b, s(count - b), value)
        return value

    return schedule


def with_warmup(schedule: Schedule, warmup_steps: int, init_value: Any = 0.0) -> Schedule:
    """Prepend a linear warmup to any schedule:
    ``lr(t) = init + (schedule(0) - init) t / W`` for ``t < W``, else ``schedule(t - W)``.

    Args:
      schedule: any schedule (a float is taken as a constant).
      warmup_steps: int W >= 0 (0 returns ``schedule`` itself).
      init_value: value at step 0.
    Returns:
      a schedule.
    """
    check_steps("warmup_steps", warmup_steps, positive=False)
    if not callable(schedule):
        schedule = constant_schedule(schedule)
    if warmup_steps == 0:
        return schedule

    def warmup(count):
        return linear_schedule(init_value, schedule(0), warmup_steps)(count)

    return join_schedules([warmup, schedule], [warmup_steps])
