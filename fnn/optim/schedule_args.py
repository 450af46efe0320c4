"""What the learning-rate schedules share: scalar coercion of values and step counts, and the
checks of their static step arguments (``ValueError`` naming the argument and the value).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def float_dtype():
    """The default float dtype: float32, or float64 under x64."""
    return jnp.result_type(float)


def as_value(v: Any) -> jax.Array:
    """A schedule value (float or 0-d array, maybe traced) in the default float dtype."""
    return jnp.asarray(v).astype(float_dtype())


def as_count(count: Any) -> jax.Array:
    """The step count as a 0-d float array of the default float dtype."""
    return jnp.asarray(count).astype(float_dtype())


def is_number(x: Any) -> bool:
    """A Python or NumPy number that is not a bool (a value checkable on the host)."""
    return isinstance(x, (numbers.Number, np.generic)) and not isinstance(x, bool)


def check_steps(name: str, value: Any, *, positive: bool) -> None:
    """``value`` must be a Python int, > 0 (``positive``) or >= 0; else a ValueError naming it."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if (value <= 0) if positive else (value < 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")


def check_float(name: str, value: Any, ok: Callable[[float], bool], expected: str) -> None:
    """A host number ``value`` must satisfy ``ok``; a traced value is not checked."""
    if is_number(value) and not ok(float(value)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def check_boundaries(boundaries: Sequence[int]) -> None:
    """Step boundaries must be non-negative ints in strictly increasing order."""
    for i, b in enumerate(boundaries):
        check_steps(f"boundaries[{i}]", b, positive=False)
    for i in range(1, len(boundaries)):
        if boundaries[i] <= boundaries[i - 1]:
            raise ValueError(
                f"boundaries must be strictly increasing, got {list(boundaries)!r} "
                f"(boundaries[{i}]={boundaries[i]} <= boundaries[{i - 1}]={boundaries[i - 1]})"
            )


def check_pieces(name: str, pieces: Sequence[Any], boundaries: Sequence[int]) -> list:
    """Check boundaries and that there is one more piece than boundaries; returns the list."""
    boundaries = list(boundaries)
    check_boundaries(boundaries)
    if len(pieces) != len(boundaries) + 1:
        raise ValueError(
            f"{name} must have len(boundaries) + 1 = {len(boundaries) + 1} entries, "
            f"got {len(pieces)}"
        )
    return boundaries


def cos_anneal(start: jax.Array, end: jax.Array, frac: jax.Array) -> jax.Array:
    """``end + (start - end) (1 + cos(pi frac)) / 2`` for frac in [0, 1]."""
    return end + (start - end) * 0.5 * (1 + jnp.cos(math.pi * frac))
