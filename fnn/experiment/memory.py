"""A run's memory, estimated before anything is built: refuse what cannot fit, with the figures.

    bytes ≈ members × (P × b × (params + grads + updates + optimizer slots + best params)
                       + B × A × b × 2)

with P the parameter count and A the activations per example (each layer's output; the forward
keeps Z and A for the backward pass), B the batch size and b the bytes per value. The estimate is
computed from shapes only (``jax.eval_shape``: nothing is allocated), so ``model.hidden =
[1000000000]`` is refused in milliseconds instead of failing inside XLA with an out-of-memory
error. The limit is ``training.memory_limit_gb``, or 80 % of this machine's memory when that is 0;
a user who knows better raises it with ``--set training.memory_limit_gb=...``.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np

from fnn.engine.eval_rows import eval_chunk  # noqa: F401 - re-exported

# Optimizer state per parameter, in parameter-sized slots.
SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "lion": 1,
         "adam": 2, "adamw": 2, "nadam": 2, "adamax": 2}
GB = 1e9
MAX_PARAMS = 2**28  # parameters of one member without an explicit training.memory_limit_gb


def machine_bytes() -> int:
    """Physical memory of this machine (0 where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 0


def activations_per_example(net) -> int:
    """Values each example's forward pass keeps: every layer's output (``net.shapes`` of a
    :class:`fnn.Sequential`: the input shape, then each layer's output shape)."""
    return int(sum(math.prod(s) for s in net.shapes[1:]))


def estimate(net, *, optimizer: str, batch_size: int, members: int = 1,
             early_stopping: bool = False, accumulate: int = 1) -> dict:
    """The estimate's parts in bytes: {"params", "training_state", "activations", "total"}.

    With gradient accumulation (``accumulate`` = K > 1) the activations are those of one
    micro-batch of ``batch_size / K`` rows, and the gradient sum is one more parameter-sized
    buffer."""
    shapes = jax.eval_shape(net.init, jax.random.key(0))
    count = sum(int(np.prod(leaf.shape, dtype=np.int64)) for leaf in jax.tree.leaves(shapes))
    itemsize = np.dtype(net.dtype).itemsize
    copies = 3 + SLOTS.get(optimizer, 2) + (1 if early_stopping else 0) + (accumulate > 1)
    params = count * itemsize
    state = params * copies * members
    rows = batch_size // accumulate  # the micro-batch alive at a time
    acts = 2 * rows * activations_per_example(net) * itemsize * members
    return {"params": params, "count": count, "training_state": state, "activations": acts,
            "total": state + acts}


def check(cfg, net, *, members: int = 1) -> None:
    """Raise a one-line ValueError when the run's estimate exceeds the limit.

    Args:
      cfg: the validated config.  net: the network built from it (no arrays yet).
      members: the sweep members trained in one program.
    """
    limit_gb = cfg.training.memory_limit_gb
    limit = limit_gb * GB if limit_gb > 0 else 0.8 * machine_bytes()
    if limit <= 0:
        return
    est = estimate(net, optimizer=cfg.optimizer.name, batch_size=cfg.training.batch_size,
                   members=members, early_stopping=cfg.early_stopping.enabled,
                   accumulate=cfg.training.accumulate)
    if est["count"] > MAX_PARAMS and limit_gb <= 0:
        raise ValueError(
            f"model: {est['count']:,} parameters; expected at most 2**28 = {MAX_PARAMS:,} (its"
            f" compilation alone takes minutes); set training.memory_limit_gb to train it anyway")
    if est["total"] > limit:
        k = cfg.training.accumulate
        batch = (f"a micro-batch of {cfg.training.batch_size // k} rows" if k > 1
                 else "a batch")
        where = ("training.memory_limit_gb" if limit_gb > 0 else
                 "80% of this machine's memory; raise it with --set training.memory_limit_gb=...")
        raise ValueError(
            f"model: the run needs about {est['total'] / GB:.3g} GB ({est['count']:,} parameters"
            f" with gradients and optimizer state: {est['training_state'] / GB:.3g} GB;"
            f" activations of {batch}: {est['activations'] / GB:.3g} GB) for {members} member(s);"
            f" the limit is {limit / GB:.3g} GB ({where})")
