"""L1 and L2 weight penalties with their hand-written gradients.

Penalties apply to **weights only** ("w" leaves: dense and conv kernels, at any depth of the
params pytree, Residual tuples included), never to biases or normalization params:

* L1:  R = λ₁ Σ_l ‖W(l)‖₁ = λ₁ Σ |w|        ∂R/∂W = λ₁ sign(W)   (sign(0) = 0)
* L2:  R = λ₂ Σ_l ‖W(l)‖² = λ₂ Σ w²         ∂R/∂W = 2 λ₂ W

Note the L2 convention: λ‖W‖² (no ½), so its gradient carries the factor 2. The penalty is added
to the data loss inside the same objective that both gradient modes differentiate. λ may be a
Python float (0.0 skips the computation) or a traced scalar (sweeps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _active(coef) -> bool:
    return isinstance(coef, jax.Array) or float(coef) != 0.0


def _abs(w: Array) -> Array:
    # |w| = w·sign(w) exactly, written so that jax.grad takes sign(0) = 0 at w = 0 like
    # penalty_grad (jnp.abs has slope 1 at 0, so autodiff and manual L1 gradients disagreed on
    # zero weights, e.g. initializer="zeros").
    return w * jnp.sign(w)


def _is_weight(path) -> bool:
    last = path[-1] if path else None
    return isinstance(last, jax.tree_util.DictKey) and last.key == "w"


def weights(params) -> list[Array]:
    """The "w" leaves (dense and conv kernels) of any params pytree, in tree order; biases and
    normalization params ("b", "scale", "bias") are not weights."""
    return [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params) if _is_weight(path)]


def _dtype(params, ws):
    if ws:
        return ws[0].dtype
    leaves = jax.tree.leaves(params)
    return leaves[0].dtype if leaves else jnp.float32


def penalty(params, *, l1=0.0, l2=0.0) -> Array:
    """R(params) = λ₁ Σ|W| + λ₂ Σ W² over the "w" leaves.

    Args:
      params: a params pytree: a tuple of {"w", "b"} dicts (MLP), or any nesting of tuples and
        dicts (Sequential: {} for parameterless layers, tuples for Residual).
      l1, l2: λ₁, λ₂ (floats or traced scalars).
    Returns:
      scalar of the weights' dtype (0 when both are Python zeros).
    """
    ws = weights(params)
    dtype = _dtype(params, ws)
    total = jnp.zeros((), dtype)
    if not ws:
        return total
    if _active(l1):
        total = total + jnp.asarray(l1, dtype) * sum(jnp.sum(_abs(w)) for w in ws)
    if _active(l2):
        total = total + jnp.asarray(l2, dtype) * sum(jnp.sum(jnp.square(w)) for w in ws)
    return total


def penalty_grad(params, *, l1=0.0, l2=0.0):
    """∂R/∂params: λ₁ sign(W) + 2 λ₂ W on "w" leaves, 0 on every other leaf.

    Args:
      params: a params pytree (see :func:`penalty`).
      l1, l2: λ₁, λ₂.
    Returns:
      a pytree like ``params``; ``None`` when both coefficients are Python zeros.
    """
    if not (_active(l1) or _active(l2)):
        return None
    dtype = _dtype(params, weights(params))

    def grad(path, leaf):
        if not _is_weight(path):
            return jnp.zeros_like(leaf)
        g = jnp.zeros_like(leaf)
        if _active(l1):
            g = g + jnp.asarray(l1, dtype) * jnp.sign(leaf)  # ∂(λ₁|w|)/∂w = λ₁ sign(w)
        if _active(l2):
            g = g + 2 * jnp.asarray(l2, dtype) * leaf  # ∂(λ₂ w²)/∂w = 2 λ₂ w
        return g

    return jax.tree_util.tree_map_with_path(grad, params)
