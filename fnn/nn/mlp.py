"""The multilayer perceptron: init, apply, forward-with-cache and the manual backward pass.

Forward (the notes):   A(0) = X;  Z(l) = A(l−1) W(l) + b(l);  A(l) = g(Z(l));  ŷ = A(L).
Backward (the notes):  δ(L) from the loss (fused (ŷ − y)/N or ∇_A L ⊙ g'(Z(L)));
                       δ(l) = (δ(l+1) W(l+1)ᵀ) ⊙ g'(Z(l));
                       ∂L/∂W(l) = A(l−1)ᵀ δ(l);  ∂L/∂b(l) = Σ_rows δ(l).

The backward pass is nothing but each layer's own ``backward`` called in reverse order; it never
asks which kind of layer it is differentiating.

An :class:`MLP` is a static, hashable description (sizes, activations, dropout, initializer,
dtype): close over it, never trace it. Its parameters are a plain pytree, a tuple with one
``{"w": (in, out), "b": (out,)}`` dict per dense layer. Inputs are batch-first (batch, features).

One concept needs the length: the MLP container: its description, validation and the delta recurrence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.nn import activations as acts
from fnn.nn import initializers as inits
from fnn.nn import losses as losses_mod
from fnn.nn.layers.dense import Dense, DenseCache
from fnn.nn.layers.dropout import dropout_backward, dropout_forward, dropout_mask

Array = jax.Array
Params = tuple  # tuple[dict[str, Array], ...]

_DTYPES = ("float32", "float64", "bfloat16", "float16")


class MLPCache(NamedTuple):
    """What layer l's forward pass keeps for the backward pass.

    x: the (dropped-out) input X̃, (batch, in).  mask: M (batch, in) or None.
    z: pre-activation Z, (batch, out).          a: activation A = g(Z), (batch, out).
    """

    x: Array
    mask: Optional[Array]
    z: Array
    a: Array


@dataclass(frozen=True)
class MLPLayer:
    """Layer l of an MLP: inverted dropout on its input, then a :class:`~fnn.nn.layers.Dense`
    (whose formulas it uses: Z = X̃ W + b, A = g(Z); ∂L/∂W = X̃ᵀ δ, ∂L/∂b = Σ_rows δ), and
    ∂L/∂X = (δ Wᵀ) ⊙ M.

    Attributes:
      in_features, out_features: weight shape (in, out).
      activation: activation name.  init: weight initializer name (biases start at zero).
      dropout_input: apply dropout to the input when a dropout key is given.
    """

    in_features: int
    out_features: int
    activation: str
    init: str
    dropout_input: bool = False

    @property
    def dense(self) -> Dense:
        return Dense(self.out_features, self.activation, self.init)

    @property
    def act(self) -> acts.Activation:
        return acts.get(self.activation)

    def init_params(self, key: Array, dtype) -> dict:
        """Returns ``{"w": (in, out), "b": (out,)}``; w from ``init``, b zeros."""
        return self.dense.init_params(key, self.in_features, dtype)

    def forward(self, params: dict, x: Array, *, key=None, drop_rate=0.0) -> tuple[Array, MLPCache]:
        """A = g(X̃ W + b), X̃ = X ⊙ M with a key on a layer with input dropout, else X.

        Args: params {"w": (in, out), "b": (out,)}; x (batch, in); key; drop_rate.
        Returns: (A (batch, out), cache).
        """
        mask = None
        if key is not None and self.dropout_input:
            mask = dropout_mask(key, x.shape, drop_rate, x.dtype)
            x = dropout_forward(x, mask)
        a, cache, _ = self.dense.forward(params, {}, x)
        return a, MLPCache(x, mask, cache.z, a)

    def delta(self, cache: MLPCache, grad_a: Array) -> Array:
        """δ = ∂L/∂Z = ∂L/∂A ⊙ g'(Z) (softmax: the Jacobian-vector product). (batch, out)."""
        return self.act.backward(cache.z, cache.a, grad_a)

    def backward(self, params: dict, cache: MLPCache, grad_a: Array) -> tuple[dict, Array]:
        """From ∂L/∂A: δ = ∂L/∂A ⊙ g'(Z), then :meth:`backward_from_delta`."""
        return self.backward_from_delta(params, cache, self.delta(cache, grad_a))

    def backward_from_delta(self, params: dict, cache: MLPCache, delta: Array) -> tuple[dict, Array]:
        """∂L/∂W = X̃ᵀ δ;  ∂L/∂b = Σ_rows δ;  ∂L/∂X = (δ Wᵀ) ⊙ M.

        Returns: ({"w": (in, out), "b": (out,)}, ∂L/∂X (batch, in)).
        """
        grads, grad_x = self.dense.backward_from_delta(
            params, DenseCache(cache.x, cache.z, cache.a), delta)
        if cache.mask is not None:
            grad_x = dropout_backward(grad_x, cache.mask)
        return grads, grad_x


@dataclass(frozen=True)
class MLP:
    """A multilayer perceptron description.

    Args:
      sizes: layer widths (inputs, hidden..., outputs), e.g. (4, 8, 3); at least 2 entries.
      activation: hidden activation name, or one name per hidden layer.
      output: output activation: "identity" (regression), "sigmoid" (binary / multi-label),
        "softmax" (k classes), or any other activation name.
      drop_rate: probability of dropping a hidden unit (inverted dropout on the input of every
        layer after the first), used when a dropout ``key`` is passed. In [0, 1).
      initializer: weight initializer name, or ``None`` for He on ReLU layers and Glorot
        otherwise.
      dtype: parameter dtype name.

    Raises:
      ValueError: bad sizes, unknown names, wrong number of activations, drop_rate out of range.
    """

    sizes: tuple[int, ...]
    activation: Union[str, tuple[str, ...]] = "relu"
    output: str = "identity"
    drop_rate: float = 0.0
    initializer: Optional[str] = None
    dtype: str = "float32"
    layers: tuple[MLPLayer, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        sizes = self.sizes
        if isinstance(sizes, (int, np.integer)) or not isinstance(sizes, Sequence):
            raise ValueError(f"sizes: {sizes!r}; expected a sequence of layer widths like (4, 8, 3)")
        if len(sizes) < 2:
            raise ValueError(f"sizes: {tuple(sizes)!r}; expected at least (inputs, outputs)")
        for i, s in enumerate(sizes):
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
                raise ValueError(f"sizes[{i}]: {s!r}; expected a positive integer")
        sizes = tuple(int(s) for s in sizes)
        n_hidden = len(sizes) - 2
        if isinstance(self.activation, str):
            hidden = (acts.canonical_name(self.activation),) * n_hidden
        else:
            hidden = tuple(acts.canonical_name(a) for a in self.activation)
            if len(hidden) != n_hidden:
                raise ValueError(
                    f"activation: {len(hidden)} names for {n_hidden} hidden layers of sizes"
                    f" {sizes}; expected one name or {n_hidden}"
                )
        if "softmax" in hidden:
            raise ValueError("activation: 'softmax' is only supported as the output activation")
        output = acts.canonical_name(self.output)
        if output == "softmax" and sizes[-1] < 2:
            raise ValueError(f"output: 'softmax' needs at least 2 output units, got sizes {sizes}")
        rate = self.drop_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"drop_rate: {rate!r}; expected a probability in [0, 1)")
        if self.initializer is not None:
            inits.get(self.initializer)
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype: {self.dtype!r}; expected one of: {', '.join(_DTYPES)}")
        act_names = hidden + (output,)
        layers = tuple(
            MLPLayer(
                in_features=sizes[l],
                out_features=sizes[l + 1],
                activation=act_names[l],
                init=(inits.canonical_name(self.initializer) if self.initializer
                      else inits.default_for(act_names[l])),
                dropout_input=l > 0,
            )
            for l in range(len(sizes) - 1)
        )
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "activation", hidden[0] if len(set(hidden)) == 1 else hidden)
        object.__setattr__(self, "output", output)
        object.__setattr__(self, "drop_rate", float(rate))
        object.__setattr__(self, "layers", layers)

    # --- description helpers -------------------------------------------------------------------
    @property
    def activations(self) -> tuple[str, ...]:
        """Activation name of every dense layer, output included."""
        return tuple(layer.activation for layer in self.layers)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def replace(self, **changes) -> "MLP":
        """A copy with some fields changed (e.g. ``net.replace(dtype="float64")``)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        fields.update(changes)
        return MLP(**fields)

    def describe(self) -> str:
        """A one-line summary, e.g. ``(2, 2, 1)  activations ('relu', 'sigmoid')``."""
        return f"{self.sizes}  activations {self.activations}"

    def num_params(self) -> int:
        return sum(l.in_features * l.out_features + l.out_features for l in self.layers)

    # --- parameters ----------------------------------------------------------------------------
    def init(self, key: Array) -> Params:
        """Initialize parameters.

        Args:
          key: a PRNG key (``jax.random.key``); split once per layer.
        Returns:
          tuple of ``{"w": (in, out), "b": (out,)}``, one per dense layer.
        """
        keys = jax.random.split(key, len(self.layers))
        dtype = jnp.dtype(self.dtype)
        return tuple(layer.init_params(k, dtype) for layer, k in zip(self.layers, keys))

    # --- validation ----------------------------------------------------------------------------
    def check_input(self, x) -> None:
        """Raise a one-line ValueError if ``x`` cannot be fed to this network.

        Shapes are checked always (they are static under ``jit``); finiteness only for concrete
        arrays.
        """
        shape = tuple(np.shape(x))
        first = self.layers[0]
        if len(shape) != 2:
            raise ValueError(
                f"x: shape {shape}; expected a 2-d batch (batch, {first.in_features})"
            )
        if shape[1] != first.in_features:
            raise ValueError(
                f"layer 1 (dense {first.in_features} -> {first.out_features}) expects inputs of"
                f" width {first.in_features}, got x of shape {shape}"
            )
        if not isinstance(x, jax.core.Tracer):
            arr = np.asarray(x)
            if arr.dtype.kind == "f":
                bad = ~np.isfinite(arr)
                if bad.any():
                    first_bad = tuple(int(i) for i in np.argwhere(bad)[0])
                    raise ValueError(
                        f"x: {int(bad.sum())} non-finite value(s) (NaN/inf), first at index"
                        f" {first_bad}; expected finite inputs"
                    )

    def check_params(self, params) -> None:
        """Raise a ValueError naming the layer and both shapes if ``params`` do not fit."""
        if not isinstance(params, (tuple, list)) or len(params) != len(self.layers):
            n = len(params) if isinstance(params, (tuple, list)) else type(params).__name__
            raise ValueError(f"params: {n} layers; expected a tuple of {len(self.layers)} dicts")
        for l, (layer, p) in enumerate(zip(self.layers, params)):
            want = {"w": (layer.in_features, layer.out_features), "b": (layer.out_features,)}
            for name, shape in want.items():
                got = tuple(np.shape(p[name])) if isinstance(p, dict) and name in p else None
                if got != shape:
                    raise ValueError(
                        f"params[{l}][{name!r}]: shape {got}; expected {shape} for layer {l + 1}"
                    )

    # --- forward -------------------------------------------------------------------------------
    def _rate(self, drop_rate):
        return self.drop_rate if drop_rate is None else drop_rate

    def _dropout_on(self, key, drop_rate) -> bool:
        if key is None or len(self.layers) < 2:
            return False
        rate = self._rate(drop_rate)
        return isinstance(rate, jax.Array) or float(rate) > 0.0

    def forward(self, params: Params, x: Array, *, key=None, drop_rate=None) -> tuple[Array, tuple[MLPCache, ...]]:
        """Forward pass keeping every layer's cache for the manual backward pass.

        Args:
          params: from :meth:`init`.
          x: (batch, sizes[0]) inputs.
          key: dropout key (training); ``None`` for evaluation (no dropout).
          drop_rate: overrides the description's ``drop_rate`` (may be a traced scalar).
        Returns:
          (ŷ (batch, sizes[-1]), tuple of per-layer :class:`MLPCache`).
        """
        self.check_input(x)
        dtype = params[0]["w"].dtype
        a = jnp.asarray(x).astype(dtype)
        use_dropout = self._dropout_on(key, drop_rate)
        rate = self._rate(drop_rate)
        caches = []
        for l, (layer, p) in enumerate(zip(self.layers, params)):
            layer_key = jax.random.fold_in(key, l) if use_dropout else None
            a, cache = layer.forward(p, a, key=layer_key, drop_rate=rate)
            caches.append(cache)
        return a, tuple(caches)

    def apply(self, params: Params, x: Array, *, key=None, drop_rate=None, state=None) -> Array:
        """ŷ = A(L), after the output activation.

        Args:
          params: from :meth:`init`; x: (batch, sizes[0]).
          key: dropout key for training-mode dropout; ``None`` (default) evaluates without it.
          drop_rate: overrides the description's ``drop_rate``.
          state: accepted for the network protocol and ignored (an MLP has no state).
        Returns:
          (batch, sizes[-1]).
        """
        return self.forward(params, x, key=key, drop_rate=drop_rate)[0]

    # --- the network protocol (fnn.nn.protocol) ------------------------------------------------
    @property
    def input_shape(self) -> tuple[int]:
        return (self.sizes[0],)

    @property
    def output_shape(self) -> tuple[int]:
        return (self.sizes[-1],)

    def init_state(self) -> tuple:
        """An MLP has no state: ``()``."""
        return ()

    def forward_state(self, params: Params, state, x: Array, *, key=None, drop_rate=None,
                      training: bool = True) -> tuple[Array, tuple[MLPCache, ...], tuple]:
        """:meth:`forward` in the protocol's form: (ŷ, caches, state); dropout only when
        ``training`` with a key; ``state`` is returned unchanged."""
        y, caches = self.forward(params, x, key=key if training else None, drop_rate=drop_rate)
        return y, caches, state

    def output_logits(self, caches: tuple[MLPCache, ...]) -> Array:
        """Z(L) from the caches of :meth:`forward` (batch, sizes[-1])."""
        return caches[-1].z

    def param_layers(self) -> tuple[tuple[int, str], ...]:
        """(index, type name) of every layer with parameters: all of them, "Dense"."""
        return tuple((l, "Dense") for l in range(len(self.layers)))

    def logits(self, params: Params, x: Array, *, key=None, drop_rate=None) -> Array:
        """Z(L), the output pre-activation (batch, sizes[-1])."""
        return self.forward(params, x, key=key, drop_rate=drop_rate)[1][-1].z

    # --- manual backward -----------------------------------------------------------------------
    def backward(self, params: Params, caches: tuple[MLPCache, ...], loss, y: Array) -> Params:
        """The notes' backward pass: δ(L) from the loss, then each layer's backward in reverse.

        Args:
          params: from :meth:`init`.
          caches: from :meth:`forward`.
          loss: a :class:`~fnn.losses.Loss` (or name).
          y: dense targets (batch, sizes[-1]) (see :func:`fnn.losses.prepare_targets`).
        Returns:
          gradients with the structure of ``params``.
        """
        return self.backward_deltas(params, caches, loss, y)[0]

    def backward_deltas(self, params: Params, caches: tuple[MLPCache, ...], loss,
                        y: Array) -> tuple[Params, tuple[Array, ...]]:
        """:meth:`backward`, also returning every layer's δ(l) = ∂L/∂Z(l) (batch, out_l).

        δ(L) = the loss's output delta (fused (ŷ − y)/N, or ∇_A L ⊙ g'(Z(L))).

        Returns:
          (gradients like ``params``, (δ(1), ..., δ(L))).
        """
        loss = losses_mod.get(loss)
        top, top_cache = self.layers[-1], caches[-1]
        delta = loss.output_delta(top.act, top_cache.z, top_cache.a, y)  # δ(L)
        grads, _, deltas = self._backward_from_delta(params, caches, delta)
        return grads, deltas

    def vjp(self, params: Params, caches: tuple[MLPCache, ...],
            grad_out: Array) -> tuple[Params, Array, tuple[Array, ...]]:
        """The hand-written vector-Jacobian product of ŷ = A(L) w.r.t. params and inputs.

        Given a cotangent ∂L/∂ŷ for *any* scalar L the caller builds on ŷ, the output layer
        applies its activation's backward, δ(L) = ∂L/∂ŷ ⊙ g'(Z(L)) (softmax: its Jacobian-vector
        product), and the notes' recurrence carries it down to ∂L/∂X = (δ(1) W(1)ᵀ).

        Args:
          params: from :meth:`init`.  caches: from :meth:`forward`.
          grad_out: ∂L/∂ŷ (batch, sizes[-1]).
        Returns:
          (gradients like ``params``, ∂L/∂X (batch, sizes[0]), (δ(1), ..., δ(L))).
        """
        delta = self.layers[-1].delta(caches[-1], grad_out)  # δ(L) = ∂L/∂ŷ ⊙ g'(Z(L))
        return self._backward_from_delta(params, caches, delta)

    def _backward_from_delta(self, params, caches, delta):
        """From δ(L): every layer's backward in reverse. Returns (grads, ∂L/∂X, deltas)."""
        n = len(self.layers)
        grads, deltas = [None] * n, [None] * n
        for l in range(n - 1, -1, -1):
            if l < n - 1:
                # ∂L/∂A(l) = δ(l+1) W(l+1)ᵀ came down as grad_a; layer l applies ⊙ g'(Z(l)).
                delta = self.layers[l].delta(caches[l], grad_a)
            deltas[l] = delta
            grads[l], grad_a = self.layers[l].backward_from_delta(params[l], caches[l], delta)
        return tuple(grads), grad_a, tuple(deltas)
