"""Nothing a user saved is lost (issue 23, "Found by fuzzing": data loss, disk full, temp files).

Each case reproduces one defect: an output path onto a run's own files (export, predict,
compare), ``--overwrite`` deleting dot-files, files under ``checkpoints/``, user files named like
fnn's and the config being trained, two runs on one directory, a full disk (an export's model
without its sidecar, a run directory holding only config.toml, an error naming no file), temp
files left by SIGTERM or Ctrl-C, an ``--output`` directory reported as a temp file, and
``compare --out c.pdf`` writing PNG bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import CONFIGS, REPO, run_cli, shrink_args, subprocess_env

QUICK = CONFIGS / "quickstart.toml"
TRAIN_ARGS = (*shrink_args("quickstart"), "--set", "output.plots=false", "--quiet")


def _train(out, *extra):
    return run_cli("train", QUICK, "--out", out, *TRAIN_ARGS, *extra)


def tree(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` (dot-files included)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("fnn: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished quickstart run with an exported model beside it (in the run directory)."""
    run = tmp_path_factory.mktemp("files") / "run"
    rc, _, err = _train(run)
    assert rc == 0, err
    rc, _, err = run_cli("export", run)
    assert rc == 0, err
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the run (mtimes kept, so its manifest still matches)."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


@pytest.fixture
def x_csv(tmp_path) -> Path:
    x = tmp_path / "x.csv"
    x.write_text("x0,x1\n0.1,0.2\n0.5,-0.3\n")
    return x


def _ckpt(run: Path) -> str:
    return str(next((run / "checkpoints").glob("ckpt-*.npz")).relative_to(run))


# --------------------------------------------------------------------------------------------
# 1. An output path onto a run's own files: one line, exit 2, nothing written
# --------------------------------------------------------------------------------------------
TARGETS = ["summary.json", "config.toml", "preprocessing.json", "metrics.csv", "CKPT",
           "model.jax.json", "checkpoints"]


@pytest.mark.parametrize("command", ["export", "export-safetensors", "predict", "predict-model",
                                     "compare"])
@pytest.mark.parametrize("target", TARGETS)
def test_no_output_overwrites_a_run_file(run, x_csv, tmp_path, command, target):
    rel = _ckpt(run) if target == "CKPT" else target
    dest = run / rel
    argv = {"export": ["export", run, "--output", dest],
            "export-safetensors": ["export", run, "--format", "safetensors", "--output", dest],
            "predict": ["predict", run, x_csv, "--output", dest],
            "predict-model": ["predict", run / "model.jax", x_csv, "--output", dest],
            "compare": ["compare", run, "--out", dest]}[command]
    before, outside = tree(run), tree(tmp_path)
    rc, _, err = run_cli(*argv)
    line = one_line(err)
    assert rc == 2, err
    assert ("of the run directory" in line or "is a directory" in line or
            "is the metadata of the model" in line) and ".tmp" not in line
    assert tree(run) == before and tree(tmp_path) == outside


def test_predict_output_is_not_the_exported_models_sidecar(run, x_csv, tmp_path):
    model = tmp_path / "m.jax"
    assert run_cli("export", run, "--output", model)[0] == 0
    before = tree(tmp_path)
    for dest, what in ((Path(str(model) + ".json"), "the metadata of the model"),
                       (model, "the model")):
        rc, _, err = run_cli("predict", model, x_csv, "--output", dest)
        assert rc == 2 and what in one_line(err)
    assert tree(tmp_path) == before


def test_an_export_may_replace_its_own_files_and_overwrite_still_works(run):
    rc, _, err = run_cli("export", run)  # RUN/model.jax again: the export's own pair
    assert rc == 0, err
    assert json.loads((run / "model.jax.json").read_text())["format"] == "fnn-export"
    rc, _, err = _train(run, "--overwrite", "--set", "training.seed=4")
    assert rc == 0, err  # the export was recorded in the manifest: fnn's, so replaced
    assert not (run / "model.jax").exists()


@pytest.mark.parametrize("command", ["predict", "export"])
def test_an_output_directory_is_named_not_a_temp_file(run, x_csv, tmp_path, command):
    d = tmp_path / "somewhere"
    d.mkdir()
    argv = (["predict", run, x_csv, "--output", d] if command == "predict"
            else ["export", run, "--output", d])
    rc, _, err = run_cli(*argv)
    line = one_line(err)
    assert rc == 2 and f"{str(d)!r} is a directory" in line and ".tmp" not in line
    assert list(d.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 2. --overwrite deletes only what fnn wrote
# --------------------------------------------------------------------------------------------
def test_overwrite_keeps_dot_files_and_unknown_files_under_checkpoints(run):
    (run / ".git").mkdir()
    (run / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (run / ".notes").write_text("lr 0.1 was better")
    (run / "checkpoints" / "notes.txt").write_text("epoch 2 looked odd")
    rc, _, err = _train(run, "--overwrite", "--set", "training.seed=3")
    assert rc == 0, err
    assert (run / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert (run / ".notes").read_text() == "lr 0.1 was better"
    assert (run / "checkpoints" / "notes.txt").read_text() == "epoch 2 looked odd"
    assert json.loads((run / "summary.json").read_text())["members"][0]["seed"] == 3


@pytest.mark.parametrize("victim", ["summary.json", "metrics.csv", "CKPT"])
def test_overwrite_refuses_a_user_file_named_like_fnns(run, victim):
    rel = _ckpt(run) if victim == "CKPT" else victim
    (run / rel).write_bytes(b"my own numbers, not fnn's")
    before = tree(run)
    rc, _, err = _train(run, "--overwrite")
    line = one_line(err)
    assert rc == 2 and "was not written by fnn or was changed since" in line and rel in line
    assert tree(run) == before


def test_overwrite_refuses_when_the_config_lives_in_the_run_directory(tmp_path):
    proj = tmp_path / "proj"
    assert _train(proj)[0] == 0
    mine = "# my commented config\n" + QUICK.read_text()
    (proj / "config.toml").write_text(mine)  # the user's own config, trained into proj
    before = tree(proj)
    rc, _, err = run_cli("train", proj / "config.toml", "--out", proj, *TRAIN_ARGS, "--overwrite")
    line = one_line(err)
    assert rc == 2 and "is inside the run directory" in line
    assert (proj / "config.toml").read_text() == mine and tree(proj) == before


def test_overwrite_refuses_a_users_config_and_summary_without_checkpoints(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "config.toml").write_text("# mine\n")
    (proj / "summary.json").write_text("{}")
    rc, _, err = _train(proj, "--overwrite")
    assert rc == 2 and "not part of an fnn run" in one_line(err)
    assert sorted(p.name for p in proj.iterdir()) == ["config.toml", "summary.json"]


# --------------------------------------------------------------------------------------------
# 3. One writer per run directory (two processes), 5. SIGTERM removes temp files
# --------------------------------------------------------------------------------------------
def _spawn_train(out: Path, cache: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fnn", "train", str(QUICK), "--out", str(out),
                             "--set", "data.n_samples=300", "--set", "output.plots=false",
                             "--quiet", *extra], cwd=REPO, env=subprocess_env(cache),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_train_on_a_running_run_directory_is_refused(tmp_path):
    out = tmp_path / "busy"
    first = _spawn_train(out, tmp_path / "cache", "--set", "training.epochs=100000",
                         "--set", "early_stopping.enabled=false",
                         "--set", "output.checkpoint_every=1")
    try:
        deadline = time.monotonic() + 120
        while not list((out / "checkpoints").glob("ckpt-*.npz")):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for extra in ((), ("--overwrite",)):
            rc, _, err = _train(out, *extra)
            line = one_line(err)
            assert rc == 2 and "is in use by another fnn run" in line and f"pid {first.pid}" in line
        assert (out / "config.toml").is_file() and first.poll() is None
        first.send_signal(signal.SIGTERM)  # a handler that raises: temp files go on the way out
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 143 and "terminated (SIGTERM)" in err, err
    assert not [p for p in out.rglob("*.tmp")]
    assert (out / "config.toml").is_file()  # the interrupted run itself stays resumable


def test_the_lock_is_released_and_a_busy_directory_is_refused_in_process(tmp_path):
    from fnn.experiment import runlock

    out = tmp_path / "r"
    out.mkdir()
    code = ("import sys, time; from fnn.experiment.runlock import RunLock; "
            "RunLock(__import__('pathlib').Path(sys.argv[1])); print('locked', flush=True); "
            "time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], env=subprocess_env(tmp_path),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(runlock.RunDirBusy, match="in use by another fnn run"):
            runlock.RunLock(out)
    finally:
        holder.kill()
        holder.communicate()
    runlock.RunLock(out).release()  # the holder died: the lock is free


# --------------------------------------------------------------------------------------------
# 4. Disk full: the path named, a pair written as one step, no directory with only config.toml
# --------------------------------------------------------------------------------------------
LIMITED = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           "n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
           "from fnn.cli import main; sys.exit(main(sys.argv[2:]))")


def run_limited(limit: int, *argv, cwd: Path):
    """``fnn ARGV`` in a process whose files may not exceed ``limit`` bytes (EFBIG)."""
    env = subprocess_env(cwd / ".cache")
    env["FNN_COMPILATION_CACHE"] = "0"
    return subprocess.run([sys.executable, "-c", LIMITED, str(limit), *map(str, argv)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_full_disk_during_train_names_the_file_and_leaves_no_directory(tmp_path):
    out = tmp_path / "full"
    p = run_limited(8192, "train", QUICK, "--out", out, *TRAIN_ARGS, cwd=tmp_path)
    line = one_line(p.stderr)
    assert p.returncode == 1, p.stderr
    assert "cannot write" in line and "ckpt-" in line and str(out) in line and ".tmp" not in line
    assert not out.exists()


@pytest.mark.slow
def test_a_full_disk_during_export_leaves_neither_file(run, tmp_path):
    dest = tmp_path / "exports" / "m.jax"
    p = run_limited(4096, "export", run, "--output", dest, cwd=tmp_path)
    line = one_line(p.stderr)
    assert p.returncode == 1 and f"cannot write {dest}" in line, p.stderr
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_the_sidecar_failing_keeps_the_old_pair(run, tmp_path, monkeypatch):
    from fnn.util import fileio

    dest = tmp_path / "m.jax"
    assert run_cli("export", run, "--output", dest)[0] == 0
    before = tree(tmp_path)
    real = fileio._write_temp

    def no_space(f):
        f.write(b"{")
        raise OSError(28, "No space left on device")

    def full_on_json(path, write):  # the model fits, its sidecar does not
        return real(path, no_space if path.name.endswith(".json") else write)

    monkeypatch.setattr(fileio, "_write_temp", full_on_json)
    rc, _, err = run_cli("export", run, "--member", "0", "--output", dest)
    assert rc == 1 and f"cannot write {dest}.json: No space left on device" in one_line(err)
    assert tree(tmp_path) == before  # the old model and its sidecar, nothing else


def test_a_failed_rename_restores_the_first_file(tmp_path, monkeypatch):
    from fnn.util import fileio

    a, b = tmp_path / "a", tmp_path / "a.json"
    fileio.atomic_write_group([(a, lambda f: f.write(b"old a")), (b, lambda f: f.write(b"old b"))])
    real = os.replace

    def fail_on_a(src, dst):  # the second rename (the first file goes last) fails
        if Path(dst) == a and Path(src).read_bytes() == b"new a":
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_a)
    with pytest.raises(fileio.WriteError, match=f"cannot write {a}: Input/output error"):
        fileio.atomic_write_group([(a, lambda f: f.write(b"new a")),
                                   (b, lambda f: f.write(b"new b"))])
    assert a.read_bytes() == b"old a" and b.read_bytes() == b"old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "a.json"]


def test_ctrl_c_while_writing_leaves_no_temp_file(tmp_path):
    from fnn.util import fileio

    def interrupted(f):
        f.write(b"x" * 1000)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write(tmp_path / "ckpt-000001.npz", interrupted)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 6. compare --out: the suffix picks the format
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, magic", [("c.pdf", b"%PDF"), ("c.svg", b"<?xml"),
                                         ("c.png", b"\x89PNG")])
def test_compare_writes_the_format_of_its_suffix(run, tmp_path, name, magic):
    pytest.importorskip("matplotlib")
    rc, _, err = run_cli("compare", run, "--out", tmp_path / name)
    assert rc == 0, err
    assert (tmp_path / name).read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["c.jpg", "c", "c.png.bak"])
def test_compare_refuses_an_unknown_suffix(run, tmp_path, name):
    rc, _, err = run_cli("compare", run, "--out", tmp_path / name)
    assert rc == 2 and "expected a file name ending in .png, .pdf, .svg" in one_line(err)
    assert not (tmp_path / name).exists()


def test_predict_writes_beside_a_run_and_not_into_its_files(run, x_csv):
    rc, _, err = run_cli("predict", run, x_csv, "--output", run / "predictions.csv")
    assert rc == 0, err  # predictions.csv is predict's own name in a run directory
    rows = (run / "predictions.csv").read_text().splitlines()
    assert len(rows) == 3 and np.isfinite(float(rows[1].split(",")[1]))
