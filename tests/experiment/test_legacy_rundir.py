"""A run directory written before the MLP became a Sequential still evaluates, predicts, exports
and resumes.

``tests/fixtures/legacy_mlp_run`` was written by main at 5774b4c (``tests/fixtures/legacy_mlp.toml``:
an MLP 2-8-8-2 with dropout 0.1, four checkpoints). Its checkpoints number the dense layers 0, 1,
2; today's MLP is a Sequential whose Dropout layers have their own (empty) entries, so the dense
layers are 0, 2, 4. The checkpoint reader pairs the leaves in tree order (which an empty entry does
not change). ``legacy_mlp_expected.npz`` / ``.json`` hold that commit's predictions on 16 points
and its test-split evaluation.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import fnn
from cli_helpers import checkpoint_arrays, params_of, run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUN = FIXTURES / "legacy_mlp_run"
EXPECTED = np.load(FIXTURES / "legacy_mlp_expected.npz")
EXPECTED_EVAL = json.loads((FIXTURES / "legacy_mlp_expected.json").read_text())["evaluate_test"]


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A copy of the fixture (the tests must not write into tests/fixtures)."""
    return Path(shutil.copytree(RUN, tmp_path / "legacy_mlp_run"))


def test_the_fixture_is_in_the_old_layout():
    arrays = checkpoint_arrays(RUN / "checkpoints" / "ckpt-000004.npz")
    assert {k for k in params_of(arrays)} == {
        f"state.params[{i}]['{n}']" for i in range(3) for n in "bw"}


def test_evaluates_and_predicts_as_when_it_was_written(run_dir):
    run = fnn.load_run(run_dir)
    assert isinstance(run.net, fnn.MLP) and isinstance(run.net, fnn.Sequential)
    assert [type(layer).__name__ for layer in run.net.layers] == [
        "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    # to float32 rounding: another CPU's kernels may round the last bit differently (an AMD
    # EPYC with AVX2 differs from the writer's by 3e-8); a broken reader is off by far more
    np.testing.assert_allclose(np.asarray(run.predict(EXPECTED["x"])), EXPECTED["predict"],
                               rtol=0, atol=1e-6)
    got = run.evaluate("test")
    assert got["examples"] == EXPECTED_EVAL["examples"]
    assert got["accuracy"] == EXPECTED_EVAL["accuracy"]
    assert got["loss"] == pytest.approx(EXPECTED_EVAL["loss"], rel=1e-6)


def test_predict_and_export_through_the_cli(run_dir, tmp_path):
    x = tmp_path / "x.npz"
    np.savez(x, x=EXPECTED["x"])
    rc, _, err = run_cli("predict", run_dir, x, "--output", tmp_path / "p.csv")
    assert rc == 0, err
    probs = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)[:, 1:]
    np.testing.assert_allclose(probs, EXPECTED["predict"], atol=1e-6)
    rc, _, err = run_cli("export", run_dir, "--output", tmp_path / "m.jax")
    assert rc == 0, err
    rc, _, err = run_cli("predict", tmp_path / "m.jax", x, "--output", tmp_path / "q.csv")
    assert rc == 0, err
    np.testing.assert_allclose(np.loadtxt(tmp_path / "q.csv", delimiter=",", skiprows=1)[:, 1:],
                               EXPECTED["predict"], atol=1e-6)


@pytest.mark.slow
def test_resumes_from_an_old_checkpoint_as_an_uninterrupted_run(run_dir, tmp_path):
    """Drop the last two checkpoints (an interrupted run), resume it with today's code, and
    compare with today's uninterrupted run of the same config.

    Not bitwise: the fixture's first two epochs were compiled with XLA's default optimization,
    the suite compiles with its cheap settings (tests/conftest.py), and the two round
    differently. (Old and new code give bitwise equal runs of this config; tests/e2e/test_pinned.py
    and the resume tests hold that.)"""
    for name in ("ckpt-000003.npz", "ckpt-000004.npz"):
        (run_dir / "checkpoints" / name).unlink()
    for name in ("summary.json", "metrics.csv"):
        (run_dir / name).unlink()
    rc, _, err = run_cli("train", run_dir / "config.toml", "--out", run_dir, "--resume", "--quiet")
    assert rc == 0, err
    rc, _, err = run_cli("train", FIXTURES / "legacy_mlp.toml", "--out", tmp_path / "fresh",
                         "--quiet")
    assert rc == 0, err
    resumed = params_of(checkpoint_arrays(run_dir / "checkpoints" / "ckpt-000004.npz"))
    fresh = params_of(checkpoint_arrays(tmp_path / "fresh" / "checkpoints" / "ckpt-000004.npz"))
    # checkpoints written today number the Dropout layers too
    assert sorted(fresh) == [f"state.params[{i}]['{n}']" for i in (0, 2, 4) for n in "bw"]
    assert sorted(resumed) == sorted(fresh)
    for k in fresh:
        np.testing.assert_allclose(resumed[k], fresh[k], rtol=1e-5, atol=1e-6, err_msg=k)
