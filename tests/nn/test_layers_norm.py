"""BatchNorm and LayerNorm: closed-form backward vs jax.vjp (float64) in training and evaluation,
finite differences, and BatchNorm's running averages against a NumPy reference."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.nn.layers import BatchNorm, LayerNorm
from grad_helpers import jit
from layer_helpers import central_difference_check, check_layer, rand_like_tree


@pytest.mark.parametrize("layer", [BatchNorm(), LayerNorm(), BatchNorm(eps=1e-3)])
@pytest.mark.parametrize("shape", [(5,), (3, 4, 2), (2, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_norm_backward_matches_autodiff(x64, layer, shape, training):
    state = None
    if isinstance(layer, BatchNorm) and not training:
        rng = np.random.default_rng(5)
        state = {"mean": rng.normal(size=shape[-1]), "var": rng.uniform(0.5, 2, size=shape[-1])}
    check_layer(layer, shape, batch=4, training=training, state=state)


@pytest.mark.parametrize("layer", [BatchNorm(), LayerNorm()])
def test_norm_central_differences_on_the_input(x64, layer):
    rng = np.random.default_rng(2)
    params = rand_like_tree(layer.init(jax.random.key(0), (2, 2, 5), jnp.float64)[0], rng)
    state = layer.init(jax.random.key(0), (2, 2, 5), jnp.float64)[1]
    w = rng.normal(size=(4, 2, 2, 5))  # C = 5: over 2 channels LayerNorm is ±1 (flat)

    @jit
    def f(x):
        return jnp.sum(w * jnp.tanh(layer.forward(params, state, x, training=True)[0]))

    @jit
    def manual(x):
        y, cache, _ = layer.forward(params, state, x, training=True)
        return layer.backward(params, cache, w * (1 - jnp.tanh(y) ** 2))[1]

    x = rng.normal(size=(4, 2, 2, 5))
    central_difference_check(f, x, manual(x))


def test_batchnorm_running_averages_match_numpy(x64):
    layer = BatchNorm(momentum=0.9, eps=1e-3)
    params, state = layer.init(jax.random.key(0), (3, 3, 2), jnp.float64)
    chex.assert_trees_all_equal(state, {"mean": np.zeros(2), "var": np.ones(2)})
    params = {"scale": np.array([1.5, -0.5]), "bias": np.array([0.2, 0.1])}
    step = jit(lambda s, x: layer.forward(params, s, x, training=True))
    rng = np.random.default_rng(0)
    mean_r, var_r = np.zeros(2), np.ones(2)
    for _ in range(4):
        x = rng.normal(loc=2.0, scale=3.0, size=(5, 3, 3, 2))
        y, _, state = step(state, x)
        mu, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))      # biased
        mean_r, var_r = 0.9 * mean_r + 0.1 * mu, 0.9 * var_r + 0.1 * var
        np.testing.assert_allclose(state["mean"], mean_r, rtol=1e-12)
        np.testing.assert_allclose(state["var"], var_r, rtol=1e-12)
        # training uses the batch statistics, not the state
        np.testing.assert_allclose(y, params["scale"] * (x - mu) / np.sqrt(var + 1e-3)
                                   + params["bias"], rtol=1e-10, atol=1e-12)
    # evaluation uses the running statistics and returns the state unchanged
    x = rng.normal(size=(3, 3, 3, 2))
    y, _, same = jit(lambda s, x: layer.forward(params, s, x, training=False))(state, x)
    chex.assert_trees_all_equal(same, state)
    np.testing.assert_allclose(y, params["scale"] * (x - mean_r) / np.sqrt(var_r + 1e-3)
                               + params["bias"], rtol=1e-10)


def test_layernorm_normalizes_each_row(x64):
    layer = LayerNorm()
    params, state = layer.init(jax.random.key(0), (4, 6), jnp.float64)
    assert state == {} and params["scale"].shape == (6,)
    x = np.random.default_rng(0).normal(size=(2, 4, 6))
    y = np.asarray(layer.forward(params, state, x)[0])
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(-1), 1 / (1 + 1e-5 / x.var(-1)), rtol=1e-10)
