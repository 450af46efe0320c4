"""Training diagnostics with one row per block (:mod:`fnn.diagnostics`): the rows follow
``Network.unrolled`` (a Repeat's copies consecutive, named like gradcheck's leaves), each copy's
gradient / update / weight norm is its own slice's, computed independently here with
``jax.grad`` and ``[j]``; a repeated layer with an activation has per-copy health (the trace's),
blocks without one NaN; MLP / CNN rows are unchanged; the plots name the rows; and the adder
config through the CLI writes its diagnostics plots.
"""
from __future__ import annotations

import csv
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from markers import slow_cases

import fnn
from fnn import optim
from fnn.analysis import diagnostics as diag
from fnn.analysis.gradcheck import _leaf_paths
from fnn.engine import Trainer, TrainState, make_train_step
from fnn.layers import (LSTM, BatchNorm, Conv2D, Dense, Dropout, Embedding, Flatten, LayerNorm,
                        MaxPool2D, PositionalEmbedding, Repeat, Residual, TransformerBlock)

V, T = 11, 6


def _gpt(n, dtype="float32"):
    return fnn.Sequential([Embedding(V, 8), PositionalEmbedding(T), Repeat(TransformerBlock(2), n),
                           LayerNorm(), Dense(V, activation="softmax")], input_shape=(T,),
                          dtype=dtype)


def _lstm(dtype="float32"):
    return fnn.Sequential([Embedding(V, 4), LSTM(6), Dropout(0.1), Dense(V, activation="softmax")],
                          input_shape=(T,), dtype=dtype)


def _dense_stack(n, dtype="float32"):
    return fnn.Sequential([Dense(4, activation="tanh"), Repeat(Dense(4, activation="relu"), n),
                           Dense(3, activation="softmax")], input_shape=(5,), dtype=dtype)


def _mlp(dtype="float32"):
    return fnn.MLP(sizes=(5, 6, 4, 3), activation="relu", output="softmax", drop_rate=0.1,
                   dtype=dtype)


def _cnn(dtype="float32"):
    # pool before BatchNorm: a BatchNorm of ReLU zeros would tie max-pool windows, where the
    # manual backward and jax.grad may pick different maxima (see fnn.gradcheck)
    return fnn.Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), BatchNorm(),
                           Residual([Conv2D(4, 3, padding="same", activation="relu")]), Flatten(),
                           Dense(3, activation="softmax")], input_shape=(6, 6, 1), dtype=dtype)


_E, _P, _B, _L, _D = "Embedding", "PositionalEmbedding", "TransformerBlock", "LayerNorm", "Dense"
# name -> (builder of a network in a dtype, its rows as (layer, block, kind))
CASES = {
    "gpt3": (lambda d: _gpt(3, d), [(0, None, _E), (1, None, _P), (2, 0, _B), (2, 1, _B),
                                    (2, 2, _B), (3, None, _L), (4, None, _D)]),
    "gpt1": (lambda d: _gpt(1, d), [(0, None, _E), (1, None, _P), (2, 0, _B), (3, None, _L),
                                    (4, None, _D)]),
    "lstm": (_lstm, [(0, None, _E), (1, None, "LSTM"), (3, None, _D)]),
    "dense_stack": (lambda d: _dense_stack(4, d), [(0, None, _D)] + [(1, j, _D) for j in range(4)]
                    + [(2, None, _D)]),
    "mlp": (_mlp, [(0, None, _D), (2, None, _D), (4, None, _D)]),
    "cnn": (_cnn, [(0, None, "Conv2D"), (2, None, "BatchNorm"), (3, None, "Residual"),
                   (5, None, _D)]),
}


def _batch(net, n=8, seed=0):
    rng = np.random.default_rng(seed)
    if net.integer_inputs:  # next-token targets of random token rows
        x = rng.integers(0, V, (n, T)).astype(np.int32)
        return x, np.roll(x, -1, axis=1)
    x = rng.normal(size=(n, *net.input_shape)).astype(net.dtype)
    return x, rng.integers(0, 3, (n,)).astype(np.int32)


def _weights(tree):
    """The non-bias leaves, found here by name (not by the module under test)."""
    return [a for path, a in jax.tree_util.tree_leaves_with_path(tree)
            if not (isinstance(path[-1], jax.tree_util.DictKey) and path[-1].key in ("b", "bias"))]


def _copy_norms(tree, rows):
    """‖W‖_F of each row from the top-level entries: copy j sliced as every leaf's [j]."""
    out = []
    for layer, block, _ in rows:
        entry = tree[layer] if block is None else jax.tree.map(lambda a: a[block], tree[layer])
        out.append(math.sqrt(sum(float(np.sum(np.square(np.asarray(a, np.float64))))
                                 for a in _weights(entry))))
    return out


@pytest.mark.parametrize("name", CASES)
def test_rows_follow_the_unrolled_chain_and_gradchecks_names(name):
    make, want = CASES[name]
    net = make("float32")
    got = diag.rows(net)
    assert [(r.layer, r.block, r.kind) for r in got] == want
    params = net.init(jax.random.key(0))
    _, unrolled, blocks = net.unrolled(params)
    assert [r.entry for r in got] == [k for k, p in enumerate(unrolled) if jax.tree.leaves(p)]
    heads = {p.split(".")[0] for p in _leaf_paths(unrolled, blocks)}
    assert {r.name for r in got} == heads  # layer2[0], ..., as gradcheck names the leaves
    if all(b is None for _, b, _ in want):  # nothing repeated: the rows are param_layers'
        assert [(r.layer, r.kind) for r in got] == list(net.param_layers())


@pytest.mark.parametrize("name", slow_cases(list(CASES), slow={"gpt3", "cnn"}))
def test_step_norms_are_each_copys_own(x64, name):
    make, want = CASES[name]
    net = make("float64")
    x, y = _batch(net)
    lr = 0.05
    opt = optim.sgd(learning_rate=lr)
    step = make_train_step(net, "cross_entropy", opt, diagnostics=True)
    state = TrainState.create(net, opt, key=jax.random.key(1))
    for _ in range(2):  # a few steps: the last one's statistics are checked
        state, _ = step(state, (x, y))
    before = state.params
    state, metrics = step(state, (x, y))
    assert set(diag.history_keys(len(want), diag.STEP_STATS)) <= set(metrics)
    assert f"grad_norm/layer{len(want) + 1}" not in metrics
    if not net.uses_dropout(None):  # the step's gradient by jax.grad, sliced per copy here
        _, grads = fnn.loss_and_grad(net, "cross_entropy", before, x, y, mode="autodiff")
    else:  # dropout draws the step's own masks: plain SGD's update gives its gradient back
        grads = jax.tree.map(lambda a, b: (a - b) / lr, before, state.params)
    w = _copy_norms(before, want)
    for l, (g, wn) in enumerate(zip(_copy_norms(grads, want), w), start=1):
        assert float(metrics[f"grad_norm/layer{l}"]) == pytest.approx(g, rel=1e-8), l
        assert float(metrics[f"update_ratio/layer{l}"]) == pytest.approx(lr * g / wn, rel=1e-8)


@pytest.mark.parametrize("name", slow_cases(["gpt3", "lstm", "dense_stack", "cnn"], slow={"gpt3"}))
def test_a_trainer_with_diagnostics_reports_every_row(name):
    make, want = CASES[name]
    net = make("float32")
    x, y = _batch(net, 32)
    xv, yv = _batch(net, 8, seed=1)
    t = Trainer(net, "cross_entropy", optim.adam(1e-2), (x, y, xv, yv), epochs=2, batch_size=16,
                diagnostics=True)
    state, hist = t.train(jax.random.key(0))
    keys = diag.history_keys(len(want))
    assert t.metric_names[-len(keys):] == keys
    assert not [k for k in hist if k.endswith(f"/layer{len(want) + 1}")]
    for l, wn in enumerate(_copy_norms(state.params, want), start=1):
        for stat in diag.STEP_STATS:
            v = np.asarray(hist[f"{stat}/layer{l}"])
            assert v.shape == (2,) and np.all(np.isfinite(v) & (v > 0)), (stat, l)
        # the last epoch's weight norms are those of the trained parameters, copy by copy
        assert float(hist[f"weight_norm/layer{l}"][-1]) == pytest.approx(wn, rel=1e-5), l
    copies = [l for l, (_, b, _) in enumerate(want, start=1) if b is not None]
    if name == "gpt3":  # three rows for the Repeat, each its own copy's (they differ)
        norms = [float(hist[f"grad_norm/layer{l}"][0]) for l in copies]
        assert len(copies) == 3 and len(set(norms)) == 3
    if name in ("gpt3", "lstm"):  # no row with an element-wise activation of its own
        for l in range(1, len(want) + 1):
            assert np.all(np.isnan(np.asarray(hist[f"slope/layer{l}"])))


def test_a_repeated_layer_with_an_activation_has_per_copy_health():
    net = _dense_stack(3)
    params = net.init(jax.random.key(3))
    x, y = _batch(net, 16, seed=3)
    stats = diag.epoch_stats(net, params, jnp.asarray(x))
    trace = fnn.backprop_trace(net, "cross_entropy", params, x, y).rows()
    assert [(r["layer"], r["block"]) for r in trace] == [(0, None), (1, 0), (1, 1), (1, 2),
                                                          (2, None)]
    for l, r in enumerate(trace, start=1):
        for stat in ("slope", "saturated", "dead"):
            v = float(stats[f"{stat}/layer{l}"])
            if r[stat] is None:  # the softmax output
                assert math.isnan(v)
            else:  # the scan's stacked caches, copy j: the trace's unrolled layer j
                assert v == pytest.approx(r[stat], rel=1e-6, abs=1e-7), (stat, l)
    gpt = _gpt(2)
    stats = diag.epoch_stats(gpt, gpt.init(jax.random.key(0)), _batch(gpt)[0])
    assert all(math.isnan(float(stats[f"dead/layer{l}"])) for l in range(1, 6))


def test_the_plots_name_the_rows(tmp_path):
    from fnn.experiment import diagnostic_plots as dp

    names = dp.layer_names([_gpt(2)])
    assert names == {1: "layer0 Embedding", 2: "layer1 PositionalEmbedding",
                     3: "layer2[0] TransformerBlock", 4: "layer2[1] TransformerBlock",
                     5: "layer3 LayerNorm", 6: "layer4 Dense"}
    both = dp.layer_names([_gpt(2), _gpt(3)])  # a sweep over depth: rows that differ unnamed
    assert both[3] == names[3] and 5 not in both and 6 not in both
    assert both[7] == "layer4 Dense"
    rng = np.random.default_rng(0)
    hist = {diag.layer_key(s, l): rng.random(3) + 0.1 for s in diag.LAYER_STATS
            for l in range(1, 7)}
    hist.update({diag.layer_key(s, l): np.full(3, np.nan) for s in ("slope", "saturated", "dead")
                 for l in range(1, 7)})
    assert dp.plot_diagnostics(tmp_path, hist, [_gpt(2)], title="gpt")
    for png in ("gradients.png", "activations.png"):
        assert (tmp_path / png).stat().st_size > 1000


@pytest.mark.slow
def test_the_adder_config_with_diagnostics_through_the_cli(tmp_path, monkeypatch, capsys):
    from fnn.cli import main

    monkeypatch.setenv("FNN_COMPILATION_CACHE", "0")
    out = tmp_path / "run"
    rc = main(["train", "configs/adder.toml", "--out", str(out), "--set", "diagnostics.enabled=true",
               "--set", "training.iterations=20", "--set", "training.eval_interval=10",
               "--set", "optimizer.schedule.warmup_steps=2", "--set", "output.progress=false"])
    assert rc == 0, capsys.readouterr().err
    for png in ("gradients.png", "activations.png"):
        assert (out / png).stat().st_size > 1000, png
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # Embedding, PositionalEmbedding, Repeat(TransformerBlock, 2): two rows, LayerNorm, Dense
    assert [k for k in rows[0] if k.startswith("grad_norm/")] == [
        f"grad_norm/layer{l}" for l in range(1, 7)]
    last = rows[-1]
    assert float(last["weight_norm/layer3"]) != float(last["weight_norm/layer4"])
    assert all(math.isfinite(float(last[f"grad_norm/layer{l}"])) for l in range(1, 7))
