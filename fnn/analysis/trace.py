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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.analysis import diagnostics as diag
from fnn.nn import losses as losses_mod
from fnn.nn import objective as obj

Array = jax.Array


class LayerTrace(NamedTuple):
    """One dense layer's quantities for one batch (batch-first).

    z: Z(l) (batch, out).      a: A(l) = g(Z(l)) (batch, out).
    delta: δ(l) = ∂L/∂Z(l) (batch, out).
    dw: ∂L/∂W(l) (in, out).    db: ∂L/∂b(l) (out,).
    mask: the scaled dropout mask M(l) on the layer's input (batch, in), or None.
    """

    z: Array
    a: Array
    delta: Array
    dw: Array
    db: Array
    mask: Optional[Array]


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

    def __getitem__(self, i) -> LayerTrace:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    @property
    def grads(self) -> tuple:
        """The gradients as a params-shaped pytree: ({"w": ∂W(1), "b": ∂b(1)}, ...)."""
        return tuple({"w": t.dw, "b": t.db} for t in self.layers)

    def rows(self) -> list[dict]:
        """One dict per layer: sizes, activation, Frobenius norms ‖Z‖ ‖A‖ ‖δ‖ ‖∂W‖ ‖∂b‖, the
        mean g'(Z) ("slope"), the fractions of saturated entries and dead units (see
        :mod:`fnn.diagnostics`; None for softmax) and the dropout keep fraction (None without
        dropout)."""
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

    def summary(self) -> str:
        """A readable table: one line per layer (see :meth:`rows`), loss and shapes on top."""
        from fnn.experiment.report import format_table

        batch = int(np.shape(self.x)[0])
        head = (f"backprop trace: {self.loss_name} loss {float(self.loss):.6g}  batch {batch}  "
                f"network {self.sizes}  dtype {jnp.asarray(self.x).dtype}")
        shapes = ("shapes: Z, A, delta (batch, out); dW (in, out); db (out,).  |.|: Frobenius "
                  "norm.\nslope: mean g'(Z).  saturated: entries with g'(Z) < 10% of max g'.  "
                  "dead: units saturated on every example.  kept: dropout keep fraction.")
        rows = self.rows()
        cols = list(rows[0])
        if all(r["kept"] is None for r in rows):
            cols.remove("kept")
            shapes = shapes.replace("  kept: dropout keep fraction.", "")
        return "\n".join([head, format_table(rows, cols, floatfmt=".3g"), shapes])

    def __str__(self) -> str:
        try:
            return self.summary()
        except (TypeError, ValueError, IndexError):  # leaves that are not arrays (tree.map'd)
            return repr(self)


def _nan_to_none(v: float):
    return None if v != v else v


def backprop_trace(net, loss, params, x, y, *, key=None, drop_rate=None) -> BackpropTrace:
    """Every layer's Z(l), A(l), δ(l), ∂W(l), ∂b(l) (and dropout mask) for one batch.

    Args:
      net: :class:`fnn.MLP`.
      loss: "mse", "binary_cross_entropy" or "cross_entropy" (or a Loss).
      params: from ``net.init``.
      x: (batch, sizes[0]) inputs, or one example (sizes[0],).
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
