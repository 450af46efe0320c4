"""Batch and layer normalization, with the closed-form backward.

Both normalize, then apply a per-channel affine map (scale γ, bias β over the last axis C):

    μ, σ² = mean, biased variance over the reduced axes;  σ = √(σ² + eps);  X̂ = (X − μ)/σ
    Y = γ ⊙ X̂ + β

    backward (N = number of reduced elements, sums over the reduced axes):
    dX̂ = dY ⊙ γ;   dγ = Σ dY ⊙ X̂;   dβ = Σ dY
    dX = (1/(N σ)) (N·dX̂ − Σ dX̂ − X̂ ⊙ Σ(dX̂ ⊙ X̂))

BatchNorm reduces over every axis but the last (batch and space). In training it uses the batch
statistics and returns the new running statistics (Keras' convention, with the *biased* batch
variance):  mean_r ← m·mean_r + (1 − m)·μ_B,  var_r ← m·var_r + (1 − m)·σ²_B  (m = momentum).
In evaluation (``training=False``) it uses the running statistics, returns the state unchanged,
and its backward is the affine one: dX = dY ⊙ γ / √(var_r + eps).

LayerNorm reduces over the last axis only (each example and position on its own), the same
formulas with N = C, in training and evaluation alike; it has no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn.nn.layers.base import bcast_last, shape_str

Array = jax.Array


class NormCache(NamedTuple):
    """Batch statistics were used. xhat: X̂ (like X).  inv_std: 1/σ (keepdims shape)."""

    xhat: Array
    inv_std: Array


class AffineCache(NamedTuple):
    """Fixed (running) statistics were used. xhat: X̂.  inv_std: 1/σ_r (1, ..., 1, C)."""

    xhat: Array
    inv_std: Array


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _check_eps(eps) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < float("inf"):
        raise ValueError(f"eps: {eps!r}; expected a positive finite number")


def _affine_params(input_shape, dtype) -> dict:
    c = int(input_shape[-1])
    return {"scale": jnp.ones((c,), dtype), "bias": jnp.zeros((c,), dtype)}


def _normalize(x: Array, axes: tuple, eps) -> tuple[Array, Array, Array, Array]:
    mu = jnp.mean(x, axis=axes, keepdims=True)
    centered = x - mu
    var = jnp.mean(centered * centered, axis=axes, keepdims=True)  # biased
    inv_std = jax.lax.rsqrt(var + eps)
    return centered * inv_std, inv_std, mu, var


def _norm_backward(params: dict, cache, grad_out: Array, axes: tuple) -> tuple[dict, Array]:
    xhat, inv_std = cache
    nd = grad_out.ndim
    param_axes = tuple(range(nd - 1))
    grads = {"scale": jnp.sum(grad_out * xhat, axis=param_axes),  # dγ = Σ dY ⊙ X̂
             "bias": jnp.sum(grad_out, axis=param_axes)}  # dβ = Σ dY
    dxhat = grad_out * bcast_last(params["scale"], nd)  # dX̂ = dY ⊙ γ
    if isinstance(cache, AffineCache):
        return grads, dxhat * inv_std  # dX = dX̂ / σ_r
    n = 1
    for a in axes:
        n *= grad_out.shape[a]
    s1 = jnp.sum(dxhat, axis=axes, keepdims=True)
    s2 = jnp.sum(dxhat * xhat, axis=axes, keepdims=True)
    # dX = (1/(N σ)) (N·dX̂ − Σ dX̂ − X̂ ⊙ Σ(dX̂ ⊙ X̂))
    return grads, (inv_std / n) * (n * dxhat - s1 - xhat * s2)


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalization over every axis but the last (module docstring).

    Args:
      momentum: m of the running averages (Keras' convention: the weight of the old value).
      eps: added to the variance.

    Params: ``{"scale": ones (C,), "bias": zeros (C,)}``; state ``{"mean": zeros (C,),
    "var": ones (C,)}``.
    """

    momentum: float = 0.99
    eps: float = 1e-5

    def __post_init__(self):  # arguments checked at construction
        m = self.momentum
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0.0 <= m <= 1.0:
            raise ValueError(f"momentum: {m!r}; expected a number in [0, 1]")
        _check_eps(self.eps)

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) < 1:
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected at least 1-d")
        return tuple(input_shape)

    def init_state(self, input_shape: tuple, dtype) -> dict:
        c = int(input_shape[-1])
        return {"mean": jnp.zeros((c,), dtype), "var": jnp.ones((c,), dtype)}

    def init(self, key, input_shape, dtype) -> tuple[dict, dict]:
        return _affine_params(input_shape, dtype), self.init_state(input_shape, dtype)

    def flops(self, input_shape: tuple) -> int:
        """Forward FLOPs of one example in evaluation: (X − mean)·(1/σ_r)·γ + β is 4 per
        element, var + eps 1 per channel (the rsqrt is a transcendental)."""
        return 4 * _size(input_shape) + int(input_shape[-1])

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """Y = γ ⊙ X̂ + β. Args: x (N, ..., C). Returns (Y, cache, new state)."""
        nd = x.ndim
        axes = tuple(range(nd - 1))
        if training:
            xhat, inv_std, mu, var = _normalize(x, axes, self.eps)
            m = self.momentum
            # in the state's own dtype: float32 statistics under bfloat16 compute (fnn.nn.precision)
            sd = state["mean"].dtype
            new_state = {"mean": m * state["mean"] + (1 - m) * mu.reshape(-1).astype(sd),
                         "var": m * state["var"] + (1 - m) * var.reshape(-1).astype(sd)}
            cache = NormCache(xhat, inv_std)
        else:
            inv_std = bcast_last(jax.lax.rsqrt(state["var"] + self.eps), nd)
            xhat = (x - bcast_last(state["mean"], nd)) * inv_std
            new_state = state
            cache = AffineCache(xhat, inv_std)
        y = bcast_last(params["scale"], nd) * xhat + bcast_last(params["bias"], nd)
        return y, cache, new_state

    def backward(self, params, cache, grad_out):
        """Closed form (module docstring). Returns ({"scale", "bias"}, ∂L/∂X)."""
        return _norm_backward(params, cache, grad_out, tuple(range(grad_out.ndim - 1)))


@dataclass(frozen=True)
class LayerNorm:
    """Normalization over the last axis (module docstring). Args: eps.

    Params: ``{"scale": ones (C,), "bias": zeros (C,)}``; no state.
    """

    eps: float = 1e-5

    def __post_init__(self):
        _check_eps(self.eps)  # at construction

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) < 1:
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected at least 1-d")
        return tuple(input_shape)

    def init(self, key, input_shape, dtype) -> tuple[dict, dict]:
        return _affine_params(input_shape, dtype), {}

    def flops(self, input_shape: tuple) -> int:
        """Forward FLOPs of one example: 8 per element (two means, centering, squaring,
        scaling by 1/σ, γ, β) and 2 per row (the divisions of the means)."""
        n = _size(input_shape)
        return 8 * n + 2 * (n // int(input_shape[-1]))

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """Y = γ ⊙ X̂ + β with per-row statistics. Returns (Y, cache, state)."""
        nd = x.ndim
        xhat, inv_std, _, _ = _normalize(x, (nd - 1,), self.eps)
        y = bcast_last(params["scale"], nd) * xhat + bcast_last(params["bias"], nd)
        return y, NormCache(xhat, inv_std), state

    def backward(self, params, cache, grad_out):
        """Closed form with N = C. Returns ({"scale", "bias"}, ∂L/∂X)."""
        return _norm_backward(params, cache, grad_out, (grad_out.ndim - 1,))
