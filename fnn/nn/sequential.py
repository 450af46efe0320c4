"""``Sequential``: a network as a chain of layers, with the network protocol of
:mod:`fnn.nn.protocol` (what the engine trains, in both gradient modes).

    forward:   X(0) = X;  X(i+1) = layer_i(X(i));  ŷ = X(n)
    backward:  δ(L) = loss.output_delta(g_L, Z(L), ŷ, y) if the last layer has an activation
               (fused (ŷ − y)/N for softmax / sigmoid cross-entropy), else ∇_ŷ L; then every
               layer's own backward in reverse (:mod:`fnn.nn.layers.chain`).

Shapes are inferred when the network is built, from ``input_shape`` (one example, no batch axis):
a layer that does not fit raises a one-line ValueError ``layers[i] (Type): got input shape S;
expected ...``, before anything is compiled. Params: a tuple with one entry per layer (a dict,
``{}`` for parameterless layers, a tuple for :class:`~fnn.nn.layers.Residual`); state (BatchNorm
running statistics) is a separate tuple of the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn.nn import activations as acts
from fnn.nn import losses as losses_mod
from fnn.nn.layers import chain
from fnn.nn.layers.base import shape_str
from fnn.nn.layers.dropout import Dropout
from fnn.nn.precision import check_dtype
from fnn.nn.protocol import LayerView

Array = jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class SequentialCache:
    """What a Sequential's forward pass keeps. Indexing, ``len`` and iteration go over
    ``layers`` (``caches[-1].z`` is Z(L) of a Dense output layer).

    layers: one cache per layer.  y: the output ŷ = X(n).  outputs: every layer's output
    X(1), ..., X(n) (references to arrays the forward pass computes anyway).
    """

    layers: tuple
    y: Array
    outputs: tuple = ()

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)


def _fused(layer) -> bool:
    """Whether a layer has a fused activation (``backward_from_delta`` from δ = ∂L/∂Z)."""
    return callable(getattr(layer, "backward_from_delta", None))


def _walk(layers, prefix="layers"):
    """(description, layer, is_top_level_last) for every layer, the inner layers of composite
    ones (Residual, TransformerBlock, Repeat: a ``layers`` tuple) included."""
    for i, layer in enumerate(layers):
        yield chain.describe(i, layer, prefix), layer, i == len(layers) - 1 and prefix == "layers"
        inner = getattr(layer, "layers", None)
        if isinstance(inner, tuple):
            yield from _walk(inner, f"{prefix}[{i}].layers")


_layer_str = chain.layer_str


def _view(layer, cache, a, shape) -> LayerView:
    """A layer's view from its cache; ``a`` None: the activation's output from the cache (a
    layer with an activation) or None."""
    fused = _fused(layer)
    if a is None and fused:
        a = cache.a
    return LayerView(kind=type(layer).__name__, activation=layer.activation if fused else "",
                     z=cache.z if fused else None, a=a,
                     mask=cache if isinstance(layer, Dropout) else None, output_shape=shape)


@dataclass(frozen=True)
class Sequential:
    """A chain of layers with shapes inferred from ``input_shape``.

    Args:
      layers: the layers, in order (a sequence; stored as a tuple).
      input_shape: one example's shape without the batch axis, e.g. (28, 28, 1) or (4,).
      dtype: parameter dtype name.

    Raises:
      ValueError: one line naming the layer index, type, the shape it got and what it expected
        (or the bad argument); softmax anywhere but in the last layer.
    """

    manual_backward: ClassVar[bool] = True  # every layer's backward is hand-written

    layers: tuple
    input_shape: tuple = field(kw_only=True)
    dtype: str = field(default="float32", kw_only=True)
    shapes: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.layers, (list, tuple)) or not self.layers:
            raise ValueError(f"layers: {self.layers!r}; expected a non-empty sequence of layers")
        shape = self.input_shape
        if (isinstance(shape, (int, np.integer)) or not isinstance(shape, Sequence) or not shape
                or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                       for d in shape)):
            raise ValueError(f"input_shape: {shape!r}; expected a tuple of positive ints like"
                             f" (28, 28, 1)")
        check_dtype(self.dtype)
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "input_shape", tuple(int(d) for d in shape))
        object.__setattr__(self, "shapes", chain.shapes(layers, self.input_shape))
        for where, layer, last in _walk(layers):
            if getattr(layer, "activation", None) == "softmax" and not last:
                raise ValueError(f"{where}: activation 'softmax' is only allowed in the last"
                                 f" layer; use it as the output activation")

    # --- description -----------------------------------------------------------------------------
    @property
    def output_shape(self) -> tuple:
        return self.shapes[-1]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def output(self) -> str:
        """The last layer's activation name; "identity" if it has none."""
        top = self.layers[-1]
        return top.activation if _fused(top) else "identity"

    @property
    def drop_rate(self):
        """The default dropout rate (what ``HParams.drop_rate=None`` means): None — each Dropout
        layer keeps its own rate — or 0.0 for a network without Dropout.
        ``forward_state(..., drop_rate=q)`` sets every Dropout to q (a sweep over the rate)."""
        return None if self.dropout_rates() else 0.0

    def dropout_rates(self) -> tuple:
        """The rate of every Dropout layer, in order (Residuals searched)."""
        return tuple(float(layer.rate) for _, layer, _ in _walk(self.layers)
                     if isinstance(layer, Dropout))

    def uses_dropout(self, drop_rate) -> bool:
        """Whether a training step at ``drop_rate`` (None: the layers' own rates; a number; a
        traced scalar) draws dropout masks. Static: decides whether the step splits a key."""
        rates = self.dropout_rates()
        if not rates:
            return False
        if drop_rate is None:
            return any(r > 0 for r in rates)
        return isinstance(drop_rate, jax.Array) or float(drop_rate) > 0

    def replace(self, **changes) -> "Sequential":
        """A copy with some fields changed (e.g. ``net.replace(dtype="float64")``)."""
        fields = {"layers": self.layers, "input_shape": self.input_shape, "dtype": self.dtype}
        fields.update(changes)
        layers = fields.pop("layers")
        return Sequential(layers, **fields)

    def unrolled(self, params) -> tuple:
        """(network, params, blocks) with every layer that has ``unroll`` (a Repeat) replaced by
        its copies; ``blocks[k] = (i, j)``: entry k is copy j of layer i (j None: layer i whole).
        The same function of the same numbers; dropout keys are the unrolled chain's."""
        layers, ps, blocks = [], [], []
        for i, (layer, p) in enumerate(zip(self.layers, params)):
            unroll = getattr(layer, "unroll", None)
            pairs = unroll(p) if unroll is not None else ((layer, p),)
            for j, (inner, q) in enumerate(pairs):
                layers.append(inner)
                ps.append(q)
                blocks.append((i, None if unroll is None else j))
        if all(j is None for _, j in blocks):
            return self, params, tuple(blocks)
        return self.replace(layers=tuple(layers)), tuple(ps), tuple(blocks)

    def describe(self) -> str:
        """A one-line summary: input shape, every layer (non-default fields), output shape and
        parameter count, e.g. ``(16, 16, 1) -> Conv2D(16, activation='relu') -> ... -> (5,)``."""
        parts = [str(self.input_shape)] + [_layer_str(layer) for layer in self.layers]
        return " -> ".join(parts + [str(self.output_shape)]) + f"  ({self.num_params():,} params)"

    def summary(self, *, optimizer=None, batch_size: Optional[int] = None):
        """A table of the layers (output shape, parameters, activation bytes and forward FLOPs
        per example) and the totals; ``print(net.summary())`` shows it. See
        :func:`fnn.nn.summary.summarize`.

        Args:
          optimizer: an :class:`fnn.optim.Optimizer` whose state bytes are counted, or None.
          batch_size: the training batch, for the FLOPs of one step; None leaves them out.
        Returns:
          a :class:`fnn.nn.summary.NetworkSummary`.
        """
        from fnn.nn import summary

        return summary.summarize(self, optimizer=optimizer, batch_size=batch_size)

    # --- params and state ------------------------------------------------------------------------
    def init(self, key: Array) -> tuple:
        """Parameters: a tuple, one entry per layer; layer i draws from ``param_keys(key)[i]``."""
        return chain.init(self.layers, self.shapes[:-1], key, jnp.dtype(self.dtype),
                          keys=self.param_keys(key))[0]

    def param_keys(self, key: Array) -> tuple:
        """The key each layer's ``init`` draws from: ``split(key, len(layers))``."""
        return tuple(jax.random.split(key, len(self.layers)))

    def dropout_keys(self, key: Array) -> tuple:
        """The key each layer's training randomness (dropout) draws from: ``fold_in(key, i)``."""
        return tuple(jax.random.fold_in(key, i) for i in range(len(self.layers)))

    def init_state(self) -> tuple:
        """The initial state: one entry per layer ({} for stateless ones)."""
        return chain.init_state(self.layers, self.shapes[:-1], jnp.dtype(self.dtype))

    def _param_shapes(self):
        """The params' ShapeDtypeStructs (traced once per network, then kept)."""
        cached = self.__dict__.get("_param_shape_cache")
        if cached is None:
            cached = jax.eval_shape(self.init, jax.random.key(0))
            object.__setattr__(self, "_param_shape_cache", cached)
        return cached

    def param_layers(self) -> tuple[tuple[int, str], ...]:
        """(index, type name) of every layer with parameters."""
        return tuple((i, type(layer).__name__)
                     for i, (layer, p) in enumerate(zip(self.layers, self._param_shapes()))
                     if jax.tree.leaves(p))

    def num_params(self) -> int:
        return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(self._param_shapes()))

    # --- validation ------------------------------------------------------------------------------
    def check_input(self, x) -> None:
        """One-line ValueError if ``x`` is not a (batch, *input_shape) batch of finite values
        (finiteness only for concrete arrays)."""
        shape = tuple(np.shape(x))
        want = ", ".join(str(d) for d in self.input_shape)
        if len(shape) != len(self.input_shape) + 1 or shape[1:] != self.input_shape:
            raise ValueError(f"x: shape {shape}; expected a batch of shape (batch, {want})")
        if shape[0] == 0:
            raise ValueError(f"x: shape {shape} is an empty batch; expected at least one example"
                             f" (batch >= 1, {want})")
        check = getattr(self.layers[0], "check_input", None)
        if callable(check):  # a first layer that takes integer ids checks them itself
            check(x)
        if not isinstance(x, jax.core.Tracer):
            arr = np.asarray(x)
            if arr.dtype.kind == "f":
                bad = ~np.isfinite(arr)
                if bad.any():
                    first = tuple(int(i) for i in np.argwhere(bad)[0])
                    raise ValueError(f"x: {int(bad.sum())} non-finite value(s) (NaN/inf), first"
                                     f" at index {first}; expected finite inputs")

    def check_params(self, params) -> None:
        """ValueError naming the layer, the leaf and both shapes if ``params`` do not fit: their
        count (one entry per layer) and every leaf's shape, the first layer that does not fit
        named (``params[2]['w']: shape (320, 3); expected (256, 3) for layers[2] (Dense)``)."""
        want = self._param_shapes()
        if not isinstance(params, (tuple, list)) or len(params) != len(self.layers):
            n = (f"{len(params)} entr{'y' if len(params) == 1 else 'ies'}"
                 if isinstance(params, (tuple, list))
                 else f"a {type(params).__name__}")
            first = ""
            if isinstance(params, (tuple, list)) and len(params) < len(self.layers):
                first = f" (none for {chain.describe(len(params), self.layers[len(params)])})"
            raise ValueError(f"params: {n}; expected a tuple of {len(self.layers)} entries, one "
                             f"per layer{first}")
        for i, (layer, w, p) in enumerate(zip(self.layers, want, params)):
            where = chain.describe(i, layer)
            if jax.tree.structure(w) != jax.tree.structure(p):
                raise ValueError(f"params[{i}]: structure {jax.tree.structure(p)}; expected"
                                 f" {jax.tree.structure(w)} for {where}")
            for (path, wl), pl in zip(jax.tree_util.tree_leaves_with_path(w), jax.tree.leaves(p)):
                if tuple(np.shape(pl)) != wl.shape:
                    raise ValueError(f"params[{i}]{jax.tree_util.keystr(path)}: shape"
                                     f" {shape_str(np.shape(pl))}; expected {shape_str(wl.shape)}"
                                     f" for {where}")

    # --- forward ---------------------------------------------------------------------------------
    def forward_state(self, params, state, x, *, key=None, drop_rate=None,
                      training: bool = True) -> tuple[Array, SequentialCache, tuple]:
        """Forward pass keeping every layer's cache.

        Args:
          params: from :meth:`init`; state: from :meth:`init_state` (or a previous step).
          x: (batch, *input_shape).
          key: dropout key (layer i gets fold_in(key, i)); None: no dropout.
          drop_rate: overrides every Dropout's rate when not None (may be traced).
          training: batch statistics (BatchNorm) and dropout (with a key); False: running
            statistics, no dropout.
        Returns:
          (ŷ (batch, *output_shape), caches, new state).
        """
        self.check_input(x)
        self.check_params(params)  # shapes only: free under jit (checked once, at tracing)
        x = jnp.asarray(x)
        if not self._keeps_integers(x):
            x = x.astype(self.dtype)
        keys = self.dropout_keys(key) if (training and key is not None) else None
        y, caches, new_state, outs = chain.forward(self.layers, params, state, x, keys=keys,
                                                   training=training, drop_rate=drop_rate,
                                                   outputs=True)
        return y, SequentialCache(caches, y, outs), new_state

    @property
    def integer_inputs(self) -> bool:
        """Whether the first layer declares ``integer_inputs`` (token ids for an Embedding)."""
        return bool(getattr(self.layers[0], "integer_inputs", False))

    def _keeps_integers(self, x) -> bool:
        """Integer inputs stay integer when the network takes ids (:attr:`integer_inputs`);
        every other input is cast to the network's dtype."""
        return jnp.issubdtype(x.dtype, jnp.integer) and self.integer_inputs

    def apply(self, params, x, *, key=None, drop_rate=None, state=None) -> Array:
        """ŷ. With a key: training mode (dropout, batch statistics); without: evaluation with
        ``state``'s running statistics (``init_state()`` when None)."""
        state = self.init_state() if state is None else state
        return self.forward_state(params, state, x, key=key, drop_rate=drop_rate,
                                  training=key is not None)[0]

    def layer_views(self, caches: SequentialCache) -> tuple:
        """One :class:`~fnn.nn.protocol.LayerView` per top-level layer of a forward pass; a layer
        with ``unroll`` (a Repeat) also gives its copies' views (``copies``), from its cache."""
        views = []
        for layer, c, a, shape in zip(self.layers, caches.layers, caches.outputs, self.shapes[1:]):
            unroll = getattr(layer, "unroll", None)
            copies = None if unroll is None else tuple(
                _view(inner, ci, None, shape) for inner, ci in unroll(c))
            views.append(_view(layer, c, a, shape)._replace(copies=copies))
        return tuple(views)

    def kink_patterns(self, caches: SequentialCache) -> list:
        """The layers' kink patterns (:func:`fnn.nn.layers.chain.kinks`)."""
        return chain.kinks(self.layers, caches.layers)

    def output_logits(self, caches: SequentialCache) -> Array:
        """Z(L), the last activation's input (ŷ itself when the last layer has none)."""
        if _fused(self.layers[-1]):
            return caches.layers[-1].z
        return caches.y

    # --- manual backward -------------------------------------------------------------------------
    def backward(self, params, caches: SequentialCache, loss, y: Array) -> tuple:
        """Gradients with the structure of ``params``: δ(L) from the loss, then every layer."""
        return self.backward_deltas(params, caches, loss, y)[0]

    def backward_deltas(self, params, caches: SequentialCache, loss, y: Array):
        """:meth:`backward`, also returning every layer's delta (see
        :func:`fnn.nn.layers.chain.backward`). Returns (grads, deltas)."""
        loss = losses_mod.get(loss)
        top = self.layers[-1]
        if _fused(top):
            c = caches.layers[-1]
            delta = loss.output_delta(top.act, c.z, c.a, y)  # δ(L)
            grads, _, deltas = chain.backward(self.layers, params, caches.layers, None,
                                              top_delta=delta)
        else:
            y_hat = caches.y
            grad = loss.output_delta(acts.get("identity"), y_hat, y_hat, y)  # ∇_ŷ L
            grads, _, deltas = chain.backward(self.layers, params, caches.layers, grad)
        return grads, deltas

    def vjp(self, params, caches: SequentialCache, grad_out: Array):
        """The hand-written VJP of ŷ: (grads, ∂L/∂X, deltas) from ∂L/∂ŷ."""
        return chain.backward(self.layers, params, caches.layers, grad_out)
