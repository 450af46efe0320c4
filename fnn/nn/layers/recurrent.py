"""Recurrent layers: LSTM and a simple (Elman) RNN, forward by ``lax.scan``, backward by a reverse
``lax.scan`` over time with the formulas written out (CS231n's ``rnn_layers.py``).

Shapes: X (B, T, D), H units, h₀ = c₀ = 0; W = [W_x; W_h] is (D + H, ·), so a step's
pre-activation is [x_t, h_{t−1}] W + b.

LSTM (gates in PyTorch's order i, f, g, o; ``w[:D].T`` / ``w[D:].T`` are torch's
``weight_ih_l0`` / ``weight_hh_l0``, ``b`` is ``b_ih + b_hh``):

    forward:   a_t = x_t W_x + h_{t−1} W_h + b = [a_i a_f a_g a_o]
               i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
               c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
    backward:  dh = dh_{t} (from t + 1) + dY_t;   dc = dc_{t} (from t + 1) + dh ⊙ o ⊙ (1 − tanh² c_t)
               do = dh ⊙ tanh c_t;  di = dc ⊙ g;  df = dc ⊙ c_{t−1};  dg = dc ⊙ i
               da = [di ⊙ i(1 − i), df ⊙ f(1 − f), dg ⊙ (1 − g²), do ⊙ o(1 − o)]
               dh_{t−1} = da W_hᵀ;   dc_{t−1} = dc ⊙ f
               dW = Σ_t [x_t, h_{t−1}]ᵀ da_t;  db = Σ_t Σ_rows da_t;  dx_t = da_t W_xᵀ

SimpleRNN (activation g, tanh by default):

    forward:   z_t = x_t W_x + h_{t−1} W_h + b,   h_t = g(z_t)
    backward:  dz_t = (dh_{t} (from t + 1) + dY_t) ⊙ g'(z_t);  dh_{t−1} = dz_t W_hᵀ
               dW = Σ_t [x_t, h_{t−1}]ᵀ dz_t;  db = Σ dz_t;  dx_t = dz_t W_xᵀ

``return_sequences=False`` outputs h_T only; its gradient enters the reverse scan as dh_T. The
input-to-hidden products of all steps are one (B·T, D) × (D, ·) product outside the scan.
Weights start as U(−1/√H, 1/√H) (PyTorch's), biases at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from fnn.nn import activations as acts
from fnn.nn.layers.base import canonical_activation, positive_int, shape_str

Array = jax.Array


class LSTMCache(NamedTuple):
    """Time-major. x: (T, B, D).  h, c: h_t, c_t (T, B, H).  gates: [i f g o] (T, B, 4H)."""

    x: Array
    h: Array
    c: Array
    gates: Array


class RNNCache(NamedTuple):
    """Time-major. x: (T, B, D).  z: pre-activations (T, B, H).  h: h_t = g(z_t) (T, B, H)."""

    x: Array
    z: Array
    h: Array


def _check_sequence(input_shape) -> None:
    if len(input_shape) != 2:
        raise ValueError(f"got input shape {shape_str(input_shape)}; expected a 2-d input"
                         f" (time, features)")


def _check_return_sequences(value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"return_sequences: {value!r}; expected True or False")


def _sequence_output(layer, input_shape: tuple) -> tuple:
    """(T, H) with ``return_sequences``, else (H,): the output shape of a recurrent layer."""
    _check_sequence(input_shape)
    return (input_shape[0], layer.units) if layer.return_sequences else (layer.units,)


def _init_uniform(key, shape, units, dtype) -> Array:
    k = 1.0 / float(units) ** 0.5
    return jax.random.uniform(key, shape, dtype, -k, k)


def _shift(h: Array) -> Array:
    """h_{t−1} for every t: (T, B, H) with h₀ = 0 in front."""
    return jnp.concatenate([jnp.zeros_like(h[:1]), h[:-1]], axis=0)


def _weight_grads(x: Array, h_prev: Array, d: Array, w: Array) -> tuple[dict, Array]:
    """dW = Σ_t [x_t, h_{t−1}]ᵀ d_t;  db = Σ d_t;  dX = d W_xᵀ (back to (B, T, D))."""
    nd = x.shape[-1]
    d2 = d.reshape(-1, d.shape[-1])
    dw = jnp.concatenate([x.reshape(-1, nd).T @ d2, h_prev.reshape(-1, h_prev.shape[-1]).T @ d2],
                         axis=0)
    dx = d @ w[:nd].T
    return {"w": dw, "b": jnp.sum(d2, axis=0)}, jnp.swapaxes(dx, 0, 1)


@dataclass(frozen=True)
class LSTM:
    """A one-layer LSTM over time (module docstring).

    Args:
      units: H.
      return_sequences: output every h_t (B, T, H) if True, else the last h_T (B, H).

    Params: ``{"w": (D + H, 4H), "b": (4H,)}``. Input: one example's shape (T, D).
    """

    units: int
    return_sequences: bool = True

    def __post_init__(self):
        positive_int(self.units, "units")
        _check_return_sequences(self.return_sequences)

    def output_shape(self, input_shape: tuple) -> tuple:
        return _sequence_output(self, input_shape)

    def init(self, key, input_shape, dtype) -> tuple[dict, dict]:
        d, h = int(input_shape[-1]), self.units
        return {"w": _init_uniform(key, (d + h, 4 * h), h, dtype),
                "b": jnp.zeros((4 * h,), dtype)}, {}

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """h_t for every t by a scan. Args: x (B, T, D). Returns (Y, :class:`LSTMCache`, state)."""
        w, b = params["w"], params["b"]
        nd, hu = x.shape[-1], self.units
        xt = jnp.swapaxes(x, 0, 1)  # (T, B, D)
        ax = xt @ w[:nd] + b.reshape(1, 1, -1)  # x_t W_x + b for all t at once
        w_h = w[nd:]

        def step(carry, ax_t):
            h, c = carry
            a = ax_t + h @ w_h
            i = acts.sigmoid(a[:, :hu])
            f = acts.sigmoid(a[:, hu:2 * hu])
            g = jnp.tanh(a[:, 2 * hu:3 * hu])
            o = acts.sigmoid(a[:, 3 * hu:])
            c = f * c + i * g  # c_t = f ⊙ c_{t−1} + i ⊙ g
            h = o * jnp.tanh(c)  # h_t = o ⊙ tanh(c_t)
            return (h, c), (h, c, jnp.concatenate([i, f, g, o], axis=-1))

        zeros = jnp.zeros((x.shape[0], hu), x.dtype)
        _, (hs, cs, gates) = lax.scan(step, (zeros, zeros), ax)
        y = jnp.swapaxes(hs, 0, 1) if self.return_sequences else hs[-1]
        return y, LSTMCache(xt, hs, cs, gates), state

    def backward(self, params, cache: LSTMCache, grad_out):
        """The module docstring's backward: a reverse scan carrying (dh, dc), then the weight
        products. Args: grad_out (B, T, H) or (B, H). Returns ({"w", "b"}, dX (B, T, D))."""
        w = params["w"]
        nd, hu = cache.x.shape[-1], self.units
        w_h = w[nd:]
        c_prev = _shift(cache.c)
        tanh_c = jnp.tanh(cache.c)
        zeros = jnp.zeros(cache.h.shape[1:], cache.h.dtype)
        if self.return_sequences:
            dy, dh0 = jnp.swapaxes(grad_out, 0, 1), zeros
        else:
            dy, dh0 = None, grad_out  # only h_T is an output: dh_T = ∂L/∂Y

        def step(carry, xs):
            dh, dc = carry
            dy_t, gates, c_prev_t, tc = xs
            if dy_t is not None:
                dh = dh + dy_t
            i, f, g, o = (gates[:, k * hu:(k + 1) * hu] for k in range(4))
            do = dh * tc  # ∂h/∂o = tanh c
            dc = dc + dh * o * ((1 - tc) * (1 + tc))  # ∂h/∂c = o (1 − tanh² c)
            di, df, dg = dc * g, dc * c_prev_t, dc * i
            da = jnp.concatenate([di * (i * (1 - i)), df * (f * (1 - f)),
                                  dg * ((1 - g) * (1 + g)), do * (o * (1 - o))], axis=-1)
            return (da @ w_h.T, dc * f), da  # dh_{t−1} = da W_hᵀ;  dc_{t−1} = dc ⊙ f

        _, da = lax.scan(step, (dh0, zeros), (dy, cache.gates, c_prev, tanh_c), reverse=True)
        return _weight_grads(cache.x, _shift(cache.h), da, w)


@dataclass(frozen=True)
class SimpleRNN:
    """h_t = g(x_t W_x + h_{t−1} W_h + b) over time (module docstring).

    Args:
      units: H.
      activation: g (an element-wise activation name; tanh by default).
      return_sequences: output every h_t (B, T, H) if True, else the last h_T (B, H).

    Params: ``{"w": (D + H, H), "b": (H,)}``. Input: one example's shape (T, D).
    """

    units: int
    activation: str = "tanh"
    return_sequences: bool = True

    def __post_init__(self):
        positive_int(self.units, "units")
        object.__setattr__(self, "activation", canonical_activation(self.activation))
        act = acts.get(self.activation)  # unknown name: the registry's one-line error
        if not act.elementwise:
            raise ValueError(f"activation: {self.activation!r}; expected an element-wise"
                             f" activation for SimpleRNN")
        _check_return_sequences(self.return_sequences)

    def output_shape(self, input_shape: tuple) -> tuple:
        return _sequence_output(self, input_shape)

    def init(self, key, input_shape, dtype) -> tuple[dict, dict]:
        d, h = int(input_shape[-1]), self.units
        return {"w": _init_uniform(key, (d + h, h), h, dtype), "b": jnp.zeros((h,), dtype)}, {}

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        """h_t for every t by a scan. Args: x (B, T, D). Returns (Y, :class:`RNNCache`, state)."""
        w, b = params["w"], params["b"]
        nd = x.shape[-1]
        act = acts.get(self.activation)
        xt = jnp.swapaxes(x, 0, 1)
        zx = xt @ w[:nd] + b.reshape(1, 1, -1)
        w_h = w[nd:]

        def step(h, zx_t):
            z = zx_t + h @ w_h
            h = act.fn(z)
            return h, (z, h)

        _, (zs, hs) = lax.scan(step, jnp.zeros((x.shape[0], self.units), x.dtype), zx)
        y = jnp.swapaxes(hs, 0, 1) if self.return_sequences else hs[-1]
        return y, RNNCache(xt, zs, hs), state

    def backward(self, params, cache: RNNCache, grad_out):
        """dz_t = (dh_t + dY_t) ⊙ g'(z_t); dh_{t−1} = dz_t W_hᵀ by a reverse scan, then the weight
        products. Returns ({"w", "b"}, dX (B, T, D))."""
        w = params["w"]
        w_h = w[cache.x.shape[-1]:]
        act = acts.get(self.activation)
        zeros = jnp.zeros(cache.h.shape[1:], cache.h.dtype)
        if self.return_sequences:
            dy, dh0 = jnp.swapaxes(grad_out, 0, 1), zeros
        else:
            dy, dh0 = None, grad_out

        def step(dh, xs):
            dy_t, z, h = xs
            if dy_t is not None:
                dh = dh + dy_t
            dz = act.backward(z, h, dh)  # dz_t = dh ⊙ g'(z_t)
            return dz @ w_h.T, dz  # dh_{t−1} = dz_t W_hᵀ

        _, dz = lax.scan(step, dh0, (dy, cache.z, cache.h), reverse=True)
        return _weight_grads(cache.x, _shift(cache.h), dz, w)
