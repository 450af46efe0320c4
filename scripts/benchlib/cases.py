"""The cases: which contestants each one runs, and the figures derived from their results.

``large``/``tiny`` (MLP throughput), ``util`` (FLOP/s against the matmul reference), ``cnn``
(the CNN training step, every contestant from the same weights), ``sweep`` (a vmapped sweep vs
one member, and the Fashion-MNIST MLP's sweep vs runs one after another), ``fashion`` (time to
accuracy), ``fashion_cnn`` (configs/fashion_cnn.toml through the CLI vs PyTorch), ``startup``
(:mod:`benchlib.startup`: --help and config errors, a cold and a warm quickstart). Each ``case_*`` returns ``{"config": ..., "results":
{contestant: ...}}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from benchlib.settings import (CNN_FNN_CONTESTANTS, CNN_TORCH_CONTESTANTS, MLP_CONTESTANTS, ROOT,
                               allowed_cpus)
from benchlib.workers import child_env, missing_peer, run_worker


def mb(v) -> str:
    return "n/a (--in-process)" if v is None else f"{v:.0f} MB"


def skip(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


def selected(contestant: str, only: str, settings: Optional[dict] = None) -> Optional[str]:
    """None if the contestant runs; else why not (--only, --no-torch-compile, a missing peer)."""
    is_fnn = contestant.startswith("fnn") or contestant in ("xla-matmul", "cold", "warm")
    if only == "fnn" and not is_fnn:
        return "excluded by --only fnn"
    if only == "peers" and is_fnn:
        return "excluded by --only peers"
    if settings is not None:
        if contestant in settings.get("skip", ()):
            return "excluded by --skip"
        if contestant == "torch-compile" and not settings.get("torch_compile", True):
            return "excluded by --no-torch-compile"
    return missing_peer(contestant)


def split_results(r: dict, names, extra: Optional[dict] = None) -> dict:
    """The per-contestant results of a worker that ran several contestants in one process
    (``r["contestants"]``): each with its median, the process's load and peak memory."""
    out = {}
    for c in names:
        if r["status"] != "ok":
            out[c] = {"status": r["status"], "reason": r["reason"]}
            continue
        rc = dict(r["contestants"][c])
        if rc.get("status") == "skipped":
            out[c] = rc
            continue
        rc.update(status="ok", median_s=statistics.median(rc["times_s"]),
                  load_avg_1m=r.get("load_avg_1m"), peak_rss_mb=r.get("peak_rss_mb"),
                  shared_process=list(names), **(extra or {}))
        out[c] = rc
    return out


def case_mlp(name: str, settings: dict, only: str, log) -> dict:
    cfg = settings[name]
    results = {}
    for c in MLP_CONTESTANTS:
        why = selected(c, only, settings)
        if why:
            log(f"  {name}/{c}: skipped ({why})")
            results[c] = skip(why)
            continue
        log(f"  {name}/{c} ...")
        r = run_worker({"worker": "mlp", "contestant": c, "cfg": cfg, "repeats": cfg["repeats"],
                        "val_samples": settings["val_samples"]}, settings, log)
        if r["status"] == "ok":
            r["samples_per_s"] = r["samples_per_epoch"] / r["median_s"]
            kernels = (f", {r['kernels_per_step']} kernels per step"
                       if "kernels_per_step" in r else "")
            log(f"    {r['samples_per_s']:,.0f} samples/s (median {r['median_s']:.3f} s, "
                f"first call {r['first_call_s']:.2f} s, final loss {r['final_loss']:.4f}"
                f"{kernels})")
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
    why = selected("xla-matmul", only, settings)
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
    """The tiny MLP: an M-member ``Trainer.sweep`` vs one ``Trainer.train`` (wall ratio); and
    the MLP of configs/fashion_mnist.toml: M members as one sweep vs M runs one after another
    (member-samples/s ratio), interleaved in one process."""
    cfg = dict(settings["tiny"])
    sw = settings["sweep"]
    members = sw["members"]
    results = {}
    split_env = split_devices_env(sw["split_devices"])
    for c in ("fnn-train", "fnn-sweep", "fnn-sweep-split"):
        split = c.endswith("-split")
        why = selected(c, only, settings) or (split and in_process_split(settings))
        if why:
            results[c] = skip(why)
            continue
        log(f"  sweep/{c} ...")
        r = run_worker({"worker": "sweep", "contestant": c, "cfg": cfg, "members": members,
                        "repeats": cfg["repeats"], "val_samples": settings["val_samples"],
                        "split": sw["split_devices"] if split else 0},
                       settings, log, env_extra=split_env if split else None)
        if r["status"] == "ok":
            r["samples_per_s"] = r["samples_per_epoch"] / r["median_s"]
            log(f"    median {r['median_s']:.4f} s ({r['samples_per_s']:,.0f} member-samples/s)")
        else:
            log(f"    {r['status']}: {r['reason']}")
        results[c] = r
    fashion = ("fnn-fashion-seq", "fnn-fashion-sweep", "fnn-fashion-sweep-split")
    why = selected("fnn-fashion-sweep", only, settings) or selected("fnn-fashion-seq", only, settings)
    if why:
        results.update({c: skip(why) for c in fashion})
    else:
        log(f"  sweep/fashion MLP: {sw['fashion_members']} members, sweep vs one after another ...")
        r = run_worker({"worker": "fashion-sweep", "config": sw["fashion_config"],
                        "members": sw["fashion_members"], "epochs": sw["fashion_epochs"],
                        "repeats": sw["fashion_repeats"], "n_samples": sw["fashion_n_samples"],
                        "split": 0 if in_process_split(settings) else sw["split_devices"]},
                       settings, log, env_extra=split_env)
        for c, rc in split_results(r, fashion).items():
            if rc["status"] == "ok":
                rc["samples_per_s"] = rc["samples_per_epoch"] / rc["median_s"]
                log(f"    {c}: median {rc['median_s']:.2f} s ({rc['samples_per_s']:,.0f} member-samples/s)")
            else:
                log(f"    {c}: {rc['status']}: {rc['reason']}")
            results[c] = rc
    out = {"config": {**cfg, "members": members, "threads": settings["threads"],
                      "fashion": {k[len("fashion_"):]: v for k, v in sw.items() if k.startswith("fashion_")}},
           "results": results}
    one, many = results.get("fnn-train", {}), results.get("fnn-sweep", {})
    if one.get("status") == "ok" and many.get("status") == "ok":
        out["wall_ratio"] = many["median_s"] / one["median_s"]
    seq, swp = results.get("fnn-fashion-seq", {}), results.get("fnn-fashion-sweep", {})
    if seq.get("status") == "ok" and swp.get("status") == "ok":
        out["fashion_throughput_ratio"] = swp["samples_per_s"] / seq["samples_per_s"]
    split, fsplit = results.get("fnn-sweep-split", {}), results.get("fnn-fashion-sweep-split", {})
    if one.get("status") == "ok" and split.get("status") == "ok":
        out["split_wall_ratio"] = split["median_s"] / one["median_s"]
    if seq.get("status") == "ok" and fsplit.get("status") == "ok":
        out["fashion_split_throughput_ratio"] = fsplit["samples_per_s"] / seq["samples_per_s"]
    return out


def in_process_split(settings: dict) -> Optional[str]:
    """Why the -split contestants cannot run (the devices are fixed when JAX starts), or None."""
    return ("needs a child process with its own CPU devices (not --in-process)"
            if settings["in_process"] else None)


def split_devices_env(n: int) -> dict:
    """A child's environment with ``n`` CPU devices (for the -split contestants; a run without a
    mesh uses the first device alone, as with one)."""
    flags = os.environ.get("XLA_FLAGS", "")
    return {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={n}".strip()}


def case_cnn(settings: dict, only: str, log) -> dict:
    """The CNN training step: fnn's contestants interleaved in one process, PyTorch's in another
    (same weights, same batches); samples/s, the ratio to PyTorch eager, compile time apart, and
    the first two steps' losses against PyTorch eager's (the same function and gradients)."""
    cfg = settings["cnn"]
    results = {}
    unsplit = tuple(c for c in CNN_FNN_CONTESTANTS if c != "fnn-split")
    devices = settings["sweep"]["split_devices"]  # one CPU device per core, as the sweeps' split
    for worker, names in (("cnn-fnn", unsplit), ("cnn-fnn", ("fnn-split",)),
                          ("cnn-torch", CNN_TORCH_CONTESTANTS)):
        split = names == ("fnn-split",)
        run = []
        for c in names:
            why = selected(c, only, settings) or (split and in_process_split(settings))
            if why:
                log(f"  cnn/{c}: skipped ({why})")
                results[c] = skip(why)
            else:
                run.append(c)
        if not run:
            continue
        log(f"  cnn/{', '.join(run)} (interleaved, one process) ...")
        r = run_worker({"worker": worker, "contestants": run, "cfg": cfg, "repeats": cfg["repeats"],
                        "split": devices if split else 0},
                       settings, log, env_extra=split_devices_env(devices) if split else None)
        results.update(split_results(r, run))
    results = {c: results[c] for c in CNN_FNN_CONTESTANTS + CNN_TORCH_CONTESTANTS}
    per_round = cfg["steps"] * cfg["batch"]
    for c, r in results.items():
        if r.get("status") == "ok":
            r["samples_per_s"] = per_round / r["median_s"]
    ref_name = next((c for c in ("torch", "fnn-manual") if results[c].get("status") == "ok"), None)
    out = {"config": {**cfg, "threads": settings["threads"], "device": settings.get("device", "cpu")},
           "results": results, "loss_reference": ref_name}
    if ref_name:
        ref = results[ref_name]
        diffs = [[], []]
        for c, r in results.items():
            if r.get("status") != "ok":
                continue
            if results["torch"].get("status") == "ok":
                r["vs_torch"] = r["samples_per_s"] / results["torch"]["samples_per_s"]
            r["first_loss_diff"] = [abs(a - b) for a, b in zip(r["first_losses"], ref["first_losses"])]
            for i, d in enumerate(r["first_loss_diff"]):
                diffs[i].append(d)
        out["first_loss_max_abs_diff"] = max(diffs[0]) if diffs[0] else None
        out["second_loss_max_abs_diff"] = max(diffs[1]) if diffs[1] else None
    for c, r in results.items():
        if r.get("status") == "ok":
            log(f"    {c}: {r['samples_per_s']:,.0f} samples/s"
                + (f" ({r['vs_torch']:.2f}x torch eager)" if r.get("vs_torch") else "")
                + (f", compile {r['compile_s']:.2f} s" if r.get("compile_s") else "")
                + f", first loss {r['first_losses'][0]:.6f}")
        else:
            log(f"    {c}: {r['status']}: {r['reason']}")
    if out.get("first_loss_max_abs_diff") is not None:
        log(f"    first-step loss, max |diff| vs {ref_name}: {out['first_loss_max_abs_diff']:.2e}")
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
    sets = []
    if f.get("n_samples"):
        sets.append(f"data.n_samples={f['n_samples']}")
    if f.get("epochs"):
        sets.append(f"training.epochs={f['epochs']}")
        recipe["epochs"] = f["epochs"]
    f = dict(f, recipe=recipe, config_sha256=hashlib.sha256(Path(f["config"]).read_bytes()).hexdigest())
    plan = (("fnn-cli", "fashion-fnn"), ("sklearn", "fashion-sklearn"), ("torch", "fashion-torch"))
    for c, worker in plan:
        why = selected(c, only, settings)
        if why:
            results[c] = skip(why)
            continue
        log(f"  fashion/{c} ...")
        spec = {"worker": worker, "contestant": c, "target": f["target"], "config": f["config"],
                "recipe": recipe, "epochs": f["sklearn_epochs"] if c == "sklearn" else recipe["epochs"],
                "time_cap_s": f["sklearn_time_cap_s"], "sets": sets, "n_samples": f.get("n_samples")}
        with tempfile.TemporaryDirectory(prefix="fnn-bench-cache-") as cache:
            r = run_worker(spec, settings, log, env_extra={"FNN_CACHE_DIR": cache})
        if r["status"] == "ok":
            ttt = r["time_to_target_s"]
            log(f"    time to {f['target']}: {'not reached' if ttt is None else f'{ttt:.1f} s'}"
                f" (epoch {r['epoch_reached']}), wall {r['wall_s']:.1f} s, test acc "
                f"{r['final_test_accuracy']:.4f}, peak RSS {mb(r.get('peak_rss_mb'))}")
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


def run_cli(cmd: list, settings: dict, env_extra: dict) -> dict:
    """``cmd`` as a child process pinned to the run's cores: wall time from launch to exit and
    the child's own peak RSS (``os.wait4``); never raises."""
    import threading

    cpus = allowed_cpus()[: settings["threads"]]
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=str(ROOT), env=child_env(env_extra), stdout=subprocess.DEVNULL,
                             stderr=err, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        timer = threading.Timer(settings["worker_timeout_s"], p.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = (err.read().strip().splitlines() or ["no output"])[-1][:300]
    if p.returncode != 0:
        return {"status": "failed", "reason": f"exit {p.returncode}: {tail}"}
    return {"status": "ok", "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0}


def case_fashion_cnn(settings: dict, only: str, log) -> dict:
    """configs/fashion_cnn.toml end to end: ``python -m fnn train CONFIG --quiet`` (a fresh
    compilation cache; wall time of the process, test accuracy from its summary.json) against
    the same recipe in PyTorch eager; the wall-time ratio and the test-accuracy difference."""
    from benchlib.cnn import fashion_cnn_recipe

    f = dict(settings["fashion_cnn"])
    names = ("fnn-cli", "torch")
    try:
        recipe = fashion_cnn_recipe(f["config"])
    except ValueError as err:
        return {"config": f, "results": {c: {"status": "failed", "reason": str(err)} for c in names}}
    sets = []
    if f["n_samples"]:
        sets += ["--set", f"data.n_samples={f['n_samples']}"]
        recipe["n_samples"] = f["n_samples"]
    if f["epochs"]:
        sets += ["--set", f"training.epochs={f['epochs']}"]
        recipe["epochs"] = f["epochs"]
    f.update(recipe=recipe, config_sha256=hashlib.sha256(Path(f["config"]).read_bytes()).hexdigest())
    results = {}
    for c in names:
        why = selected(c, only, settings)
        if why:
            results[c] = skip(why)
            continue
        log(f"  fashion_cnn/{c} ...")
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="fnn-bench-cache-") as cache:
            if c == "fnn-cli":
                run_dir = Path(cache) / "run"
                cmd = [sys.executable, "-m", "fnn", "train", f["config"], *sets, "--out",
                       str(run_dir), "--overwrite", "--quiet"]
                r = run_cli(cmd, settings, {"FNN_CACHE_DIR": cache + "/jax"})
                if r["status"] == "ok":
                    summary = json.loads((run_dir / "summary.json").read_text())
                    r.update(final_test_accuracy=summary.get("test_accuracy"),
                             train_wall_s=summary.get("wall_time_s"), epochs=summary.get("epochs"),
                             best_epoch=summary.get("best_epoch"),
                             notes="python -m fnn train " + " ".join(
                                 [Path(f["config"]).name, *sets, "--quiet"])
                             + "; fresh FNN_CACHE_DIR (compile included)")
            else:
                r = run_worker({"worker": "fashion-cnn-torch", "recipe": recipe, "target": 0.9,
                                "n_samples": f["n_samples"]}, settings, log)
        r["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        if r["status"] == "ok":
            log(f"    wall {r['wall_s']:.1f} s, test acc {r['final_test_accuracy']:.4f}, "
                f"{r.get('epochs')} epochs, peak RSS {mb(r.get('peak_rss_mb'))}")
        else:
            log(f"    {r['status']}: {r['reason']}")
        results[c] = r
    out = {"config": f, "results": results}
    a, b = results.get("fnn-cli", {}), results.get("torch", {})
    if a.get("status") == "ok" and b.get("status") == "ok":
        out["wall_ratio"] = a["wall_s"] / b["wall_s"]
        if a.get("final_test_accuracy") is not None:
            out["test_accuracy_diff"] = a["final_test_accuracy"] - b["final_test_accuracy"]
        log(f"    fnn / PyTorch wall: {out['wall_ratio']:.2f}x, test accuracy fnn - PyTorch: "
            f"{out.get('test_accuracy_diff', float('nan')):+.4f}")
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
    if name == "cnn":
        return case_cnn(settings, only, log)
    if name == "fashion_cnn":
        return case_fashion_cnn(settings, only, log)
    if name == "memory":
        from benchlib import memory

        return memory.case_memory(settings, only, log)
    if name == "startup":
        from benchlib import startup

        return startup.case_startup(settings, only, log)
    raise ValueError(f"unknown case {name!r}")
