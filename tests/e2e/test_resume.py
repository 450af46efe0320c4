"""Interrupted runs resume bitwise: kill -9 at several points (one of them leaving a torn newest
checkpoint and a stale temporary file), and Ctrl-C (exit 130 after a checkpoint), each followed
by ``--resume``, end with exactly the state of an uninterrupted run.

These need real processes (``python -m fnn``). The processes of this module share a throwaway
JAX compilation cache, so only the first run of each program compiles it.
"""
from __future__ import annotations

import signal

import pytest

from cli_helpers import finish_process as _finish
from cli_helpers import (assert_bitwise_equal, checkpoint_arrays, final_checkpoint,
                         newest_epoch, params_of, read_summary, spawn,
                         wait_for_epoch, write_config)

pytestmark = pytest.mark.slow

EPOCHS = 50
CONFIG = f"""
[data]
name = "moons"
n_samples = 6000
val_fraction = 0.2

[model]
hidden = [16]

[optimizer]
learning_rate = 0.01

[regularization]
drop_rate = 0.1   # the dropout key stream must continue across a resume too

[training]
epochs = {EPOCHS}
batch_size = 8

[output]
checkpoint_every = 1
keep_checkpoints = 2
progress = false
plots = false
"""
SWEEP_EPOCHS = 30
SWEEP_ARGS = ("--grid", "optimizer.learning_rate=0.01,0.003", "--seeds", "2",
              "--set", "data.n_samples=2000", "--set", f"training.epochs={SWEEP_EPOCHS}")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """(directory with c.toml, shared compilation cache directory)."""
    root = tmp_path_factory.mktemp("resume")
    write_config(root / "c.toml", CONFIG)
    return root, tmp_path_factory.mktemp("jax-cache")




@pytest.fixture(scope="module")
def reference(work):
    """An uninterrupted run: its final checkpoint's arrays and metrics.csv."""
    root, cache = work
    _finish(root, cache, "train", "c.toml", "--out", "ref", "--quiet")
    return checkpoint_arrays(final_checkpoint(root / "ref" / "checkpoints")), \
        (root / "ref" / "metrics.csv").read_bytes()


def _kill(proc) -> None:
    proc.kill()  # SIGKILL: no handler runs, nothing is flushed
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def test_kill_9_at_several_points_then_resume_is_bitwise_equal(work, reference):
    root, cache = work
    ref_arrays, ref_metrics = reference
    run, ckpts = root / "killed", root / "killed" / "checkpoints"
    train = ("train", "c.toml", "--out", "killed", "--quiet")
    killed_at = []

    # 1. before the first checkpoint: as soon as the run directory has its config
    proc = spawn(train, cwd=root, cache_dir=cache)
    while not (run / "config.toml").exists():
        assert proc.poll() is None, proc.communicate()
    _kill(proc)
    killed_at.append(newest_epoch(ckpts))

    # 2. a few epochs in; then 3. mid-run, after tearing the newest checkpoint by hand
    for target in (3, EPOCHS // 2):
        proc = spawn(train + ("--resume",), cwd=root, cache_dir=cache)
        wait_for_epoch(proc, ckpts, max(target, killed_at[-1] + 2))
        _kill(proc)
        killed_at.append(newest_epoch(ckpts))
    assert killed_at[1] < killed_at[2] < EPOCHS, killed_at
    assert not (run / "summary.json").exists()  # nothing but checkpoints until the end

    # a kill in the middle of writing a checkpoint: a stale temporary file of the next save and
    # a truncated newest file; the previous checkpoint is what the resume must use
    newest = ckpts / f"ckpt-{killed_at[-1]:06d}.npz"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    stale = ckpts / f".ckpt-{killed_at[-1] + 1:06d}.npz.99999-deadbeef.tmp"
    stale.write_bytes(data[:1000])
    assert (ckpts / f"ckpt-{killed_at[-1] - 1:06d}.npz").is_file()

    # 4. resume to the end
    proc = _finish(root, cache, *train, "--resume")
    assert "skipping it" in proc.stderr and newest.name in proc.stderr  # the torn file
    assert not stale.exists()

    final = checkpoint_arrays(final_checkpoint(ckpts))
    assert_bitwise_equal(params_of(final), params_of(ref_arrays), "params")
    assert_bitwise_equal(final, ref_arrays, "whole state and history")
    assert (run / "metrics.csv").read_bytes() == ref_metrics
    summary = read_summary(run)
    assert summary["epochs_trained"] == EPOCHS and summary["halted"] is False


def test_ctrl_c_saves_a_checkpoint_exits_130_and_resume_is_bitwise_equal(work):
    """On a sweep (4 members, one vmapped program), so --grid and --seeds are resumed too."""
    root, cache = work
    sweep = ("sweep", "c.toml", *SWEEP_ARGS, "--quiet")
    _finish(root, cache, *sweep, "--out", "sweep-ref")
    ref = checkpoint_arrays(final_checkpoint(root / "sweep-ref" / "checkpoints"))
    assert ref["state.params[0]['w']"].shape[0] == 4

    ckpts = root / "sweep-int" / "checkpoints"
    proc = spawn(sweep + ("--out", "sweep-int"), cwd=root, cache_dir=cache)
    wait_for_epoch(proc, ckpts, 3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("fnn: interrupted at epoch ") and "--resume" in line, err
    epoch = int(line.split("interrupted at epoch ")[1].split("/")[0])
    assert 3 <= epoch < SWEEP_EPOCHS
    assert newest_epoch(ckpts) == epoch  # saved at the epoch it stopped
    assert not (root / "sweep-int" / "summary.json").exists()

    _finish(root, cache, *sweep, "--out", "sweep-int", "--resume")
    final = checkpoint_arrays(final_checkpoint(ckpts))
    assert_bitwise_equal(params_of(final), params_of(ref), "params")
    assert_bitwise_equal(final, ref, "whole state and history")
    assert (root / "sweep-int" / "metrics.csv").read_bytes() == \
        (root / "sweep-ref" / "metrics.csv").read_bytes()
    assert len(read_summary(root / "sweep-int")["members"]) == 4
