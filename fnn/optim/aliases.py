"""The usual optimizers, each a :func:`~fnn.optim.base.chain` of building blocks, and a registry.

Every optimizer returns ``u`` such that :func:`~fnn.optim.base.apply_updates` performs
``theta <- theta + u``; the one-line rules below are written as that parameter update, with
``g`` the gradient, ``t = 1, 2, ...`` the step and ``lr`` the learning rate (a float, a 0-d
array that may be traced, or a schedule ``count -> lr`` evaluated at ``count = t - 1``).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from fnn.optim import names
from fnn.optim import moments as M
from fnn.optim import transforms as T
from fnn.optim.base import (
    Optimizer,
    ScalarOrSchedule,
    chain,
    check_decay,
    check_positive,
    is_concrete_number,
)

MaskOrFn = T.MaskOrFn


def _is_static_zero(x: Any) -> bool:
    return is_concrete_number(x) and float(x) == 0


def sgd(learning_rate: ScalarOrSchedule, momentum: Any = 0.0, nesterov: bool = False) -> Optimizer:
    """Stochastic gradient descent, optionally with (Nesterov) momentum (as PyTorch, dampening 0):
    ``m_t = momentum m_{t-1} + g``; ``theta <- theta - lr m_t`` (Nesterov:
    ``theta <- theta - lr (g + momentum m_t)``); without momentum ``theta <- theta - lr g``.

    Batch, stochastic and mini-batch gradient descent are all this rule; only the batch the
    training loop differentiates differs.

    Args:
      learning_rate: > 0 float, 0-d array (may be traced) or schedule.
      momentum: in [0, 1). A Python 0 drops the momentum buffer from the state; any array
        (even a traced 0) keeps it, so a sweep over momentum has one state structure.
      nesterov: Nesterov look-ahead; needs momentum > 0.
    Returns:
      an :class:`Optimizer`; state ``(TraceState(trace), lr state)`` with momentum, else
      ``(lr state,)``, where the lr state is ``EmptyState()`` or ``ScaleByScheduleState(count)``.
    """
    check_decay("momentum", momentum)
    no_momentum = _is_static_zero(momentum)
    if nesterov and no_momentum:
        raise ValueError("nesterov=True needs momentum > 0, got momentum=0")
    check_positive("learning_rate", learning_rate)
    if no_momentum:
        return chain(T.scale_by_learning_rate(learning_rate))
    return chain(
        T.trace(decay=momentum, nesterov=nesterov), T.scale_by_learning_rate(learning_rate)
    )


def adagrad(
    learning_rate: ScalarOrSchedule, initial_accumulator_value: Any = 0.0, eps: Any = 1e-10
) -> Optimizer:
    """Adagrad (Duchi et al. 2011; defaults as PyTorch):
    ``s_t = s_{t-1} + g^2``, ``s_0 = initial_accumulator_value`` (0);
    ``theta <- theta - lr g / (sqrt(s_t) + eps)``.

    optax differs: its accumulators start at 0.1 and its eps (1e-7) sits inside the root.

    Args:
      learning_rate: > 0 float, 0-d array or schedule.
      initial_accumulator_value: >= 0, start value of every accumulator entry.
      eps: > 0, added after the square root.
    Returns:
      an :class:`Optimizer`; state ``(AdagradState(sum_of_squares), lr state)``.
    """
    check_positive("learning_rate", learning_rate)
    return chain(
        M.scale_by_rss(initial_accumulator_value=initial_accumulator_value, eps=eps),
        T.scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: Any = 0.9,
    eps: Any = 1e-8,
    initial_scale: Any = 0.0,
    centered: bool = False,
    momentum: Any = 0.0,
    nesterov: bool = False,
) -> Optimizer:
    """RMSProp (Hinton 2012; eps outside the root as PyTorch; ``decay`` is PyTorch's ``alpha``):
    ``v_t = decay v + (1-decay) g^2``, ``v_0 = initial_scale`` (0);
    ``theta <- theta - lr g / (sqrt(v_t) + eps)``. Centered: ``m_t = decay m + (1-decay) g``,
    ``m_0 = 0``, denominator ``sqrt(v_t - m_t^2) + eps``. With momentum (as PyTorch):
    ``b_t = momentum b + g/(...)``, ``theta <- theta - lr b_t``.

    Args:
      learning_rate: > 0 float, 0-d array or schedule.
      decay: in [0, 1). Default 0.9 (Hinton, optax, Keras); PyTorch uses 0.99.
      eps: > 0.
      initial_scale: >= 0, the start value of ``v``.
      centered: use the centered (variance) form.
      momentum: in [0, 1); a Python 0 drops the momentum buffer.
      nesterov: Nesterov momentum (needs momentum > 0).
    Returns:
      an :class:`Optimizer`; state ``(RmsState | CenteredRmsState, [TraceState,] lr state)``.
    """
    check_positive("learning_rate", learning_rate)
    check_decay("momentum", momentum)
    no_momentum = _is_static_zero(momentum)
    if nesterov and no_momentum:
        raise ValueError("nesterov=True needs momentum > 0, got momentum=0")
    parts = [M.scale_by_rms(decay=decay, eps=eps, initial_scale=initial_scale, centered=centered)]
    if not no_momentum:
        parts.append(T.trace(decay=momentum, nesterov=nesterov))
    parts.append(T.scale_by_learning_rate(learning_rate))
    return chain(*parts)


def adam(
    learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8
) -> Optimizer:
    """Adam (Kingma & Ba 2015), eps after the bias-corrected square root (as PyTorch, optax):
    ``theta <- theta - lr m_hat / (sqrt(v_hat) + eps)``, ``m_hat = m_t/(1-b1^t)``,
    ``v_hat = v_t/(1-b2^t)``, ``m_t = b1 m + (1-b1) g``, ``v_t = b2 v + (1-b2) g^2``,
    ``m_0 = v_0 = 0``.

    (This is the paper's Algorithm 1; the reordered "efficient" form at the end of its Sec. 2,
    ``alpha_t = lr sqrt(1-b2^t)/(1-b1^t)``, ``theta -= alpha_t m_t/(sqrt(v_t) + eps)``, puts eps
    before the bias correction and differs slightly.)

    Args:
      learning_rate: > 0 float, 0-d array or schedule.
      b1, b2: moment decays in [0, 1).
      eps: > 0.
    Returns:
      an :class:`Optimizer`; state ``(AdamState(count, mu, nu), lr state)``.
    """
    check_positive("learning_rate", learning_rate)
    return chain(M.scale_by_adam(b1=b1, b2=b2, eps=eps), T.scale_by_learning_rate(learning_rate))


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 1e-4,
    mask: MaskOrFn = None,
) -> Optimizer:
    """Adam with decoupled weight decay, the decay multiplied by the learning rate (as PyTorch
    and optax): ``theta <- theta - lr (m_hat / (sqrt(v_hat) + eps) + weight_decay theta)``.

    The paper (Loshchilov & Hutter 2019) multiplies the decay by the schedule multiplier
    ``eta_t`` only, not by the base learning rate: ``theta <- theta - eta_t (alpha adam_step
    + lambda theta)``; to reproduce it, pass ``weight_decay = lambda / alpha``.

    Args:
      learning_rate: > 0 float, 0-d array or schedule.
      b1, b2: moment decays in [0, 1).
      eps: > 0.
      weight_decay: >= 0 (may be traced). Default 1e-4 (optax; PyTorch uses 1e-2).
      mask: which leaves decay. None (default, as PyTorch/optax) decays **every** leaf,
        biases included; pass :func:`~fnn.optim.transforms.weights_only_mask` to exclude biases.
    Returns:
      an :class:`Optimizer`; state ``(AdamState, EmptyState, lr state)``.
    """
    check_positive("learning_rate", learning_rate)
    return chain(
        M.scale_by_adam(b1=b1, b2=b2, eps=eps),
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8
) -> Optimizer:
    """NAdam (Dozat 2016) with constant momentum, as optax:
    ``theta <- theta - lr (b1 m_t/(1-b1^(t+1)) + (1-b1) g/(1-b1^t)) / (sqrt(v_hat) + eps)``.

    PyTorch's NAdam additionally warms the momentum up (``momentum_decay=4e-3``); this one does
    not.

    Args:
      learning_rate: > 0 float, 0-d array or schedule.
      b1, b2: moment decays in [0, 1).
      eps: > 0.
    Returns:
      an :class:`Optimizer`; state ``(AdamState(count, mu, nu), lr state)``.
    """
    check_positive("learning_rate", learning_rate)
    return chain(
        M.scale_by_adam(b1=b1, b2=b2, eps=eps, nesterov=True),
        T.scale_by_learning_rate(learning_rate),
    )


def adamax(
    learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8
) -> Optimizer:
    """AdaMax (Kingma & Ba 2015, Alg. 2; eps as PyTorch and optax):
    ``n_t = max(b2 n, |g| + eps)``, ``n_0 = 0``; ``theta <- theta - lr m_t / ((1-b1^t) n_t)``.

    Args:
      learning_rate: > 0 float, 0-d array or schedule.
      b1, b2: decays in [0, 1).
      eps: > 0.
    Returns:
      an :class:`Optimizer`; state ``(AdamaxState(count, mu, nu), lr state)``.
    """
    check_positive("learning_rate", learning_rate)
    return chain(M.scale_by_adamax(b1=b1, b2=b2, eps=eps), T.scale_by_learning_rate(learning_rate))


def lion(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.99,
    weight_decay: Any = 0.0,
    mask: MaskOrFn = None,
) -> Optimizer:
    """Lion (Chen et al. 2023), decoupled decay times lr as in the paper:
    ``theta <- theta - lr (sign(b1 m + (1-b1) g) + weight_decay theta)``;
    ``m_t = b2 m + (1-b2) g``, ``m_0 = 0``.

    Use a learning rate 3-10x smaller than for AdamW. ``weight_decay`` defaults to 0 here (optax
    uses 1e-3).

    Args:
      learning_rate: > 0 float, 0-d array or schedule.
      b1, b2: in [0, 1).
      weight_decay: >= 0.
      mask: as for :func:`adamw`.
    Returns:
      an :class:`Optimizer`; state ``(LionState(mu), EmptyState, lr state)``.
    """
    check_positive("learning_rate", learning_rate)
    return chain(
        M.scale_by_lion(b1=b1, b2=b2),
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate),
    )


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "sgd": sgd,
    "momentum": functools.partial(sgd, momentum=0.9),
    "nesterov": functools.partial(sgd, momentum=0.9, nesterov=True),
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
    "nadam": nadam,
    "adamax": adamax,
    "lion": lion,
}
"""Optimizer constructors by name. ``"momentum"`` is :func:`sgd` with ``momentum=0.9`` and
``"nesterov"`` additionally ``nesterov=True`` (both overridable)."""


def _check_names() -> None:
    """The registry against :data:`fnn.optim.names.OPTIMIZERS` (read by the config without JAX)."""
    listed = {name: names.OPTIMIZERS.get(name) for name in OPTIMIZERS}
    actual = {name: tuple(inspect.signature(f).parameters) for name, f in OPTIMIZERS.items()}
    if listed != actual or set(names.OPTIMIZERS) != set(OPTIMIZERS):
        raise RuntimeError(f"optimizer registry {actual} differs from fnn.optim.names.OPTIMIZERS"
                           f" {names.OPTIMIZERS}; change both")


_check_names()


def get(name: str, **kwargs: Any) -> Optimizer:
    """Build an optimizer from its registry name and keyword arguments.

    Args:
      name: a key of :data:`OPTIMIZERS`.
      **kwargs: the constructor's arguments, e.g. ``learning_rate=1e-3`` (may be traced).
    Returns:
      the :class:`Optimizer`.
    Raises:
      ValueError: unknown name (lists the valid names), an unknown or missing argument (lists
        the accepted ones), or a hyperparameter out of range.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    factory = OPTIMIZERS[name]
    sig = inspect.signature(factory)
    try:
        sig.bind(**kwargs)
    except TypeError as e:
        raise ValueError(
            f"optimizer {name!r}: {e}; accepted arguments: {', '.join(sig.parameters)}"
        ) from None
    return factory(**kwargs)
