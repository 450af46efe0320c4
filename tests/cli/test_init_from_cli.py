"""``fnn train CONFIG --init-from RUN_DIR [--layers SPEC]`` and ``fnn train --resume RUN_DIR
--set training.epochs=N`` through the CLI: what a run starts from, what it records, the
bitwise continuation of a finished run, and every refusal as one line, exit 2, nothing
written."""
from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import (BLOBS_TOML, CONFIGS, QUIET, assert_bitwise_equal, checkpoint_arrays,
                         final_checkpoint, params_of, read_metrics, read_summary, run_cli,
                         write_config)

QUICK = [*QUIET, "--set", "data.n_samples=300", "--set", "training.epochs=2"]
# an update of ~1e-30 leaves float32 weights bit for bit: the run ends where it started
FROZEN = ["--set", "optimizer.learning_rate=1e-30"]



@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished 3-class run and its config."""
    root = tmp_path_factory.mktemp("init-from")
    cfg = write_config(root / "blobs.toml", BLOBS_TOML)
    rc, out, err = run_cli("train", cfg, "--out", root / "src", "--quiet")
    assert rc == 0, out + err
    return cfg, root / "src"


def _final_params(run_dir):
    return params_of(checkpoint_arrays(final_checkpoint(run_dir / "checkpoints")))


def test_all_layers_start_from_the_run(source, tmp_path):
    cfg, src = source
    rc, out, err = run_cli("train", cfg, "--out", tmp_path / "ft", "--init-from", src, *FROZEN)
    assert rc == 0, err
    assert f"init: layers 0, 1, 2 from {src}" in out
    mine, theirs = _final_params(tmp_path / "ft"), _final_params(src)
    for name in theirs:
        np.testing.assert_allclose(mine[name], theirs[name], rtol=0, atol=1e-25, err_msg=name)
    assert read_summary(tmp_path / "ft")["init_from"] == {"run_dir": str(src), "member": "0",
                                                         "layers": [0, 1, 2]}
    saved = (tmp_path / "ft" / "config.toml").read_text()
    assert f'init_from = "{src}"' in saved and 'init_layers = "all"' in saved


def test_a_new_head_on_new_classes(source, tmp_path):
    """--layers :-1: the hidden layers from the 3-class run, a 5-class output layer drawn from
    training.seed exactly as in a run without --init-from."""
    cfg, src = source
    new = ["--set", "data.num_classes=5", *FROZEN]
    rc, _, err = run_cli("train", cfg, "--out", tmp_path / "head", "--init-from", src,
                         "--layers", ":-1", *new)
    assert rc == 0, err
    rc, _, err = run_cli("train", cfg, "--out", tmp_path / "plain", "--quiet", *new)
    assert rc == 0, err
    head, plain = _final_params(tmp_path / "head"), _final_params(tmp_path / "plain")
    theirs = _final_params(src)
    for name in head:
        want = plain[name] if name.startswith("state.params[2]") else theirs[name]
        np.testing.assert_allclose(head[name], want, rtol=0, atol=1e-25, err_msg=name)
    assert head["state.params[2]['w']"].shape == (16, 5)
    assert read_summary(tmp_path / "head")["init_from"]["layers"] == [0, 1]


@pytest.mark.parametrize("args,match", [
    (["--init-from", "{tmp}/nowhere"], "model.init_from: '{tmp}/nowhere' is not a directory"),
    (["--init-from", "{tmp}"], "model.init_from: '{tmp}' is not a run directory (no config.toml)"),
    (["--init-from", "{src}", "--layers", "a:b"],
     "model.init_layers: 'a:b': 'a:b' is not an index or a slice"),
    (["--init-from", "{src}", "--layers", "7"],
     "model.init_layers: '7': layer 7; the config's network has 3 layers"),
    (["--init-from", "{src}", "--set", "data.num_classes=5"],
     "layers[2] (Dense) does not fit: the run's Dense has b (3,), w (16, 3); the config's "
     "needs b (5,), w (16, 5); leave it out with --layers (e.g. --layers :-1)"),
    (["--init-from", "{src}", "--set", "model.hidden=[16]"],
     "the run's network has 3 layers, the config's 2"),
    (["--layers", ":-1"], "model.init_layers: ':-1' has no effect without model.init_from"),
    (["--init-from", "{src}", "--init-member", "2"], "member 2: the run has 1 member"),
])
def test_bad_init_from_is_one_line_and_writes_nothing(source, tmp_path, args, match):
    cfg, src = source
    fill = {"tmp": str(tmp_path), "src": str(src)}
    out = tmp_path / "run"
    rc, _, err = run_cli("train", cfg, "--out", out, *[a.format(**fill) for a in args])
    assert rc == 2, err
    assert match.format(**fill) in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_run_cannot_write_into_its_source(source):
    cfg, src = source
    before = sorted(p.name for p in src.iterdir())
    rc, _, err = run_cli("train", cfg, "--out", src, "--overwrite", "--init-from", src)
    assert rc == 2 and "is inside the run directory" in err, err
    assert sorted(p.name for p in src.iterdir()) == before


# --- continuing a finished run -------------------------------------------------------------------
@pytest.mark.parametrize("config,extra", [
    ("quickstart", []),  # early stopping with restore_best, still improving at its last epoch
    pytest.param("quickstart", ["early_stopping.enabled=false", "optimizer.name=sgd",
                                "optimizer.momentum=0.9", "optimizer.schedule.name=step",
                                "optimizer.schedule.boundaries=[3]"], marks=pytest.mark.slow),
    pytest.param("shapes_cnn", ["data.n_samples=200", "early_stopping.enabled=false"],
                 marks=pytest.mark.slow),
])
def test_a_finished_run_continues_bitwise(tmp_path, config, extra):
    """2 epochs, then --resume RUN_DIR --set training.epochs=4: the parameters, optimizer state,
    key and history of one uninterrupted 4-epoch run, bit for bit."""
    sets = [a for item in extra for a in ("--set", item)]
    base = [*QUICK, *sets]
    rc, _, err = run_cli("train", CONFIGS / f"{config}.toml", "--out", tmp_path / "a", *base)
    assert rc == 0, err
    rc, _, err = run_cli("train", "--resume", tmp_path / "a", *QUIET,
                         "--set", "training.epochs=4")
    assert rc == 0, err
    rc, _, err = run_cli("train", CONFIGS / f"{config}.toml", "--out", tmp_path / "b", *base,
                         "--set", "training.epochs=4")
    assert rc == 0, err
    a = checkpoint_arrays(final_checkpoint(tmp_path / "a" / "checkpoints"))
    b = checkpoint_arrays(final_checkpoint(tmp_path / "b" / "checkpoints"))
    assert_bitwise_equal(a, b, "continued vs uninterrupted")
    assert read_metrics(tmp_path / "a" / "metrics.csv") == read_metrics(
        tmp_path / "b" / "metrics.csv")
    assert "epochs = 4" in (tmp_path / "a" / "config.toml").read_text()
    assert read_summary(tmp_path / "a")["epochs"] == 4


@pytest.mark.slow
def test_continuing_a_sweep_member_by_member(tmp_path):
    base = [*QUIET, "--set", "data.n_samples=200", "--set", "training.epochs=1",
            "--grid", "optimizer.learning_rate=0.01,0.03", "--set", "optimizer.schedule.name=constant",
            "--set", "early_stopping.enabled=false"]
    rc, _, err = run_cli("sweep", CONFIGS / "sweep_lr.toml", "--out", tmp_path / "a", *base)
    assert rc == 0, err
    rc, _, err = run_cli("sweep", "--resume", tmp_path / "a", *QUIET, "--set",
                         "training.epochs=3")
    assert rc == 0, err
    rc, _, err = run_cli("sweep", CONFIGS / "sweep_lr.toml", "--out", tmp_path / "b", *base,
                         "--set", "training.epochs=3")
    assert rc == 0, err
    assert_bitwise_equal(checkpoint_arrays(final_checkpoint(tmp_path / "a" / "checkpoints")),
                         checkpoint_arrays(final_checkpoint(tmp_path / "b" / "checkpoints")))


def _finished(tmp_path, *sets):
    run = tmp_path / "run"
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", run, *QUICK,
                         *[a for s in sets for a in ("--set", s)])
    assert rc == 0, err
    return run


@pytest.mark.parametrize("sets,resume_sets,match", [
    (["optimizer.schedule.name=cosine"], ["training.epochs=4"],
     "--resume: training.epochs: 2 -> 4: optimizer.schedule.name = 'cosine' decays over the "
     "run's length"),
    ([], ["training.epochs=1"], "--resume: training.epochs: 2 -> 1; a resumed run can only be "
     "made longer (expected > 2)"),
    # a large rate: the loss rises after epoch 1, so restore_best ended the run on epoch 1's
    (["optimizer.learning_rate=0.9", "training.epochs=3"], ["training.epochs=5"],
     "--resume: training.epochs: 3 -> 5: early_stopping.restore_best put the best epoch's "
     "parameters in place at epoch 3, and the best epoch was an earlier one"),
    ([], ["training.epochs=4", "optimizer.learning_rate=0.1"],
     "--resume: the config differs from"),
])
def test_a_continuation_that_would_not_be_exact_is_refused(tmp_path, sets, resume_sets, match):
    run = _finished(tmp_path, *sets)
    def files():  # what the run wrote (fnn's own lock under .fnn/ is taken and let go)
        return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and ".fnn" not in
                p.parts}

    before = files()
    rc, _, err = run_cli("train", "--resume", run, *QUIET,
                         *[a for s in resume_sets for a in ("--set", s)])
    assert rc == 2, err
    assert match in err and len(err.strip().splitlines()) == 1, err
    assert files() == before


def test_a_run_directory_as_config_needs_resume(tmp_path):
    run = _finished(tmp_path)
    rc, _, err = run_cli("train", run, *QUIET)
    assert rc == 2 and f"CONFIG: '{run}' is a run directory; pass --resume" in err, err
    rc, _, err = run_cli("train", "--resume", run, "--out", tmp_path / "else", *QUIET)
    assert rc == 2 and "continues that run in place (leave --out out)" in err, err
    assert not (tmp_path / "else").exists()
    rc, _, err = run_cli("train", "--resume", tmp_path, *QUIET)
    assert rc == 2 and "holds no run to resume (no config.toml)" in err, err
    # the same epochs: nothing left to train, the reports written again
    rc, out, err = run_cli("train", "--resume", run, *QUIET)
    assert rc == 0, err
