"""Whole sequence networks as Sequentials — a small GPT (Embedding, PositionalEmbedding,
Repeat(TransformerBlock), LayerNorm, Dense to the vocabulary) and an LSTM language model — manual
backward vs jax.grad end to end through the sequence cross-entropy (float64, 1e-9), causality,
and 20 float32 SGD steps giving the same losses in both gradient modes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from markers import slow_cases

import fnn
from fnn.nn import objective
from fnn.nn.layers import (LSTM, Dense, Dropout, Embedding, LayerNorm, PositionalEmbedding,
                           Repeat, SimpleRNN, TransformerBlock)
from grad_helpers import jit
from layer_helpers import assert_rel_close

V, T = 7, 5


def gpt(dropout=0.0, dtype="float64", blocks=2):
    return fnn.Sequential([Embedding(V, 8), PositionalEmbedding(T + 2),
                           Repeat(TransformerBlock(2, mlp_ratio=2, dropout=dropout), blocks),
                           LayerNorm(), Dense(V, "softmax")], input_shape=(T,), dtype=dtype)


def lstm(dtype="float64"):
    return fnn.Sequential([Embedding(V, 4), LSTM(6), Dropout(0.2), Dense(V, "softmax")],
                          input_shape=(T,), dtype=dtype)


def rnn(dtype="float64"):
    return fnn.Sequential([Embedding(V, 4), SimpleRNN(5), LayerNorm(), Dense(V, "softmax")],
                          input_shape=(T,), dtype=dtype)


def tokens(seed, batch=3):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.integers(0, V, size=(batch, T)), jnp.int32),
            jnp.asarray(rng.integers(0, V, size=(batch, T)), jnp.int32))


NETS = [("gpt", lambda: gpt()), ("gpt_dropout", lambda: gpt(dropout=0.2)),
        ("gpt_one_block", lambda: gpt(blocks=1)), ("lstm", lstm), ("rnn", rnn)]


@pytest.mark.parametrize("name,make", slow_cases(NETS, slow={"gpt", "gpt_dropout"}))
def test_whole_network_manual_equals_autodiff(x64, name, make):
    net = make()
    params = jax.tree.map(lambda a: 3 * a, net.init(jax.random.key(1)))  # away from the 0.02 init
    x, y = tokens(2)
    key = jax.random.key(3) if net.uses_dropout(None) else None
    yd = jax.nn.one_hot(y, V, dtype=jnp.float64)

    @jit
    def both(params):
        return tuple(objective.evaluate(net, "cross_entropy", params, x, yd, mode=m, key=key)
                     for m in ("manual", "autodiff"))

    manual, auto = both(params)
    np.testing.assert_allclose(manual.loss, auto.loss, rtol=1e-13)
    assert_rel_close(manual.grads, auto.grads)
    # the public entry point: integer (B, T) targets, mean over B·T positions
    loss, grads = fnn.loss_and_grad(net, "cross_entropy", params, x, y, key=key)
    logp = np.log(np.asarray(net.apply(params, x, key=key)))
    want = -np.mean(np.take_along_axis(logp, np.asarray(y)[..., None], axis=-1))
    np.testing.assert_allclose(loss, want, rtol=1e-10)
    assert_rel_close(grads, manual.grads, tol=1e-12)


@pytest.mark.parametrize("changed", [1, 3])
def test_gpt_is_causal(x64, changed):
    net = gpt()
    params = jax.tree.map(lambda a: 3 * a, net.init(jax.random.key(0)))
    x, _ = tokens(4, batch=2)
    x2 = x.at[:, changed].set((x[:, changed] + 1) % V)
    y, y2 = net.apply(params, x), net.apply(params, x2)
    np.testing.assert_array_equal(y[:, :changed], y2[:, :changed])
    assert not np.allclose(y[:, changed:], y2[:, changed:])


@pytest.mark.slow
@pytest.mark.parametrize("make", [lambda: gpt(dtype="float32"), lambda: lstm(dtype="float32")])
def test_twenty_float32_sgd_steps_give_the_same_losses_in_both_modes(make):
    # The two modes' float32 gradients differ by rounding (~2e-7 relative); plain SGD on a tiny
    # random-token task amplifies that chaotically at some step sizes, hence 0.3 and N(0, 1)
    # token vectors (0.02 ones behind a LayerNorm make the embedding steep).
    net = make()
    x, y = tokens(5, batch=4)
    yd = jax.nn.one_hot(y, V, dtype=jnp.float32)

    def run(mode):
        @jit
        def train(params):
            def step(p, i):
                key = jax.random.fold_in(jax.random.key(7), i) if net.uses_dropout(None) else None
                out = objective.evaluate(net, "cross_entropy", p, x, yd, mode=mode, key=key)
                return jax.tree.map(lambda a, g: a - 0.3 * g, p, out.grads), out.loss

            return jax.lax.scan(step, params, jnp.arange(20))[1]

        params = list(net.init(jax.random.key(0)))
        params[0] = {"w": 50 * params[0]["w"]}  # N(0, 1) tokens (torch's default), not GPT-2's
        return np.asarray(train(tuple(params)))

    manual, auto = run("manual"), run("autodiff")
    assert manual[-1] < manual[0]  # it learns
    np.testing.assert_allclose(manual, auto, rtol=1e-5)
