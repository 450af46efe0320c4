"""The training engine: the train step and the whole run as one scanned XLA program.

Modules, each one concept:

* :mod:`~fnn.engine.hparams` — :class:`HParams`, the hyperparameters a program may trace, and
  which it traces;
* :mod:`~fnn.engine.state` — :class:`TrainState`, exactly the carry of the scans;
* :mod:`~fnn.engine.early_stopping` — the :class:`EarlyStopping` policy;
* :mod:`~fnn.engine.step` — ``step(state, batch) -> (state, metrics)`` and its NaN guard;
* :mod:`~fnn.engine.device_data` — data on the device and the checks that data fit a network;
* :mod:`~fnn.engine.epoch` — one epoch and the scan over epochs, as module functions;
* :mod:`~fnn.engine.options` — the Trainer's arguments as records: :class:`Loop`,
  :class:`Numerics`, :class:`Monitor`;
* :mod:`~fnn.engine.trainer` — :class:`Trainer`: compiles them; ``train(key, hparams) ->
  (state, history)``, sweeps as ``vmap``, chunked runs;
* :mod:`~fnn.engine.summary` — host-side summaries of finished runs;
* :mod:`~fnn.engine.shuffle`, :mod:`~fnn.engine.metrics`, :mod:`~fnn.engine.parallel` — the
  per-epoch permutation, accuracy, and device meshes.

The engine knows networks only through the network protocol (:mod:`fnn.nn.protocol`): a new
layer touches no engine code. It imports the math (``fnn.nn``), ``fnn.optim``, ``fnn.data`` and
``fnn.analysis``, never the experiment layer or the CLI. ``fnn.train`` is this package.
"""

from fnn.util.lazy import exports

# Imported on first use (fnn.util.lazy): ``import fnn.engine`` loads no JAX.
__getattr__, __dir__ = exports(__name__, {
    "fnn.engine.device_data": ("DeviceData", "as_data", "check_data"),
    "fnn.engine.early_stopping": ("EarlyStopping",),
    "fnn.engine.hparams": ("HPARAM_NAMES", "HParams"),
    "fnn.engine.options": ("Loop", "Monitor", "Numerics"),
    "fnn.engine.state": ("EarlyStopState", "TrainState"),
    "fnn.engine.step": ("NAN_GUARDS", "check_nan_guard", "make_train_step", "train_step_fn"),
    "fnn.engine.summary": ("members_summary", "summarize"),
    "fnn.engine.trainer": ("OptimizerLike", "Trainer"),
})

__all__ = [
    "HParams", "HPARAM_NAMES", "EarlyStopState", "TrainState", "EarlyStopping", "NAN_GUARDS",
    "check_nan_guard", "train_step_fn", "make_train_step", "DeviceData", "as_data",
    "check_data", "Trainer", "OptimizerLike", "summarize", "members_summary", "Loop", "Numerics",
    "Monitor",
]
