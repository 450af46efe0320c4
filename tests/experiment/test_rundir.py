"""The run directory keeps what a user saved: the checks of fnn.experiment.rundir through the CLI.

Each case reproduces a defect of the hostile-input campaign: the non-empty check on the path as
written (``old/fresh/..``), ``--overwrite`` deleting files that are not an fnn run, ``--resume``
silently retraining when ``checkpoints/`` is gone, predictions written over their own input, and a
sweep whose groups train different numbers of epochs.
"""
from __future__ import annotations

import json

import pytest

from cli_helpers import CONFIGS, read_metrics, run_cli, shrink_args

QUICK = CONFIGS / "quickstart.toml"


def _train(out, *extra):
    return run_cli("train", QUICK, "--out", out, *shrink_args("quickstart"), "--set",
                   "output.plots=false", "--quiet", *extra)


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rundir")
    rc, _, err = _train(root / "old")
    assert rc == 0, err
    return root / "old"


def _one_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_dot_dot_out_is_the_real_directory_and_refused(old_run):
    before = (old_run / "summary.json").read_bytes()
    rc, _, err = _train(old_run / "fresh" / "..", "--set", "training.seed=5")
    assert rc == 2 and "is not empty" in _one_line(err)
    assert (old_run / "summary.json").read_bytes() == before
    assert not (old_run / "fresh").exists()


def test_overwrite_refuses_a_directory_with_a_users_file(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.tex").write_text("\\documentclass{article}")
    rc, _, err = _train(mine, "--overwrite")
    line = _one_line(err)
    assert rc == 2 and "'thesis.tex'" in line and "--overwrite replaces run directories only" in line
    assert (mine / "thesis.tex").read_text() == "\\documentclass{article}"
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]


def test_overwrite_refuses_a_run_directory_with_a_users_file_in_it(tmp_path):
    out = tmp_path / "run"
    rc, _, err = _train(out)
    assert rc == 0, err
    (out / "notes.txt").write_text("keep me")
    rc, _, err = _train(out, "--overwrite")
    assert rc == 2 and "'notes.txt'" in _one_line(err)
    assert (out / "notes.txt").read_text() == "keep me" and (out / "summary.json").exists()


def test_overwrite_replaces_an_fnn_run(tmp_path):
    out = tmp_path / "run"
    assert _train(out)[0] == 0
    summary = json.loads((out / "summary.json").read_text())
    rc, _, err = _train(out, "--overwrite", "--set", "training.seed=3")
    assert rc == 0, err
    assert json.loads((out / "summary.json").read_text())["members"][0]["seed"] == 3 != \
        summary["members"][0]["seed"]


def test_resume_without_checkpoints_is_refused(tmp_path):
    out = tmp_path / "run"
    assert _train(out)[0] == 0
    import shutil

    shutil.rmtree(out / "checkpoints")
    before = (out / "summary.json").read_bytes()
    rc, _, err = _train(out, "--resume")
    assert rc == 2 and "nothing to resume" in _one_line(err)
    assert (out / "summary.json").read_bytes() == before


def test_predict_output_may_not_be_the_input(old_run, tmp_path):
    x = tmp_path / "in.csv"
    x.write_text("x0,x1\n0.1,0.2\n0.5,-0.3\n")
    rc, _, err = run_cli("predict", old_run, x, "--output", x)
    assert rc == 2 and "is the input file" in _one_line(err)
    assert x.read_text() == "x0,x1\n0.1,0.2\n0.5,-0.3\n"


def test_sweep_over_epochs_pads_the_shorter_history(tmp_path):
    out = tmp_path / "sweep"
    rc, _, err = run_cli("sweep", QUICK, "--grid", "training.epochs=1,3", "--out", out,
                         "--set", "data.n_samples=200", "--set", "output.plots=false", "--quiet")
    assert rc == 0, err
    rows = read_metrics(out / "metrics.csv")
    counts = {}
    for r in rows:
        counts[r["member"]] = counts.get(r["member"], 0) + 1
    assert counts == {"training.epochs=1": 1, "training.epochs=3": 3}
    summary = json.loads((out / "summary.json").read_text())
    assert [m["epochs_trained"] for m in summary["members"]] == [1, 3]


def test_a_network_that_cannot_fit_is_refused_before_it_is_built(tmp_path):
    # within the size bounds (65,536 units, 2**28 parameters), beyond a 0.05 GB limit
    rc, _, err = run_cli("train", QUICK, "--out", tmp_path / "big", "--set",
                         "model.hidden=[8192, 8192]", "--set", "training.memory_limit_gb=0.1",
                         "--quiet")
    line = _one_line(err)
    assert rc == 2 and "the run needs about" in line and "GB" in line
    assert "training.memory_limit_gb" in line
    assert not (tmp_path / "big").exists()


def test_the_memory_estimate_counts_parameters_state_and_activations():
    import fnn
    from fnn.experiment import memory

    net = fnn.MLP(sizes=(10, 100, 2))
    est = memory.estimate(net, optimizer="adam", batch_size=8, members=3, early_stopping=True)
    p = (10 * 100 + 100 + 100 * 2 + 2)
    assert est["count"] == p and est["params"] == 4 * p
    assert est["training_state"] == 4 * p * (3 + 2 + 1) * 3  # params, grads, updates, μ, ν, best
    assert est["activations"] == 2 * 8 * (100 + 2) * 4 * 3
