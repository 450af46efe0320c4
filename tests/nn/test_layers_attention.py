"""CausalSelfAttention, FeedForward, TransformerBlock and Repeat: manual backward vs jax.vjp
(float64, 1e-9) over random shapes, heads and lengths, with and without dropout; the forward
against a loop reference; causality; central differences; scan vs unrolled; one-line errors."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.nn.layers import (CausalSelfAttention, Dense, FeedForward, LayerNorm, Repeat,
                           TransformerBlock)
from fnn.nn.sequential import Sequential
from grad_helpers import jit
from layer_helpers import (assert_rel_close, central_difference_check, check_layer, layer_grads,
                           rand_like_tree)


def random_case(layer, shape, seed, batch=2, scale=0.5):
    rng = np.random.default_rng(seed)
    params = jax.tree.map(lambda a: scale * a,
                          rand_like_tree(layer.init(jax.random.key(0), shape, jnp.float64)[0], rng))
    x = rng.normal(size=(batch,) + shape)
    g = rng.normal(size=(batch,) + layer.output_shape(shape))
    return params, x, g


def check_with_dropout(layer, shape, seed):
    """Manual vs autodiff with the same dropout key (the same masks in both)."""
    params, x, g = random_case(layer, shape, seed)
    state = layer.init(jax.random.key(0), shape, jnp.float64)[1]
    manual, auto, _ = layer_grads(layer, params, state, x, g, key=jax.random.key(seed))
    assert_rel_close(manual, auto)


@settings(max_examples=8)
@given(heads=st.integers(1, 3), head_size=st.integers(1, 3), time=st.integers(1, 6),
       batch=st.integers(1, 2), seed=st.integers(0, 99))
def test_attention_backward_matches_autodiff(heads, head_size, time, batch, seed):
    with jax.enable_x64(True):
        check_layer(CausalSelfAttention(heads), (time, heads * head_size), seed=seed, batch=batch)


@pytest.mark.parametrize("layer,shape", [
    (CausalSelfAttention(2, dropout=0.3), (5, 4)),
    (TransformerBlock(2, mlp_ratio=2, dropout=0.2), (4, 4)),
    (Repeat(TransformerBlock(1, mlp_ratio=1, dropout=0.25), 2), (3, 2)),
])
def test_dropout_backward_matches_autodiff_with_the_same_key(x64, layer, shape):
    check_with_dropout(layer, shape, seed=3)


def reference_attention(params, x, heads):
    """Loops over batch, head and query position: Σ_{u ≤ t} softmax_u(q_t·k_u/√E) v_u."""
    b, t, d = x.shape
    e = d // heads
    qkv = x @ params["qkv"]["w"] + params["qkv"]["b"]
    q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
    out = np.zeros((b, t, d))
    for n in range(b):
        for h in range(heads):
            sl = slice(h * e, (h + 1) * e)
            for i in range(t):
                scores = np.array([q[n, i, sl] @ k[n, u, sl] / np.sqrt(e) for u in range(i + 1)])
                w = np.exp(scores - scores.max())
                w /= w.sum()
                out[n, i, sl] = sum(w[u] * v[n, u, sl] for u in range(i + 1))
    return out @ params["proj"]["w"] + params["proj"]["b"]


@pytest.mark.parametrize("heads,shape", [(1, (4, 3)), (2, (5, 4)), (3, (3, 6))])
def test_attention_forward_matches_a_loop_reference(x64, heads, shape):
    layer = CausalSelfAttention(heads)
    params, x, _ = random_case(layer, shape, seed=heads)
    y = jit(lambda p, x: layer.forward(p, {}, x)[0])(params, x)
    np_params = jax.tree.map(np.asarray, params)
    np.testing.assert_allclose(y, reference_attention(np_params, x, heads), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer", [CausalSelfAttention(2), TransformerBlock(2, mlp_ratio=2),
                                   Repeat(TransformerBlock(2, mlp_ratio=1), 3)])
@pytest.mark.parametrize("changed", [0, 2, 4])
def test_a_later_token_does_not_change_earlier_outputs(x64, layer, changed):
    params, x, _ = random_case(layer, (5, 4), seed=changed)
    x2 = x.copy()
    x2[:, changed] += 10.0
    f = jit(lambda p, x: layer.forward(p, layer.init(jax.random.key(0), (5, 4), jnp.float64)[1],
                                       x)[0])
    y, y2 = f(params, x), f(params, x2)
    np.testing.assert_array_equal(y[:, :changed], y2[:, :changed])
    assert not np.allclose(y[:, changed:], y2[:, changed:])


@pytest.mark.parametrize("layer,shape", [
    (FeedForward(2), (3, 4)), (FeedForward(1, "relu"), (5,)),
    (TransformerBlock(1), (3, 2)), (TransformerBlock(2, mlp_ratio=2), (4, 6)),
    (Repeat(TransformerBlock(2, mlp_ratio=1), 1), (3, 4)),
    (Repeat(TransformerBlock(2, mlp_ratio=2), 3), (4, 4)),
    (Repeat(Dense(3, "gelu"), 4), (2, 3)), (Repeat(LayerNorm(), 2), (5,)),
])
def test_block_and_repeat_backward_match_autodiff(x64, layer, shape):
    params, x, g = random_case(layer, shape, seed=len(shape))
    manual, auto, _ = layer_grads(layer, params, layer.init(jax.random.key(0), shape,
                                                            jnp.float64)[1], x, g)
    assert_rel_close(manual, auto)


def test_repeat_equals_the_unrolled_chain(x64):
    block = TransformerBlock(2, mlp_ratio=2)
    rep = Repeat(block, 3)
    params, x, g = random_case(rep, (4, 4), seed=7)
    assert jax.tree.leaves(params)[0].shape[0] == 3

    rep_state, block_state = rep.init_state((4, 4), jnp.float64), block.init_state((4, 4),
                                                                                   jnp.float64)

    @jit
    def run(params, x, g):
        y, cache, _ = rep.forward(params, rep_state, x)
        grads, dx = rep.backward(params, cache, g)
        h, caches = x, []
        for i in range(3):
            p = jax.tree.map(lambda a: a[i], params)
            h, c, _ = block.forward(p, block_state, h)
            caches.append((p, c))
        dh, unrolled = g, []
        for p, c in reversed(caches):
            gi, dh = block.backward(p, c, dh)
            unrolled.insert(0, gi)
        return (y, grads, dx), (h, jax.tree.map(lambda *a: jnp.stack(a), *unrolled), dh)

    scanned, unrolled = run(params, x, g)
    chex.assert_trees_all_close(scanned, unrolled, rtol=1e-12, atol=1e-12)


def test_attention_central_differences(x64):
    layer = CausalSelfAttention(2)
    params, x, w = random_case(layer, (4, 4), seed=11)

    @jit
    def f(p):
        return jnp.sum(w * jnp.tanh(layer.forward(p, {}, x)[0]))

    @jit
    def manual(p):
        y, cache, _ = layer.forward(p, {}, x)
        return layer.backward(p, cache, w * (1 - jnp.tanh(y) ** 2))[0]

    central_difference_check(f, params, manual(params))


def test_params_layout_and_transformer_structure():
    params, _ = CausalSelfAttention(2).init(jax.random.key(0), (5, 6), jnp.float32)
    chex.assert_trees_all_equal_shapes(params, {"qkv": {"w": np.zeros((6, 18)), "b": np.zeros(18)},
                                                "proj": {"w": np.zeros((6, 6)), "b": np.zeros(6)}})
    (ln1, attn), (ln2, ffn) = TransformerBlock(2).init(jax.random.key(0), (5, 6), jnp.float32)[0]
    assert ffn["fc"]["w"].shape == (6, 24) and ffn["proj"]["w"].shape == (24, 6)
    assert ln1["scale"].shape == ln2["scale"].shape == (6,) and attn["qkv"]["w"].shape == (6, 18)
    net = Sequential([Repeat(TransformerBlock(2, dropout=0.1), 2)], input_shape=(3, 4))
    assert net.dropout_rates() == (0.1, 0.1) and net.drop_rate is None


@pytest.mark.parametrize("make,match", [
    (lambda: CausalSelfAttention(0), r"^num_heads: 0; expected a positive integer$"),
    (lambda: CausalSelfAttention(2, dropout=1.0), r"^dropout: 1.0; expected a probability in"
                                                  r" \[0, 1\)$"),
    (lambda: CausalSelfAttention(2, dropout=-0.1), r"^dropout: -0.1; expected a probability"),
    (lambda: TransformerBlock(0), r"^num_heads: 0; expected a positive integer$"),
    (lambda: TransformerBlock(2, mlp_ratio=0), r"^mlp_ratio: 0; expected a positive integer$"),
    (lambda: TransformerBlock(2, dropout=1.5), r"^dropout: 1.5; expected a probability"),
    (lambda: Repeat(TransformerBlock(2), 0), r"^n: 0; expected a positive integer$"),
    (lambda: Repeat("block", 2), r"^layer: 'block' is not a layer; expected the methods"),
    (lambda: Sequential([CausalSelfAttention(4)], input_shape=(3, 6)),
     r"^layers\[0\] \(CausalSelfAttention\): features: 6 is not divisible by num_heads=4;"
     r" expected a multiple of 4$"),
    (lambda: Sequential([Repeat(TransformerBlock(4), 2)], input_shape=(3, 6)),
     r"^layers\[0\] \(Repeat\): layers\[0\] \(TransformerBlock\): features: 6 is not divisible"
     r" by num_heads=4"),
    (lambda: Sequential([Repeat(Dense(3), 2)], input_shape=(4,)),
     r"^layers\[0\] \(Repeat\): Dense maps \(4,\) to \(3,\); expected it to keep the shape"),
    (lambda: Sequential([TransformerBlock(2)], input_shape=(6,)),
     r"^layers\[0\] \(TransformerBlock\): got input shape \(6,\); expected a 2-d input"),
])
def test_construction_and_shape_errors_are_one_line(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)
