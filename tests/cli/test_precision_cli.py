"""``model.precision`` and ``model.dtype`` through the config and the CLI: bad values are one line
(exit 2, nothing written), and the quickstart and shapes_cnn trained in mixed bfloat16 reach
their float32 test accuracy to within 0.01."""

from __future__ import annotations

import pytest

from cli_helpers import CONFIGS, QUIET, read_summary, run_cli


@pytest.mark.parametrize("sets,match", [
    (["model.precision=float16"],
     "model.precision: 'float16'"),
    (["model.precision=bfloat16", "model.dtype=float64"],
     "model.precision: 'bfloat16' with model.dtype = 'float64'; expected model.dtype = "
     "'float32'"),
    (["model.dtype=int8"],
     "model.dtype: 'int8'"),
])
def test_bad_precision_or_dtype_is_one_line(tmp_path, sets, match):
    out = tmp_path / "run"
    args = [a for s in sets for a in ("--set", s)]
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", out, *QUIET, *args)
    assert rc == 2, err
    assert match in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.slow
def test_the_config_accepts_bfloat16_parameters_as_sequential_does(tmp_path):
    """model.dtype lists what fnn.Sequential accepts: a pure bfloat16 network trains too."""
    out = tmp_path / "run"
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", out, *QUIET,
                         "--set", "model.dtype=bfloat16", "--set", "training.epochs=2",
                         "--set", "data.n_samples=300")
    assert rc == 0, err
    assert read_summary(out)["test_accuracy"] > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("config,sets", [
    ("quickstart", []),
    ("shapes_cnn", ["data.n_samples=1200", "training.epochs=8"]),
])
def test_bf16_reaches_the_float32_test_accuracy(tmp_path, config, sets):
    acc = {}
    for p in ("full", "bfloat16"):
        out = tmp_path / p
        args = [a for s in [*sets, f"model.precision={p}"] for a in ("--set", s)]
        rc, _, err = run_cli("train", CONFIGS / f"{config}.toml", "--out", out, *QUIET, *args)
        assert rc == 0, err
        acc[p] = read_summary(out)["test_accuracy"]
    assert acc["bfloat16"] >= acc["full"] - 0.01, acc
