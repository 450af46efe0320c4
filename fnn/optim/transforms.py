"""Building blocks: each is an :class:`~fnn.optim.base.Optimizer` that rescales the gradient.

Notation for every update rule below: ``g`` is the incoming update (the gradient, or the output
of the previous transformation in a :func:`~fnn.optim.base.chain`), ``u`` the outgoing update,
``theta`` the parameters, ``t = 1, 2, ...`` the step number (``count`` after incrementing).
All rules act leaf by leaf and element by element, except global-norm clipping. Every state leaf
and every update keeps the dtype of its parameter leaf; step counters are int32.

Hyperparameters may be Python floats or 0-d JAX arrays (also tracers inside ``jit``/``vmap``);
``learning_rate`` may also be a schedule ``count -> value``.

The moment-based scalings of the optimizers (Adam, Adamax, Adagrad, RMSProp, Lion) are
:mod:`fnn.optim.moments`.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp

from fnn.optim.base import (
    EmptyState,
    Optimizer,
    Params,
    PyTree,
    ScalarOrSchedule,
    cast,
    zeros_like,
    check_decay,
    check_nonnegative,
    check_positive,
    check_same_structure,
    global_norm,
    safe_increment,
)

# --------------------------------------------------------------------------------------------
# State types
# --------------------------------------------------------------------------------------------


class ScaleByScheduleState(NamedTuple):
    """``count``: int32 scalar, the number of updates so far (the schedule's argument)."""

    count: jax.Array


class TraceState(NamedTuple):
    """``trace``: the momentum buffer, like params."""

    trace: PyTree


# --------------------------------------------------------------------------------------------
# Scaling by a step size
# --------------------------------------------------------------------------------------------


def scale(step_size: Any) -> Optimizer:
    """Multiply by a constant: ``u = step_size * g``.

    Args:
      step_size: Python float or 0-d array (may be traced).
    Returns:
      an :class:`Optimizer` with :class:`EmptyState`.
    """

    def init(params):
        del params
        return EmptyState()

    def update(grads, state, params=None):
        del params
        return jax.tree.map(lambda g: cast(step_size, g) * g, grads), state

    return Optimizer(init, update, elementwise=True)


def scale_by_schedule(schedule: Callable[[jax.Array], Any]) -> Optimizer:
    """Multiply by a schedule of the step count: ``u = schedule(count) * g``, then ``count += 1``.

    The first update uses ``schedule(0)``.

    Args:
      schedule: ``count (int32 0-d) -> value (0-d)``, pure and traceable.
    Returns:
      an :class:`Optimizer` with :class:`ScaleByScheduleState` ``(count,)``, count int32.
    """

    def init(params):
        del params
        return ScaleByScheduleState(count=jnp.zeros((), jnp.int32))

    def update(grads, state, params=None):
        del params
        step_size = schedule(state.count)
        updates = jax.tree.map(lambda g: cast(step_size, g) * g, grads)
        return updates, ScaleByScheduleState(count=safe_increment(state.count))

    return Optimizer(init, update, elementwise=True)


def scale_by_learning_rate(learning_rate: ScalarOrSchedule, *, flip_sign: bool = True) -> Optimizer:
    """Scale by the learning rate, negated for descent: ``u = -lr * g`` (``lr`` may be ``lr(t)``).

    Args:
      learning_rate: a positive float, a 0-d array (may be traced), or a schedule
        ``count -> lr``.
      flip_sign: if True (default) the update is ``-lr * g`` (gradient descent).
    Returns:
      an :class:`Optimizer`; :class:`EmptyState` for a constant, :class:`ScaleByScheduleState`
      for a schedule.
    Raises:
      ValueError: if a Python/NumPy ``learning_rate`` is not > 0.
    """
    check_positive("learning_rate", learning_rate)
    if callable(learning_rate):
        schedule = learning_rate
        return scale_by_schedule(lambda count: -schedule(count) if flip_sign else schedule(count))
    return scale(-learning_rate if flip_sign else learning_rate)


# --------------------------------------------------------------------------------------------
# Momentum, Adam family, RMS scalings, Lion
# --------------------------------------------------------------------------------------------


def trace(decay: Any = 0.9, nesterov: bool = False) -> Optimizer:
    """Heavy-ball momentum (as PyTorch SGD, dampening 0): ``m_t = decay*m_{t-1} + g_t``;
    ``u = m_t``, or ``u = g_t + decay*m_t`` with Nesterov.

    Args:
      decay: the momentum coefficient in [0, 1) (float or 0-d array).
      nesterov: use the Nesterov look-ahead form.
    Returns:
      an :class:`Optimizer` with :class:`TraceState` ``(trace,)``, initialised to zeros.
    """
    check_decay("decay", decay)

    def init(params):
        return TraceState(trace=zeros_like(params))

    def update(grads, state, params=None):
        del params
        new_trace = jax.tree.map(lambda g, m: g + cast(decay, g) * m, grads, state.trace)
        if nesterov:
            updates = jax.tree.map(lambda g, m: g + cast(decay, g) * m, grads, new_trace)
        else:
            updates = new_trace
        return updates, TraceState(trace=new_trace)

    return Optimizer(init, update, elementwise=True)


# --------------------------------------------------------------------------------------------
# Clipping and weight decay
# --------------------------------------------------------------------------------------------


def clip(max_delta: Any) -> Optimizer:
    """Clip element-wise by value: ``u = clip(g, -max_delta, max_delta)``.

    Args:
      max_delta: > 0.
    Returns:
      an :class:`Optimizer` with :class:`EmptyState`.
    """
    check_positive("max_delta", max_delta)

    def init(params):
        del params
        return EmptyState()

    def update(grads, state, params=None):
        del params
        updates = jax.tree.map(
            lambda g: jnp.clip(g, -cast(max_delta, g), cast(max_delta, g)), grads
        )
        return updates, state

    return Optimizer(init, update, elementwise=True)


def clip_by_global_norm(max_norm: Any) -> Optimizer:
    """Rescale all leaves together so the global l2 norm is at most ``max_norm``:
    ``u = g * min(1, max_norm / ||g||)`` with ``||g||`` over all leaves.

    Args:
      max_norm: > 0.
    Returns:
      an :class:`Optimizer` with :class:`EmptyState`. Updates with ``||g|| <= max_norm`` are
      returned unchanged (bit for bit).
    """
    check_positive("max_norm", max_norm)

    def init(params):
        del params
        return EmptyState()

    def update(grads, state, params=None):
        del params
        norm = global_norm(grads)

        def leaf(g):
            n = norm.astype(g.dtype)
            return jnp.where(n <= cast(max_norm, g), g, g * (cast(max_norm, g) / n))

        return jax.tree.map(leaf, grads), state

    return Optimizer(init, update)


MaskOrFn = Union[None, PyTree, Callable[[Params], PyTree]]


def _resolve_mask(mask: MaskOrFn, params: Params) -> PyTree:
    m = mask(params) if callable(mask) else mask
    check_same_structure(m, params, ("mask", "params"))
    return m


def add_decayed_weights(weight_decay: Any = 0.0, mask: MaskOrFn = None) -> Optimizer:
    """Add decoupled weight decay: ``u = g + weight_decay * theta`` on masked-in leaves,
    ``u = g`` elsewhere. Chained before the learning-rate scaling this gives
    ``theta <- theta - lr (g + wd theta)``.

    Args:
      weight_decay: >= 0 (float or 0-d array, may be traced).
      mask: None (decay every leaf), a pytree of bools with the structure of params, or a
        callable ``params -> that pytree`` (e.g. :func:`weights_only_mask`). Leaves may be
        Python bools (static) or bool arrays broadcastable to the leaf.
    Returns:
      an :class:`Optimizer` with :class:`EmptyState`; ``update`` requires ``params``.
    """
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        del params
        return EmptyState()

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("add_decayed_weights: update needs params, got params=None")
        check_same_structure(grads, params)

        def decay(g, p):
            return g + cast(weight_decay, g) * p.astype(g.dtype)

        if mask is None:
            return jax.tree.map(decay, grads, params), state
        m = _resolve_mask(mask, params)

        def leaf(g, p, keep):
            if isinstance(keep, bool):
                return decay(g, p) if keep else g
            return jnp.where(keep, decay(g, p), g)

        return jax.tree.map(leaf, grads, params, m), state

    return Optimizer(init, update, elementwise=mask is None)


def weights_only_mask(params: Params) -> PyTree:
    """The weight-decay mask for fnn params: True for leaves under a dict key ``"w"``, False
    for every other leaf (biases ``"b"``).

    Args:
      params: e.g. a tuple of per-layer dicts ``{"w": (in, out), "b": (out,)}``.
    Returns:
      a pytree of Python bools with the structure of ``params``.
    """

    def is_weight(path, leaf):
        del leaf
        last = path[-1] if path else None
        return isinstance(last, jax.tree_util.DictKey) and last.key == "w"

    return jax.tree_util.tree_map_with_path(is_weight, params)
