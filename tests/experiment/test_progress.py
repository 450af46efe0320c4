"""Issue 23: the progress bar tells the truth: an early-stopped run's bar ends at its stop epoch
with its last real metrics, and the first ETA does not include compilation."""
from __future__ import annotations

import re

import pytest

from cli_helpers import CONFIGS, read_summary, run_cli
from fnn.experiment.progress import ProgressBar


@pytest.mark.slow
def test_an_early_stopped_run_ends_at_its_stop_epoch_with_real_metrics(tmp_path):
    out = tmp_path / "run"
    rc, stdout, stderr = run_cli(
        "train", CONFIGS / "quickstart.toml", "--out", out, "--set", "data.n_samples=300",
        "--set", "training.epochs=40", "--set", "early_stopping.patience=2")
    assert rc == 0, stderr
    stop = read_summary(out)["members"][0]["stop_epoch"]
    assert stop is not None and stop < 40, "the run must stop early for this test"
    bars = [s for s in re.split(r"[\r\n]", stderr) if s.startswith("train")]
    final = bars[-1]
    assert f" {stop}/40 " in final, final  # not 40/40: the skipped epochs did not train
    assert re.search(r"train_loss=[0-9.e+-]+, val_loss=[0-9.e+-]+, val_acc=[0-9.]+", final), final
    assert not any(" 40/40 " in b for b in bars), bars


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _eta_seconds(bar) -> float:
    m = re.search(r"<(\d+):(\d+)", str(bar.bar))
    assert m, str(bar.bar)
    return int(m.group(1)) * 60 + int(m.group(2))


def test_the_first_eta_excludes_compilation():
    bar = ProgressBar(60, "train", enabled=True)
    clock = FakeClock()
    bar.bar._time = clock
    bar.bar.start_t = bar.bar.last_print_t = clock.t
    clock.t += 100.0  # compiling: 100 s before the first epoch reports
    for epoch in range(1, 6):  # then one epoch a second
        bar(epoch, {"train_loss": 0.5, "val_loss": 0.4})
        clock.t += 1.0
    bar(6, {"train_loss": 0.5, "val_loss": 0.4})
    # 54 epochs left at 1 epoch/s: about a minute, not the ~18 minutes compilation implies
    assert 40 <= _eta_seconds(bar) <= 70, str(bar.bar)
    assert "val_loss=0.4" in str(bar.bar)
    bar.close()


def test_a_late_report_never_moves_the_bar_back_and_nan_metrics_keep_the_last_real_ones():
    bar = ProgressBar(10, "train", enabled=True)
    bar(5, {"train_loss": 0.25, "val_loss": 0.5})
    bar(3, {"train_loss": 9.0, "val_loss": 9.0})  # an unordered callback arriving late
    bar(6, {"train_loss": float("nan"), "val_loss": float("nan")})
    assert bar.bar.n == 6
    assert "train_loss=0.25" in str(bar.bar) and "val_loss=0.5" in str(bar.bar)
    bar.close()
