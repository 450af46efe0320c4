"""output.tensorboard = true: every epoch's metrics as TensorBoard events, read back with
TensorBoard's own reader, equal to metrics.csv; a missing writer extra is one line, exit 2."""
import sys

import numpy as np
import pytest

from cli_helpers import CONFIGS, read_metrics, run_cli
from fnn.experiment import tensorboard_log

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

QUICK = ["--set", "output.progress=false", "--set", "data.n_samples=200", "--set",
         "output.tensorboard=true"]


def _events(logdir) -> dict:
    """{tag: [(step, value), ...]} of the scalar events under ``logdir`` (not its subdirs)."""
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _assert_match_csv(events: dict, rows: list[dict]):
    """The events hold exactly the trained epochs of ``rows`` (one member's metrics.csv rows)."""
    names = [k for k in rows[0] if k not in ("member", "epoch") and rows[0][k] != ""]
    assert sorted(events) == sorted(names)
    for name in names:
        steps = [s for s, _ in events[name]]
        assert steps == [int(r["epoch"]) for r in rows], name
        np.testing.assert_allclose([v for _, v in events[name]],
                                   [float(r[name]) for r in rows], rtol=1e-6, err_msg=name)


def test_run_writes_every_epoch(tmp_path):
    out = tmp_path / "run"
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", out, "--quiet", *QUICK,
                         "--set", "training.epochs=3", "--set", "output.checkpoint_every=1")
    assert rc == 0, err
    events = _events(out / "tensorboard")
    assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy"} <= set(events)
    _assert_match_csv(events, read_metrics(out / "metrics.csv"))
    # written chunk by chunk (checkpoint_every = 1): still one event per epoch and tag
    assert [s for s, _ in events["train_loss"]] == [1, 2, 3]


@pytest.mark.slow
def test_sweep_one_run_per_member_and_stopped_epochs_left_out(tmp_path):
    out = tmp_path / "sweep"
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", out, "--quiet", *QUICK,
                         "--set", "training.epochs=6", "--set",
                         "early_stopping.patience=1", "--set", "early_stopping.min_delta=10.0",
                         "--set", "training.seeds=[0, 1]")
    assert rc == 0, err
    rows = read_metrics(out / "metrics.csv")
    labels = sorted({r["member"] for r in rows})
    assert len(labels) == 2
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == labels
    for label in labels:
        mine = [r for r in rows if r["member"] == label]
        assert len(mine) < 6  # early stopping stopped it; later epochs are not in the events
        _assert_match_csv(_events(out / "tensorboard" / label), mine)


def test_resume_purges_events_past_the_checkpoint(tmp_path):
    hist = {"train_loss": np.array([4.0, 3.0, 2.0, 1.0]), "trained": np.ones(4, bool)}
    log = tensorboard_log.EpochLog(tmp_path, ["0"], members=1)
    log.write(0, hist, batched=False)  # epochs 1..4, but the checkpoint was of epoch 2
    log.close()
    log = tensorboard_log.EpochLog(tmp_path, ["0"], members=1, resume_epoch=2)
    log.write(2, {"train_loss": np.array([30.0, 10.0]), "trained": np.ones(2, bool)},
              batched=False)
    log.close()
    assert _events(tmp_path / "tensorboard")["train_loss"] == [(1, 4.0), (2, 3.0), (3, 30.0),
                                                               (4, 10.0)]


def test_untrained_and_non_finite_epochs_are_skipped(tmp_path):
    log = tensorboard_log.EpochLog(tmp_path, ["a", "b"], members=2)
    log.write(5, {"val_loss": np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]]),
                  "trained": np.array([[True, True, True], [True, False, False]])}, batched=True)
    log.close()
    assert _events(tmp_path / "tensorboard" / "a")["val_loss"] == [(6, 1.0), (8, 3.0)]
    assert _events(tmp_path / "tensorboard" / "b")["val_loss"] == [(6, 4.0)]


def test_missing_extra_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    out = tmp_path / "run"
    rc, stdout, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", out, *QUICK)
    assert rc == 2, err
    assert err.count("\n") == 1 and "output.tensorboard" in err and "tensorboardX" in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_off_by_default(tmp_path):
    out = tmp_path / "run"
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", out, "--quiet",
                         "--set", "output.progress=false", "--set", "data.n_samples=200",
                         "--set", "training.epochs=1")
    assert rc == 0, err
    assert not (out / "tensorboard").exists()
