"""``net.summary()``: a table of a network's layers — output shape, parameters, activation
bytes and forward FLOPs per example — and the totals of a training run.

One row per layer; a container layer (a Residual) is followed by its inner layers, indented.
Per row, for one example (no batch axis):

    params            the number of entries of the layer's parameter arrays (a container: its
                      inner layers' together)
    activation bytes  its output: prod(output shape) × bytes per value of the net's dtype
    FLOPs             its forward in evaluation: the layer's own ``flops(input_shape)``
                      (the formula lives with the layer, in XLA's convention: a multiply-add
                      is 2, exp / tanh / rsqrt are transcendentals, not FLOPs); a layer without
                      the method gets XLA's cost analysis of its own forward on one example.
                      A container's row is its own ``flops`` (a Residual's addition) plus its
                      inner rows.

Totals: parameters and their bytes, the network state's bytes (BatchNorm statistics), the
optimizer state's bytes for ``optimizer`` (``jax.eval_shape`` of its ``init``: no array is
allocated), the forward FLOPs and activation bytes per example, and the FLOPs of one training
step, estimated as 3 × forward × batch (the backward of a layer costs about twice its forward:
one product for ∂L/∂W and one for ∂L/∂X; the optimizer's update is not counted).

Everything comes from shapes (``jax.eval_shape``); only the XLA fallback compiles, one small
program per layer without ``flops``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.nn.layers import chain

TRAIN_STEP_FACTOR = 3  # forward + backward ≈ 3 × forward


class Row(NamedTuple):
    """One layer: ``path`` ("2" or "2.0" for inner layer 0 of layer 2), ``depth`` (0 at top),
    ``layer`` (its description), ``output_shape``, ``params``, ``activation_bytes``,
    ``flops`` and ``flops_from`` ("formula" or "xla")."""

    path: str
    depth: int
    layer: str
    output_shape: tuple
    params: int
    activation_bytes: int
    flops: int
    flops_from: str


def _size(tree) -> tuple[int, int]:
    """(entries, bytes) of every array leaf of a pytree of arrays or ShapeDtypeStructs."""
    leaves = jax.tree.leaves(tree)
    count = sum(math.prod(leaf.shape) for leaf in leaves)
    nbytes = sum(math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize for leaf in leaves)
    return int(count), int(nbytes)


def xla_flops(layer, input_shape: tuple, params, state, dtype) -> int:
    """XLA's FLOPs of ``layer``'s evaluation forward on one example (cost analysis of the
    compiled program; params and state are arguments, so nothing is constant-folded)."""
    def forward(p, s, x):
        return layer.forward(p, s, x, training=False)[0]

    if getattr(layer, "integer_inputs", False):  # token ids (an Embedding's input)
        dtype = jnp.int32
    x = jax.ShapeDtypeStruct((1, *input_shape), dtype)
    return compiled_flops(jax.jit(forward).lower(params, state, x).compile())


def compiled_flops(compiled) -> int:
    """``compiled.cost_analysis()["flops"]`` (0 where XLA reports none)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return int(round(float((cost or {}).get("flops", 0.0) or 0.0)))


def _params_per_inner(inner, in_shape, params, dtype) -> bool:
    """Whether a container's params are one entry per inner layer, as the chain lays them out
    (a Residual's); a stack of copies (Repeat's leading axis) is not."""
    want = jax.eval_shape(lambda: chain.init(inner, chain.shapes(inner, in_shape)[:-1],
                                             jax.random.key(0), dtype)[0])
    have = jax.eval_shape(lambda: params)
    return jax.tree.structure(want) == jax.tree.structure(have) and all(
        a.shape == b.shape for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(have)))


def _rows(layers, shapes, params, states, dtype, prefix: str, depth: int) -> list[Row]:
    rows = []
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        p, s = params[i], states[i]
        in_shape, out_shape = shapes[i], shapes[i + 1]
        inner = chain.inner_layers(layer)
        if inner is not None and not _params_per_inner(inner, in_shape, p, dtype):
            inner = None  # its params are not one entry per inner layer (Repeat's stack)
        sub = []
        if inner is not None:
            sub = _rows(inner, chain.shapes(inner, in_shape), p, s, dtype, f"{path}.", depth + 1)
        if callable(getattr(layer, "flops", None)):
            own, source = int(layer.flops(in_shape)), "formula"
            flops = own + sum(r.flops for r in sub if r.depth == depth + 1)
        else:
            flops, source = xla_flops(layer, in_shape, p, s, dtype), "xla"
        label = type(layer).__name__ if inner is not None else chain.layer_str(layer)
        rows.append(Row(path, depth, label, tuple(out_shape), _size(p)[0],
                        math.prod(out_shape) * jnp.dtype(dtype).itemsize, flops, source))
        rows += sub
    return rows


@dataclass(frozen=True)
class NetworkSummary:
    """The table and its totals (see the module docstring); ``str()`` renders it.

    Attributes:
      rows: the :class:`Row` s, containers followed by their inner layers.
      input_shape, dtype: the network's.
      params, param_bytes: parameter entries and bytes.  state_bytes: network state bytes.
      optimizer_state_bytes: None without an optimizer.
      forward_flops, activation_bytes: per example (sums of the top-level rows / of all rows).
      batch_size: None if not given.  train_step_flops: 3 × forward × batch, or None.
    """

    rows: tuple
    input_shape: tuple
    dtype: str
    params: int
    param_bytes: int
    state_bytes: int
    optimizer_state_bytes: Optional[int]
    forward_flops: int
    activation_bytes: int
    batch_size: Optional[int]
    train_step_flops: Optional[int]

    def to_dict(self) -> dict:
        """Plain values (rows as dicts): what ``fnn summary --json`` prints."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "rows"}
        out["input_shape"] = list(self.input_shape)
        out["rows"] = [{**r._asdict(), "output_shape": list(r.output_shape)} for r in self.rows]
        return out

    def __str__(self) -> str:
        head = ("#", "layer", "output shape", "params", "activation bytes", "FLOPs")
        cells = [(("  " * r.depth) + r.path, ("  " * r.depth) + r.layer, str(r.output_shape),
                  f"{r.params:,}", f"{r.activation_bytes:,}",
                  f"{r.flops:,}" + ("*" if r.flops_from == "xla" else "")) for r in self.rows]
        right = (False, False, False, True, True, True)
        widths = [max(len(h), *(len(c[j]) for c in cells)) for j, h in enumerate(head)]

        def line(items):
            return "  ".join(s.rjust(w) if r else s.ljust(w)
                             for s, w, r in zip(items, widths, right)).rstrip()

        out = [f"input {self.input_shape} {self.dtype}; per example",
               line(head), "  ".join("-" * w for w in widths)] + [line(c) for c in cells]
        out.append(f"parameters: {self.params:,} ({human_bytes(self.param_bytes)})"
                   + (f"; network state: {human_bytes(self.state_bytes)}"
                      if self.state_bytes else ""))
        if self.optimizer_state_bytes is not None:
            out.append(f"optimizer state: {human_bytes(self.optimizer_state_bytes)}")
        out.append(f"forward: {human_count(self.forward_flops)}FLOPs, activations "
                   f"{human_bytes(self.activation_bytes)} per example")
        if self.train_step_flops is not None:
            out.append(f"training step (batch {self.batch_size}): ~{human_count(self.train_step_flops)}"
                       f"FLOPs ({TRAIN_STEP_FACTOR} x forward x batch)")
        if any(r.flops_from == "xla" for r in self.rows):
            out.append("* FLOPs from XLA's cost analysis (the layer has no flops formula)")
        return "\n".join(out)


def human_bytes(n: int) -> str:
    """``123 B``, ``4.5 KiB``, ``1.2 MiB``, ..."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def human_count(n: int) -> str:
    """``950 ``, ``1.23 k``, ``4.5 M``, ``7.8 G`` (a unit prefix and a space)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} "


def summarize(net, *, optimizer: Any = None, batch_size: Optional[int] = None) -> NetworkSummary:
    """The summary of a container with ``layers``, ``shapes``, ``dtype``, ``init`` and
    ``init_state`` (:class:`fnn.Sequential`).

    Args:
      net: the network.
      optimizer: an :class:`fnn.optim.Optimizer` (anything with ``init(params)``) whose state
        is counted, or None.
      batch_size: examples per training step, for the step's FLOPs; None leaves them out.
    Returns:
      a :class:`NetworkSummary`.
    Raises:
      ValueError: a batch size that is not a positive int (one line).
    """
    if batch_size is not None and (isinstance(batch_size, bool) or
                                   not isinstance(batch_size, (int, np.integer)) or
                                   batch_size < 1):
        raise ValueError(f"batch_size: {batch_size!r}; expected a positive integer or None")
    dtype = jnp.dtype(net.dtype)
    params = jax.eval_shape(net.init, jax.random.key(0))
    states = jax.eval_shape(net.init_state)
    rows = tuple(_rows(net.layers, net.shapes, params, states, dtype, "", 0))
    count, nbytes = _size(params)
    opt_bytes = None
    if optimizer is not None:
        opt_bytes = _size(jax.eval_shape(optimizer.init, params))[1]
    forward = sum(r.flops for r in rows if r.depth == 0)
    return NetworkSummary(
        rows=rows, input_shape=tuple(net.input_shape), dtype=str(dtype), params=count,
        param_bytes=nbytes, state_bytes=_size(states)[1], optimizer_state_bytes=opt_bytes,
        forward_flops=forward, activation_bytes=sum(r.activation_bytes for r in rows),
        batch_size=None if batch_size is None else int(batch_size),
        train_step_flops=None if batch_size is None else
        TRAIN_STEP_FACTOR * forward * int(batch_size))
