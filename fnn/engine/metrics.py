"""Evaluation metrics and input scaling shared by the train step and evaluation.

All functions are pure and jit/vmap-safe.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn.data.augment import prepare_inputs

Array = jax.Array


def as_inputs(x: Array, dtype) -> Array:
    """Network inputs of ``dtype``: :func:`fnn.data.prepare_inputs` (uint8 images -> [0, 1]).

    Images stay uint8 on the device (4x less memory than float32) and are scaled here, inside
    the compiled step. Args: x (batch, features). Returns: (batch, features) of ``dtype``.
    """
    return prepare_inputs(x, dtype=dtype)


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
