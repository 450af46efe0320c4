"""An element-wise optimizer on all parameter leaves at once, raveled into one vector.

An element-wise optimizer (``Optimizer.elementwise``: every rule of :mod:`fnn.optim` but
global-norm clipping and masked weight decay) computes each entry of the update and of its
state from the same entry of the gradient, the parameters and the state alone. Run on the
leaves raveled into one vector it applies the same formula to every entry, while the compiled
step runs one kernel per state buffer instead of one per leaf and per buffer: for a small
network, whose step is a few dozen kernels of a microsecond each, that is most of the
optimizer's cost. ``ravel(tree)`` concatenates the leaves in ``jax.tree.leaves`` order, each in
row-major order.

The same formula is not always the same bits: XLA:CPU contracts ``a*x + b*y`` into a fused
multiply-add, and which of the two products it contracts depends on the kernel the expression
is compiled into, so an entry may differ from the per-leaf one in its last bit (seen for Lion
inside the Trainer's loop; Adam on a 2-16-16-2 MLP came out bitwise equal over an epoch).

:func:`flat` wraps an optimizer; :func:`ravel_state` and :func:`unravel_state` convert a
per-leaf state to the flat one and back, so that a run can keep the per-leaf state outside its
scanned loop (checkpoints, a user's own loop) and the flat one inside
(:mod:`fnn.engine.epoch`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn.optim.base import OptState, Optimizer, Params, PyTree


def ravel(tree: PyTree) -> jax.Array:
    """All leaves of ``tree`` as one vector: ``v = concat(ravel(leaf) for leaf in leaves)``.

    Args:
      tree: a pytree of arrays of one dtype, at least one leaf.
    Returns:
      a (P,) array, P the total number of entries, of the leaves' dtype.
    """
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def unravel(vector: jax.Array, like: PyTree) -> PyTree:
    """The inverse of :func:`ravel`: ``vector`` cut into the leaves of ``like``.

    Args:
      vector: a (P,) array, P the number of entries of ``like``.
      like: the pytree whose structure and leaf shapes to restore (its values are unused).
    Returns:
      a pytree structured like ``like``, each leaf of its shape and of ``vector``'s dtype.
    """
    leaves, treedef = jax.tree.flatten(like)
    out, start = [], 0
    for leaf in leaves:
        size = int(jnp.size(leaf))
        out.append(vector[start:start + size].reshape(jnp.shape(leaf)))
        start += size
    return jax.tree.unflatten(treedef, out)


def can_flatten(optimizer: Optimizer, params: Params) -> bool:
    """Whether :func:`flat` applies: ``optimizer`` is element-wise and ``params`` has at least
    one leaf, all of one floating dtype.

    Args:
      optimizer: an :class:`~fnn.optim.base.Optimizer`.  params: the parameter pytree.
    Returns:
      a Python bool.
    """
    leaves = jax.tree.leaves(params)
    dtypes = {jnp.result_type(x) for x in leaves}
    return (bool(optimizer.elementwise) and len(dtypes) == 1
            and jnp.issubdtype(dtypes.pop(), jnp.floating))


def flat(optimizer: Optimizer) -> Optimizer:
    """``optimizer`` run on the raveled leaves:
    ``u = unravel(update(ravel(g), s, ravel(theta)))``, with ``s`` the state of
    ``optimizer.init(ravel(theta))``.

    Args:
      optimizer: an element-wise :class:`~fnn.optim.base.Optimizer`.
    Returns:
      an element-wise :class:`~fnn.optim.base.Optimizer` whose state is ``optimizer``'s for one
      (P,) parameter vector and whose updates are structured like the gradients. Every entry of
      the updates and of the state is computed by the same formula as leaf by leaf (equal up
      to the compiler's fused multiply-adds, module docstring).
    Raises:
      ValueError: the optimizer is not element-wise (global-norm clipping, a weight-decay
        mask, or one that does not say).
    """
    if not optimizer.elementwise:
        raise ValueError("flat: the optimizer is not element-wise (global-norm clipping, a "
                         "weight-decay mask, or Optimizer.elementwise unset); run it per leaf")

    def init(params):
        return optimizer.init(ravel(params))

    def update(grads, state, params=None):
        flat_params = None if params is None else ravel(params)
        updates, state = optimizer.update(ravel(grads), state, flat_params)
        return unravel(updates, grads), state

    return Optimizer(init, update, elementwise=True)


def _like(params: Params):
    """``node -> bool``: whether a state node is structured and shaped like ``params``."""
    treedef = jax.tree.structure(params)
    shapes = [jnp.shape(x) for x in jax.tree.leaves(params)]

    def like(node) -> bool:
        if jax.tree.structure(node) != treedef:
            return False
        return [jnp.shape(x) for x in jax.tree.leaves(node)] == shapes

    return like


def ravel_state(state: OptState, params: Params) -> OptState:
    """A per-leaf optimizer state as the state of :func:`flat`: every subtree structured and
    shaped like ``params`` (a moment) raveled into one vector, the rest (step counts, injected
    hyperparameters) as it is.

    Args:
      state: ``optimizer.init(params)`` or a later state of the per-leaf optimizer.
      params: the parameters (their structure and shapes only).
    Returns:
      ``flat(optimizer)``'s state holding the same values.
    """
    like = _like(params)
    return jax.tree.map(lambda node: ravel(node) if like(node) else node, state, is_leaf=like)


def unravel_state(flat_state: OptState, like_state: OptState, params: Params) -> OptState:
    """The inverse of :func:`ravel_state`.

    Args:
      flat_state: a state of ``flat(optimizer)``.
      like_state: a per-leaf state of ``optimizer`` (its structure and shapes only).
      params: the parameters (their structure and shapes only).
    Returns:
      the per-leaf state holding the values of ``flat_state``.
    """
    like = _like(params)
    return jax.tree.map(lambda node, f: unravel(f, node) if like(node) else f,
                        like_state, flat_state, is_leaf=like)
