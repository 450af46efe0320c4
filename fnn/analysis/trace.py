"""Seeing backprop: every quantity of the notes' forward and backward pass for one batch.

    >>> trace = fnn.backprop_trace(net, "cross_entropy", params, x, y)
    >>> print(trace)                 # per layer: shapes, norms, dead / saturated units
    >>> trace[0].delta               # δ(1), (batch, sizes[1])
    >>> trace.layers[-1].dw          # ∂L/∂W(L), (sizes[-2], sizes[-1])

For layer l = 1..L (``trace[l - 1]``), with A(0) = X (``trace.x``) and M(l) the dropout mask on
layer l's input (1 without dropout):

    Z(l) = (A(l−1) ⊙ M(l)) W(l) + b(l)              A(l) = g(Z(l))
    δ(L) = ∂L/∂Z(L) from the loss                     δ(l) = ((δ(l+1) W(l+1)ᵀ) ⊙ M(l+1)) ⊙ g'(Z(l))
    ∂L/∂W(l) = (A(l−1) ⊙ M(l))ᵀ δ(l)                  ∂L/∂b(l) = Σ_rows δ(l)

Nothing here computes a formula: the values are the forward caches of :meth:`fnn.MLP.forward`
and the deltas and gradients of :meth:`fnn.MLP.backward_deltas` — the very functions behind
``fnn.loss_and_grad(..., mode="manual")`` — so the trace's gradients are bitwise those of
manual mode (without L1/L2 penalties: the trace is of the data loss).

A :class:`BackpropTrace` is a pytree (``jax.tree.map``, ``jax.jit`` output); the layer names
and activations ride along as static metadata.

**A Sequential** (:class:`fnn.Sequential`) gets one row per top-level layer i (``net.layers[i]``),
in training mode (batch statistics; dropout with a key) as ``loss_and_grad``:

* ``a``: the layer's output X(i+1) (``trace.x`` is X(0));
* ``z``: Z(i), the activation's input, for a layer with an activation (Dense, Conv2D,
  Activation), else None;
* ``delta``: δ(i) = ∂L/∂Z(i) for a layer with an activation, else ∂L/∂X(i+1), the gradient of
  its output;
* ``grads``: the layer's parameter gradients (``{}`` for parameterless layers, the inner tuple
  for a Residual); ``dw`` is the "w" kernel's (BatchNorm / LayerNorm: "scale"), ``db`` the "b"
  ("bias") gradient, None where the layer has none; ``mask``: a Dropout layer's scaled mask.

Parameterless layers (pools, Flatten, Dropout, Activation) keep their rows: they show where the
shapes change and how δ flows; their gradient columns are empty. A Residual block is one row (its
output and δ at its output; ‖∂W‖ over every inner kernel). Slope / saturated / dead are those
of :mod:`fnn.analysis.diagnostics`, for layers with an element-wise activation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.analysis import diagnostics as diag
from fnn.nn import activations as acts
from fnn.nn import losses as losses_mod
from fnn.nn import objective as obj
from fnn.nn.adapter import check_manual
from fnn.nn.layers.dropout import Dropout

Array = jax.Array


class LayerTrace(NamedTuple):
    """One dense layer's quantities for one batch (batch-first).

    z: Z(l) (batch, out).      a: A(l) = g(Z(l)) (batch, out).
    delta: δ(l) = ∂L/∂Z(l) (batch, out).
    dw: ∂L/∂W(l) (in, out).    db: ∂L/∂b(l) (out,).
    mask: the scaled dropout mask M(l) on the layer's input (batch, in), or None.
    grads: a Sequential layer's parameter gradients (see the module docstring); None for an MLP.
    """

    z: Array
    a: Array
    delta: Array
    dw: Array
    db: Array
    mask: Optional[Array]
    grads: Any = None


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class BackpropTrace:
    """The per-layer trace of one forward + backward pass.

    Attributes:
      layers: one :class:`LayerTrace` per dense layer (``trace[i]`` is ``trace.layers[i]``).
      loss: the data loss (scalar).
      x: A(0) = X (batch, sizes[0]) as fed to layer 1.   y: dense targets (batch, sizes[-1]).
      sizes, activations, loss_name: static description (not pytree leaves).
    """

    layers: tuple
    loss: Array
    x: Array
    y: Array
    sizes: tuple = field(default=(), metadata=dict(static=True))
    activations: tuple = field(default=(), metadata=dict(static=True))
    loss_name: str = field(default="", metadata=dict(static=True))
    kinds: tuple = field(default=(), metadata=dict(static=True))  # Sequential: layer types
    network: str = field(default="", metadata=dict(static=True))  # Sequential: describe()

    def __getitem__(self, i) -> LayerTrace:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    @property
    def grads(self) -> tuple:
        """The gradients as a params-shaped pytree: ({"w": ∂W(1), "b": ∂b(1)}, ...)."""
        if self.kinds:
            return tuple(t.grads for t in self.layers)
        return tuple({"w": t.dw, "b": t.db} for t in self.layers)

    def rows(self) -> list[dict]:
        """One dict per layer: sizes, activation, Frobenius norms ‖Z‖ ‖A‖ ‖δ‖ ‖∂W‖ ‖∂b‖, the
        mean g'(Z) ("slope"), the fractions of saturated entries and dead units (see
        :mod:`fnn.diagnostics`; None for softmax) and the dropout keep fraction (None without
        dropout)."""
        if self.kinds:
            return self._sequential_rows()
        out = []
        for l, (t, act) in enumerate(zip(self.layers, self.activations), start=1):
            z, a = jnp.asarray(t.z), jnp.asarray(t.a)
            kept = None if t.mask is None else float(jnp.mean((t.mask > 0).astype(z.dtype)))
            out.append({
                "layer": l,
                "dense": f"{self.sizes[l - 1]}->{self.sizes[l]}",
                "activation": act,
                "|Z|": float(diag.frobenius(z)),
                "|A|": float(diag.frobenius(a)),
                "|delta|": float(diag.frobenius(t.delta)),
                "|dW|": float(diag.frobenius(t.dw)),
                "|db|": float(diag.frobenius(t.db)),
                "slope": _nan_to_none(float(diag.mean_slope(act, z, a))),
                "saturated": _nan_to_none(float(diag.saturated_fraction(act, z, a))),
                "dead": _nan_to_none(float(diag.dead_fraction(act, z, a))),
                "kept": kept,
            })
        return out

    def _sequential_rows(self) -> list[dict]:
        """Sequential rows: layer index and type, output shape, activation ("" for none), the
        norms (None where the layer has no such quantity), health and dropout keep fraction."""
        out = []
        for i, (t, kind, act) in enumerate(zip(self.layers, self.kinds, self.activations)):
            a = jnp.asarray(t.a)
            has_params = bool(jax.tree.leaves(t.grads))
            w_grads = diag.weight_leaves(t.grads)
            health = act and t.z is not None and acts.get(act).elementwise
            z = None if t.z is None else jnp.asarray(t.z)
            out.append({
                "layer": i,
                "type": kind,
                "output": "x".join(str(d) for d in self.sizes[i + 1]),
                "activation": act,
                "|Z|": None if z is None else float(diag.frobenius(z)),
                "|A|": float(diag.frobenius(a)),
                "|delta|": float(diag.frobenius(t.delta)),
                "|dW|": float(diag.weight_norm(t.grads)) if w_grads else None,
                "|db|": (float(jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in _bias_leaves(t.grads))))
                         if has_params and _bias_leaves(t.grads) else None),
                "slope": float(diag.mean_slope(act, z, a)) if health else None,
                "saturated": float(diag.saturated_fraction(act, z, a)) if health else None,
                "dead": float(diag.dead_fraction(act, z, a)) if health else None,
                "kept": None if t.mask is None else float(jnp.mean((t.mask > 0).astype(a.dtype))),
            })
        return out

    def summary(self) -> str:
        """A readable table: one line per layer (see :meth:`rows`), loss and shapes on top."""
        from fnn.util.table import format_table

        if self.kinds:
            return self._sequential_summary(format_table)

        batch = int(np.shape(self.x)[0])
        head = (f"backprop trace: {self.loss_name} loss {float(self.loss):.6g}  batch {batch}  "
                f"network {self.sizes}  dtype {jnp.asarray(self.x).dtype}")
        shapes = ("shapes: Z, A, delta (batch, out); dW (in, out); db (out,).  |.|: Frobenius "
                  "norm.\nslope: mean g'(Z).  saturated: entries with g'(Z) < 10% of max g'.  "
                  "dead: units saturated on every example.  kept: dropout keep fraction.")
        rows, cols, shapes = _without_unused_kept(self.rows(), shapes)
        return "\n".join([head, format_table(rows, cols, floatfmt=".3g"), shapes])

    def _sequential_summary(self, format_table) -> str:
        batch = int(np.shape(self.x)[0])
        head = (f"backprop trace: {self.loss_name} loss {float(self.loss):.6g}  batch {batch}  "
                f"dtype {jnp.asarray(self.x).dtype}\nnetwork {self.network}")
        notes = ("layer: index in net.layers.  output: the layer's output shape (per example).  "
                 "|.|: Frobenius norm (batch included).\nZ: the activation's input (layers with "
                 "an activation).  A: the layer's output.  delta: dL/dZ for layers with an "
                 "activation, else dL/d(output).\ndW: kernel (w) or normalization scale "
                 "gradient; db: bias gradient; empty for layers without parameters.\nslope: mean "
                 "g'(Z).  saturated: entries with g'(Z) < 10% of max g'.  dead: units (channels) "
                 "saturated on every example.  kept: dropout keep fraction.")
        rows, cols, notes = _without_unused_kept(self.rows(), notes)
        table = format_table([{k: ("" if v is None else v) for k, v in r.items()} for r in rows],
                             cols, floatfmt=".3g")
        return "\n".join([head, table, notes])

    def __str__(self) -> str:
        try:
            return self.summary()
        except (TypeError, ValueError, IndexError):  # leaves that are not arrays (tree.map'd)
            return repr(self)


def _without_unused_kept(rows: list, notes: str):
    """(rows, columns, notes) with the dropout "kept" column and its note dropped when no layer
    had a mask."""
    cols = list(rows[0])
    if all(r["kept"] is None for r in rows):
        cols.remove("kept")
        notes = notes.replace("  kept: dropout keep fraction.", "")
    return rows, cols, notes


def _nan_to_none(v: float):
    return None if v != v else v


def _bias_leaves(layer_grads) -> list:
    return [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(layer_grads)
            if isinstance(path[-1], jax.tree_util.DictKey) and path[-1].key in ("b", "bias")]


def _first(grads: dict, *names):
    for n in names:
        if isinstance(grads, dict) and n in grads:
            return grads[n]
    return None


def backprop_trace(net, loss, params, x, y, *, key=None, drop_rate=None) -> BackpropTrace:
    """Every layer's Z(l), A(l), δ(l), ∂W(l), ∂b(l) (and dropout mask) for one batch.

    Args:
      net: :class:`fnn.MLP` or :class:`fnn.Sequential` (rows: see the module docstring).
      loss: "mse", "binary_cross_entropy" or "cross_entropy" (or a Loss).
      params: from ``net.init``.
      x: (batch, *net.input_shape) inputs, or one example (net.input_shape).
      y: integer labels (batch,), or targets (batch, K) (as :func:`fnn.loss_and_grad`).
      key: dropout key (training-mode pass with masks); ``None``: no dropout.
      drop_rate: overrides ``net.drop_rate``.
    Returns:
      a :class:`BackpropTrace`; ``print(trace)`` shows the per-layer summary. Its gradients
      equal ``fnn.loss_and_grad(net, loss, params, x, y, mode="manual", key=key)`` exactly.
    Raises:
      ValueError: as :func:`fnn.loss_and_grad` (bad shapes, labels, loss pairing).
    """
    loss = losses_mod.get(loss)
    if not hasattr(net, "sizes"):
        return _sequential_trace(net, loss, params, x, y, key=key, drop_rate=drop_rate)
    net.check_params(params)
    x, y, _ = obj.prepare_batch(net, loss, x, y)
    y_hat, caches = net.forward(params, x, key=key, drop_rate=drop_rate)
    value = loss.value(caches[-1].z, y_hat, y)
    grads, deltas = net.backward_deltas(params, caches, loss, y)
    layers = tuple(
        LayerTrace(z=c.z, a=c.a, delta=d, dw=g["w"], db=g["b"], mask=c.mask)
        for c, d, g in zip(caches, deltas, grads)
    )
    x0 = jnp.asarray(x).astype(params[0]["w"].dtype)
    return BackpropTrace(layers=layers, loss=value, x=x0, y=y, sizes=net.sizes,
                         activations=net.activations, loss_name=loss.name)


def _sequential_trace(net, loss, params, x, y, *, key, drop_rate) -> BackpropTrace:
    """:func:`backprop_trace` of a Sequential: its forward caches in training mode from
    ``net.init_state()`` and :meth:`fnn.Sequential.backward_deltas` (as ``mode="manual"``)."""
    check_manual(net)
    net.check_params(params)
    x, y, _ = obj.prepare_batch(net, loss, x, y)
    y_hat, caches, _ = net.forward_state(params, net.init_state(), x, key=key,
                                         drop_rate=drop_rate)
    value = loss.value(net.output_logits(caches), y_hat, y)
    grads, deltas = net.backward_deltas(params, caches, loss, y)
    x_in = jnp.asarray(x).astype(net.dtype)
    # Every layer's output X(i+1), by the layers' own forward in the order and with the keys of
    # fnn.nn.layers.chain.forward (the caches keep inputs, not outputs, of some layers).
    outs, h = [], x_in
    for i, (layer, p, st) in enumerate(zip(net.layers, params, net.init_state())):
        k = None if key is None else jax.random.fold_in(key, i)
        h = layer.forward(p, st, h, key=k, training=True, drop_rate=drop_rate)[0]
        outs.append(h)
    layers, kinds, names = [], [], []
    for layer, c, d, g, a in zip(net.layers, caches.layers, deltas, grads, outs):
        fused = callable(getattr(layer, "backward_from_delta", None))
        mask = c if isinstance(layer, Dropout) else None
        layers.append(LayerTrace(z=c.z if fused else None, a=a, delta=d,
                                 dw=_first(g, "w", "scale"), db=_first(g, "b", "bias"),
                                 mask=mask, grads=g))
        kinds.append(type(layer).__name__)
        names.append(layer.activation if fused else "")
    return BackpropTrace(layers=tuple(layers), loss=value, x=x_in, y=y, sizes=net.shapes,
                         activations=tuple(names), loss_name=loss.name, kinds=tuple(kinds),
                         network=net.describe())
