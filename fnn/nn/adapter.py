"""A user's own network, seen through fnn's network protocol (:mod:`fnn.nn.protocol`).

fnn's containers (:class:`fnn.MLP`, :class:`fnn.Sequential`) implement the whole protocol. A
user's network needs only ``init(key) -> params`` and ``apply(params, x, *, key=None) -> ŷ``;
:func:`as_network` wraps it so that the objective and the engine can call it like the others,
with ``jax.grad`` as its only gradient:

* its outputs ŷ are taken to be after the output activation named by the network's ``output``
  attribute ("identity" when it has none: ŷ are raw scores or regression outputs). A loss that
  needs the logits Z(L) gets them by inverting that activation (softmax: Z = log ŷ, which
  log-softmax maps back to log ŷ exactly; sigmoid: Z = log ŷ − log(1 − ŷ));
* it has no state, and dropout is whatever its ``apply`` does with the ``key`` it is given;
* it has no hand-written backward: ``grad="manual"`` is refused with a one-line error that
  names what is missing.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.nn.protocol import has_manual_backward

Array = jax.Array

_MISSING = ("forward_state", "backward")


def missing_backward(net) -> tuple[str, ...]:
    """The network-protocol methods of a manual backward that ``net`` lacks (empty if none)."""
    return tuple(m for m in _MISSING if not callable(getattr(net, m, None)))


def check_manual(net) -> None:
    """Raise a one-line ValueError when ``grad="manual"`` cannot run on ``net``."""
    inner = getattr(net, "wrapped", net)
    missing = missing_backward(inner)
    if missing:
        raise ValueError(
            f"grad: 'manual' needs a network with a hand-written backward; "
            f"{type(inner).__name__} has no {' or '.join(missing)} (use grad='autodiff', or "
            f"build it from fnn.layers with fnn.Sequential)")


def init_state(net) -> Any:
    """``net.init_state()``, or ``()`` for a network without state."""
    fn = getattr(net, "init_state", None)
    return fn() if callable(fn) else ()


def uses_dropout(net, drop_rate) -> bool:
    """Whether a training step of ``net`` at ``drop_rate`` draws dropout masks (a static fact).

    ``drop_rate`` is a Python number, a traced scalar (always "on") or None (the network's own
    rates). A network without ``uses_dropout`` (a user network) is given a key whenever
    ``drop_rate`` is on or None.
    """
    fn = getattr(net, "uses_dropout", None)
    if callable(fn):
        return bool(fn(drop_rate))
    return drop_rate is None or isinstance(drop_rate, jax.Array) or float(drop_rate) != 0.0


def output_name(net) -> str:
    """The output activation's name ("identity" for a network that does not say)."""
    return getattr(net, "output", None) or "identity"


def num_outputs(net) -> int:
    """K, the width of the network's outputs (the last axis of ``output_shape``)."""
    shape = getattr(net, "output_shape", None)
    if shape is None and hasattr(net, "sizes"):
        return int(net.sizes[-1])
    if shape is None:
        raise ValueError(f"network: {type(net).__name__} has no output_shape")
    return int(shape[-1]) if len(shape) else 1


class AutodiffNetwork:
    """A user network (``init`` / ``apply`` only) with the network protocol around it.

    Args:
      net: the user's network.
      input_shape: one example's shape (without the batch axis).
      params: parameters of ``net`` (to find the outputs' shape and the dtype).
    """

    def __init__(self, net, input_shape: tuple, params):
        self.wrapped = net
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output = output_name(net)
        leaves = [l for l in jax.tree.leaves(params) if jnp.issubdtype(jnp.result_type(l), jnp.floating)]
        self.dtype = str(getattr(net, "dtype", None) or (leaves[0].dtype if leaves else "float32"))
        x = jax.ShapeDtypeStruct((1,) + self.input_shape, jnp.dtype(self.dtype))
        out = jax.eval_shape(lambda p, xx: net.apply(p, xx), params, x)
        self.output_shape = tuple(out.shape[1:]) or (1,)
        self.drop_rate = float(getattr(net, "drop_rate", 0.0) or 0.0)

    def __hash__(self):
        return hash((id(self.wrapped), self.input_shape))

    def __eq__(self, other):
        return (isinstance(other, AutodiffNetwork) and other.wrapped is self.wrapped
                and other.input_shape == self.input_shape)

    def init(self, key: Array):
        return self.wrapped.init(key)

    def init_state(self):
        return ()

    def uses_dropout(self, drop_rate) -> bool:
        return True  # the key is the user's to use

    def param_layers(self) -> tuple:
        return ()

    def apply(self, params, x: Array, *, key=None, drop_rate=None, state=None) -> Array:
        return self.wrapped.apply(params, x, key=key)

    def forward_state(self, params, state, x: Array, *, key=None, drop_rate=None, training=True):
        """(ŷ, (ŷ,), state): the user's ``apply``; the cache is the outputs."""
        y = self.wrapped.apply(params, x, key=key)
        return y, (y,), state

    def output_logits(self, caches) -> Array:
        """Z(L) from ŷ by inverting the output activation (see the module docstring)."""
        a = caches[-1]
        if self.output == "softmax":
            return jnp.log(a)
        if self.output == "sigmoid":
            return jnp.log(a) - jnp.log1p(-a)
        return a

    def backward(self, params, caches, loss, y):
        check_manual(self.wrapped)

    def check_input(self, x) -> None:
        shape = tuple(np.shape(x))
        if shape[1:] != self.input_shape:
            raise ValueError(f"x: shape {shape}; expected (batch, {', '.join(map(str, self.input_shape))})"
                             f" for {type(self.wrapped).__name__}")

    def check_params(self, params) -> None:
        pass


def as_network(net, *, params=None, x=None, input_shape: Optional[tuple] = None, mode=None):
    """``net`` itself when it implements the network protocol, else an :class:`AutodiffNetwork`.

    Args:
      net: an fnn network, or a user object with ``init`` and ``apply``.
      params: the network's parameters (needed to wrap a user network).
      x: a batch of inputs (its trailing shape is the input shape when ``input_shape`` is None).
      input_shape: one example's shape.
      mode: "manual" refuses a network without a hand-written backward (one line).
    Returns:
      an object with the whole network protocol.
    """
    if has_manual_backward(net) and hasattr(net, "input_shape"):
        return net
    if isinstance(net, AutodiffNetwork):
        return net
    if not (callable(getattr(net, "init", None)) and callable(getattr(net, "apply", None))):
        raise ValueError(f"network: {type(net).__name__} has no init(key) and apply(params, x)")
    if mode == "manual":
        check_manual(net)
    if input_shape is None:
        input_shape = getattr(net, "input_shape", None)
    if input_shape is None:
        if x is None:
            raise ValueError(f"network: the input shape of {type(net).__name__} is unknown")
        input_shape = tuple(np.shape(x))[1:]
    if params is None:
        params = jax.eval_shape(net.init, jax.random.key(0))
    return AutodiffNetwork(net, input_shape, params)
