"""The ``fnn`` command line end to end, in-process (``fnn.cli.main``): every shipped config
trains and leaves a complete run directory; bad configs, arguments and data exit 2 with a
one-line message and write nothing; sweeps, gradcheck, evaluate, predict and the halted path.

Runs are shrunk (2 epochs, a few hundred examples) and shared between tests through the
module-scoped ``runs`` fixture, so each config compiles once.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import jax
import numpy as np
import pytest

import fnn
from cli_helpers import (CONFIGS, QUIET, TEXT_CONFIGS, read_metrics, read_summary, run_cli,
                         shrink_args, write_config, write_text_file)
from fnn.nn import activations as acts
from fnn.experiment import checkpoint
from fnn.experiment import config as C
from fnn.experiment import build as exp
from fnn.experiment import runner

SHIPPED = sorted(p.stem for p in CONFIGS.glob("*.toml"))
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Relative paths (data files, the default runs/ directory) land in the test's tmp dir."""
    monkeypatch.chdir(tmp_path)


QUIET_RUNS = {"notes_xor"}  # trained with --quiet --overwrite into a non-empty directory


class Runs:
    """Memoized CLI runs of one module: ``runs.train("quickstart")`` -> (run_dir, rc, out, err)."""

    def __init__(self, root: Path):
        self.root, self.done = root, {}

    def cli(self, key: str, *argv):
        if key not in self.done:
            run_dir = self.root / key
            rc, out, err = run_cli(*argv, "--out", run_dir, plots=True)  # as a user runs them
            self.done[key] = (run_dir, rc, out, err)
        return self.done[key]

    def train(self, name: str, *extra):
        if name in QUIET_RUNS and name not in self.done:  # an old run's directory to replace
            (self.root / name).mkdir()  # in the layout before manifests: checkpoints/ marks it
            (self.root / name / "checkpoints").mkdir()
            (self.root / name / "config.toml").write_text("old")
            (self.root / name / "summary.json").write_text("stale")
            extra = ("--overwrite", "--quiet", *extra)
        return self.cli(name, "train", CONFIGS / f"{name}.toml", *shrink_args(name), *extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("runs"))


def expected_config(name: str) -> C.Config:
    return C.load(CONFIGS / f"{name}.toml", [a for a in shrink_args(name) if a != "--set"])


def one_line_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected a one-line message, got:\n{err}"
    assert lines[0].startswith("fnn: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------------------------------------
# A complete run directory
# ---------------------------------------------------------------------------------------------
CORE_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm")
SUMMARY_MEMBER_FIELDS = ("final_train_loss", "final_val_loss", "best_epoch", "stop_epoch",
                         "stopped_early", "halted", "epochs_trained", "seed")
SUMMARY_RUN_FIELDS = ("wall_time_s", "samples_per_s", "fnn_version", "jax_version", "device",
                      "platform", "dataset", "task", "num_train", "epochs", "members")


def check_run_dir(run_dir: Path, cfg: C.Config, *, halted: bool = False) -> dict:
    """Assert that ``run_dir`` holds everything a finished run of ``cfg`` leaves; the summary."""
    assert {"checkpoints", "config.toml", "curves.png", "metrics.csv", "summary.json"} <= {
        p.name for p in run_dir.iterdir()}
    # config.toml: the resolved config, reloading to an equal one
    saved = C.from_dict(C.parse_toml((run_dir / "config.toml").read_text()))
    assert C.to_dict(saved) == C.to_dict(cfg)
    groups = exp.plan(cfg)
    members = sum(len(g.members) for g in groups)
    epochs = exp.rounds(cfg)  # evaluations of a step-based run
    labels = [label for g in groups for label in g.labels]
    assert len(set(labels)) == members

    summary = read_summary(run_dir)
    trained = {m["member"] if members > 1 else "0": m["epochs_trained"]
               for m in summary["members"]}
    if not halted:
        assert set(trained.values()) == {epochs}

    # metrics.csv: one row per member per trained epoch (a halted run skips the rest)
    rows = read_metrics(run_dir / "metrics.csv")
    assert len(rows) == sum(trained.values())
    assert {"member", "epoch", "train_loss", "val_loss", "grad_norm"} <= set(rows[0])
    per_member = {}
    for r in rows:
        per_member.setdefault(r["member"], []).append(int(r["epoch"]))
        if not halted:  # (diagnostics columns may be NaN for layers a group lacks)
            assert all(math.isfinite(float(r[k])) for k in CORE_METRICS if k in r), r
    expected_labels = set(labels) if members > 1 else {"0"}
    assert set(per_member) == expected_labels
    assert all(e == list(range(1, trained[k] + 1)) for k, e in per_member.items())

    # summary.json: the documented fields
    for f in SUMMARY_RUN_FIELDS:
        assert f in summary, f
    assert summary["fnn_version"] == fnn.__version__
    assert summary["jax_version"] == jax.__version__
    assert summary["device"] and summary["platform"] == jax.devices()[0].platform
    assert summary["wall_time_s"] > 0 and summary["samples_per_s"] > 0
    assert summary["epochs"] == epochs and len(summary["members"]) == members
    monitor = cfg.early_stopping.monitor
    dataset = exp.load_dataset(cfg)
    for m in summary["members"]:
        for f in SUMMARY_MEMBER_FIELDS + (f"best_{monitor}", f"best_epoch_by_{monitor}"):
            assert f in m, (f, sorted(m))
        assert m["halted"] is halted
        assert m["stopped_early"] is False and m["stop_epoch"] is None
        if not halted:
            assert 1 <= m["best_epoch"] <= epochs
            assert math.isfinite(m["final_train_loss"]) and math.isfinite(m[f"best_{monitor}"])
        if dataset.x_test is not None:
            assert "test_loss" in m
        if dataset.task == "classification":
            assert "final_val_accuracy" in m
    if members == 1:  # a single run's fields are also at the top level
        for f in SUMMARY_MEMBER_FIELDS:
            assert summary[f] == summary["members"][0][f]

    # checkpoints/: a complete checkpoint of the last epoch per group (loading it into a fresh
    # state is what evaluate / predict do: see the tests below)
    for gi, g in enumerate(groups):
        ckpt_dir = run_dir / "checkpoints" / (f"group-{gi}" if len(groups) > 1 else "")
        path = checkpoint.latest(ckpt_dir)  # verifies every entry's CRC and the header
        assert path is not None and path.name == checkpoint.filename(epochs)
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["__meta__"].tobytes())
            assert meta["epoch"] == epochs
            assert C.from_dict(C.parse_toml(meta["config_text"])) == saved
            lead = (len(g.members),) if len(g.members) > 1 else ()
            net = exp.build_net(g.config, dataset)  # every layer's parameters, of their shapes
            want = jax.eval_shape(net.init, jax.random.key(0))
            for i, p in enumerate(want):
                for name, leaf in (p.items() if isinstance(p, dict) else ()):
                    got = z[f"state.params[{i}][{name!r}]"]
                    assert got.shape == lead + leaf.shape and np.isfinite(got).all()
            if not g.config.model.layers:  # an MLP: (features, *hidden, outputs)
                widths = [dataset.num_features, *g.config.model.hidden]
                dense = [i for i, p in enumerate(want) if p]  # Dropout layers have {} entries
                for i, width in zip(dense, widths):
                    assert z[f"state.params[{i}]['w']"].shape[len(lead)] == width
            assert int(np.max(z["state.epoch"])) == epochs

    # curves.png: a PNG image
    png = (run_dir / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    return summary


# Every shipped config trains in the full suite; the quick run (-m "not slow") keeps the two
# that train in about a second (quickstart, notes_xor), the others take 3-15 s each.
FAST = {"quickstart", "notes_xor"}
SLOW = set(SHIPPED) - FAST


def _shipped_params():
    out = []
    for name in SHIPPED:
        marks = [pytest.mark.slow] if name in SLOW else []
        if name == "fashion_mnist":
            missing = [f for f in FASHION_FILES if not (FASHION_DIR / f).is_file()]
            if missing:
                marks.append(pytest.mark.skip(reason=f"Fashion-MNIST files absent from "
                                                     f"{FASHION_DIR}: {', '.join(missing)}"))
        out.append(pytest.param(name, marks=marks))
    return out


@pytest.mark.parametrize("name", _shipped_params())
def test_shipped_config_trains_end_to_end(name, runs):
    data_path = FASHION_DIR if name == "fashion_mnist" else \
        write_text_file(runs.root / "input.txt") if name in TEXT_CONFIGS else None
    extra = ("--set", f"data.path={data_path}") if data_path else ()
    run_dir, rc, out, err = runs.train(name, *extra)
    assert rc == 0, err
    assert "Traceback" not in err
    cfg = expected_config(name)
    if extra:
        cfg = cfg.replace("data.path", str(data_path))
    summary = check_run_dir(run_dir, cfg)
    # the overrides are in the resolved config.toml
    saved = C.parse_toml((run_dir / "config.toml").read_text())
    assert saved["training"]["epochs"] == cfg.training.epochs
    assert saved["output"]["progress"] is False
    if name in QUIET_RUNS:  # --quiet: nothing printed
        assert out == "" and err == ""
    else:  # the results table (one row per member) and the run directory are printed
        assert f"run directory: {run_dir}" in out
        for m in summary["members"]:
            assert m["member"] in out


def test_resolved_config_reflects_set_overrides(runs):
    run_dir, rc, _, err = runs.train("quickstart")
    assert rc == 0, err
    saved = C.from_dict(C.parse_toml((run_dir / "config.toml").read_text()))
    shipped = C.load(CONFIGS / "quickstart.toml")
    assert saved.data.n_samples == 300 != shipped.data.n_samples
    assert saved.training.epochs == 2 != shipped.training.epochs
    assert saved.optimizer == shipped.optimizer and saved.model == shipped.model


def test_overwrite_replaced_a_non_empty_run_dir(runs):
    run_dir, rc, out, err = runs.train("notes_xor")  # trained with --overwrite --quiet
    assert rc == 0, err
    assert (run_dir / "summary.json").read_text() != "stale"
    assert (run_dir / "config.toml").read_text() != "old"


def test_default_run_dir_is_output_dir_slash_config_name(tmp_path):
    cfg = C.load(write_config(tmp_path / "tiny.toml", '[data]\nname = "xor"\n'))
    assert runner.run_dir_for(cfg, None) == Path("runs") / "tiny"
    assert runner.run_dir_for(cfg.replace("output.name", "x"), None) == Path("runs") / "x"
    assert runner.run_dir_for(cfg.replace("output.dir", "/d"), None) == Path("/d/tiny")
    assert runner.run_dir_for(cfg, str(tmp_path / "o")) == tmp_path / "o"


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2, one line naming the problem, nothing written
# ---------------------------------------------------------------------------------------------
BASE = '[data]\nname = "moons"\nn_samples = 64\n'
TRAIN = ("train", "{cfg}", "--out", "{out}")
SWEEP = ("sweep", "{cfg}", "--out", "{out}")


def _bad_csv(tmp):
    (tmp / "bad.csv").write_text("a,b,label\n1,2,0\n3,x,1\n4,5,0\n")


def _bad_npz(tmp):
    (tmp / "bad.npz").write_bytes(b"this is not a zip archive")


def _npz_without_y(tmp):
    np.savez(tmp / "noy.npz", x=np.zeros((8, 2), np.float32))


def _good_csv(tmp):
    (tmp / "good.csv").write_text("a,b,label\n" + "".join(
        f"{i},{i % 3},{'yes' if i % 2 else 'no'}\n" for i in range(20)))


def _non_empty_out(tmp):
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("mine")


def _empty_out(tmp):
    (tmp / "out").mkdir()


def _other_run(tmp):
    (tmp / "out").mkdir()
    other = C.from_dict({"data": {"name": "moons", "n_samples": 64},
                         "optimizer": {"learning_rate": 0.5}})
    (tmp / "out" / "config.toml").write_text(C.to_toml(other))
    (tmp / "out" / "checkpoints").mkdir()


BAD = [
    # (id, config text, argv, message fragment, setup)
    ("unknown-section", BASE + "[trainig]\nepochs = 1\n", TRAIN,
     "trainig: unknown section (did you mean 'training'?)", None),
    ("unknown-key", BASE + "[optimizer]\nlerning_rate = 0.1\n", TRAIN,
     "optimizer.lerning_rate: unknown key (did you mean 'learning_rate'?)", None),
    ("unknown-nested-key", BASE + "[optimizer.schedule]\nnmae = 'cosine'\n", TRAIN,
     "optimizer.schedule.nmae: unknown key (did you mean 'name'?)", None),
    ("string-for-number", BASE + "[optimizer]\nlearning_rate = 'fast'\n", TRAIN,
     "optimizer.learning_rate: 'fast' (str); expected a number", None),
    ("float-for-int", BASE + "[training]\nepochs = 2.5\n", TRAIN,
     "training.epochs: 2.5 (float); expected an integer", None),
    ("bool-for-int", BASE + "[training]\nbatch_size = true\n", TRAIN,
     "training.batch_size: True (bool); expected an integer", None),
    ("string-for-bool", BASE + "[early_stopping]\nenabled = 'yes'\n", TRAIN,
     "early_stopping.enabled: 'yes' (str); expected true or false", None),
    ("negative-lr", BASE + "[optimizer]\nlearning_rate = -0.01\n", TRAIN,
     "optimizer.learning_rate: -0.01 out of range; expected > 0", None),
    ("drop-rate-1", BASE + "[regularization]\ndrop_rate = 1.0\n", TRAIN,
     "regularization.drop_rate: 1.0 out of range; expected < 1", None),
    ("batch-size-0", BASE + "[training]\nbatch_size = 0\n", TRAIN,
     "training.batch_size: 0 out of range; expected >= 1", None),
    ("patience-0", BASE + "[early_stopping]\nenabled = true\npatience = 0\n", TRAIN,
     "early_stopping.patience: 0 out of range; expected >= 1", None),
    ("missing-data-name", "[data]\nn_samples = 64\n", TRAIN,
     "data.name: missing required key", None),
    ("no-data-section", "[training]\nepochs = 1\n", TRAIN, "data.name: missing required key", None),
    ("unknown-dataset", '[data]\nname = "moonz"\n', TRAIN,
     "data.name: 'moonz' is not valid (did you mean 'moons'?)", None),
    ("unknown-activation", BASE + "[model]\nactivation = 'rleu'\n", TRAIN,
     "model.activation: 'rleu' is not valid (did you mean 'relu'?)", None),
    ("unknown-optimizer", BASE + "[optimizer]\nname = 'adamm'\n", TRAIN,
     "optimizer.name: 'adamm' is not valid (did you mean 'adam'?)", None),
    ("unknown-loss", BASE + "[loss]\nname = 'cross_entropi'\n", TRAIN,
     "loss.name: 'cross_entropi' is not valid (did you mean 'cross_entropy'?)", None),
    ("unknown-schedule", BASE + "[optimizer.schedule]\nname = 'cosin'\n", TRAIN,
     "optimizer.schedule.name: 'cosin' is not valid (did you mean 'cosine'?)", None),
    ("loss-output-pairing", BASE + "[loss]\nname = 'cross_entropy'\n[model]\noutput = 'sigmoid'\n",
     TRAIN, "model.output: 'sigmoid' cannot be used with loss.name 'cross_entropy'", None),
    ("hidden-activation-lengths", BASE + "[model]\nhidden = [4, 4]\nactivation = ['relu']\n",
     TRAIN, "model.activation: 1 names for 2 hidden layers [4, 4]", None),
    ("warmup-longer-than-run", BASE + "[training]\nepochs = 3\n[optimizer.schedule]\n"
     "warmup_epochs = 3\n", TRAIN, "optimizer.schedule.warmup_epochs: 3; expected fewer", None),
    ("csv-path-missing", '[data]\nname = "csv"\n', TRAIN,
     "data.path: missing; data.name = 'csv' needs the file's path", None),
    ("csv-path-nonexistent", '[data]\nname = "csv"\npath = "nope.csv"\n', TRAIN,
     "data.path: 'nope.csv' does not exist or is not a file", None),
    ("npz-path-nonexistent", '[data]\nname = "npz"\npath = "nope.npz"\n', TRAIN,
     "data.path: 'nope.npz' does not exist or is not a file", None),
    ("idx-path-not-a-dir", '[data]\nname = "fashion_mnist"\npath = "nope"\n', TRAIN,
     "data.path: 'nope' is not a directory of IDX files", None),
    ("csv-non-numeric-cell", '[data]\nname = "csv"\npath = "bad.csv"\n', TRAIN,
     "column 'b', line 3: value 'x' is not numeric", _bad_csv),
    ("csv-unknown-target", '[data]\nname = "csv"\npath = "good.csv"\ntarget = "lable"\n', TRAIN,
     "data.target='lable': no such column", _good_csv),
    ("npz-malformed", '[data]\nname = "npz"\npath = "bad.npz"\n', TRAIN,
     "bad.npz': not a readable .npz archive", _bad_npz),
    ("npz-missing-array", '[data]\nname = "npz"\npath = "noy.npz"\n', TRAIN,
     "missing array 'y'", _npz_without_y),
    ("data-option-of-another-set", BASE + "num_classes = 3\n", TRAIN,
     "data: load('moons'): unknown option(s) 'num_classes'", None),
    ("data-fractions-too-large", BASE + "val_fraction = 0.6\ntest_fraction = 0.5\n", TRAIN,
     "data.val_fraction=0.6 and test_fraction=0.5", None),
    ("batch-larger-than-data", BASE + "[training]\nbatch_size = 1000\n", TRAIN,
     "training.batch_size: 1000; expected 1 <= batch_size <= ", None),
    ("image-augmentation-on-points", BASE + "[augmentation]\ntranslate = 2\n", TRAIN,
     "augmentation: translate/hflip/rotate_deg need image data", None),
    ("val-accuracy-on-regression", '[data]\nname = "sine"\n[early_stopping]\nenabled = true\n'
     "monitor = 'val_accuracy'\n", TRAIN,
     "early_stopping.monitor: 'val_accuracy' needs a classification task", None),
    ("toml-syntax", BASE + "epochs = = 3\n", TRAIN, "TOML syntax error: Invalid value (at line 4, column", None),
    ("toml-duplicate-table", BASE + "[data]\nname = 'xor'\n", TRAIN, "TOML syntax error", None),
    ("sweep-unknown-key", BASE + "[sweep]\noptimizer.lr = [0.1, 0.01]\n", TRAIN,
     "sweep.optimizer.lr: unknown key", None),
    ("sweep-bad-value", BASE + "[sweep]\noptimizer.learning_rate = [0.1, -1.0]\n", TRAIN,
     "sweep.optimizer.learning_rate: -1.0 out of range", None),
    ("set-no-equals", BASE, TRAIN + ("--set", "optimizer.learning_rate"),
     "--set 'optimizer.learning_rate': expected KEY=VALUE", None),
    ("set-unknown-key", BASE, TRAIN + ("--set", "optimizer.lerning_rate=0.1"),
     "--set optimizer.lerning_rate: unknown key (did you mean 'optimizer.learning_rate'?)", None),
    ("set-wrong-type", BASE, TRAIN + ("--set", "training.epochs=many"),
     "training.epochs: 'many' (str); expected an integer", None),
    ("set-out-of-range", BASE, TRAIN + ("--set", "optimizer.learning_rate=-1"),
     "optimizer.learning_rate: -1.0 out of range", None),
    ("grid-no-equals", BASE, SWEEP + ("--grid", "optimizer.learning_rate"),
     "--grid 'optimizer.learning_rate': expected KEY=V1,V2", None),
    ("grid-unknown-key", BASE, SWEEP + ("--grid", "optimizer.lr=0.1,0.01"),
     "sweep.optimizer.lr: unknown key", None),
    ("grid-wrong-type", BASE, SWEEP + ("--grid", "training.epochs=1,two"),
     "sweep.training.epochs: 'two' (str); expected an integer", None),
    ("grid-no-values", BASE, SWEEP + ("--grid", "optimizer.learning_rate="),
     "sweep.optimizer.learning_rate: [] (list); expected a non-empty list", None),
    ("grid-seed", BASE, SWEEP + ("--grid", "training.seed=1,2"),
     "sweep.training.seed: use training.seeds (or --seeds N)", None),
    ("seeds-0", BASE, SWEEP + ("--seeds", "0"), "--seeds: 0; expected an integer >= 1", None),
    ("seeds-0-with-grid", BASE, SWEEP + ("--grid", "optimizer.learning_rate=0.1,0.2", "--seeds", "0"),
     "--seeds: 0; expected an integer >= 1", None),
    ("sweep-nothing", BASE, SWEEP, "fnn sweep: nothing to sweep", None),
    ("config-file-missing", None, ("train", "missing.toml", "--out", "{out}"),
     "config file 'missing.toml' does not exist", None),
    ("run-dir-not-empty", BASE, TRAIN, "is not empty; pass --overwrite to replace it or --resume",
     _non_empty_out),
    ("resume-empty-dir", BASE, TRAIN + ("--resume",), "holds no run to resume", _empty_out),
    ("resume-no-dir", BASE, TRAIN + ("--resume",), "holds no run to resume", None),
    ("resume-other-config", BASE, TRAIN + ("--resume",),
     "--resume: the config differs from", _other_run),
    ("gradcheck-bad-config", BASE + "[model]\nhiden = [3]\n", ("gradcheck", "{cfg}"),
     "model.hiden: unknown key (did you mean 'hidden'?)", None),
    ("gradcheck-batch-0", BASE, ("gradcheck", "{cfg}", "--batch", "0"),
     "--batch: 0; expected an integer >= 1", None),
    ("evaluate-not-a-run", None, ("evaluate", "{out}"), "is not a run directory", None),
    ("predict-not-a-run", None, ("predict", "{out}", "x.csv"),
     "is neither a run directory nor an exported model", None),
]


@pytest.mark.parametrize("case_id, text, argv, fragment, setup", BAD, ids=[c[0] for c in BAD])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case_id, text, argv, fragment, setup,
                                                            tmp_path):
    cfg, out = tmp_path / "c.toml", tmp_path / "out"
    if text is not None:
        cfg.write_text(text)
    if setup is not None:
        setup(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    extra = QUIET if argv[0] in ("train", "sweep", "gradcheck") else ()
    rc, stdout, err = run_cli(*[a.format(cfg=cfg, out=out) for a in argv], *extra)
    assert rc == 2, (rc, stdout, err)
    line = one_line_error(err)
    assert fragment in line, line
    assert stdout == ""
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, "files were written"


def test_argument_errors_exit_2_with_usage(tmp_path):
    cfg = write_config(tmp_path / "c.toml", BASE)
    for argv, fragment in [
        (("trian", cfg), "invalid choice: 'trian'"),
        (("train",), "the following arguments are required: CONFIG"),
        (("sweep", cfg, "--seeds", "two"), "argument --seeds: invalid int value: 'two'"),
        (("evaluate", tmp_path, "--split", "dev"), "argument --split: invalid choice: 'dev'"),
    ]:
        rc, out, err = run_cli(*argv)
        assert rc == 2, (argv, err)
        assert err.startswith("fnn: error: ") and fragment in err
        # one line: the error, then argparse's usage folded into it
        assert len(err.strip().splitlines()) == 1 and "(usage: fnn" in err
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_every_problem_is_listed_at_once(tmp_path):
    cfg = write_config(tmp_path / "c.toml", BASE + "[optimizer]\nlearning_rate = -1\n"
                       "[regularization]\ndrop_rate = 1.0\n[training]\nbatch_size = 0\n")
    rc, out, err = run_cli("train", cfg, "--out", tmp_path / "out")
    assert rc == 2 and out == "" and "Traceback" not in err
    lines = err.splitlines()
    # the documented exception to one-line errors: the first line is complete on its own
    assert lines[0] == (f"fnn: error: {cfg}: 3 problems: optimizer.learning_rate: -1.0 out of "
                        "range; expected > 0 (all 3 below)")
    assert [ln.strip().split(":")[0] for ln in lines[1:]] == [
        "optimizer.learning_rate", "regularization.drop_rate", "training.batch_size"]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# Sweeps
# ---------------------------------------------------------------------------------------------
def _table_rows(out: str, column: str) -> list[dict]:
    """Parse the printed results table (header, dashes, rows) into dicts of strings."""
    lines = out.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("member") and column in ln)
    dashes = lines[i + 1]
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", dashes)]
    cells = lambda ln: [ln[a:b if k + 1 < len(spans) else None].strip()
                        for k, (a, b) in enumerate(spans)]
    header = cells(lines[i])
    rows = []
    for ln in lines[i + 2:]:
        if not ln.strip() or ln.startswith("run directory"):
            break
        rows.append(dict(zip(header, cells(ln))))
    return rows


@pytest.mark.slow
def test_sweep_grid_and_seeds_is_one_group_sorted_by_the_monitor(runs):
    run_dir, rc, out, err = runs.cli(
        "sweep-lr-seeds", "sweep", CONFIGS / "quickstart.toml", *shrink_args("quickstart"),
        "--grid", "optimizer.learning_rate=1e-3,1e-2", "--seeds", "2")
    assert rc == 0, err
    cfg = expected_config("quickstart")
    cfg = cfg.replace("training.seeds", (0, 1))
    cfg = dataclasses.replace(cfg, sweep=(("optimizer.learning_rate", (1e-3, 1e-2)),))
    summary = check_run_dir(run_dir, cfg)  # config.toml records the grid and the seeds
    assert {m["group"] for m in summary["members"]} == {"all members"}
    assert sorted((m["learning_rate"], m["seed"]) for m in summary["members"]) == [
        (1e-3, 0), (1e-3, 1), (1e-2, 0), (1e-2, 1)]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["ckpt-000002.npz"]
    rows = _table_rows(out, "best_val_loss")
    assert len(rows) == 4
    values = [float(r["best_val_loss"]) for r in rows]
    assert values == sorted(values)
    by_label = {m["member"]: m["best_val_loss"] for m in summary["members"]}
    assert [r["member"] for r in rows] == sorted(by_label, key=by_label.get)

    # evaluate and predict rebuild the sweep from the run directory alone
    rc, out, err = run_cli("evaluate", run_dir, "--json")
    assert rc == 0, err
    rows = json.loads(out)
    assert [r["member"] for r in rows] == [m["member"] for m in summary["members"]]
    for r, m in zip(rows, summary["members"]):
        assert r["loss"] == m["test_loss"] and r["accuracy"] == m["test_accuracy"]


@pytest.mark.slow
def test_sweep_over_a_static_key_makes_separate_groups(runs):
    run_dir, rc, out, err = runs.cli(
        "sweep-activation", "sweep", CONFIGS / "quickstart.toml", *shrink_args("quickstart"),
        "--grid", "model.activation=relu,tanh")
    assert rc == 0, err
    cfg = dataclasses.replace(expected_config("quickstart"),
                              sweep=(("model.activation", ("relu", "tanh")),))
    summary = check_run_dir(run_dir, cfg)
    assert [m["group"] for m in summary["members"]] == [
        "model.activation=relu", "model.activation=tanh"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["group-0", "group-1"]


# ---------------------------------------------------------------------------------------------
# evaluate / predict
# ---------------------------------------------------------------------------------------------
def test_evaluate_prints_the_summary_test_metrics(runs):
    run_dir, rc, _, err = runs.train("quickstart")
    assert rc == 0, err
    summary = read_summary(run_dir)
    rc, out, err = run_cli("evaluate", run_dir, "--json")
    assert rc == 0, err
    got = json.loads(out)
    assert got["split"] == "test" and got["examples"] == 60
    assert got["loss"] == summary["test_loss"] and got["accuracy"] == summary["test_accuracy"]
    rc, out, err = run_cli("evaluate", run_dir)
    assert rc == 0, err
    assert f"{summary['test_loss']:.4g}" in out and f"{summary['test_accuracy']:.4g}" in out
    rc, out, err = run_cli("evaluate", run_dir, "--split", "val", "--json")
    assert rc == 0, err
    val = json.loads(out)
    assert val["split"] == "val"
    assert val["loss"] == pytest.approx(summary["final_val_loss"], rel=1e-5)


def test_evaluate_a_regression_run(runs):
    run_dir, rc, _, err = runs.train("regression_sine")
    assert rc == 0, err
    rc, out, err = run_cli("evaluate", run_dir, "--json")
    assert rc == 0, err
    got = json.loads(out)
    assert "accuracy" not in got
    assert got["loss"] == read_summary(run_dir)["test_loss"]


@pytest.fixture(scope="module")
def csv_run(runs, tmp_path_factory):
    """A run trained on a CSV file with text labels (columns f1, f2, label)."""
    from fnn import data

    d = data.load("moons", n_samples=200, noise=0.1)
    root = tmp_path_factory.mktemp("csv")
    lines = ["f1,f2,label"] + [f"{a:.6f},{b:.6f},{'round' if y else 'flat'}"
                               for (a, b), y in zip(d.x_train, d.y_train)]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    cfg = write_config(root / "csv_run.toml", f'[data]\nname = "csv"\npath = "{root / "train.csv"}"'
                       '\ntarget = "label"\nstandardize = true\n[model]\nhidden = [8]\n'
                       '[training]\nepochs = 2\nbatch_size = 16\n[output]\nprogress = false\n')
    run_dir, rc, out, err = runs.cli("csv", "train", cfg)
    assert rc == 0, err
    return run_dir, d


def _read_csv(path: Path) -> list[list[str]]:
    return [ln.split(",") for ln in path.read_text().splitlines()]


def test_predict_csv_trained_run(csv_run, tmp_path):
    run_dir, d = csv_run
    x = d.x_train[:7]
    with_target = tmp_path / "with_target.csv"
    with_target.write_text("f1,f2,label\n" + "".join(f"{a},{b},flat\n" for a, b in x))
    rc, out, err = run_cli("predict", run_dir, with_target)
    assert rc == 0, err
    pred_path = tmp_path / "with_target.predictions.csv"
    assert f"predictions written to {pred_path}" in out
    rows = _read_csv(pred_path)
    assert rows[0] == ["prediction", "p_flat", "p_round"]
    assert len(rows) == 1 + len(x)
    for r in rows[1:]:
        assert r[0] in ("flat", "round")
        p = [float(v) for v in r[1:]]
        assert sum(p) == pytest.approx(1, abs=1e-5)
        assert r[0] == ("flat", "round")[int(np.argmax(p))]
    # the same features without the target column, to an explicit output file
    features = tmp_path / "features.csv"
    features.write_text("f1,f2\n" + "".join(f"{a},{b}\n" for a, b in x))
    rc, out, err = run_cli("predict", run_dir, features, "--output", tmp_path / "p.csv")
    assert rc == 0, err
    assert _read_csv(tmp_path / "p.csv") == rows


def test_predict_synthetic_run_from_npz_and_csv(runs, tmp_path):
    run_dir, rc, _, err = runs.train("quickstart")
    assert rc == 0, err
    x = np.random.default_rng(0).normal(size=(9, 2)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    rc, out, err = run_cli("predict", run_dir, tmp_path / "in.npz")
    assert rc == 0, err
    from_npz = _read_csv(tmp_path / "in.predictions.csv")
    assert from_npz[0] == ["prediction", "p_0", "p_1"] and len(from_npz) == 10
    (tmp_path / "in.csv").write_text("x0,x1\n" + "".join(f"{a!r},{b!r}\n" for a, b in x.tolist()))
    rc, out, err = run_cli("predict", run_dir, tmp_path / "in.csv")
    assert rc == 0, err
    assert _read_csv(tmp_path / "in.predictions.csv") == from_npz
    # regression: one column per target
    run_dir, rc, _, err = runs.train("regression_sine")
    np.savez(tmp_path / "r.npz", x=np.linspace(-3, 3, 11, dtype=np.float32)[:, None])
    rc, out, err = run_cli("predict", run_dir, tmp_path / "r.npz", "--output", tmp_path / "r.csv")
    assert rc == 0, err
    rows = _read_csv(tmp_path / "r.csv")
    assert rows[0] == ["y_0"] and len(rows) == 12
    assert all(math.isfinite(float(r[0])) for r in rows[1:])


BAD_INPUTS = [
    ("missing-file", None, "does not exist"),
    ("wrong-extension", ("in.txt", "1,2\n"), "expected a .csv or .npz file"),
    ("non-numeric-cell", ("in.csv", "x0,x1\n1,2\n3,abc\n"), "column 'x1' row 3: 'abc' is not a number"),
    ("header-only", ("in.csv", "x0,x1\n"), "expected a header row and at least one data row"),
    ("ragged-row", ("in.csv", "x0,x1\n1,2\n3\n"), "row 3 has 1 cells; expected 2"),
    ("too-many-columns", ("in.csv", "a,b,c\n1,2,3\n"), "the model expects (examples, 2)"),
    ("npz-without-x", ("in.npz", {"y": np.zeros(3)}), "no array 'x' (found: y)"),
    ("npz-wrong-width", ("in.npz", {"x": np.zeros((3, 5), np.float32)}), "inputs of shape (3, 5)"),
    ("npz-non-finite", ("in.npz", {"x": np.array([[0, 1], [np.nan, 2]], np.float32)}),
     "non-finite value at row 1, column 0"),
    ("npz-not-a-zip", ("in.npz", b"garbage"), "INPUT in.npz: not a readable .npz file (not a zip"),
    ("npz-object-array", ("in.npz", {"x": np.array([[1, "a"]], dtype=object)}),
     "INPUT in.npz: array 'x' cannot be read"),
]


@pytest.mark.parametrize("case_id, content, fragment", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_predict_bad_input_exits_2(case_id, content, fragment, runs, tmp_path):
    run_dir, rc, _, err = runs.train("quickstart")
    assert rc == 0, err
    if content is None:
        path = tmp_path / "absent.csv"
    else:
        path = tmp_path / content[0]
        body = content[1]
        if isinstance(body, dict):
            np.savez(path, **body)
        elif isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body)
    before = sorted(tmp_path.iterdir())
    rc, out, err = run_cli("predict", run_dir, path)
    assert rc == 2, (out, err)
    assert fragment in one_line_error(err)
    assert sorted(tmp_path.iterdir()) == before  # no predictions file


# ---------------------------------------------------------------------------------------------
# gradcheck
# ---------------------------------------------------------------------------------------------
def test_gradcheck_passes_on_a_shipped_config():
    rc, out, err = run_cli("gradcheck", CONFIGS / "notes_xor.toml")
    assert rc == 0, err
    assert "PASS" in out and "FAIL" not in out
    assert "network (2,) -> Dense(2, activation='relu')" in out and "loss mse" in out
    rc, out, err = run_cli("gradcheck", CONFIGS / "notes_xor.toml", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["passed"] is True
    # one entry per parameter leaf: 2 dense layers x (w, b)
    assert len(report["leaves"]) == 4
    assert sorted(tuple(leaf["shape"]) for leaf in report["leaves"]) == [(1,), (2,), (2, 1), (2, 2)]
    for leaf in report["leaves"]:
        assert {"path", "shape", "vs_autodiff", "vs_fd"} <= set(leaf)
        assert leaf["vs_autodiff"]["norm_rel"] <= report["tol_autodiff"]


def test_gradcheck_fails_on_a_wrong_derivative(monkeypatch):
    # tanh' = 1 - a² with the a² lost: a derivative missing a factor of a
    broken = acts.Activation("tanh", acts.tanh, lambda z, a: 1 - a)
    monkeypatch.setitem(acts.ACTIVATIONS, "tanh", broken)
    try:
        # the notes' network with tanh hidden units; a batch size no other test uses
        argv = ("gradcheck", CONFIGS / "notes_xor.toml", "--set", "model.activation=tanh",
                "--batch", "3")
        rc, out, err = run_cli(*argv)
        assert rc == 1, err
        assert "FAIL" in out
        rc, out, err = run_cli(*argv, "--json")
        assert rc == 1, err
        report = json.loads(out)
        assert report["passed"] is False
        bad = {leaf["path"] for leaf in report["leaves"]
               if leaf["vs_autodiff"]["norm_rel"] > report["tol_autodiff"]}
        # the tanh layer's gradients are wrong; the sigmoid output layer's are not
        assert len(report["leaves"]) == 4 and len(bad) == 2
        assert bad == {"layer0.w", "layer0.b"}, bad
    finally:
        jax.clear_caches()  # nothing compiled with the broken derivative outlives the test


# ---------------------------------------------------------------------------------------------
# A run that diverges
# ---------------------------------------------------------------------------------------------
def test_diverging_run_halts_exit_1(tmp_path):
    run_dir = tmp_path / "halted"
    rc, out, err = run_cli("train", CONFIGS / "regression_sine.toml",
                           *shrink_args("regression_sine"), "--set", "optimizer.name=sgd",
                           "--set", "optimizer.learning_rate=1e30", "--out", run_dir, plots=True)
    assert rc == 1, err
    assert "halted" in err and "Traceback" not in err
    cfg = expected_config("regression_sine")
    cfg = cfg.replace("optimizer.name", "sgd").replace("optimizer.learning_rate", 1e30)
    summary = check_run_dir(run_dir, cfg, halted=True)
    assert summary["halted"] is True and summary["halted_step"] is not None
    # parameters are kept from the last good step: finite
    import fnn

    params = fnn.load_run(run_dir).params
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(params))


def test_nan_guard_key_reaches_the_trainer(tmp_path):
    """training.nan_guard is validated by the schema and passed to the engine."""
    cfg = C.from_dict({"data": {"name": "xor"},
                       "training": {"nan_guard": "revert", "batch_size": 4}})
    trainer = exp.build_trainer(cfg, exp.load_dataset(cfg))
    assert trainer.nan_guard == "revert"
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--set", "training.nan_guard=skip",
                         "--out", tmp_path / "r")
    assert rc == 2 and err.count("\n") == 1 and "training.nan_guard" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("value", ["off", "on", "auto"])
def test_flat_updates_config_key_reaches_the_trainer(value):
    """training.flat_updates is validated by the schema and passed to the engine's Numerics."""
    cfg = C.from_dict({"data": {"name": "xor"},
                       "training": {"flat_updates": value, "batch_size": 4}})
    assert exp.build_trainer(cfg, exp.load_dataset(cfg)).flat_updates == value


def test_flat_updates_trains_and_a_bad_value_is_one_line(tmp_path):
    rc, out, err = run_cli("train", CONFIGS / "notes_xor.toml", *shrink_args("notes_xor"),
                           "--set", "training.flat_updates=on", "--out", tmp_path / "ok")
    assert rc == 0, out + err
    assert "flat_updates = \"on\"" in (tmp_path / "ok" / "config.toml").read_text()
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--set",
                         "training.flat_updates=yes", "--out", tmp_path / "r")
    assert rc == 2 and err.count("\n") == 1, err
    assert "training.flat_updates: 'yes' is not valid; expected one of: 'off', 'on', 'auto'" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_warm_run_compiles_nothing(tmp_path):
    """The persistent compilation cache keeps every program of a run, however small, so a
    second identical run adds no entry (and compiles nothing)."""
    from cli_helpers import run_process

    cache = tmp_path / "cache"
    args = ("train", CONFIGS / "quickstart.toml", *shrink_args("quickstart"), "--quiet",
            "--overwrite", "--out", tmp_path / "run")
    first = run_process(args, cwd=tmp_path, cache_dir=cache)
    assert first.returncode == 0, first.stderr
    entries = {p.name for p in (cache / "jax").iterdir()}
    # init, run, evaluation and the small eager programs (one-hot, key seeding, ...)
    assert len(entries) >= 6, entries
    second = run_process(args, cwd=tmp_path, cache_dir=cache)
    assert second.returncode == 0, second.stderr
    assert {p.name for p in (cache / "jax").iterdir()} == entries
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0


def test_the_train_table_shows_the_last_and_the_best_epoch(runs):
    """Issue 23: the single-run table showed only final_val_loss (the last epoch's) while the
    saved model is the best epoch's. Both are shown, each under its own name."""
    run_dir, rc, out, err = runs.train("quickstart")
    assert rc == 0, err
    header = next(line for line in out.splitlines() if line.startswith("member"))
    cols = header.split()
    assert "final_val_loss" in cols and "best_val_loss" in cols and "best_epoch" in cols, header
    summary = read_summary(run_dir)["members"][0]
    row = out.splitlines()[out.splitlines().index(header) + 2].split()
    assert row[cols.index("best_val_loss")] == f"{summary['best_val_loss']:.4g}"
