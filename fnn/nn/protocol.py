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
layer without it.

Layers with an activation (Dense, Conv2D, Activation) also have ``activation`` (a name), ``act``
(the :class:`fnn.nn.activations.Activation`), a cache with fields ``z`` (pre-activation) and
``a`` (= g(z)), and ``backward_from_delta(params, cache, delta) -> (grads, grad_in)`` from
δ = ∂L/∂Z; ``backward`` is ``backward_from_delta`` of ``act.backward(z, a, grad_out)``. This is
what lets a fused loss hand δ(L) = (ŷ − y)/N straight to the output layer.

A **network** is what the engine trains. The minimum, for ``grad="autodiff"``, is a user object
with ``init(key) -> params`` and ``apply(params, x, *, key=None) -> y``. fnn's own containers
(:class:`fnn.MLP`, :class:`fnn.Sequential`) add, and the engine uses only these:

    dtype: str                        parameter dtype name
    input_shape, output_shape         one example's shapes
    output: str                       the output activation's name ("identity" if none)
    drop_rate: float                  the default dropout rate (what ``HParams.drop_rate=None`` means)
    init_state() -> state             a pytree (``()`` for a net without state)
    forward_state(params, state, x, *, key=None, drop_rate=None, training=True)
        -> (y, caches, new_state)
    output_logits(caches) -> Z(L)     the output activation's input (ŷ itself for "identity")
    backward(params, caches, loss, y) -> grads            δ(L) from the loss, then every layer
    backward_deltas(params, caches, loss, y) -> (grads, deltas)
    vjp(params, caches, grad_out) -> (grads, grad_x, deltas)
    apply(params, x, *, key=None, drop_rate=None, state=None) -> y
        evaluation (no key) uses ``state`` (running statistics; ``init_state()`` when None)
    check_input(x), check_params(params)                   one-line ValueErrors
    param_layers() -> tuple of (index, name) of the layers that have parameters
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

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


def has_manual_backward(net) -> bool:
    """Whether ``net`` carries fnn's hand-written backward (``forward_state`` and ``backward``)."""
    return callable(getattr(net, "forward_state", None)) and callable(getattr(net, "backward", None))
