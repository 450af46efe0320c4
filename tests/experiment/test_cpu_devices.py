"""A sweep on a CPU splits its members over one CPU device per core (``parallel.host_devices``).

The rules are pure functions of the config and are tested in-process; the split itself needs a
fresh process (JAX fixes its CPU device count when its backend starts), so the end-to-end cases
run ``python -m fnn train`` and compare a split sweep with the same sweep on one device.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import child_xla_flags
from fnn.experiment import config as config_mod
from fnn.experiment import cpu_devices

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**parallel):
    return config_mod.load(ROOT / "configs" / "sweep_lr.toml",
                           [f"parallel.{k}={v}" for k, v in parallel.items()])


@pytest.mark.parametrize("members,parallel,cores,expected", [
    (12, {}, 2, 2),                       # automatic: one device per core
    (12, {}, 8, 8),
    (12, {"host_devices": 3}, 2, 3),      # the user's count, whatever the cores
    (12, {"host_devices": 1}, 8, 1),      # off
    (1, {"host_devices": 0}, 8, 1),       # a single run: its step gains nothing from devices
    (12, {"host_devices": 0, "devices": 4}, 8, 1),  # the user's own mesh
    (12, {"host_devices": 0, "devices": 0}, 8, 1),
    (12, {"host_devices": 0, "num_processes": 2}, 8, 1),  # multi-process: their own devices
])
def test_wanted(monkeypatch, members, parallel, cores, expected):
    monkeypatch.setattr(cpu_devices, "cores", lambda: cores)
    assert cpu_devices.wanted(_cfg(**parallel), members) == expected


@pytest.mark.parametrize("members,devices,expected", [
    (16, 2, 2), (12, 8, 6), (12, 5, 4), (7, 2, 1), (1, 8, 1), (8, 1, 1), (3, 0, 1),
])
def test_split_is_the_largest_even_share(members, devices, expected):
    k = cpu_devices.split(members, devices)
    assert k == expected and members % k == 0


def test_configure_leaves_a_user_device_count_and_a_started_backend_alone(monkeypatch):
    """What configure may not change; that it does set the count is the end-to-end test's."""
    import jax

    jax.devices()  # this process's backend is running (the test session's)
    cfg = _cfg(host_devices=2)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    assert cpu_devices.configure(cfg, 12) == 1
    monkeypatch.setenv("XLA_FLAGS", "")
    assert cpu_devices.configure(cfg, 12) == 1  # too late to change: no error, no change
    assert cpu_devices.configure(_cfg(host_devices=1), 12) == 1


class _Net:
    def __init__(self, sizes):
        self.sizes = sizes

    def init(self, key):
        import jax.numpy as jnp

        return [{"w": jnp.zeros((a, b)), "b": jnp.zeros((b,))}
                for a, b in zip(self.sizes, self.sizes[1:])]


@pytest.mark.parametrize("sizes,batch,expected", [
    ((2, 16, 16, 2), 64, 64 * (48 + 272 + 34)),   # parameters x batch rows
    ((784, 512, 256, 10), 128, 128 * 535818),
])
def test_work_counts_parameters_times_rows(sizes, batch, expected):
    assert cpu_devices.work(_Net(sizes), batch) == expected
    assert cpu_devices.work(lambda: _Net(sizes), batch) == expected  # built only when asked
    assert cpu_devices.work(None, batch) == 0


@pytest.mark.parametrize("host_devices,sizes,split", [
    (0, (2, 16, 16, 2), False),       # automatic: a tiny net's step is below AUTO_MIN_WORK
    (0, (784, 512, 256, 10), True),   # the Fashion-MNIST MLP's is above
    (2, (2, 16, 16, 2), True),        # always
    (1, (784, 512, 256, 10), False),  # never
])
def test_sweep_mesh_rule(monkeypatch, host_devices, sizes, split):
    import jax

    from fnn.engine import parallel

    monkeypatch.setattr(jax, "device_count", lambda: 2)  # as if started with two CPU devices
    monkeypatch.setattr(parallel, "make_mesh", lambda k: ("mesh", k))
    cfg = _cfg(host_devices=host_devices)
    mesh = cpu_devices.sweep_mesh(cfg, 12, _Net(sizes))
    assert mesh == (("mesh", 2) if split else None)
    assert cpu_devices.sweep_mesh(cfg, 1, _Net(sizes)) is None  # one member: never


def test_host_devices_is_a_checked_config_key():
    with pytest.raises(ValueError, match=r"parallel\.host_devices: -1 .*expected >= 0"):
        _cfg(host_devices=-1)


# ---------------------------------------------------------------------------------------------
# End to end: a split sweep trains the members the one-device sweep trains
# ---------------------------------------------------------------------------------------------
SHRINK = ["--set", "training.epochs=3", "--set", "data.n_samples=400",
          "--set", "training.seeds=[0, 1]", "--set", "output.plots=false",
          "--set", "output.progress=false"]


def _train(out: Path, *extra, xla_flags=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["FNN_COMPILATION_CACHE"] = "0"
    env["XLA_FLAGS"] = xla_flags if xla_flags is not None else child_xla_flags()
    proc = subprocess.run([sys.executable, "-m", "fnn", "train", "configs/sweep_lr.toml",
                           "--out", str(out), *SHRINK, *extra], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    losses = {m["member"]: m["final_val_loss"] for m in summary["members"]}
    return summary, losses


@pytest.mark.slow
def test_a_split_sweep_trains_the_same_members(tmp_path):
    split, a = _train(tmp_path / "split", "--set", "parallel.host_devices=2")
    one, b = _train(tmp_path / "one", "--set", "parallel.host_devices=1")
    assert split["device_count"] == 2 and one["device_count"] == 1
    assert split["member_devices"] == 2 and one["member_devices"] == 1
    assert a.keys() == b.keys() and len(a) == 8  # 4 learning rates x 2 seeds
    for m in a:  # the same members; only float32 rounding may differ
        np.testing.assert_allclose(a[m], b[m], rtol=1e-4, err_msg=m)


@pytest.mark.slow
def test_a_device_count_in_xla_flags_is_the_users(tmp_path):
    summary, _ = _train(tmp_path / "r", "--set", "parallel.host_devices=2",
                        xla_flags=child_xla_flags(1))
    assert summary["device_count"] == 1 and summary["member_devices"] == 1


@pytest.mark.slow
def test_automatic_leaves_a_small_sweep_on_one_device(tmp_path):
    """sweep_lr.toml's 64-64 net is below AUTO_MIN_WORK: two devices, members on the first."""
    summary, _ = _train(tmp_path / "r")
    assert summary["device_count"] == max(1, cpu_devices.cores()) and summary["member_devices"] == 1
