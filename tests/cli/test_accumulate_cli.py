"""``training.accumulate`` through the config and the CLI: a run with K micro-batches trains to the
parameters of the run without, a K that does not divide the batch is one line (exit 2, nothing
written), and the memory pre-check counts one micro-batch."""

from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import CONFIGS, QUIET, checkpoint_arrays, final_checkpoint, params_of, run_cli
from fnn.experiment import config as config_mod
from fnn.experiment import memory
from fnn.experiment.build import build_net, load_dataset

QUICK = [*QUIET, "--set", "training.epochs=2", "--set", "data.n_samples=300"]


@pytest.mark.slow
def test_a_run_with_micro_batches_trains_like_the_run_without(tmp_path):
    """quickstart (batch 64) with accumulate=4 ends on the parameters of the plain run, to
    float32 rounding: 4 micro-batches of 16 rows make each update of 64."""
    finals = {}
    for k in (1, 4):
        out = tmp_path / f"k{k}"
        rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", out, *QUICK,
                             "--set", f"training.accumulate={k}")
        assert rc == 0, err
        finals[k] = params_of(checkpoint_arrays(final_checkpoint(out / "checkpoints")))
    assert finals[1].keys() == finals[4].keys()
    for name in finals[1]:
        np.testing.assert_allclose(finals[4][name], finals[1][name], atol=2e-5, err_msg=name)


@pytest.mark.parametrize("value,match", [
    ("3", "training.accumulate: 3; expected a divisor of training.batch_size = 64"),
    ("0", "training.accumulate: 0"),
    ("two", "training.accumulate"),
])
def test_accumulate_that_does_not_divide_the_batch_is_one_line(tmp_path, value, match):
    out = tmp_path / "run"
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", out, *QUICK,
                         "--set", f"training.accumulate={value}")
    assert rc == 2
    assert match in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_the_memory_check_counts_one_micro_batch():
    """A batch whose activations exceed the limit passes when it is accumulated in 16 parts."""
    base = config_mod.load(CONFIGS / "shapes_cnn.toml", overrides=["data.n_samples=64"])
    net = build_net(base, load_dataset(base))
    plain = memory.estimate(net, optimizer="adam", batch_size=4096)
    micro = memory.estimate(net, optimizer="adam", batch_size=4096, accumulate=16)
    assert micro["activations"] * 16 == plain["activations"]
    assert micro["training_state"] > plain["training_state"]  # the gradient sum's buffer
    limit_gb = (micro["total"] + plain["total"]) / 2 / memory.GB
    over = config_mod.load(CONFIGS / "shapes_cnn.toml", overrides=[
        "data.n_samples=64", "training.batch_size=4096", f"training.memory_limit_gb={limit_gb}"])
    with pytest.raises(ValueError, match=r"activations of a batch"):
        memory.check(over, net)
    fits = config_mod.load(CONFIGS / "shapes_cnn.toml", overrides=[
        "data.n_samples=64", "training.batch_size=4096", "training.accumulate=16",
        f"training.memory_limit_gb={limit_gb}"])
    memory.check(fits, net)
    tight = config_mod.load(CONFIGS / "shapes_cnn.toml", overrides=[
        "data.n_samples=64", "training.batch_size=4096", "training.accumulate=16",
        f"training.memory_limit_gb={micro['total'] / 2 / memory.GB}"])
    with pytest.raises(ValueError, match=r"activations of a micro-batch of 256 rows"):
        memory.check(tight, net)
