"""The hyperparameters a run may trace: one pytree, one rule for which are traced, one resolver.

A traced hyperparameter is an input of the compiled program rather than a constant in it, so a
sweep over it is a ``vmap`` and changing it recompiles nothing. Its path, from a config to the
update rule:

* the config's key (``optimizer.learning_rate``, ``regularization.l2``, ...; the table is
  ``fnn.experiment.config.TRACED_KEYS``, checked against :data:`HPARAM_NAMES` by the tests) gives
  the field of :class:`HParams` (``experiment.build.hparams_of``);
* :func:`default_traced` says which fields a program traces when the caller names none: the
  learning rate and every nonzero one (a zero penalty is compiled out); a sweep adds the fields it
  varies (:func:`traced_for`);
* :func:`as_inputs` turns a run's values into the program's inputs: arrays (shape ``()`` or
  ``(members,)``) for the traced fields, ``None`` for the compiled ones, refusing a value that
  differs from the compiled constant;
* inside the program :func:`resolve` merges them back into one :class:`HParams` of floats and
  tracers, which the optimizer factory (``hparams -> Optimizer``) and the train step read.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import jax.numpy as jnp

HPARAM_NAMES = ("learning_rate", "weight_decay", "l1", "l2", "drop_rate")


class HParams(NamedTuple):
    """Hyperparameters that may be traced (so a sweep over them is a vmap, not a recompile).

    Each field is a Python float or a scalar array (or, in a sweep, a (members,) array).
    ``drop_rate=None`` means the network's own ``net.drop_rate`` (resolved by the Trainer).
    """

    learning_rate: Any = 1e-3
    weight_decay: Any = 0.0
    l1: Any = 0.0
    l2: Any = 0.0
    drop_rate: Any = None


def default_traced(hp: HParams) -> tuple[str, ...]:
    """The fields a program traces unless told: the learning rate and every nonzero one.

    Args:
      hp: the run's hyperparameters (Python numbers or None).
    Returns:
      field names in :data:`HPARAM_NAMES` order.
    """
    return ("learning_rate",) + tuple(n for n in HPARAM_NAMES[1:]
                                      if float(getattr(hp, n) or 0.0) != 0.0)


def traced_for(hp: HParams, varied: Sequence[str]) -> Optional[tuple[str, ...]]:
    """The fields a sweep's program traces: the defaults plus those the sweep varies.

    Args:
      hp: the group's hyperparameters.  varied: fields the sweep varies inside the program.
    Returns:
      the names, or None when nothing is varied (the program's own default then applies).
    """
    if not varied:
        return None
    return check_traced(tuple(dict.fromkeys(default_traced(hp) + tuple(varied))))


def check_traced(traced: Sequence[str]) -> tuple[str, ...]:
    """``traced`` in :data:`HPARAM_NAMES` order; an unknown name is a one-line ValueError."""
    unknown = set(traced) - set(HPARAM_NAMES)
    if unknown:
        raise ValueError(f"traced: {sorted(unknown)}; expected names from {HPARAM_NAMES}")
    return tuple(n for n in HPARAM_NAMES if n in traced)


def as_inputs(compiled: HParams, traced: Sequence[str], hparams=None, *, dtype,
              members: Optional[int] = None) -> HParams:
    """A run's hyperparameters as the program's inputs: arrays for traced fields, else None.

    Args:
      compiled: the values the program was built with (its constants for untraced fields).
      traced: the traced field names.
      hparams: the run's values, an :class:`HParams` or a dict of some fields (None: compiled).
      dtype: the arrays' dtype (the network's).
      members: broadcast every traced value to ``(members,)`` (a sweep), or None for ``()``.
    Returns:
      an :class:`HParams` of arrays and None.
    Raises:
      ValueError: an unknown field, or an untraced field whose value differs from the compiled.
    """
    hp = compiled if hparams is None else hparams
    if isinstance(hp, dict):
        unknown = set(hp) - set(HPARAM_NAMES)
        if unknown:
            raise ValueError(f"hparams: unknown {sorted(unknown)}; expected {HPARAM_NAMES}")
        hp = compiled._replace(**hp)
    if hp.drop_rate is None:
        hp = hp._replace(drop_rate=compiled.drop_rate)
    out = {}
    for name in HPARAM_NAMES:
        value, fixed = getattr(hp, name), getattr(compiled, name)
        if name in traced:
            arr = jnp.asarray(value, dtype)
            out[name] = arr if members is None else jnp.broadcast_to(arr, (members,))
            continue
        same_none = value is None and fixed is None
        if not same_none and (not isinstance(value, (int, float)) or value != fixed):
            raise ValueError(f"hparams.{name}: {value!r} differs from the compiled value"
                             f" {fixed!r}; list it in traced= to vary it")
        out[name] = None
    return HParams(**out)


def resolve(compiled: HParams, inputs: HParams) -> HParams:
    """Inside the program: the traced inputs where given, the compiled constants elsewhere.

    Args:
      compiled: the program's constants.  inputs: from :func:`as_inputs` (tracers or None).
    Returns:
      one :class:`HParams` of floats and tracers.
    """
    return HParams(*(t if t is not None else c for t, c in zip(inputs, compiled)))

