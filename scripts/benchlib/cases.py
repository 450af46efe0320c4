"""The cases: which contestants each one runs, and the figures derived from their results.

``large``/``tiny`` (MLP throughput), ``util`` (FLOP/s against the matmul reference), ``sweep``
(a vmapped sweep vs one member), ``fashion`` (time to accuracy), ``startup`` (cold vs warm
compilation cache). Each ``case_*`` returns ``{"config": ..., "results": {contestant: ...}}``.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from benchlib.settings import MLP_CONTESTANTS, ROOT
from benchlib.workers import child_env, missing_peer, run_worker


def skip(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


def selected(contestant: str, only: str) -> Optional[str]:
    """None if the contestant runs; else why not (--only, or a missing peer)."""
    is_fnn = contestant.startswith("fnn") or contestant in ("xla-matmul", "cold", "warm")
    if only == "fnn" and not is_fnn:
        return "excluded by --only fnn"
    if only == "peers" and is_fnn:
        return "excluded by --only peers"
    return missing_peer(contestant)


def case_mlp(name: str, settings: dict, only: str, log) -> dict:
    cfg = settings[name]
    results = {}
    for c in MLP_CONTESTANTS:
        why = selected(c, only)
        if why:
            log(f"  {name}/{c}: skipped ({why})")
            results[c] = skip(why)
            continue
        log(f"  {name}/{c} ...")
        r = run_worker({"worker": "mlp", "contestant": c, "cfg": cfg, "repeats": cfg["repeats"],
                        "val_samples": settings["val_samples"]}, settings, log)
        if r["status"] == "ok":
            r["samples_per_s"] = r["samples_per_epoch"] / r["median_s"]
            log(f"    {r['samples_per_s']:,.0f} samples/s (median {r['median_s']:.3f} s, "
                f"first call {r['first_call_s']:.2f} s, final loss {r['final_loss']:.4f})")
        else:
            log(f"    {r['status']}: {r['reason']}")
        results[c] = r
    weights = sum(i * o for i, o in zip(cfg["sizes"][:-1], cfg["sizes"][1:]))
    ref = results.get("fnn-scan", {})
    for c, r in results.items():
        if r.get("status") == "ok":
            r["train_gflops_nominal"] = 6 * weights * r["samples_per_s"] / 1e9
            if ref.get("status") == "ok":
                r["fnn_speedup"] = ref["samples_per_s"] / r["samples_per_s"]
    return {"config": {**cfg, "weights": weights, "threads": settings["threads"]},
            "results": results}


def case_util(settings: dict, only: str, log, large: Optional[dict]) -> dict:
    cfg = settings["large"]
    why = selected("xla-matmul", only)
    if why:
        return {"results": {"xla-matmul": skip(why)}}
    log("  util/xla-matmul ...")
    r = run_worker({"worker": "util", "cfg": cfg, "repeats": cfg["repeats"],
                    "val_samples": settings["val_samples"]}, settings, log)
    out = {"config": {"sizes": cfg["sizes"], "batch": cfg["batch"], "threads": settings["threads"]},
           "results": {"xla-matmul": r}}
    if r["status"] != "ok":
        log(f"    {r['status']}: {r['reason']}")
        return out
    sizes, b = cfg["sizes"], cfg["batch"]
    weights = sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))
    true_per_sample = r["step_gemms"]["flops_per_step"] / b  # what the manual backward executes
    ref = r["step_gemms"]["gflops"]
    log(f"    step-shaped GEMMs {ref:.1f} GFLOP/s, 512^3 {r['square_512']['gflops']:.1f} GFLOP/s")
    rows = {}
    contestants = [("fnn-scan (interleaved)", r["fnn_scan"])]
    contestants += [(c, rr) for c, rr in ((large or {}).get("results") or {}).items()
                    if rr.get("status") == "ok"]
    log(f"    fnn-scan interleaved: {r['fnn_scan']['samples_per_s']:,.0f} samples/s")
    for c, rr in contestants:
        nominal = 6 * weights * rr["samples_per_s"] / 1e9
        executed = true_per_sample * rr["samples_per_s"] / 1e9
        rows[c] = {"train_gflops_nominal": nominal, "utilization_nominal": nominal / ref,
                   "train_gflops_executed": executed, "utilization_executed": executed / ref,
                   "utilization_vs_square": nominal / r["square_512"]["gflops"]}
    out["utilization"] = rows
    out["flops_per_sample"] = {"nominal_6w": 6 * weights, "executed_gemm": true_per_sample}
    return out


def case_sweep(settings: dict, only: str, log) -> dict:
    cfg = dict(settings["tiny"])
    members = settings["sweep"]["members"]
    results = {}
    for c in ("fnn-train", "fnn-sweep"):
        why = selected(c, only)
        if why:
            results[c] = skip(why)
            continue
        log(f"  sweep/{c} ...")
        r = run_worker({"worker": "sweep", "contestant": c, "cfg": cfg, "members": members,
                        "repeats": cfg["repeats"], "val_samples": settings["val_samples"]},
                       settings, log)
        if r["status"] == "ok":
            r["samples_per_s"] = r["samples_per_epoch"] / r["median_s"]
            log(f"    median {r['median_s']:.4f} s ({r['samples_per_s']:,.0f} member-samples/s)")
        else:
            log(f"    {r['status']}: {r['reason']}")
        results[c] = r
    out = {"config": {**cfg, "members": members, "threads": settings["threads"]},
           "results": results}
    one, many = results.get("fnn-train", {}), results.get("fnn-sweep", {})
    if one.get("status") == "ok" and many.get("status") == "ok":
        out["wall_ratio"] = many["median_s"] / one["median_s"]
    return out


def fashion_recipe(path: str) -> dict:
    """The training recipe of a Fashion-MNIST config, for the peers (defaults as fnn's schema)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    cfg = tomllib.loads(Path(path).read_text())
    d, m, o = cfg.get("data", {}), cfg.get("model", {}), cfg.get("optimizer", {})
    t, r = cfg.get("training", {}), cfg.get("regularization", {})
    sched = o.get("schedule", {})
    recipe = {
        "hidden": list(m.get("hidden", [32])), "activation": m.get("activation", "relu"),
        "optimizer": o.get("name", "adam"), "learning_rate": float(o.get("learning_rate", 1e-3)),
        "schedule": sched.get("name", "constant"), "drop_rate": float(r.get("drop_rate", 0.0)),
        "epochs": int(t.get("epochs", 10)), "batch_size": int(t.get("batch_size", 32)),
        "val_fraction": float(d.get("val_fraction", 0.1)), "data_seed": int(d.get("seed", 0)),
        "early_stopping": None,
    }
    es = cfg.get("early_stopping", {})
    if es.get("enabled"):
        recipe["early_stopping"] = {
            "monitor": es.get("monitor", "val_loss"), "patience": int(es.get("patience", 10)),
            "min_delta": float(es.get("min_delta", 0.0)), "restore_best": bool(es.get("restore_best", True))}
    unsupported = [k for k, ok in (
        ("data.name", d.get("name") == "fashion_mnist"), ("model.activation", recipe["activation"] == "relu"),
        ("optimizer.name", recipe["optimizer"] == "adam"),
        ("optimizer.schedule", recipe["schedule"] in ("constant", "cosine")
         and not sched.get("warmup_epochs") and not sched.get("alpha")),
        ("regularization", not r.get("l1") and not r.get("l2")),
        ("augmentation", not any(cfg.get("augmentation", {}).values()))) if not ok]
    if unsupported:
        raise ValueError(f"{path}: the peers' recipe cannot mirror {', '.join(unsupported)}")
    return recipe


def case_fashion(settings: dict, only: str, log) -> dict:
    f = settings["fashion"]
    results = {}
    try:
        recipe = fashion_recipe(f["config"])
    except ValueError as err:
        return {"config": f, "results": {c: {"status": "failed", "reason": str(err)}
                                         for c in ("fnn-cli", "sklearn", "torch")}}
    f = dict(f, recipe=recipe, config_sha256=hashlib.sha256(Path(f["config"]).read_bytes()).hexdigest())
    plan = (("fnn-cli", "fashion-fnn"), ("sklearn", "fashion-sklearn"), ("torch", "fashion-torch"))
    for c, worker in plan:
        why = selected(c, only)
        if why:
            results[c] = skip(why)
            continue
        log(f"  fashion/{c} ...")
        spec = {"worker": worker, "contestant": c, "target": f["target"], "config": f["config"],
                "recipe": recipe, "epochs": f["sklearn_epochs"] if c == "sklearn" else recipe["epochs"],
                "time_cap_s": f["sklearn_time_cap_s"]}
        with tempfile.TemporaryDirectory(prefix="fnn-bench-cache-") as cache:
            r = run_worker(spec, settings, log, env_extra={"FNN_CACHE_DIR": cache})
        if r["status"] == "ok":
            ttt = r["time_to_target_s"]
            log(f"    time to {f['target']}: {'not reached' if ttt is None else f'{ttt:.1f} s'}"
                f" (epoch {r['epoch_reached']}), wall {r['wall_s']:.1f} s, test acc "
                f"{r['final_test_accuracy']:.4f}, peak RSS {r['peak_rss_mb']:.0f} MB")
        else:
            log(f"    {r['status']}: {r['reason']}")
        results[c] = r
    ref = results.get("fnn-cli", {})
    for c, r in results.items():
        if r.get("status") == "ok" and ref.get("status") == "ok" and ref["time_to_target_s"]:
            t = r["time_to_target_s"]
            r["time_to_target_vs_fnn"] = (t / ref["time_to_target_s"]) if t else None
            if t is None:  # not reached: at least its whole wall time
                r["time_to_target_vs_fnn_lower_bound"] = r["wall_s"] / ref["time_to_target_s"]
    return {"config": f, "results": results}


def case_startup(settings: dict, only: str, log) -> dict:
    st = settings["startup"]
    why = selected("cold", only)
    if why:
        return {"results": {"cold": skip(why), "warm": skip(why)}}
    cold, warm, fails = [], [], []

    def once(cache: str) -> Optional[float]:
        with tempfile.TemporaryDirectory(prefix="fnn-bench-run-") as out:
            cmd = [sys.executable, "-m", "fnn", "train", st["config"], "--out", out + "/run",
                   "--overwrite", "--quiet"]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, cwd=str(ROOT), env=child_env({"FNN_CACHE_DIR": cache}),
                               capture_output=True, text=True, timeout=settings["worker_timeout_s"])
            dt = time.perf_counter() - t0
        if p.returncode != 0:
            fails.append((p.stderr.strip().splitlines() or ["?"])[-1][:300])
            return None
        return dt

    load_before = os.getloadavg()[0]
    log("  startup: cold/warm fnn train ...")
    for _ in range(st["repeats"]):
        with tempfile.TemporaryDirectory(prefix="fnn-bench-cache-") as cache:
            t = once(cache)
            if t is not None:
                cold.append(t)
                for _ in range(st["repeats"] if len(cold) == 1 else 0):
                    t = once(cache)
                    if t is not None:
                        warm.append(t)
            entries = sum(1 for _ in Path(cache, "jax").glob("*")) if Path(cache, "jax").is_dir() else 0
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]

    def res(times, label):
        if not times:
            return {"status": "failed", "reason": fails[0] if fails else "no run"}
        return {"status": "ok", "times_s": times, "median_s": statistics.median(times),
                "load_avg_1m": load, "notes": label}

    out = {"config": st, "results": {
        "cold": res(cold, "fresh FNN_CACHE_DIR each run (python -m fnn train ... --quiet)"),
        "warm": res(warm, f"same FNN_CACHE_DIR as a finished cold run ({entries} cache entries)")}}
    if cold and warm:
        out["speedup"] = statistics.median(cold) / statistics.median(warm)
        log(f"    cold {statistics.median(cold):.2f} s, warm {statistics.median(warm):.2f} s")
    return out


def run_case(name: str, settings: dict, only: str, log, done: dict) -> dict:
    """Case ``name``; ``done`` holds the cases run before it (util reads large's results)."""
    if name in ("large", "tiny"):
        return case_mlp(name, settings, only, log)
    if name == "util":
        return case_util(settings, only, log, done.get("large"))
    if name == "fashion":
        return case_fashion(settings, only, log)
    if name == "sweep":
        return case_sweep(settings, only, log)
    if name == "startup":
        return case_startup(settings, only, log)
    raise ValueError(f"unknown case {name!r}")
