"""Token and learned positional embeddings (GPT-2's wte and wpe).

    Embedding:            Y[n, t] = W[X[n, t]]                  (a row lookup, X integer ids)
                          ∂L/∂W[v] = Σ_{(n,t): X[n,t] = v} ∂L/∂Y[n, t]   (scatter-add into used rows)
    PositionalEmbedding:  Y[n, t] = X[n, t] + P[t],  t < T ≤ max_len
                          ∂L/∂P[t] = Σ_n ∂L/∂Y[n, t] (rows ≥ T: 0);  ∂L/∂X = ∂L/∂Y

Both tables start as N(0, 0.02²), GPT-2's initialization. Integer ids have no gradient: the
Embedding's ``grad_in`` is ``None``, and a container passes it on (it is the first layer's).
The Embedding declares ``integer_inputs = True``: :class:`fnn.Sequential` then keeps integer
inputs integer (instead of casting them to its float dtype) and asks the layer's
``check_input`` whether an input batch is acceptable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from fnn.nn.layers.base import positive_int, shape_str

Array = jax.Array

INIT_STD = 0.02


def _table(key, shape, dtype) -> Array:
    return INIT_STD * jax.random.normal(key, shape, dtype)


@dataclass(frozen=True)
class Embedding:
    """Y = W[X]: integer ids (batch, ...) to vectors (batch, ..., features).

    Args:
      vocab_size: V, the number of ids (ids are 0 .. V − 1).
      features: D, the width of each vector.

    Params: ``{"w": (V, D)}``. Input: one example's shape, e.g. (T,), of integer ids.
    """

    vocab_size: int
    features: int
    integer_inputs: ClassVar[bool] = True

    def __post_init__(self):
        positive_int(self.vocab_size, "vocab_size")
        positive_int(self.features, "features")

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) < 1:
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected at least 1-d"
                             f" token ids, e.g. (time,)")
        return tuple(input_shape) + (self.features,)

    def init(self, key: Array, input_shape: tuple, dtype) -> tuple[dict, dict]:
        """({"w": (V, D) ~ N(0, 0.02²)}, {})."""
        return {"w": _table(key, (self.vocab_size, self.features), dtype)}, {}

    def check_input(self, x) -> None:
        """One-line ValueError unless ``x`` holds integer ids in [0, V − 1] (the range only for
        concrete arrays)."""
        dtype = jnp.result_type(x)
        if not jnp.issubdtype(dtype, jnp.integer):
            raise ValueError(f"x: dtype {dtype.name}; expected integer token ids in"
                             f" [0, {self.vocab_size - 1}] for Embedding({self.vocab_size})")
        if not isinstance(x, jax.core.Tracer) and np.size(x):
            arr = np.asarray(x)
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= self.vocab_size:
                raise ValueError(f"x: token id {lo if lo < 0 else hi} out of range; expected ids"
                                 f" in [0, {self.vocab_size - 1}] for"
                                 f" Embedding({self.vocab_size})")

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """Y = W[X]. Args: x integer (batch, ...). Returns (Y (batch, ..., D), X, state)."""
        return jnp.take(params["w"], x, axis=0), x, state

    def backward(self, params, cache, grad_out):
        """∂L/∂W = zeros(V, D) with ∂L/∂Y[n, t] added into row X[n, t] (repeats accumulate).

        Returns ({"w": (V, D)}, None): integer ids have no gradient.
        """
        d = grad_out.shape[-1]
        w = params["w"]
        dw = jnp.zeros(w.shape, grad_out.dtype).at[cache.reshape(-1)].add(
            grad_out.reshape(-1, d))
        return {"w": dw}, None


@dataclass(frozen=True)
class PositionalEmbedding:
    """Y[n, t] = X[n, t] + P[t], a learned position table (GPT-2's wpe).

    Args:
      max_len: the most positions T the table holds.

    Params: ``{"w": (max_len, D)}``. Input: one example's shape (T, D) with T ≤ max_len.
    """

    max_len: int

    def __post_init__(self):
        positive_int(self.max_len, "max_len")

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 2:
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected a 2-d input"
                             f" (time, features)")
        if input_shape[0] > self.max_len:
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected at most"
                             f" max_len={self.max_len} positions")
        return tuple(input_shape)

    def init(self, key: Array, input_shape: tuple, dtype) -> tuple[dict, dict]:
        """({"w": (max_len, D) ~ N(0, 0.02²)}, {})."""
        return {"w": _table(key, (self.max_len, int(input_shape[-1])), dtype)}, {}

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """Y = X + P[:T]. Args: x (batch, T, D). Returns (Y, None, state)."""
        t = x.shape[1]
        return x + params["w"][None, :t, :], None, state

    def backward(self, params, cache, grad_out):
        """∂L/∂P[t] = Σ_n ∂L/∂Y[n, t] for t < T, 0 beyond;  ∂L/∂X = ∂L/∂Y."""
        t = grad_out.shape[1]
        dp = jnp.sum(grad_out, axis=0)
        pad = params["w"].shape[0] - t
        if pad:
            dp = jnp.pad(dp, ((0, pad), (0, 0)))
        return {"w": dp}, grad_out
