"""Training diagnostics: per-layer gradient / weight / update norms and activation health.

Pure, traceable functions; :class:`fnn.train.Trainer` (``diagnostics=True``) calls them inside
the compiled run and :func:`fnn.backprop_trace` uses the same ones for its summary, so a number
means the same thing everywhere. Any fnn network works (:class:`fnn.MLP`, :class:`fnn.Sequential`):
the statistics are per *row with parameters*, numbered l = 1..K in the order of :func:`rows`:
those of :meth:`~fnn.nn.protocol.Network.unrolled`, the chain the backprop trace and gradcheck
show, so a ``Repeat(block, n)`` gives n consecutive rows, one per copy (named ``layer<i>[<j>]``
like gradcheck's leaves, the trace's layer / block columns), and every other layer one
(``layer<i>``; for an MLP, row l is the dense layer with W(l), as in the notes;
``rows(net)[l - 1]`` says which; a protocol network whose ``unrolled`` names no blocks: its
``param_layers()``). A copy's norms are over its slice [j] of the stacked leaves,
computed per index of the leading axis and split by ``net.unrolled`` (:func:`row_norms`), so
the engine knows nothing of Repeat.
A row's *weights* are its parameter leaves other than biases ("b", "bias"): the "w" kernel of
Dense / Conv2D, the "scale" of BatchNorm / LayerNorm, every inner kernel and scale of a Residual
or a TransformerBlock (one Frobenius norm over all of them).

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

Softmax is not element-wise (its derivative is a Jacobian): a softmax layer's health is NaN, and
so is that of a layer without an activation of its own (BatchNorm, LayerNorm, Residual,
Embedding, LSTM: no cache with ``z`` and ``a``). A Repeat's copies are read from the caches its
scan stacks (the copies of ``net.layer_views``): copy j of a repeated layer with an element-wise
activation (``Repeat(Dense(64, activation="relu"), n)``) has its own health from its Z and A;
copies of a block without one (TransformerBlock, Residual) are NaN, as the block would be. For
a conv layer Z is (batch, H, W, C): slope and saturated are over every entry, and a unit is a
channel (a dead filter is saturated at every position of every example). Without a validation
split the Trainer uses the training split.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
from jax.tree_util import DictKey, tree_leaves_with_path

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
    """Every per-layer key for a network of ``num_layers`` rows with parameters
    (``len(rows(net))``)."""
    return tuple(layer_key(s, l) for s in stats for l in range(1, num_layers + 1))


class Row(NamedTuple):
    """Row l of the statistics. entry: its index in ``net.unrolled(params)[1]``.  layer: its
    index in ``net.layers``.  block: the copy of a Repeat (None: the layer whole).  kind: the
    (repeated) layer's type name."""

    entry: int
    layer: int
    block: Optional[int]
    kind: str

    @property
    def name(self) -> str:
        """``layer2[0]`` (copy 0 of ``net.layers[2]``) or ``layer4``: gradcheck's leaf prefix."""
        return f"layer{self.layer}" if self.block is None else f"layer{self.layer}[{self.block}]"


def rows(net) -> tuple[Row, ...]:
    """The rows with parameters of ``net`` (a :class:`~fnn.nn.protocol.Network`), l = 1..K in
    order: those of ``net.unrolled`` (from the params' shapes; nothing is computed)."""
    try:
        hash(net)
    except TypeError:
        return _rows(net)
    return _cached_rows(net)


def _rows(net) -> tuple[Row, ...]:
    found = []

    def split(p):
        unrolled, q, blocks = net.unrolled(p)
        found.append((unrolled, blocks))
        return q

    jax.eval_shape(split, jax.eval_shape(net.init, jax.random.key(0)))
    unrolled, blocks = found[0]
    if blocks is None:  # a network without blocks to name: its layers with parameters
        return tuple(Row(i, i, None, kind) for i, kind in net.param_layers())
    return tuple(Row(k, *blocks[k], kind) for k, kind in unrolled.param_layers())


_cached_rows = functools.lru_cache(maxsize=64)(_rows)


def _entries(net, tree) -> tuple:
    """``tree`` (params, or anything shaped like them) split like ``net.unrolled``."""
    return net.unrolled(tree)[1]


def _by_copy(leaf: Array) -> Array:
    """Σ leaf² over every axis but the first (the copies' axis): one value per copy."""
    return jnp.sum(jnp.square(leaf), axis=tuple(range(1, leaf.ndim)))


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

    Args: activation name; z, a (batch, units) or (batch, H, W, C) (units: the C channels).
    Returns: scalar of z's dtype.
    """
    if not acts.get(activation).elementwise:
        return jnp.asarray(jnp.nan, z.dtype)
    b = blocked(activation, z, a)
    if b.ndim > 2:  # (batch, H, W, C): a unit is a channel, seen at every position
        b = b.reshape(-1, b.shape[-1])
    return jnp.mean(jnp.all(b, axis=0).astype(z.dtype))


def _is_bias(path) -> bool:
    last = path[-1] if path else None
    return isinstance(last, DictKey) and last.key in ("b", "bias")


def weight_leaves(layer_params) -> list:
    """A layer's weights: its parameter leaves other than biases (see the module docstring)."""
    return [leaf for path, leaf in tree_leaves_with_path(layer_params) if not _is_bias(path)]


def weight_norm(layer_params) -> Array:
    """‖W‖_F over :func:`weight_leaves` (one norm for several leaves; 0 for none)."""
    if isinstance(layer_params, dict) and "w" in layer_params:
        return frobenius(layer_params["w"])  # Dense / Conv2D / MLP: exactly ‖W‖_F
    leaves = weight_leaves(layer_params)
    if not leaves:
        return jnp.zeros((), jax.tree.leaves(layer_params)[0].dtype)
    if len(leaves) == 1:
        return frobenius(leaves[0])
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))


def row_norms(net, tree) -> list[Array]:
    """‖W‖_F of every row of :func:`rows` in ``tree`` (params, or their gradients or updates).

    A whole layer's is :func:`weight_norm` of its entry. A copy's comes from its layer's stacked
    leaves (``unroll`` takes copy j's as every leaf's [j]): each leaf squared and summed over
    every axis but the first, the (n,) sums split by ``net.unrolled`` like the params, copy j's
    weights' sums added: one reduction per leaf, none per copy, nothing unstacked.
    """
    table = rows(net)
    split = {r.layer for r in table if r.block is not None}
    if split:
        tree = tuple(jax.tree.map(_by_copy, e) if i in split else e for i, e in enumerate(tree))
    entries = _entries(net, tree)
    out = []
    for r in table:
        e = entries[r.entry]
        if r.block is None:
            out.append(weight_norm(e))
        else:
            sums = weight_leaves(e)
            out.append(jnp.sqrt(sum(sums)) if sums
                       else jnp.zeros((), jax.tree.leaves(e)[0].dtype))
    return out


def _with_params(params) -> list[int]:
    """Indices of the top-level entries that have parameter leaves (``net.param_layers()``)."""
    return [i for i, p in enumerate(params) if jax.tree.leaves(p)]


def step_stats(grads, updates, params, net=None) -> dict[str, Array]:
    """Per-row statistics of one optimizer step (weights only: biases excluded).

    Args:
      grads: ∂L/∂params (one entry per layer, {} for parameterless layers of a Sequential).
      updates: the optimizer's updates ΔW (same structure), added to ``params``.
      params: the parameters before the step.
      net: the network: row l is ``rows(net)[l - 1]`` (a Repeat's copies one row each); None:
        row l is the l-th top-level entry with parameters.
    Returns:
      {"grad_norm/layer<l>": ‖∂L/∂W(l)‖, "update_ratio/layer<l>": ‖ΔW(l)‖ / ‖W(l)‖} scalars.
    """
    if net is None:
        entries = _with_params(params)
        norms = ([weight_norm(t[i]) for i in entries] for t in (grads, updates, params))
    else:
        norms = (row_norms(net, t) for t in (grads, updates, params))
    out = {}
    for l, (g, u, p) in enumerate(zip(*norms), start=1):
        out[layer_key("grad_norm", l)] = g
        out[layer_key("update_ratio", l)] = _ratio(u, p)
    return out


def _health(name, z, a) -> dict[str, Array]:
    return {"slope": mean_slope(name, z, a), "saturated": saturated_fraction(name, z, a),
            "dead": dead_fraction(name, z, a)}


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
        for stat, v in _health(name, c.z, c.a).items():
            out[layer_key(stat, l)] = v
    return out


def epoch_stats(net, params, x: Array, net_state=None) -> dict[str, Array]:
    """Per-row statistics at the end of an epoch: weight norms and activation health on ``x``.

    Args:
      net: :class:`fnn.MLP` or :class:`fnn.Sequential`.  params: its parameters.
      x: (batch, *net.input_shape) float inputs (e.g. the validation split), evaluated in
        evaluation mode (no dropout; BatchNorm with the running statistics of ``net_state``).
      net_state: the network's state (``TrainState.net_state``; None: ``net.init_state()``).
    Returns:
      {"weight_norm/layer<l>", "slope/layer<l>", "saturated/layer<l>", "dead/layer<l>"} for the
      l = 1..K rows of :func:`rows` (NaN health for a row without its own activation).
    """
    net_state = net.init_state() if net_state is None else net_state
    _, caches, _ = net.forward_state(params, net_state, x, training=False)
    views = net.layer_views(caches)
    out, health = {}, {}
    for l, (r, norm) in enumerate(zip(rows(net), row_norms(net, params)), start=1):
        out[layer_key("weight_norm", l)] = norm
        v = views[r.layer]
        if r.block is not None:  # a copy: its view from the stacked caches, if the layer has any
            v = None if v.copies is None else v.copies[r.block]
        if v is not None and v.z is not None:
            stats = _health(v.activation, v.z, v.a)
        else:
            nan = jnp.asarray(jnp.nan, out[layer_key("weight_norm", l)].dtype)
            stats = {"slope": nan, "saturated": nan, "dead": nan}
        for stat, value in stats.items():
            health[layer_key(stat, l)] = value
    out.update(health)  # the MLP's key order: every weight norm, then each row's health
    return out
