"""Training diagnostics (:mod:`fnn.diagnostics`): hand-counted health on a crafted network, the
per-step statistics, the Trainer's history keys, bitwise-unchanged training, and the
vanishing-gradients config through the CLI (sigmoid vs ReLU)."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.analysis import diagnostics as diag
from fnn import optim
from fnn.engine import EarlyStopping, HParams, Trainer, TrainState, make_train_step

# --- a crafted network: every pre-activation known by hand -------------------------------------
# x rows r0 = (1, 0), r1 = (0, 1), r2 = (1, 1).
X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
# Layer 1 (ReLU, 4 units):  Z = (x0, −x0−x1, x0+x1+0.5, −x0−x1−0.5)
#   unit 0: Z = (1, 0, 1)        -> z ≤ 0 on r1 only: 1 saturated entry, alive
#   unit 1: Z = (−1, −1, −2)     -> dead (3 entries)
#   unit 2: Z = (1.5, 1.5, 2.5)  -> active everywhere
#   unit 3: Z = (−1.5, −1.5, −2.5) -> dead (3 entries)
W1 = np.array([[1.0, -1.0, 1.0, -1.0], [0.0, -1.0, 1.0, -1.0]], np.float32)
B1 = np.array([0.0, 0.0, 0.5, -0.5], np.float32)
# Layer 2 (sigmoid or tanh, 3 units): Z = (10, 5·A1[:, 0], −10) = (10, (5, 0, 5), −10)
#   unit 0: z = 10 everywhere    -> saturated on all 3 rows: dead
#   unit 1: z = (5, 0, 5)        -> saturated on r0, r2 (|z| = 5 is past 3.64 and 1.82)
#   unit 2: z = −10 everywhere   -> dead
W2 = np.zeros((4, 3), np.float32)
W2[0, 1] = 5.0
B2 = np.array([10.0, 0.0, -10.0], np.float32)
W3 = np.ones((3, 1), np.float32)
B3 = np.zeros((1,), np.float32)
PARAMS = tuple({"w": jnp.asarray(w), "b": jnp.asarray(b)}
               for w, b in ((W1, B1), (W2, B2), (W3, B3)))


@pytest.mark.parametrize("act2", ["sigmoid", "tanh"])
def test_hand_counted_dead_and_saturated_fractions(act2):
    net = fnn.MLP(sizes=(2, 4, 3, 1), activation=("relu", act2), output="identity")
    stats = diag.epoch_stats(net, PARAMS, jnp.asarray(X))
    assert float(stats["saturated/layer1"]) == pytest.approx(7 / 12)   # 1 + 3 + 0 + 3 of 12
    assert float(stats["dead/layer1"]) == pytest.approx(2 / 4)         # units 1 and 3
    assert float(stats["slope/layer1"]) == pytest.approx(5 / 12)       # active entries
    assert float(stats["saturated/layer2"]) == pytest.approx(8 / 9)    # 3 + 2 + 3 of 9
    assert float(stats["dead/layer2"]) == pytest.approx(2 / 3)         # units 0 and 2
    assert float(stats["saturated/layer3"]) == 0.0 and float(stats["dead/layer3"]) == 0.0
    for l, w in enumerate((W1, W2, W3), start=1):
        assert float(stats[f"weight_norm/layer{l}"]) == pytest.approx(np.linalg.norm(w))
    # the trace's summary uses the same functions
    rows = fnn.backprop_trace(net, "mse", PARAMS, X, np.zeros((3, 1), np.float32)).rows()
    assert [r["dead"] for r in rows] == pytest.approx([0.5, 2 / 3, 0.0])
    assert [r["saturated"] for r in rows] == pytest.approx([7 / 12, 8 / 9, 0.0])


def test_saturation_thresholds_and_softmax():
    z = jnp.array([[-4.0, -3.0, 0.0, 3.0, 4.0]])
    sig = diag.blocked("sigmoid", z, jax.nn.sigmoid(z))          # σ' < 0.025 ⇔ |z| > 3.64
    np.testing.assert_array_equal(sig, [[True, False, False, False, True]])
    zt = jnp.array([[-2.0, -1.5, 0.0, 1.5, 2.0]])
    tanh = diag.blocked("tanh", zt, jnp.tanh(zt))                 # tanh' < 0.1 ⇔ |z| > 1.82
    np.testing.assert_array_equal(tanh, [[True, False, False, False, True]])
    zr = jnp.array([[-1.0, 0.0, 1e-6]])
    np.testing.assert_array_equal(diag.blocked("leaky_relu", zr, zr), [[True, True, False]])
    np.testing.assert_array_equal(diag.blocked("identity", zr, zr), [[False, False, False]])
    a = jax.nn.softmax(z)
    assert math.isnan(float(diag.dead_fraction("softmax", z, a)))
    assert math.isnan(float(diag.saturated_fraction("softmax", z, a)))
    with pytest.raises(ValueError, match="not element-wise"):
        diag.blocked("softmax", z, a)


def test_step_stats_of_an_sgd_step(x64):
    net = fnn.MLP(sizes=(2, 4, 3, 1), activation=("relu", "tanh"), output="identity",
                  dtype="float64")
    params = jax.tree.map(lambda a: a.astype(jnp.float64), PARAMS)
    x, y = X.astype(np.float64), np.array([[1.0], [0.0], [2.0]])
    opt = optim.sgd(learning_rate=0.1)
    step = make_train_step(net, "mse", opt, diagnostics=True)
    state = TrainState.create(net, opt, key=jax.random.key(0), params=params)
    new, metrics = step(state, (x, y))
    _, grads = fnn.loss_and_grad(net, "mse", params, x, y)
    for l, (g, p) in enumerate(zip(grads, params), start=1):
        gn = float(jnp.linalg.norm(g["w"]))
        assert float(metrics[f"grad_norm/layer{l}"]) == pytest.approx(gn, rel=1e-10)
        ratio = 0.1 * gn / float(jnp.linalg.norm(p["w"]))                   # ‖ηg‖ / ‖W‖
        assert float(metrics[f"update_ratio/layer{l}"]) == pytest.approx(ratio, rel=1e-10)
    plain = make_train_step(net, "mse", opt)
    new_plain, m_plain = plain(state, (x, y))
    chex.assert_trees_all_equal(new.params, new_plain.params)
    assert set(metrics) - set(m_plain) == set(diag.history_keys(3, diag.STEP_STATS))


def _data():
    return fnn.data.load("moons", n_samples=160, val_fraction=0.25)


def _trainer(data, diagnostics, **kw):
    net = fnn.MLP(sizes=(2, 8, 8, 2), activation=("relu", "sigmoid"), output="softmax",
                  drop_rate=kw.pop("drop_rate", 0.0))
    return Trainer(net, "cross_entropy", lambda hp: optim.adam(hp.learning_rate), data,
                   epochs=3, batch_size=32, diagnostics=diagnostics, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["single", "sweep"])
def test_enabling_diagnostics_leaves_training_bitwise_unchanged(setting, request):
    if os.environ.get("FNN_TEST_FULL_OPT") != "1":
        # Bitwise claims are about the programs users run: XLA's default optimization, not
        # the cheap compile settings tests/conftest.py uses for speed. Re-run in a child.
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"{__file__}::{request.node.name}"],
            env={**os.environ, "FNN_TEST_FULL_OPT": "1",
                 "XLA_FLAGS": os.environ.get("FNN_ORIGINAL_XLA_FLAGS", "")},
            capture_output=True, text=True,
            timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        return
    data = _data()
    kw = dict(hparams=HParams(learning_rate=1e-2, l2=1e-3), drop_rate=0.2,
              early_stopping=EarlyStopping(patience=2))
    off, on = _trainer(data, False, **kw), _trainer(data, True, **kw)
    if setting == "single":
        s0, h0 = off.train(jax.random.key(0))
        s1, h1 = on.train(jax.random.key(0))
    else:
        keys = jax.random.split(jax.random.key(1), 2)
        lrs = {"learning_rate": jnp.array([3e-3, 3e-2])}
        s0, h0 = off.sweep(keys, lrs)
        s1, h1 = on.sweep(keys, lrs)
    chex.assert_trees_all_equal(s0, s1)
    for k, v in h0.items():
        np.testing.assert_array_equal(h1[k], v)
    extra = set(h1) - set(h0)
    assert extra == set(diag.history_keys(3))
    epochs_shape = (3,) if setting == "single" else (2, 3)
    for k in extra:
        assert np.shape(h1[k]) == epochs_shape
        values = np.asarray(h1[k])
        if k.endswith("layer3") and k.split("/")[0] in ("slope", "saturated", "dead"):
            assert np.all(np.isnan(values))                       # softmax output
        else:
            assert np.all(np.isfinite(values) & (values >= 0)), k
    assert on.metric_names[-len(extra):] == diag.history_keys(3)


def _read_metrics(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_vanishing_gradients_config_through_the_cli(tmp_path, monkeypatch, capsys):
    from fnn.cli import main

    monkeypatch.setenv("FNN_COMPILATION_CACHE", "0")
    out = tmp_path / "run"
    rc = main(["train", "configs/vanishing_gradients.toml", "--out", str(out),
               "--set", "training.epochs=2", "--set", "output.progress=false"])
    assert rc == 0, capsys.readouterr().err
    for name in ("metrics.csv", "curves.png", "gradients.png", "activations.png"):
        assert (out / name).is_file(), name
    rows = _read_metrics(out / "metrics.csv")
    by_member = {}
    for r in rows:
        by_member.setdefault(r["member"], []).append(r)
    assert set(by_member) == {"model.activation=sigmoid", "model.activation=relu"}
    assert all(len(v) == 2 for v in by_member.values())
    layer1 = {m: np.array([float(r["grad_norm/layer1"]) for r in v]) for m, v in by_member.items()}
    ratio = layer1["model.activation=sigmoid"] / layer1["model.activation=relu"]
    assert np.all(ratio < 1e-3), ratio                   # orders of magnitude, every epoch
    # the sigmoid net's gradient shrinks layer by layer towards the input
    sig = by_member["model.activation=sigmoid"][0]
    norms = [float(sig[f"grad_norm/layer{l}"]) for l in range(1, 12)]
    assert all(a < b for a, b in zip(norms[:-1], norms[1:])), norms
    assert max(float(sig[f"slope/layer{l}"]) for l in range(1, 11)) <= 0.25


def test_inspect_prints_the_per_layer_table(capsys, monkeypatch):
    from fnn.cli import main

    monkeypatch.setenv("FNN_COMPILATION_CACHE", "0")
    rc = main(["inspect", "configs/vanishing_gradients.toml", "--set", "model.activation=sigmoid",
               "--batch", "16"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.splitlines()
    assert "batch 16" in lines[1]
    table = [ln for ln in lines if ln.split() and ln.split()[0].isdigit()]
    assert len(table) == 11
    # columns: layer, type, output, activation, ...
    assert table[0].split()[1] == "Dense" and table[0].split()[3] == "sigmoid"
    assert table[-1].split()[3] == "softmax"
    assert "[sweep] table is ignored" in captured.err
    rc = main(["inspect", "configs/vanishing_gradients.toml", "--batch", "0"])
    assert rc == 2


def test_plots_from_a_history_with_groups_of_different_depths(tmp_path):
    from fnn.experiment import diagnostic_plots as rd

    rng = np.random.default_rng(0)
    epochs, hist = 4, {"train_loss": rng.random((3, 4)), "trained": np.ones((3, 4), bool)}
    for stat in diag.LAYER_STATS:
        for l in (1, 2, 3):
            values = rng.random((3, epochs)) + 1e-3
            values[0] = np.nan if l == 3 else values[0]   # member 0: a shallower network
            hist[diag.layer_key(stat, l)] = values
    hist["trained"][2, 3] = False                          # an epoch skipped after a stop
    groups = [("shallow", [0]), ("deep", [1, 2])]
    assert rd.plot_gradients(tmp_path / "g.png", hist, groups=groups, title="t")
    assert rd.plot_activations(tmp_path / "a.png", hist, groups=groups)
    assert (tmp_path / "g.png").stat().st_size > 1000 and (tmp_path / "a.png").is_file()
    assert list(rd.layer_series(hist, "grad_norm")) == [1, 2, 3]
    assert np.isnan(rd.layer_series(hist, "dead")[1][2, 3])
    with pytest.raises(ValueError, match="diagnostics"):
        rd.plot_gradients(tmp_path / "x.png", {"train_loss": np.ones(3)})
    with pytest.raises(ValueError, match="groups"):
        rd.plot_activations(tmp_path / "x.png", hist, groups=[("bad", [5])])
