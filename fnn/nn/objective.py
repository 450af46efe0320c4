"""The training objective and its gradient, by hand (the notes' backprop) or by ``jax.grad``.

    objective(params) = loss(ŷ, y) + λ₁ Σ|W| + λ₂ Σ W²,   ŷ = net.apply(params, x, key=key)

``mode="manual"`` runs the forward pass with caches, then :meth:`fnn.MLP.backward` (the delta
recurrence) plus the penalties' hand-written gradients. ``mode="autodiff"`` applies
``jax.value_and_grad`` to the very same objective. The same dropout ``key`` gives the same masks in
both modes, so the two gradients are of one function and must agree to rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn.nn import losses as losses_mod
from fnn.nn import regularizers

Array = jax.Array
MODES = ("manual", "autodiff")


class LossOutput(NamedTuple):
    """objective value, gradients and the forward outputs of one evaluation.

    loss: scalar objective (data loss + penalty).  data_loss: scalar data loss only.
    grads: pytree like params.  y_hat: (batch, K) network outputs.
    """

    loss: Array
    data_loss: Array
    grads: tuple
    y_hat: Array


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: {mode!r}; expected one of: {', '.join(MODES)}")


def prepare_batch(net, loss, x, y):
    """Validate a batch and bring it to (batch, features), (batch, K) dense targets.

    A single example (x of shape (features,)) is treated as a batch of one, so
    ``jax.vmap(loss_and_grad)`` over examples gives per-example gradients.

    Returns:
      (x (batch, features), y (batch, K), squeezed) where ``squeezed`` says a batch axis was added.
    Raises:
      ValueError: bad shapes, non-finite inputs, out-of-range labels, bad loss pairing.
    """
    loss = losses_mod.get(loss)
    losses_mod.check_pairing(loss, net.output, net.sizes[-1])
    x = x if isinstance(x, jax.Array) else jnp.asarray(x)
    y = y if isinstance(y, jax.Array) else jnp.asarray(y)
    squeezed = x.ndim == 1
    if squeezed:
        x = x[None, :]
        y = y[None] if y.ndim == 0 else y[None, ...]
    net.check_input(x)
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"y: shape {tuple(y.shape)} does not match x of shape {tuple(x.shape)}; expected"
            f" {x.shape[0]} targets"
        )
    dtype = jnp.dtype(net.dtype)
    return x, losses_mod.prepare_targets(loss, y, net.sizes[-1], dtype), squeezed


def objective(net, loss, params, x, y, *, key=None, l1=0.0, l2=0.0, drop_rate=None):
    """The scalar objective for prepared (x, y). Returns (objective, (data loss, ŷ))."""
    loss = losses_mod.get(loss)
    y_hat, caches = net.forward(params, x, key=key, drop_rate=drop_rate)
    data = loss.value(caches[-1].z, y_hat, y)
    return data + regularizers.penalty(params, l1=l1, l2=l2), (data, y_hat)


def evaluate(net, loss, params, x, y, *, mode="manual", key=None, l1=0.0, l2=0.0,
             drop_rate=None) -> LossOutput:
    """Objective, gradients and outputs for a prepared batch (no validation; jit-friendly).

    Args:
      net: :class:`fnn.MLP`.  loss: a Loss or its name.  params: pytree.
      x: (batch, features).  y: dense (batch, K) targets.
      mode: "manual" (hand-written backprop) or "autodiff" (``jax.grad``).
      key: dropout key or None.  l1, l2: penalty coefficients.  drop_rate: dropout override.
    Returns:
      :class:`LossOutput`.
    """
    loss = losses_mod.get(loss)
    if mode == "manual":
        y_hat, caches = net.forward(params, x, key=key, drop_rate=drop_rate)
        data = loss.value(caches[-1].z, y_hat, y)
        value = data + regularizers.penalty(params, l1=l1, l2=l2)
        grads = net.backward(params, caches, loss, y)
        reg = regularizers.penalty_grad(params, l1=l1, l2=l2)
        if reg is not None:
            grads = jax.tree.map(jnp.add, grads, reg)
        return LossOutput(value, data, grads, y_hat)
    check_mode(mode)
    (value, (data, y_hat)), grads = jax.value_and_grad(objective, argnums=2, has_aux=True)(
        net, loss, params, x, y, key=key, l1=l1, l2=l2, drop_rate=drop_rate
    )
    return LossOutput(value, data, grads, y_hat)


def loss_and_grad(net, loss, params, x, y, *, mode="manual", key=None, l1=0.0, l2=0.0,
                  drop_rate=None):
    """The objective and its gradient with respect to ``params``.

    Args:
      net: :class:`fnn.MLP`.
      loss: "mse", "binary_cross_entropy" or "cross_entropy".
      params: from ``net.init``.
      x: (batch, features), or one example (features,).
      y: integer labels (batch,), or targets (batch, K) (one-hot for cross-entropy), or
        (batch,) for a 1-unit output.
      mode: "manual" — the notes' backprop by hand; "autodiff" — ``jax.grad``.
      key: dropout key; the same key gives the same masks in both modes. ``None``: no dropout.
      l1, l2: weight penalties λ₁ Σ|W| and λ₂ Σ W² (weights only).
      drop_rate: overrides ``net.drop_rate`` (may be traced).
    Returns:
      (loss scalar, grads pytree like params).
    Raises:
      ValueError: unknown mode / loss, invalid loss-output pairing, bad shapes or labels,
        non-finite inputs.
    """
    check_mode(mode)
    loss = losses_mod.get(loss)
    net.check_params(params)
    x, y, _ = prepare_batch(net, loss, x, y)
    out = evaluate(net, loss, params, x, y, mode=mode, key=key, l1=l1, l2=l2, drop_rate=drop_rate)
    return out.loss, out.grads
