"""fnn.report: atomic files, metrics CSV, summary JSON, curve plots, terminal tables."""

import builtins
import csv
import json
import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

from fnn.experiment import curve_plots, report
from fnn.util import fileio
from fnn.util.table import format_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def single_history(epochs=6, stop_after=4, accuracy=True):
    e = np.arange(1, epochs + 1)
    trained = e <= stop_after
    h = {
        "train_loss": (1.0 / e).astype(np.float32),
        "val_loss": (1.2 / e).astype(np.float32),
        "grad_norm": np.full(epochs, 0.5, np.float32),
        "trained": trained,
    }
    if accuracy:
        h["train_accuracy"] = (1 - 0.5 / e).astype(np.float32)
        h["val_accuracy"] = (1 - 0.6 / e).astype(np.float32)
    for k in h:
        if k != "trained":
            h[k] = np.where(trained, h[k], np.float32(np.nan)).astype(np.float32)
    return h


def sweep_history(members=4, epochs=5):
    rng = np.random.default_rng(0)
    trained = np.ones((members, epochs), bool)
    trained[1, 3:] = False  # member 1 stopped early after 3 epochs
    if members > 2:
        trained[2, 1:] = False  # member 2 halted in epoch 1: later epochs skipped
    loss = rng.random((members, epochs)).astype(np.float32) + 0.1
    acc = rng.random((members, epochs)).astype(np.float32)
    h = {"train_loss": loss, "val_loss": loss * 2, "train_accuracy": acc, "val_accuracy": acc,
         "trained": trained}
    for k in h:
        if k != "trained":
            h[k] = np.where(trained, h[k], np.float32(np.nan)).astype(np.float32)
    return h


def no_temp_files(directory):
    return not [p for p in os.listdir(directory) if p.endswith(".tmp")]


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("write, payload, read", [
    (fileio.atomic_write_text, "héllo\nworld\n", lambda p: p.read_text("utf-8")),
    (fileio.atomic_write_bytes, b"\x00\x01binary", lambda p: p.read_bytes()),
])
def test_atomic_write_creates_and_replaces(tmp_path, write, payload, read):
    path = tmp_path / "sub" / "file"
    assert write(path, payload) == path
    assert read(path) == payload
    write(path, payload * 2)
    assert read(path) == payload * 2
    assert no_temp_files(path.parent)


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    fileio.atomic_write_text(path, "old")

    def boom(*args, **kwargs):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="rename failed"):
        fileio.atomic_write_text(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert no_temp_files(tmp_path)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------
def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_single_run_drops_skipped_epochs(tmp_path):
    h = single_history(epochs=6, stop_after=4)
    path = report.write_metrics_csv(tmp_path / "metrics.csv", h)
    rows = read_csv(path)
    assert rows[0] == ["member", "epoch", "grad_norm", "train_accuracy", "train_loss",
                       "val_accuracy", "val_loss"]
    assert [r[:2] for r in rows[1:]] == [["0", str(e)] for e in (1, 2, 3, 4)]
    # float32 values round-trip exactly from their shortest form
    col = rows[0].index("train_loss")
    assert [np.float32(r[col]) for r in rows[1:]] == list(h["train_loss"][:4])
    assert rows[1][col] == "1.0" and rows[3][col] == "0.33333334"
    assert no_temp_files(tmp_path)


def test_csv_sweep_rows_per_member_with_labels(tmp_path):
    h = sweep_history(members=4, epochs=5)
    labels = ["lr=0.1", "lr=0.01", "lr=0.001", "lr=1e-4"]
    rows = read_csv(report.write_metrics_csv(tmp_path / "m.csv", h, member_labels=labels))
    assert rows[0] == ["member", "epoch", "train_accuracy", "train_loss", "val_accuracy",
                       "val_loss"]
    got = [(r[0], int(r[1])) for r in rows[1:]]
    expected = ([("lr=0.1", e) for e in range(1, 6)] + [("lr=0.01", e) for e in range(1, 4)]
                + [("lr=0.001", 1)] + [("lr=1e-4", e) for e in range(1, 6)])
    assert got == expected
    i = rows[0].index("val_loss")
    assert np.float32(rows[7][i]) == h["val_loss"][1, 1]  # member 1, epoch 2


def test_csv_sweep_default_labels_are_indices_and_no_trained_column(tmp_path):
    h = {"train_loss": np.array([[0.5, 0.25], [1.0, np.inf]])}
    rows = read_csv(report.write_metrics_csv(tmp_path / "m.csv", h))
    assert rows == [["member", "epoch", "train_loss"], ["0", "1", "0.5"], ["0", "2", "0.25"],
                    ["1", "1", "1.0"], ["1", "2", "inf"]]


def test_csv_accepts_jax_arrays_and_integer_metrics(tmp_path):
    h = {"val_loss": jnp.asarray([0.5, jnp.nan], jnp.float32),
         "steps": jnp.asarray([10, 20], jnp.int32), "trained": jnp.asarray([True, True])}
    rows = read_csv(report.write_metrics_csv(tmp_path / "m.csv", h))
    assert rows == [["member", "epoch", "steps", "val_loss"], ["0", "1", "10", "0.5"],
                    ["0", "2", "20", "nan"]]


@pytest.mark.parametrize("history, kwargs, match", [
    ({}, {}, "history: empty"),
    ({"a": np.zeros(3), "b": np.zeros(4)}, {}, "history: metric shapes"),
    ({"a": np.zeros((2, 3, 4))}, {}, "history: metric shapes"),
    ({"a": np.zeros((2, 3))}, {"member_labels": ["x"]}, "member_labels: 1 labels for 2 members"),
])
def test_csv_rejects_bad_input(tmp_path, history, kwargs, match):
    with pytest.raises(ValueError, match=match):
        report.write_metrics_csv(tmp_path / "m.csv", history, **kwargs)
    assert not (tmp_path / "m.csv").exists()


# --------------------------------------------------------------------------------------------
# Summary JSON
# --------------------------------------------------------------------------------------------
def test_summary_json_nan_inf_as_null(tmp_path):
    summary = {
        "final_val_loss": float("nan"),
        "best_value": np.float32(np.inf),
        "neg": -math.inf,
        "steps": np.int32(120),
        "halted": np.bool_(False),
        "halted_step": None,
        "per_member": [{"loss": np.float64(0.25)}, {"loss": jnp.asarray(jnp.nan)}],
        "history_tail": np.array([1.0, np.nan], np.float32),
        "shape": (3, 4),
        "name": "run",
    }
    path = report.write_summary(tmp_path / "summary.json", summary)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert text.startswith('{\n  "final_val_loss": null,')
    assert text.endswith("}\n")
    assert json.loads(text) == {
        "final_val_loss": None, "best_value": None, "neg": None, "steps": 120,
        "halted": False, "halted_step": None, "per_member": [{"loss": 0.25}, {"loss": None}],
        "history_tail": [1.0, None], "shape": [3, 4], "name": "run",
    }


def test_summary_rejects_unserializable_before_writing(tmp_path):
    with pytest.raises(TypeError, match="summary: a value of type object is not JSON-serializable"):
        report.write_summary(tmp_path / "s.json", {"x": object()})
    assert not (tmp_path / "s.json").exists()


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
def assert_png(path, min_bytes=5_000):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > min_bytes


def png_size(path):
    import matplotlib.image

    return matplotlib.image.imread(str(path)).shape[:2]  # (height, width)


@pytest.mark.parametrize("history, kwargs, panels", [
    (single_history(), dict(title="single run"), (1, 2)),
    (single_history(accuracy=False), {}, (1, 1)),
    ({"train_loss": np.array([0.5], np.float32)}, {}, (1, 1)),
    ({"train_loss": np.array([1.0, -0.5, 0.2])}, {}, (1, 1)),  # not all positive: linear
    (sweep_history(), dict(member_labels=["a", "b", "c", "d"]), (1, 2)),
    (sweep_history(), dict(groups=[("seed 0", [0, 1]), ("seed 1", [2, 3])], title="sweep"), (2, 2)),
    (sweep_history(members=25), {}, (1, 2)),
])
def test_plot_writes_png(tmp_path, history, kwargs, panels):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    assert curve_plots.plot_curves(path, history, **kwargs) is True
    assert_png(path)
    height, width = png_size(path)
    rows, cols = panels
    assert 300 * rows <= height <= 500 * rows + 100
    assert width >= 500 * cols
    assert no_temp_files(tmp_path)


def test_plot_all_nan_member_does_not_fail(tmp_path):
    pytest.importorskip("matplotlib")
    h = sweep_history(members=2)
    h["trained"][1] = False
    h["train_loss"][1] = np.nan
    assert curve_plots.plot_curves(tmp_path / "c.png", h)
    assert_png(tmp_path / "c.png")


def test_plot_without_matplotlib_returns_false(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert curve_plots.plot_curves(tmp_path / "c.png", single_history()) is False
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("history, kwargs, match", [
    ({"grad_norm": np.ones(3)}, {}, "no loss or accuracy metrics"),
    (sweep_history(members=2), dict(groups=[("g", [0, 2])]), "group 'g' has member indices"),
    (sweep_history(members=2), dict(groups=[("g", [])]), "group 'g' has member indices"),
    (sweep_history(members=2), dict(member_labels=["x"]), "member_labels: 1 labels"),
])
def test_plot_rejects_bad_input(tmp_path, history, kwargs, match):
    with pytest.raises(ValueError, match=match):
        curve_plots.plot_curves(tmp_path / "c.png", history, **kwargs)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------
def test_format_table_alignment():
    rows = [
        {"name": "lr=0.1", "loss": 0.123456, "epochs": 12, "stopped": True, "halted_step": None},
        {"name": "lr=0.001", "loss": float("nan"), "epochs": 3, "stopped": False},
        {"name": "x", "loss": np.float32(12345.678), "epochs": np.int64(100), "stopped": False,
         "halted_step": 7},
    ]
    table = format_table(rows, ["name", "loss", "epochs", "stopped", "halted_step"])
    assert table.splitlines() == [
        "name           loss  epochs  stopped  halted_step",
        "--------  ---------  ------  -------  -----------",
        "lr=0.1       0.1235      12  True               -",
        "lr=0.001        nan       3  False              -",
        "x         1.235e+04     100  False              7",
    ]  # text left-aligned, numbers (and their headers) right-aligned, None as "-"


@pytest.mark.parametrize("value, floatfmt, expected", [
    (0.5, ".4g", "0.5"), (1 / 3, ".3f", "0.333"), (np.float32(2.5), ".2e", "2.50e+00"),
    (jnp.asarray(1.5), ".4g", "1.5"), (7, ".4g", "7"), (None, ".4g", "-"), ("text", ".4g", "text"),
    (float("inf"), ".4g", "inf"),
])
def test_format_table_cells(value, floatfmt, expected):
    table = format_table([{"v": value}], ["v"], floatfmt=floatfmt)
    assert table.splitlines()[2].strip() == expected


def test_format_table_empty_rows_and_missing_keys():
    assert format_table([], ["a", "bb"]).splitlines() == ["a  bb", "-  --"]
    assert format_table([{"a": 1}], ["a", "b"]).splitlines()[2] == "1  -"
