"""Training diagnostics: per-layer gradient / weight / update norms and activation health.

Pure, traceable functions; :class:`fnn.train.Trainer` (``diagnostics=True``) calls them inside
the compiled run and :func:`fnn.backprop_trace` uses the same ones for its summary, so a number
means the same thing everywhere. Layers are numbered as in the notes: layer l = 1..L is the
dense layer with W(l), the output layer is L.

Per step (averaged over the epoch's steps by the Trainer), weights only (biases excluded):

* ``grad_norm/layer<l>``    ‖∂L/∂W(l)‖_F, the gradient the optimizer received (objective =
                            data loss + L1/L2 penalty);
* ``update_ratio/layer<l>`` ‖ΔW(l)‖_F / ‖W(l)‖_F, the optimizer's update relative to the weights
                            it was applied to (≈ 1e-3 is the usual healthy order of magnitude).

At epoch end, on the parameters after the epoch's last step:

* ``weight_norm/layer<l>``  ‖W(l)‖_F;
* ``slope/layer<l>``        mean g'(Z) over the (example, unit) entries of the validation split:
                            the factor by which layer l scales the δ it passes down, on average
                            (sigmoid: at most 1/4; ReLU: the fraction of active units);
* ``saturated/layer<l>``    fraction of (example, unit) entries of the validation split whose
                            derivative g'(Z) is below :data:`SATURATION` (10 %) of its maximum:
                            sigmoid |z| ≳ 3.6 (a ∉ [0.026, 0.974]), tanh |z| ≳ 1.8 (|a| > 0.95),
                            ReLU / leaky ReLU z ≤ 0 (the flat side: no or α-sized gradient);
                            identity never;
* ``dead/layer<l>``         fraction of units saturated on *every* example of the validation split
                            (a dead ReLU: Z ≤ 0 for all inputs, so it never passes a gradient).

Softmax is not element-wise (its derivative is a Jacobian): a softmax layer's health is NaN.
Without a validation split the Trainer uses the training split.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from fnn.nn import activations as acts

Array = jax.Array

#: A unit is saturated on an example when g'(Z) < SATURATION · max g'.
SATURATION = 0.1

#: max_z g'(z) of each element-wise activation (sigmoid: at z = 0; the others: 1).
PEAK_DERIVATIVE = {"identity": 1.0, "sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0}

#: Per-layer history keys, in the order they are reported.
STEP_STATS = ("grad_norm", "update_ratio")
EPOCH_STATS = ("weight_norm", "slope", "saturated", "dead")
LAYER_STATS = STEP_STATS + EPOCH_STATS


def layer_key(stat: str, layer: int) -> str:
    """History key of a per-layer statistic, e.g. ``layer_key("grad_norm", 1)`` ->
    ``"grad_norm/layer1"`` (``layer`` is 1-based)."""
    return f"{stat}/layer{layer}"


def history_keys(num_layers: int, stats: Sequence[str] = LAYER_STATS) -> tuple[str, ...]:
    """Every per-layer key for a network of ``num_layers`` dense layers."""
    return tuple(layer_key(s, l) for s in stats for l in range(1, num_layers + 1))


def frobenius(x: Array) -> Array:
    """‖x‖_F = sqrt(Σ x²) as a scalar of x's dtype."""
    return jnp.sqrt(jnp.sum(jnp.square(x)))


def _ratio(num: Array, den: Array) -> Array:
    # num / den, and 0 where the weights are exactly 0 (no update either) rather than NaN.
    safe = jnp.where(den > 0, den, jnp.ones_like(den))
    return jnp.where(den > 0, num / safe, jnp.zeros_like(num))


def blocked(activation, z: Array, a: Array) -> Array:
    """Where the activation passes (almost) no gradient: g'(Z) < SATURATION · max g'.

    Args:
      activation: an element-wise :class:`~fnn.activations.Activation` or its name.
      z, a: pre-activation and activation (batch, units).
    Returns:
      bool (batch, units).
    Raises:
      ValueError: a non-element-wise activation (softmax).
    """
    act = acts.get(activation)
    if not act.elementwise:
        raise ValueError(f"activation {act.name!r} is not element-wise; it has no per-unit g'(Z)")
    peak = PEAK_DERIVATIVE[act.name]
    return act.derivative(z, a) < SATURATION * peak


def mean_slope(activation, z: Array, a: Array) -> Array:
    """Mean of g'(Z) over every (example, unit) entry; NaN for softmax.

    Args: activation name; z, a (batch, units). Returns: scalar of z's dtype.
    """
    act = acts.get(activation)
    if not act.elementwise:
        return jnp.asarray(jnp.nan, z.dtype)
    return jnp.mean(act.derivative(z, a))


def saturated_fraction(activation, z: Array, a: Array) -> Array:
    """Fraction of (example, unit) entries with g'(Z) < 10 % of its maximum; NaN for softmax.

    Args: activation name; z, a (batch, units). Returns: scalar of z's dtype.
    """
    if not acts.get(activation).elementwise:
        return jnp.asarray(jnp.nan, z.dtype)
    return jnp.mean(blocked(activation, z, a).astype(z.dtype))


def dead_fraction(activation, z: Array, a: Array) -> Array:
    """Fraction of units saturated on every example of the batch (a dead ReLU: Z ≤ 0 on all rows);
    NaN for softmax.

    Args: activation name; z, a (batch, units). Returns: scalar of z's dtype.
    """
    if not acts.get(activation).elementwise:
        return jnp.asarray(jnp.nan, z.dtype)
    return jnp.mean(jnp.all(blocked(activation, z, a), axis=0).astype(z.dtype))


def step_stats(grads, updates, params) -> dict[str, Array]:
    """Per-layer statistics of one optimizer step (weights only).

    Args:
      grads: ∂L/∂params, a tuple of {"w", "b"} per layer.
      updates: the optimizer's updates ΔW (same structure), added to ``params``.
      params: the parameters before the step.
    Returns:
      {"grad_norm/layer<l>": ‖∂L/∂W(l)‖, "update_ratio/layer<l>": ‖ΔW(l)‖ / ‖W(l)‖} scalars.
    """
    out = {}
    for l, (g, u, p) in enumerate(zip(grads, updates, params), start=1):
        out[layer_key("grad_norm", l)] = frobenius(g["w"])
        out[layer_key("update_ratio", l)] = _ratio(frobenius(u["w"]), frobenius(p["w"]))
    return out


def activation_stats(activations: Sequence[str], caches) -> dict[str, Array]:
    """Per-layer activation health from a forward pass's caches.

    Args:
      activations: each layer's activation name (``net.activations``).
      caches: from :meth:`fnn.MLP.forward` (z, a of shape (batch, units) per layer).
    Returns:
      {"slope/layer<l>", "saturated/layer<l>", "dead/layer<l>"} scalars (NaN for a softmax
      layer).
    """
    out = {}
    for l, (name, c) in enumerate(zip(activations, caches), start=1):
        out[layer_key("slope", l)] = mean_slope(name, c.z, c.a)
        out[layer_key("saturated", l)] = saturated_fraction(name, c.z, c.a)
        out[layer_key("dead", l)] = dead_fraction(name, c.z, c.a)
    return out


def epoch_stats(net, params, x: Array) -> dict[str, Array]:
    """Per-layer statistics at the end of an epoch: weight norms and activation health on ``x``.

    Args:
      net: :class:`fnn.MLP`.  params: its parameters.
      x: (batch, features) float inputs (e.g. the validation split), evaluated without dropout.
    Returns:
      {"weight_norm/layer<l>", "slope/layer<l>", "saturated/layer<l>", "dead/layer<l>"}.
    """
    _, caches = net.forward(params, x)
    out = {layer_key("weight_norm", l): frobenius(p["w"]) for l, p in enumerate(params, start=1)}
    out.update(activation_stats(net.activations, caches))
    return out
