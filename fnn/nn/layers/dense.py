"""The dense layer with a fused activation.

Batch-first, so the notes' formulas read as written:

    forward:   Z = X W + b,   A = g(Z)
    backward:  δ = ∂L/∂Z = ∂L/∂A ⊙ g'(Z)   (the activation's own backward)
               ∂L/∂W = Xᵀ δ,   ∂L/∂b = Σ_rows δ,   ∂L/∂X = δ Wᵀ

Inputs of any rank (batch, ..., in): the layer acts on the last axis, and ∂W = Xᵀ δ, ∂b = Σ δ
sum over every leading axis (X and δ flattened to (batch·..., in) and (batch·..., out)).

Chaining layers gives the notes' recurrence δ(l) = (δ(l+1) W(l+1)ᵀ) ⊙ g'(Z(l)). The output layer
instead receives δ(L) from the loss (see :meth:`Dense.backward_from_delta`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from fnn.nn import initializers as inits
from fnn.nn.layers.base import (FusedActivation, bcast_last, canonical_activation, positive_int,
                                shape_str)

Array = jax.Array


class DenseCache(NamedTuple):
    """x: the input X (batch, ..., in).  z: Z (batch, ..., out).  a: A = g(Z) (batch, ..., out)."""

    x: Array
    z: Array
    a: Array


# Below this many input entries (batch × in) Xᵀ is materialized before ∂W = Xᵀ δ.
SMALL_TRANSPOSE = 1 << 14


def input_transpose(x: Array) -> Array:
    """Xᵀ for ∂L/∂W = Xᵀ δ: materialized for small inputs, folded into the dot otherwise.

    The one kernel choice of the dense gradient. XLA:CPU runs a small dot whose operand is a
    transposed view slowly, and under a sweep's ``vmap`` member by member; a materialized Xᵀ
    (kept by an optimization barrier) gives the dot a plain layout: a 16-member sweep of a
    2-16-16-2 net 0.81× the time. For large inputs the copy costs more than it saves (a
    784-512-512-10 step 1.03×), so Xᵀ stays a view there. Same values either way.

    Args: x (batch, in). Returns: (in, batch).
    """
    if x.size <= SMALL_TRANSPOSE:
        return jax.lax.optimization_barrier(jnp.transpose(x))
    return x.T


@dataclass(frozen=True)
class Dense(FusedActivation):
    """A = g(X W + b).

    Args:
      units: output width.
      activation: activation name (see :mod:`fnn.activations`).
      initializer: weight initializer name; ``None``: He (normal) for the ReLU family, Glorot
        (uniform) otherwise. Biases start at zero.

    Params: ``{"w": (in, units), "b": (units,)}``. Input: one example's shape (..., in), e.g.
    (in,) or (time, in); the output replaces the last axis by ``units``.
    """

    units: int
    activation: str = "identity"
    initializer: Optional[str] = None

    def __post_init__(self):  # arguments checked here, at construction (one line each)
        object.__setattr__(self, "activation", canonical_activation(self.activation))
        positive_int(self.units, "units")
        self._check_activation()

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) < 1:
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected at least 1-d"
                             f" (..., features)")
        return tuple(input_shape[:-1]) + (self.units,)

    def init(self, key: Array, input_shape: tuple, dtype) -> tuple[dict, dict]:
        """Returns ({"w": (in, units), "b": (units,)}, {}); w from the initializer, b zeros."""
        return self.init_params(key, int(input_shape[-1]), dtype), {}

    def init_params(self, key: Array, in_features: int, dtype) -> dict:
        """{"w": (in_features, units) from the initializer, "b": zeros (units,)}."""
        w = inits.get(self.init_name)(key, (in_features, self.units), dtype)
        return {"w": w, "b": jnp.zeros((self.units,), dtype)}

    def flops(self, input_shape: tuple) -> int:
        """Forward FLOPs of one example: Z = X W + b is 2·in·units (multiply-adds) + units,
        then g on the units."""
        n_in = int(input_shape[0])
        return 2 * n_in * self.units + self.units + self.act.flops_of((self.units,))

    def forward(self, params: dict, state: dict, x: Array, *, key=None, training=False,
                drop_rate=None) -> tuple[Array, DenseCache, dict]:
        """A = g(X W + b). Args: params {"w", "b"}; x (batch, ..., in). Returns (A (batch, ...,
        units), cache, state)."""
        b = params["b"][None, :] if x.ndim == 2 else bcast_last(params["b"], x.ndim)
        z = x @ params["w"] + b
        a = self.act.fn(z)
        return a, DenseCache(x, z, a), state

    def backward_from_delta(self, params: dict, cache: DenseCache,
                            delta: Array) -> tuple[dict, Array]:
        """∂L/∂W = Xᵀ δ;  ∂L/∂b = Σ_rows δ;  ∂L/∂X = δ Wᵀ.

        Args:
          params: {"w", "b"}; cache: from :meth:`forward`; delta: δ = ∂L/∂Z (batch, ..., units).
        Returns:
          ({"w": (in, units), "b": (units,)}, ∂L/∂X (batch, ..., in)); a rank > 2 input's
          leading axes are flattened first, so ∂W sums over all of them.
        """
        x, d = cache.x, delta
        if x.ndim != 2:
            x, d = x.reshape(-1, x.shape[-1]), d.reshape(-1, d.shape[-1])
        grads = {"w": input_transpose(x) @ d, "b": jnp.sum(d, axis=0)}
        return grads, delta @ params["w"].T
