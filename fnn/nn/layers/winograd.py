"""Winograd F(2×2, 3×3) (Lavin & Gray 2015): a stride-1 3×3 correlation in 16 batched GEMMs.

Each 2×2 output tile Y comes from the 4×4 input tile d whose corner is at (2·ti, 2·tj) of the
padded input (tiles overlap by two rows and columns):

    Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A,   summed over the input channels,

    Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]
    G  = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]
    Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]

With U = G g Gᵀ (4, 4, C, F) and V = Bᵀ d B (4, 4, T, C) for the T = N·th·tw tiles, the sum
over C at each of the 16 positions (α, β) is one GEMM: M[α, β] = V[α, β] U[α, β], (T, C)(C, F).
An odd output size is padded to even (one more row / column of zero input) and cropped. The
input and output transforms have ±1 entries only: they are written as sums of strided slices,
which XLA fuses into one pass each.

The gradients, for a loss L of the valid correlation Y = X ⋆ g (δ = ∂L/∂Y):
    ∂L/∂X = the valid correlation of δ padded by 2 with the flipped, I/O-swapped kernel
            (itself computed by :func:`correlate3x3`);
    ∂L/∂g = Gᵀ [Σ_tiles Vᵀ (A δ_tile Aᵀ)] G, the transposes of the three steps above
            (:func:`weight_grad3x3`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def tiles_and_pads(out_hw: tuple[int, int], pads) -> tuple[tuple[int, int], list]:
    """The tile counts of an output and the padding that gives every tile its 4×4 input.

    Args:
      out_hw: the output (oh, ow) of the valid 3×3 correlation of the padded input.
      pads: ((lo_h, hi_h), (lo_w, hi_w)), the convolution's own padding.
    Returns:
      ((th, tw), pads'): th = ⌈oh/2⌉, tw = ⌈ow/2⌉; pads' adds 2·th − oh (and 2·tw − ow) rows
      (columns) of zeros at the high end, so that the padded input is (2·th + 2, 2·tw + 2).
    """
    (oh, ow), ((lo_h, hi_h), (lo_w, hi_w)) = out_hw, pads
    th, tw = -(-oh // 2), -(-ow // 2)
    return (th, tw), [(lo_h, hi_h + 2 * th - oh), (lo_w, hi_w + 2 * tw - ow)]


def _pad(x: Array, pads) -> Array:
    (lo_h, hi_h), (lo_w, hi_w) = pads
    if lo_h == hi_h == lo_w == hi_w == 0:
        return x
    return jnp.pad(x, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))


def _rows(x: Array, axis: int, count: int) -> list[Array]:
    """The four stride-2 slices x[2t + a] (t < count, a = 0..3) along ``axis``."""
    stop = 2 * (count - 1) + 1
    return [jax.lax.slice_in_dim(x, a, a + stop, 2, axis) for a in range(4)]


def _bt(r: list[Array]) -> list[Array]:
    """Bᵀ applied along one axis: (r0 − r2, r1 + r2, r2 − r1, r1 − r3)."""
    return [r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3]]


def input_transform(xp: Array, tiles: tuple[int, int]) -> Array:
    """V = Bᵀ d B for every 4×4 tile d of a padded input.

    Args:
      xp: (N, 2·th + 2, 2·tw + 2, C), the input padded by :func:`tiles_and_pads`.
      tiles: (th, tw).
    Returns:
      V (16, N·th·tw, C); row α·4 + β holds V[α, β] of every tile, tiles row-major (n, ti, tj).
    """
    (th, tw), n, c = tiles, xp.shape[0], xp.shape[3]
    cols = [_bt(_rows(u, 2, tw)) for u in _bt(_rows(xp, 1, th))]  # Bᵀ along H, then along W
    return jnp.stack([v for row in cols for v in row]).reshape(16, n * th * tw, c)


def kernel_transform(w: Array) -> Array:
    """U = G g Gᵀ per (input, output) channel pair.

    Args:
      w: g (3, 3, C, F), HWIO.
    Returns:
      U (16, C, F); row α·4 + β holds U[α, β].
    """
    g = jnp.asarray(G, w.dtype)
    u = jnp.einsum("ai,ijcf,bj->abcf", g, w, g)  # U[α, β] = Σ_ij G[α, i] g[i, j] G[β, j]
    return u.reshape(16, w.shape[2], w.shape[3])


def output_transform(m: Array, n: int, tiles: tuple[int, int]) -> Array:
    """Y = Aᵀ M A per tile, the 2×2 tiles put back in place.

    Args:
      m: M (16, N·th·tw, F), row α·4 + β as from :func:`input_transform`.
      n: the batch N.  tiles: (th, tw).
    Returns:
      Y (N, 2·th, 2·tw, F).
    """
    (th, tw), f = tiles, m.shape[-1]
    m = m.reshape(4, 4, n, th, tw, f)

    def at(r):  # Aᵀ along one axis: (r0 + r1 + r2, r1 − r2 − r3)
        return [r[0] + r[1] + r[2], r[1] - r[2] - r[3]]

    t = at([m[a] for a in range(4)])  # over α: 2 × (4, N, th, tw, F), β still open
    y = jnp.stack([jnp.stack(at([ti[b] for b in range(4)]), axis=3) for ti in t], axis=2)
    return y.reshape(n, th * 2, tw * 2, f)  # y (N, th, 2, tw, 2, F): Y[n, 2ti + i, 2tj + j]


def output_transform_adjoint(dy: Array, tiles: tuple[int, int]) -> Array:
    """∂L/∂M = A ∂L/∂Y_tile Aᵀ, the transpose of :func:`output_transform`.

    Args:
      dy: ∂L/∂Y (N, oh, ow, F), oh ≤ 2·th and ow ≤ 2·tw (zero-padded to them here).
      tiles: (th, tw).
    Returns:
      ∂L/∂M (16, N·th·tw, F).
    """
    (th, tw), (n, oh, ow, f) = tiles, dy.shape
    dy = jnp.pad(dy, ((0, 0), (0, 2 * th - oh), (0, 2 * tw - ow), (0, 0)))
    dy = dy.reshape(n, th, 2, tw, 2, f)

    def a(y0, y1):  # A along one axis: (y0, y0 + y1, y0 − y1, −y1)
        return [y0, y0 + y1, y0 - y1, -y1]

    rows = a(dy[:, :, 0], dy[:, :, 1])  # 4 × (N, th, tw, 2, F)
    out = [v for r in rows for v in a(r[:, :, :, 0], r[:, :, :, 1])]
    return jnp.stack(out).reshape(16, n * th * tw, f)


def correlate3x3(x: Array, w: Array, pads) -> Array:
    """Y = X̄ ⋆ g, the valid 3×3 correlation of the padded input, by Winograd F(2×2, 3×3).

    Args:
      x: (N, H, W, C).  w: g (3, 3, C, F), HWIO.
      pads: ((lo_h, hi_h), (lo_w, hi_w)), X̄ = X padded by them.
    Returns:
      Y (N, oh, ow, F), oh = H + lo_h + hi_h − 2, ow likewise:
      Y[n, p, q, f] = Σ_(i,j,c) X̄[n, p + i, q + j, c] g[i, j, c, f].
    """
    (n, h, wd, _), ((lo_h, hi_h), (lo_w, hi_w)) = x.shape, pads
    oh, ow = h + lo_h + hi_h - 2, wd + lo_w + hi_w - 2
    tiles, tile_pads = tiles_and_pads((oh, ow), pads)
    v = input_transform(_pad(x, tile_pads), tiles)  # V = Bᵀ d B (16, T, C)
    m = jnp.matmul(v, kernel_transform(w))  # M[α, β] = V[α, β] U[α, β], 16 × (T, C)(C, F)
    return output_transform(m, n, tiles)[:, :oh, :ow]  # Y = Aᵀ M A, cropped


def weight_grad3x3(x: Array, dy: Array, pads) -> Array:
    """∂L/∂g of Y = :func:`correlate3x3` (X, g, pads) from ∂L/∂Y, by the same transforms.

    Args:
      x: (N, H, W, C).  dy: ∂L/∂Y (N, oh, ow, F).  pads: as :func:`correlate3x3`'s.
    Returns:
      ∂L/∂g (3, 3, C, F) = Gᵀ [Σ_tiles V[α, β]ᵀ ∂L/∂M[α, β]] G.
    """
    tiles, tile_pads = tiles_and_pads(dy.shape[1:3], pads)
    v = input_transform(_pad(x, tile_pads), tiles)  # V (16, T, C)
    dm = output_transform_adjoint(dy, tiles)  # ∂L/∂M = A ∂L/∂Y_tile Aᵀ (16, T, F)
    du = jnp.einsum("ktc,ktf->kcf", v, dm)  # ∂L/∂U[α, β] = V[α, β]ᵀ ∂L/∂M[α, β]
    du = du.reshape(4, 4, x.shape[3], dy.shape[3])
    g = jnp.asarray(G, x.dtype)
    # ∂L/∂g[i, j] = Σ_αβ G[α, i] ∂L/∂U[α, β] G[β, j]
    return jnp.einsum("ai,abcf,bj->ijcf", g, du, g)


def input_grad3x3(w: Array, dy: Array, in_hw: tuple[int, int], pads) -> Array:
    """∂L/∂X of Y = :func:`correlate3x3` (X, g, pads): δ padded by 2 − lo, correlated (valid)
    with the flipped kernel, its I and O swapped, by Winograd.

    Args:
      w: g (3, 3, C, F).  dy: δ = ∂L/∂Y (N, oh, ow, F).  in_hw: (H, W).  pads: the forward's.
    Returns:
      ∂L/∂X (N, H, W, C) = δ̄ ⋆ g̃,  g̃[i, j, f, c] = g[2 − i, 2 − j, c, f].
    """
    (h, wd), (oh, ow) = in_hw, dy.shape[1:3]
    (lo_h, _), (lo_w, _) = pads
    # δ̄: 2 − lo before, and after whatever makes the valid output (H, W): H + 2 − oh − (2 − lo)
    d_pads = ((2 - lo_h, h - oh + lo_h), (2 - lo_w, wd - ow + lo_w))
    w_t = jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))  # g̃ (3, 3, F, C)
    return correlate3x3(dy, w_t, d_pads)
