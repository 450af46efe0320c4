"""Sequence building blocks: gelu in Dense, Dense / LayerNorm / Dropout on (B, T, D), Embedding,
PositionalEmbedding and the sequence cross-entropy — manual backward vs jax.vjp (float64, 1e-9),
central differences, integer inputs through Sequential, and the one-line errors."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.nn import losses
from fnn.nn.layers import Dense, Dropout, Embedding, LayerNorm, PositionalEmbedding
from fnn.nn.sequential import Sequential
from grad_helpers import jit
from layer_helpers import assert_rel_close, central_difference_check, check_layer, rand_like_tree


# --- Dense, LayerNorm, Dropout on the last axis of any rank ------------------------------------
@pytest.mark.parametrize("layer", [Dense(4, "gelu"), Dense(3, "tanh"), LayerNorm()])
@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5)])
def test_last_axis_layers_match_autodiff_at_any_rank(x64, layer, shape):
    check_layer(layer, shape, batch=2)


def test_dense_on_a_sequence_is_dense_on_every_position(x64):
    layer = Dense(4, "gelu")
    rng = np.random.default_rng(0)
    params = rand_like_tree(layer.init(jax.random.key(0), (5,), jnp.float64)[0], rng)
    x = rng.normal(size=(2, 3, 5))
    g = rng.normal(size=(2, 3, 4))

    @jit
    def run(params, x, g):
        y3, c3, _ = layer.forward(params, {}, x)
        y2, c2, _ = layer.forward(params, {}, x.reshape(6, 5))
        return (y3, layer.backward(params, c3, g)), (y2, layer.backward(params, c2, g.reshape(6, 4)))

    (y3, (g3, dx3)), (y2, (g2, dx2)) = run(params, x, g)
    assert layer.output_shape((3, 5)) == (3, 4) and y3.shape == (2, 3, 4)
    chex.assert_trees_all_close((y3.reshape(6, 4), g3, dx3.reshape(6, 5)), (y2, g2, dx2),
                                rtol=1e-13, atol=1e-13)


def test_dropout_masks_a_sequence_and_backward_uses_the_mask(x64):
    x = jnp.ones((2, 3, 4))
    y, mask, _ = Dropout(0.5).forward({}, {}, x, key=jax.random.key(1), training=True)
    assert y.shape == (2, 3, 4) and mask.shape == (2, 3, 4)
    assert set(np.unique(np.asarray(y))) <= {0.0, 2.0}
    _, dx = Dropout(0.5).backward({}, mask, jnp.full((2, 3, 4), 3.0))
    chex.assert_trees_all_close(dx, 3.0 * mask)


# --- Embedding ------------------------------------------------------------------------------------
def embedding_grads(layer, params, ids, g):
    """(manual dW, autodiff dW, y) of <Embedding(ids), g>, the ids closed over."""

    @jit
    def run(params, g):
        y, cache, _ = layer.forward(params, {}, ids)
        manual, grad_in = layer.backward(params, cache, g)
        assert grad_in is None
        _, vjp = jax.vjp(lambda p: layer.forward(p, {}, ids)[0], params)
        return manual, vjp(g)[0], y

    return run(params, g)


@settings(max_examples=6)
@given(vocab=st.integers(1, 7), features=st.integers(1, 5), batch=st.integers(1, 3),
       time=st.integers(1, 6), seed=st.integers(0, 99))
def test_embedding_scatter_add_matches_autodiff(vocab, features, batch, time, seed):
    with jax.enable_x64(True):
        layer = Embedding(vocab, features)
        rng = np.random.default_rng(seed)
        params = rand_like_tree(layer.init(jax.random.key(0), (time,), jnp.float64)[0], rng)
        ids = jnp.asarray(rng.integers(0, vocab, size=(batch, time)), jnp.int32)
        g = jnp.asarray(rng.normal(size=(batch, time, features)))
        manual, auto, y = embedding_grads(layer, params, ids, g)
        assert y.shape == (batch, time, features)
        chex.assert_trees_all_close(y, np.asarray(params["w"])[np.asarray(ids)], rtol=0, atol=0)
        assert_rel_close(manual, auto)
        unused = np.setdiff1d(np.arange(vocab), np.asarray(ids))
        np.testing.assert_array_equal(np.asarray(manual["w"])[unused], 0.0)


def test_embedding_repeated_ids_accumulate(x64):
    layer = Embedding(4, 2)
    params = {"w": jnp.zeros((4, 2))}
    ids = jnp.asarray([[1, 1, 3]], jnp.int32)
    g = jnp.asarray([[[1.0, 2.0], [10.0, 20.0], [5.0, 7.0]]])
    _, cache, _ = layer.forward(params, {}, ids)
    dw, _ = layer.backward(params, cache, g)
    np.testing.assert_array_equal(dw["w"], [[0, 0], [11, 22], [0, 0], [5, 7]])


# --- PositionalEmbedding --------------------------------------------------------------------------
@pytest.mark.parametrize("max_len,shape", [(5, (5, 3)), (8, (3, 4)), (1, (1, 2))])
def test_positional_embedding_matches_autodiff(x64, max_len, shape):
    check_layer(PositionalEmbedding(max_len), shape, batch=3)


def test_positional_embedding_rows_beyond_t_get_no_gradient(x64):
    layer = PositionalEmbedding(6)
    params = {"w": jnp.zeros((6, 2))}
    g = jnp.ones((3, 4, 2))
    dw, dx = layer.backward(params, None, g)
    np.testing.assert_array_equal(dw["w"][:4], 3.0)
    np.testing.assert_array_equal(dw["w"][4:], 0.0)
    chex.assert_trees_all_close(dx, g)


def test_embedding_and_positions_central_differences(x64):
    net = Sequential([Embedding(5, 3), PositionalEmbedding(4), LayerNorm(), Dense(5)],
                     input_shape=(4,), dtype="float64")
    rng = np.random.default_rng(4)
    params = rand_like_tree(net.init(jax.random.key(0)), rng)
    ids = jnp.asarray(rng.integers(0, 5, size=(2, 4)), jnp.int32)
    y = jnp.asarray(rng.normal(size=(2, 4, 5)))
    state = net.init_state()

    def loss(p):
        return losses.get("mse").value(None, net.apply(p, ids), y)

    f = jit(loss)

    @jit
    def manual(p):
        _, caches, _ = net.forward_state(p, state, ids)
        return net.backward(p, caches, "mse", y)

    grads = manual(params)
    assert_rel_close(grads, jit(jax.grad(loss))(params))
    central_difference_check(f, params, grads)


# --- integer inputs through Sequential ------------------------------------------------------------
def test_sequential_keeps_integer_ids_and_casts_everything_else(x64):
    net = Sequential([Embedding(6, 2)], input_shape=(3,), dtype="float64")
    params = net.init(jax.random.key(0))
    ids = np.asarray([[0, 5, 2]], np.int32)
    np.testing.assert_array_equal(net.apply(params, ids), np.asarray(params[0]["w"])[ids])
    dense = Sequential([Dense(2)], input_shape=(3,), dtype="float64")  # ints cast, as before
    p = dense.init(jax.random.key(0))
    chex.assert_trees_all_close(dense.apply(p, np.asarray([[1, 2, 3]], np.int32)),
                                dense.apply(p, np.asarray([[1.0, 2.0, 3.0]])), rtol=0, atol=0)


# --- sequence cross-entropy -----------------------------------------------------------------------
@pytest.mark.parametrize("batch,time,vocab", [(2, 3, 4), (1, 5, 2), (3, 1, 6)])
def test_sequence_cross_entropy_value_and_fused_delta(x64, batch, time, vocab):
    rng = np.random.default_rng(batch * time)
    z = jnp.asarray(rng.normal(size=(batch, time, vocab)) * 3)
    labels = rng.integers(0, vocab, size=(batch, time))
    ce = losses.get("cross_entropy")
    y = losses.prepare_targets(ce, labels, vocab, jnp.float64, output_shape=(time, vocab))
    assert y.shape == (batch, time, vocab)
    a = jax.nn.softmax(z, axis=-1)
    logp = np.asarray(jax.nn.log_softmax(z, axis=-1))
    want = -np.mean(np.take_along_axis(logp, labels[..., None], axis=-1))  # mean over B·T
    np.testing.assert_allclose(ce.value(z, a, y), want, rtol=1e-13)
    delta = ce.output_delta(None, z, a, y)
    assert_rel_close(delta, jax.grad(lambda z: ce.value(z, jax.nn.softmax(z, -1), y))(z))
    chex.assert_trees_all_close(delta, (a - y) / (batch * time), rtol=0, atol=0)


@pytest.mark.parametrize("y,match", [
    (np.zeros((2, 4), np.int32), r"^targets: shape \(2, 4\) does not fit a \(batch, 3, 5\) output;"
                                 r" expected \(batch, 3, 5\) or integer labels \(batch, 3\)$"),
    (np.full((2, 3), 5), r"^labels: value 5 out of range; expected integer class ids in \[0, 4\]"),
    (np.full((2, 3, 5), 2.0), r"^targets: value 2.0 out of range for 'cross_entropy'"),
])
def test_sequence_target_errors_are_one_line(y, match):
    with pytest.raises(ValueError, match=match):
        losses.prepare_targets(losses.get("cross_entropy"), y, 5, jnp.float32,
                               output_shape=(3, 5))


# --- construction and shape errors ------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: Embedding(0, 4), r"^vocab_size: 0; expected a positive integer$"),
    (lambda: Embedding(5, 2.5), r"^features: 2.5; expected a positive integer$"),
    (lambda: PositionalEmbedding(0), r"^max_len: 0; expected a positive integer$"),
    (lambda: Sequential([Embedding(5, 4), PositionalEmbedding(3)], input_shape=(4,)),
     r"^layers\[1\] \(PositionalEmbedding\): got input shape \(4, 4\); expected at most"
     r" max_len=3 positions$"),
    (lambda: Sequential([PositionalEmbedding(3)], input_shape=(4,)),
     r"^layers\[0\] \(PositionalEmbedding\): got input shape \(4,\); expected a 2-d input"),
])
def test_construction_and_shape_errors_are_one_line(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("x,match", [
    (np.zeros((2, 3), np.float32), r"^x: dtype float32; expected integer token ids in \[0, 4\]"
                                   r" for Embedding\(5\)$"),
    (np.asarray([[0, 5, 1]]), r"^x: token id 5 out of range; expected ids in \[0, 4\]"),
    (np.asarray([[0, -1, 1]]), r"^x: token id -1 out of range"),
])
def test_embedding_input_errors_are_one_line(x, match):
    net = Sequential([Embedding(5, 2)], input_shape=(3,))
    with pytest.raises(ValueError, match=match):
        net.apply(net.init(jax.random.key(0)), x)
