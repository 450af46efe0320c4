"""fnn: a functional neural-network training framework on JAX.

Networks are pure functions of parameter pytrees with hand-written forward and backward
(backpropagation) formulas, checked against ``jax.grad``; everything is jit-compiled by XLA.

    >>> import jax, fnn
    >>> net = fnn.MLP(sizes=(4, 8, 3), activation="tanh", output="softmax")
    >>> params = net.init(jax.random.key(0))
"""

from fnn import activations, data, initializers, layers, losses, optim, regularizers, schedules, train
from fnn.gradcheck import ErrorStats, GradcheckReport, LeafReport, gradcheck
from fnn.network import MLP
from fnn.objective import loss_and_grad
from fnn.train import EarlyStopping, HParams, Trainer, TrainState, make_train_step

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
