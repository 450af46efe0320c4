"""Inverted dropout: the mask formulas and the ``Dropout`` layer.

    forward:   X̃ = X ⊙ M,   M = Bernoulli(1 − p) / (1 − p)     (training, with a key)
    backward:  ∂L/∂X = ∂L/∂X̃ ⊙ M                               (the same mask)

Dropout is *inverted*: the expected activation is unchanged, so evaluation needs no rescaling.
``p = drop_rate`` is the probability of **dropping** a unit (unlike
``jax.example_libraries.stax.Dropout``, whose argument is a keep rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

Array = jax.Array


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
    """X̃ = X ⊙ M. Args: x, mask (same shape). Returns: that shape."""
    return x * mask


def dropout_backward(grad_out: Array, mask: Array) -> Array:
    """∂L/∂X = ∂L/∂X̃ ⊙ M — the same mask as the forward pass. Returns the mask's shape."""
    return grad_out * mask


def check_rate(rate, name: str = "rate") -> float:
    """``rate`` as a float if it is a probability in [0, 1); else a one-line ValueError."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: {rate!r}; expected a probability in [0, 1)")
    return float(rate)


def dropout_active(key, training: bool, rate) -> bool:
    """Masks are drawn only with a key, in training, and for a rate that is traced or > 0."""
    if key is None or not training:
        return False
    return isinstance(rate, jax.Array) or float(rate) > 0.0


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout of its input, any shape (see the module docstring).

    Args:
      rate: drop probability p in [0, 1). ``forward(..., drop_rate=q)`` uses q instead when not
        None (q may be traced).
    """

    rate: float = 0.5

    def __post_init__(self):
        check_rate(self.rate)  # at construction: Dropout(1.0) is refused here

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def init(self, key, input_shape, dtype) -> tuple[dict, dict]:
        return {}, {}

    def flops(self, input_shape: tuple) -> int:
        """0: the forward of evaluation (what the summary counts) is the identity."""
        return 0

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """Y = X ⊙ M in training with a key, else Y = X. Returns (Y, mask or None, state)."""
        rate = self.rate if drop_rate is None else drop_rate
        if not dropout_active(key, training, rate):
            return x, None, state
        mask = dropout_mask(key, x.shape, rate, x.dtype)
        return dropout_forward(x, mask), mask, state

    def backward(self, params, cache, grad_out):
        """∂L/∂X = ∂L/∂Y ⊙ M (identity without a mask). Returns ({}, ∂L/∂X)."""
        return {}, grad_out if cache is None else dropout_backward(grad_out, cache)
