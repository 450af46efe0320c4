"""Conv2D and Dense: manual backward vs jax.vjp (float64, 1e-9), both conv formulations against
each other and against lax.conv_general_dilated, XLA's SAME/VALID geometry, finite differences."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from fnn.nn.layers import Conv2D, Dense, resolve_formulation
from grad_helpers import jit
from layer_helpers import central_difference_check, check_layer, rand_like_tree

# (input (H, W, C), filters, kernel, strides, padding)
CONV_CASES = [
    ((6, 6, 2), 3, 3, 1, "same"),
    ((7, 6, 2), 2, 3, 2, "same"),
    ((8, 7, 1), 2, (3, 2), 2, "valid"),
    ((5, 5, 3), 4, 1, 1, "valid"),
    ((7, 8, 2), 2, (2, 3), (2, 1), "same"),
    ((5, 5, 2), 2, 4, 3, "same"),
    ((6, 5, 1), 3, 2, (1, 2), "valid"),
]


@pytest.mark.parametrize("formulation", ["im2col", "hybrid", "correlation", "xla"])
@pytest.mark.parametrize("shape,filters,k,s,padding", CONV_CASES)
def test_conv_manual_backward_matches_autodiff(x64, formulation, shape, filters, k, s, padding):
    layer = Conv2D(filters, k, s, padding, activation="tanh", formulation=formulation)
    check_layer(layer, shape, seed=len(shape) + filters)


@pytest.mark.parametrize("shape,filters,k,s,padding", CONV_CASES)
def test_conv_formulations_agree_with_each_other_and_lax(x64, shape, filters, k, s, padding):
    rng = np.random.default_rng(1)
    layers = [Conv2D(filters, k, s, padding, formulation=f) for f in ("im2col", "hybrid", "correlation", "xla")]
    params = rand_like_tree(layers[0].init(jax.random.key(0), shape, jnp.float64)[0], rng)
    x = rng.normal(size=(3,) + shape)
    out_shape = layers[0].output_shape(shape)
    g = rng.normal(size=(3,) + out_shape)

    @jit
    def run(params, x, g):
        outs = []
        for layer in layers:
            y, cache, _ = layer.forward(params, {}, x)
            outs.append((y, layer.backward(params, cache, g)))
        ref = lax.conv_general_dilated(x, params["w"], layers[0].strides, padding.upper(),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return outs, ref + params["b"].reshape(1, 1, 1, -1)

    (im2col, hybrid, correlation, xla), ref = run(params, x, g)
    assert im2col[0].shape == ref.shape == (3,) + out_shape     # XLA's SAME / VALID geometry
    for other in (im2col, hybrid, correlation):
        chex.assert_trees_all_close(other, xla, rtol=1e-12, atol=1e-12)
    chex.assert_trees_all_close(im2col[0], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,k,s,padding,out,pads", [
    (28, 3, 1, "same", 28, (1, 1)), (28, 3, 2, "same", 14, (0, 1)), (7, 4, 3, "same", 3, (1, 2)),
    (5, 2, 1, "same", 5, (0, 1)), (9, 3, 2, "valid", 4, (0, 0)), (6, 6, 1, "valid", 1, (0, 0)),
])
def test_same_and_valid_geometry_is_xlas(n, k, s, padding, out, pads):
    layer = Conv2D(1, k, s, padding)
    assert layer.output_shape((n, n, 1)) == (out, out, 1)
    assert layer._geometry(n, n) == ((out, out), (pads, pads))


def test_formulation_per_platform_and_override():
    cpu = jax.default_backend() == "cpu"
    assert resolve_formulation("auto") == ("im2col" if cpu else "xla")  # geometry not given
    # on CPU "auto" is im2col for every geometry (winograd measured slower on a quiet CPU)
    for geometry in [((3, 3), (1, 1), 32), ((3, 3), (1, 1), 64), ((3, 3), (1, 1), 16),
                     ((3, 3), (2, 2), 64), ((5, 5), (1, 1), 64), ((3, 2), (1, 1), 64)]:
        assert resolve_formulation("auto", *geometry) == ("im2col" if cpu else "xla")
    assert Conv2D(8, 3).resolved_formulation(32) == ("im2col" if cpu else "xla")
    assert Conv2D(8, 3, 2).resolved_formulation(32) == ("im2col" if cpu else "xla")
    for name in ("im2col", "hybrid", "correlation", "xla", "winograd"):
        assert resolve_formulation(name) == resolve_formulation(name, (3, 3), (1, 1), 64) == name
        assert Conv2D(8, 3, formulation=name).resolved_formulation(1) == name
    layer = Conv2D(4, 3)
    assert layer.kernel_size == (3, 3) and layer.strides == (1, 1) and layer.formulation == "auto"
    assert hash(layer) == hash(Conv2D(4, (3, 3), (1, 1))) and layer == Conv2D(4, (3, 3))


def test_conv_params_are_hwio_and_biases_zero():
    params, state = Conv2D(5, (3, 2), activation="relu").init(jax.random.key(0), (8, 8, 3),
                                                              jnp.float32)
    assert params["w"].shape == (3, 2, 3, 5) and params["b"].shape == (5,) and state == {}
    np.testing.assert_array_equal(params["b"], np.zeros(5))


def test_conv_central_differences(x64):
    layer = Conv2D(2, 3, 2, "same", activation="tanh")
    rng = np.random.default_rng(3)
    params = rand_like_tree(layer.init(jax.random.key(0), (5, 5, 2), jnp.float64)[0], rng)
    x = rng.normal(size=(2, 5, 5, 2))

    @jit
    def f(p):
        return jnp.sum(layer.forward(p, {}, x)[0] ** 2)

    @jit
    def manual(p):
        y, cache, _ = layer.forward(p, {}, x)
        return layer.backward(p, cache, 2 * y)[0]

    central_difference_check(f, params, manual(params))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
def test_dense_manual_backward_matches_autodiff(x64, activation):
    check_layer(Dense(4, activation), (5,), batch=3)


def test_dense_params_and_default_initializer():
    layer = Dense(3, "relu")
    assert layer.init_name == "he_normal" and Dense(3, "tanh").init_name == "glorot_uniform"
    params, state = layer.init(jax.random.key(0), (4,), jnp.float32)
    assert params["w"].shape == (4, 3) and params["b"].shape == (3,) and state == {}
    assert Dense(3, "linear") == Dense(3) and hash(Dense(3, "linear")) == hash(Dense(3))
