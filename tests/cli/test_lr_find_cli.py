"""``fnn lr-find`` through the command line: the suggestion line, the files, where they go,
and every bad input as one line with exit 2 and nothing written."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_helpers import CONFIGS, run_cli

QUICK = str(CONFIGS / "quickstart.toml")
TINY = ["--set", "data.n_samples=400", "--set", "model.hidden=[16]",
        "--set", "optimizer.name=sgd", "--set", "training.batch_size=32"]
FAST = ["--steps", "20", "--min", "1e-2", "--max", "1e3", *TINY]
SUGGESTION = re.compile(r"^suggested learning rate: \d\.\de[-+]\d\d \(steepest descent of the "
                        r"smoothed loss\)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_lr_find_prints_the_suggestion_and_writes_into_the_current_directory(tmp_path):
    pytest.importorskip("matplotlib")
    rc, out, err = run_cli("lr-find", QUICK, *FAST)
    assert rc == 0, err
    assert len(SUGGESTION.findall(out)) == 1, out
    assert "divergence: the smoothed loss passed 4x its minimum" in out
    assert listing(tmp_path) == ["lr_find.csv", "lr_find.png"]
    assert (tmp_path / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_constant_rates_and_output_dir(tmp_path):
    pytest.importorskip("matplotlib")
    rc, _, err = run_cli("lr-find", QUICK, *FAST, "--constant", "3", "--output", "figs/lr")
    assert rc == 0, err
    assert listing(tmp_path / "figs" / "lr") == ["lr_find.csv", "lr_find.png",
                                                 "lr_find_constant.csv"]
    rows = (tmp_path / "figs" / "lr" / "lr_find_constant.csv").read_text().splitlines()
    assert rows[0] == "lr,final_loss,final_smoothed_loss" and len(rows) == 4
    # a second run replaces lr-find's own files
    rc, _, err = run_cli("lr-find", QUICK, *FAST, "--output", "figs/lr")
    assert rc == 0, err


def _run_dir(tmp):  # a run directory: lr-find never writes into its checkpoints/
    d = tmp / "runs" / "quickstart"
    (d / "checkpoints").mkdir(parents=True)
    (d / "config.toml").write_text("")
    return d


@pytest.mark.parametrize("argv,fragment,setup", [
    (["--min", "1", "--max", "0.1"], "lr-find: --min 1 must be below --max 0.1", None),
    (["--min", "0.5", "--max", "0.5"], "lr-find: --min 0.5 must be below --max 0.5", None),
    (["--min", "0"], "lr-find: --min 0; expected a finite learning rate > 0", None),
    (["--min=-1e-3"], "lr-find: --min -0.001; expected a finite learning rate > 0", None),
    (["--max", "nan"], "lr-find: --max nan; expected a finite learning rate > 0", None),
    (["--steps", "1"], "lr-find: --steps 1; expected an integer >= 5", None),
    (["--constant", "1"], "lr-find: --constant 1; expected an integer from 2 to 64", None),
    (["--constant", "1000"], "lr-find: --constant 1000; expected an integer from 2", None),
    (["--set", "training.batch_size=0"], "training.batch_size", None),
    (["--set", "model.activation=relux"], "model.activation", None),
    (["--set", "training.batch_size=100000"], "training.batch_size", None),
    (["--output", "taken"], "--output: 'taken' is a file; expected a directory",
     lambda tmp: (tmp / "taken").write_text("mine")),
    (["--output", "runs/quickstart/checkpoints"],
     "is the file checkpoints/lr_find.png of the run directory", _run_dir),
], ids=["order", "equal", "zero", "negative", "nan", "steps", "constant-1", "constant-big",
        "bad-batch", "bad-activation", "batch-too-big", "output-file", "run-checkpoints"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(argv, fragment, setup, tmp_path):
    if setup is not None:
        setup(tmp_path)
    before = listing(tmp_path)
    rc, out, err = run_cli("lr-find", QUICK, "--steps", "20", *argv)
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fnn: error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    assert listing(tmp_path) == before


def test_missing_config_exits_2(tmp_path):
    rc, out, err = run_cli("lr-find", "nope.toml")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "nope.toml" in err
    assert listing(tmp_path) == []


@pytest.mark.slow
def test_token_data_runs_by_windows(tmp_path):
    rc, out, err = run_cli("lr-find", CONFIGS / "adder.toml", "--steps", "8", "--min", "1e-4",
                           "--max", "1", "--output", "o")
    assert rc == 0, err
    assert "suggested learning rate:" in out
    assert (tmp_path / "o" / "lr_find.csv").read_text().count("\n") == 9


def test_lr_find_files_in_a_run_directory_are_fnn_files(tmp_path):
    """Written into a run directory, lr-find's files are recorded as fnn's: a later
    ``fnn train --overwrite`` replaces the run without refusing them as a user's files."""
    train = ["train", QUICK, *TINY, "--set", "training.epochs=1", "--set", "output.plots=false",
             "--quiet", "--out", "runs/q"]
    assert run_cli(*train)[0] == 0
    rc, _, err = run_cli("lr-find", QUICK, *FAST, "--output", "runs/q")
    assert rc == 0, err
    assert (tmp_path / "runs" / "q" / "lr_find.png").is_file()
    rc, _, err = run_cli(*train, "--overwrite")
    assert rc == 0, err
    assert not (tmp_path / "runs" / "q" / "lr_find.png").exists()
