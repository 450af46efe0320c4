"""One analysis row per block: a network's ``unrolled`` form (a Repeat's copies as layers of their
own) is the same function of the same numbers, and gradcheck and the backprop trace show it.

Float64 throughout (the ``x64`` fixture); tolerances are rounding, as the unrolled chain and the
Repeat's scan add the same terms in the same order but in different programs.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.layers import (LSTM, Dense, Embedding, LayerNorm, PositionalEmbedding, Repeat,
                        TransformerBlock)


def _gpt(n):
    return fnn.Sequential([Embedding(11, 8), PositionalEmbedding(6), Repeat(TransformerBlock(2), n),
                           LayerNorm(), Dense(11, activation="softmax")], input_shape=(6,),
                          dtype="float64")


def _dense_stack(n):
    return fnn.Sequential([Dense(4, activation="tanh"), Repeat(Dense(4, activation="tanh"), n),
                           Dense(3, activation="softmax")], input_shape=(5,), dtype="float64")


def _lstm(_):
    return fnn.Sequential([Embedding(11, 8), LSTM(6), Dense(11, activation="softmax")],
                          input_shape=(6,), dtype="float64")


# (network, copies of its Repeat, the Repeat's index; None: nothing to unroll)
# the three-block GPT runs in the full suite; the quick run keeps several copies by the Dense stack
CASES = [pytest.param(_gpt, 3, 2, marks=pytest.mark.slow), (_gpt, 1, 2), (_dense_stack, 4, 1), (_lstm, None, None)]


def _batch(net, seed=0):
    rng = np.random.default_rng(seed)
    if net.integer_inputs:
        x = rng.integers(0, 11, (4, 6)).astype(np.int32)
        y = rng.integers(0, 11, (4, 6)).astype(np.int32)
    else:
        x = rng.normal(size=(4, 5))
        y = rng.integers(0, 3, (4,)).astype(np.int32)
    return x, y


def _restack(grads, blocks, at):
    """The unrolled gradients with the copies of layer ``at`` stacked back, like the params."""
    copies = [g for g, (i, j) in zip(grads, blocks) if i == at]
    head = [g for g, (i, _) in zip(grads, blocks) if i < at]
    tail = [g for g, (i, _) in zip(grads, blocks) if i > at]
    return (*head, jax.tree.map(lambda *a: jnp.stack(a), *copies), *tail)


@pytest.mark.parametrize("make,n,at", CASES)
def test_unrolled_is_the_same_function(x64, make, n, at):
    net = make(n)
    params = net.init(jax.random.key(0))
    x, _ = _batch(net)
    u, q, blocks = net.unrolled(params)
    if at is None:
        assert u is net and q is params and all(j is None for _, j in blocks)
        return
    assert len(u.layers) == len(net.layers) - 1 + n
    assert [b for b in blocks if b[0] == at] == [(at, j) for j in range(n)]
    assert sum(a.size for a in jax.tree.leaves(q)) == sum(a.size for a in jax.tree.leaves(params))
    np.testing.assert_allclose(u.apply(q, x), net.apply(params, x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make,n,at", CASES)
def test_the_trace_has_one_row_per_block(x64, make, n, at):
    net = make(n)
    params = net.init(jax.random.key(1))
    x, y = _batch(net, 1)
    trace = fnn.backprop_trace(net, "cross_entropy", params, x, y)
    rows = trace.rows()
    copies = [r for r in rows if r["block"] is not None]
    assert len(rows) == len(net.layers) + (n - 1 if at is not None else 0)
    assert [(r["layer"], r["block"]) for r in copies] == [(at, j) for j in range(n or 0)]
    _, manual = fnn.loss_and_grad(net, "cross_entropy", params, x, y, mode="manual")
    grads = trace.grads if at is None else _restack(trace.grads, trace.blocks, at)
    chex.assert_trees_all_close(grads, manual, rtol=1e-11, atol=1e-14)
    text = str(trace)
    assert ("block" in text.splitlines()[2]) == (at is not None)  # the column only when used
    assert "Repeat" in text.splitlines()[1] or at is None  # the network as the user built it


@pytest.mark.parametrize("make,n,at", CASES)
def test_gradcheck_has_one_row_per_block(make, n, at):
    net = make(n).replace(dtype="float32")
    params = net.init(jax.random.key(2))
    x, y = _batch(net, 2)
    # finite differences at 1e-5: the LSTM's smallest leaves (|grad| ~ 2e-3) sit near the
    # central difference's rounding floor; manual vs jax.grad stays at the default 1e-8
    report = fnn.gradcheck(net, "cross_entropy", params, x, y, num_coords=4, tol_fd=1e-5)
    assert report.passed, str(report)
    paths = [leaf.path for leaf in report.leaves]
    if at is None:
        assert not any("[" in p for p in paths)
        return
    for j in range(n):
        assert any(p.startswith(f"layer{at}[{j}].") for p in paths), paths
    assert not any(p.startswith(f"layer{at}.") for p in paths)
    stacked = sum(leaf.size for leaf in jax.tree.leaves(params[at]))
    assert sum(np.prod(leaf.shape) for leaf in report.leaves
               if leaf.path.startswith(f"layer{at}[")) == stacked
