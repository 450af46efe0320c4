"""Activations, each with its hand-written derivative side by side.

Contract: an :class:`Activation` has

* ``fn(z) -> a``                      the forward map, ``a = g(z)``;
* ``backward(z, a, grad_a) -> grad_z`` the vector-Jacobian product ``∂L/∂Z`` given ``∂L/∂A``.

For element-wise activations ``backward`` is ``grad_a ⊙ g'(Z)`` (the notes' ``⊙ g'(Z(l))``), and
``derivative(z, a)`` returns ``g'(Z)`` itself. Softmax is not element-wise: its derivative is a
Jacobian, so its ``backward`` is the Jacobian-vector product and ``derivative`` is ``None``.
Every ``backward`` receives both ``z`` and the cached ``a = g(z)`` so it can use whichever is
cheaper (sigmoid' = a(1 - a) needs no new exponential).

Arrays are batch-first: ``z``, ``a`` and ``grad_a`` all have shape ``(batch, units)`` (or
``(batch, time, units)``: every activation acts on the last axis).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from fnn.nn import names
from fnn.util import registry

Array = jax.Array

LEAKY_RELU_SLOPE = 0.01


@dataclass(frozen=True)
class Activation:
    """A named activation with its forward map and hand-written backward.

    Attributes:
      name: registry name.
      fn: ``z -> a``, shape preserving.
      derivative: ``(z, a) -> g'(z)`` for element-wise activations, ``None`` for softmax.
      vjp: ``(z, a, grad_a) -> grad_z`` for non-element-wise activations, else ``None``.
      elementwise: whether ``g`` acts on each unit independently.
      kink: whether ``g'`` is discontinuous at ``z = 0`` (ReLU family; matters for finite
        differences).
      flops: forward FLOPs per element as XLA counts them (a compare and a select for ReLU;
        exp / tanh are transcendentals, not FLOPs); what :meth:`flops_of` multiplies.
    """

    name: str
    fn: Callable[[Array], Array]
    derivative: Optional[Callable[[Array, Array], Array]] = None
    vjp: Optional[Callable[[Array, Array, Array], Array]] = None
    kink: bool = False
    flops: int = 0

    @property
    def elementwise(self) -> bool:
        return self.vjp is None

    def flops_of(self, shape) -> int:
        """Forward FLOPs of ``g`` on one example of ``shape``: ``flops`` × elements."""
        n = 1
        for d in shape:
            n *= int(d)
        return self.flops * n

    def backward(self, z: Array, a: Array, grad_a: Array) -> Array:
        """``∂L/∂Z`` from ``∂L/∂A``: ``grad_a ⊙ g'(z)`` or the Jacobian-vector product.

        Args:
          z: pre-activation, (batch, units).
          a: ``fn(z)``, (batch, units).
          grad_a: ``∂L/∂A``, (batch, units).
        Returns:
          ``∂L/∂Z``, (batch, units).
        """
        if self.vjp is not None:
            return self.vjp(z, a, grad_a)
        return grad_a * self.derivative(z, a)


# --- identity (linear): a = z ------------------------------------------------------------------
def identity(z: Array) -> Array:
    return z


def identity_derivative(z: Array, a: Array) -> Array:
    # g'(z) = 1
    return jnp.ones_like(z)


# --- sigmoid: a = 1 / (1 + e^-z) ---------------------------------------------------------------
def sigmoid(z: Array) -> Array:
    # lax.logistic is the stable form: no overflow of e^-z for z ~ -1e4.
    return jax.lax.logistic(z)


def sigmoid_derivative(z: Array, a: Array) -> Array:
    # g'(z) = σ(z)(1 − σ(z)) = a(1 − a)
    return a * (1 - a)


# --- ReLU: a = max(z, 0) -----------------------------------------------------------------------
@jax.custom_jvp
def relu(z: Array) -> Array:
    # a = max(z, 0). `maximum` compiles far faster than `where(z > 0, z, 0)` after a dot and a
    # bias (XLA:CPU: a 3-layer MLP's forward 0.05 s against 0.75 s, its jax.grad 0.20 s against
    # 0.50 s); the custom JVP keeps jax.grad's g'(0) = 0 (maximum's own would split it 1/2).
    return jnp.maximum(z, jnp.zeros_like(z))


@relu.defjvp
def _relu_jvp(primals, tangents):
    # d a = g'(z) · dz, g'(z) = 1 if z > 0 else 0: relu_derivative, one formula
    (z,), (dz,) = primals, tangents
    return relu(z), dz * relu_derivative(z, None)


def relu_derivative(z: Array, a: Array) -> Array:
    # g'(z) = 1 if z > 0 else 0   (the subgradient 0 is taken at z = 0)
    return (z > 0).astype(z.dtype)


# --- leaky ReLU: a = z if z > 0 else αz ----------------------------------------------------------
@jax.custom_jvp
def leaky_relu(z: Array) -> Array:
    # a = max(z, αz) for 0 < α < 1 (the same value as `where(z > 0, z, αz)`, ±inf and NaN
    # included); `maximum` for the compile time, as in relu; the custom JVP takes g'(0) = α.
    return jnp.maximum(z, LEAKY_RELU_SLOPE * z)


@leaky_relu.defjvp
def _leaky_relu_jvp(primals, tangents):
    # d a = g'(z) · dz, g'(z) = 1 if z > 0 else α: leaky_relu_derivative, one formula
    (z,), (dz,) = primals, tangents
    return leaky_relu(z), dz * leaky_relu_derivative(z, None)


def leaky_relu_derivative(z: Array, a: Array) -> Array:
    # g'(z) = 1 if z > 0 else α   (α = 0.01; α is taken at z = 0)
    one = jnp.ones_like(z)
    return jnp.where(z > 0, one, LEAKY_RELU_SLOPE * one)


# --- tanh --------------------------------------------------------------------------------------
def tanh(z: Array) -> Array:
    return jnp.tanh(z)


def tanh_derivative(z: Array, a: Array) -> Array:
    # g'(z) = 1 − tanh²(z) = 1 − a², evaluated as (1 − a)(1 + a): exact 1 − a near |a| = 1,
    # where 1 − a·a cancels (relative error ~1e-8 at z = 10 in float64).
    return (1 - a) * (1 + a)


# --- GELU, GPT-2's tanh approximation: a = ½ z (1 + tanh(u)), u = √(2/π)(z + 0.044715 z³) ---------
GELU_C = 0.7978845608028654  # √(2/π)
GELU_K = 0.044715


def _gelu_u(z: Array) -> Array:
    return GELU_C * (z + GELU_K * (z * z * z))


def gelu(z: Array) -> Array:
    # ½ z (1 + tanh u) written as z σ(2u) (1 + tanh u = 2σ(2u)): the same function, with no
    # cancellation of 1 + tanh u in the negative tail.
    return z * jax.lax.logistic(2 * _gelu_u(z))


def gelu_derivative(z: Array, a: Array) -> Array:
    # g'(z) = ½(1 + t) + ½ z (1 − t²) √(2/π)(1 + 3·0.044715 z²),  t = tanh u,
    # evaluated as σ(2u) + 2 z σ(2u) σ(−2u) √(2/π)(1 + 3·0.044715 z²)  (½(1 ± t) = σ(±2u))
    u2 = 2 * _gelu_u(z)
    s_pos, s_neg = jax.lax.logistic(u2), jax.lax.logistic(-u2)
    return s_pos + 2 * z * (s_pos * s_neg) * (GELU_C * (1 + 3 * GELU_K * (z * z)))


# --- softmax over the last axis: a_k = e^{z_k} / Σ_j e^{z_j} -------------------------------------
def softmax(z: Array) -> Array:
    # Shift by the (constant) row max for stability; the result is invariant to the shift.
    z_max = jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    e = jnp.exp(z - z_max)
    return e / jnp.sum(e, axis=-1, keepdims=True)


def softmax_vjp(z: Array, a: Array, grad_a: Array) -> Array:
    # J = diag(a) − a aᵀ  ⇒  Jᵀ g = a ⊙ (g − ⟨g, a⟩)   (row by row)
    return a * (grad_a - jnp.sum(grad_a * a, axis=-1, keepdims=True))


ACTIVATIONS: dict[str, Activation] = registry.table("activation", names.ACTIVATIONS, {
    "identity": Activation("identity", identity, identity_derivative),
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_derivative, flops=3),
    "relu": Activation("relu", relu, relu_derivative, kink=True, flops=1),  # one max per element
    "leaky_relu": Activation("leaky_relu", leaky_relu, leaky_relu_derivative, kink=True,
                             flops=3),
    "tanh": Activation("tanh", tanh, tanh_derivative),
    # max, subtract, sum, divide per element (plus one exp, a transcendental)
    "softmax": Activation("softmax", softmax, vjp=softmax_vjp, flops=4),
    # z³ (2), ·0.044715, + z, ·√(2/π)·2, the sigmoid (3), ·z: 9, as XLA counts them
    "gelu": Activation("gelu", gelu, gelu_derivative, flops=9),
})
ALIASES = names.ACTIVATION_ALIASES  # the list and the aliases: fnn.nn.names (no JAX)


def get(name: str) -> Activation:
    """Look up an activation by name (``linear`` is an alias of ``identity``).

    Raises:
      ValueError: unknown name; the message lists the valid ones.
    """
    if isinstance(name, Activation):
        return name
    return registry.lookup("activation", name, ACTIVATIONS, ALIASES)


def canonical_name(name: str) -> str:
    """The registry name of ``name`` (resolving aliases); raises like :func:`get`."""
    return get(name).name
