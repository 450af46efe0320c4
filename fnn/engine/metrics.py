"""Evaluation metrics shared by the train step and evaluation (input scaling lives with the data:
:func:`fnn.data.prepare_inputs`).

All functions are pure and jit/vmap-safe.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


Array = jax.Array


def accuracy(y_hat: Array, y: Array, *, multilabel: bool = False) -> Array:
    """Fraction of correct predictions.

    * K ≥ 2 outputs with one-hot/soft targets: argmax(ŷ) == argmax(y) (softmax, or MSE on
      one-hot targets);
    * one output unit, or ``multilabel`` (sigmoid + binary cross-entropy over K units):
      (ŷ > 0.5) == (y > 0.5), averaged over examples and units.

    Args:
      y_hat: (batch, K) network outputs.
      y: (batch, K) dense targets.
    Returns:
      scalar in [0, 1] of y_hat's dtype.
    """
    if multilabel or y_hat.shape[-1] == 1:
        correct = (y_hat > 0.5) == (y > 0.5)
    else:
        correct = jnp.argmax(y_hat, axis=-1) == jnp.argmax(y, axis=-1)
    return jnp.mean(correct.astype(y_hat.dtype))
