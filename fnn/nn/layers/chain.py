"""Chaining a sequence of layers: shapes, init, forward and backward — written once, used by
:class:`fnn.Sequential` and :class:`fnn.nn.layers.Residual`. It knows nothing of any layer's
kind: it calls the layer protocol (:mod:`fnn.nn.protocol`) and nothing else.

    forward:   X(0) = X;  X(i+1), cache(i), state(i)' = layer_i.forward(params(i), state(i), X(i))
    backward:  G(n) = ∂L/∂X(n);  grads(i), G(i) = layer_i.backward(params(i), cache(i), G(i+1))

A layer with a fused activation (``backward_from_delta``) is stepped through δ(i) = ∂L/∂Z(i):
the top one may be handed δ directly (a fused loss's (ŷ − y)/N). Dropout keys: layer i gets
``fold_in(key, i)``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax

Array = jax.Array

_PROTOCOL = ("output_shape", "init", "forward", "backward")


def describe(i: int, layer, prefix: str = "layers") -> str:
    return f"{prefix}[{i}] ({type(layer).__name__})"


def inner_layers(layer) -> Optional[tuple]:
    """The inner layers of a container layer (a Residual's ``layers``), or None."""
    inner = getattr(layer, "layers", None)
    return inner if isinstance(inner, tuple) and inner else None


def layer_str(layer) -> str:
    """``Type(fields that differ from their defaults)``; a container shows its inner layers,
    ``Residual[Conv2D(8) -> BatchNorm()]``."""
    inner = inner_layers(layer)
    if inner is not None:  # its scalar fields too: Repeat(4)[TransformerBlock(4)]
        head = type(layer).__name__ if not dataclasses.is_dataclass(layer) else _args(
            layer, lambda v: isinstance(v, (bool, int, float, str)))
        return head.removesuffix("()") + "[" + " -> ".join(layer_str(x) for x in inner) + "]"
    if not dataclasses.is_dataclass(layer):
        return type(layer).__name__
    return _args(layer, lambda v: True)


def _args(layer, keep) -> str:
    """``Type(fields that differ from their defaults)``, of the fields whose value ``keep``s."""
    args = []
    for f in dataclasses.fields(layer):
        if not f.init or not f.repr:
            continue
        value = getattr(layer, f.name)
        if not keep(value):
            continue
        if f.name == "strides" and value == getattr(layer, "pool_size", None):
            continue  # a pool's default stride is its window
        if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
            value = value[0]  # a square window / stride as one int
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        args.append(repr(value) if f.default is dataclasses.MISSING else f"{f.name}={value!r}")
    return f"{type(layer).__name__}({', '.join(args)})"


def shapes(layers: Sequence, input_shape: tuple, prefix: str = "layers") -> tuple[tuple, ...]:
    """Every layer's input shape, then the output shape (len(layers) + 1 shapes).

    Raises:
      ValueError: ``layers[i] (Type): <the layer's message>`` for the first layer that does not
        fit, or that is not a layer.
    """
    out = [tuple(input_shape)]
    for i, layer in enumerate(layers):
        missing = [m for m in _PROTOCOL if not callable(getattr(layer, m, None))]
        if missing:
            raise ValueError(f"{describe(i, layer, prefix)}: {layer!r} is not a layer; expected"
                             f" the methods {', '.join(_PROTOCOL)}")
        try:
            out.append(tuple(int(d) for d in layer.output_shape(out[-1])))
        except ValueError as e:
            raise ValueError(f"{describe(i, layer, prefix)}: {e}") from None
    return tuple(out)


def init(layers: Sequence, in_shapes: Sequence[tuple], key: Array, dtype, *,
         keys: Optional[Sequence] = None) -> tuple[tuple, tuple]:
    """(params, state): one entry per layer; the key is split once per layer (``keys``: one key
    per layer, given by the container instead)."""
    if keys is None:
        keys = jax.random.split(key, len(layers))
    pairs = [layer.init(k, s, dtype) for layer, k, s in zip(layers, keys, in_shapes)]
    return tuple(p for p, _ in pairs), tuple(s for _, s in pairs)


def init_state(layers: Sequence, in_shapes: Sequence[tuple], dtype) -> tuple:
    """Every layer's initial state ({} for stateless layers), without drawing parameters."""
    out = []
    for layer, s in zip(layers, in_shapes):
        fn = getattr(layer, "init_state", None)
        if fn is not None:
            out.append(fn(s, dtype))
        else:  # the protocol's init, traced abstractly first: nothing is drawn (or compiled)
            out.append(_state_from_init(layer, s, dtype))
    return tuple(out)


def _state_from_init(layer, in_shape: tuple, dtype):
    """A layer's initial state from its ``init``: the empty tree when ``jax.eval_shape`` finds
    no state leaves (a Dense), else the state of a real draw (its params are dropped)."""
    def draw():
        return layer.init(jax.random.key(0), in_shape, dtype)[1]

    leaves, tree = jax.tree.flatten(jax.eval_shape(draw))
    return draw() if leaves else jax.tree.unflatten(tree, [])


def forward(layers: Sequence, params: Sequence, state: Sequence, x: Array, *, key=None,
            training: bool = False, drop_rate=None, keys: Optional[Sequence] = None,
            outputs: bool = False):
    """X(n) from X(0) = x; layer i gets the key ``fold_in(key, i)`` (``keys``: one key per layer,
    given by the container instead; None: no randomness).

    Returns:
      (X(n), per-layer caches, per-layer new states), and with ``outputs`` also every layer's
      output (X(1), ..., X(n)).
    """
    if keys is None:
        keys = [None if key is None else jax.random.fold_in(key, i) for i in range(len(layers))]
    caches, states, outs = [], [], []
    for layer, p, s, k in zip(layers, params, state, keys):
        x, cache, s = layer.forward(p, s, x, key=k, training=training, drop_rate=drop_rate)
        caches.append(cache)
        states.append(s)
        outs.append(x)
    if outputs:
        return x, tuple(caches), tuple(states), tuple(outs)
    return x, tuple(caches), tuple(states)


def backward(layers: Sequence, params: Sequence, caches: Sequence, grad_out: Optional[Array], *,
             top_delta: Optional[Array] = None) -> tuple[tuple, Array, tuple]:
    """Every layer's backward in reverse.

    Args:
      grad_out: ∂L/∂X(n) (ignored when ``top_delta`` is given).
      top_delta: δ = ∂L/∂Z of the last layer (which must have ``backward_from_delta``).
    Returns:
      (grads like ``params``, ∂L/∂X(0), deltas): deltas[i] is δ(i) = ∂L/∂Z(i) for a layer with
      a fused activation, else ∂L/∂X(i+1) (the gradient of its output).
    """
    n = len(layers)
    grads, deltas = [None] * n, [None] * n
    g = grad_out
    for i in range(n - 1, -1, -1):
        layer, p, c = layers[i], params[i], caches[i]
        if callable(getattr(layer, "backward_from_delta", None)):
            d = top_delta if (i == n - 1 and top_delta is not None) else layer.delta(c, g)
            grads[i], g = layer.backward_from_delta(p, c, d)
        else:
            d = g
            grads[i], g = layer.backward(p, c, g)
        deltas[i] = d
    return tuple(grads), g, tuple(deltas)


def kinks(layers: Sequence, caches: Sequence) -> list:
    """Every layer's kink patterns (boolean arrays that a finite-difference step must not flip:
    ReLU signs, max-pool argmaxes), from the layers that define ``kinks(cache)``."""
    out = []
    for layer, c in zip(layers, caches):
        fn = getattr(layer, "kinks", None)
        if callable(fn):
            out += fn(c)
    return out
