"""The multilayer perceptron: a :class:`~fnn.nn.sequential.Sequential` of Dense (and Dropout)
layers, described by its widths.

Forward (the notes):   A(0) = X;  Z(l) = (A(l−1) ⊙ M(l)) W(l) + b(l);  A(l) = g(Z(l));  ŷ = A(L)
Backward (the notes):  δ(L) from the loss (fused (ŷ − y)/N or ∇_A L ⊙ g'(Z(L)));
                       δ(l) = ((δ(l+1) W(l+1)ᵀ) ⊙ M(l+1)) ⊙ g'(Z(l));
                       ∂L/∂W(l) = (A(l−1) ⊙ M(l))ᵀ δ(l);  ∂L/∂b(l) = Σ_rows δ(l).

M(l) is the inverted-dropout mask on the input of dense layer l > 1 (a ``Dropout`` layer before
it, present only when ``drop_rate > 0``). Every formula is the layers' own: an MLP adds no math,
only the description by widths and the key streams of the pre-Sequential MLP (so that results
written before the change reproduce bitwise):

* init: the key is split once per *dense* layer (``split(key, L)``), dense layer l drawing from
  the l-th key;
* dropout: the mask on dense layer l's input is drawn from ``fold_in(key, l)`` (l = 1..L−1,
  0-based dense index).

Parameters: a tuple with one ``{"w": (in, out), "b": (out,)}`` dict per dense layer, and ``{}``
for each Dropout layer between them (none when ``drop_rate == 0``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import jax
import numpy as np

from fnn.nn import activations as acts
from fnn.nn import initializers as inits
from fnn.nn.layers.dense import Dense
from fnn.nn.layers.dropout import Dropout, check_rate
from fnn.nn.sequential import Sequential

Array = jax.Array


def _check_sizes(sizes) -> tuple[int, ...]:
    if isinstance(sizes, (int, np.integer)) or not isinstance(sizes, Sequence):
        raise ValueError(f"sizes: {sizes!r}; expected a sequence of layer widths like (4, 8, 3)")
    if len(sizes) < 2:
        raise ValueError(f"sizes: {tuple(sizes)!r}; expected at least (inputs, outputs)")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"sizes[{i}]: {s!r}; expected a positive integer")
    return tuple(int(s) for s in sizes)


def _hidden_names(activation, n_hidden: int, sizes) -> tuple[str, ...]:
    if isinstance(activation, str):
        hidden = (acts.canonical_name(activation),) * n_hidden
    else:
        hidden = tuple(acts.canonical_name(a) for a in activation)
        if len(hidden) != n_hidden:
            raise ValueError(f"activation: {len(hidden)} names for {n_hidden} hidden layers of"
                             f" sizes {sizes}; expected one name or {n_hidden}")
    if "softmax" in hidden:
        raise ValueError("activation: 'softmax' is only supported as the output activation")
    return hidden


@dataclass(frozen=True, init=False)
class MLP(Sequential):
    """A multilayer perceptron: ``Sequential([Dense, (Dropout,) Dense, ...])`` from its widths.

    Args:
      sizes: layer widths (inputs, hidden..., outputs), e.g. (4, 8, 3); at least 2 entries.
      activation: hidden activation name, or one name per hidden layer.
      output: output activation: "identity" (regression), "sigmoid" (binary / multi-label),
        "softmax" (k classes), or any other activation name.
      drop_rate: probability of dropping a hidden unit (inverted dropout on the input of every
        dense layer after the first), used when a dropout ``key`` is passed. In [0, 1).
      initializer: weight initializer name, or ``None`` for He on ReLU layers and Glorot
        otherwise.
      dtype: parameter dtype name.

    Raises:
      ValueError: bad sizes, unknown names, wrong number of activations, drop_rate out of range.
    """

    sizes: tuple = ()
    activation: Union[str, tuple] = "relu"
    output: str = "identity"
    drop_rate: float = 0.0
    initializer: Optional[str] = None

    def __init__(self, sizes, activation="relu", output="identity", drop_rate=0.0,
                 initializer=None, dtype="float32"):
        sizes = _check_sizes(sizes)
        hidden = _hidden_names(activation, len(sizes) - 2, sizes)
        output = acts.canonical_name(output)
        if output == "softmax" and sizes[-1] < 2:
            raise ValueError(f"output: 'softmax' needs at least 2 output units, got sizes {sizes}")
        rate = check_rate(drop_rate, "drop_rate")
        if initializer is not None:
            initializer = inits.canonical_name(initializer)
        layers = []
        for l, (units, name) in enumerate(zip(sizes[1:], hidden + (output,))):
            if l > 0 and rate > 0:
                layers.append(Dropout(rate))
            layers.append(Dense(units, name, initializer))
        fields = {"sizes": sizes, "activation": hidden[0] if len(set(hidden)) == 1 else hidden,
                  "output": output, "drop_rate": rate, "initializer": initializer,
                  "layers": tuple(layers), "input_shape": (sizes[0],), "dtype": dtype}
        for name, value in fields.items():
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __repr__(self) -> str:
        return (f"MLP(sizes={self.sizes!r}, activation={self.activation!r},"
                f" output={self.output!r}, drop_rate={self.drop_rate!r},"
                f" initializer={self.initializer!r}, dtype={self.dtype!r})")

    # --- the description by widths --------------------------------------------------------------
    @property
    def dense_layers(self) -> tuple[Dense, ...]:
        """The Dense layers, in order (the Dropout layers between them left out)."""
        return tuple(layer for layer in self.layers if isinstance(layer, Dense))

    @property
    def activations(self) -> tuple[str, ...]:
        """Activation name of every dense layer, output included."""
        return tuple(layer.activation for layer in self.dense_layers)

    @property
    def num_layers(self) -> int:
        """The number of dense layers, L (as in the notes; Dropout layers are not counted)."""
        return len(self.sizes) - 1

    def params_from_dense(self, dense) -> tuple:
        """The network's params from one ``{"w", "b"}`` dict per dense layer (the layout of
        parameters written before the MLP was a Sequential): ``{}`` inserted for each Dropout.

        Args: dense: a sequence of L dicts. Returns: a tuple with one entry per layer.
        """
        dense = list(dense)
        if len(dense) != self.num_layers:
            raise ValueError(f"params: {len(dense)} dense layers; expected {self.num_layers}"
                             f" for sizes {self.sizes}")
        it = iter(dense)
        return tuple(next(it) if isinstance(layer, Dense) else {} for layer in self.layers)

    def dense_params(self, params) -> tuple:
        """The inverse of :meth:`params_from_dense`: the L dense layers' dicts."""
        return tuple(p for layer, p in zip(self.layers, params) if isinstance(layer, Dense))

    def replace(self, **changes) -> "MLP":
        """A copy with some fields changed (e.g. ``net.replace(dtype="float64")``)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(MLP)
                  if f.name in ("sizes", "activation", "output", "drop_rate", "initializer",
                                "dtype")}
        fields.update(changes)
        return MLP(**fields)

    def forward(self, params, x: Array, *, key=None, drop_rate=None):
        """(ŷ (batch, sizes[-1]), caches): :meth:`forward_state` without state, dropout only with
        a ``key``."""
        y, caches, _ = self.forward_state(params, self.init_state(), x, key=key, drop_rate=drop_rate,
                                          training=key is not None)
        return y, caches

    def logits(self, params, x: Array, *, key=None, drop_rate=None) -> Array:
        """Z(L), the output pre-activation (batch, sizes[-1])."""
        return self.output_logits(self.forward(params, x, key=key, drop_rate=drop_rate)[1])

    # --- the key streams of the pre-Sequential MLP (see the module docstring) --------------------
    def _dense_index(self) -> tuple[int, ...]:
        """For every layer, the 0-based index of the dense layer it is or precedes."""
        out, l = [], 0
        for layer in self.layers:
            out.append(l)
            l += isinstance(layer, Dense)
        return tuple(out)

    def param_keys(self, key: Array) -> tuple:
        """``split(key, L)``; dense layer l and the Dropout before it get the l-th key."""
        keys = jax.random.split(key, self.num_layers)
        return tuple(keys[l] for l in self._dense_index())

    def dropout_keys(self, key: Array) -> tuple:
        """``fold_in(key, l)`` for dense layer l and the Dropout on its input."""
        return tuple(jax.random.fold_in(key, l) for l in self._dense_index())
