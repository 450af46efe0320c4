"""Gradient accumulation: one optimizer update from the gradients of K micro-batches.

A batch of B rows is split into K micro-batches of m = B / K rows, and the objective's gradient
is evaluated on each in turn inside a ``lax.scan`` (only one micro-batch's activations are alive
at a time). The update uses their mean,

    g = (1/K) Σ_k g_k,   g_k = ∇ (1/m) Σ_{n ∈ micro-batch k} L_n  (+ the penalties' gradient),

which is exactly the gradient of the B-row batch mean, (1/B) Σ_n ∇L_n: every micro-batch has
the same m rows, so the mean of their means is the batch mean. The loss and the data loss are
averaged the same way. Only two things differ from one step on the whole batch:

* dropout draws each micro-batch's masks from its own key (split from the step's key);
* BatchNorm normalizes each micro-batch by its own statistics, and its running statistics are
  updated K times, micro-batch after micro-batch (as PyTorch does with accumulation).

Micro-batch k holds rows k, k + K, k + 2K, ... (a strided split): when a data-parallel batch is
split by rows over devices, each micro-batch keeps rows on every device.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from fnn.nn.objective import LossOutput

Array = jax.Array


def check_accumulate(accumulate, batch_size: int) -> int:
    """Validate ``accumulate`` (K ≥ 1, dividing the batch size); returns it as an int.

    Raises:
      ValueError: one line naming ``training.accumulate``, its value and what was expected.
    """
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ValueError(f"training.accumulate: {accumulate!r}; expected an integer >= 1")
    if batch_size % accumulate:
        raise ValueError(f"training.accumulate: {accumulate}; expected a divisor of "
                         f"training.batch_size = {batch_size} (each micro-batch has "
                         f"batch_size / accumulate rows)")
    return accumulate


def split(tree, k: int):
    """Split every leaf's leading axis B into (K, B/K): micro-batch j holds rows j, j+K, ...

    Args:
      tree: arrays with a common leading axis B (inputs, targets).  k: K, dividing B.
    Returns:
      the same tree with leaves of shape (K, B/K, ...).
    """
    def one(a):
        b = a.shape[0]
        return jnp.swapaxes(a.reshape((b // k, k) + a.shape[1:]), 0, 1)
    return jax.tree.map(one, tree)


def merge(tree):
    """Undo :func:`split`'s (K, m, ...) layout as (K·m, ...) rows, micro-batch after micro-batch
    (a row order, not the batch's: only for row means, such as accuracy)."""
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), tree)


def evaluate_accumulated(evaluate: Callable, params, x: Array, y: Array, *, k: int, key,
                         state) -> tuple[LossOutput, Array]:
    """The objective and mean gradient over K micro-batches of one batch.

    Args:
      evaluate: ``evaluate(params, x, y, key, state) -> LossOutput`` on one micro-batch
        (:func:`fnn.nn.objective.evaluate` with the step's options bound).
      params: the parameters.  x: prepared inputs (B, ...).  y: dense targets (B, ...).
      k: K micro-batches (K divides B).  key: the step's dropout key, or None (no dropout).
      state: the network's state; it flows through the micro-batches in order.
    Returns:
      ``(out, y)``: a :class:`LossOutput` whose loss, data loss and gradients are the means
      over the micro-batches, whose ``y_hat`` holds every row's output and whose state is the
      last micro-batch's; and the targets ``y`` in the same row order as ``y_hat``.
    """
    xs, ys = split((x, y), k)
    keys = None if key is None else jax.random.split(key, k)
    zeros = jax.tree.map(jnp.zeros_like, params)

    def body(carry, micro):
        g_sum, s = carry
        xm, ym, km = micro
        out = evaluate(params, xm, ym, km, s)
        # Σ_k g_k, accumulated in the carry: one micro-batch's activations alive at a time
        g_sum = jax.tree.map(jnp.add, g_sum, out.grads)
        return (g_sum, out.state), (out.loss, out.data_loss, out.y_hat)

    (g_sum, state), (losses, data_losses, y_hat) = jax.lax.scan(
        body, (zeros, state), (xs, ys, keys))
    grads = jax.tree.map(lambda g: g / k, g_sum)  # g = (1/K) Σ_k g_k
    out = LossOutput(jnp.mean(losses), jnp.mean(data_losses), grads, merge(y_hat), state)
    return out, merge(ys)
