"""Helpers shared by the layer tests: manual backward vs ``jax.vjp`` of the forward, in float64."""
import chex
import jax
import jax.numpy as jnp
import numpy as np

from grad_helpers import jit

RTOL = 1e-9


def rand_like_tree(tree, rng):
    return jax.tree.map(lambda a: rng.normal(size=np.shape(a)), tree)


def layer_grads(layer, params, state, x, g, *, training=True, key=None):
    """(manual (grads, grad_x), autodiff (grads, grad_x), y) of <layer(x), g>, one jit."""

    @jit
    def run(params, state, x, g):
        def fwd(p, x):
            return layer.forward(p, state, x, key=key, training=training)[0]

        y, cache, _ = layer.forward(params, state, x, key=key, training=training)
        manual = layer.backward(params, cache, g)
        _, vjp = jax.vjp(fwd, params, x)
        return manual, vjp(g), y

    return run(params, state, x, g)


def assert_rel_close(manual, auto, tol=RTOL):
    """Same structure, shapes, dtypes; every leaf within ``tol`` normwise relative error."""
    chex.assert_trees_all_equal_shapes_and_dtypes(manual, auto)
    for m, a in zip(jax.tree.leaves(manual), jax.tree.leaves(auto)):
        m, a = np.asarray(m), np.asarray(a)
        scale = max(np.linalg.norm(a), 1e-300)
        assert np.linalg.norm(m - a) <= tol * scale + 1e-300, (np.linalg.norm(m - a), scale)


def check_layer(layer, input_shape, *, seed=0, batch=2, training=True, params=None, state=None):
    """Manual vs autodiff gradients of one layer in float64 (random params, inputs, cotangent)."""
    rng = np.random.default_rng(seed)
    out_shape = layer.output_shape(input_shape)
    p0, s0 = layer.init(jax.random.key(seed), input_shape, jnp.float64)
    if params is None:
        params = rand_like_tree(p0, rng)
    state = s0 if state is None else state
    x = rng.normal(size=(batch,) + tuple(input_shape))
    g = rng.normal(size=(batch,) + tuple(out_shape))
    manual, auto, y = layer_grads(layer, params, state, x, g, training=training)
    assert y.shape == (batch,) + tuple(out_shape)
    assert_rel_close(manual, auto)
    return params, x


def central_difference_check(f, params, grads, *, seed=0, h=1e-5, n_dirs=3, rtol=1e-6):
    """<∇f, v> against (f(p + h v) − f(p − h v)) / 2h for a few random directions v."""
    rng = np.random.default_rng(seed)
    for _ in range(n_dirs):
        v = rand_like_tree(params, rng)
        plus = jax.tree.map(lambda p, d: p + h * d, params, v)
        minus = jax.tree.map(lambda p, d: p - h * d, params, v)
        fd = (float(f(plus)) - float(f(minus))) / (2 * h)
        an = sum(float(np.sum(np.asarray(a) * np.asarray(b)))
                 for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(v)))
        np.testing.assert_allclose(an, fd, rtol=rtol, atol=1e-9)
