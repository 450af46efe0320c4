"""A Sequential end to end (issue 14): through the CLI (train, resume after kill -9 bitwise,
evaluate, predict, a vmapped 2-seed sweep), data parallel on 4 forced CPU devices, a user's own
network (init / apply only) through ``fnn.Trainer``, BatchNorm's running statistics in
evaluation (and not in training), and early stopping's restore-best of the BatchNorm state.

The CLI runs use a small conv net on the built-in ``shapes`` images with a BatchNorm and a
Dropout layer, so the network state and the dropout key stream are part of what must resume.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import layers as L
from fnn import optim
from fnn.engine import EarlyStopping, Trainer
from cli_helpers import finish_process as _finish
from cli_helpers import (REPO, assert_bitwise_equal, child_xla_flags, checkpoint_arrays, final_checkpoint,
                         newest_epoch, read_summary, run_cli, spawn,
                         wait_for_epoch, write_config)

EPOCHS = 12
CNN = f"""
[data]
name = "shapes"
n_samples = 240
val_fraction = 0.25

[[model.layers]]
type = "conv2d"
filters = 4
kernel_size = 3
activation = "relu"

[[model.layers]]
type = "max_pool2d"
pool_size = 2

[[model.layers]]
type = "batch_norm"

[[model.layers]]
type = "flatten"

[[model.layers]]
type = "dropout"
rate = 0.1

[optimizer]
name = "adam"
learning_rate = 0.003

[training]
epochs = {EPOCHS}
batch_size = 32

[output]
checkpoint_every = 1
keep_checkpoints = 2
progress = false
plots = false
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """(directory with cnn.toml, a compilation cache shared by this module's processes)."""
    root = tmp_path_factory.mktemp("seq-e2e")
    write_config(root / "cnn.toml", CNN)
    return root, tmp_path_factory.mktemp("jax-cache")




# ---------------------------------------------------------------------------------------------
# Through the CLI
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cnn_train_resume_after_kill_9_is_bitwise_then_evaluate_and_predict(work):
    root, cache = work
    train = ("train", "cnn.toml", "--quiet")
    _finish(root, cache, *train, "--out", "ref")
    ref = checkpoint_arrays(final_checkpoint(root / "ref" / "checkpoints"))
    assert any(k.startswith("state.net_state") for k in ref), sorted(ref)  # BatchNorm state

    ckpts = root / "killed" / "checkpoints"
    proc = spawn(train + ("--out", "killed"), cwd=root, cache_dir=cache)
    wait_for_epoch(proc, ckpts, 3)
    proc.kill()  # SIGKILL: nothing is flushed
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    killed_at = newest_epoch(ckpts)
    assert 3 <= killed_at < EPOCHS
    _finish(root, cache, *train, "--out", "killed", "--resume")
    final = checkpoint_arrays(final_checkpoint(ckpts))
    assert_bitwise_equal(final, ref, "resumed vs uninterrupted (params, BatchNorm state, history)")
    assert (root / "killed" / "metrics.csv").read_bytes() == (root / "ref" / "metrics.csv").read_bytes()
    assert read_summary(root / "killed")["epochs_trained"] == EPOCHS

    # evaluate: the trained running statistics (the in-program val metrics of the last epoch)
    rc, out, err = run_cli("evaluate", root / "ref", "--split", "val", "--json")
    assert rc == 0, err
    ev = json.loads(out)
    last = list(csv.DictReader(open(root / "ref" / "metrics.csv")))[-1]
    assert ev["accuracy"] == pytest.approx(float(last["val_accuracy"]), abs=1e-6)
    assert ev["loss"] == pytest.approx(float(last["val_loss"]), rel=1e-5)

    # predict on the validation images: the same predictions
    from fnn.experiment import build

    dataset = build.load_dataset(fnn.load_run(root / "ref").config)
    x_val, y_val = dataset.split("val")
    np.savez(root / "val.npz", x=np.asarray(x_val))
    rc, out, err = run_cli("predict", root / "ref", root / "val.npz", "--output", root / "p.csv")
    assert rc == 0, err
    rows = list(csv.DictReader(open(root / "p.csv")))
    assert len(rows) == len(y_val)
    names = [c[2:] for c in rows[0] if c.startswith("p_")]  # class names, in label order
    predicted = np.array([names.index(r["prediction"]) for r in rows])
    assert np.mean(predicted == np.asarray(y_val)) == pytest.approx(ev["accuracy"], abs=1e-6)


@pytest.mark.slow
def test_cnn_sweep_of_two_seeds_is_one_vmapped_program(work):
    root, _ = work
    short = ("--set", "training.epochs=2", "--set", "output.checkpoint_every=0", "--quiet")
    rc, _, err = run_cli("sweep", root / "cnn.toml", "--seeds", "2", "--out", root / "sweep", *short)
    assert rc == 0, err
    members = read_summary(root / "sweep")["members"]
    assert len(members) == 2
    assert members[0]["final_val_loss"] != members[1]["final_val_loss"]
    rc, _, err = run_cli("train", root / "cnn.toml", "--out", root / "solo", *short)
    assert rc == 0, err
    solo = read_summary(root / "solo")["members"][0]
    # member 0 (seed 0) of the vmapped program is the single run, to rounding
    assert members[0]["final_val_loss"] == pytest.approx(solo["final_val_loss"], rel=1e-5)


@pytest.mark.slow
def test_data_parallel_on_four_devices_equals_one_with_global_batchnorm_statistics():
    env = dict(os.environ, XLA_FLAGS=child_xla_flags(4),
               FNN_COMPILATION_CACHE="0",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "sequential_parallel_worker.py")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["devices"] == 4
    assert r["params_manual"] <= 1e-10, r
    assert r["bn_state_manual"] <= 1e-10, r  # per-device statistics would differ at ~1e-1
    assert r["bn_moved_manual"] > 1e-3, r    # the statistics did change
    assert r["sharding_manual"] == "P()", r


# ---------------------------------------------------------------------------------------------
# In-process: user networks, BatchNorm state, early stopping
# ---------------------------------------------------------------------------------------------
def _images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int32)
    return x, y


def _bn_net():
    return fnn.Sequential([L.Conv2D(4, 3, activation="relu"), L.MaxPool2D(2), L.BatchNorm(),
                           L.Flatten(), L.Dense(2, "softmax")], input_shape=(8, 8, 1))


class TwoLayer:
    """A user's network: init and apply only (no fnn layers)."""

    output = "softmax"

    def init(self, key):
        k1, k2 = jax.random.split(key)
        return {"w1": 0.3 * jax.random.normal(k1, (64, 8)), "b1": jnp.zeros(8),
                "w2": 0.3 * jax.random.normal(k2, (8, 2)), "b2": jnp.zeros(2)}

    def apply(self, params, x, *, key=None):
        h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"][None, :])
        return jax.nn.softmax(h @ params["w2"] + params["b2"][None, :])


def test_user_network_trains_with_autodiff_and_manual_is_a_one_line_error():
    x, y = _images(128)
    t = Trainer(TwoLayer(), "cross_entropy", optim.adam(0.03), (x[:96], y[:96], x[96:], y[96:]),
                epochs=15, batch_size=32, grad="autodiff")
    state, hist = t.train(jax.random.key(0))
    loss = np.asarray(hist["train_loss"])
    assert np.all(np.isfinite(loss)) and loss[-1] < 0.8 * loss[0]
    with pytest.raises(ValueError) as e:
        Trainer(TwoLayer(), "cross_entropy", optim.adam(0.03), (x, y), epochs=1, batch_size=32,
                grad="manual")
    msg = str(e.value)
    assert "\n" not in msg and "TwoLayer" in msg and "hand-written backward" in msg and "only init and apply" in msg


@pytest.mark.slow
def test_batchnorm_evaluation_uses_running_statistics_training_does_not():
    x, y = _images()
    net = _bn_net()
    t = Trainer(net, "cross_entropy", optim.adam(0.01), (x, y), epochs=3, batch_size=16)
    state, _ = t.train(jax.random.key(0))
    trained = t.evaluate(state.params, x, y, state=state.net_state)
    initial = t.evaluate(state.params, x, y)  # init_state(): mean 0, variance 1
    assert trained["loss"] != pytest.approx(initial["loss"], rel=1e-3)
    # evaluation is net.apply with the running statistics
    y_hat = net.apply(state.params, x, state=state.net_state)
    ref = float(-jnp.mean(jnp.log(y_hat[jnp.arange(len(y)), y])))
    assert trained["loss"] == pytest.approx(ref, rel=1e-5)
    # training mode normalizes with the batch's statistics: the state does not matter
    a = net.forward_state(state.params, state.net_state, x, training=True)[0]
    b = net.forward_state(state.params, net.init_state(), x, training=True)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_early_stopping_restore_best_restores_the_batchnorm_state():
    x, y = _images()
    # min_delta huge: only epoch 1 improves on +inf, so the best epoch is 1 and it stops at 3
    es = EarlyStopping(monitor="val_loss", patience=2, min_delta=1e6, restore_best=True)
    t = Trainer(_bn_net(), "cross_entropy", optim.adam(0.01), (x, y), epochs=6, batch_size=16,
                early_stopping=es)
    state = t.init(jax.random.key(0))
    state, _ = t.run(state, epochs=1)
    after_1 = jax.device_get((state.params, state.net_state))
    state, hist = t.run(state, epochs=5)
    assert int(state.early.best_epoch) == 1 and bool(state.early.stopped)
    assert int(np.sum(np.asarray(hist["trained"]))) == 2  # epochs 2 and 3 moved the statistics
    restored = jax.device_get((state.params, state.net_state))
    for a, b in zip(jax.tree.leaves(after_1), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# The analysis tools on a Sequential
# ---------------------------------------------------------------------------------------------
def _analysis_net(dtype="float64"):
    """Conv, max-pool, BatchNorm, a Residual with its own BatchNorm, dropout, dense: every kind
    of gradient leaf. (BatchNorm after the pool: a BatchNorm of ReLU zeros *before* a max-pool
    makes exact ties, where manual and jax.grad pick different subgradients.)"""
    return fnn.Sequential([L.Conv2D(3, 3, activation="relu"), L.MaxPool2D(2), L.BatchNorm(),
                           L.Residual([L.Conv2D(3, 3), L.BatchNorm(), L.Activation("tanh")]),
                           L.Flatten(), L.Dropout(0.2), L.Dense(3, "softmax")],
                          input_shape=(6, 6, 2), dtype=dtype)


def _batch(dtype):
    x = jax.random.normal(jax.random.key(1), (5, 6, 6, 2), dtype)
    return x, jnp.arange(5) % 3


@pytest.mark.slow
def test_manual_vjp_of_a_conv_net_matches_autodiff(x64):
    net = _analysis_net()
    params = net.init(jax.random.key(0))
    x, _ = _batch(jnp.float64)
    apply = fnn.manual_vjp(net)
    for key in (None, jax.random.key(3)):  # evaluation (running stats) and training mode
        def f_manual(p, xx):
            return jnp.sum(jnp.sin(apply(p, xx, key=key)))

        def f_auto(p, xx):
            return jnp.sum(jnp.sin(net.apply(p, xx, key=key)))

        np.testing.assert_array_equal(apply(params, x, key=key), net.apply(params, x, key=key))
        gm = jax.jit(jax.grad(f_manual, argnums=(0, 1)))(params, x)
        ga = jax.jit(jax.grad(f_auto, argnums=(0, 1)))(params, x)
        for a, b in zip(jax.tree.leaves(gm), jax.tree.leaves(ga)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_gradcheck_and_backprop_trace_of_a_sequential(x64):
    net = _analysis_net("float32")
    params = net.init(jax.random.key(0))
    x, y = _batch(jnp.float32)
    key = jax.random.key(2)
    report = fnn.gradcheck(net, "cross_entropy", params, x, y, key=key, l2=1e-3)
    assert report.passed, str(report)
    assert [l.path for l in report.leaves][:4] == ["layer0.b", "layer0.w", "layer2.bias",
                                                   "layer2.scale"]
    assert "layer3.1.scale" in [l.path for l in report.leaves]  # the Residual's BatchNorm

    trace = fnn.backprop_trace(net, "cross_entropy", params, x, y, key=key)
    _, grads = fnn.loss_and_grad(net, "cross_entropy", params, x, y, mode="manual", key=key)
    for a, b in zip(jax.tree.leaves(trace.grads), jax.tree.leaves(grads)):
        np.testing.assert_array_equal(a, b)  # bitwise those of manual mode
    rows = trace.rows()
    assert [r["type"] for r in rows] == ["Conv2D", "MaxPool2D", "BatchNorm", "Residual",
                                         "Flatten", "Dropout", "Dense"]
    assert rows[1]["|dW|"] is None and rows[1]["|Z|"] is None and rows[2]["|dW|"] is not None
    assert rows[5]["kept"] is not None and rows[0]["slope"] is not None
    text = str(trace)
    assert "MaxPool2D" in text and "network (6, 6, 2) -> Conv2D" in text


def test_diagnostics_of_a_sequential_are_per_layer_with_parameters():
    from fnn.analysis import diagnostics as diag

    x, y = _images()
    net = _bn_net()
    t = Trainer(net, "cross_entropy", optim.adam(0.01), (x, y), epochs=2, batch_size=16,
                diagnostics=True)
    _, hist = t.train(jax.random.key(0))
    assert [name for _, name in net.param_layers()] == ["Conv2D", "BatchNorm", "Dense"]
    for key in diag.history_keys(3):
        assert key in hist, key
    assert np.all(np.isfinite(np.asarray(hist["grad_norm/layer2"])))  # BatchNorm: its scale
    assert np.all(np.isnan(np.asarray(hist["slope/layer2"])))  # no activation of its own
    assert np.all((np.asarray(hist["dead/layer1"]) >= 0) & (np.asarray(hist["dead/layer1"]) <= 1))
