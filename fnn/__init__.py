"""fnn: a functional neural-network training framework on JAX.

Networks are pure functions of parameter pytrees with hand-written forward and backward
(backpropagation) formulas, checked against ``jax.grad``; everything is jit-compiled by XLA.

    >>> import jax, fnn
    >>> net = fnn.MLP(sizes=(4, 8, 3), activation="tanh", output="softmax")
    >>> params = net.init(jax.random.key(0))
"""

from fnn import (activations, data, initializers, layers, losses, optim, regularizers, schedules,
                shuffle, train)
from fnn.gradcheck import ErrorStats, GradcheckReport, LeafReport, gradcheck
from fnn.network import MLP
from fnn.objective import loss_and_grad
from fnn.train import EarlyStopping, HParams, Trainer, TrainState, make_train_step
from fnn import diagnostics
from fnn.trace import BackpropTrace, LayerTrace, backprop_trace
from fnn.vjp import manual_vjp

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "loss_and_grad",
    "gradcheck",
    "GradcheckReport",
    "LeafReport",
    "ErrorStats",
    "TrainState",
    "Trainer",
    "HParams",
    "EarlyStopping",
    "make_train_step",
    "backprop_trace",
    "BackpropTrace",
    "LayerTrace",
    "manual_vjp",
    "diagnostics",
    "activations",
    "data",
    "optim",
    "schedules",
    "train",
    "initializers",
    "layers",
    "losses",
    "regularizers",
    "__version__",
]
