"""Causal multi-head self-attention (GPT-2's), with its backward written out.

Shapes: X (B, T, D), H heads of size E = D/H, scale s = 1/√E; Q, K, V, O are (B, H, T, E).

    forward:   [Q K V] = X W_qkv + b_qkv  (split on the last axis, then into heads)
               S = s Q Kᵀ,  S[t, u] = −∞ for u > t (the causal mask),  P = softmax(S) (each row)
               P̃ = P ⊙ M (attention dropout, M = Bernoulli(1 − p)/(1 − p); M = 1 without it)
               O = P̃ V,  Y = merge(O) W_proj + b_proj
    backward:  dO = split(dY W_projᵀ);  dW_proj = merge(O)ᵀ dY;  db_proj = Σ dY
               dV = P̃ᵀ dO;  dP = (dO Vᵀ) ⊙ M;  dS = P ⊙ (dP − rowsum(P ⊙ dP))
               dQ = dS K·s;  dK = dSᵀ Q·s
               dW_qkv = Xᵀ [dQ dK dV];  db_qkv = Σ [dQ dK dV];  dX = [dQ dK dV] W_qkvᵀ

The key bias has no gradient: b_K adds q_t·b_K to every score of row t, and a softmax row is
shift-invariant. In the formulas, every row of dS sums to zero (Σ_u dS[t, u] = 0), so
db_K = Σ_u dK[u] = s Σ_t (Σ_u dS[t, u]) q_t = 0. It is written as an exact zero: summed from
dK it is rounding noise, which Adam's first steps would blow up to ±learning_rate per step and
make the run depend on the machine's summation order.

Masked entries have P = 0, so dS = 0 there and no gradient crosses the mask. The products sum
over every leading axis (B·T rows). The output dropout of GPT-2 (``resid_dropout``) is a
:class:`~fnn.nn.layers.Dropout` after this layer (see :class:`~fnn.nn.layers.TransformerBlock`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from fnn.nn import initializers as inits
from fnn.nn.layers.base import positive_int, shape_str
from fnn.nn.layers.dropout import dropout_active, dropout_mask

Array = jax.Array


class AttentionCache(NamedTuple):
    """x (B, T, D); q, k, v (B, H, T, E); p: P (B, H, T, T); mask: M or None; o: merge(O)
    (B, T, D)."""

    x: Array
    q: Array
    k: Array
    v: Array
    p: Array
    mask: Optional[Array]
    o: Array


def check_rate(rate, name: str = "dropout") -> float:
    """A dropout probability in [0, 1), else a one-line ValueError naming ``name``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: {rate!r}; expected a probability in [0, 1)")
    return float(rate)


def _dense(x: Array, w: Array, b: Array) -> Array:
    return x @ w + b.reshape((1,) * (x.ndim - 1) + (b.shape[0],))


def _dense_backward(x: Array, w: Array, d: Array) -> tuple[dict, Array]:
    # ∂W = Xᵀ δ, ∂b = Σ δ over the flattened leading axes; ∂X = δ Wᵀ
    x2, d2 = x.reshape(-1, x.shape[-1]), d.reshape(-1, d.shape[-1])
    return {"w": x2.T @ d2, "b": jnp.sum(d2, axis=0)}, d @ w.T


def _heads(x: Array, h: int) -> Array:
    """(B, T, D) -> (B, H, T, D/H)."""
    b, t, d = x.shape
    return x.reshape(b, t, h, d // h).transpose(0, 2, 1, 3)


def _merge(x: Array) -> Array:
    """(B, H, T, E) -> (B, T, H·E)."""
    b, h, t, e = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * e)


@dataclass(frozen=True)
class CausalSelfAttention:
    """Y = Attn(X) with a causal mask (module docstring).

    Args:
      num_heads: H; the width D must be divisible by H.
      dropout: the attention dropout rate p on P, in [0, 1); ``forward(..., drop_rate=q)`` uses
        q instead when not None.

    Params: ``{"qkv": {"w": (D, 3D), "b": (3D,)}, "proj": {"w": (D, D), "b": (D,)}}`` (Glorot
    uniform weights, zero biases). Input: one example's shape (T, D).
    """

    num_heads: int
    dropout: float = 0.0

    def __post_init__(self):
        positive_int(self.num_heads, "num_heads")
        check_rate(self.dropout)

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 2:
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected a 2-d input"
                             f" (time, features)")
        d = input_shape[-1]
        if d % self.num_heads:
            raise ValueError(f"features: {d} is not divisible by num_heads={self.num_heads};"
                             f" expected a multiple of {self.num_heads}")
        return tuple(input_shape)

    def init(self, key: Array, input_shape: tuple, dtype) -> tuple[dict, dict]:
        d = int(input_shape[-1])
        k1, k2 = jax.random.split(key)
        glorot = inits.get("glorot_uniform")
        return {"qkv": {"w": glorot(k1, (d, 3 * d), dtype), "b": jnp.zeros((3 * d,), dtype)},
                "proj": {"w": glorot(k2, (d, d), dtype), "b": jnp.zeros((d,), dtype)}}, {}

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """Y = merge(softmax(s Q Kᵀ + causal) V) W_proj + b_proj. Args: x (B, T, D). Returns
        (Y (B, T, D), :class:`AttentionCache`, state)."""
        t, d = x.shape[-2], x.shape[-1]
        h = self.num_heads
        qkv = _dense(x, params["qkv"]["w"], params["qkv"]["b"])
        q, k, v = (_heads(qkv[..., i * d:(i + 1) * d], h) for i in range(3))
        scale = 1.0 / float(d // h) ** 0.5
        s = (q @ jnp.swapaxes(k, -1, -2)) * jnp.asarray(scale, x.dtype)
        causal = jnp.tril(jnp.ones((t, t), bool))
        s = jnp.where(causal[None, None], s, jnp.asarray(-jnp.inf, x.dtype))
        s_max = jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))
        e = jnp.exp(s - s_max)
        p = e / jnp.sum(e, axis=-1, keepdims=True)
        rate = self.dropout if drop_rate is None else drop_rate
        mask = None
        pd = p
        if dropout_active(key, training, rate):
            mask = dropout_mask(key, p.shape, rate, p.dtype)
            pd = p * mask
        o = _merge(pd @ v)
        y = _dense(o, params["proj"]["w"], params["proj"]["b"])
        return y, AttentionCache(x, q, k, v, p, mask, o), state

    def backward(self, params, cache: AttentionCache, grad_out):
        """The module docstring's backward. Args: grad_out dY (B, T, D). Returns (grads like
        params, dX (B, T, D))."""
        x, q, k, v, p, mask, o = cache
        e = q.shape[-1]
        scale = jnp.asarray(1.0 / float(e) ** 0.5, x.dtype)
        g_proj, d_o = _dense_backward(o, params["proj"]["w"], grad_out)
        d_o = _heads(d_o, self.num_heads)
        pd = p if mask is None else p * mask
        dv = jnp.swapaxes(pd, -1, -2) @ d_o  # dV = P̃ᵀ dO
        dp = d_o @ jnp.swapaxes(v, -1, -2)  # dP̃ = dO Vᵀ
        if mask is not None:
            dp = dp * mask  # dP = dP̃ ⊙ M
        ds = p * (dp - jnp.sum(p * dp, axis=-1, keepdims=True))  # dS = P ⊙ (dP − rowsum(P ⊙ dP))
        dq = (ds @ k) * scale  # dQ = dS K·s
        dk = (jnp.swapaxes(ds, -1, -2) @ q) * scale  # dK = dSᵀ Q·s
        d_qkv = jnp.concatenate([_merge(dq), _merge(dk), _merge(dv)], axis=-1)
        g_qkv, dx = _dense_backward(x, params["qkv"]["w"], d_qkv)
        d = x.shape[-1]
        g_qkv["b"] = g_qkv["b"].at[d:2 * d].set(0)  # db_K = 0 exactly (module docstring)
        return {"qkv": g_qkv, "proj": g_proj}, dx
