"""Conv2D(formulation="winograd"): the forward against lax.conv_general_dilated and im2col, the
manual backward (∂W, ∂b, ∂X) against jax.vjp of lax's convolution and of its own forward (float64,
1e-9 relative), odd and even sizes, same and valid, C ≠ F, batch 1 and > 1; the geometry check."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from fnn.nn import activations as acts
from fnn.nn.layers import Conv2D
from fnn.nn.layers import winograd
from grad_helpers import jit
from layer_helpers import assert_rel_close, check_layer, rand_like_tree

# (input (H, W, C), filters, padding, batch, activation)
WINOGRAD_CASES = [
    ((6, 6, 2), 3, "same", 2, "relu"),          # even output: whole tiles
    ((7, 5, 3), 2, "same", 1, "tanh"),          # odd H and W: one padded row and column of tiles
    ((8, 7, 1), 4, "valid", 3, "identity"),     # valid (6, 5), C = 1
    ((5, 6, 2), 2, "valid", 2, "sigmoid"),      # valid (3, 4)
    ((3, 3, 4), 1, "valid", 1, "leaky_relu"),   # valid (1, 1): one tile, cropped to one output
    ((4, 9, 3), 5, "same", 2, "gelu"),
    ((5, 4, 2), 3, "same", 2, "softmax"),
    ((2, 2, 3), 2, "same", 1, "relu"),          # smaller than the kernel, same padding
]


def _reference(layer, params, x):
    """g(lax.conv_general_dilated(X, W) + b), XLA's own SAME / VALID."""
    z = lax.conv_general_dilated(x, params["w"], (1, 1), layer.padding.upper(),
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return acts.get(layer.activation).fn(z + params["b"].reshape(1, 1, 1, -1))


@pytest.mark.parametrize("shape,filters,padding,batch,activation", WINOGRAD_CASES)
def test_winograd_manual_backward_matches_autodiff(x64, shape, filters, padding, batch,
                                                   activation):
    layer = Conv2D(filters, 3, 1, padding, activation=activation, formulation="winograd")
    check_layer(layer, shape, seed=sum(shape) + filters, batch=batch)  # jax.vjp of its forward


@pytest.mark.parametrize("shape,filters,padding,batch,activation", WINOGRAD_CASES)
def test_winograd_matches_lax_and_im2col(x64, shape, filters, padding, batch, activation):
    layer = Conv2D(filters, 3, 1, padding, activation=activation, formulation="winograd")
    im2col = Conv2D(filters, 3, 1, padding, activation=activation, formulation="im2col")
    rng = np.random.default_rng(len(shape) + filters)
    params = rand_like_tree(layer.init(jax.random.key(0), shape, jnp.float64)[0], rng)
    x = rng.normal(size=(batch,) + shape)
    out_shape = layer.output_shape(shape)
    g = rng.normal(size=(batch,) + out_shape)

    @jit
    def run(params, x, g):
        y, cache, _ = layer.forward(params, {}, x)
        y_col, cache_col, _ = im2col.forward(params, {}, x)
        ref, vjp = jax.vjp(lambda p, x: _reference(layer, p, x), params, x)
        return ((y, layer.backward(params, cache, g)),
                (y_col, im2col.backward(params, cache_col, g)), (ref, vjp(g)))

    (y, manual), (y_col, manual_col), (ref, auto) = run(params, x, g)
    assert y.shape == ref.shape == (batch,) + out_shape
    chex.assert_trees_all_close(y, ref, rtol=1e-12, atol=1e-12)     # forward = lax's
    chex.assert_trees_all_close(y, y_col, rtol=1e-12, atol=1e-12)   # forward = im2col's
    assert_rel_close(manual, auto)       # (∂W, ∂b), ∂X = jax.vjp of lax's convolution, 1e-9
    assert_rel_close(manual, manual_col)


@pytest.mark.parametrize("oh,ow,pads,tiles,tile_pads", [
    (6, 6, ((1, 1), (1, 1)), (3, 3), [(1, 1), (1, 1)]),
    (7, 5, ((1, 1), (1, 1)), (4, 3), [(1, 2), (1, 2)]),
    (1, 3, ((0, 0), (0, 0)), (1, 2), [(0, 1), (0, 1)]),
])
def test_tiles_cover_the_output_with_whole_4x4_inputs(oh, ow, pads, tiles, tile_pads):
    assert winograd.tiles_and_pads((oh, ow), pads) == (tiles, tile_pads)


def test_transforms_are_lavin_and_grays(x64):
    """One tile: Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A with the paper's matrices = the 2×2 valid correlation."""
    bt = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float)
    at = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)
    rng = np.random.default_rng(0)
    d, g = rng.normal(size=(4, 4)), rng.normal(size=(3, 3))
    v = np.asarray(winograd.input_transform(jnp.asarray(d).reshape(1, 4, 4, 1), (1, 1)))
    u = np.asarray(winograd.kernel_transform(jnp.asarray(g).reshape(3, 3, 1, 1)))
    np.testing.assert_allclose(v.reshape(4, 4), bt @ d @ bt.T, atol=1e-14)
    np.testing.assert_allclose(u.reshape(4, 4), winograd.G @ g @ winograd.G.T, atol=1e-14)
    y = np.asarray(winograd.output_transform(jnp.asarray(u * v).reshape(16, 1, 1), 1, (1, 1)))
    direct = [[np.sum(d[p:p + 3, q:q + 3] * g) for q in range(2)] for p in range(2)]
    np.testing.assert_allclose(y.reshape(2, 2), at @ (u * v).reshape(4, 4) @ at.T, atol=1e-13)
    np.testing.assert_allclose(y.reshape(2, 2), direct, atol=1e-13)


@pytest.mark.parametrize("kernel,strides,message", [
    (5, 1, "got kernel_size 5x5"),
    ((3, 2), 1, "got kernel_size 3x2"),
    (3, 2, "got strides 2x2"),
    (3, (1, 2), "got strides 1x2"),
    (1, 2, "got kernel_size 1x1, strides 2x2"),
])
def test_winograd_needs_a_3x3_stride_1_kernel(kernel, strides, message):
    with pytest.raises(ValueError) as err:
        Conv2D(4, kernel, strides, formulation="winograd")
    text = str(err.value)
    assert text == f"formulation: 'winograd' needs a 3x3 kernel with stride 1; {message}"
    assert "\n" not in text
    Conv2D(4, kernel, strides)  # the same geometry is fine for every other formulation
