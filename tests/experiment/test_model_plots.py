"""The run directory's model pictures and per-class accuracy (fnn.experiment.model_report)."""
import dataclasses
import json
import shutil
import struct

import numpy as np
import pytest

from fnn.experiment import build as exp
from fnn.experiment import members, model_report
from model_runs import trained

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG, f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def _summary(run):
    return json.loads((run / "summary.json").read_text())


def _dataset(run):
    return exp.load_dataset(members.read_config(run))


def test_quickstart_decision_regions_and_confusion():
    run = trained("quickstart")
    ds = _dataset(run)
    w, h = _png_size(run / "decision_boundary.png")
    assert 400 < w < 900 and 400 < h < 900  # one panel
    _png_size(run / "confusion.png")
    s = _summary(run)
    counts = np.asarray(s["confusion_matrix"])
    assert s["confusion_split"] == "test" and counts.shape == (2, 2)
    assert counts.sum() == ds.x_test.shape[0]
    assert list(s["per_class_accuracy"]) == ["0", "1"]
    assert s["per_class_accuracy"]["1"] == pytest.approx(counts[1, 1] / counts[1].sum())
    assert np.trace(counts) / counts.sum() == pytest.approx(s["test_accuracy"], abs=1e-6)
    assert s["members"][0]["confusion_matrix"] == s["confusion_matrix"]
    assert (run / "preprocessing.json").is_file()


def test_sweep_groups_get_one_panel_each():
    single, _ = _png_size(trained("quickstart") / "decision_boundary.png")
    run = trained("optimizers")
    w, _ = _png_size(run / "decision_boundary.png")
    assert w > 2.5 * single  # three groups: three panels side by side
    _png_size(run / "confusion.png")
    s = _summary(run)
    ds = _dataset(run)
    assert len(s["members"]) == 6 and "confusion_matrix" not in s  # per member only
    for m in s["members"]:
        counts = np.asarray(m["confusion_matrix"])
        assert m["confusion_split"] == "test" and counts.shape == (2, 2)
        assert counts.sum() == ds.x_test.shape[0]
        assert np.trace(counts) / counts.sum() == pytest.approx(m["test_accuracy"], abs=1e-6)


def test_validation_split_when_there_is_no_test_split(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained("quickstart"), run)
    cfg = members.read_config(run)
    ds = exp.load_dataset(cfg)
    no_test = dataclasses.replace(ds, x_test=None, y_test=None)
    summary = _summary(run)
    model_report.write_all(run, cfg.replace("output.plots", False), no_test, summary)
    counts = np.asarray(summary["confusion_matrix"])
    assert summary["confusion_split"] == "val" and counts.sum() == ds.x_val.shape[0]
    assert np.trace(counts) / counts.sum() == pytest.approx(summary["final_val_accuracy"],
                                                            abs=1e-6)


def test_regression_on_one_input_draws_the_fitted_curve():
    run = trained("regression_sine")
    _png_size(run / "decision_boundary.png")
    assert not (run / "confusion.png").exists()
    assert "per_class_accuracy" not in _summary(run)


def test_fashion_mnist_confusion_but_no_regions():
    run = trained("fashion_mnist")
    assert not (run / "decision_boundary.png").exists()  # 784-D inputs: no regions
    w, h = _png_size(run / "confusion.png")
    assert w >= 800 and h >= 700  # ten classes stay readable
    s = _summary(run)
    assert np.asarray(s["confusion_matrix"]).sum() == 512  # the test split of the shrunk run
    assert list(s["per_class_accuracy"])[:2] == ["T-shirt/top", "Trouser"]
    assert all(0.0 <= v <= 1.0 for v in s["per_class_accuracy"].values())


def test_plots_false_still_reports_per_class_accuracy(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained("quickstart"), run)
    for png in run.glob("*.png"):
        png.unlink()
    cfg = members.read_config(run).replace("output.plots", False)
    summary = _summary(run)
    expected = summary.pop("per_class_accuracy")
    for m in summary["members"]:
        m.pop("per_class_accuracy")
    assert model_report.write_all(run, cfg, _dataset(run), summary) == []
    assert not list(run.glob("*.png"))
    assert summary["per_class_accuracy"] == expected
    assert summary["members"][0]["per_class_accuracy"] == expected


def test_confusion_counts_table():
    counts = model_report.confusion_counts(np.array([0, 0, 1, 2, 2, 2]),
                                           np.array([0, 1, 1, 2, 0, 2]), 3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    acc = model_report.per_class_accuracy(np.pad(counts, ((0, 1), (0, 1))), "abcd")
    assert acc == {"a": 0.5, "b": 1.0, "c": pytest.approx(2 / 3), "d": None}
