"""Weight initializers: ``init(key, shape, dtype) -> array``.

For a dense weight of shape (fan_in, fan_out):

* ``glorot_uniform``: U(−r, r), r = √(6 / (fan_in + fan_out))      (Glorot & Bengio 2010)
* ``glorot_normal``:  N(0, σ²), σ = √(2 / (fan_in + fan_out))
* ``he_uniform``:     U(−r, r), r = √(6 / fan_in)                  (He et al. 2015)
* ``he_normal``:      N(0, σ²), σ = √(2 / fan_in)
* ``lecun_normal``:   N(0, σ²), σ = √(1 / fan_in)
* ``zeros``:          0 (biases; a whole network of zeros cannot break symmetry)

Normal variants are plain (untruncated) normals. :func:`default_for` picks He for ReLU-family
layers and Glorot for tanh / sigmoid / softmax / identity.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from fnn.nn import names
from fnn.util import registry

Array = jax.Array
Initializer = Callable[..., Array]


def _fans(shape) -> tuple[int, int]:
    if len(shape) != 2:
        raise ValueError(f"initializer: shape {tuple(shape)}; expected a 2-d (fan_in, fan_out)")
    return int(shape[0]), int(shape[1])


def _uniform(key, shape, dtype, r: float) -> Array:
    return jax.random.uniform(key, shape, dtype, minval=-r, maxval=r)


def _normal(key, shape, dtype, std: float) -> Array:
    return std * jax.random.normal(key, shape, dtype)


def glorot_uniform(key, shape, dtype=jnp.float32) -> Array:
    """U(−r, r), r = √(6/(fan_in+fan_out)). Args: key, shape (fan_in, fan_out). Returns: (fan_in, fan_out)."""
    fi, fo = _fans(shape)
    return _uniform(key, shape, dtype, math.sqrt(6.0 / (fi + fo)))


def glorot_normal(key, shape, dtype=jnp.float32) -> Array:
    """N(0, 2/(fan_in+fan_out)). Args: key, shape (fan_in, fan_out). Returns: (fan_in, fan_out)."""
    fi, fo = _fans(shape)
    return _normal(key, shape, dtype, math.sqrt(2.0 / (fi + fo)))


def he_uniform(key, shape, dtype=jnp.float32) -> Array:
    """U(−r, r), r = √(6/fan_in). Args: key, shape (fan_in, fan_out). Returns: (fan_in, fan_out)."""
    fi, _ = _fans(shape)
    return _uniform(key, shape, dtype, math.sqrt(6.0 / fi))


def he_normal(key, shape, dtype=jnp.float32) -> Array:
    """N(0, 2/fan_in). Args: key, shape (fan_in, fan_out). Returns: (fan_in, fan_out)."""
    fi, _ = _fans(shape)
    return _normal(key, shape, dtype, math.sqrt(2.0 / fi))


def lecun_normal(key, shape, dtype=jnp.float32) -> Array:
    """N(0, 1/fan_in). Args: key, shape (fan_in, fan_out). Returns: (fan_in, fan_out)."""
    fi, _ = _fans(shape)
    return _normal(key, shape, dtype, math.sqrt(1.0 / fi))


def zeros(key, shape, dtype=jnp.float32) -> Array:
    """All zeros of ``shape`` (the key is ignored)."""
    return jnp.zeros(shape, dtype)


INITIALIZERS: dict[str, Initializer] = registry.table("initializer", names.INITIALIZERS, {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "lecun_normal": lecun_normal,
    "zeros": zeros,
})
ALIASES = names.INITIALIZER_ALIASES  # the list and the aliases: fnn.nn.names (no JAX)


def get(name: str) -> Initializer:
    """Look up an initializer by name. Raises ValueError listing the valid names."""
    return registry.lookup("initializer", name, INITIALIZERS, ALIASES)


def canonical_name(name: str) -> str:
    """The registry name of ``name`` (resolving aliases); raises like :func:`get`."""
    return registry.canonical("initializer", name, INITIALIZERS, ALIASES)


def default_for(activation: str) -> str:
    """He (normal) for the ReLU family, Glorot (uniform) for everything else."""
    return "he_normal" if activation in ("relu", "leaky_relu") else "glorot_uniform"
