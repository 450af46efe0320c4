"""Pooling, Flatten, Activation, Dropout: manual backward vs jax.vjp (float64), the three max-pool
backward formulations against each other, and the ties rule (first maximum, row-major)."""
import chex
import jax
import numpy as np
import pytest

from fnn.nn.layers import (Activation, AvgPool2D, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D,
                           dropout_mask)
from grad_helpers import jit
from layer_helpers import check_layer

# (input (H, W, C), pool_size, strides)
POOL_CASES = [((4, 4, 2), 2, None), ((5, 5, 1), 2, None), ((5, 6, 2), 3, 1), ((6, 5, 2), (2, 3), (1, 2)),
              ((7, 7, 1), 3, 2), ((3, 3, 2), 3, None), ((6, 7, 2), (2, 3), None)]


@pytest.mark.parametrize("backward", ["index", "mask", "scatter"])
@pytest.mark.parametrize("shape,size,strides", POOL_CASES)
def test_max_pool_matches_autodiff_without_ties(x64, backward, shape, size, strides):
    # continuous random inputs: no ties, so jax.grad's choice is the unique maximum
    check_layer(MaxPool2D(size, strides, backward_formulation=backward), shape)


@pytest.mark.parametrize("shape,size,strides", POOL_CASES)
def test_avg_pool_matches_autodiff(x64, shape, size, strides):
    check_layer(AvgPool2D(size, strides), shape)


def _max_pool_grads(shape, size, strides, x, g):
    layers = [MaxPool2D(size, strides, backward_formulation=b) for b in ("index", "mask", "scatter")]

    @jit
    def run(x, g):
        out = []
        for layer in layers:
            y, cache, _ = layer.forward({}, {}, x)
            out.append((y, layer.backward({}, cache, g)[1]))
        return out

    return run(x, g)


@pytest.mark.parametrize("shape,size,strides", POOL_CASES)
def test_max_pool_formulations_agree_with_ties(shape, size, strides):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(2,) + shape).astype(np.float32)       # many ties
    out_shape = MaxPool2D(size, strides).output_shape(shape)
    g = rng.integers(-4, 5, size=(2,) + out_shape).astype(np.float32)  # exact sums, any order
    index, mask, scatter = _max_pool_grads(shape, size, strides, x, g)
    chex.assert_trees_all_equal(mask, scatter)
    chex.assert_trees_all_equal(index, scatter)


@pytest.mark.parametrize("backward", ["index", "mask", "scatter"])
def test_max_pool_ties_go_to_the_first_maximum(backward):
    layer = MaxPool2D(2, backward_formulation=backward)
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 2, 3, 0] = 1.0                                   # unique max in the bottom-right window
    x[0, 3, 2, 0] = 1.0                                   # ... tied with this one (later, row-major)
    g = np.arange(1, 5, dtype=np.float32).reshape(1, 2, 2, 1)
    y, cache, _ = layer.forward({}, {}, x)
    dx = np.asarray(layer.backward({}, cache, g)[1])[0, :, :, 0]
    want = np.zeros((4, 4), np.float32)
    want[0, 0], want[0, 2], want[2, 0] = 1, 2, 3          # all-zero windows: the top-left element
    want[2, 3] = 4                                        # first maximum in row-major order
    np.testing.assert_array_equal(dx, want)
    # overlapping windows: each window sends its δ to its own first maximum
    ov = MaxPool2D(2, 1, backward_formulation=backward)
    ones = np.ones((1, 3, 3, 1), np.float32)
    y, cache, _ = ov.forward({}, {}, ones)
    dx = np.asarray(ov.backward({}, cache, np.ones((1, 2, 2, 1), np.float32))[1])[0, :, :, 0]
    np.testing.assert_array_equal(dx, [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_global_avg_pool_and_flatten(x64):
    check_layer(GlobalAvgPool2D(), (3, 4, 2))
    check_layer(Flatten(), (3, 4, 2))
    x = np.arange(24.0).reshape(1, 2, 3, 4)
    y, _, _ = Flatten().forward({}, {}, x)
    np.testing.assert_array_equal(y, x.reshape(1, 24))                 # row-major
    assert GlobalAvgPool2D().output_shape((3, 4, 2)) == (2,) and Flatten().output_shape((3, 4, 2)) == (24,)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "leaky_relu", "softmax"])
def test_activation_layer_matches_autodiff(x64, name):
    check_layer(Activation(name), (3, 3, 4))


def test_dropout_layer(x64):
    layer = Dropout(0.4)
    x = np.ones((50, 20))
    key = jax.random.key(3)
    y_eval, cache, _ = layer.forward({}, {}, x, key=key, training=False)
    assert cache is None and y_eval is x
    y_nokey, cache, _ = layer.forward({}, {}, x, training=True)
    assert cache is None
    y, mask, _ = layer.forward({}, {}, x, key=key, training=True)
    np.testing.assert_array_equal(mask, dropout_mask(key, x.shape, 0.4, x.dtype))
    np.testing.assert_array_equal(y, x * mask)
    g = np.full((50, 20), 2.0)
    np.testing.assert_array_equal(layer.backward({}, mask, g)[1], g * mask)
    # drop_rate overrides the rate, also traced
    _, m2, _ = layer.forward({}, {}, x, key=key, training=True, drop_rate=0.1)
    np.testing.assert_array_equal(m2, dropout_mask(key, x.shape, 0.1, x.dtype))
    m3 = jit(lambda r: layer.forward({}, {}, x, key=key, training=True, drop_rate=r)[1])(0.1)
    np.testing.assert_allclose(m3, m2)
    _, none, _ = layer.forward({}, {}, x, key=key, training=True, drop_rate=0.0)
    assert none is None
