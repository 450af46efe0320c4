"""A user's own network, seen through fnn's :class:`~fnn.nn.protocol.Network` protocol.

fnn's container (:class:`fnn.Sequential`, and :class:`fnn.MLP`) implements the protocol. A user's
network needs only ``init(key) -> params`` and ``apply(params, x, *, key=None) -> ŷ``;
:func:`as_network` wraps it **once**, where a Trainer, a train step or ``loss_and_grad`` is made,
into an :class:`AutodiffNetwork`, itself a :class:`~fnn.nn.protocol.Network`, with ``jax.grad``
as its only gradient:

* its outputs ŷ are taken to be after the output activation named by the network's ``output``
  attribute ("identity" when it has none: ŷ are raw scores or regression outputs). A loss that
  needs the logits Z(L) gets them by inverting that activation (softmax: Z = log ŷ, which
  log-softmax maps back to log ŷ exactly; sigmoid: Z = log ŷ − log(1 − ŷ));
* it has no state and no layers to show, and dropout is whatever its ``apply`` does with the
  ``key`` it is given;
* it has no hand-written backward (``manual_backward`` is False): ``grad="manual"`` is refused
  with a one-line error.

This is the one module that looks at a user's object's attributes; everything above it calls
the protocol.
"""

from __future__ import annotations

from typing import ClassVar, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.nn.protocol import Network

Array = jax.Array


def check_manual(net: Network) -> None:
    """Raise a one-line ValueError when ``grad="manual"`` cannot run on ``net``."""
    if not net.manual_backward:
        raise ValueError(
            f"grad: 'manual' needs a network with a hand-written backward; {net.describe()} has"
            f" only init and apply (use grad='autodiff', or build it from fnn.layers with"
            f" fnn.Sequential)")


def num_outputs(net: Network) -> int:
    """K, the width of the network's outputs (the last axis of ``output_shape``)."""
    shape = net.output_shape
    return int(shape[-1]) if len(shape) else 1


def input_dtype(net: Network):
    """The dtype of the network's inputs: int32 ids for a network that takes token ids
    (``integer_inputs``), else its parameter dtype."""
    return jnp.dtype(jnp.int32) if getattr(net, "integer_inputs", False) else jnp.dtype(net.dtype)


class AutodiffNetwork:
    """A user network (``init`` / ``apply`` only) with the :class:`Network` protocol around it.

    Args:
      net: the user's network.
      input_shape: one example's shape (without the batch axis).
      params: parameters of ``net`` (to find the outputs' shape and the dtype).
    """

    manual_backward: ClassVar[bool] = False

    def __init__(self, net, input_shape: tuple, params):
        self.wrapped = net
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output = getattr(net, "output", None) or "identity"
        leaves = [l for l in jax.tree.leaves(params)
                  if jnp.issubdtype(jnp.result_type(l), jnp.floating)]
        self.dtype = str(getattr(net, "dtype", None) or (leaves[0].dtype if leaves else "float32"))
        in_dtype = jnp.int32 if getattr(net, "integer_inputs", False) else jnp.dtype(self.dtype)
        x = jax.ShapeDtypeStruct((1,) + self.input_shape, in_dtype)
        out = jax.eval_shape(lambda p, xx: net.apply(p, xx), params, x)
        self.output_shape = tuple(out.shape[1:]) or (1,)
        self.drop_rate = float(getattr(net, "drop_rate", 0.0) or 0.0)
        self.integer_inputs = bool(getattr(net, "integer_inputs", False))

    def __hash__(self):
        return hash((id(self.wrapped), self.input_shape))

    def __eq__(self, other):
        return (isinstance(other, AutodiffNetwork) and other.wrapped is self.wrapped
                and other.input_shape == self.input_shape)

    def describe(self) -> str:
        return f"{type(self.wrapped).__name__} {self.input_shape} -> {self.output_shape}"

    def replace(self, **changes) -> "AutodiffNetwork":
        raise ValueError(f"network: {self.describe()} is a user network; it cannot be rebuilt"
                         f" with {sorted(changes)} (build it with fnn.Sequential)")

    def init(self, key: Array):
        return self.wrapped.init(key)

    def init_state(self):
        return ()

    def uses_dropout(self, drop_rate) -> bool:
        return True  # the key is the user's to use

    def param_layers(self) -> tuple:
        return ()

    def unrolled(self, params) -> tuple:
        return self, params, None

    def layer_views(self, caches) -> tuple:
        return ()

    def kink_patterns(self, caches) -> list:
        return []

    def apply(self, params, x: Array, *, key=None, drop_rate=None, state=None) -> Array:
        return self.wrapped.apply(params, x, key=key)

    def forward_state(self, params, state, x: Array, *, key=None, drop_rate=None, training=True):
        """(ŷ, (ŷ,), state): the user's ``apply``; the cache is the outputs."""
        y = self.wrapped.apply(params, x, key=key if training else None)
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
        check_manual(self)

    def backward_deltas(self, params, caches, loss, y):
        check_manual(self)

    def vjp(self, params, caches, grad_out):
        check_manual(self)

    def check_input(self, x) -> None:
        shape = tuple(np.shape(x))
        if shape[1:] != self.input_shape:
            raise ValueError(f"x: shape {shape}; expected (batch, "
                             f"{', '.join(map(str, self.input_shape))}) for {self.describe()}")

    def check_params(self, params) -> None:
        pass


def as_network(net, *, params=None, x=None, input_shape: Optional[tuple] = None,
               mode=None) -> Network:
    """``net`` itself when it implements :class:`Network`, else an :class:`AutodiffNetwork`.

    Args:
      net: an fnn network, or a user object with ``init`` and ``apply``.
      params: the network's parameters (used to wrap a user network; else ``init``'s shapes).
      x: a batch of inputs (its trailing shape is the input shape when ``input_shape`` is None).
      input_shape: one example's shape.
      mode: "manual" refuses a network without a hand-written backward (one line).
    Returns:
      a :class:`Network`.
    """
    if not isinstance(net, Network):
        if not (callable(getattr(net, "init", None)) and callable(getattr(net, "apply", None))):
            raise ValueError(f"network: {type(net).__name__} has no init(key) and"
                             f" apply(params, x)")
        if input_shape is None:
            input_shape = getattr(net, "input_shape", None)
        if input_shape is None:
            if x is None:
                raise ValueError(f"network: the input shape of {type(net).__name__} is unknown")
            input_shape = tuple(np.shape(x))[1:]
        if params is None:
            params = jax.eval_shape(net.init, jax.random.key(0))
        net = AutodiffNetwork(net, input_shape, params)
    if mode == "manual":
        check_manual(net)
    return net
