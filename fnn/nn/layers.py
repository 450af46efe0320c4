"""Layers: a dense layer with a fused activation, and inverted dropout. Init / forward / backward.

Dense layer l (batch-first, so the notes' formulas read as written):

    forward:   X̃ = X ⊙ M                  (inverted dropout on the input, if enabled)
               Z = X̃ W + b,   A = g(Z)
    backward:  δ = ∂L/∂Z = ∂L/∂A ⊙ g'(Z)   (the activation's own backward)
               ∂L/∂W = X̃ᵀ δ,   ∂L/∂b = Σ_rows δ,   ∂L/∂X = (δ Wᵀ) ⊙ M

Chaining layers gives the notes' recurrence δ(l) = (δ(l+1) W(l+1)ᵀ) ⊙ g'(Z(l)): layer l+1 hands
``∂L/∂A(l) = δ(l+1) W(l+1)ᵀ`` down and layer l multiplies by its own g'. The output layer instead
receives δ(L) from the loss (see :meth:`Dense.backward_from_delta`).

Dropout is *inverted*: M = keep / (1 − drop_rate) with keep ~ Bernoulli(1 − drop_rate), so the
expected activation is unchanged and evaluation needs no rescaling. ``drop_rate`` is the
probability of **dropping** a unit (unlike ``jax.example_libraries.stax.Dropout``, whose
argument is a keep rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from fnn.nn import activations as acts
from fnn.nn import initializers as inits

Array = jax.Array


# --- dropout -----------------------------------------------------------------------------------
def dropout_mask(key: Array, shape: tuple[int, ...], drop_rate, dtype) -> Array:
    """The scaled inverted-dropout mask M = Bernoulli(1 − p) / (1 − p).

    Args:
      key: PRNG key.
      shape: mask shape, e.g. (batch, units).
      drop_rate: p in [0, 1), a Python float or a traced scalar.
      dtype: float dtype of the mask.
    Returns:
      ``shape`` array with entries 0 or 1/(1 − p).
    """
    keep_prob = 1 - jnp.asarray(drop_rate, dtype)
    keep = jax.random.bernoulli(key, keep_prob, shape)
    return keep.astype(dtype) / keep_prob


def dropout_forward(x: Array, mask: Array) -> Array:
    """X̃ = X ⊙ M. Args: x, mask (batch, units). Returns: (batch, units)."""
    return x * mask


def dropout_backward(grad_out: Array, mask: Array) -> Array:
    """∂L/∂X = ∂L/∂X̃ ⊙ M — the same mask as the forward pass. Returns (batch, units)."""
    return grad_out * mask


# --- dense -------------------------------------------------------------------------------------
class DenseCache(NamedTuple):
    """What the forward pass keeps for the backward pass.

    x: the (dropped-out) input X̃, (batch, in).  mask: M (batch, in) or None.
    z: pre-activation Z, (batch, out).          a: activation A = g(Z), (batch, out).
    """

    x: Array
    mask: Optional[Array]
    z: Array
    a: Array


@dataclass(frozen=True)
class Dense:
    """A dense layer with a fused activation and optional inverted dropout on its input.

    Attributes:
      in_features, out_features: weight shape (in, out).
      activation: activation name (see :mod:`fnn.activations`).
      init: weight initializer name (biases start at zero).
      dropout_input: apply dropout to the input when a dropout key is given.
    """

    in_features: int
    out_features: int
    activation: str
    init: str
    dropout_input: bool = False

    @property
    def act(self) -> acts.Activation:
        return acts.get(self.activation)

    def init_params(self, key: Array, dtype) -> dict:
        """Returns ``{"w": (in, out), "b": (out,)}``; w from ``init``, b zeros."""
        w = inits.get(self.init)(key, (self.in_features, self.out_features), dtype)
        return {"w": w, "b": jnp.zeros((self.out_features,), dtype)}

    def forward(self, params: dict, x: Array, *, key=None, drop_rate=0.0) -> tuple[Array, DenseCache]:
        """A = g(X̃ W + b).

        Args:
          params: {"w": (in, out), "b": (out,)}.
          x: (batch, in).
          key: dropout key; ``None`` (evaluation) or a layer without input dropout: no mask.
          drop_rate: drop probability (float or traced scalar).
        Returns:
          (A (batch, out), cache).
        """
        mask = None
        if key is not None and self.dropout_input:
            mask = dropout_mask(key, x.shape, drop_rate, x.dtype)
            x = dropout_forward(x, mask)
        z = x @ params["w"] + params["b"][None, :]
        a = self.act.fn(z)
        return a, DenseCache(x, mask, z, a)

    def backward(self, params: dict, cache: DenseCache, grad_a: Array) -> tuple[dict, Array]:
        """Backward from ∂L/∂A: δ = ∂L/∂A ⊙ g'(Z), then :meth:`backward_from_delta`.

        Args:
          params: {"w", "b"}; cache: from :meth:`forward`; grad_a: ∂L/∂A (batch, out).
        Returns:
          ({"w": ∂L/∂W (in, out), "b": ∂L/∂b (out,)}, ∂L/∂X (batch, in)).
        """
        return self.backward_from_delta(params, cache, self.delta(cache, grad_a))

    def delta(self, cache: DenseCache, grad_a: Array) -> Array:
        """δ = ∂L/∂Z = ∂L/∂A ⊙ g'(Z) (the activation's own backward; a Jacobian-vector product
        for softmax).

        Args:
          cache: from :meth:`forward`; grad_a: ∂L/∂A (batch, out).
        Returns:
          δ (batch, out).
        """
        return self.act.backward(cache.z, cache.a, grad_a)

    def backward_from_delta(self, params: dict, cache: DenseCache, delta: Array) -> tuple[dict, Array]:
        """Gradients from δ = ∂L/∂Z.

        ∂L/∂W = X̃ᵀ δ;  ∂L/∂b = Σ_rows δ;  ∂L/∂X = (δ Wᵀ) ⊙ M.

        Args:
          params: {"w", "b"}; cache: from :meth:`forward`; delta: δ (batch, out).
        Returns:
          ({"w": (in, out), "b": (out,)}, ∂L/∂X (batch, in)).
        """
        grads = {"w": cache.x.T @ delta, "b": jnp.sum(delta, axis=0)}
        grad_x = delta @ params["w"].T
        if cache.mask is not None:
            grad_x = dropout_backward(grad_x, cache.mask)
        return grads, grad_x
