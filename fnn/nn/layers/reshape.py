"""Shape-only layers: ``Flatten`` and the stand-alone ``Activation``.

    Flatten:     Y = X reshaped (N, H·W·C) row-major;   ∂L/∂X = ∂L/∂Y reshaped back
    Activation:  A = g(X);   ∂L/∂X = δ = ∂L/∂A ⊙ g'(X)   (Z = X; softmax: Jacobian-vector product)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax

from fnn.nn.layers.base import FusedActivation, Static, canonical_activation, shape_str

Array = jax.Array


@dataclass(frozen=True)
class Flatten:
    """(N, d1, ..., dk) -> (N, d1·...·dk), row-major (C order)."""

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) < 1:
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected at least 1-d")
        size = 1
        for d in input_shape:
            size *= int(d)
        return (size,)

    def init(self, key, input_shape, dtype) -> tuple[dict, dict]:
        return {}, {}

    def flops(self, input_shape: tuple) -> int:
        """A reshape: no FLOPs."""
        return 0

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        return x.reshape(x.shape[0], -1), Static(tuple(x.shape[1:])), state

    def backward(self, params, cache: Static, grad_out: Array) -> tuple[dict, Array]:
        return {}, grad_out.reshape((grad_out.shape[0],) + cache.value)


class ActivationCache(NamedTuple):
    """z: the input X (= Z).  a: A = g(X)."""

    z: Array
    a: Array


@dataclass(frozen=True)
class Activation(FusedActivation):
    """A = g(X) element-wise (softmax: over the last axis; allowed only as a net's last layer).

    Args:
      activation: activation name (positional: ``Activation("relu")``).
    """

    activation: str

    def __post_init__(self):
        object.__setattr__(self, "activation", canonical_activation(self.activation))
        self._check_activation()  # at construction

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def init(self, key, input_shape, dtype) -> tuple[dict, dict]:
        return {}, {}

    def flops(self, input_shape: tuple) -> int:
        """Forward FLOPs of one example: g on every element."""
        return self.act.flops_of(input_shape)

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        a = self.act.fn(x)
        return a, ActivationCache(x, a), state

    def backward_from_delta(self, params, cache, delta: Array) -> tuple[dict, Array]:
        """∂L/∂X = δ (Z is X). Returns ({}, δ)."""
        return {}, delta
