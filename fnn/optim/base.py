"""The optimizer type, composition, and the helpers every transformation shares.

An :class:`Optimizer` is a pair of pure functions::

    init(params) -> state
    update(grads, state, params) -> (updates, state)

and :func:`apply_updates` (``params + updates``) is the only place parameters change.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
Params = PyTree
Updates = PyTree
OptState = PyTree
Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = Union[float, jax.Array, Schedule]

_INT32_MAX = int(np.iinfo(np.int32).max)


class Optimizer(NamedTuple):
    """A gradient transformation: two pure functions.

    Attributes:
      init: ``init(params) -> state``. ``params`` is any pytree of float arrays; ``state`` is a
        pytree (a NamedTuple per transformation, a tuple of them for :func:`chain`).
      update: ``update(grads, state, params=None) -> (updates, new_state)``. ``grads`` and
        ``updates`` have the structure, shapes and dtypes of ``params``. Transformations that
        need the parameters (weight decay) raise if ``params`` is None.
      elementwise: True when ``update`` computes every entry of ``updates`` and of each state
        leaf shaped like ``params`` from the same entry of ``grads``, ``params`` and the state
        alone (scalar state such as a step count aside), and treats every leaf alike: no
        reduction across entries (global-norm clipping), no per-leaf choice (a weight-decay
        mask). Such an optimizer may run on all leaves raveled into one vector
        (:func:`fnn.optim.flat`): the same formula for every entry. False (the default) for an
        optimizer that does not say.
    """

    init: Callable[[Params], OptState]
    update: Callable[..., tuple[Updates, OptState]]
    elementwise: bool = False


GradientTransformation = Optimizer  # optax's name for the same thing


class EmptyState(NamedTuple):
    """State of a stateless transformation (an empty pytree)."""


# --------------------------------------------------------------------------------------------
# Checks (construction time: Python / NumPy numbers only; traced values cannot be checked)
# --------------------------------------------------------------------------------------------


def is_concrete_number(value: Any) -> bool:
    """True for Python (non-bool) and NumPy numbers, i.e. values that can be range-checked."""
    return isinstance(value, (numbers.Number, np.generic, np.ndarray)) and not isinstance(
        value, bool
    )


def check_scalar(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise ``ValueError`` naming ``name`` and ``value`` if a hyperparameter is out of range.

    Only Python and NumPy numbers are range-checked; JAX arrays (possibly tracers inside
    ``jit``/``vmap``) are only checked to be 0-d, and callables (schedules) are skipped.

    Args:
      name: the argument name used in the message.
      value: a Python/NumPy number, a 0-d JAX array, or a schedule.
      low, high: the bounds (None: unbounded); ``*_inclusive`` say whether they are allowed.
    """
    if callable(value):
        return
    if not is_concrete_number(value):
        if isinstance(value, jax.Array) and jnp.ndim(value) != 0:
            raise ValueError(
                f"{name} must be a scalar, got an array of shape {jnp.shape(value)}"
            )
        return
    arr = np.asarray(value)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got an array of shape {arr.shape}")
    v = float(arr)
    ok = True
    if low is not None:
        ok &= (v >= low) if low_inclusive else (v > low)
    if high is not None:
        ok &= (v <= high) if high_inclusive else (v < high)
    if not ok:  # NaN fails every comparison and lands here too
        lo = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
        raise ValueError(f"{name} must be in {lo}, {hi}, got {value!r}")


def check_positive(name: str, value: Any) -> None:
    """``value > 0`` (Python/NumPy numbers only)."""
    check_scalar(name, value, low=0.0, low_inclusive=False)


def check_nonnegative(name: str, value: Any) -> None:
    """``value >= 0`` (Python/NumPy numbers only)."""
    check_scalar(name, value, low=0.0)


def check_decay(name: str, value: Any) -> None:
    """``0 <= value < 1`` (Python/NumPy numbers only): b1, b2, momentum, decay."""
    check_scalar(name, value, low=0.0, high=1.0, high_inclusive=False)


def check_same_structure(grads: PyTree, params: PyTree, names=("grads", "params")) -> None:
    """Raise ``ValueError`` naming both tree structures if they differ."""
    gs, ps = jax.tree.structure(grads), jax.tree.structure(params)
    if gs != ps:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same tree structure, got "
            f"{names[0]}={gs} and {names[1]}={ps}"
        )


# --------------------------------------------------------------------------------------------
# Small numeric helpers
# --------------------------------------------------------------------------------------------


def zeros_like(params: Params) -> PyTree:
    """A state tree of zeros shaped and typed like ``params``."""
    return jax.tree.map(jnp.zeros_like, params)


def full_like(params: Params, value: Any) -> PyTree:
    """A state tree filled with ``value``, each leaf in its parameter's dtype."""
    return jax.tree.map(lambda p: jnp.full_like(p, cast(value, p)), params)


def cast(h: Any, like: jax.Array) -> jax.Array:
    """A hyperparameter (Python float or 0-d array, possibly traced) as a 0-d array of
    ``like``'s dtype, so strict dtype promotion never upcasts a leaf."""
    return jnp.asarray(h, dtype=like.dtype)


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1`` for an int32 step counter, saturating at the int32 maximum."""
    return jnp.where(count < _INT32_MAX, count + 1, count)


def _coef_dtype(like: jax.Array):
    """Dtype for scalar coefficients: the leaf's, but at least float32 (in bfloat16, b2=0.999
    rounds to 1, so ``1 - b2`` and ``1 - b2**t`` must be formed before casting)."""
    return like.dtype if jnp.finfo(like.dtype).bits >= 32 else jnp.float32


def one_minus(h: Any, like: jax.Array) -> jax.Array:
    """``1 - h`` formed in at least float32, then cast to ``like``'s dtype."""
    return (1 - jnp.asarray(h, dtype=_coef_dtype(like))).astype(like.dtype)


def bias_correction(decay: Any, count: jax.Array, like: jax.Array) -> jax.Array:
    """``1 - decay**count`` formed in at least float32, as a 0-d array of ``like``'s dtype."""
    d = _coef_dtype(like)
    return (1 - jnp.asarray(decay, dtype=d) ** count.astype(d)).astype(like.dtype)


def global_norm(tree: PyTree) -> jax.Array:
    """The l2 norm of all leaves taken together: ``sqrt(sum_leaves sum(x**2))``.

    Args:
      tree: a pytree of float arrays (any shapes).
    Returns:
      a 0-d array, of the leaves' dtype if they share one, else of the default float dtype.
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.result_type(float))
    dtypes = {jnp.asarray(x).dtype for x in leaves}
    acc = dtypes.pop() if len(dtypes) == 1 else jnp.result_type(float)
    return jnp.sqrt(sum(jnp.sum(jnp.square(jnp.asarray(x).astype(acc))) for x in leaves))


# --------------------------------------------------------------------------------------------
# The core combinators
# --------------------------------------------------------------------------------------------


def apply_updates(params: Params, updates: Updates) -> Params:
    """Apply updates: ``theta <- theta + u`` leaf by leaf, keeping each parameter's dtype.

    Args:
      params: a pytree of arrays.
      updates: a pytree of the same structure and shapes (from ``Optimizer.update``).
    Returns:
      the new params, same structure, shapes and dtypes as ``params``.
    Raises:
      ValueError: if the two trees have different structures (both are named).
    """
    check_same_structure(updates, params, ("updates", "params"))
    return jax.tree.map(
        lambda p, u: p + jnp.asarray(u).astype(jnp.asarray(p).dtype), params, updates
    )


def identity() -> Optimizer:
    """The transformation that changes nothing: ``u = g``. State: :class:`EmptyState`."""

    def init(params):
        del params
        return EmptyState()

    def update(grads, state, params=None):
        del params
        return grads, state

    return Optimizer(init, update, elementwise=True)


def chain(*transforms: Optimizer) -> Optimizer:
    """Compose transformations left to right: ``u = t_n(...t_2(t_1(g)))``.

    Args:
      *transforms: :class:`Optimizer` s, applied in the order given; each sees ``params``.
    Returns:
      an :class:`Optimizer` whose state is the tuple of the transforms' states; element-wise
      when every transform is.
    """
    transforms = tuple(transforms)
    for i, t in enumerate(transforms):
        if not isinstance(t, Optimizer):
            raise TypeError(f"chain: argument {i} must be an Optimizer, got {type(t).__name__}")

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(grads, state, params=None):
        if params is not None:
            check_same_structure(grads, params)
        if len(state) != len(transforms):
            raise ValueError(
                f"chain: state has {len(state)} entries but the chain has {len(transforms)} "
                "transformations"
            )
        new_state = []
        for t, s in zip(transforms, state):
            grads, s = t.update(grads, s, params)
            new_state.append(s)
        return grads, tuple(new_state)

    return Optimizer(init, update, elementwise=all(t.elementwise for t in transforms))
