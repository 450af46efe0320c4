"""L1 and L2 weight penalties with their hand-written gradients.

Penalties apply to **weights only** ("w" leaves), never to biases:

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


def penalty(params, *, l1=0.0, l2=0.0) -> Array:
    """R(params) = λ₁ Σ|W| + λ₂ Σ W² over the "w" leaves.

    Args:
      params: tuple of {"w", "b"} dicts.
      l1, l2: λ₁, λ₂ (floats or traced scalars).
    Returns:
      scalar of the params' dtype (0 when both are Python zeros).
    """
    dtype = params[0]["w"].dtype
    total = jnp.zeros((), dtype)
    if _active(l1):
        total = total + jnp.asarray(l1, dtype) * sum(jnp.sum(_abs(p["w"])) for p in params)
    if _active(l2):
        total = total + jnp.asarray(l2, dtype) * sum(jnp.sum(jnp.square(p["w"])) for p in params)
    return total


def penalty_grad(params, *, l1=0.0, l2=0.0):
    """∂R/∂params: λ₁ sign(W) + 2 λ₂ W on weights, 0 on biases.

    Args:
      params: tuple of {"w", "b"} dicts.
      l1, l2: λ₁, λ₂.
    Returns:
      a pytree like ``params``; ``None`` when both coefficients are Python zeros.
    """
    if not (_active(l1) or _active(l2)):
        return None
    dtype = params[0]["w"].dtype
    out = []
    for p in params:
        g = jnp.zeros_like(p["w"])
        if _active(l1):
            g = g + jnp.asarray(l1, dtype) * jnp.sign(p["w"])  # ∂(λ₁|w|)/∂w = λ₁ sign(w)
        if _active(l2):
            g = g + 2 * jnp.asarray(l2, dtype) * p["w"]  # ∂(λ₂ w²)/∂w = 2 λ₂ w
        out.append({"w": g, "b": jnp.zeros_like(p["b"])})
    return tuple(out)
