"""Pooling over 'valid' windows (NHWC): max, average, global average.

With the window's kh·kw strided slices X_(i,j) (N, oh, ow, C), row-major over the window
(see :func:`fnn.nn.layers.base.patch_slices`):

    MaxPool2D:  Y = max_(i,j) X_(i,j);  ∂L/∂X = col2im(δ ⊙ 1[(i,j) is the window's first maximum])
    AvgPool2D:  Y = (1/(kh·kw)) Σ_(i,j) X_(i,j);  ∂L/∂X = col2im(δ/(kh·kw) for every (i,j))
    GlobalAvgPool2D: Y[n, c] = mean_(h,w) X[n, h, w, c];  ∂L/∂X[n, h, w, c] = δ[n, c]/(H·W)

**Ties** (max pool): the gradient goes entirely to the *first* maximum of the window in row-major
order (smallest row, then smallest column). ``jax.grad`` of ``lax.reduce_window`` max may pick a
different element or split it; away from ties both agree exactly.

Three max-pool backward formulations, tested against each other:
  "index":   k* = the window offset (row-major) of the first maximum, from the kh·kw slices;
             ∂L/∂X[n, p·s_h + i, q·s_w + j, c] = δ[n, p, q, c] · 1[k* = i·kw + j]. When the windows
             tile the input (strides = pool_size) that is one compare on the input reshaped to
             (N, oh, kh, ow, kw, C), with no col2im; otherwise col2im of δ ⊙ 1[k* = (i, j)].
  "mask":    walk the window offsets in order, hit_(i,j) = (X_(i,j) = Y) ∧ ¬(an earlier hit);
             col2im of δ ⊙ hit_(i,j) (kh·kw padded slices summed).
  "scatter": argmax over the stacked window (first maximum), its input position
             (p·s_h + i, q·s_w + j), and a scatter-add of δ there (XLA's select-and-scatter).
``MAX_POOL_BACKWARD`` is the default (the faster on CPU, see scripts/bench_layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from fnn.nn.layers.base import Static, col2im, expect_rank, pair, patch_slices, shape_str

Array = jax.Array

MAX_POOL_BACKWARDS = ("index", "mask", "scatter")
MAX_POOL_BACKWARD = "index"


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _no_pad():
    return ((0, 0), (0, 0))


@dataclass(frozen=True)
class _Pool2D:
    """Shared geometry of the windowed pools: pool_size, strides (default: pool_size)."""

    pool_size: tuple = 2
    strides: tuple = None

    def __post_init__(self):
        size = pair(self.pool_size, "pool_size")  # checked here, at construction
        object.__setattr__(self, "pool_size", size)
        strides = size if self.strides is None else pair(self.strides, "strides")
        object.__setattr__(self, "strides", strides)
        if getattr(self, "backward_formulation", MAX_POOL_BACKWARD) not in MAX_POOL_BACKWARDS:
            raise ValueError(f"backward_formulation: {self.backward_formulation!r}; expected one"
                             f" of: {', '.join(MAX_POOL_BACKWARDS)}")

    def output_shape(self, input_shape: tuple) -> tuple:
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        expect_rank(input_shape, 3, "a 3-d input (height, width, channels)")
        h, w, c = input_shape
        if kh > h or kw > w:
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected height >= {kh}"
                             f" and width >= {kw} for a {kh}x{kw} pool")
        return ((h - kh) // sh + 1, (w - kw) // sw + 1, c)

    def init(self, key, input_shape, dtype) -> tuple[dict, dict]:
        return {}, {}

    def _out_hw(self, x: Array) -> tuple[int, int]:
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        return (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1

    def _slices(self, x: Array) -> list[Array]:
        return patch_slices(x, self.pool_size, self.strides, self._out_hw(x))


class MaxPoolCache(NamedTuple):
    """x: the input (N, H, W, C).  y: the window maxima (N, oh, ow, C)."""

    x: Array
    y: Array


@dataclass(frozen=True)
class MaxPool2D(_Pool2D):
    """Y = the maximum of each valid window. Ties: the first maximum (module docstring).

    Args:
      pool_size: int or (h, w).  strides: int or pair; ``None``: pool_size.
      backward_formulation: "index", "mask" or "scatter" (all exact; see the module docstring).
    """

    backward_formulation: str = MAX_POOL_BACKWARD

    def flops(self, input_shape: tuple) -> int:
        """Forward FLOPs of one example: kh·kw − 1 maxima per output."""
        kh, kw = self.pool_size
        return _size(self.output_shape(input_shape)) * (kh * kw - 1)

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """Y = max_(i,j) X_(i,j). Args: x (N, H, W, C). Returns (Y (N, oh, ow, C), cache, state)."""
        slices = self._slices(x)
        y = slices[0]
        for s in slices[1:]:
            y = jnp.maximum(y, s)
        return y, MaxPoolCache(x, y), state

    def kinks(self, cache: MaxPoolCache) -> list:
        """Where each window's maximum is: where a δ of ones is routed by :meth:`backward`."""
        return [self.backward({}, cache, jnp.ones_like(cache.y))[1] > 0]

    def backward(self, params, cache: MaxPoolCache, grad_out: Array) -> tuple[dict, Array]:
        """∂L/∂X: δ routed to each window's first maximum. Returns ({}, (N, H, W, C))."""
        if self.backward_formulation == "scatter":
            return {}, self._backward_scatter(cache, grad_out)
        if self.backward_formulation == "index":
            return {}, self._backward_index(cache, grad_out)
        return {}, self._backward_mask(cache, grad_out)

    def _backward_index(self, cache: MaxPoolCache, delta: Array) -> Array:
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        slices = self._slices(cache.x)
        first = jnp.full(cache.y.shape, kh * kw, jnp.int32)  # k* (N, oh, ow, C)
        for k in range(kh * kw - 1, -1, -1):
            first = jnp.where(slices[k] == cache.y, k, first)
        zero = jnp.zeros((), delta.dtype)
        if (kh, kw) != (sh, sw):  # overlapping or gapped windows: col2im of δ ⊙ 1[k* = k]
            blocks = [jnp.where(first == k, delta, zero) for k in range(kh * kw)]
            return col2im(blocks, self.pool_size, self.strides, cache.x.shape[1:3], _no_pad())
        n, h, w, c = cache.x.shape
        oh, ow = delta.shape[1], delta.shape[2]
        offset = (lax.broadcasted_iota(jnp.int32, (1, 1, kh, 1, kw, 1), 2) * kw
                  + lax.broadcasted_iota(jnp.int32, (1, 1, kh, 1, kw, 1), 4))
        spread = (n, oh, 1, ow, 1, c)
        dx = jnp.where(offset == first.reshape(spread), delta.reshape(spread), zero)
        dx = dx.reshape(n, oh * kh, ow * kw, c)  # rows / columns past the last window get 0
        if (oh * kh, ow * kw) != (h, w):
            dx = jnp.pad(dx, ((0, 0), (0, h - oh * kh), (0, w - ow * kw), (0, 0)))
        return dx

    def _backward_mask(self, cache: MaxPoolCache, delta: Array) -> Array:
        zero = jnp.zeros((), delta.dtype)
        found = None
        blocks = []
        for s in self._slices(cache.x):
            hit = s == cache.y
            if found is not None:
                hit = hit & ~found
            found = hit if found is None else found | hit
            blocks.append(jnp.where(hit, delta, zero))
        return col2im(blocks, self.pool_size, self.strides, cache.x.shape[1:3], _no_pad())

    def _backward_scatter(self, cache: MaxPoolCache, delta: Array) -> Array:
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        n, h, w, c = cache.x.shape
        oh, ow = delta.shape[1], delta.shape[2]
        first = jnp.argmax(jnp.stack(self._slices(cache.x), axis=3), axis=3)  # (N, oh, ow, C)
        rows = (jnp.arange(oh) * sh).reshape(1, oh, 1, 1) + first // kw
        cols = (jnp.arange(ow) * sw).reshape(1, 1, ow, 1) + first % kw
        flat = (rows * w + cols).reshape(n, oh * ow, c)  # position in the (H·W) plane
        out = jnp.zeros((n, h * w, c), delta.dtype)
        out = out.at[jnp.arange(n).reshape(n, 1, 1), flat, jnp.arange(c).reshape(1, 1, c)].add(
            delta.reshape(n, oh * ow, c))
        return out.reshape(n, h, w, c)


@dataclass(frozen=True)
class AvgPool2D(_Pool2D):
    """Y = the mean of each valid window. Args: pool_size, strides (default pool_size)."""

    def flops(self, input_shape: tuple) -> int:
        """Forward FLOPs of one example: kh·kw − 1 additions and one division per output."""
        kh, kw = self.pool_size
        return _size(self.output_shape(input_shape)) * kh * kw

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """Y = (1/(kh·kw)) Σ X_(i,j). Returns (Y (N, oh, ow, C), cache, state)."""
        slices = self._slices(x)
        total = slices[0]
        for s in slices[1:]:
            total = total + s
        kh, kw = self.pool_size
        return total / (kh * kw), Static(tuple(x.shape[1:3])), state

    def backward(self, params, cache: Static, grad_out: Array) -> tuple[dict, Array]:
        """∂L/∂X = col2im(δ/(kh·kw) at every window offset). Returns ({}, (N, H, W, C))."""
        kh, kw = self.pool_size
        share = grad_out / (kh * kw)
        return {}, col2im([share] * (kh * kw), self.pool_size, self.strides, cache.value,
                          _no_pad())


@dataclass(frozen=True)
class GlobalAvgPool2D:
    """Y[n, c] = mean over (h, w) of X[n, h, w, c]: (H, W, C) -> (C,)."""

    def output_shape(self, input_shape: tuple) -> tuple:
        expect_rank(input_shape, 3, "a 3-d input (height, width, channels)")
        return (input_shape[2],)

    def init(self, key, input_shape, dtype) -> tuple[dict, dict]:
        return {}, {}

    def flops(self, input_shape: tuple) -> int:
        """Forward FLOPs of one example: H·W − 1 additions and one division per channel."""
        return _size(input_shape)

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """Returns (Y (N, C), cache, state)."""
        return jnp.mean(x, axis=(1, 2)), Static(tuple(x.shape[1:3])), state

    def backward(self, params, cache: Static, grad_out: Array) -> tuple[dict, Array]:
        """∂L/∂X[n, h, w, c] = δ[n, c]/(H·W). Returns ({}, (N, H, W, C))."""
        h, w = cache.value
        g = grad_out / (h * w)
        n, c = g.shape
        return {}, jnp.broadcast_to(g.reshape(n, 1, 1, c), (n, h, w, c))
