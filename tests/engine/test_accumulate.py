"""Gradient accumulation (``accumulate=K``): one update from K micro-batches equals one update on
the whole batch, in both gradient modes, through the step, the scanned Trainer and the config.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import MLP, Sequential, optim
from fnn.engine import Trainer, TrainState, make_train_step
from fnn.engine.accumulate import check_accumulate, merge, split
from fnn.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Embedding,
    Flatten,
    LayerNorm,
    LSTM,
    MaxPool2D,
    PositionalEmbedding,
    TransformerBlock,
)
from markers import slow_cases

TOL = {"float32": 1e-6, "float64": 1e-12}


def mlp(dtype):
    return MLP([5, 16, 8, 3], activation="tanh", output="softmax", dtype=dtype)


def cnn(dtype):
    return Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(),
                       Dense(3, activation="softmax")], input_shape=(6, 6, 1), dtype=dtype)


def gpt(dtype):
    return Sequential([Embedding(7, 8), PositionalEmbedding(5), TransformerBlock(2), LayerNorm(),
                       Dense(7, activation="softmax")], input_shape=(5,), dtype=dtype)


def lstm(dtype):
    return Sequential([Embedding(7, 4), LSTM(6), Dense(7, activation="softmax")],
                      input_shape=(5,), dtype=dtype)


def batch_for(net, b, rng):
    if net.integer_inputs:  # next-token targets for every position
        return (rng.integers(0, 7, (b, 5)).astype(np.int32),
                rng.integers(0, 7, (b, 5)).astype(np.int32))
    x = rng.normal(size=(b,) + tuple(net.input_shape)).astype(np.float32)
    if len(net.input_shape) == 1:
        x = x.reshape(b, -1)
    return x, rng.integers(0, 3, b).astype(np.int32)


NETS = {"mlp": mlp, "cnn": cnn, "gpt": gpt, "lstm": lstm}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("grad", ["manual", "autodiff"])
@pytest.mark.parametrize("kind", list(NETS))
@pytest.mark.parametrize("k", slow_cases([2, 4], slow={4}))
def test_k_micro_batches_make_the_update_of_the_whole_batch(kind, grad, dtype, k, request):
    """One step with accumulate=K on a batch of B rows = one step on the same B rows at once,
    to 1e-6 in float32 and 1e-12 in float64 (parameters, momentum, loss, accuracy).

    SGD with momentum, whose update is linear in the gradient, so the parameters compare the
    gradients themselves. (Adam divides by √v: a gradient that is zero in exact arithmetic,
    such as that of the attention's key bias, is rounding noise either way, and Adam's first
    step turns any noise into ±learning_rate.)"""
    if dtype == "float64":
        request.getfixturevalue("x64")
    net = NETS[kind](dtype)
    opt = optim.sgd(0.5, momentum=0.9)
    x, y = batch_for(net, 8, np.random.default_rng(3))
    state = TrainState.create(net, opt, key=jax.random.key(0))
    plain = make_train_step(net, "cross_entropy", opt, grad=grad, l2=1e-3)
    accum = make_train_step(net, "cross_entropy", opt, grad=grad, l2=1e-3, accumulate=k)
    s1, m1 = plain(state, (x, y))
    sk, mk = accum(state, (x, y))
    tol = TOL[dtype]
    chex.assert_trees_all_close(sk.params, s1.params, atol=tol, rtol=tol)
    chex.assert_trees_all_close(sk.opt_state, s1.opt_state, atol=tol, rtol=tol)
    for name in ("loss", "data_loss", "accuracy", "grad_norm"):
        np.testing.assert_allclose(mk[name], m1[name], atol=tol, rtol=tol, err_msg=name)
    # the step moved: the comparison is not of two unchanged states
    assert not np.allclose(jax.tree.leaves(sk.params)[0], jax.tree.leaves(state.params)[0])


def test_the_scanned_run_equals_one_with_k_times_larger_micro_batches(x64):
    """A whole Trainer run (3 epochs, shuffling, several steps per epoch) with accumulate=4 and
    batch 32 follows the run with batch 32 at once, to float64 rounding."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 5))
    y = rng.integers(0, 3, 96).astype(np.int32)
    net = mlp("float64")
    runs = {}
    for k in (1, 4):
        t = Trainer(net, "cross_entropy", optim.adam(1e-2), (x, y, x[:16], y[:16]), epochs=3,
                    batch_size=32, accumulate=k)
        runs[k] = t.train(jax.random.key(1))
    chex.assert_trees_all_close(runs[4][0].params, runs[1][0].params, atol=1e-12, rtol=1e-12)
    for name in ("train_loss", "val_loss", "train_accuracy"):
        np.testing.assert_allclose(runs[4][1][name], runs[1][1][name], atol=1e-12)


def test_dropout_draws_a_key_per_micro_batch_and_batchnorm_counts_each():
    """Dropout masks differ per micro-batch (one key each), and BatchNorm's running statistics
    are updated K times, micro-batch after micro-batch."""
    net = Sequential([Conv2D(4, 3), BatchNorm(), Flatten(), Dense(3, activation="softmax")],
                     input_shape=(6, 6, 1))
    opt = optim.sgd(0.1)
    x, y = batch_for(net, 8, np.random.default_rng(1))
    state = TrainState.create(net, opt, key=jax.random.key(0))
    s1, _ = make_train_step(net, "cross_entropy", opt)(state, (x, y))
    s2, _ = make_train_step(net, "cross_entropy", opt, accumulate=2)(state, (x, y))
    mean1 = jax.tree.leaves(s1.net_state)[0]
    mean2 = jax.tree.leaves(s2.net_state)[0]
    assert not np.allclose(mean1, mean2)  # two momentum updates, on two micro-batches

    drop = MLP([5, 32, 3], output="softmax", drop_rate=0.5)
    xs, ys = batch_for(drop, 8, np.random.default_rng(2))
    st = TrainState.create(drop, opt, key=jax.random.key(0))
    a, _ = make_train_step(drop, "cross_entropy", opt, accumulate=2)(st, (xs, ys))
    b, _ = make_train_step(drop, "cross_entropy", opt, accumulate=2)(st, (xs, ys))
    chex.assert_trees_all_equal(a.params, b.params)  # same key, same masks: deterministic


def test_split_is_strided_and_merge_keeps_rows_with_their_targets():
    x = jnp.arange(12).reshape(6, 2)
    y = jnp.arange(6)
    xs, ys = split((x, y), 3)
    assert xs.shape == (3, 2, 2)
    np.testing.assert_array_equal(ys, [[0, 3], [1, 4], [2, 5]])  # micro-batch j: rows j, j+K
    np.testing.assert_array_equal(merge(xs)[:, 0] // 2, merge(ys))


@pytest.mark.parametrize("k,b,match", [
    (3, 32, r"^training.accumulate: 3; expected a divisor of training.batch_size = 32 "),
    (0, 32, r"^training.accumulate: 0; expected an integer >= 1$"),
    (True, 32, r"^training.accumulate: True; expected an integer >= 1$"),
    (2.0, 32, r"^training.accumulate: 2.0; expected an integer >= 1$"),
])
def test_bad_accumulate_is_one_line(k, b, match):
    with pytest.raises(ValueError, match=match):
        check_accumulate(k, b)
    x = np.zeros((64, 5), np.float32)
    y = np.zeros(64, np.int32)
    with pytest.raises(ValueError, match=match):
        Trainer(mlp("float32"), "cross_entropy", optim.sgd(0.1), (x, y), epochs=1, batch_size=b,
                accumulate=k)
