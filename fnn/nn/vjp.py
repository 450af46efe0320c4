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
* Any fnn network: :class:`fnn.MLP` and :class:`fnn.Sequential` (its :meth:`~fnn.Sequential.vjp`,
  every layer's hand-written backward). As ``net.apply``: with a ``key`` a Sequential runs in
  training mode (dropout, BatchNorm's batch statistics, differentiated through the statistics);
  without one, evaluation mode with the running statistics of ``state`` (``init_state()`` when
  None), which are constants (cotangent zero).
* Forward mode on the wrapper itself — ``jax.jvp``, ``jax.jacfwd``, ``jax.linearize`` of
  ``apply`` — raises ``TypeError: can't apply forward-mode autodiff (jvp) to a custom_vjp
  function``; use :meth:`fnn.MLP.apply` (plain autodiff) for those.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from fnn.nn.protocol import Network


def manual_vjp(net, *, drop_rate: Optional[float] = None) -> Callable:
    """``apply(params, x, *, key=None) -> ŷ`` whose reverse-mode derivative is the manual backward.

    Args:
      net: :class:`fnn.MLP` or :class:`fnn.Sequential`.
      drop_rate: dropout rate used when a ``key`` is passed (default ``net.drop_rate``).
    Returns:
      ``apply(params, x, *, key=None, state=None)``: params from ``net.init``; x (batch,
      *input_shape) or one example (input_shape) (then ŷ has no batch axis); key a dropout key
      (training mode) or None; state the network's state for evaluation (None:
      ``net.init_state()``). Returns ŷ (batch, *output_shape), equal to
      ``net.apply(params, x, key=key, state=state)``. The cotangent of x has x's dtype (zero /
      float0 for integer inputs); those of key and state are zero.
    """
    if not isinstance(net, Network) or not net.manual_backward:
        raise ValueError(f"network: {type(net).__name__} has no hand-written vjp; manual_vjp needs"
                         f" an fnn.MLP or fnn.Sequential")
    rate = net.drop_rate if drop_rate is None else drop_rate

    def forward(params, state, x, key):
        y_hat, caches, _ = net.forward_state(params, state, x, key=key, drop_rate=rate,
                                             training=key is not None)
        return y_hat, caches

    @jax.custom_vjp
    def _apply(params, state, x, key):
        return forward(params, state, x, key)[0]

    def _fwd(params, state, x, key):
        y_hat, caches = forward(params, state, x, key)
        return y_hat, (params, state, caches)

    def _bwd(res, grad_out):
        params, state, caches = res
        grads, grad_x, _ = net.vjp(params, caches, grad_out)
        return grads, jax.tree.map(jnp.zeros_like, state), grad_x, None

    _apply.defvjp(_fwd, _bwd)
    n_in = len(net.input_shape)

    def apply(params, x, *, key=None, state=None):
        x = jnp.asarray(x)
        single = x.ndim == n_in
        state = net.init_state() if state is None else state
        # Cast outside the custom_vjp: JAX then converts the cotangent back to x's dtype.
        dtype = next(l.dtype for l in jax.tree.leaves(params)
                     if jnp.issubdtype(l.dtype, jnp.floating))
        xb = (x[None] if single else x).astype(dtype)
        y_hat = _apply(params, state, xb, key)
        return y_hat[0] if single else y_hat

    apply.__doc__ = f"ŷ = {net!r}.apply(params, x, key=key), with the hand-written VJP."
    return apply
