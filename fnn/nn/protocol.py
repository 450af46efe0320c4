"""The two protocols of the math layer: a *layer*, and a *network* (the container the engine trains).

A **layer** is a static, hashable description (a frozen dataclass) with pure functions. Shapes are
one example's, without the batch axis; arrays are batch-first, images NHWC.

    output_shape(input_shape) -> output_shape
        Shape inference. A shape that does not fit raises ``ValueError`` with a one-line message
        saying what the layer got and what it expected; the container prefixes the layer's index
        and type (``layers[2] (MaxPool2D): ...``).
    init(key, input_shape, dtype) -> (params, state)
        ``params``: a dict of arrays (``{}`` if none); ``state``: a dict of arrays that are not
        trained by gradient (only BatchNorm has any: its running mean and variance).
    forward(params, state, x, *, key=None, training=False, drop_rate=None) -> (y, cache, state)
        ``key`` is the layer's own PRNG key (dropout) or None; ``training`` selects batch
        statistics (BatchNorm); ``drop_rate`` (float or traced scalar) overrides the rate of
        dropout layers when not None. Returns the outputs, what the backward pass needs, and the
        new state (the input state when the layer has none or ``training`` is False).
    backward(params, cache, grad_out) -> (grads, grad_in)
        Written by hand beside ``forward``: no ``jax.vjp`` / ``jax.grad`` /
        ``jax.linear_transpose`` inside. ``grads`` has the structure of ``params``.

Optional: ``flops(input_shape) -> int``, the forward FLOPs of one example in evaluation, in
XLA's convention (a multiply-add is 2; exp, tanh, rsqrt are transcendentals, not FLOPs); a
container layer counts only its own work (a Residual's addition), its inner layers count
theirs. :mod:`fnn.nn.summary` uses it, and XLA's cost analysis of the layer's forward for a
layer without it. Optional: ``unroll(params) -> ((layer, params), ...)``, the same function as a
chain of simpler layers (a Repeat: its n copies); the container's ``unrolled`` uses it so that
gradcheck, the backprop trace and the training diagnostics show one row per block. Copy j's
params are every leaf's [j] (the leaves stacked on a leading axis of the copies: the
diagnostics' per-copy norms reduce over the other axes), so it splits anything laid out like
the params the same way: their gradients and updates, and a Repeat's forward cache (stacked by
its scan: copy j's cache).

Layers with an activation (Dense, Conv2D, Activation) also have ``activation`` (a name), ``act``
(the :class:`fnn.nn.activations.Activation`), a cache with fields ``z`` (pre-activation) and
``a`` (= g(z)), and ``backward_from_delta(params, cache, delta) -> (grads, grad_in)`` from
δ = ∂L/∂Z; ``backward`` is ``backward_from_delta`` of ``act.backward(z, a, grad_out)``. This is
what lets a fused loss hand δ(L) = (ŷ − y)/N straight to the output layer.

A **network** is what the engine and the analysis train and inspect: the :class:`Network`
protocol below, declared once. fnn's container (:class:`fnn.Sequential`, and :class:`fnn.MLP`, a
Sequential described by its widths) implements it with hand-written backward passes; a user's
object with only ``init(key)`` and ``apply(params, x, *, key=None)`` is wrapped once into an
:class:`fnn.nn.adapter.AutodiffNetwork` (a Network whose gradient is ``jax.grad``) where a
Trainer or a train step is made. engine/ and analysis/ call the members of :class:`Network` and
nothing else.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Protocol, runtime_checkable

import jax

Array = jax.Array


@runtime_checkable
class Layer(Protocol):
    """See the module docstring."""

    def output_shape(self, input_shape: tuple) -> tuple: ...

    def init(self, key: Array, input_shape: tuple, dtype) -> tuple[dict, dict]: ...

    def forward(self, params: dict, state: dict, x: Array, *, key=None, training: bool = False,
                drop_rate=None) -> tuple[Array, Any, dict]: ...

    def backward(self, params: dict, cache: Any, grad_out: Array) -> tuple[dict, Array]: ...


@runtime_checkable
class UserNetwork(Protocol):
    """The least a network needs to train with ``grad="autodiff"``."""

    def init(self, key: Array) -> Any: ...

    def apply(self, params: Any, x: Array, *, key=None) -> Array: ...


class LayerView(NamedTuple):
    """One top-level layer of a forward pass, as the analysis shows it.

    kind: the layer's type name.  activation: its activation's name, "" if it has none.
    z: Z, the activation's input (None without an activation).  a: the layer's output.
    mask: a Dropout layer's scaled mask (None otherwise, or when no mask was drawn).
    output_shape: one example's output shape.
    copies: a layer with ``unroll`` (a Repeat): one view per copy, from its ``unroll`` of the
      layer's cache (``kind`` the repeated layer's; ``z`` and ``a`` copy j's where that layer
      has an activation, else None: its cache does not keep a copy's output); None otherwise.
    """

    kind: str
    activation: str
    z: Optional[Array]
    a: Array
    mask: Optional[Array]
    output_shape: tuple
    copies: Optional[tuple] = None


@runtime_checkable
class Network(Protocol):
    """What the engine (:mod:`fnn.engine`) and the analysis (:mod:`fnn.analysis`) call.

    Shapes are one example's (no batch axis); batches are (batch, *input_shape).

    Attributes:
      dtype: the parameter dtype's name.  input_shape, output_shape: tuples.
      output: the output activation's name ("identity" if none).
      drop_rate: the default dropout rate (what ``HParams.drop_rate=None`` resolves to; None:
        each Dropout layer its own rate).
      manual_backward: whether :meth:`backward` is hand-written (False: ``grad="manual"`` is
        refused; only ``jax.grad`` of :meth:`forward_state` differentiates it).
      integer_inputs: whether integer inputs are ids the network takes as they are (token ids
        of an Embedding), not stored pixels to scale by 1/255
        (:func:`fnn.data.prepare_inputs` with ``keep_integers``).
    """

    dtype: str
    input_shape: tuple
    output_shape: tuple
    output: str
    drop_rate: Any
    manual_backward: bool
    integer_inputs: bool

    def init(self, key: Array) -> Any:
        """Parameters (a pytree) drawn from ``key``."""

    def init_state(self) -> Any:
        """The network's state before training (BatchNorm statistics); leafless if none."""

    def apply(self, params, x: Array, *, key=None, drop_rate=None, state=None) -> Array:
        """ŷ (batch, *output_shape); with a key: training mode; without: evaluation."""

    def forward_state(self, params, state, x: Array, *, key=None, drop_rate=None,
                      training: bool = True) -> tuple[Array, Any, Any]:
        """(ŷ, caches, new state)."""

    def output_logits(self, caches) -> Array:
        """Z(L), the output activation's input (ŷ itself for "identity")."""

    def backward(self, params, caches, loss, y: Array) -> Any:
        """Gradients like ``params``: δ(L) from the loss, then every layer's backward."""

    def backward_deltas(self, params, caches, loss, y: Array) -> tuple[Any, tuple]:
        """(:meth:`backward`'s gradients, every layer's δ)."""

    def vjp(self, params, caches, grad_out: Array) -> tuple[Any, Array, tuple]:
        """(gradients, ∂L/∂X, deltas) from a cotangent ∂L/∂ŷ."""

    def uses_dropout(self, drop_rate) -> bool:
        """Whether a training step at ``drop_rate`` draws dropout masks (static)."""

    def param_layers(self) -> tuple:
        """(index, type name) of every top-level layer with parameters."""

    def layer_views(self, caches) -> tuple:
        """One :class:`LayerView` per top-level layer of a forward pass."""

    def kink_patterns(self, caches) -> list:
        """Boolean arrays that a finite-difference step must not change (ReLU signs, max-pool
        argmaxes)."""

    def check_input(self, x) -> None:
        """One-line ValueError if ``x`` is not a batch of this network's inputs."""

    def check_params(self, params) -> None:
        """One-line ValueError naming the layer if ``params`` do not fit."""

    def unrolled(self, params) -> tuple[Any, Any, Optional[tuple]]:
        """(network, params, blocks): the same function with its repeated blocks as layers of
        their own, for one analysis row per block; ``blocks[k] = (i, j)``: entry k is copy j of
        layer i (j None: layer i whole). ``self`` and ``params`` themselves when there is
        nothing to unroll; ``blocks`` None for a network without layers to name (a user's
        ``init``/``apply`` object)."""

    def replace(self, **changes) -> "Network":
        """A copy with fields changed (``dtype="float64"`` for the float64 checks)."""

    def describe(self) -> str:
        """A one-line description."""
