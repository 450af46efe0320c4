"""A residual block: Y = X + f(X), with f a chain of layers that keeps the shape.

    backward:  ∂L/∂X = ∂L/∂Y + ∂f/∂Xᵀ ∂L/∂Y      (both paths summed)

Params: a tuple of the inner layers' params; state: a tuple of their states. Inner layer j gets
the dropout key ``fold_in(key, j)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

from fnn.nn.layers import chain
from fnn.nn.layers.base import shape_str

Array = jax.Array


@dataclass(frozen=True)
class Residual:
    """Y = X + f(X). Args: layers, the inner layers (a sequence; stored as a tuple)."""

    layers: tuple

    def __post_init__(self):
        if not isinstance(self.layers, (list, tuple)) or not self.layers:
            raise ValueError(f"layers: {self.layers!r}; expected a non-empty sequence of layers")
        object.__setattr__(self, "layers", tuple(self.layers))

    def _shapes(self, input_shape):
        return chain.shapes(self.layers, input_shape)

    def output_shape(self, input_shape: tuple) -> tuple:
        input_shape = tuple(input_shape)
        shapes = self._shapes(input_shape)
        if shapes[-1] != input_shape:
            j = next(j for j in range(len(self.layers)) if shapes[j + 1] != input_shape)
            raise ValueError(f"inner {chain.describe(j, self.layers[j])} maps"
                             f" {shape_str(shapes[j])} to {shape_str(shapes[j + 1])}; expected"
                             f" the residual's input shape {shape_str(input_shape)} at the end")
        return input_shape

    def init(self, key, input_shape, dtype) -> tuple[tuple, tuple]:
        return chain.init(self.layers, self._shapes(input_shape)[:-1], key, dtype)

    def init_state(self, input_shape, dtype) -> tuple:
        return chain.init_state(self.layers, self._shapes(input_shape)[:-1], dtype)

    def flops(self, input_shape: tuple) -> int:
        """The block's own forward FLOPs of one example: the addition X + f(X), one per element
        (the inner layers count their own; a summary adds them)."""
        n = 1
        for d in input_shape:
            n *= int(d)
        return n

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """Y = X + f(X). Returns (Y, inner caches, inner states)."""
        fx, caches, states = chain.forward(self.layers, params, state, x, key=key,
                                           training=training, drop_rate=drop_rate)
        return x + fx, caches, states

    def kinks(self, cache) -> list:
        """The inner layers' kink patterns."""
        return chain.kinks(self.layers, cache)

    def backward(self, params, cache, grad_out):
        """∂L/∂X = ∂L/∂Y + (∂f/∂X)ᵀ ∂L/∂Y. Returns (inner grads tuple, ∂L/∂X)."""
        grads, grad_f, _ = chain.backward(self.layers, params, cache, grad_out)
        return grads, grad_out + grad_f
