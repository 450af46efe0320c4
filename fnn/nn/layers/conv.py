"""2-d convolution (NHWC, HWIO kernels) with a fused activation, in five formulations.

Forward (cross-correlation, as every framework): Z[n, p, q, f] = Σ_(i,j,c) X̄[n, p·s_h + i,
q·s_w + j, c] W[i, j, c, f] + b[f], with X̄ the input padded as XLA's SAME / VALID; A = g(Z).

"im2col" (patch GEMMs; fast on CPU):
    P = patches(X̄) (N·oh·ow, kh·kw·C),  W_col = W reshaped (kh·kw·C, F)
    Z = P W_col + b;   ∂L/∂W = Pᵀ δ;   ∂L/∂b = Σ δ;   ∂L/∂X = col2im(δ W_colᵀ)
"hybrid": the forward and ∂L/∂W as im2col's patch GEMMs (one P, shared), ∂L/∂X as "xla"'s
    transposed convolution below (no (N·oh·ow, kh·kw·C) δ W_colᵀ product, no col2im).
"correlation": the forward and ∂L/∂W as im2col's, ∂L/∂X as the forward correlation of the
    stride-dilated, padded δ with the flipped kernel, its I and O swapped, through the same patch
    GEMM:  ∂L/∂X = patches(δ̄) W̃_col,  W̃[i, j, f, c] = W[kh−1−i, kw−1−j, c, f],
    δ̄ = δ dilated by the strides and padded as "xla"'s ∂L/∂X below. Its product is
    (N·H·W, kh·kw·F) × (kh·kw·F, C) and there is no col2im.
"xla" (``lax.conv_general_dilated``; cuDNN on GPU), the backward written as convolutions
(the transposes in jax/_src/lax/convolution.py):
    ∂L/∂X = δ ⋆ rot180(W) with I/O swapped, strides → lhs_dilation,
            padding (k − lo − 1, n + k − 1 − ((o−1)s + 1) − (k − lo − 1))
    ∂L/∂W = X̄ correlated with δ (batch ↔ feature swapped), strides → rhs_dilation,
            padding (lo, ((o−1)s + 1) − n + k − lo − 1)
"winograd" (3×3 kernels with stride 1 only; the transforms in winograd.py): Winograd F(2×2, 3×3)
    on the 4×4 tiles of X̄ at stride 2, an odd output padded to even and cropped:
    Z_tile = Aᵀ[(G W Gᵀ) ⊙ (Bᵀ d B)]A, the sum over C as 16 GEMMs (tiles × C)(C × F);
    ∂L/∂X = "correlation"'s identity, δ̄ ⋆ W̃, computed by the same Winograd (no col2im);
    ∂L/∂W = Gᵀ[Σ_tiles Vᵀ (A δ_tile Aᵀ)]G, V = Bᵀ d B: 16 GEMMs (C × tiles)(tiles × F), no P.

:func:`resolve_formulation` is the one place that picks one per platform and geometry (CPU →
im2col, GPU / TPU → xla); ``Conv2D(formulation=...)`` overrides it. On the benchmark's CNN (2 CPU cores,
BENCHMARKS.md) a training step takes 67.8 ms with "im2col", 76.6 ms with "hybrid" and 137.3 ms
with "xla". "correlation" loses where F > C: its patch matrix is (N·H·W, kh·kw·F) against
im2col's (N·oh·ow, kh·kw·C) product, so on that CNN's second layer (14×14×32 → 64, batch 128,
AVX-512 EPYC) ∂L/∂X alone takes 8.4 ms against im2col's 4.2 (``python scripts/bench_layers.py``);
it stays an explicit choice, tested like the others. So does "winograd": under a shared load it
seemed to take that step from 71.6–74.9 ms to 60.4–62.3 with conv2 by Winograd, but on a quiet
AVX2 EPYC, interleaved in one process (``python scripts/bench.py --cases cnn``, BENCHMARKS.md
"Round three") im2col for both layers is 51 ms median against 53 with conv2 by Winograd and
67 with both; on conv1 (C = 1) it loses 4× (41.6 against 9.5 ms forward + backward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax import lax

from fnn.nn import initializers as inits
from fnn.nn import names
from fnn.nn.layers import winograd
from fnn.nn.layers.base import (FusedActivation, bcast_last, canonical_activation, col2im,
                                expect_rank, pad_input, pair, patch_slices, positive_int,
                                shape_str, window_out_and_pad)

Array = jax.Array

FORMULATIONS = ("auto", "im2col", "xla", "hybrid", "correlation", "winograd")
PADDINGS = names.PADDINGS


def resolve_formulation(formulation: str = "auto", kernel_size=None, strides=None,
                        channels=None) -> str:
    """The formulation a Conv2D runs: ``formulation`` unless it is "auto"; "auto" is "xla" on
    GPU / TPU and "im2col" on CPU, whatever the geometry: measured per layer shape, no other
    formulation beat it on a quiet CPU (the module docstring). The geometry is taken so that a
    per-shape pick stays in this one place.

    Args:
      formulation: a name of FORMULATIONS.
      kernel_size, strides: the layer's (kh, kw), (sh, sw) pairs.  channels: its input's C.
    Returns:
      "im2col", "hybrid", "correlation", "xla" or "winograd".
    """
    if formulation != "auto":
        return formulation
    return "im2col" if jax.default_backend() == "cpu" else "xla"


class ConvCache(NamedTuple):
    """x: the input (N, H, W, C).  z: Z (N, oh, ow, F).  a: A = g(Z)."""

    x: Array
    z: Array
    a: Array


def _dilated(n: int, s: int) -> int:
    return 0 if n == 0 else (n - 1) * s + 1


@dataclass(frozen=True)
class Conv2D(FusedActivation):
    """A = g(conv(X, W) + b), channels-last.

    Args:
      filters: output channels F.
      kernel_size, strides: int or (h, w) pair.
      padding: "same" or "valid", exactly as XLA's SAME / VALID.
      activation: activation name.
      initializer: weight initializer name (``None``: He for the ReLU family, Glorot otherwise),
        applied to the (kh·kw·C, F) matrix W_col: fan_in = kh·kw·C, fan_out = F.
      formulation: "auto" (see :func:`resolve_formulation`), "im2col", "hybrid", "correlation"
        "xla" or "winograd" (3x3 kernels with stride 1 only).

    Params: ``{"w": (kh, kw, C, F) HWIO, "b": (F,)}``. Input (H, W, C) -> (oh, ow, F).
    """

    filters: int
    kernel_size: tuple = 3
    strides: tuple = 1
    padding: str = "same"
    activation: str = "identity"
    initializer: Optional[str] = None
    formulation: str = "auto"

    def __post_init__(self):
        positive_int(self.filters, "filters")  # arguments checked here, at construction
        for name in ("kernel_size", "strides"):
            object.__setattr__(self, name, pair(getattr(self, name), name))
        if isinstance(self.padding, str):
            object.__setattr__(self, "padding", self.padding.lower())
        if self.padding not in PADDINGS:
            raise ValueError(f"padding: {self.padding!r}; expected one of: same, valid")
        if self.formulation not in FORMULATIONS:
            raise ValueError(f"formulation: {self.formulation!r}; expected one of:"
                             f" {', '.join(FORMULATIONS)}")
        if self.formulation == "winograd" and (self.kernel_size, self.strides) != ((3, 3), (1, 1)):
            bad = [f"{name} {v[0]}x{v[1]}" for name, v, ok in
                   (("kernel_size", self.kernel_size, (3, 3)), ("strides", self.strides, (1, 1)))
                   if v != ok]
            raise ValueError(f"formulation: 'winograd' needs a 3x3 kernel with stride 1;"
                             f" got {', '.join(bad)}")
        object.__setattr__(self, "activation", canonical_activation(self.activation))
        self._check_activation()

    def resolved_formulation(self, channels: int) -> str:
        """The formulation run on an input of ``channels`` channels (see resolve_formulation)."""
        return resolve_formulation(self.formulation, self.kernel_size, self.strides, channels)

    def _geometry(self, h: int, w: int):
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        oh, ph = window_out_and_pad(h, kh, sh, self.padding)
        ow, pw = window_out_and_pad(w, kw, sw, self.padding)
        return (oh, ow), (ph, pw)

    def output_shape(self, input_shape: tuple) -> tuple:
        kh, kw = self.kernel_size
        expect_rank(input_shape, 3, "a 3-d input (height, width, channels)")
        h, w, _ = input_shape
        if self.padding == "valid" and (kh > h or kw > w):
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected height >= {kh}"
                             f" and width >= {kw} for a {kh}x{kw} 'valid' kernel")
        if kh > 2 * h - 1 or kw > 2 * w - 1:  # wider than any window onto the input: zeros only
            raise ValueError(f"kernel_size: {kh}x{kw} for input shape {shape_str(input_shape)};"
                             f" expected at most {2 * h - 1}x{2 * w - 1} (twice the input, less"
                             f" one: a wider kernel sees only padding)")
        (oh, ow), _ = self._geometry(h, w)
        return (oh, ow, self.filters)

    def init(self, key: Array, input_shape: tuple, dtype) -> tuple[dict, dict]:
        """({"w": (kh, kw, C, F), "b": zeros (F,)}, {})."""
        (kh, kw), c = self.kernel_size, int(input_shape[2])
        w_col = inits.get(self.init_name)(key, (kh * kw * c, self.filters), dtype)
        return {"w": w_col.reshape(kh, kw, c, self.filters),
                "b": jnp.zeros((self.filters,), dtype)}, {}

    def flops(self, input_shape: tuple) -> int:
        """Forward FLOPs of one example: 2·oh·ow·kh·kw·C·F (multiply-adds of Z) + oh·ow·F (the
        bias), then g on Z; the same in every formulation (the direct convolution's count:
        "winograd" runs 16/(2·2·9) = 4/9 of the GEMM multiply-adds, plus its transforms)."""
        (kh, kw), c = self.kernel_size, int(input_shape[2])
        oh, ow, f = self.output_shape(input_shape)
        return 2 * oh * ow * kh * kw * c * f + oh * ow * f + self.act.flops_of((oh, ow, f))

    # --- forward ---------------------------------------------------------------------------------
    def forward(self, params: dict, state: dict, x: Array, *, key=None, training=False,
                drop_rate=None) -> tuple[Array, ConvCache, dict]:
        """A = g(conv(X, W) + b). Args: x (N, H, W, C). Returns (A (N, oh, ow, F), cache, state)."""
        form = self.resolved_formulation(x.shape[3])
        if form == "xla":
            z = self._forward_xla(params["w"], x)
        elif form == "winograd":
            z = winograd.correlate3x3(x, params["w"], self._geometry(x.shape[1], x.shape[2])[1])
        else:  # "im2col", "hybrid" and "correlation"
            z = self._forward_im2col(params["w"], x)
        z = z + bcast_last(params["b"], 4)
        a = self.act.fn(z)
        return a, ConvCache(x, z, a), state

    def _cols(self, x: Array):
        (oh, ow), pads = self._geometry(x.shape[1], x.shape[2])
        blocks = patch_slices(pad_input(x, pads), self.kernel_size, self.strides, (oh, ow))
        cols = blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis=-1)
        return cols.reshape(-1, cols.shape[-1]), (oh, ow), pads

    def _forward_im2col(self, w: Array, x: Array) -> Array:
        cols, (oh, ow), _ = self._cols(x)  # P (N·oh·ow, kh·kw·C)
        z = cols @ w.reshape(-1, w.shape[-1])  # Z = P W_col
        return z.reshape(x.shape[0], oh, ow, w.shape[-1])

    def _forward_xla(self, w: Array, x: Array) -> Array:
        _, pads = self._geometry(x.shape[1], x.shape[2])
        return lax.conv_general_dilated(x, w, self.strides, pads,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    # --- backward --------------------------------------------------------------------------------
    def backward_from_delta(self, params: dict, cache: ConvCache,
                            delta: Array) -> tuple[dict, Array]:
        """∂L/∂W, ∂L/∂b = Σ_(n,p,q) δ, ∂L/∂X from δ = ∂L/∂Z (N, oh, ow, F) (module docstring).

        Returns:
          ({"w": (kh, kw, C, F), "b": (F,)}, ∂L/∂X (N, H, W, C)).
        """
        form = self.resolved_formulation(cache.x.shape[3])
        if form == "im2col":
            dw, dx = self._backward_im2col(params["w"], cache.x, delta)
        elif form == "xla":
            dw, dx = self._backward_xla(params["w"], cache.x, delta)
        elif form == "winograd":  # ∂L/∂W = Gᵀ[Σ Vᵀ (A δ_tile Aᵀ)]G; ∂L/∂X = δ̄ ⋆ W̃ (winograd.py)
            pads = self._geometry(cache.x.shape[1], cache.x.shape[2])[1]
            dw = winograd.weight_grad3x3(cache.x, delta, pads)
            dx = winograd.input_grad3x3(params["w"], delta, cache.x.shape[1:3], pads)
        elif form == "correlation":
            dw = self._weight_grad_im2col(params["w"], cache.x, delta)
            dx = self._input_grad_correlation(params["w"], cache.x, delta)
        else:  # "hybrid": ∂L/∂W = Pᵀ δ as one patch GEMM (P as in the forward), ∂L/∂X as "xla"
            dw = self._weight_grad_im2col(params["w"], cache.x, delta)
            dx = self._backward_xla(params["w"], cache.x, delta, weights=False)[1]
        return {"w": dw, "b": jnp.sum(delta, axis=(0, 1, 2))}, dx

    def _backward_im2col(self, w: Array, x: Array, delta: Array):
        cols, _, pads = self._cols(x)
        d2 = delta.reshape(-1, delta.shape[-1])  # δ (N·oh·ow, F)
        w_col = w.reshape(-1, w.shape[-1])
        dw = (cols.T @ d2).reshape(w.shape)  # ∂L/∂W = Pᵀ δ
        dcols = (d2 @ w_col.T).reshape(delta.shape[:3] + (w_col.shape[0],))  # δ W_colᵀ
        kh, kw = self.kernel_size
        blocks = jnp.split(dcols, kh * kw, axis=-1) if kh * kw > 1 else [dcols]
        dx = col2im(blocks, self.kernel_size, self.strides, x.shape[1:3], pads)
        return dw, dx

    def _weight_grad_im2col(self, w: Array, x: Array, delta: Array) -> Array:
        cols, _, _ = self._cols(x)
        return (cols.T @ delta.reshape(-1, delta.shape[-1])).reshape(w.shape)  # ∂L/∂W = Pᵀ δ

    def _transposed_pads(self, x: Array, delta: Array):
        """The paddings of ∂L/∂X's correlation (lhs) and of ∂L/∂W's (rhs), per spatial axis."""
        _, pads = self._geometry(x.shape[1], x.shape[2])
        dims = (x.shape[1], x.shape[2]), self.kernel_size, delta.shape[1:3]
        lhs_pad, rhs_pad = [], []
        for n, k, o, s, (lo, _) in zip(*dims, self.strides, pads):
            before = k - lo - 1
            lhs_pad.append((before, n + k - 1 - _dilated(o, s) - before))
            rhs_pad.append((lo, _dilated(o, s) - n + k - lo - 1))
        return lhs_pad, rhs_pad

    def _input_grad_correlation(self, w: Array, x: Array, delta: Array) -> Array:
        lhs_pad, _ = self._transposed_pads(x, delta)
        # δ̄: interior zeros for the strides, then the transposed padding (negative: a crop)
        d_bar = lax.pad(delta, jnp.zeros((), delta.dtype),
                        [(0, 0, 0)] + [(lo, hi, s - 1) for (lo, hi), s in zip(lhs_pad, self.strides)]
                        + [(0, 0, 0)])
        blocks = patch_slices(d_bar, self.kernel_size, (1, 1), x.shape[1:3])
        cols = blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis=-1)
        w_t = jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))  # W̃ (kh, kw, F, C)
        dx = cols.reshape(-1, cols.shape[-1]) @ w_t.reshape(-1, w_t.shape[-1])  # patches(δ̄) W̃_col
        return dx.reshape(x.shape)

    def _backward_xla(self, w: Array, x: Array, delta: Array, weights: bool = True):
        strides = self.strides
        lhs_pad, rhs_pad = self._transposed_pads(x, delta)
        # ∂L/∂X: δ convolved with the flipped kernel, its I and O swapped. The swap is written out
        # as an HWIO (kh, kw, F, C) kernel: left as "HWOI" dimension numbers, XLA:CPU can keep the
        # reversed kernel in that layout and fall back from its fast convolution (38 ms instead of
        # 14 on the benchmark CNN's second layer).
        w_t = jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))
        dx = lax.conv_general_dilated(delta, w_t, (1, 1), lhs_pad, lhs_dilation=strides,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if not weights:
            return None, dx
        # ∂L/∂W: X correlated with δ; batch and feature axes swapped on both sides
        dw = lax.conv_general_dilated(x, delta, (1, 1), rhs_pad, rhs_dilation=strides,
                                      dimension_numbers=("CHWN", "IHWO", "HWNC"))
        return dw, dx
