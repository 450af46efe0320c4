"""Training by steps on token rows: random windows drawn on the device, inside the scanned run.

A :class:`Windows` run replaces the epoch's permutation of examples (:mod:`fnn.engine.shuffle`)
by ``steps`` independent draws: each step's batch is B windows of T + 1 ids, each at a
uniformly random row r and start s of the token rows (rows, length)::

    r ~ U{0 .. rows − 1},  s ~ U{0 .. length − T − 1},  w = ids[r, s : s + T + 1]
    x = w[:T],  y = w[1:]                 (next-character targets, nanoGPT's get_batch)

drawn from a key split off the carried PRNG key, so a run (and a resumed run) is a function of
its seed. A "round" of the Trainer is ``steps`` such steps then an evaluation on
``eval_batches`` random batches of the validation rows (nanoGPT's ``estimate_loss``): the
Trainer's epochs are rounds, and its history has one row per evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


@dataclass(frozen=True)
class Windows:
    """How a step-based run draws its batches.

    Args:
      block_size: T, ids per input window.
      steps: optimizer steps per round (``training.eval_interval``).
      eval_batches: validation batches per evaluation (``training.eval_iters``).
      answer_len: k > 0 adds the exact-match accuracy over each window's last k targets.
    """

    block_size: int
    steps: int
    eval_batches: int = 1
    answer_len: int = 0

    def __post_init__(self):
        for name in ("block_size", "steps", "eval_batches"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"windows.{name}: {v!r}; expected an integer >= 1")
        if not 0 <= self.answer_len <= self.block_size:
            raise ValueError(f"windows.answer_len: {self.answer_len!r}; expected 0 .. block_size"
                             f" = {self.block_size}")

    def check_rows(self, rows, name: str) -> None:
        """One-line ValueError unless ``rows`` are int (rows, length ≥ T + 1) ids."""
        shape = tuple(np.shape(rows))
        kind = np.asarray(rows).dtype.kind if not isinstance(rows, jax.Array) else \
            np.dtype(rows.dtype).kind
        if len(shape) != 2 or kind not in "iu" or shape[0] < 1 or shape[1] < self.block_size + 1:
            raise ValueError(f"{name}: token rows of shape {shape} ({kind or '?'}); expected"
                             f" integer ids (rows, length >= block_size + 1 ="
                             f" {self.block_size + 1})")


def draw(key: Array, rows: Array, batch: int, block_size: int) -> tuple[Array, Array]:
    """B random windows of ``rows`` (see the module docstring).

    Args:
      key: PRNG key.  rows: int (R, L) ids, L ≥ T + 1.  batch: B.  block_size: T.
    Returns:
      (x, y): int32 (B, T) inputs and next-id targets.
    """
    r, length = rows.shape
    k_row, k_start = jax.random.split(key)
    start = jax.random.randint(k_start, (batch,), 0, length - block_size, dtype=jnp.int32)
    idx = start[:, None] + jnp.arange(block_size + 1, dtype=jnp.int32)[None, :]
    if r == 1:
        w = rows[0][idx]
    else:
        row = jax.random.randint(k_row, (batch,), 0, r, dtype=jnp.int32)
        w = rows[row[:, None], idx]
    w = w.astype(jnp.int32)
    return w[:, :-1], w[:, 1:]
