"""The optimizers' moment-based scalings, each beside its state: Adam, Adamax, Adagrad's sum of
squares, RMSProp (plain and centered) and Lion. Each is an :class:`~fnn.optim.base.Optimizer`
combined with the building blocks of :mod:`fnn.optim.transforms` by :func:`~fnn.optim.base.chain`.

Notation as in :mod:`fnn.optim.transforms`: ``g`` the incoming update, ``u`` the outgoing one,
``t = 1, 2, ...`` the step number. Every state leaf keeps the dtype of its parameter leaf; step
counters are int32. Hyperparameters may be Python floats or 0-d JAX arrays (tracers too).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn.optim.base import (
    Optimizer,
    PyTree,
    bias_correction,
    cast,
    full_like,
    zeros_like,
    one_minus,
    check_decay,
    check_nonnegative,
    check_positive,
    safe_increment,
)

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
            count=jnp.zeros((), jnp.int32), mu=zeros_like(params), nu=zeros_like(params)
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

    return Optimizer(init, update, elementwise=True)


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
            count=jnp.zeros((), jnp.int32), mu=zeros_like(params), nu=zeros_like(params)
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

    return Optimizer(init, update, elementwise=True)


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
        return AdagradState(sum_of_squares=full_like(params, initial_accumulator_value))

    def update(grads, state, params=None):
        del params
        s = jax.tree.map(lambda g, s: s + jnp.square(g), grads, state.sum_of_squares)
        updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + cast(eps, g)), grads, s)
        return updates, AdagradState(sum_of_squares=s)

    return Optimizer(init, update, elementwise=True)


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
        nu = full_like(params, initial_scale)
        if centered:
            return CenteredRmsState(mu=zeros_like(params), nu=nu)
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

    return Optimizer(init, update, elementwise=True)


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
        return LionState(mu=zeros_like(params))

    def update(grads, state, params=None):
        del params
        updates = jax.tree.map(
            lambda g, m: jnp.sign(cast(b1, g) * m + one_minus(b1, g) * g), grads, state.mu
        )
        mu = jax.tree.map(lambda g, m: cast(b2, g) * m + one_minus(b2, g) * g, grads, state.mu)
        return updates, LionState(mu=mu)

    return Optimizer(init, update, elementwise=True)
