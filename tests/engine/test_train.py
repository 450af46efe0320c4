"""Tests of the training engine (fnn.train): convergence, step/scan equivalence, batching,
manual vs autodiff trajectories, early stopping, the NaN guard, sweeps, chunked runs, progress
reporting and construction-time errors.

Data are tiny NumPy sets made here (independent of fnn.data), so every test runs in about a
second on a CPU; float64 comparisons enable x64 in the test only (the ``x64`` fixture).
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import MLP, optim
from fnn.engine import (
    EarlyStopping,
    EarlyStopState,
    HParams,
    Trainer,
    TrainState,
    make_train_step,
    members_summary,
    summarize,
)
from markers import slow_cases

# The notes' XOR net (2-2-1, ReLU hidden, sigmoid output, MSE, plain full-batch SGD) converges
# only from some initializations: from about 3 seeds in 4 (of 200 tried) a ReLU unit dies and
# the run sticks at 75% or 50% accuracy, seed 0 among them. Seed 20 (``Trainer.train(jax.random.key(20))``,
# float32) converges for every learning rate tried in [0.2, 5] (50 values, 1000 epochs); at
# lr 0.5 it first reaches 100% accuracy with loss < 0.05 at epoch ~90. configs/notes_xor.toml
# uses the same seed, learning rate and epochs.
XOR_SEED, XOR_LR, XOR_EPOCHS = 20, 0.5, 2000


# --------------------------------------------------------------------------------------------
# Data helpers (NumPy only)
# --------------------------------------------------------------------------------------------
def xor_data():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    return x, np.array([0, 1, 1, 0], np.int32)


def moons(n, *, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    n0 = n // 2
    t0, t1 = rng.uniform(0, np.pi, n0), rng.uniform(0, np.pi, n - n0)
    a = np.stack([np.cos(t0), np.sin(t0)], 1)
    b = np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)
    x = np.concatenate([a, b]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n0), np.ones(n - n0)]).astype(np.int32)
    p = rng.permutation(n)
    return x[p].astype(np.float32), y[p]


def spirals(n, *, k=3, noise=0.03, seed=0):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(k):
        m = n // k
        t = rng.uniform(0, 1, m)
        r = 0.1 + 0.9 * t
        ang = 2 * np.pi * (c / k + t)
        xs.append(np.stack([r * np.cos(ang), r * np.sin(ang)], 1))
        ys.append(np.full(m, c))
    x = np.concatenate(xs) + noise * rng.standard_normal((k * (n // k), 2))
    y = np.concatenate(ys).astype(np.int32)
    p = rng.permutation(len(y))
    return x[p].astype(np.float32), y[p]


def blobs(n, *, features=3, k=3, seed=0, dtype=np.float32):
    """Gaussian blobs: x (n, features), integer labels (n,)."""
    rng = np.random.default_rng(seed)
    centers = 2.0 * rng.standard_normal((k, features))
    y = (np.arange(n) % k).astype(np.int32)
    x = centers[y] + rng.standard_normal((n, features))
    return x.astype(dtype), y


def regression(n, *, features=3, outputs=2, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features))
    w = rng.standard_normal((features, outputs))
    y = np.tanh(x @ w) + 0.1 * rng.standard_normal((n, outputs))
    return x.astype(dtype), y.astype(dtype)


def snapshot(tree):
    """Host copy of a pytree (survives donation of the device buffers)."""
    return jax.tree.map(lambda a: np.array(a) if not jnp.issubdtype(a.dtype, jax.dtypes.prng_key)
                        else np.array(jax.random.key_data(a)), tree)


def key_data(state):
    return np.asarray(jax.random.key_data(state.key))


def epoch_batches(key, n, b):
    """Mirror of the engine's epoch shuffling: returns (next key, (num_batches, b) indices)."""
    key, k_perm = jax.random.split(key)
    perm = fnn.shuffle.permutation(k_perm, n)
    nb = math.ceil(n / b)
    pad = nb * b - n
    if pad:
        perm = jnp.concatenate([perm, perm[:pad]])
    return key, perm.reshape(nb, b)


# --------------------------------------------------------------------------------------------
# Convergence: XOR (the notes' net), two moons, spirals
# --------------------------------------------------------------------------------------------
def _xor_case():
    net = MLP(sizes=(2, 2, 1), activation="relu", output="sigmoid")
    return dict(net=net, loss="mse", optimizer=optim.sgd(XOR_LR), data=xor_data(),
                epochs=XOR_EPOCHS, batch_size=4, seed=XOR_SEED, exact=True)


def _moons_case():
    x, y = moons(400, seed=0)
    xv, yv = moons(200, seed=1)
    net = MLP(sizes=(2, 16, 16, 2), activation="relu", output="softmax")
    return dict(net=net, loss="cross_entropy", optimizer=optim.adam(1e-2), data=(x, y, xv, yv),
                epochs=60, batch_size=32, seed=0)


def _spirals_case():
    x, y = spirals(600, seed=0)
    xv, yv = spirals(300, seed=1)
    net = MLP(sizes=(2, 64, 64, 3), activation="relu", output="softmax")
    return dict(net=net, loss="cross_entropy", optimizer=optim.adam(1e-2), data=(x, y, xv, yv),
                epochs=150, batch_size=32, seed=0)


@pytest.mark.parametrize("case", slow_cases([_xor_case, _moons_case, _spirals_case],
                                             slow={_spirals_case}),
                         ids=["xor_2-2-1_sgd", "moons_adam", "spirals_adam"])
def test_converges(case):
    c = case()
    tr = Trainer(c["net"], c["loss"], c["optimizer"], c["data"], epochs=c["epochs"],
                 batch_size=c["batch_size"])
    state, hist = tr.train(jax.random.key(c["seed"]))
    loss = np.asarray(hist["train_loss"])
    assert np.all(np.isfinite(loss))
    assert loss[-1] < 0.1 * loss[0], (loss[0], loss[-1])
    assert float(hist["val_accuracy"][-1]) > 0.95, float(hist["val_accuracy"][-1])
    assert not bool(state.halted)
    assert int(state.step) == c["epochs"] * tr.batches_per_epoch
    if c.get("exact"):  # XOR: every point on the right side of 0.5, with margin
        x, y = c["data"]
        y_hat = np.asarray(c["net"].apply(state.params, jnp.asarray(x)))[:, 0]
        np.testing.assert_array_equal(y_hat > 0.5, y == 1)
        assert np.max(np.abs(y_hat - y)) < 0.1, y_hat


# --------------------------------------------------------------------------------------------
# Manual vs autodiff gradients give the same trajectory
# --------------------------------------------------------------------------------------------
GRAD_CASES = {
    # fused sigmoid + BCE delta, SGD with momentum, L1
    "relu_sigmoid_bce_momentum_l1": dict(
        net=dict(sizes=(3, 8, 1), activation="relu", output="sigmoid"),
        loss="binary_cross_entropy", opt=lambda: optim.sgd(0.1, momentum=0.9), task="binary",
        l1=1e-3),
    # fused softmax + CE delta, two hidden layers, Adam, dropout and L2
    "tanh_softmax_ce_adam_dropout_l2": dict(
        net=dict(sizes=(3, 8, 8, 3), activation="tanh", output="softmax", drop_rate=0.2),
        loss="cross_entropy", opt=lambda: optim.adam(1e-2), task="classes", l2=1e-3),
    # softmax + MSE (the Jacobian-vector product path), mixed hidden activations, RMSProp
    "sigmoid_leaky_relu_softmax_mse_rmsprop_dropout_l1_l2": dict(
        net=dict(sizes=(3, 6, 6, 3), activation=("sigmoid", "leaky_relu"), output="softmax",
                 drop_rate=0.1),
        loss="mse", opt=lambda: optim.rmsprop(1e-2), task="classes", l1=1e-4, l2=1e-3),
}


def _task_data(task, n, dtype):
    if task == "regression":
        return regression(n, dtype=dtype)
    x, y = blobs(n, dtype=dtype)
    if task == "binary":
        y = (y == 0).astype(np.int32)
    return x, y


@pytest.mark.parametrize("name", slow_cases(list(GRAD_CASES), slow={
    "relu_sigmoid_bce_momentum_l1", "sigmoid_leaky_relu_softmax_mse_rmsprop_dropout_l1_l2"}))
def test_manual_and_autodiff_trajectories_agree(name, x64):
    c = GRAD_CASES[name]
    net = MLP(**c["net"], dtype="float64")
    data = _task_data(c["task"], 40, np.float64)
    hp = HParams(l1=c.get("l1", 0.0), l2=c.get("l2", 0.0))  # dropout: the net's drop_rate
    init = TrainState.create(net, c["opt"](), key=jax.random.key(3))
    w0 = np.array(init.params[0]["w"])
    finals = {}
    for mode in ("manual", "autodiff"):
        tr = Trainer(net, c["loss"], c["opt"](), data, epochs=20, batch_size=8, grad=mode,
                     hparams=hp)
        state, hist = tr.run(jax.tree.map(jnp.copy, init))
        assert int(state.step) == 100  # 5 batches x 20 epochs
        finals[mode] = (state, hist)
    (sm, hm), (sa, ha) = finals["manual"], finals["autodiff"]
    chex.assert_trees_all_close(sm.params, sa.params, rtol=1e-9, atol=1e-12)
    chex.assert_trees_all_close(sm.opt_state, sa.opt_state, rtol=1e-9, atol=1e-12)
    chex.assert_trees_all_close(hm, ha, rtol=1e-9, atol=1e-12)
    # and they moved: the comparison is not of two untouched initializations
    assert float(np.max(np.abs(np.asarray(sm.params[0]["w"]) - w0))) > 1e-2


# --------------------------------------------------------------------------------------------
# A user's Python loop over make_train_step equals the scanned run
# --------------------------------------------------------------------------------------------
def test_python_loop_equals_scanned_run(x64):
    batch_size = 7  # 40 examples: 6 batches, the last padded with 2 repeats
    net = MLP(sizes=(3, 8, 3), activation="tanh", output="softmax", drop_rate=0.1,
              dtype="float64")
    x, y = blobs(40, dtype=np.float64)
    opt = optim.adam(1e-2)
    epochs = 3
    tr = Trainer(net, "cross_entropy", opt, (x, y), epochs=epochs, batch_size=batch_size)
    key = jax.random.key(7)
    state0 = TrainState.create(net, opt, key=key)
    chex.assert_trees_all_equal(snapshot(state0), snapshot(tr.init(key)))

    step = make_train_step(net, "cross_entropy", opt)
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    state, losses = state0, []
    for _ in range(epochs):
        k, idx = epoch_batches(state.key, len(x), batch_size)
        state = state._replace(key=k)
        for b in idx:
            state, m = step(state, (xd[b], yd[b]))
            losses.append(float(m["data_loss"]))
        state = state._replace(epoch=state.epoch + 1)

    scanned, hist = tr.train(key)
    # the same data order, dropout keys and updates. Rounding may differ in the last bits
    # between the scan body and the separately jitted step (XLA fuses them differently), so
    # the comparison is in float64 to 1e-12.
    np.testing.assert_array_equal(key_data(state), key_data(scanned))
    assert int(state.step) == int(scanned.step) and int(state.epoch) == int(scanned.epoch)
    chex.assert_trees_all_close(snapshot(state.params), snapshot(scanned.params), rtol=1e-12,
                                atol=1e-14)
    chex.assert_trees_all_close(snapshot(state.opt_state), snapshot(scanned.opt_state),
                                rtol=1e-12, atol=1e-14)
    nb = tr.batches_per_epoch
    np.testing.assert_allclose(np.asarray(hist["train_loss"]),
                               np.asarray(losses).reshape(epochs, nb).mean(1), rtol=1e-12)
    assert int(scanned.step) == epochs * nb


# --------------------------------------------------------------------------------------------
# Batch, stochastic and mini-batch gradient descent
# --------------------------------------------------------------------------------------------
def test_full_batch_is_one_exact_gradient_step_per_epoch(x64):
    net = MLP(sizes=(3, 5, 2), activation="tanh", output="identity", dtype="float64")
    x, y = regression(24, dtype=np.float64)
    lr = 0.05
    tr = Trainer(net, "mse", optim.sgd(lr), (x, y), epochs=4, batch_size=len(x), hparams=HParams(l2=1e-2))
    state = tr.init(jax.random.key(0))
    params = snapshot(state.params)
    for epoch in range(4):
        _, grads = fnn.loss_and_grad(net, "mse", params, x, y, mode="autodiff", l2=1e-2)
        params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
        state, _ = tr.run(state, epochs=1)
        assert int(state.step) == epoch + 1
        chex.assert_trees_all_close(state.params, params, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n,b", [(10, 4), (13, 5), (9, 1)], ids=["10/4", "13/5", "sgd_9/1"])
def test_every_example_is_used_every_epoch(n, b):
    """Instrumented through the augmentation hook: feature 0 of each example is its id.
    Batch size 1 (SGD) makes N updates per epoch; in general ceil(N/B)."""
    ids = np.arange(n, dtype=np.float32)
    x = np.stack([ids, np.zeros(n, np.float32)], 1)
    y = np.zeros(n, np.int32)
    seen = []

    def augment(xb, *, key):
        jax.debug.callback(lambda v: seen.append(np.asarray(v)), xb[:, 0], ordered=True)
        return xb * jnp.zeros((), xb.dtype)  # a constant input: the ids do not affect training

    net = MLP(sizes=(2, 2), output="softmax")
    epochs = 4
    tr = Trainer(net, "cross_entropy", optim.sgd(0.1), (x, y), epochs=epochs, batch_size=b,
                 augment=augment)
    state, hist = tr.train(jax.random.key(1))
    jax.effects_barrier()
    nb = math.ceil(n / b)
    assert tr.batches_per_epoch == nb
    assert int(state.step) == nb * epochs and int(state.epoch) == epochs
    assert hist["train_loss"].shape == (epochs,)
    assert len(seen) == nb * epochs
    assert all(s.shape == (b,) for s in seen)
    orders = []
    for e in range(epochs):
        used = np.concatenate(seen[e * nb:(e + 1) * nb]).astype(int)
        counts = np.bincount(used, minlength=n)
        assert counts.min() == 1, counts  # every example at least once
        assert counts.sum() - n == nb * b - n  # exactly `pad` repeats
        assert counts.max() <= 2
        orders.append(tuple(used))
    if n > 2:
        assert len(set(orders)) > 1  # reshuffled between epochs


# --------------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------------
ES_CASES = [
    # (monitor, patience, min_delta, values for epochs 1.., expected best epoch, stop epoch)
    ("val_loss", 2, 0.0, [3, 2, 1, 1.5, 0.9, 1, 1, 0.1], 5, 7),
    ("val_loss", 2, 0.2, [3, 2, 1, 1.5, 0.9, 1, 1, 0.1], 3, 5),
    ("val_loss", 1, 0.0, [3, 3, 1], 1, 2),
    ("val_accuracy", 3, 0.0, [0.5, 0.6, 0.6, 0.7, 0.65, 0.7, 0.69, 0.8], 4, 7),
    ("val_loss", 2, 0.0, [float("nan"), 1, float("nan"), float("nan"), 0], 2, 4),
    ("val_loss", 2, 0.0, [5, 4, 3, 2, 1], 5, -1),  # never stops
]


@pytest.mark.parametrize("monitor,patience,min_delta,values,best_epoch,stop_epoch", ES_CASES)
def test_early_stopping_update(monitor, patience, min_delta, values, best_epoch, stop_epoch):
    es = EarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta)
    worst = np.inf if es.mode == "min" else -np.inf
    params0 = {"w": jnp.asarray(-1.0, jnp.float32)}
    s = EarlyStopState(best=jnp.asarray(worst, jnp.float32), best_epoch=jnp.asarray(-1, jnp.int32),
                       best_params=params0, wait=jnp.asarray(0, jnp.int32),
                       stopped=jnp.asarray(False), stop_epoch=jnp.asarray(-1, jnp.int32))
    update = es.update
    for epoch, v in enumerate(values, start=1):
        params = {"w": jnp.asarray(float(epoch), jnp.float32)}  # params remember their epoch
        s, params = update(s, jnp.asarray(v, jnp.float32), jnp.asarray(epoch, jnp.int32), params)
        if bool(s.stopped):
            assert epoch == stop_epoch
            assert int(s.stop_epoch) == stop_epoch
            assert int(s.best_epoch) == best_epoch
            assert float(params["w"]) == best_epoch  # restore_best: the best epoch's params
            assert float(s.best) == np.float32(values[best_epoch - 1])
            break
        assert float(params["w"]) == epoch  # not stopped: the params go on
    else:
        assert stop_epoch == -1
        assert int(s.best_epoch) == best_epoch and int(s.stop_epoch) == -1


def test_early_stopping_without_restore_keeps_last_params():
    es = EarlyStopping(patience=1, restore_best=False)
    s = EarlyStopState(jnp.asarray(1.0), jnp.asarray(1, jnp.int32), {"w": jnp.asarray(1.0)},
                       jnp.asarray(0, jnp.int32), jnp.asarray(False), jnp.asarray(-1, jnp.int32))
    s, params = es.update(s, jnp.asarray(2.0), jnp.asarray(2, jnp.int32), {"w": jnp.asarray(2.0)})
    assert bool(s.stopped) and int(s.stop_epoch) == 2 and float(params["w"]) == 2.0


def _line_problem(dtype=np.float64):
    """1-d linear regression: train y = 2x, validation y = x. From w = 0, full-batch GD moves w
    monotonically towards 2, so the validation loss falls until w passes 1, then rises."""
    x = np.linspace(-1, 1, 21).astype(dtype)[:, None]
    return x, 2 * x, x, x.copy()


def _line_best_epoch(lr, x):
    # w_t = 2 − 2 (1 − 2 lr E[x²])^t; the best epoch is the t closest to w = 1.
    s = float(np.mean(x ** 2))
    t = np.arange(1, 200)
    return int(t[np.argmin(np.abs(2 - 2 * (1 - 2 * lr * s) ** t - 1))])


def _line_state(net, opt, es, *, members=None):
    params = (dict(w=jnp.zeros((1, 1), jnp.float64), b=jnp.zeros((1,), jnp.float64)),)
    state = TrainState.create(net, opt, key=jax.random.key(0), params=params, early_stopping=es)
    if members:
        state = jax.tree.map(lambda a: jnp.stack([a] * members), state)
    return state


def test_early_stopping_end_to_end(x64):
    net = MLP(sizes=(1, 1), output="identity", dtype="float64")
    data = _line_problem()
    lr, patience, epochs = 0.1, 4, 30
    es = EarlyStopping(monitor="val_loss", patience=patience)
    tr = Trainer(net, "mse", optim.sgd(lr), data, epochs=epochs, batch_size=21, early_stopping=es)
    best = _line_best_epoch(lr, data[0])
    stop = best + patience
    assert 3 < best < epochs - patience - 5  # the crafted curve: falls, then rises

    state, h1 = tr.run(_line_state(net, tr.optimizer, es), epochs=stop)
    at_stop = snapshot(state)
    assert bool(state.early.stopped)
    assert int(state.early.best_epoch) == best and int(state.early.stop_epoch) == stop
    val = np.asarray(h1["val_loss"])
    assert np.argmin(val) + 1 == best and val[-1] > val[best - 1]
    # the best params are restored: w after `best` exact gradient steps, b stays 0
    s = float(np.mean(data[0] ** 2))
    w_best = 2 - 2 * (1 - 2 * lr * s) ** best
    np.testing.assert_allclose(np.asarray(state.params[0]["w"]), [[w_best]], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(state.params[0]["b"]), [0.0], atol=1e-14)
    chex.assert_trees_all_equal(state.params, state.early.best_params)

    # nothing changes after the stop: the later epochs are skipped
    state, h2 = tr.run(state, epochs=epochs - stop)
    chex.assert_trees_all_equal(snapshot(state.params), at_stop.params)
    chex.assert_trees_all_equal(snapshot(state.opt_state), at_stop.opt_state)
    chex.assert_trees_all_equal(snapshot(state.early), at_stop.early)
    assert int(state.step) == stop and int(state.epoch) == epochs
    assert not np.asarray(h2["trained"]).any()
    assert np.isnan(np.asarray(h2["val_loss"])).all()

    hist = {k: np.concatenate([h1[k], h2[k]]) for k in h1}
    np.testing.assert_array_equal(hist["trained"], np.arange(1, epochs + 1) <= stop)
    summary = summarize(state, hist)
    assert summary["stopped_early"] and summary["stop_epoch"] == stop
    assert summary["best_epoch"] == best and summary["epochs_trained"] == stop
    assert summary["steps"] == stop and summary["final_val_loss"] == val[-1]


def test_early_stopping_members_stop_at_different_epochs(x64):
    net = MLP(sizes=(1, 1), output="identity", dtype="float64")
    data = _line_problem()
    es = EarlyStopping(monitor="val_loss", patience=3)
    lrs = np.array([0.1, 0.04])
    tr = Trainer(net, "mse", lambda hp: optim.sgd(hp.learning_rate), data, epochs=60,
                 batch_size=21, early_stopping=es)
    opt = optim.sgd(0.1)  # the same state structure as the factory's
    states, hist = tr.run(_line_state(net, opt, es, members=2), {"learning_rate": lrs},
                          batched=True)
    stops = [int(s) for s in states.early.stop_epoch]
    bests = [_line_best_epoch(lr, data[0]) for lr in lrs]
    assert stops == [b + 3 for b in bests] and stops[0] != stops[1]
    assert [int(b) for b in states.early.best_epoch] == bests
    trained = np.asarray(hist["trained"])
    for m in range(2):
        np.testing.assert_array_equal(trained[m], np.arange(1, 61) <= stops[m])
        single, _ = tr.run(_line_state(net, opt, es), {"learning_rate": lrs[m]})
        assert int(single.early.stop_epoch) == stops[m]
        # atol: a bias that is 0 up to rounding (~6e-17) may round differently under vmap
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[m], states.params), single.params,
                                    rtol=1e-12, atol=1e-15)
    assert [m["stop_epoch"] for m in members_summary(states, hist)] == stops


# --------------------------------------------------------------------------------------------
# NaN guard
# --------------------------------------------------------------------------------------------
def test_nan_guard_python_loop():
    net = MLP(sizes=(3, 8, 1), activation="tanh", output="sigmoid")
    opt = optim.adam(1e-2)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((100, 8, 3)).astype(np.float32)
    ys = (xs[..., 0] > 0).astype(np.int32)
    xs[50, 3, 1] = np.inf  # step 51 of 100 (index 50)
    step = make_train_step(net, "binary_cross_entropy", opt)
    state = TrainState.create(net, opt, key=jax.random.key(0))
    finite = []
    for i in range(100):
        if i == 50:
            after_50 = snapshot(state)
        state, m = step(state, (jnp.asarray(xs[i]), jnp.asarray(ys[i])))
        finite.append(bool(m["finite"]))
    assert finite == [True] * 50 + [False] + [True] * 49  # later batches are fine, but skipped
    assert bool(state.halted) and int(state.halted_step) == 50
    assert int(state.step) == 50
    chex.assert_trees_all_equal(snapshot(state.params), after_50.params)
    chex.assert_trees_all_equal(snapshot(state.opt_state), after_50.opt_state)


def _inf_lr_run(nan_guard):
    """SGD whose learning rate becomes inf at update 50 (zero-based): the gradient is finite,
    the new parameters are not. 10 epochs of 10 steps, run as 5 + 5 epochs of one program."""
    net = MLP(sizes=(3, 8, 1), activation="tanh", output="sigmoid")
    x, y = blobs(10)
    y = (y == 0).astype(np.int32)
    sched = lambda count: jnp.where(count >= 50, jnp.inf, 0.1).astype(jnp.float32)
    opt = optim.sgd(sched)
    tr = Trainer(net, "binary_cross_entropy", opt, (x, y), epochs=10, batch_size=1,
                 nan_guard=nan_guard)
    state, h1 = tr.run(TrainState.create(net, opt, key=jax.random.key(0)), epochs=5)
    after_50 = snapshot(state)  # 5 epochs x 10 steps, all good
    assert int(state.step) == 50 and not bool(state.halted)
    state, h2 = tr.run(state, epochs=5)  # the same compiled program, continued
    hist = {k: np.concatenate([h1[k], h2[k]]) for k in h1}
    return state, hist, after_50


def test_nan_guard_revert_rolls_back_a_non_finite_update():
    state, hist, after_50 = _inf_lr_run("revert")
    assert bool(state.halted) and int(state.halted_step) == 50 and int(state.step) == 50
    chex.assert_trees_all_equal(snapshot(state.params), after_50.params)
    chex.assert_trees_all_equal(snapshot(state.opt_state), after_50.opt_state)
    np.testing.assert_array_equal(hist["trained"], [True] * 6 + [False] * 4)
    summary = summarize(state, hist)
    assert summary["halted"] and summary["halted_step"] == 50 and summary["epochs_trained"] == 6
    assert summary["params_finite"]


def test_nan_guard_halt_stops_on_a_non_finite_update():
    """The default guard halts at the bad update without rolling it back (that would keep the
    old state alive and cost the in-place update); the summary says the parameters are bad."""
    state, hist, after_50 = _inf_lr_run("halt")
    assert bool(state.halted) and int(state.halted_step) == 50 and int(state.step) == 51
    assert not all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(state.params))
    np.testing.assert_array_equal(hist["trained"], [True] * 6 + [False] * 4)
    summary = summarize(state, hist)
    assert summary["halted"] and summary["halted_step"] == 50 and not summary["params_finite"]


def test_nan_guard_off_never_halts():
    state, hist, _ = _inf_lr_run("off")
    assert not bool(state.halted) and int(state.step) == 100
    np.testing.assert_array_equal(hist["trained"], [True] * 10)
    assert np.isnan(hist["train_loss"][-1])
    assert not summarize(state, hist)["params_finite"]


@pytest.mark.parametrize("nan_guard", slow_cases(["halt", "revert", "off"], slow={"halt", "off"}))
def test_nan_guard_modes_agree_on_good_steps(nan_guard):
    """On a finite run every guard trains the same parameters, bitwise."""
    net = MLP(sizes=(3, 8, 3), activation="relu", output="softmax")
    data = blobs(48)
    opt = optim.adam(1e-2)
    runs = {}
    for g in ("halt", nan_guard):
        tr = Trainer(net, "cross_entropy", opt, data, epochs=3, batch_size=16, nan_guard=g)
        runs[g], _ = tr.train(jax.random.key(1))
    chex.assert_trees_all_equal(snapshot(runs[nan_guard].params), snapshot(runs["halt"].params))
    assert int(runs[nan_guard].step) == 9 and not bool(runs[nan_guard].halted)


@pytest.mark.parametrize("bad", ["skip", None, True, "HALT"])
def test_nan_guard_rejects_unknown_modes(bad):
    net = MLP(sizes=(3, 8, 3), activation="relu", output="softmax")
    with pytest.raises(ValueError, match=r"training.nan_guard: .*expected one of \('halt', 'revert', 'off'\)"):
        Trainer(net, "cross_entropy", optim.sgd(0.1), blobs(8), epochs=1, batch_size=4,
                nan_guard=bad)
    with pytest.raises(ValueError, match="training.nan_guard"):
        make_train_step(net, "cross_entropy", optim.sgd(0.1), nan_guard=bad)


# --------------------------------------------------------------------------------------------
# Sweeps: vmap over seeds and traced hyperparameters
# --------------------------------------------------------------------------------------------
def test_sweep_equals_members_trained_one_by_one(x64):
    # drop_rate > 0: the MLP has Dropout layers, whose rate the traced drop_rate sets per member
    net = MLP(sizes=(3, 16, 16, 3), activation="relu", output="softmax", drop_rate=0.1,
              dtype="float64")
    data = blobs(64, dtype=np.float64)
    factory = lambda hp: optim.adam(hp.learning_rate)
    kw = dict(epochs=4, batch_size=16, traced=("learning_rate", "l2", "drop_rate"))
    seeds = np.array([0, 1, 2, 3])
    hps = {"learning_rate": np.array([1e-3, 3e-3, 1e-2, 3e-2]),
           "l2": np.array([0.0, 1e-3, 1e-2, 1e-4]),
           "drop_rate": np.array([0.0, 0.1, 0.2, 0.3])}
    sweep = Trainer(net, "cross_entropy", factory, data, **kw)
    states, hist = sweep.sweep(jax.vmap(jax.random.key)(jnp.asarray(seeds)), hps)
    assert hist["train_loss"].shape == (4, 4)

    single = Trainer(net, "cross_entropy", factory, data, **kw)
    for m, seed in enumerate(seeds):
        one, h = single.train(jax.random.key(int(seed)), {k: float(v[m]) for k, v in hps.items()})
        member = jax.tree.map(lambda a: a[m], states)
        chex.assert_trees_all_close(member.params, one.params, rtol=1e-9, atol=1e-12)
        chex.assert_trees_all_close(member.opt_state, one.opt_state, rtol=1e-9, atol=1e-12)
        chex.assert_trees_all_close({k: v[m] for k, v in hist.items()}, h, rtol=1e-9, atol=1e-12)
    assert single.trace_count == 1  # four hyperparameter settings, one compilation

    # a second sweep with other values (and other seeds) does not recompile ...
    keys2 = jax.vmap(jax.random.key)(jnp.asarray(seeds + 10))
    hps2 = {k: v[::-1] * 0.5 for k, v in hps.items()}
    _, hist2 = sweep.sweep(keys2, hps2)
    assert sweep.trace_count == 1
    assert not np.allclose(hist2["train_loss"], hist["train_loss"])


def test_default_hparams_traced_and_zero_ones_compiled_out():
    net = MLP(sizes=(3, 4, 3), output="softmax", drop_rate=0.25)
    tr = Trainer(net, "cross_entropy", lambda hp: optim.sgd(hp.learning_rate), blobs(16),
                 epochs=1, batch_size=8, hparams=HParams(learning_rate=0.1, l2=1e-3))
    assert tr.traced == ("learning_rate", "l2", "drop_rate")
    assert tr.hparams.drop_rate == 0.25  # None: the network's own rate
    tr = Trainer(net.replace(drop_rate=0.0), "cross_entropy", optim.sgd(0.1), blobs(16),
                 epochs=1, batch_size=8)
    assert tr.traced == ("learning_rate",)
    with pytest.raises(ValueError, match="drop_rate"):
        tr.train(jax.random.key(0), {"drop_rate": 0.5})


# --------------------------------------------------------------------------------------------
# Chunked runs
# --------------------------------------------------------------------------------------------
def test_chunked_run_equals_unchunked_bitwise():
    net = MLP(sizes=(3, 8, 3), activation="relu", output="softmax", drop_rate=0.1)
    x, y = blobs(30)
    xv, yv = blobs(12, seed=1)
    tr = Trainer(net, "cross_entropy", optim.adam(1e-2), (x, y, xv, yv), epochs=8, batch_size=7,
                 early_stopping=EarlyStopping(patience=50))
    key = jax.random.key(4)
    whole, hist = tr.train(key)
    a, h1 = tr.run(tr.init(key), epochs=4)
    b, h2 = tr.run(a, epochs=4)  # the same compiled program: the carry alone makes the difference
    chex.assert_trees_all_equal(snapshot(whole), snapshot(b))
    chex.assert_trees_all_equal(hist, jax.tree.map(lambda u, v: jnp.concatenate([u, v]), h1, h2))
    assert a.params[0]["w"].is_deleted()  # run() donated its input state


# --------------------------------------------------------------------------------------------
# Progress reporting
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("members", [None, 3])
def test_progress_called_once_per_report(members):
    calls = []
    net = MLP(sizes=(3, 4, 3), output="softmax")
    tr = Trainer(net, "cross_entropy", lambda hp: optim.sgd(hp.learning_rate), blobs(16),
                 epochs=23, batch_size=8, progress=lambda e, m: calls.append((int(e), m)),
                 progress_updates=5)
    if members is None:
        tr.train(jax.random.key(0))
    else:
        tr.sweep(jax.vmap(jax.random.key)(jnp.arange(members)),
                 {"learning_rate": np.linspace(0.01, 0.1, members)})
    jax.effects_barrier()
    # every 23 // 5 = 4 epochs and at the end; not once per member, not once per epoch
    assert [e for e, _ in calls] == [4, 8, 12, 16, 20, 23]
    for _, m in calls:
        assert set(m) == set(tr.metric_names)
        assert all(np.shape(v) == () for v in m.values())


def test_no_progress_no_callback(monkeypatch):
    """progress=None puts no host callback in the program (spied at trace time)."""
    staged = []
    real = jax.debug.callback

    def spy(fn, *args, **kwargs):
        staged.append(fn)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(jax.debug, "callback", spy)
    net = MLP(sizes=(3, 4, 3), output="softmax")
    args = (net, "cross_entropy", optim.sgd(0.1), blobs(16))
    Trainer(*args, epochs=3, batch_size=8).train(jax.random.key(0))
    assert staged == []
    calls = []
    Trainer(*args, epochs=3, batch_size=8, progress=lambda e, m: calls.append(int(e)),
            progress_updates=3).train(jax.random.key(0))
    jax.effects_barrier()
    assert len(staged) >= 1 and calls == [1, 2, 3]


# --------------------------------------------------------------------------------------------
# Errors: one-line ValueErrors before any compilation
# --------------------------------------------------------------------------------------------
def _trainer(**over):
    x, y = blobs(10)
    kw = dict(net=MLP(sizes=(3, 4, 3), output="softmax"), loss="cross_entropy",
              optimizer=optim.sgd(0.1), data=(x, y), epochs=2, batch_size=5)
    kw.update(over)
    return Trainer(kw.pop("net"), kw.pop("loss"), kw.pop("optimizer"), kw.pop("data"), **kw)


def _nan_x():
    x, y = blobs(10)
    x[3, 1] = np.nan
    return x, y


def _inf_val():
    x, y = blobs(10)
    xv = x.copy()
    xv[0, 0] = np.inf
    return x, y, xv, y


ERROR_CASES = {
    "batch_too_big": (lambda: _trainer(batch_size=11), r"training\.batch_size: 11; expected 1 <= batch_size <= 10"),
    "batch_zero": (lambda: _trainer(batch_size=0), r"training\.batch_size: 0"),
    "batch_float": (lambda: _trainer(batch_size=2.0), r"training\.batch_size: 2\.0"),
    "batch_bool": (lambda: _trainer(batch_size=True), r"training\.batch_size"),
    "epochs_zero": (lambda: _trainer(epochs=0), r"training\.epochs: 0; expected an integer >= 1"),
    "epochs_negative": (lambda: _trainer(epochs=-3), r"training\.epochs: -3"),
    "epochs_float": (lambda: _trainer(epochs=2.5), r"training\.epochs: 2\.5"),
    "width_mismatch": (lambda: _trainer(net=MLP(sizes=(4, 4, 3), output="softmax")),
                       r"train split: x has 3 features; the network takes 4 \(its input_shape is \(4,\)\)"),
    "val_width_mismatch": (lambda: _trainer(data=blobs(10) + blobs(5, features=2)),
                           r"validation split: x has 2 features"),
    "target_count": (lambda: _trainer(data=(blobs(10)[0], blobs(9)[1])), r"9 targets for 10 examples"),
    "nan_train": (lambda: _trainer(data=_nan_x()), r"train split: 1 non-finite feature value\(s\), first at index \(3, 1\)"),
    "inf_val": (lambda: _trainer(data=_inf_val()), r"validation split: 1 non-finite"),
    "label_range": (lambda: _trainer(net=MLP(sizes=(3, 4, 2), output="softmax")), r"labels: value 2 out of range"),
    "monitor": (lambda: EarlyStopping(monitor="loss"), r"early_stopping\.monitor: 'loss'"),
    "patience_zero": (lambda: EarlyStopping(patience=0), r"early_stopping\.patience: 0"),
    "patience_float": (lambda: EarlyStopping(patience=1.5), r"early_stopping\.patience: 1\.5"),
    "min_delta": (lambda: EarlyStopping(min_delta=-0.1), r"early_stopping\.min_delta: -0\.1"),
    "monitor_accuracy_regression": (
        lambda: _trainer(net=MLP(sizes=(3, 2)), loss="mse", data=regression(10),
                         early_stopping=EarlyStopping(monitor="val_accuracy")),
        r"early_stopping\.monitor: 'val_accuracy' needs a classification task"),
    "traced_unknown": (lambda: _trainer(traced=("learning_rate", "lr")), r"traced: \['lr'\]"),
    "hparams_unknown": (lambda: _trainer().train(jax.random.key(0), {"lr": 0.1}),
                        r"hparams: unknown \['lr'\]"),
    "hparams_not_traced": (lambda: _trainer().train(jax.random.key(0), {"l2": 0.1}),
                           r"hparams\.l2: 0\.1 differs from the compiled value 0\.0"),
    "grad_mode": (lambda: _trainer(grad="numeric"), r"mode: 'numeric'"),
    "data_tuple": (lambda: _trainer(data=blobs(10)[:1]), r"data: a tuple of 1 arrays"),
    "loss_pairing": (lambda: _trainer(loss="binary_cross_entropy"), r"requires a 'sigmoid' output"),
}


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_errors(name):
    build, message = ERROR_CASES[name]
    with pytest.raises(ValueError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("chunk", [1, 7, 50, 64, 4096])
def test_evaluate_in_chunks_equals_one_pass(x64, chunk):
    """Trainer.evaluate combines per-chunk means weighted by rows: the same loss and accuracy
    as one pass over all rows (float64: to rounding)."""
    net = MLP(sizes=(3, 8, 3), activation="tanh", output="softmax", dtype="float64")
    x, y = blobs(50, dtype=np.float64)
    tr = Trainer(net, "cross_entropy", optim.sgd(0.1), (x, y), epochs=1, batch_size=10)
    params = net.init(jax.random.key(0))
    whole = tr.evaluate_fn(params, jnp.asarray(x), jnp.asarray(y))
    got = tr.evaluate(params, x, y, chunk=chunk)
    assert set(got) == {"loss", "accuracy"}
    np.testing.assert_allclose(got["loss"], float(whole["loss"]), rtol=1e-12)
    np.testing.assert_allclose(got["accuracy"], float(whole["accuracy"]), rtol=1e-12)


@pytest.mark.parametrize("chunk", [0, -3, 2.5, True])
def test_evaluate_rejects_bad_chunks(chunk):
    net = MLP(sizes=(3, 8, 3), activation="tanh", output="softmax")
    x, y = blobs(20)
    tr = Trainer(net, "cross_entropy", optim.sgd(0.1), (x, y), epochs=1, batch_size=10)
    with pytest.raises(ValueError, match=r"^chunk: "):
        tr.evaluate(net.init(jax.random.key(0)), x, y, chunk=chunk)


@pytest.mark.parametrize("rate,traced", [(0.2, ()), (0.0, ("drop_rate",))])
def test_a_drop_rate_for_a_network_without_dropout_is_refused(rate, traced):
    """An MLP with drop_rate 0 has no Dropout layers: a rate for it (given, or swept) would be
    ignored, so it is one line before anything compiles."""
    net = MLP(sizes=(3, 4, 3), output="softmax")
    with pytest.raises(ValueError, match=r"drop_rate: .*has no Dropout layer for it to set"):
        Trainer(net, "cross_entropy", optim.sgd(0.1), blobs(16), epochs=1, batch_size=4,
                hparams=HParams(drop_rate=rate), traced=("learning_rate",) + traced)
    with pytest.raises(ValueError, match=r"drop_rate: 0\.2; .*has no Dropout layer"):
        make_train_step(net, "cross_entropy", optim.sgd(0.1), drop_rate=0.2)
    # with Dropout layers the same rate is taken
    Trainer(net.replace(drop_rate=0.1), "cross_entropy", optim.sgd(0.1), blobs(16), epochs=1,
            batch_size=4, hparams=HParams(drop_rate=rate), traced=("learning_rate",) + traced)
