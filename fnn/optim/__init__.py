"""Optimizers in pure JAX: gradient transformations that compose.

The contract
------------
An optimizer is an :class:`Optimizer`, a NamedTuple of two pure functions::

    opt = fnn.optim.adam(learning_rate=1e-3)
    state = opt.init(params)                                # any pytree of float arrays
    updates, state = opt.update(grads, state, params)       # grads: same tree as params
    params = fnn.optim.apply_updates(params, updates)       # theta <- theta + u

* ``apply_updates`` is the only place parameters change; ``update`` returns the *signed* step
  (``u = -lr * ...`` for descent).
* Each transformation's state is its own NamedTuple (``AdamState(count, mu, nu)``, ...), and a
  :func:`chain` of transformations has the tuple of their states; states are pytrees, so
  ``jit``, ``lax.scan``, ``vmap`` and checkpoints carry them. Step counters are int32.
* Updates and state leaves keep each parameter leaf's dtype (float32 in, float32 out), also
  when hyperparameters are Python floats, and under strict dtype promotion.
* Hyperparameters may be Python floats or 0-d JAX arrays, including tracers: building the
  optimizer inside a jitted function from a traced ``learning_rate`` compiles once for every
  value, and a sweep over values is a ``vmap``. ``learning_rate`` may also be a schedule
  ``count -> value`` (see :mod:`fnn.schedules`); its count lives in the state.
* Python/NumPy hyperparameters are range-checked at construction (``ValueError`` naming the
  argument and value); traced values cannot be checked. Grads and params of different tree
  structures raise ``ValueError`` naming both structures.

Optimizers (:mod:`fnn.optim.aliases`): :func:`sgd` (plain, momentum, Nesterov), :func:`adagrad`,
:func:`rmsprop`, :func:`adam`, :func:`adamw`, :func:`nadam`, :func:`adamax`, :func:`lion`;
:func:`get` builds one by name from :data:`OPTIMIZERS`.

Building blocks (:mod:`fnn.optim.transforms`, the moment-based ones in
:mod:`fnn.optim.moments`), combined with :func:`chain`:
:func:`scale`, :func:`scale_by_learning_rate`, :func:`scale_by_schedule`, :func:`trace`,
:func:`scale_by_adam`, :func:`scale_by_adamax`, :func:`scale_by_rss`, :func:`scale_by_rms`,
:func:`scale_by_lion`, :func:`clip`, :func:`clip_by_global_norm`,
:func:`add_decayed_weights` (with :func:`weights_only_mask`), and :func:`inject_hyperparams`.

An element-wise optimizer (``Optimizer.elementwise``; all of the above but
:func:`clip_by_global_norm` and a masked :func:`add_decayed_weights`) may run on all leaves
raveled into one vector, the same formula entry by entry in fewer kernels: :func:`flat`
(:mod:`fnn.optim.flatten`; the Trainer's scanned loop with ``Numerics.flat_updates``).

Example, AdamW with clipping and biases excluded from decay::

    opt = chain(clip_by_global_norm(1.0),
                adamw(1e-3, weight_decay=1e-2, mask=weights_only_mask))
"""
from fnn.util.lazy import exports

# Imported on first use (fnn.util.lazy): ``import fnn.optim`` loads no JAX.
__getattr__, __dir__ = exports(__name__, {
    "fnn.optim.aliases": ("OPTIMIZERS", "adagrad", "adam", "adamax", "adamw", "get", "lion",
                          "nadam", "rmsprop", "sgd"),
    "fnn.optim.base": ("EmptyState", "GradientTransformation", "Optimizer", "apply_updates",
                       "chain", "global_norm", "identity"),
    "fnn.optim.flatten": ("can_flatten", "flat", "ravel", "ravel_state", "unravel",
                          "unravel_state"),
    "fnn.optim.inject": ("InjectHyperparamsState", "inject_hyperparams"),
    "fnn.optim.moments": ("AdagradState", "AdamaxState", "AdamState", "CenteredRmsState",
                          "LionState", "RmsState", "scale_by_adam", "scale_by_adamax",
                          "scale_by_lion", "scale_by_rms", "scale_by_rss"),
    "fnn.optim.transforms": ("ScaleByScheduleState", "TraceState", "add_decayed_weights", "clip",
                             "clip_by_global_norm", "scale", "scale_by_learning_rate",
                             "scale_by_schedule", "trace", "weights_only_mask"),
})

__all__ = [
    # core
    "Optimizer",
    "GradientTransformation",
    "EmptyState",
    "apply_updates",
    "chain",
    "identity",
    "global_norm",
    # optimizers
    "sgd",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "nadam",
    "adamax",
    "lion",
    "OPTIMIZERS",
    "get",
    # building blocks
    "scale",
    "scale_by_learning_rate",
    "scale_by_schedule",
    "trace",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_rss",
    "scale_by_rms",
    "scale_by_lion",
    "clip",
    "clip_by_global_norm",
    "add_decayed_weights",
    "weights_only_mask",
    "inject_hyperparams",
    "flat",
    "can_flatten",
    "ravel",
    "ravel_state",
    "unravel",
    "unravel_state",
    # states
    "ScaleByScheduleState",
    "TraceState",
    "AdamState",
    "AdamaxState",
    "AdagradState",
    "RmsState",
    "CenteredRmsState",
    "LionState",
    "InjectHyperparamsState",
]
