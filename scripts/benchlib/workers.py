"""One contestant per child process: pinned to the same cores, its own peak memory, a JSON result.

The parent (``scripts/bench.py``) imports neither fnn nor any framework; each child imports the
one it runs. ``--in-process`` runs the worker functions in the calling process instead (tests).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from benchlib import cnn, fnn_side, peers
from benchlib.inputs import init_params, mlp_data
from benchlib.measure import peak_rss_mb
from benchlib.settings import PEER_MODULES, ROOT, SCRIPTS, allowed_cpus

MLP_RUNNERS = {"fnn-scan": fnn_side.mlp_scan, "fnn-scan-autodiff": fnn_side.mlp_scan,
               "fnn-scan-flat": fnn_side.mlp_scan,
               "fnn-loop": fnn_side.mlp_loop, "torch": peers.mlp_torch,
               "torch-fused": peers.mlp_torch, "torch-compile": peers.mlp_torch,
               "flax": peers.mlp_flax}


def mlp(spec: dict) -> dict:
    """A large/tiny MLP contestant: shared data and weights, one epoch per timed repeat."""
    cfg = spec["cfg"]
    data = mlp_data(cfg, spec["seed"], spec["val_samples"])
    params = init_params(cfg["sizes"], spec["seed"])
    out = MLP_RUNNERS[spec["contestant"]](spec, cfg, data, params)
    nb = -(-cfg["samples"] // cfg["batch"])
    out.update(steps=nb, samples_per_epoch=nb * cfg["batch"])
    return out


WORKERS = {"mlp": mlp, "util": fnn_side.util, "sweep": fnn_side.sweep,
           "fashion-fnn": fnn_side.fashion, "fashion-torch": peers.fashion_torch,
           "fashion-sklearn": peers.fashion_sklearn, "cnn-fnn": cnn.cnn_fnn,
           "cnn-torch": cnn.cnn_torch, "fashion-cnn-torch": cnn.fashion_cnn_torch,
           "fashion-sweep": fnn_side.fashion_sweep, "fnn-memory": lambda spec: _memory(spec)}


def _memory(spec: dict) -> dict:
    from benchlib import memory  # imports benchlib.cases, which imports this module

    return memory.fnn_memory(spec)


def worker_entry(spec_json: str) -> int:
    """Child process entry: pin the cores, run one worker, write its JSON result."""
    spec = json.loads(spec_json)
    cpus = allowed_cpus()[: spec["threads"]]
    try:
        os.sched_setaffinity(0, cpus)
    except (AttributeError, OSError):  # pragma: no cover
        pass
    out = WORKERS[spec["worker"]](spec)
    out["peak_rss_mb"] = peak_rss_mb()
    out["cpus"] = cpus
    Path(spec["result_path"]).write_text(json.dumps(out))
    return 0


BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from benchlib import workers; "
        "sys.exit(workers.worker_entry(sys.argv[2]))")


def missing_peer(contestant: str) -> Optional[str]:
    """Why a peer cannot run (a module is not installed), or None."""
    for mod in PEER_MODULES.get(contestant, ()):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install 'fnn[bench]')"
    return None


def child_env(extra: Optional[dict] = None) -> dict:
    """The environment of a child: this checkout's fnn first on the path, JAX on the CPU."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("JAX_PLATFORMS", "cpu")  # bench.py --device gpu sets it to "cuda"
    env.update(extra or {})
    return env


@contextlib.contextmanager
def environ(extra: Optional[dict]):
    """``os.environ`` with ``extra`` set, restored (values and absences) on exit."""
    saved = {k: os.environ.get(k) for k in (extra or {})}
    os.environ.update(extra or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _in_process(spec: dict, env_extra: Optional[dict]) -> dict:
    with environ(env_extra):
        out = WORKERS[spec["worker"]](spec)
    out["peak_rss_mb"] = None  # one process for all: not per contestant
    return out


def run_worker(spec: dict, settings: dict, log=print, env_extra=None) -> dict:
    """Run one worker in a child process (or in-process with --in-process); never raises."""
    spec = dict(spec, threads=settings["threads"], seed=settings["seed"],
                device=settings.get("device", "cpu"))
    with tempfile.TemporaryDirectory(prefix="fnn-bench-") as tmp:
        spec["result_path"] = str(Path(tmp) / "result.json")
        spec.setdefault("tmp", tmp)
        spec["t_launch"] = time.time()
        load_before = os.getloadavg()[0]
        if settings["in_process"]:
            try:
                out = _in_process(spec, env_extra)
            except Exception as err:  # noqa: BLE001 - reported, not raised
                return {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
        else:
            cmd = [sys.executable, "-c", BOOT, str(SCRIPTS), json.dumps(spec)]
            try:
                p = subprocess.run(cmd, cwd=str(ROOT), env=child_env(env_extra),
                                   capture_output=True, text=True,
                                   timeout=settings["worker_timeout_s"])
            except subprocess.TimeoutExpired:
                return {"status": "failed", "reason": f"timed out after {settings['worker_timeout_s']} s"}
            if p.returncode != 0 or not Path(spec["result_path"]).is_file():
                tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
                return {"status": "failed", "reason": f"exit {p.returncode}: {tail[0][:300]}"}
            out = json.loads(Path(spec["result_path"]).read_text())
    out["status"] = "ok"
    out["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if "times_s" in out and out["times_s"]:
        out["median_s"] = statistics.median(out["times_s"])
    return out
