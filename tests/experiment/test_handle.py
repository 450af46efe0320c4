"""fnn.load_run: a Python handle on a finished run (single runs and sweep members)."""
import csv
import json

import numpy as np
import pytest

import fnn
from fnn.experiment import build as exp
from model_runs import trained


def _dataset(handle):
    return exp.load_dataset(handle.config)


def test_single_run_handle_has_net_params_config_summary_history():
    run = trained("quickstart")
    h = fnn.load_run(run)
    assert h.task == "classification" and h.classes == ["0", "1"] and h.input_shape == (2,)
    assert h.config.data.name == "moons" and h.config.training.epochs == 2
    assert [p["w"].shape for p in h.params] == [(2, 32), (32, 32), (32, 2)]
    summary = json.loads((run / "summary.json").read_text())
    assert h.summary["test_accuracy"] == summary["test_accuracy"]
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(h.history["epoch"]) == [1, 2]
    np.testing.assert_allclose(h.history["val_loss"], [float(r["val_loss"]) for r in rows])
    assert isinstance(h.history["train_loss"], np.ndarray)


def test_predict_applies_training_preprocessing_and_matches_evaluate():
    h = fnn.load_run(trained("quickstart"))
    ds = _dataset(h)
    y_hat = h.predict(ds.x_test)
    assert y_hat.shape == (ds.x_test.shape[0], 2)
    np.testing.assert_allclose(y_hat.sum(axis=1), 1.0, atol=1e-6)
    ev = h.evaluate("test")
    assert ev["examples"] == ds.x_test.shape[0]
    assert np.mean(h.predict_classes(ds.x_test) == ds.y_test) == pytest.approx(ev["accuracy"])
    assert ev["accuracy"] == pytest.approx(h.summary["test_accuracy"])


def test_evaluate_builds_no_trainer(monkeypatch):
    """RunHandle.evaluate (and fnn evaluate) read the run: the network, its data and an
    Evaluator; a Trainer (optimizer, compiled run) is never built."""
    from fnn.engine import trainer

    def no_trainer(*a, **k):
        raise AssertionError("a Trainer was built to evaluate a finished run")

    run = trained("quickstart")  # trained before Trainer is blocked
    monkeypatch.setattr(trainer.Trainer, "__init__", no_trainer)
    ev = fnn.load_run(run).evaluate("test")
    assert ev["accuracy"] == pytest.approx(fnn.load_run(run).summary["test_accuracy"])
    from cli_helpers import run_cli

    rc, out, err = run_cli("evaluate", run, "--json")
    assert rc == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(ev["accuracy"])


def test_predict_needs_no_data(monkeypatch):
    def no_data(*a, **k):
        raise AssertionError("the dataset was loaded")

    run = trained("fashion_mnist")  # trained (with its data) before the data is blocked
    monkeypatch.setattr(exp, "load_dataset", no_data)
    h = fnn.load_run(run)
    x = np.full((3, 784), 128.0, np.float32)
    assert h.predict(x).shape == (3, 10)
    assert h.classes[0] == "T-shirt/top"
    assert h.predict(x.reshape(3, 28, 28)).shape == (3, 10)  # (n, H, W) images are flattened


def test_sweep_members_by_index_and_label():
    run = trained("optimizers")
    summary = json.loads((run / "summary.json").read_text())
    labels = [m["member"] for m in summary["members"]]
    assert len(labels) == 6
    with pytest.raises(ValueError, match="sweep of 6 members"):
        fnn.load_run(run)
    h3, by_label = fnn.load_run(run, member=3), fnn.load_run(run, member=labels[3])
    assert h3.label == labels[3] and by_label.member == 3
    for a, b in zip(h3.params, by_label.params):
        np.testing.assert_array_equal(a["w"], b["w"])
    h0 = fnn.load_run(run, member=0)
    assert not np.array_equal(h0.params[0]["w"], h3.params[0]["w"])
    assert h3.config.optimizer.name == "momentum"  # members 2, 3: name=momentum seed=0, 1
    assert h3.config.training.seed == summary["members"][3]["seed"]
    assert h3.summary["member"] == labels[3] and "members" not in h3.summary
    assert h3.summary["best_val_loss"] == summary["members"][3]["best_val_loss"]
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["member"] == labels[3]]
    np.testing.assert_allclose(h3.history["train_loss"], [float(r["train_loss"]) for r in rows])
    ev = h3.evaluate("test")
    assert ev["loss"] == pytest.approx(summary["members"][3]["test_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="split: 'bogus'"):
        h3.evaluate("bogus")


def test_history_falls_back_to_the_checkpoint(tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained("optimizers"), run)
    expected = fnn.load_run(run, member=5).history
    (run / "metrics.csv").unlink()
    got = fnn.load_run(run, member=5).history
    assert sorted(got) == sorted(expected)
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-6)


@pytest.mark.parametrize("member, match", [(99, "the run has 6 members"),
                                           ("lr=nope", "no member has that label"),
                                           (-1, "the run has 6 members")])
def test_bad_member(member, match):
    with pytest.raises(ValueError, match=match):
        fnn.load_run(trained("optimizers"), member=member)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ValueError, match="is not a run directory"):
        fnn.load_run(tmp_path)
    with pytest.raises(ValueError, match="inputs of shape"):
        fnn.load_run(trained("quickstart")).predict(np.zeros((4, 3), np.float32))


@pytest.mark.slow
def test_early_stopped_histories_as_the_readme_says(tmp_path):
    """Issue 23 (README): RunHandle.history ends at the stop epoch, a sweep member's at its own;
    the saved model is the best epoch's. (The engine's history, Trainer.train's, runs to the
    last epoch with NaN after a stop and ``trained`` False: tests/engine/test_train.py.)"""
    from cli_helpers import CONFIGS, run_cli

    common = ("--set", "data.n_samples=300", "--set", "training.epochs=40",
              "--set", "early_stopping.patience=2", "--quiet")
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", tmp_path / "one", *common)
    assert rc == 0, err
    one = fnn.load_run(tmp_path / "one")
    stop = one.summary["stop_epoch"]
    assert stop is not None and stop < 40
    assert one.history["epoch"][-1] == stop and np.isfinite(one.history["val_loss"]).all()
    assert one.history["val_loss"][one.summary["best_epoch"] - 1] == pytest.approx(
        one.summary["best_val_loss"], rel=1e-5)
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", tmp_path / "sweep",
                         *common, "--set", "training.seeds=[0, 1]")
    assert rc == 0, err
    stops = [fnn.load_run(tmp_path / "sweep", member=m).summary["stop_epoch"] for m in (0, 1)]
    assert stops[0] != stops[1], "the members must stop at different epochs for this test"
    first = int(np.argmin(stops))
    h = fnn.load_run(tmp_path / "sweep", member=first).history["val_loss"]
    # each member's history ends at its own stop epoch (metrics.csv keeps trained epochs only)
    assert h.shape == (stops[first],) and np.isfinite(h).all()


@pytest.mark.parametrize("rows, chunk", [(10, 4), (8, 4), (3, 4), (1, 1)])
def test_apply_chunked_pads_to_one_shape(rows, chunk):
    """Every call has ``min(chunk, rows)`` rows (the last padded, its padding dropped), so a
    jitted function compiles once, and the result equals one unchunked call."""
    import jax
    import jax.numpy as jnp

    from fnn.experiment import members

    shapes = []

    def f(params, state, x):
        shapes.append(x.shape)                    # runs once per trace
        return jnp.tanh(x @ params) + state

    fn = jax.jit(f)
    x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3) / 10
    w = np.ones((3, 2), np.float32)
    got = members.apply_chunked(fn, w, 0.5, x, chunk=chunk)
    assert shapes == [(min(chunk, rows), 3)]
    np.testing.assert_allclose(got, np.tanh(x @ w) + 0.5, rtol=1e-6)
