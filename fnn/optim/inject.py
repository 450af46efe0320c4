"""Hyperparameters carried in the optimizer state, so they can be read, logged and changed
between steps (or vmapped over as part of the state) without rebuilding anything."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn.optim.base import OptState, Optimizer, is_concrete_number, safe_increment


class InjectHyperparamsState(NamedTuple):
    """``count``: int32 step; ``hyperparams``: name -> 0-d array (the value used at the last
    step, or to be used at the next for constants); ``inner_state``: the wrapped state."""

    count: jax.Array
    hyperparams: dict[str, jax.Array]
    inner_state: OptState


def _as_hparam(value: Any) -> jax.Array:
    if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jnp.floating):
        return value
    return jnp.asarray(value, dtype=jnp.result_type(float))


def inject_hyperparams(
    factory: Callable[..., Optimizer],
    static_args: tuple[str, ...] = ("mask", "nesterov", "centered"),
) -> Callable[..., Optimizer]:
    """Wrap an optimizer constructor so its numeric hyperparameters live in the state.

    ``inject_hyperparams(adam)(learning_rate=1e-3)`` behaves like ``adam(1e-3)`` but its state
    is ``InjectHyperparamsState(count, {"learning_rate": ..., "b1": ..., ...}, adam_state)``;
    a schedule argument is evaluated at ``count`` each step and its value stored.

    Args:
      factory: e.g. :func:`~fnn.optim.aliases.adam`.
      static_args: argument names never injected (masks, booleans).
    Returns:
      a constructor with the factory's signature. Arguments that are Python/NumPy numbers, JAX
      arrays or callables (schedules) are injected as float 0-d arrays (default float dtype,
      or the array's own float dtype); the rest are passed through unchanged. The optimizer is
      element-wise when the factory's is for these arguments.
    """
    sig = inspect.signature(factory)

    @functools.wraps(factory)
    def wrapped(*args: Any, **kwargs: Any) -> Optimizer:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        checked = factory(**arguments)  # validate Python numbers now, at construction
        injected = {
            k: v
            for k, v in arguments.items()
            if k not in static_args
            and (is_concrete_number(v) or isinstance(v, jax.Array) or callable(v))
        }
        static = {k: v for k, v in arguments.items() if k not in injected}

        def values_at(count):
            return {k: _as_hparam(v(count) if callable(v) else v) for k, v in injected.items()}

        def init(params):
            count = jnp.zeros((), jnp.int32)
            hparams = values_at(count)
            inner = factory(**static, **hparams)
            return InjectHyperparamsState(count, hparams, inner.init(params))

        def update(grads, state, params=None):
            hparams = {
                k: _as_hparam(v(state.count)) if callable(v) else state.hyperparams[k]
                for k, v in injected.items()
            }
            inner = factory(**static, **hparams)
            updates, inner_state = inner.update(grads, state.inner_state, params)
            return updates, InjectHyperparamsState(
                safe_increment(state.count), hparams, inner_state
            )

        return Optimizer(init, update, elementwise=checked.elementwise)

    return wrapped
