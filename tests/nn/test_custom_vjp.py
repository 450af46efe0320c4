"""``fnn.manual_vjp``: the hand-written backward as the VJP of the network, under JAX transforms.

Reference: ``jax.grad`` of the *plain* forward (``net.apply``), i.e. JAX's own derivative of the
same function. Float64; relative error ‖a − b‖ / max(‖a‖, ‖b‖) ≤ 1e-10 per leaf.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.nn.mlp import MLP
from markers import slow_cases

HIDDEN = ("identity", "sigmoid", "relu", "leaky_relu", "tanh")


# Losses written by a user on ŷ (not fnn's fused forms): the custom VJP sees only ∂L/∂ŷ.
def mse(y_hat, y):
    return jnp.sum((y_hat - y) ** 2) / y_hat.shape[0]


def bce(y_hat, y):
    return -jnp.sum(y * jnp.log(y_hat) + (1 - y) * jnp.log1p(-y_hat)) / y_hat.shape[0]


def ce(y_hat, y):
    return -jnp.sum(y * jnp.log(y_hat)) / y_hat.shape[0]


# (loss, output activation) pairs: every loss, and MSE after every kind of output.
LOSSES = [(mse, "identity"), (mse, "sigmoid"), (mse, "tanh"), (mse, "softmax"),
          (bce, "sigmoid"), (ce, "softmax")]


def _rel_err(a, b):
    a, b = np.ravel(np.asarray(a)), np.ravel(np.asarray(b))
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def _assert_rel(tree_a, tree_b, tol=1e-10):
    errs = jax.tree.map(_rel_err, tree_a, tree_b)
    assert max(jax.tree.leaves(errs)) <= tol, errs


def _problem(hidden, output, batch=6, seed=0, drop_rate=0.0):
    k = jax.random.split(jax.random.key(seed), 4)
    net = fnn.MLP(sizes=(3, 5, 4, 3), activation=hidden, output=output, drop_rate=drop_rate,
                  dtype="float64")
    params = net.init(k[0])
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(k[3], p.shape, p.dtype), params)
    x = jax.random.normal(k[1], (batch, 3), jnp.float64)
    if output == "softmax":
        y = jax.nn.one_hot(jax.random.randint(k[2], (batch,), 0, 3), 3, dtype=jnp.float64)
    else:
        y = jax.random.uniform(k[2], (batch, 3), jnp.float64)
    return net, params, x, y


@pytest.mark.parametrize("loss,output", LOSSES, ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("hidden", HIDDEN)
def test_grad_equals_autodiff_of_plain_forward(x64, hidden, output, loss):
    net, params, x, y = _problem(hidden, output)
    apply = fnn.manual_vjp(net)
    np.testing.assert_array_equal(apply(params, x), net.apply(params, x))
    manual = jax.grad(lambda p, x: loss(apply(p, x), y), argnums=(0, 1))(params, x)
    auto = jax.grad(lambda p, x: loss(net.apply(p, x), y), argnums=(0, 1))(params, x)
    _assert_rel(manual, auto)


def test_runs_the_hand_written_backward(x64, monkeypatch):
    calls = []
    original = MLP.vjp

    def spy(self, *args, **kwargs):
        calls.append(self.sizes)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MLP, "vjp", spy)
    net, params, x, y = _problem("tanh", "softmax")
    apply = fnn.manual_vjp(net)
    jax.grad(lambda p: ce(apply(p, x), y))(params)
    assert calls == [net.sizes]
    # ...and matches manual mode's gradient of the same loss (softmax + CE).
    _, manual = fnn.loss_and_grad(net, "cross_entropy", params, x, y, mode="manual")
    _assert_rel(jax.grad(lambda p: ce(apply(p, x), y))(params), manual)


@pytest.mark.parametrize("hidden,output,loss",
                         slow_cases([("relu", "softmax", ce), ("sigmoid", "identity", mse)],
                                    slow={"relu"}))
def test_per_example_gradients_by_vmap_equal_a_python_loop(x64, hidden, output, loss):
    net, params, x, y = _problem(hidden, output, batch=5)
    apply = fnn.manual_vjp(net)

    def one(p, xi, yi):  # one example: x (features,) -> ŷ (K,)
        return loss(apply(p, xi)[None], yi[None])

    per_example = jax.vmap(jax.grad(one), in_axes=(None, 0, 0))(params, x, y)
    single_grad = jax.jit(jax.grad(lambda p, xb, yb: loss(apply(p, xb), yb)))
    for i in range(x.shape[0]):
        single = single_grad(params, x[i:i + 1], y[i:i + 1])
        chex.assert_trees_all_close(jax.tree.map(lambda g: g[i], per_example), single,
                                    rtol=1e-12, atol=1e-15)
    # the mean of the per-example gradients is the batch gradient
    batch = jax.grad(lambda p: loss(apply(p, x), y))(params)
    chex.assert_trees_all_close(jax.tree.map(lambda g: jnp.mean(g, axis=0), per_example), batch,
                                rtol=1e-10, atol=1e-14)


def test_jacrev_and_jit(x64):
    net, params, x, _ = _problem("tanh", "softmax", batch=4)
    apply = fnn.manual_vjp(net)
    jac_manual = jax.jit(jax.jacrev(apply, argnums=(0, 1)))(params, x)
    jac_auto = jax.jacrev(net.apply, argnums=(0, 1))(params, x)
    chex.assert_trees_all_equal_shapes(jac_manual, jac_auto)
    assert jac_manual[1].shape == (4, 3, 4, 3)           # ∂ŷ(4, 3) / ∂x(4, 3)
    _assert_rel(jac_manual, jac_auto)


def test_dropout_key_is_not_differentiated(x64):
    net, params, x, y = _problem("relu", "identity", drop_rate=0.5)
    apply = fnn.manual_vjp(net)
    key = jax.random.key(7)
    np.testing.assert_array_equal(apply(params, x, key=key), net.apply(params, x, key=key))
    assert not np.array_equal(apply(params, x, key=key), apply(params, x))
    manual = jax.grad(lambda p: mse(apply(p, x, key=key), y))(params)
    auto = jax.grad(lambda p: mse(net.apply(p, x, key=key), y))(params)
    _assert_rel(manual, auto)
    # vmap over keys: one gradient per dropout draw
    keys = jax.random.split(key, 3)
    grads = jax.vmap(lambda k: jax.grad(lambda p: mse(apply(p, x, key=k), y))(params))(keys)
    assert grads[0]["w"].shape == (3, 3, 5)


def test_second_order_differentiates_the_backward_and_forward_mode_raises(x64):
    net, params, x, y = _problem("tanh", "sigmoid", batch=2)
    apply = fnn.manual_vjp(net)

    def f(xv, fwd):
        return mse(fwd(params, xv.reshape(2, 3)), y)

    h_manual = jax.jit(jax.hessian(lambda xv: f(xv, apply)))(x.ravel())
    h_auto = jax.jit(jax.hessian(lambda xv: f(xv, net.apply)))(x.ravel())
    _assert_rel(h_manual, h_auto, tol=1e-10)
    gg_manual = jax.jit(jax.grad(
        lambda p: jnp.sum(jax.grad(lambda xx: mse(apply(p, xx), y))(x))))(params)
    gg_auto = jax.jit(jax.grad(
        lambda p: jnp.sum(jax.grad(lambda xx: mse(net.apply(p, xx), y))(x))))(params)
    _assert_rel(gg_manual, gg_auto, tol=1e-10)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda xx: apply(params, xx), (x,), (jnp.ones_like(x),))
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jacfwd(lambda xx: apply(params, xx))(x)


def test_float32_params_and_integer_inputs():
    net = fnn.MLP(sizes=(4, 6, 2), activation="relu", output="softmax")
    params = net.init(jax.random.key(0))
    apply = fnn.manual_vjp(net)
    x = jnp.arange(12, dtype=jnp.uint8).reshape(3, 4)
    g = jax.grad(lambda p: jnp.sum(apply(p, x)[:, 0]))(params)
    assert g[0]["w"].dtype == jnp.float32
    xf = jnp.ones((3, 4), jnp.float32)
    gx = jax.grad(lambda xx: jnp.sum(apply(params, xx)[:, 0]))(xf)
    assert gx.dtype == jnp.float32 and gx.shape == (3, 4)
