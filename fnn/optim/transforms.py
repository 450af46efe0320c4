"""Building blocks: each is an :class:`~fnn.optim.base.Optimizer` that rescales the gradient.

Notation for every update rule below: ``g`` is the incoming update (the gradient, or the output
of the previous transformation in a :func:`~fnn.optim.base.chain`), ``u`` the outgoing update,
``theta`` the parameters, ``t = 1, 2, ...`` the step number (``count`` after incrementing).
All rules act leaf by leaf and element by element, except global-norm clipping. Every state leaf
and every update keeps the dtype of its parameter leaf; step counters are int32.

Hyperparameters may be Python floats or 0-d JAX arrays (also tracers inside ``jit``/``vmap``);
``learning_rate`` may also be a schedule ``count -> value``.

One concept needs the length: the family of gradient transformations, each optimizer's scale_by_* beside its state.
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
    bias_correction,
    cast,
    one_minus,
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


class AdamState(NamedTuple):
    """``count``: int32 scalar; ``mu``: first moment, like params; ``nu``: second moment."""

    count: jax.Array
    mu: PyTree
    nu: PyTree


class AdamaxState(NamedTuple):
    """``count``: int32 scalar; ``mu``: first moment; ``nu``: infinity norm (like params)."""

    count: jax.Array
    mu: PyTree
    nu: PyTree


class AdagradState(NamedTuple):
    """``sum_of_squares``: running sum of squared gradients, like params."""

    sum_of_squares: PyTree


class RmsState(NamedTuple):
    """``nu``: moving average of squared gradients, like params."""

    nu: PyTree


class CenteredRmsState(NamedTuple):
    """``mu``: moving average of gradients; ``nu``: of squared gradients (like params)."""

    mu: PyTree
    nu: PyTree


class LionState(NamedTuple):
    """``mu``: the momentum (moving average of gradients), like params."""

    mu: PyTree


def _zeros_like(params: Params) -> PyTree:
    return jax.tree.map(jnp.zeros_like, params)


def _full_like(params: Params, value: Any) -> PyTree:
    return jax.tree.map(lambda p: jnp.full_like(p, cast(value, p)), params)


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

    return Optimizer(init, update)


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

    return Optimizer(init, update)


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
        return TraceState(trace=_zeros_like(params))

    def update(grads, state, params=None):
        del params
        new_trace = jax.tree.map(lambda g, m: g + cast(decay, g) * m, grads, state.trace)
        if nesterov:
            updates = jax.tree.map(lambda g, m: g + cast(decay, g) * m, grads, new_trace)
        else:
            updates = new_trace
        return updates, TraceState(trace=new_trace)

    return Optimizer(init, update)


def scale_by_adam(
    b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0, *, nesterov: bool = False
) -> Optimizer:
    """Adam's scaling (Kingma & Ba 2015), eps added after the bias-corrected square root
    (as PyTorch and optax): ``m_t = b1 m + (1-b1) g``; ``v_t = b2 v + (1-b2) g^2``;
    ``u = m_hat / (sqrt(v_hat + eps_root) + eps)`` with ``m_hat = m_t/(1-b1^t)``,
    ``v_hat = v_t/(1-b2^t)``.

    With ``nesterov=True`` this is NAdam (Dozat 2016, constant momentum, as optax):
    ``m_hat = b1 m_t/(1-b1^(t+1)) + (1-b1) g/(1-b1^t)``.

    Args:
      b1: first-moment decay in [0, 1).
      b2: second-moment decay in [0, 1).
      eps: > 0, added to the denominator after the square root.
      eps_root: >= 0, added inside the square root (0 as in the paper).
      nesterov: use the NAdam first-moment estimate.
    Returns:
      an :class:`Optimizer` with :class:`AdamState` ``(count, mu, nu)``: count int32 0, moments 0.
    """
    check_decay("b1", b1)
    check_decay("b2", b2)
    check_positive("eps", eps)
    check_nonnegative("eps_root", eps_root)

    def init(params):
        return AdamState(
            count=jnp.zeros((), jnp.int32), mu=_zeros_like(params), nu=_zeros_like(params)
        )

    def update(grads, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: cast(b1, g) * m + one_minus(b1, g) * g, grads, state.mu)
        nu = jax.tree.map(
            lambda g, v: cast(b2, g) * v + one_minus(b2, g) * jnp.square(g), grads, state.nu
        )
        count = safe_increment(state.count)

        def leaf(g, m, v):
            if nesterov:
                m_hat = cast(b1, g) * m / bias_correction(b1, count + 1, g) + one_minus(
                    b1, g
                ) * g / bias_correction(b1, count, g)
            else:
                m_hat = m / bias_correction(b1, count, g)
            v_hat = v / bias_correction(b2, count, g)
            return m_hat / (jnp.sqrt(v_hat + cast(eps_root, g)) + cast(eps, g))

        updates = jax.tree.map(leaf, grads, mu, nu)
        return updates, AdamState(count=count, mu=mu, nu=nu)

    return Optimizer(init, update)


def scale_by_adamax(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8) -> Optimizer:
    """AdaMax's scaling (Kingma & Ba 2015, Alg. 2; eps as PyTorch and optax):
    ``m_t = b1 m + (1-b1) g``; ``n_t = max(b2 n, |g| + eps)``; ``u = m_t / ((1-b1^t) n_t)``.

    Args:
      b1: first-moment decay in [0, 1).
      b2: infinity-norm decay in [0, 1).
      eps: > 0, keeps the denominator away from zero.
    Returns:
      an :class:`Optimizer` with :class:`AdamaxState` ``(count, mu, nu)``, all initialised to 0.
    """
    check_decay("b1", b1)
    check_decay("b2", b2)
    check_positive("eps", eps)

    def init(params):
        return AdamaxState(
            count=jnp.zeros((), jnp.int32), mu=_zeros_like(params), nu=_zeros_like(params)
        )

    def update(grads, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: cast(b1, g) * m + one_minus(b1, g) * g, grads, state.mu)
        nu = jax.tree.map(
            lambda g, n: jnp.maximum(cast(b2, g) * n, jnp.abs(g) + cast(eps, g)), grads, state.nu
        )
        count = safe_increment(state.count)
        updates = jax.tree.map(lambda m, n: m / (bias_correction(b1, count, m) * n), mu, nu)
        return updates, AdamaxState(count=count, mu=mu, nu=nu)

    return Optimizer(init, update)


def scale_by_rss(initial_accumulator_value: Any = 0.0, eps: Any = 1e-10) -> Optimizer:
    """Adagrad's scaling (Duchi et al. 2011; conventions as PyTorch):
    ``s_t = s_{t-1} + g^2`` with ``s_0 = initial_accumulator_value``; ``u = g / (sqrt(s_t) + eps)``.

    (optax differs: ``s_0 = 0.1`` and eps inside the root.)

    Args:
      initial_accumulator_value: >= 0, the starting value of every accumulator entry.
      eps: > 0, added after the square root.
    Returns:
      an :class:`Optimizer` with :class:`AdagradState` ``(sum_of_squares,)``.
    """
    check_nonnegative("initial_accumulator_value", initial_accumulator_value)
    check_positive("eps", eps)

    def init(params):
        return AdagradState(sum_of_squares=_full_like(params, initial_accumulator_value))

    def update(grads, state, params=None):
        del params
        s = jax.tree.map(lambda g, s: s + jnp.square(g), grads, state.sum_of_squares)
        updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + cast(eps, g)), grads, s)
        return updates, AdagradState(sum_of_squares=s)

    return Optimizer(init, update)


def scale_by_rms(
    decay: Any = 0.9, eps: Any = 1e-8, initial_scale: Any = 0.0, *, centered: bool = False
) -> Optimizer:
    """RMSProp's scaling (Hinton 2012; eps outside the root, as PyTorch):
    ``v_t = decay v + (1-decay) g^2``; ``u = g / (sqrt(v_t) + eps)``; centered (Graves 2013):
    ``m_t = decay m + (1-decay) g``, ``u = g / (sqrt(v_t - m_t^2) + eps)``.

    Initial values: ``v_0 = initial_scale`` (default 0, as PyTorch and optax), ``m_0 = 0``.

    Args:
      decay: moving-average decay in [0, 1) (PyTorch calls it ``alpha``).
      eps: > 0, added after the square root.
      initial_scale: >= 0, the starting value of ``v``.
      centered: normalise by the estimated variance instead of the second moment.
    Returns:
      an :class:`Optimizer` with :class:`RmsState` ``(nu,)``, or :class:`CenteredRmsState`
      ``(mu, nu)`` if centered.
    """
    check_decay("decay", decay)
    check_positive("eps", eps)
    check_nonnegative("initial_scale", initial_scale)

    def ema(g, a, x):
        return cast(decay, g) * a + one_minus(decay, g) * x

    def init(params):
        nu = _full_like(params, initial_scale)
        if centered:
            return CenteredRmsState(mu=_zeros_like(params), nu=nu)
        return RmsState(nu=nu)

    def update(grads, state, params=None):
        del params
        nu = jax.tree.map(lambda g, v: ema(g, v, jnp.square(g)), grads, state.nu)
        if centered:
            mu = jax.tree.map(lambda g, m: ema(g, m, g), grads, state.mu)
            # v - m^2 >= 0 in exact arithmetic; the max guards against rounding.
            var = jax.tree.map(lambda v, m: jnp.maximum(v - jnp.square(m), 0), nu, mu)
            new_state = CenteredRmsState(mu=mu, nu=nu)
        else:
            var = nu
            new_state = RmsState(nu=nu)
        updates = jax.tree.map(lambda g, v: g / (jnp.sqrt(v) + cast(eps, g)), grads, var)
        return updates, new_state

    return Optimizer(init, update)


def scale_by_lion(b1: Any = 0.9, b2: Any = 0.99) -> Optimizer:
    """Lion's scaling (Chen et al. 2023): ``u = sign(b1 m + (1-b1) g)``;
    then ``m_t = b2 m + (1-b2) g``.

    Args:
      b1: interpolation for the update direction, in [0, 1).
      b2: momentum decay, in [0, 1).
    Returns:
      an :class:`Optimizer` with :class:`LionState` ``(mu,)``, initialised to zeros.
    """
    check_decay("b1", b1)
    check_decay("b2", b2)

    def init(params):
        return LionState(mu=_zeros_like(params))

    def update(grads, state, params=None):
        del params
        updates = jax.tree.map(
            lambda g, m: jnp.sign(cast(b1, g) * m + one_minus(b1, g) * g), grads, state.mu
        )
        mu = jax.tree.map(lambda g, m: cast(b2, g) * m + one_minus(b2, g) * g, grads, state.mu)
        return updates, LionState(mu=mu)

    return Optimizer(init, update)


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

    return Optimizer(init, update)


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

    return Optimizer(init, update)


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
