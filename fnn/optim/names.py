"""The optimizers' names and the arguments each accepts, without JAX.

:data:`OPTIMIZERS` maps each registry name to its constructor's argument names, in order. The
constructors (:mod:`fnn.optim.aliases`) are checked against it at import (same names, same
signatures), so the list cannot drift from the code; the config layer reads only this module,
so that a bad ``[optimizer]`` table is reported without importing JAX.
"""

from __future__ import annotations

_SGD = ("learning_rate", "momentum", "nesterov")
_ADAM = ("learning_rate", "b1", "b2", "eps")

OPTIMIZERS: dict[str, tuple[str, ...]] = {
    "sgd": _SGD,
    "momentum": _SGD,
    "nesterov": _SGD,
    "adagrad": ("learning_rate", "initial_accumulator_value", "eps"),
    "rmsprop": ("learning_rate", "decay", "eps", "initial_scale", "centered", "momentum",
                "nesterov"),
    "adam": _ADAM,
    "adamw": (*_ADAM, "weight_decay", "mask"),
    "nadam": _ADAM,
    "adamax": _ADAM,
    "lion": ("learning_rate", "b1", "b2", "weight_decay", "mask"),
}
