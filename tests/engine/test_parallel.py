"""Scale-out: data parallel and sweep parallel over 4 forced CPU devices, two processes joined
by jax.distributed with gloo collectives, and the errors. Everything runs in subprocesses
(the device count and the distributed runtime are fixed when JAX starts)."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import child_xla_flags

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env(devices=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["FNN_COMPILATION_CACHE"] = "0"
    env["XLA_FLAGS"] = child_xla_flags(devices)
    for k in ("FNN_COORDINATOR", "FNN_NUM_PROCESSES", "FNN_PROCESS_ID"):
        env.pop(k, None)
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# float64 is the proof of equality (1e-10); in float32 the sharded reductions round in another
# order, and a few epochs of Adam carry that to ~1e-5 in the parameters.
@pytest.mark.parametrize("dtype,tol_dp,tol_sweep", [("float64", 1e-10, 1e-10),
                                                     ("float32", 3e-5, 1e-4)])
def test_four_devices_equal_one(dtype, tol_dp, tol_sweep):
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "parallel_worker.py"), dtype],
                          env=_env(4), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["devices"] == 4
    for grad in ("manual", "autodiff"):
        assert r[f"data_parallel_{grad}"] <= tol_dp, r
        assert r[f"sweep_{grad}"] <= tol_sweep, r
        assert r[f"data_parallel_sharding_{grad}"] == "P()"  # params replicated
        assert r[f"sweep_sharding_{grad}"] == "P('data',)"  # members split over devices
        # the progress callback runs on 4 devices: once per epoch, not once per device
        assert sorted(r[f"reports_{grad}"]) == [1, 1, 2, 2, 3, 3], r


def _cli(args, devices=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "fnn", *args], env=_env(devices), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


# The CLI's defaults (progress bar and pictures on): only the run is shortened.
SHRINK = ["--set", "training.epochs=3", "--set", "data.n_samples=400"]


@pytest.mark.parametrize("config,extra", [
    ("quickstart", []),
    ("sweep_lr", ["--set", "training.seeds=[0]"]),  # 4 learning rates: one member per device
])
def test_four_devices_with_the_progress_bar(tmp_path, config, extra):
    """Issue 23: the progress bar (an ordered callback) failed on more than one device."""
    r = _cli(["train", f"configs/{config}.toml", "--out", str(tmp_path / "r"), *SHRINK, *extra,
              "--set", "parallel.devices=4"], devices=4)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "3/3" in r.stderr  # the bar, at its end
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["device_count"] == 4


def _params(run_dir):
    ckpt = sorted((Path(run_dir) / "checkpoints").glob("ckpt-*.npz"))[-1]
    with np.load(ckpt) as z:
        return {k: z[k] for k in z.files if k.startswith("state.params")}


def test_two_processes_with_gloo_equal_one_process(tmp_path):
    port = _free_port()
    out = tmp_path / "mp"
    common = ["train", "configs/quickstart.toml", "--out", str(out), *SHRINK,
              "--set", "parallel.devices=0", "--num-processes", "2",
              "--coordinator", f"127.0.0.1:{port}"]
    p0 = subprocess.Popen([sys.executable, "-m", "fnn", *common, "--process-id", "0"],
                          env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    p1 = _cli([*common, "--process-id", "1"])
    out0, err0 = p0.communicate(timeout=600)
    assert p0.returncode == 0, err0[-3000:]
    assert p1.returncode == 0, p1.stderr[-3000:]
    assert "run directory:" in out0 and "run directory:" not in p1.stdout  # process 0 reports
    ref = _cli(["train", "configs/quickstart.toml", "--out", str(tmp_path / "sp"), *SHRINK])
    assert ref.returncode == 0, ref.stderr[-3000:]
    a, b = _params(out), _params(tmp_path / "sp")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # written once: one config, one summary, and checkpoints from one writer
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device_count"] == 2
    assert sorted(p.name for p in out.iterdir() if p.name != ".fnn") == sorted(  # .fnn: lock, manifest
        ["checkpoints", "config.toml", "confusion.png", "curves.png", "decision_boundary.png",
         "metrics.csv", "preprocessing.json", "summary.json"])


def test_unreachable_coordinator_is_a_bounded_clear_error(tmp_path):
    port = _free_port()  # nothing listens here
    t0 = time.monotonic()
    r = _cli(["train", "configs/quickstart.toml", "--out", str(tmp_path / "x"), *SHRINK,
              "--set", "parallel.timeout=2", "--process-id", "1", "--num-processes", "2",
              "--coordinator", f"127.0.0.1:{port}"])
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"127.0.0.1:{port} unreachable" in r.stderr
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "x").exists()


def test_mismatched_configs_between_processes_are_detected(tmp_path):
    port = _free_port()
    common = ["train", "configs/quickstart.toml", "--out", str(tmp_path / "mm"), *SHRINK,
              "--set", "parallel.devices=0", "--num-processes", "2",
              "--coordinator", f"127.0.0.1:{port}"]
    p0 = subprocess.Popen([sys.executable, "-m", "fnn", *common, "--process-id", "0"],
                          env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    p1 = _cli([*common, "--process-id", "1", "--set", "optimizer.learning_rate=0.02"], timeout=300)
    _, err0 = p0.communicate(timeout=300)
    for code, err in ((p0.returncode, err0), (p1.returncode, p1.stderr)):
        assert code == 2, err[-2000:]
        assert "differs from process 0's" in err
    assert not (tmp_path / "mm").exists()


@pytest.mark.parametrize("args,message", [
    (["--set", "parallel.devices=4", "--set", "training.batch_size=30"],
     "training.batch_size: 30 is not divisible by the 4 devices"),
    (["--set", "parallel.devices=8"], "parallel.devices: 8; only 4 device(s) available"),
    (["--set", "parallel.devices=4", "--set", "training.seeds=[0, 1, 2]"],
     "a sweep of 3 members cannot be split over 4 devices"),
    (["--set", "parallel.num_processes=2"], "parallel.coordinator: ''; expected HOST:PORT"),
    (["--set", "parallel.process_id=3", "--set", "parallel.num_processes=2",
      "--set", "parallel.coordinator='127.0.0.1:9'"], "parallel.process_id: 3"),
])
def test_parallel_errors(tmp_path, args, message):
    r = _cli(["train", "configs/quickstart.toml", "--out", str(tmp_path / "e"), *SHRINK, *args],
             devices=4, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "e").exists()
