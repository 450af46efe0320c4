"""n copies of one layer, their params stacked on a leading axis, run by ``lax.scan``.

    forward:   X(0) = X;  X(i+1) = f(θ_i, X(i)),  i = 0 .. n − 1       (lax.scan over θ)
    backward:  G(n) = ∂L/∂Y;  ∂L/∂θ_i, G(i) = f.backward(θ_i, cache_i, G(i+1))   (reverse scan)

One traced copy of the layer serves every depth, so compile time does not grow with n. Params
and state: the layer's, with a leading axis n on every leaf. Copy i gets the dropout key
``fold_in(key, i)``; the layer must keep the shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from fnn.nn.layers import chain
from fnn.nn.layers.base import positive_int, shape_str

Array = jax.Array


def _stack(trees: list):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


@dataclass(frozen=True)
class Repeat:
    """Y = f_θ(n−1)(... f_θ(0)(X)). Args: layer (one layer that keeps the shape), n ≥ 1."""

    layer: Any
    n: int

    def __post_init__(self):
        positive_int(self.n, "n")
        missing = [m for m in ("output_shape", "init", "forward", "backward")
                   if not callable(getattr(self.layer, m, None))]
        if missing:
            raise ValueError(f"layer: {self.layer!r} is not a layer; expected the methods"
                             f" output_shape, init, forward, backward")

    @property
    def layers(self) -> tuple:
        """The repeated layer (Sequential finds Dropout layers through ``layers``)."""
        return (self.layer,)

    def output_shape(self, input_shape: tuple) -> tuple:
        input_shape = tuple(input_shape)
        out = chain.shapes((self.layer,), input_shape)[-1]
        if out != input_shape:
            raise ValueError(f"{type(self.layer).__name__} maps {shape_str(input_shape)} to"
                             f" {shape_str(out)}; expected it to keep the shape to be repeated")
        return input_shape

    def init(self, key, input_shape, dtype) -> tuple:
        """The layer's (params, state) for n keys, each leaf stacked to (n, ...)."""
        pairs = [self.layer.init(k, input_shape, dtype) for k in jax.random.split(key, self.n)]
        return _stack([p for p, _ in pairs]), _stack([s for _, s in pairs])

    def unroll(self, params) -> tuple:
        """The n copies as (layer, params) pairs, copy i's params every leaf's [i]: the same
        function as a chain of n layers (the analysis shows one row per copy). Anything stacked
        like the params splits the same way: their gradients, and :meth:`forward`'s cache
        (copy i's cache)."""
        return tuple((self.layer, jax.tree.map(lambda a, i=i: a[i], params))
                     for i in range(self.n))

    def init_state(self, input_shape, dtype):
        one = chain.init_state((self.layer,), (tuple(input_shape),), dtype)[0]
        return _stack([one] * self.n)

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """X(n) by a scan over the stacked params. Returns (Y, stacked caches, stacked states)."""
        keys = None if key is None else jax.vmap(lambda i: jax.random.fold_in(key, i))(
            jnp.arange(self.n))

        def step(h, xs):
            p, s, k = xs
            h, cache, s = self.layer.forward(p, s, h, key=k, training=training,
                                             drop_rate=drop_rate)
            return h, (cache, s)

        y, (caches, states) = lax.scan(step, x, (params, state, keys))
        return y, caches, states

    def backward(self, params, cache, grad_out):
        """G(i) from G(i+1) by a reverse scan. Returns (stacked grads like params, ∂L/∂X)."""

        def step(g, xs):
            p, c = xs
            grads, g = self.layer.backward(p, c, g)
            return g, grads

        dx, grads = lax.scan(step, grad_out, (params, cache), reverse=True)
        return grads, dx
