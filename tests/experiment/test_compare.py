"""fnn compare: one figure and one table over runs and sweep members."""
import csv

import numpy as np
import pytest

from cli_helpers import run_cli
from fnn.experiment import compare
from model_runs import trained

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_two_runs(tmp_path):
    a, b = trained("quickstart"), trained("optimizers")
    out = tmp_path / "cmp.png"
    rc, text, err = run_cli("compare", a, b, "--out", out)
    assert rc == 0, err
    assert out.read_bytes()[:8] == PNG
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["run", "member", "final_val_loss", "best_val_loss"]
    assert "test_accuracy" in lines[0] and "wall_s" in lines[0]
    rows = [ln for ln in lines[2:] if ln.startswith(("quickstart", "optimizers"))]
    assert len(rows) == 1 + 6  # the single run, and the 3 groups x 2 seeds of the sweep
    assert any("optimizer.name=momentum training.seed=0" in r for r in rows)


def test_one_sweep_compares_its_members(tmp_path):
    run = trained("optimizers")
    metric, series = compare.collect([run], "val_accuracy")
    assert metric == "val_accuracy" and len(series) == 6
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    s = series[5]
    mine = [float(r["val_accuracy"]) for r in rows if r["member"] == s.member]
    np.testing.assert_allclose(s.values, mine)
    table = compare.table(metric, series)
    assert f"{max(mine):.4g}" in table.splitlines()[2 + 5]
    rc, text, err = run_cli("compare", run, "--metric", "val_accuracy", "--out", tmp_path / "c.png")
    assert rc == 0, err
    assert sum(" training.seed=" in ln for ln in text.splitlines()) == 6
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("argv, message", [
    (["--metric", "nope"], "--metric nope: not in"),
    (["NOT_A_RUN"], "is not a finished run directory"),
])
def test_bad_input(argv, message, tmp_path):
    args = [trained("quickstart")] + [tmp_path / a if a == "NOT_A_RUN" else a for a in argv]
    rc, _, err = run_cli("compare", *args, "--out", tmp_path / "c.png")
    assert rc == 2 and message in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "c.png").exists()


def test_one_name_for_one_sweep_value_everywhere(tmp_path):
    """Issue 23: one member was "name=adam seed=1" in the table and "optimizer.name=adam" in
    titles. Members, groups, metrics.csv, summary.json and compare use the full config keys."""
    run = trained("optimizers")
    import json

    summary = json.loads((run / "summary.json").read_text())
    labels = [m["member"] for m in summary["members"]]
    assert labels == [f"{m['group']} training.seed={m['seed']}" for m in summary["members"]]
    assert {m["group"] for m in summary["members"]} == {
        "optimizer.name=sgd", "optimizer.name=momentum", "optimizer.name=adam"}
    with open(run / "metrics.csv", newline="") as f:
        assert set(r["member"] for r in csv.DictReader(f)) == set(labels)
    _, series = compare.collect([run])
    assert [s.member for s in series] == labels


@pytest.mark.parametrize("asked, column", [("val_acc", "val_accuracy"),
                                           ("train_acc", "train_accuracy")])
def test_the_progress_bar_names_are_accepted_by_metric(asked, column, tmp_path):
    """Issue 23: the bar says val_acc, and --metric val_acc was refused."""
    metric, series = compare.collect([trained("quickstart")], asked)
    assert metric == column and series
    rc, text, err = run_cli("compare", trained("quickstart"), "--metric", asked,
                            "--out", tmp_path / "c.png")
    assert rc == 0, err
    assert f"final_{column}" in text.splitlines()[0]


def test_an_unknown_metric_gets_a_did_you_mean(tmp_path):
    rc, _, err = run_cli("compare", trained("quickstart"), "--metric", "val_acuracy",
                         "--out", tmp_path / "c.png")
    assert rc == 2 and "(did you mean 'val_accuracy'?)" in err and err.count("\n") == 1, err
