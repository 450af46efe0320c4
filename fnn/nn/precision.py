"""Dtypes: the one list of parameter dtypes, and mixed precision's compute policy.

A network holds its parameters in one float dtype (:data:`DTYPES`; ``Sequential(dtype=...)``,
``model.dtype``). Mixed precision (``model.precision = "bfloat16"``,
``Trainer(..., precision="bfloat16")``) keeps those float32 *master* parameters, the optimizer
state, the loss and BatchNorm's running statistics in float32, and computes the forward pass and
the hand-written backward in bfloat16:

    W_c = bf16(W),  ŷ = f(W_c; bf16(x)) in bfloat16,  L = loss(f32(ŷ), y) in float32,
    g = f32(∂L/∂W_c) (the backward run in bfloat16),  W ← update(W, g) in float32.

bfloat16 has float32's exponent range, so unlike float16 it needs no loss scaling; its 8-bit
significand makes each product about 3 decimal digits exact, and the float32 update keeps the
small steps that bfloat16 parameters would round away.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn.nn.names import DTYPES, PRECISIONS  # the one list of each (no JAX: the config reads it)

MIXED_MASTER = "float32"  # the master parameters' dtype under mixed precision


def check_dtype(dtype, field: str = "dtype") -> str:
    """A parameter dtype name from :data:`DTYPES` (one-line ValueError otherwise)."""
    if dtype not in DTYPES:
        raise ValueError(f"{field}: {dtype!r}; expected one of: {', '.join(DTYPES)}")
    return dtype


def check_precision_name(precision, field: str = "precision") -> str:
    """A precision name from :data:`PRECISIONS` (one-line ValueError otherwise)."""
    if precision not in PRECISIONS:
        raise ValueError(f"{field}: {precision!r}; expected one of: {', '.join(PRECISIONS)}"
                         f" (full: compute in the parameter dtype)")
    return precision


def check_precision(precision, net_dtype, field: str = "precision") -> str:
    """Validate a precision for a network of ``net_dtype``; returns it.

    Raises:
      ValueError: a precision not in :data:`PRECISIONS`, or mixed precision over master
        parameters that are not float32.
    """
    check_precision_name(precision, field)
    if precision != "full" and jnp.dtype(net_dtype) != jnp.dtype(MIXED_MASTER):
        raise ValueError(f"{field}: {precision!r} with parameters in {jnp.dtype(net_dtype).name};"
                         f" expected float32 master parameters (model.dtype = 'float32')")
    return precision


def compute_dtype(precision):
    """The dtype the forward and backward run in: bfloat16, or ``None`` (the parameters')."""
    return None if precision in (None, "full") else jnp.dtype(precision)


def cast_floats(tree, dtype):
    """Every floating leaf of ``tree`` cast to ``dtype``; integer leaves (token ids, counts)
    and ``None`` are left alone."""
    def one(a):
        a = jnp.asarray(a)
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a
    return jax.tree.map(one, tree)
