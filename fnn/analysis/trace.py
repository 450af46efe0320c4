"""Seeing backprop: every quantity of the notes' forward and backward pass for one batch.

    >>> trace = fnn.backprop_trace(net, "cross_entropy", params, x, y)
    >>> print(trace)                 # per layer: shapes, norms, dead / saturated units
    >>> trace[0].delta               # δ of net.layers[0]: (batch, units) for a Dense layer
    >>> trace.layers[-1].dw          # ∂L/∂W of the output layer

One row per top-level layer i of the network (``net.layers[i]``; an :class:`fnn.MLP` is a
Sequential of Dense and, with dropout, Dropout layers), in training mode (batch statistics;
dropout with a key) as ``loss_and_grad``, with X(0) = X (``trace.x``):

    Z(i) = the activation's input      A(i) = X(i+1), the layer's output
    δ(i) = ∂L/∂Z(i) for a layer with an activation, else ∂L/∂X(i+1)
    ∂W(i), ∂b(i): the layer's kernel ("w"; normalization: "scale") and bias gradients

* ``z`` is None for a layer without an activation; ``dw`` / ``db`` None where the layer has no
  such parameter; ``grads`` the layer's whole gradient entry (``{}`` for parameterless layers, the
  inner tuple for a Residual); ``mask``: a Dropout layer's scaled mask.
* Parameterless layers (pools, Flatten, Dropout, Activation) keep their rows: they show where the
  shapes change and how δ flows. A Residual block is one row (‖∂W‖ over every inner kernel).
  Slope / saturated / dead are those of :mod:`fnn.analysis.diagnostics`, for layers with an
  element-wise activation.
* A Repeat's copies are rows of their own (``layer`` its index, ``block`` the copy): the trace is
  of :meth:`~fnn.nn.protocol.Network.unrolled`, the same function with the copies as layers, so
  ``trace[k]`` counts them and ``trace.grads`` is shaped like the unrolled params (with dropout,
  the unrolled chain's keys draw the masks).

Nothing here computes a formula: the values are the network's forward caches, its
:meth:`~fnn.nn.protocol.Network.layer_views` and the deltas and gradients of
:meth:`~fnn.nn.protocol.Network.backward_deltas` — the very functions behind
``fnn.loss_and_grad(..., mode="manual")`` — so the trace's gradients are bitwise those of manual
mode (without L1/L2 penalties: the trace is of the data loss).

A :class:`BackpropTrace` is a pytree (``jax.tree.map``, ``jax.jit`` output); the layer types and
activations ride along as static metadata.
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
from fnn.nn.adapter import as_network

Array = jax.Array


class LayerTrace(NamedTuple):
    """One layer's quantities for one batch (batch-first; see the module docstring).

    z: Z(i) or None.  a: the layer's output.  delta: δ(i).
    dw: ∂L/∂W(i) or None.  db: ∂L/∂b(i) or None.
    mask: a Dropout layer's scaled mask, or None.  grads: the layer's parameter gradients.
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
      layers: one :class:`LayerTrace` per top-level layer (``trace[i]`` is ``trace.layers[i]``).
      loss: the data loss (scalar).
      x: X(0), the input as fed to the first layer.   y: dense targets (batch, K).
      sizes: every layer's input shape, then the output shape (one example's).
      activations: each layer's activation name ("" for none).  kinds: each layer's type.
      loss_name, network: the loss's name and the network's one-line description.
    """

    layers: tuple
    loss: Array
    x: Array
    y: Array
    sizes: tuple = field(default=(), metadata=dict(static=True))
    activations: tuple = field(default=(), metadata=dict(static=True))
    loss_name: str = field(default="", metadata=dict(static=True))
    kinds: tuple = field(default=(), metadata=dict(static=True))
    network: str = field(default="", metadata=dict(static=True))
    blocks: tuple = field(default=(), metadata=dict(static=True))  # (layer, copy or None)

    def __getitem__(self, i) -> LayerTrace:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    @property
    def grads(self) -> tuple:
        """The gradients as a params-shaped pytree (one entry per layer)."""
        return tuple(t.grads for t in self.layers)

    def rows(self) -> list[dict]:
        """One dict per layer: index and type, output shape, activation ("" for none), the
        Frobenius norms ‖Z‖ ‖A‖ ‖δ‖ ‖∂W‖ ‖∂b‖ (None where the layer has no such quantity), the
        mean g'(Z) ("slope"), the fractions of saturated entries and dead units (see
        :mod:`fnn.diagnostics`) and the dropout keep fraction."""
        out = []
        blocks = self.blocks or tuple((i, None) for i in range(len(self.layers)))
        for k, (t, kind, act) in enumerate(zip(self.layers, self.kinds, self.activations)):
            a = jnp.asarray(t.a)
            has_params = bool(jax.tree.leaves(t.grads))
            w_grads = diag.weight_leaves(t.grads)
            health = act and t.z is not None and acts.get(act).elementwise
            z = None if t.z is None else jnp.asarray(t.z)
            biases = _bias_leaves(t.grads) if has_params else []
            out.append({
                "layer": blocks[k][0],
                "block": blocks[k][1],
                "type": kind,
                "output": "x".join(str(d) for d in self.sizes[k + 1]),
                "activation": act,
                "|Z|": None if z is None else float(diag.frobenius(z)),
                "|A|": float(diag.frobenius(a)),
                "|delta|": float(diag.frobenius(t.delta)),
                "|dW|": float(diag.weight_norm(t.grads)) if w_grads else None,
                "|db|": (float(jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in biases)))
                         if biases else None),
                "slope": float(diag.mean_slope(act, z, a)) if health else None,
                "saturated": float(diag.saturated_fraction(act, z, a)) if health else None,
                "dead": float(diag.dead_fraction(act, z, a)) if health else None,
                "kept": None if t.mask is None else float(jnp.mean((t.mask > 0).astype(a.dtype))),
            })
        return out

    def summary(self) -> str:
        """A readable table: one line per layer (see :meth:`rows`), loss and network on top."""
        from fnn.util.table import format_table

        batch = int(np.shape(self.x)[0])
        head = (f"backprop trace: {self.loss_name} loss {float(self.loss):.6g}  batch {batch}  "
                f"dtype {jnp.asarray(self.loss).dtype}\nnetwork {self.network}")
        notes = ("layer: index in net.layers.  block: the copy of a Repeat.  output: the "
                 "layer's output shape (per example).  "
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
    had a mask, and the "block" column and its note when no layer was a Repeat's copy."""
    cols = list(rows[0])
    for col, note in (("kept", "  kept: dropout keep fraction."),
                      ("block", "  block: the copy of a Repeat.")):
        if all(r[col] is None for r in rows):
            cols.remove(col)
            notes = notes.replace(note, "")
    return rows, cols, notes


def _bias_leaves(layer_grads) -> list:
    return [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(layer_grads)
            if isinstance(path[-1], jax.tree_util.DictKey) and path[-1].key in ("b", "bias")]


def _first(grads: dict, *names):
    for n in names:
        if isinstance(grads, dict) and n in grads:
            return grads[n]
    return None


def backprop_trace(net, loss, params, x, y, *, key=None, drop_rate=None) -> BackpropTrace:
    """Every layer's Z, A, δ, ∂W, ∂b (and dropout mask) for one batch.

    Args:
      net: a :class:`~fnn.nn.protocol.Network` with a hand-written backward
        (:class:`fnn.Sequential`, :class:`fnn.MLP`).
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
    net = as_network(net, params=params, x=x, mode="manual")
    net.check_params(params)
    described = net.describe()
    net, params, blocks = net.unrolled(params)  # a Repeat's copies: one row each
    x, y, _ = obj.prepare_batch(net, loss, x, y)
    y_hat, caches, _ = net.forward_state(params, net.init_state(), x, key=key,
                                         drop_rate=drop_rate)
    value = loss.value(net.output_logits(caches), y_hat, y)
    grads, deltas = net.backward_deltas(params, caches, loss, y)
    views = net.layer_views(caches)
    layers = tuple(LayerTrace(z=v.z, a=v.a, delta=d, dw=_first(g, "w", "scale"),
                              db=_first(g, "b", "bias"), mask=v.mask, grads=g)
                   for v, d, g in zip(views, deltas, grads))
    sizes = (tuple(net.input_shape),) + tuple(v.output_shape for v in views)
    x = x if net.integer_inputs else jnp.asarray(x).astype(net.dtype)  # ids stay ids
    return BackpropTrace(layers=layers, loss=value, x=x, y=y,
                         sizes=sizes, activations=tuple(v.activation for v in views),
                         loss_name=loss.name, kinds=tuple(v.kind for v in views),
                         network=described, blocks=tuple(blocks or ()))
