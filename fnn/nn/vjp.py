"""The hand-written backward as a ``jax.custom_vjp``: the notes' formulas behind any JAX transform.

    >>> apply = fnn.manual_vjp(net)                  # apply(params, x, *, key=None) -> ŷ
    >>> def loss(p, x, y): return jnp.mean((apply(p, x) - y) ** 2)     # any user code
    >>> jax.grad(loss)(params, x, y)                 # runs MLP.vjp, the layers' backward
    >>> jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)  # per-example gradients
    >>> jax.jacrev(apply)(params, x)                 # Jacobian of ŷ w.r.t. params, by hand

``apply`` computes exactly :meth:`fnn.MLP.apply`; its VJP (the rule reverse-mode AD uses) is
:meth:`fnn.MLP.vjp`: given a cotangent ∂L/∂ŷ from whatever scalar the user builds, the output
layer applies its activation's backward δ(L) = ∂L/∂ŷ ⊙ g'(Z(L)) (softmax: its Jacobian-vector
product; the loss is the user's, so there is no fused (ŷ − y)/N here), and the notes' recurrence
δ(l) = (δ(l+1) W(l+1)ᵀ) ⊙ g'(Z(l)) gives ∂W(l) = A(l−1)ᵀ δ(l), ∂b(l) = Σ_rows δ(l) and
∂L/∂X = δ(1) W(1)ᵀ. The forward caches (Z, A, masks) are the residuals.

What works, and what does not:

* ``jax.grad`` / ``jax.vjp`` / ``jax.value_and_grad`` w.r.t. ``params`` and ``x``; ``jax.vmap``
  of them (per-example gradients); ``jax.jacrev``; ``jax.jit`` around any of these.
* Dropout: ``key`` is not differentiated (its cotangent is zero); the masks drawn in the forward
  pass are residuals, so the backward uses the same masks. ``drop_rate`` (fixed when the wrapper
  is made) is not differentiated either.
* Second order by reverse-over-reverse (``jax.grad`` of ``jax.grad``) and ``jax.hessian``
  (= ``jacfwd(jacrev)``) work: JAX differentiates the hand-written backward itself, an ordinary
  JAX function of the residuals (sigmoid' = a(1 − a) is differentiated through a; ReLU' is
  piecewise constant, so its derivative is 0 away from the kink). The result is the exact second
  derivative wherever the activations are twice differentiable.
* Forward mode on the wrapper itself — ``jax.jvp``, ``jax.jacfwd``, ``jax.linearize`` of
  ``apply`` — raises ``TypeError: can't apply forward-mode autodiff (jvp) to a custom_vjp
  function``; use :meth:`fnn.MLP.apply` (plain autodiff) for those.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp


def manual_vjp(net, *, drop_rate: Optional[float] = None) -> Callable:
    """``apply(params, x, *, key=None) -> ŷ`` whose reverse-mode derivative is the manual backward.

    Args:
      net: :class:`fnn.MLP`.
      drop_rate: dropout rate used when a ``key`` is passed (default ``net.drop_rate``).
    Returns:
      ``apply(params, x, *, key=None)``: params from ``net.init``; x (batch, sizes[0]) or one
      example (sizes[0],) (then ŷ is (sizes[-1],)); key a dropout key or None. Returns ŷ
      (batch, sizes[-1]), equal to ``net.apply(params, x, key=key)``. The cotangent of x has
      x's dtype (zero / float0 for integer inputs); that of key is zero.
    """
    rate = net.drop_rate if drop_rate is None else drop_rate

    def forward(params, x, key):
        return net.forward(params, x, key=key, drop_rate=rate)

    @jax.custom_vjp
    def _apply(params, x, key):
        return forward(params, x, key)[0]

    def _fwd(params, x, key):
        y_hat, caches = forward(params, x, key)
        return y_hat, (params, caches)

    def _bwd(res, grad_out):
        params, caches = res
        grads, grad_x, _ = net.vjp(params, caches, grad_out)
        return grads, grad_x, None

    _apply.defvjp(_fwd, _bwd)

    def apply(params, x, *, key=None):
        x = jnp.asarray(x)
        single = x.ndim == 1
        # Cast outside the custom_vjp: JAX then converts the cotangent back to x's dtype.
        xb = (x[None, :] if single else x).astype(params[0]["w"].dtype)
        y_hat = _apply(params, xb, key)
        return y_hat[0] if single else y_hat

    apply.__doc__ = f"ŷ = {net!r}.apply(params, x, key=key), with the hand-written VJP."
    return apply
