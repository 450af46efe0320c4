"""fnn: a functional neural-network training framework on JAX.

Networks are pure functions of parameter pytrees with hand-written forward and backward
(backpropagation) formulas, checked against ``jax.grad``; everything is jit-compiled by XLA.

    >>> import jax, fnn
    >>> net = fnn.MLP(sizes=(4, 8, 3), activation="tanh", output="softmax")
    >>> params = net.init(jax.random.key(0))
"""

import sys as _sys

from fnn import analysis, data, engine, experiment, nn, optim
from fnn.analysis import diagnostics
from fnn.analysis.gradcheck import ErrorStats, GradcheckReport, LeafReport, gradcheck
from fnn.analysis.trace import BackpropTrace, LayerTrace, backprop_trace
from fnn.engine import shuffle
from fnn import engine as train
from fnn.engine import EarlyStopping, HParams, Trainer, TrainState, make_train_step
from fnn.nn import activations, initializers, layers, losses, regularizers
from fnn.nn.mlp import MLP
from fnn.nn.objective import loss_and_grad
from fnn.nn.protocol import Layer, Network
from fnn.nn.sequential import Sequential
from fnn.nn.vjp import manual_vjp
from fnn.optim import schedules
from fnn.util.allocator import retain_freed_memory

# The import paths of the flat layout that users were shown keep working: ``fnn.train``,
# ``fnn.layers``, ``fnn.schedules``, ... are the modules of the layered folders, under both names.
for _name, _module in {"train": train, "layers": layers, "activations": activations,
                       "initializers": initializers, "losses": losses,
                       "regularizers": regularizers, "schedules": schedules, "shuffle": shuffle,
                       "diagnostics": diagnostics}.items():
    _sys.modules.setdefault(f"{__name__}.{_name}", _module)
del _name, _module

from fnn.version import __version__


def __getattr__(name):
    """``fnn.load_run`` / ``fnn.RunHandle`` (:mod:`fnn.experiment.handle`), imported on first use
    so that ``import fnn`` does not load the experiment layer."""
    if name in ("load_run", "RunHandle"):
        from fnn.experiment import handle

        return getattr(handle, name)
    raise AttributeError(f"module 'fnn' has no attribute {name!r}")

__all__ = [
    "MLP",
    "Sequential",
    "Network",
    "Layer",
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
    "load_run",
    "RunHandle",
    "retain_freed_memory",
    "__version__",
]
