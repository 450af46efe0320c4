"""The training objective and its gradient, by hand (the notes' backprop) or by ``jax.grad``.

    objective(params) = loss(ŷ, y) + λ₁ Σ|W| + λ₂ Σ W²,   ŷ = net.apply(params, x, key=key)

``mode="manual"`` runs the forward pass with caches, then the network's own ``backward`` (the
delta recurrence, :meth:`fnn.MLP.backward` / :meth:`fnn.Sequential.backward`) plus the penalties'
hand-written gradients. ``mode="autodiff"`` applies
``jax.value_and_grad`` to the very same objective. The same dropout ``key`` gives the same masks in
both modes, so the two gradients are of one function and must agree to rounding.

The network is used only through the network protocol (:mod:`fnn.nn.protocol`). Its state
(BatchNorm's running statistics) goes in and comes out; the gradient is the training-mode one
(batch statistics), and :func:`loss_and_grad` starts from ``net.init_state()``, so a user of a
network without state never sees it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn.nn import losses as losses_mod
from fnn.nn import regularizers
from fnn.nn.precision import cast_floats
from fnn.nn.adapter import as_network, num_outputs

Array = jax.Array
MODES = ("manual", "autodiff")


class LossOutput(NamedTuple):
    """objective value, gradients and the forward outputs of one evaluation.

    loss: scalar objective (data loss + penalty).  data_loss: scalar data loss only.
    grads: pytree like params.  y_hat: (batch, K) network outputs.
    state: the network's new state (``()`` for a network without state).
    """

    loss: Array
    data_loss: Array
    grads: tuple
    y_hat: Array
    state: tuple = ()


def check_param_dtype(net, params) -> None:
    """Refuse parameters whose float dtype is not the network's (no silent mixed precision).

    Targets and inputs are cast to ``net.dtype``; float64 parameters in a float32 network would
    round them silently. Raises a one-line ValueError naming both dtypes and the remedy.
    """
    want = jnp.dtype(net.dtype)
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dt = jnp.result_type(leaf)
        if jnp.issubdtype(dt, jnp.floating) and dt != want:
            where = jax.tree_util.keystr(path)
            raise ValueError(
                f"params{where}: dtype {dt.name}; the network's dtype is {want.name} (build it"
                f" with dtype={dt.name!r}, e.g. net.replace(dtype={dt.name!r}), or cast the"
                f" parameters)")


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
    k = num_outputs(net)
    losses_mod.check_pairing(loss, net.output, k)
    x = x if isinstance(x, jax.Array) else jnp.asarray(x)
    y = y if isinstance(y, jax.Array) else jnp.asarray(y)
    squeezed = x.ndim == len(net.input_shape)
    if squeezed:
        x = x[None, ...]
        y = y[None] if y.ndim == 0 else y[None, ...]
    net.check_input(x)
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"y: shape {tuple(y.shape)} does not match x of shape {tuple(x.shape)}; expected"
            f" {x.shape[0]} targets"
        )
    dtype = jnp.dtype(net.dtype)
    y = losses_mod.prepare_targets(loss, y, k, dtype,
                                   output_shape=getattr(net, "output_shape", None))
    return x, y, squeezed


def objective(net, loss, params, x, y, *, key=None, l1=0.0, l2=0.0, drop_rate=None, state=None):
    """The scalar objective for prepared (x, y). Returns (objective, (data loss, ŷ, new state))."""
    loss = losses_mod.get(loss)
    state = net.init_state() if state is None else state
    y_hat, caches, new_state = net.forward_state(params, state, x, key=key, drop_rate=drop_rate)
    data = loss.value(net.output_logits(caches), y_hat, y)
    return data + regularizers.penalty(params, l1=l1, l2=l2), (data, y_hat, new_state)


def evaluate(net, loss, params, x, y, *, mode="manual", key=None, l1=0.0, l2=0.0,
             drop_rate=None, state=None, compute=None) -> LossOutput:
    """Objective, gradients and outputs for a prepared batch (no validation; jit-friendly).

    Args:
      net: :class:`fnn.MLP`.  loss: a Loss or its name.  params: pytree.
      x: (batch, features).  y: dense (batch, K) targets.
      mode: "manual" (hand-written backprop) or "autodiff" (``jax.grad``).
      key: dropout key or None.  l1, l2: penalty coefficients.  drop_rate: dropout override.
      state: the network's state (None: ``net.init_state()``); training mode either way.
      compute: mixed precision's compute dtype (``jnp.bfloat16``) or None (the parameters'):
        see :func:`evaluate_mixed`.
    Returns:
      :class:`LossOutput`.
    """
    loss = losses_mod.get(loss)
    state = net.init_state() if state is None else state
    if compute is not None and jnp.dtype(compute) != jnp.dtype(net.dtype):
        return evaluate_mixed(net, loss, params, x, y, mode=mode, key=key, l1=l1, l2=l2,
                              drop_rate=drop_rate, state=state, compute=compute)
    if mode == "manual":
        y_hat, caches, new_state = net.forward_state(params, state, x, key=key,
                                                     drop_rate=drop_rate)
        data = loss.value(net.output_logits(caches), y_hat, y)
        value = data + regularizers.penalty(params, l1=l1, l2=l2)
        grads = net.backward(params, caches, loss, y)
        reg = regularizers.penalty_grad(params, l1=l1, l2=l2)
        if reg is not None:
            grads = jax.tree.map(jnp.add, grads, reg)
        return LossOutput(value, data, grads, y_hat, new_state)
    check_mode(mode)
    (value, (data, y_hat, new_state)), grads = jax.value_and_grad(
        objective, argnums=2, has_aux=True)(
        net, loss, params, x, y, key=key, l1=l1, l2=l2, drop_rate=drop_rate, state=state)
    return LossOutput(value, data, grads, y_hat, new_state)


def evaluate_mixed(net, loss, params, x, y, *, mode, key, l1, l2, drop_rate, state,
                   compute) -> LossOutput:
    """:func:`evaluate` in mixed precision (:mod:`fnn.nn.precision`).

    The network runs as ``net.replace(dtype=compute)`` on the parameters cast to ``compute``;
    its output is cast back up before the loss, so the loss, the penalties and the returned
    gradients are in the parameters' (master) dtype:

        L = loss(f32(ŷ_c), y) + penalty(W),   g = f32(∂L/∂W_c) + ∂penalty/∂W.

    The state (BatchNorm's running statistics) is passed in the master dtype: a momentum
    update m·s + (1 − m)·μ_batch in bfloat16 would round away steps below 2⁻⁸ of s.
    Args and Returns: as :func:`evaluate`, with ``compute`` the compute dtype.
    """
    master = jnp.dtype(net.dtype)
    net_c = net.replace(dtype=jnp.dtype(compute).name)  # the same layers, computing in bf16

    def data_loss(caches, y_hat):  # in the master dtype: f32 logits, f32 reduction
        logits = net_c.output_logits(caches)
        return loss.value(None if logits is None else logits.astype(master),
                          y_hat.astype(master), y)

    if mode == "manual":
        p_c = cast_floats(params, compute)
        y_hat, caches, new_state = net_c.forward_state(p_c, state, x, key=key,
                                                       drop_rate=drop_rate)
        data = data_loss(caches, y_hat)
        value = data + regularizers.penalty(params, l1=l1, l2=l2)
        # the delta recurrence in bf16; the gradient comes back to the master dtype
        grads = cast_floats(net_c.backward(p_c, caches, loss, y.astype(compute)), master)
        reg = regularizers.penalty_grad(params, l1=l1, l2=l2)
        if reg is not None:
            grads = jax.tree.map(jnp.add, grads, reg)
        return LossOutput(value, data, grads, y_hat.astype(master), new_state)
    check_mode(mode)

    def f(p):  # the cast's transpose brings the bf16 cotangents back to the master dtype
        y_hat, caches, new_state = net_c.forward_state(cast_floats(p, compute), state, x,
                                                       key=key, drop_rate=drop_rate)
        data = data_loss(caches, y_hat)
        return data + regularizers.penalty(p, l1=l1, l2=l2), (data, y_hat, new_state)

    (value, (data, y_hat, new_state)), grads = jax.value_and_grad(f, has_aux=True)(params)
    return LossOutput(value, data, grads, y_hat.astype(master), new_state)


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
    net = as_network(net, params=params, x=x, mode=mode)
    net.check_params(params)
    check_param_dtype(net, params)
    x, y, _ = prepare_batch(net, loss, x, y)
    out = evaluate(net, loss, params, x, y, mode=mode, key=key, l1=l1, l2=l2, drop_rate=drop_rate)
    return out.loss, out.grads
