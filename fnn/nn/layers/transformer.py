"""GPT-2's pre-LayerNorm transformer block, composed from the layers (no formula of its own).

    FeedForward:       F(X) = GELU(X W_fc + b_fc) W_proj + b_proj,  hidden width r·D
    TransformerBlock:  X ← X + Attn(LN₁(X));  X ← X + F(LN₂(X))        (nanoGPT's Block)
    backward:          each residual's ∂L/∂X = ∂L/∂Y + (∂f/∂X)ᵀ ∂L/∂Y, in reverse
                       (:class:`~fnn.nn.layers.Residual`, :mod:`fnn.nn.layers.chain`)

With ``dropout`` p > 0 each branch ends in a :class:`~fnn.nn.layers.Dropout` (GPT-2's
``resid_dropout``), and the attention drops P at the same rate. Params: a tuple of the two
residuals' params, ``((ln₁, attn), (ln₂, ffn))`` (with ``{}`` for each Dropout).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

from fnn.nn.layers import chain
from fnn.nn.layers.attention import CausalSelfAttention, check_rate
from fnn.nn.layers.base import canonical_activation, positive_int, shape_str
from fnn.nn.layers.dense import Dense
from fnn.nn.layers.dropout import Dropout
from fnn.nn.layers.normalization import LayerNorm
from fnn.nn.layers.residual import Residual

Array = jax.Array


@dataclass(frozen=True)
class FeedForward:
    """F(X) = Dense(D)(Dense(r·D, activation)(X)) on the last axis, D the input width.

    Args:
      mlp_ratio: r, the hidden width as a multiple of D.
      activation: the hidden activation (GPT-2: "gelu").

    Params: ``{"fc": {"w": (D, rD), "b": (rD,)}, "proj": {"w": (rD, D), "b": (D,)}}``.
    """

    mlp_ratio: int = 4
    activation: str = "gelu"

    def __post_init__(self):
        positive_int(self.mlp_ratio, "mlp_ratio")
        object.__setattr__(self, "activation", canonical_activation(self.activation))

    def _layers(self, d: int) -> tuple:
        return Dense(self.mlp_ratio * d, self.activation), Dense(d)

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) < 1:
            raise ValueError(f"got input shape {shape_str(input_shape)}; expected at least 1-d")
        chain.shapes(self._layers(int(input_shape[-1])), input_shape)
        return tuple(input_shape)

    def init(self, key, input_shape, dtype) -> tuple[dict, dict]:
        layers = self._layers(int(input_shape[-1]))
        params, _ = chain.init(layers, chain.shapes(layers, input_shape)[:-1], key, dtype)
        return {"fc": params[0], "proj": params[1]}, {}

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """F(X). Args: x (..., D). Returns (F(X), (fc cache, proj cache), state)."""
        layers = self._layers(x.shape[-1])
        y, caches, _ = chain.forward(layers, (params["fc"], params["proj"]), ({}, {}), x)
        return y, caches, state

    def backward(self, params, cache, grad_out):
        """Through Dense(D) then Dense(rD, g). Returns ({"fc", "proj"}, ∂L/∂X)."""
        layers = self._layers(grad_out.shape[-1])
        grads, dx, _ = chain.backward(layers, (params["fc"], params["proj"]), cache, grad_out)
        return {"fc": grads[0], "proj": grads[1]}, dx


@dataclass(frozen=True)
class TransformerBlock:
    """x + Attn(LN(x)), then x + FeedForward(LN(x)) (module docstring).

    Args:
      num_heads: H of the attention (D must be divisible by H).
      mlp_ratio: the feed-forward hidden width as a multiple of D.
      dropout: p in [0, 1) of the attention weights and of both residual branches.

    Input: one example's shape (T, D); output the same.
    """

    num_heads: int
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self):
        positive_int(self.num_heads, "num_heads")
        positive_int(self.mlp_ratio, "mlp_ratio")
        check_rate(self.dropout)

    @property
    def layers(self) -> tuple:
        """The two residual branches (Sequential finds Dropout layers through ``layers``)."""
        drop = (Dropout(self.dropout),) if self.dropout > 0 else ()
        attn = CausalSelfAttention(self.num_heads, self.dropout)
        return (Residual((LayerNorm(), attn) + drop),
                Residual((LayerNorm(), FeedForward(self.mlp_ratio)) + drop))

    def output_shape(self, input_shape: tuple) -> tuple:
        CausalSelfAttention(self.num_heads).output_shape(input_shape)  # rank and D % H first
        return chain.shapes(self.layers, input_shape)[-1]

    def _in_shapes(self, input_shape):
        return chain.shapes(self.layers, input_shape)[:-1]

    def init(self, key, input_shape, dtype) -> tuple[tuple, tuple]:
        return chain.init(self.layers, self._in_shapes(input_shape), key, dtype)

    def init_state(self, input_shape, dtype) -> tuple:
        return chain.init_state(self.layers, self._in_shapes(input_shape), dtype)

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """The two residual branches in order. Returns (Y (B, T, D), caches, states)."""
        y, caches, states = chain.forward(self.layers, params, state, x, key=key,
                                          training=training, drop_rate=drop_rate)
        return y, caches, states

    def backward(self, params, cache, grad_out):
        """Both branches in reverse. Returns (grads like params, ∂L/∂X)."""
        grads, dx, _ = chain.backward(self.layers, params, cache, grad_out)
        return grads, dx
