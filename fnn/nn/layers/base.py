"""What the layer families share: argument checks, window geometry, static caches, the fused
activation.

Window geometry (XLA's SAME / VALID, per spatial axis; ``k`` window, ``s`` stride, ``n`` input):

    VALID:  out = ⌊(n − k)/s⌋ + 1,  pad = (0, 0)
    SAME:   out = ⌈n/s⌉,  total = max((out − 1)·s + k − n, 0),  pad = (total//2, total − total//2)

Patches ("im2col" by strided slices): for each window offset (i, j) in row-major order the slice
X[:, i : i + (oh−1)s_h + 1 : s_h, j : j + (ow−1)s_w + 1 : s_w, :] is one (N, oh, ow, C) block;
``col2im`` is the adjoint: each block is placed back by ``lax.pad`` (interior padding s − 1) and
the kh·kw placed blocks are summed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnn.nn import activations as acts
from fnn.nn import initializers as inits

Array = jax.Array


# --- argument checks -----------------------------------------------------------------------------
def pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of positive ints as a pair; raises a one-line ValueError otherwise."""
    given = value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, Sequence) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                   for v in value)):
        raise ValueError(f"{name}: {given!r}; expected a positive int or a pair of them")
    return int(value[0]), int(value[1])


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: {value!r}; expected a positive integer")
    return int(value)


def shape_str(shape) -> str:
    return str(tuple(int(d) for d in shape))


def expect_rank(shape, rank: int, what: str) -> None:
    """Raise the one-line ValueError "got input shape S; expected WHAT" unless len(S) == rank."""
    if len(shape) != rank:
        raise ValueError(f"got input shape {shape_str(shape)}; expected {what}")


def canonical_activation(name):
    """The registry name of ``name`` if it is known, else ``name`` unchanged (the layer's shape
    check then raises the lookup's one-line error, prefixed by the container with the index)."""
    try:
        return acts.canonical_name(name)
    except (ValueError, TypeError):
        return name


# --- window geometry -----------------------------------------------------------------------------
def window_out_and_pad(n: int, k: int, s: int, padding: str) -> tuple[int, tuple[int, int]]:
    """(output size, (pad_lo, pad_hi)) of one spatial axis, exactly as XLA's SAME / VALID."""
    if padding == "valid":
        return (n - k) // s + 1, (0, 0)
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return out, (total // 2, total - total // 2)


def patch_slices(xp: Array, window: tuple[int, int], strides: tuple[int, int],
                 out_hw: tuple[int, int]) -> list[Array]:
    """The kh·kw strided slices of a (padded) NHWC input, row-major over the window.

    Args:
      xp: (N, Hp, Wp, C); window (kh, kw); strides (sh, sw); out_hw (oh, ow).
    Returns:
      kh·kw arrays (N, oh, ow, C); block (i, j) is xp[:, i + sh·p, j + sw·q, :].
    """
    (kh, kw), (sh, sw), (oh, ow) = window, strides, out_hw
    n, c = xp.shape[0], xp.shape[3]
    return [lax.slice(xp, (0, i, j, 0), (n, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c),
                      (1, sh, sw, 1))
            for i in range(kh) for j in range(kw)]


def col2im(blocks: Sequence[Array], window: tuple[int, int], strides: tuple[int, int],
           in_hw: tuple[int, int], pads: tuple[tuple[int, int], tuple[int, int]]) -> Array:
    """The adjoint of :func:`patch_slices` followed by padding: Σ_(i,j) block (i, j) placed back.

    Args:
      blocks: kh·kw arrays (N, oh, ow, C), row-major over the window.
      window, strides: (kh, kw), (sh, sw).  in_hw: the unpadded (H, W).
      pads: ((lo_h, hi_h), (lo_w, hi_w)) the forward padding (cropped away here).
    Returns:
      (N, H, W, C): dX[:, h, w] = Σ over the blocks whose window covers (h, w).
    """
    (kh, kw), (sh, sw), (h, w) = window, strides, in_hw
    (lo_h, hi_h), (lo_w, hi_w) = pads
    hp, wp = h + lo_h + hi_h, w + lo_w + hi_w
    zero = jnp.zeros((), blocks[0].dtype)
    total = None
    for idx, blk in enumerate(blocks):
        i, j = divmod(idx, kw)
        oh, ow = blk.shape[1], blk.shape[2]
        span_h, span_w = (oh - 1) * sh + 1, (ow - 1) * sw + 1
        # place at offset (i, j) of the padded frame, then crop the frame's padding (negative pad)
        cfg = ((0, 0, 0), (i - lo_h, hp - i - span_h - hi_h, sh - 1),
               (j - lo_w, wp - j - span_w - hi_w, sw - 1), (0, 0, 0))
        placed = lax.pad(blk, zero, cfg)
        total = placed if total is None else total + placed
    return total


def pad_input(x: Array, pads) -> Array:
    (lo_h, hi_h), (lo_w, hi_w) = pads
    if lo_h == hi_h == lo_w == hi_w == 0:
        return x
    return jnp.pad(x, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))


# --- a cache leaf that is static (a shape), so jit / scan carry it without tracing -------------
@jax.tree_util.register_static
@dataclass(frozen=True)
class Static:
    """A static, hashable value inside a cache pytree (no leaves)."""

    value: tuple


def bcast_last(v: Array, ndim: int) -> Array:
    """A (C,) vector reshaped to (1, ..., 1, C) of rank ``ndim`` (explicit, no rank promotion)."""
    return v.reshape((1,) * (ndim - 1) + (v.shape[0],))


class FusedActivation:
    """Mixin for layers with a fused activation ``A = g(Z)``: ``act``, ``delta`` and ``backward``.

    The layer defines ``activation`` (a name) and ``backward_from_delta(params, cache, δ)``; its
    cache has fields ``z`` and ``a``.
    """

    @property
    def act(self) -> acts.Activation:
        return acts.get(self.activation)

    def delta(self, cache, grad_a: Array) -> Array:
        """δ = ∂L/∂Z = ∂L/∂A ⊙ g'(Z) (softmax: its Jacobian-vector product). Shape of Z."""
        return self.act.backward(cache.z, cache.a, grad_a)

    def backward(self, params: dict, cache, grad_out: Array) -> tuple[dict, Array]:
        """From ∂L/∂A: δ = ∂L/∂A ⊙ g'(Z), then ``backward_from_delta``."""
        return self.backward_from_delta(params, cache, self.delta(cache, grad_out))

    def kinks(self, cache) -> list:
        """The sign pattern Z > 0 of a ReLU-family activation (where g' jumps), else none."""
        return [cache.z > 0] if self.act.kink else []

    def _check_activation(self) -> None:
        """The activation and initializer names (a one-line ValueError naming the argument)."""
        try:
            acts.get(self.activation)
        except (ValueError, TypeError) as err:
            raise ValueError(f"activation: {err}") from None
        if getattr(self, "initializer", None) is not None:
            try:
                self.init_name
            except (ValueError, TypeError) as err:
                raise ValueError(f"initializer: {err}") from None

    @property
    def init_name(self) -> str:
        """The kernel initializer's registry name: ``initializer``, or the activation's default
        (He for the ReLU family, Glorot otherwise) when it is None. Layers with a kernel only."""
        if self.initializer is None:
            return inits.default_for(self.activation)
        return inits.canonical_name(self.initializer)
