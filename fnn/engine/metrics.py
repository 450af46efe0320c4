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


def exact_match(y_hat: Array, y: Array, *, last: int) -> Array:
    """Fraction of sequences whose last ``last`` positions are all predicted right:
    mean_n ∏_{t > T − last} [argmax ŷ_nt = argmax y_nt].

    With teacher forcing this equals greedy decoding's exact match: if every answer position's
    argmax is right given the true prefix, greedy sampling reproduces that prefix.

    Args:
      y_hat: (batch, T, K) outputs.  y: (batch, T, K) dense targets.  last: 1 ≤ last ≤ T.
    Returns:
      scalar in [0, 1] of y_hat's dtype.
    """
    right = jnp.argmax(y_hat[:, -last:], axis=-1) == jnp.argmax(y[:, -last:], axis=-1)
    return jnp.mean(jnp.all(right, axis=-1).astype(y_hat.dtype))
