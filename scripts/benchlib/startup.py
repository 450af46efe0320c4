"""The ``startup`` case: how soon the command line answers, and a cold quickstart end to end.

* ``help``, ``train-help``, ``config-error`` — ``python -m fnn --help``, ``python -m fnn train
  --help`` and ``python -m fnn train BAD.toml`` (a config with an unknown section: exit 2), each
  run ``repeats × 3`` times, median wall of the process; and, from one more run under
  ``python -X importtime``, whether the command imported JAX (it should not).
* ``cold`` — ``python -m fnn train configs/quickstart.toml`` with a fresh ``$FNN_CACHE_DIR``:
  the wall of the process and the moment the summary table's last line (``run directory: ...``)
  reached stdout; the pictures are drawn after it.
* ``warm`` — the same with the persistent compilation cache filled by a finished cold run.
* ``baseline-cold`` (``--startup-baseline DIR``: a checkout of an older commit, e.g. made with
  ``git worktree add /tmp/old 5f7e31a``) — DIR's fnn on DIR's quickstart config, cold, interleaved
  run by run with ``cold``; ``cold_vs_baseline`` is the ratio of the medians.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from benchlib.cases import selected, skip
from benchlib.settings import ROOT
from benchlib.workers import child_env

BAD_CONFIG = '[data]\nname = "moons"\n\n[bogus]\nx = 1\n'
CLI_PROBES = {"help": ["--help"], "train-help": ["train", "--help"],
              "config-error": ["train", "{bad}"]}


def _env(root: Path, cache: str) -> dict:
    env = child_env({"FNN_CACHE_DIR": cache})
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [
        p for p in env["PYTHONPATH"].split(os.pathsep) if p and p != str(ROOT)])
    return env


def probe_cli(argv: list, *, cache: str, timeout: float, times: int) -> dict:
    """``python -m fnn ARGV`` ``times`` times: wall times, exit status, whether JAX was imported."""
    walls, code = [], None
    for _ in range(times):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "fnn", *argv], cwd=str(ROOT),
                           env=_env(ROOT, cache), capture_output=True, text=True, timeout=timeout)
        walls.append(time.perf_counter() - t0)
        code = p.returncode
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "fnn", *argv], cwd=str(ROOT),
                       env=_env(ROOT, cache), capture_output=True, text=True, timeout=timeout)
    imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines()
                if line.startswith("import time:")}
    return {"status": "ok", "times_s": walls, "median_s": statistics.median(walls),
            "exit_status": code, "imports_jax": "jax" in imported,
            "notes": "python -m fnn " + " ".join(argv)}


def quickstart(root: Path, config: str, cache: str, timeout: float) -> dict:
    """One ``fnn train CONFIG`` run of the checkout at ``root``: wall, time to the summary."""
    with tempfile.TemporaryDirectory(prefix="fnn-bench-run-") as out, \
            tempfile.TemporaryFile("w+") as err:
        cmd = [sys.executable, "-m", "fnn", "train", config, "--out", out + "/run", "--overwrite"]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=str(root), env=_env(root, cache), stdout=subprocess.PIPE,
                             stderr=err, text=True)
        table = None
        for line in p.stdout:
            if line.startswith("run directory:"):
                table = time.perf_counter() - t0
        p.wait(timeout=timeout)
        wall = time.perf_counter() - t0
        pictures = sorted(f.name for f in Path(out, "run").glob("*.png"))
        if p.returncode != 0:
            err.seek(0)
            return {"status": "failed",
                    "reason": ((err.read().strip().splitlines() or ["?"])[-1])[:300]}
    return {"status": "ok", "wall_s": wall, "summary_s": table, "pictures": pictures}


def _series(runs: list, notes: str, load) -> dict:
    ok = [r for r in runs if r["status"] == "ok"]
    if not ok:
        return {"status": "failed", "reason": runs[0]["reason"] if runs else "no run"}
    walls = [r["wall_s"] for r in ok]
    tables = [r["summary_s"] for r in ok if r["summary_s"] is not None]
    return {"status": "ok", "times_s": walls, "median_s": statistics.median(walls),
            "summary_times_s": tables,
            "summary_median_s": statistics.median(tables) if tables else None,
            "pictures": ok[-1]["pictures"], "load_avg_1m": load, "notes": notes}


def case_startup(settings: dict, only: str, log) -> dict:
    st = settings["startup"]
    names = ["help", "train-help", "config-error", "cold", "warm"] + (
        ["baseline-cold"] if st.get("baseline") else [])
    why = selected("cold", only, settings)
    if why:
        return {"results": {n: skip(why) for n in names}}
    timeout = settings["worker_timeout_s"]
    results = {}
    log("  startup: --help, train --help, a config error ...")
    with tempfile.TemporaryDirectory(prefix="fnn-bench-cache-") as cache:
        bad = Path(cache, "bad.toml")
        bad.write_text(BAD_CONFIG)
        for name, argv in CLI_PROBES.items():
            argv = [str(bad) if a == "{bad}" else a for a in argv]
            results[name] = probe_cli(argv, cache=cache, timeout=timeout,
                                      times=3 * st["repeats"])
            r = results[name]
            log(f"    {name}: {r['median_s']:.2f} s (exit {r['exit_status']}, "
                f"{'imports' if r['imports_jax'] else 'no'} jax)")
    load_before = os.getloadavg()[0]
    log("  startup: cold/warm fnn train ...")
    cold, warm, base, entries = [], [], [], 0
    baseline = Path(st["baseline"]).resolve() if st.get("baseline") else None
    for i in range(st["repeats"]):
        if baseline is not None:
            with tempfile.TemporaryDirectory(prefix="fnn-bench-cache-") as cache:
                base.append(quickstart(baseline, str(baseline / "configs" / Path(st["config"]).name),
                                       cache, timeout))
        with tempfile.TemporaryDirectory(prefix="fnn-bench-cache-") as cache:
            cold.append(quickstart(ROOT, st["config"], cache, timeout))
            if i == 0 and cold[-1]["status"] == "ok":
                warm = [quickstart(ROOT, st["config"], cache, timeout)
                        for _ in range(st["repeats"])]
                jax_dir = Path(cache, "jax")
                entries = sum(1 for _ in jax_dir.glob("*")) if jax_dir.is_dir() else 0
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    how = "python -m fnn train " + Path(st["config"]).name
    results["cold"] = _series(cold, how + "; fresh FNN_CACHE_DIR each run", load)
    results["warm"] = _series(warm, how + f"; the cache of a finished cold run ({entries} "
                              "entries)", load)
    if baseline is not None:
        results["baseline-cold"] = _series(base, how + f" of {baseline}; fresh FNN_CACHE_DIR, "
                                           "interleaved with cold", load)
    out = {"config": st, "results": results}
    c, w, b = (results.get(k, {}) for k in ("cold", "warm", "baseline-cold"))
    if c.get("status") == "ok" and w.get("status") == "ok":
        out["speedup"] = c["median_s"] / w["median_s"]
        log(f"    cold {c['median_s']:.2f} s (summary at {_s(c['summary_median_s'])}), "
            f"warm {w['median_s']:.2f} s")
    if c.get("status") == "ok" and b.get("status") == "ok":
        out["cold_vs_baseline"] = c["median_s"] / b["median_s"]
        log(f"    baseline cold {b['median_s']:.2f} s: ratio {out['cold_vs_baseline']:.2f}x")
    return out


def _s(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.2f} s"
