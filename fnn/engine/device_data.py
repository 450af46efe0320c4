"""Training data on the device, and the checks that decide whether data fit a network."""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.nn import losses as losses_mod
from fnn.data.dataset import Dataset
from fnn.nn.adapter import num_outputs

Array = jax.Array


class DeviceData(NamedTuple):
    """Arrays placed on the device once. y are labels (N,) or targets (N, K)."""

    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array


def as_data(data) -> tuple[np.ndarray, ...]:
    """Accept a :class:`fnn.data` dataset, a DeviceData, or a tuple (x, y[, x_val, y_val])."""
    if isinstance(data, (Dataset, DeviceData)):
        return data.x_train, data.y_train, data.x_val, data.y_val
    data = tuple(data)
    if len(data) == 2:
        return data[0], data[1], None, None
    if len(data) == 4:
        return data
    raise ValueError(f"data: a tuple of {len(data)} arrays; expected (x, y) or (x, y, x_val, y_val)")


def check_data(net, loss, x, y, name: str, batch_size: Optional[int] = None) -> None:
    """One-line ValueErrors for data that cannot train ``net`` with ``loss``.

    This is the one place of the rule "1 <= batch_size <= number of training examples" (the
    config layer calls it through the trainer it builds).

    Args:
      net: a network with ``input_shape`` (:mod:`fnn.nn.protocol`).  loss: a loss or its name.
      x: (N, features) or (N, *image axes): each example must hold prod(net.input_shape)
        values (flat images reach a convolutional network reshaped, see
        :func:`fnn.data.prepare_inputs`).
      y: (N,) labels or (N, K) targets.  name: the split, for the message.
      batch_size: checked against N when given.
    """
    shape = tuple(np.shape(x))
    want = tuple(net.input_shape)
    if len(shape) < 2 or shape[0] == 0:
        raise ValueError(f"{name}: x of shape {shape}; expected a non-empty (examples, features)")
    if math.prod(shape[1:]) != math.prod(want):
        if len(want) == 1 and len(shape) == 2:
            raise ValueError(
                f"{name}: x has {shape[1]} features; the network takes {want[0]} (its input_shape"
                f" is {want})")
        raise ValueError(
            f"{name}: x of shape {shape}; the network takes examples of shape {want}"
            f" ({math.prod(want)} values each)")
    if np.shape(y)[:1] != shape[:1]:
        raise ValueError(f"{name}: {np.shape(y)[0] if np.ndim(y) else 0} targets for {shape[0]} examples")
    if batch_size is not None and (batch_size < 1 or batch_size > shape[0]):
        raise ValueError(
            f"training.batch_size: {batch_size}; expected 1 <= batch_size <= {shape[0]} (the"
            f" number of training examples)"
        )
    xa = np.asarray(x)
    if xa.dtype.kind == "f":
        bad = ~np.isfinite(xa)
        if bad.any():
            raise ValueError(
                f"{name}: {int(bad.sum())} non-finite feature value(s), first at index"
                f" {tuple(int(i) for i in np.argwhere(bad)[0])}; expected finite features"
            )
    loss = losses_mod.get(loss)
    y_check = jnp.asarray(np.asarray(y))
    try:
        losses_mod.prepare_targets(loss, y_check, num_outputs(net), jnp.float32,
                                   output_shape=net.output_shape)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
