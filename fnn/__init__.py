"""fnn: a functional neural-network training framework on JAX.

Networks are pure functions of parameter pytrees with hand-written forward and backward
(backpropagation) formulas, checked against ``jax.grad``; everything is jit-compiled by XLA.

    >>> import jax, fnn
    >>> net = fnn.MLP(sizes=(4, 8, 3), activation="tanh", output="softmax")
    >>> params = net.init(jax.random.key(0))

The facade is lazy (PEP 562): ``import fnn`` loads nothing of JAX; each public name below is
imported from its module on first use (``fnn.MLP``, ``from fnn import Trainer``), so that the
command line answers ``--help`` and bad configs without loading JAX. The import paths of the flat
layout users were shown keep working as modules of the layered folders: ``fnn.train`` is
:mod:`fnn.engine`, ``fnn.layers`` is :mod:`fnn.nn.layers`, ... (``from fnn.train import
Trainer``, ``import fnn.layers``), through a finder that maps those names to the real modules.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys as _sys

from fnn.version import __version__

# Public name -> (module, attribute); attribute None: the module itself.
_EXPORTS = {
    "MLP": ("fnn.nn.mlp", "MLP"),
    "Sequential": ("fnn.nn.sequential", "Sequential"),
    "Network": ("fnn.nn.protocol", "Network"),
    "Layer": ("fnn.nn.protocol", "Layer"),
    "loss_and_grad": ("fnn.nn.objective", "loss_and_grad"),
    "manual_vjp": ("fnn.nn.vjp", "manual_vjp"),
    "gradcheck": ("fnn.analysis.gradcheck", "gradcheck"),
    "GradcheckReport": ("fnn.analysis.gradcheck", "GradcheckReport"),
    "LeafReport": ("fnn.analysis.gradcheck", "LeafReport"),
    "ErrorStats": ("fnn.analysis.gradcheck", "ErrorStats"),
    "backprop_trace": ("fnn.analysis.trace", "backprop_trace"),
    "BackpropTrace": ("fnn.analysis.trace", "BackpropTrace"),
    "LayerTrace": ("fnn.analysis.trace", "LayerTrace"),
    "TrainState": ("fnn.engine", "TrainState"),
    "Trainer": ("fnn.engine", "Trainer"),
    "HParams": ("fnn.engine", "HParams"),
    "EarlyStopping": ("fnn.engine", "EarlyStopping"),
    "Loop": ("fnn.engine", "Loop"),
    "Numerics": ("fnn.engine", "Numerics"),
    "Monitor": ("fnn.engine", "Monitor"),
    "make_train_step": ("fnn.engine", "make_train_step"),
    "load_run": ("fnn.experiment.handle", "load_run"),
    "RunHandle": ("fnn.experiment.handle", "RunHandle"),
    "lr_find": ("fnn.experiment.lr_find", "lr_find"),
    "LRFindResult": ("fnn.experiment.lr_find", "LRFindResult"),
    "retain_freed_memory": ("fnn.util.allocator", "retain_freed_memory"),
    "analysis": ("fnn.analysis", None),
    "data": ("fnn.data", None),
    "engine": ("fnn.engine", None),
    "experiment": ("fnn.experiment", None),
    "nn": ("fnn.nn", None),
    "optim": ("fnn.optim", None),
}
# The flat layout's module names -> the modules of the layered folders (both names work).
_MODULE_ALIASES = {
    "train": "fnn.engine",
    "layers": "fnn.nn.layers",
    "activations": "fnn.nn.activations",
    "losses": "fnn.nn.losses",
    "schedules": "fnn.optim.schedules",
    "shuffle": "fnn.engine.shuffle",
    "diagnostics": "fnn.analysis.diagnostics",
}


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import fnn.train`` (and the other names of :data:`_MODULE_ALIASES`): the real module."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or name not in _MODULE_ALIASES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(_MODULE_ALIASES[spec.name.partition(".")[2]])
        spec.loader_state = module.__spec__  # importlib gives the module the alias's spec
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # already executed; its own spec back


if not any(isinstance(f, _AliasFinder) for f in _sys.meta_path):
    _sys.meta_path.append(_AliasFinder())


def __getattr__(name):
    """Each public name imported from its module on first use (see the module docstring)."""
    if name in _MODULE_ALIASES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = importlib.import_module(module)
        value = value if attr is None else getattr(value, attr)
    else:
        raise AttributeError(f"module 'fnn' has no attribute {name!r}")
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


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
    "Loop",
    "Numerics",
    "Monitor",
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
    "layers",
    "losses",
    "load_run",
    "RunHandle",
    "lr_find",
    "LRFindResult",
    "retain_freed_memory",
    "__version__",
]
