"""The training state: exactly the carry of the scans.

(The traced hyperparameters, :class:`~fnn.engine.hparams.HParams`, are :mod:`fnn.engine.hparams`.)

* :class:`TrainState`: step, epoch, params, optimizer state, PRNG key, the NaN guard's flags,
  the early-stopping carry and the network's own state (BatchNorm statistics; ``()`` for a
  network without state). ``train_step(state, batch) -> (state, metrics)`` maps it to itself.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from fnn import optim

Array = jax.Array
PyTree = Any

class EarlyStopState(NamedTuple):
    """Early-stopping carry: best monitored value and epoch, best params, patience counter.

    ``best_net_state`` is the network state of the best epoch (BatchNorm's running statistics
    belong to its parameters); ``()`` for a network without state.
    """

    best: Array
    best_epoch: Array
    best_params: PyTree
    wait: Array
    stopped: Array
    stop_epoch: Array
    best_net_state: PyTree = ()


class TrainState(NamedTuple):
    """The whole training state — exactly the carry of the scans.

    step: int32, optimizer updates applied.   epoch: int32, epochs completed.
    params: the network's parameter pytree.   opt_state: the optimizer's state.
    key: PRNG key, split for every permutation, dropout mask and augmentation.
    halted: bool, a non-finite loss, gradient or update was met (see ``nan_guard``).
    halted_step: int32 index of the step that halted the run, or -1.
    early: :class:`EarlyStopState`, or None when early stopping is off.
    net_state: the network's state (BatchNorm running statistics), ``()`` if it has none.
    """

    step: Array
    epoch: Array
    params: PyTree
    opt_state: PyTree
    key: Array
    halted: Array
    halted_step: Array
    early: Optional[EarlyStopState] = None
    net_state: PyTree = ()

    @classmethod
    def create(cls, net, optimizer: optim.Optimizer, *, key: Array, params=None,
               early_stopping=None, net_state=None) -> "TrainState":
        """The first state of a run.

        Args:
          net: the :class:`~fnn.nn.protocol.Network` (its ``init`` and ``init_state``).
          optimizer: an :class:`fnn.optim.Optimizer`.
          key: PRNG key; split into the init key and the training key.
          params: initial parameters; ``None`` initializes them from the key. A tree shaped
            like the network's with ``None`` subtrees (e.g. ``(None, p1, None)`` for a
            Sequential of three layers) takes the given subtrees and draws the rest from the
            key, as if nothing were given (:func:`fill`): fine-tuning.
          early_stopping: an :class:`EarlyStopping` to carry its state, or None.
          net_state: the network's initial state, completed like ``params``; None: its own.
        Returns:
          a :class:`TrainState` at step 0.
        Raises:
          ValueError: a given subtree whose structure or shapes differ from the network's.
        """
        init_key, train_key = jax.random.split(key)
        params = fill(params, net.init(init_key), "params")
        net_state = fill(net_state, net.init_state(), "net_state")
        early = None
        if early_stopping is not None:
            dtype = _float_dtype(params)
            worst = jnp.asarray(jnp.inf if early_stopping.mode == "min" else -jnp.inf, dtype)
            # A copy, not an alias: Trainer.run donates the state, and a buffer donated twice
            # (params and best_params) is an error.
            early = EarlyStopState(
                best=worst, best_epoch=jnp.asarray(-1, jnp.int32),
                best_params=jax.tree.map(jnp.copy, params),
                wait=jnp.asarray(0, jnp.int32), stopped=jnp.asarray(False),
                stop_epoch=jnp.asarray(-1, jnp.int32),
                best_net_state=jax.tree.map(jnp.copy, net_state),
            )
        return cls(
            step=jnp.asarray(0, jnp.int32), epoch=jnp.asarray(0, jnp.int32), params=params,
            opt_state=optimizer.init(params), key=train_key, halted=jnp.asarray(False),
            halted_step=jnp.asarray(-1, jnp.int32), early=early, net_state=net_state,
        )


def fill(given, own, name: str = "params"):
    """``own`` with the subtrees of ``given`` put in, cast to ``own``'s dtypes.

    Args:
      given: None (all of ``own``), or a tree shaped like ``own`` whose ``None`` entries keep
        ``own``'s subtree there.
      own: the network's own tree (drawn from the key, or its initial state).
      name: the tree's name for errors.
    Returns:
      the completed tree, structured like ``own``.
    Raises:
      ValueError: ``name[path]``: a given subtree with another structure or shape (one line).
    """
    if given is None:
        return own
    def one(path, g, o):
        if g is None:
            return o
        where = f"{name}{jax.tree_util.keystr(path)}"
        if not hasattr(o, "shape"):
            raise ValueError(f"{where}: an array; the network has a subtree there "
                             f"({jax.tree.structure(o)})")
        if tuple(jnp.shape(g)) != tuple(o.shape):
            raise ValueError(f"{where}: shape {tuple(jnp.shape(g))}; the network's is "
                             f"{tuple(o.shape)}")
        return jnp.asarray(g, o.dtype)

    try:
        return jax.tree_util.tree_map_with_path(one, given, own, is_leaf=lambda t: t is None)
    except (ValueError, TypeError) as err:
        if str(err).startswith(name):
            raise
        raise ValueError(f"{name}: the given tree's structure differs from the network's "
                         f"({jax.tree.structure(given, is_leaf=lambda t: t is None)} vs "
                         f"{jax.tree.structure(own)})") from None


def _float_dtype(params):
    """The dtype of the first floating-point parameter leaf (float32 if none)."""
    for leaf in jax.tree.leaves(params):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.dtype
    return jnp.dtype("float32")


def select(pred: Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    """``on_true`` where the scalar ``pred`` holds, else ``on_false``, leaf by leaf."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)
