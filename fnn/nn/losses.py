"""Losses, each with its hand-written gradient, defined exactly.

Reduction: every loss is a **mean over the positions** of a per-position loss that is **summed
over output units**. With N the number of positions — the batch size for (batch, K) outputs,
batch × time for sequence outputs (batch, T, K) —, K the output units, Z = Z(L) the output pre-activation
(logits) and A = ŷ = g(Z) the output:

* ``mse``:                  L = 1/N Σ_n Σ_k (ŷ_nk − y_nk)²               ∇_A L = 2(ŷ − y)/N
* ``binary_cross_entropy``: L = −1/N Σ_n Σ_k [y log σ(z) + (1−y) log(1−σ(z))]   δ(L) = (ŷ − y)/N
* ``cross_entropy``:        L = −1/N Σ_n Σ_k y_nk log softmax(z_n)_k          δ(L) = (ŷ − y)/N

The notes write ∇_A L = ŷ − y for MSE; the exact gradient of the mean carries 2/N, and the manual
gradients here are exact, so they match ``jax.grad`` of the loss as defined.

The two cross-entropies are computed from the logits in stable form (log-sum-exp with the row max
subtracted; BCE as ``max(z,0) − yz + log(1 + e^{−|z|})``), and their output delta is the fused
``(ŷ − y)/N`` — valid only with their own output activation (softmax, sigmoid), which
:func:`check_pairing` enforces. MSE pairs with any output activation through the general
δ(L) = ∇_A L ⊙ g'(Z) (the activation's own ``backward``, a Jacobian-vector product for softmax).

Sequence cross-entropy is the same ``cross_entropy``: logits (B, T, V) against integer targets
(B, T), L = −1/(B·T) Σ_{n,t} log softmax(z_nt)[y_nt], δ(L) = (softmax − onehot)/(B·T).

Targets: class targets may be integer labels (batch,) or one-hot / soft targets (batch, K); a
single-unit output also accepts (batch,); a sequence output (batch, T, K) takes labels (batch, T)
or targets (batch, T, K). :func:`prepare_targets` turns them into the output's dense shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.nn import activations as acts
from fnn.nn import names
from fnn.util import registry

Array = jax.Array


@dataclass(frozen=True)
class Loss:
    """A named loss with its hand-written output gradient.

    Attributes:
      name: registry name.
      value: ``(z, a, y) -> scalar`` with z, a, y of shape (batch, K).
      grad_a: ``(a, y) -> ∂L/∂A`` (batch, K), for losses that pair with any output activation.
      fused_delta: ``(z, a, y) -> δ(L) = ∂L/∂Z`` (batch, K), for losses tied to one activation.
      output: the output activation a fused loss requires (``None``: any).
      classification: whether targets are classes (integer labels accepted).
    """

    name: str
    value: Callable[[Array, Array, Array], Array]
    grad_a: Optional[Callable[[Array, Array], Array]] = None
    fused_delta: Optional[Callable[[Array, Array, Array], Array]] = None
    output: Optional[str] = None
    classification: bool = False

    def output_delta(self, activation: acts.Activation, z: Array, a: Array, y: Array) -> Array:
        """δ(L) = ∂L/∂Z(L) for this loss after ``activation``.

        Fused losses return ``(ŷ − y)/N``; the others ``activation.backward(z, a, ∇_A L)``,
        i.e. ∇_A L ⊙ g'(Z) (or softmax's Jacobian-vector product).

        Args:
          activation: the output activation (already checked by :func:`check_pairing`).
          z, a, y: logits, outputs and dense targets, each (batch, K).
        Returns:
          δ(L), (batch, K).
        """
        if self.fused_delta is not None:
            return self.fused_delta(z, a, y)
        return activation.backward(z, a, self.grad_a(a, y))


def _batch(x: Array) -> int:
    """N: the number of positions, every axis but the last (batch, or batch × time)."""
    n = 1
    for d in x.shape[:-1]:
        n *= d
    return n


# --- mean squared error ------------------------------------------------------------------------
def mse_value(z: Array, a: Array, y: Array) -> Array:
    # L = 1/N Σ_n Σ_k (ŷ − y)²
    return jnp.sum(jnp.square(a - y)) / _batch(a)


def mse_grad_a(a: Array, y: Array) -> Array:
    # ∇_A L = 2(ŷ − y)/N
    return 2 * (a - y) / _batch(a)


# --- binary cross-entropy, from logits -----------------------------------------------------------
def _ylogit(y: Array, z: Array) -> Array:
    # y·z with 0·(±inf) := 0, so an infinite logit on a 0 target stays finite.
    return jnp.where(y != 0, y * z, jnp.zeros_like(z))


def bce_value(z: Array, a: Array, y: Array) -> Array:
    # ℓ = −[y log σ(z) + (1−y) log(1−σ(z))] = max(z, 0) − y z + log(1 + e^{−|z|})
    # max(z, 0) and |z| are written as `where(z >= 0, ...)` so that jax.grad takes both from the
    # same branch at z = 0 and gets ℓ'(0) = 1 − y − 1/2 = σ(0) − y. (jnp.maximum splits its
    # gradient 1/2 at a tie while jnp.abs takes slope 1 at 0, which gave ℓ'(0) = −y, not ½ − y.)
    nonneg = z >= 0
    abs_z = jnp.where(nonneg, z, -z)
    per = jnp.where(nonneg, z, jnp.zeros_like(z)) - _ylogit(y, z) + jnp.log1p(jnp.exp(-abs_z))
    return jnp.sum(per) / _batch(z)


def sigmoid_bce_delta(z: Array, a: Array, y: Array) -> Array:
    # δ(L) = ∂L/∂Z = (σ(z) − y)/N = (ŷ − y)/N
    return (a - y) / _batch(a)


# --- categorical cross-entropy, from logits ------------------------------------------------------
def log_softmax(z: Array) -> Array:
    """Stable log-softmax over the last axis: z − max − log Σ e^{z − max}. (batch, K) -> (batch, K)."""
    z_max = jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    shifted = z - z_max
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))


def ce_value(z: Array, a: Array, y: Array) -> Array:
    # ℓ_n = −Σ_k y_nk log softmax(z_n)_k   (y may be one-hot or a soft distribution)
    logp = log_softmax(z)
    return -jnp.sum(_ylogit(y, logp)) / _batch(z)


def softmax_ce_delta(z: Array, a: Array, y: Array) -> Array:
    # δ(L) = ∂L/∂Z = (softmax(z) − y)/N = (ŷ − y)/N   (Σ_k y_nk = 1)
    return (a - y) / _batch(a)


def _loss(name: str, value, **grads) -> Loss:
    """A registered loss; its output pairing and task come from :data:`fnn.nn.names.LOSSES`."""
    facts = names.LOSSES[name]
    return Loss(name, value, output=facts.output, classification=facts.classification, **grads)


LOSSES: dict[str, Loss] = registry.table("loss", names.LOSSES, {
    "mse": _loss("mse", mse_value, grad_a=mse_grad_a),
    "binary_cross_entropy": _loss("binary_cross_entropy", bce_value,
                                  fused_delta=sigmoid_bce_delta),
    "cross_entropy": _loss("cross_entropy", ce_value, fused_delta=softmax_ce_delta),
})
ALIASES = names.LOSS_ALIASES  # the list, the facts and the aliases: fnn.nn.names (no JAX)


def get(name) -> Loss:
    """Look up a loss by name.

    Raises:
      ValueError: unknown name; the message lists the valid ones.
    """
    if isinstance(name, Loss):
        return name
    return registry.lookup("loss", name, LOSSES, ALIASES)


def check_pairing(loss: Loss, output: str, units: int) -> None:
    """Reject a loss / output-activation pairing that has no exact delta.

    ``cross_entropy`` needs a softmax output with ≥ 2 units; ``binary_cross_entropy`` a sigmoid
    output (1 unit, or several for multi-label); ``mse`` pairs with any output.

    Raises:
      ValueError: naming the loss and the output activation.
    """
    out = acts.canonical_name(output)
    if loss.output is not None and out != loss.output:
        raise ValueError(
            f"loss {loss.name!r} requires a {loss.output!r} output activation, got output={out!r}"
        )
    if out == "softmax" and units < 2:
        raise ValueError(
            f"loss {loss.name!r} with output 'softmax' needs at least 2 output units, got {units}"
            " (a 1-unit softmax is always 1; use output='sigmoid' with binary_cross_entropy)"
        )


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_labels(y: Array, units: int) -> None:
    """Concrete integer labels must lie in [0, units − 1] (NumPy: a closed-over concrete y under
    jit would give a traced min with jnp)."""
    if _is_concrete(y) and y.size:
        lo, hi = int(np.min(np.asarray(y))), int(np.max(np.asarray(y)))
        if lo < 0 or hi >= units:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"labels: value {bad} out of range; expected integer class ids in"
                f" [0, {units - 1}] for a {units}-unit output"
            )


def _check_probabilities(loss: Loss, y: Array) -> None:
    if loss.classification and _is_concrete(y) and y.size:
        lo, hi = float(np.min(np.asarray(y))), float(np.max(np.asarray(y)))
        if lo < 0 or hi > 1:
            raise ValueError(
                f"targets: value {lo if lo < 0 else hi} out of range for {loss.name!r};"
                " expected probabilities in [0, 1]"
            )


def _sequence_targets(loss: Loss, y: Array, shape: tuple, dtype) -> Array:
    """Dense (batch, *shape) targets for an output with positions (e.g. shape (T, K))."""
    units, lead = shape[-1], shape[:-1]
    if jnp.issubdtype(y.dtype, jnp.integer) and units >= 2 and tuple(y.shape[1:]) == lead:
        _check_labels(y, units)
        return jax.nn.one_hot(y, units, dtype=dtype)
    if tuple(y.shape[1:]) != shape:
        want = ", ".join(str(d) for d in shape)
        lab = ", ".join(str(d) for d in lead)
        raise ValueError(
            f"targets: shape {tuple(y.shape)} does not fit a (batch, {want}) output; expected"
            f" (batch, {want})" + (f" or integer labels (batch, {lab})" if units >= 2 else "")
        )
    _check_probabilities(loss, y)
    return y.astype(dtype)


def prepare_targets(loss: Loss, y, units: int, dtype, *, output_shape=None) -> Array:
    """Dense (batch, K) targets for ``loss`` from labels, one-hot rows or values.

    * integer labels (batch,) for a K ≥ 2 output become one-hot (batch, K);
    * (batch,) targets for a 1-unit output become (batch, 1);
    * (batch, K) targets are used as they are (cast to ``dtype``);
    * for a sequence output (``output_shape`` (T, K)): integer labels (batch, T) become one-hot
      (batch, T, K); targets (batch, T, K) are used as they are.

    Concrete (non-traced) integer labels are range-checked.

    Args:
      loss: the loss the targets are for.
      y: (batch,) integer labels or values, or (batch, K); (batch, T) or (batch, T, K).
      units: K, the number of output units.
      dtype: the float dtype of the network.
      output_shape: one example's output shape; None or (K,): the (batch, K) rules above.
    Returns:
      (batch, K) — or (batch, *output_shape) — array of ``dtype``.
    Raises:
      ValueError: labels negative or ≥ K, or a shape that does not fit K.
    """
    y = jnp.asarray(y) if not isinstance(y, jax.Array) else y
    if output_shape is not None and len(output_shape) > 1:
        return _sequence_targets(loss, y, tuple(int(d) for d in output_shape), dtype)
    if y.ndim == 1:
        if jnp.issubdtype(y.dtype, jnp.integer) and units >= 2:
            _check_labels(y, units)
            return jax.nn.one_hot(y, units, dtype=dtype)
        if units == 1:
            y = y[:, None]
        else:
            raise ValueError(
                f"targets: shape {tuple(y.shape)} with dtype {y.dtype} does not fit a {units}-unit"
                f" output; expected integer labels (batch,) or targets (batch, {units})"
            )
    if y.ndim != 2 or y.shape[1] != units:
        raise ValueError(
            f"targets: shape {tuple(y.shape)} does not fit a {units}-unit output; expected"
            f" (batch, {units})" + (" or integer labels (batch,)" if units >= 2 else " or (batch,)")
        )
    _check_probabilities(loss, y)
    return y.astype(dtype)
