"""The names of the math registries, and what the config checks need to know of each, without JAX.

One list per registry, here: the activations, the losses (with the output activation a fused
loss requires and whether its targets are classes) and the initializers, with their aliases;
the convolutions' paddings. The JAX-side modules (:mod:`fnn.nn.activations`, :mod:`fnn.nn.losses`, :mod:`fnn.nn.initializers`)
build their tables from these lists and refuse, at import, an implementation that is missing or
not listed (:func:`fnn.util.registry.table`). The config layer reads only this module, so that a
bad config is reported without importing JAX (``fnn train bad.toml`` answers at once).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from fnn.util import registry

# Parameter dtypes a network may hold (Sequential(dtype=...), model.dtype), and the compute
# precisions of model.precision: "full" (the parameters' dtype) or mixed bfloat16
# (fnn.nn.precision).
DTYPES = ("float32", "float64", "bfloat16", "float16")
PRECISIONS = ("full", "bfloat16")

ACTIVATIONS = ("identity", "sigmoid", "relu", "leaky_relu", "tanh", "softmax", "gelu")
ACTIVATION_ALIASES = {"linear": "identity", "none": "identity", "logistic": "sigmoid"}


class LossFacts(NamedTuple):
    """What is known of a loss before any array exists.

    Attributes:
      output: the output activation a fused loss requires (``None``: any).
      classification: whether targets are classes (integer labels accepted).
    """

    output: Optional[str]
    classification: bool


LOSSES = {
    "mse": LossFacts(output=None, classification=False),
    "binary_cross_entropy": LossFacts(output="sigmoid", classification=True),
    "cross_entropy": LossFacts(output="softmax", classification=True),
}
LOSS_ALIASES = {
    "mean_squared_error": "mse",
    "bce": "binary_cross_entropy",
    "ce": "cross_entropy",
    "categorical_cross_entropy": "cross_entropy",
}

PADDINGS = ("same", "valid")  # of the convolutions (fnn.nn.layers.conv)

INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal",
                "zeros")
INITIALIZER_ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
                       "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}


def activation(name: str) -> str:
    """The registry name of an activation (aliases resolved).

    Raises:
      ValueError: ``unknown activation <name>; expected one of: ...``.
    """
    return registry.canonical("activation", name, ACTIVATIONS, ACTIVATION_ALIASES)


def loss(name: str) -> str:
    """The registry name of a loss (aliases resolved); raises like :func:`activation`."""
    return registry.canonical("loss", name, LOSSES, LOSS_ALIASES)


def initializer(name: str) -> str:
    """The registry name of an initializer (aliases resolved); raises like :func:`activation`."""
    return registry.canonical("initializer", name, INITIALIZERS, INITIALIZER_ALIASES)
