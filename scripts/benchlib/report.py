"""What a run reports: the targets met or missed, the machine it ran on, and ``bench.md``."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Optional

from benchlib.settings import ROOT
from benchlib.workers import child_env

CONTESTANT_TITLES = {
    "fnn-scan": "fnn scanned run (manual grads)",
    "fnn-scan-autodiff": "fnn scanned run (autodiff grads)",
    "fnn-scan-flat": "fnn scanned run (flat optimizer update)",
    "fnn-loop": "fnn Python loop over jitted step",
    "torch": "PyTorch eager (Adam default)",
    "torch-fused": "PyTorch eager (Adam fused=True)",
    "torch-compile": "PyTorch torch.compile",
    "fnn-manual": "fnn manual backward (formulation auto)",
    "fnn-im2col": "fnn manual backward (im2col)",
    "fnn-xla": "fnn manual backward (xla)",
    "fnn-hybrid": "fnn manual backward (hybrid)",
    "fnn-correlation": "fnn manual backward (correlation)",
    "fnn-winograd": "fnn manual backward (winograd, both layers)",
    "fnn-split": "fnn manual backward (auto), batch split over the CPU devices",
    "fnn-autodiff": "fnn jax.grad of the same Sequential",
    "fnn-fashion-seq": "fnn Trainer.train, one run after another",
    "fnn-fashion-sweep": "fnn Trainer.sweep (one vmapped program)",
    "fnn-fashion-sweep-split": "fnn Trainer.sweep, members split over the CPU devices",
    "fnn-sweep-split": "fnn Trainer.sweep, members split over the CPU devices",
    "flax": "Flax linen + optax jitted step loop",
    "fnn-train": "fnn Trainer.train (1 member)",
    "fnn-sweep": "fnn Trainer.sweep",
    "fnn-cli": "fnn train (CLI, cold cache)",
    "sklearn": "scikit-learn MLPClassifier (adam)",
    "xla-matmul": "XLA fp32 matmul reference",
    "fnn-scan (interleaved)": "fnn scanned run, interleaved with the GEMM reference",
    "cold": "cold (fresh FNN_CACHE_DIR)",
    "warm": "warm (persistent cache filled)",
    "baseline-cold": "baseline checkout, cold",
    "help": "fnn --help",
    "train-help": "fnn train --help",
    "config-error": "fnn train BAD.toml (exit 2)",
}


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def evaluate_targets(cases: dict) -> list[dict]:
    """Each target of the benchmark: measured value and met / missed / n/a."""
    rows = []

    def add(name, value, ok, fmt="{:.2f}", note=""):
        rows.append({"target": name, "measured": None if value is None else fmt.format(value),
                     "value": value,
                     "status": "n/a" if value is None else ("met" if ok(value) else "missed"),
                     "note": note})

    def sps(case, c):
        return _get(cases, case, "results", c, "samples_per_s")

    def ratio(case, a, b):
        x, y = sps(case, a), sps(case, b)
        return x / y if x and y else None

    torch_best = None
    for c in ("torch", "torch-fused"):
        v = sps("large", c)
        if v and (torch_best is None or v > torch_best[1]):
            torch_best = (c, v)
    add("large: fnn ≥ 1.8× PyTorch eager samples/s",
        sps("large", "fnn-scan") / torch_best[1] if torch_best and sps("large", "fnn-scan") else None,
        lambda v: v >= 1.8, "{:.2f}×", f"vs {torch_best[0]} (the faster PyTorch)" if torch_best else "")
    add("large: fnn ≥ 1.0× Flax+optax", ratio("large", "fnn-scan", "flax"), lambda v: v >= 1.0, "{:.2f}×")
    u = _get(cases, "util", "utilization", "fnn-scan (interleaved)", "utilization_nominal")
    add("large: fnn ≥ 80% of the matmul FLOP/s (6·W·samples)", u, lambda v: v >= 0.8, "{:.0%}",
        "denominator: the step's GEMMs, interleaved in one process; see the executed-FLOP column")
    t_man, t_auto = (_get(cases, "large", "results", c, "median_s") for c in ("fnn-scan", "fnn-scan-autodiff"))
    add("large: manual grads ≤ 0.8× autodiff time", t_man / t_auto if t_man and t_auto else None,
        lambda v: v <= 0.8, "{:.2f}×")
    torch_tiny = max([v for v in (sps("tiny", "torch"), sps("tiny", "torch-fused")) if v] or [0]) or None
    add("tiny: fnn ≥ 40× PyTorch eager",
        sps("tiny", "fnn-scan") / torch_tiny if torch_tiny and sps("tiny", "fnn-scan") else None,
        lambda v: v >= 40, "{:.1f}×", "vs the faster PyTorch")
    add("tiny: fnn ≥ 15× Python loop over jitted step", ratio("tiny", "fnn-scan", "fnn-loop"),
        lambda v: v >= 15, "{:.1f}×")
    fr = _get(cases, "fashion", "results", "fnn-cli") or {}
    ok = fr.get("status") == "ok"
    add("fashion: test accuracy ≥ 0.900", fr.get("final_test_accuracy") if ok else None,
        lambda v: v >= 0.900, "{:.4f}")
    add("fashion: wall ≤ 45 s (whole fnn train, cold cache)", fr.get("wall_s") if ok else None,
        lambda v: v <= 45, "{:.1f} s")
    add("fashion: peak RSS ≤ 700 MB", fr.get("peak_rss_mb") if ok else None, lambda v: v <= 700, "{:.0f} MB")
    sk = _get(cases, "fashion", "results", "sklearn") or {}
    v = sk.get("time_to_target_vs_fnn") or sk.get("time_to_target_vs_fnn_lower_bound")
    add("fashion: ≥ 10× faster to 0.885 than MLPClassifier", v, lambda v: v >= 10,
        "{:.1f}×" if sk.get("time_to_target_vs_fnn") else "≥ {:.1f}×",
        "" if sk.get("time_to_target_vs_fnn") else
        (f"MLPClassifier {sk.get('status', 'not run')}: {sk.get('reason', '')}" if sk.get("status") != "ok"
         else "MLPClassifier did not reach 0.885: lower bound"))
    add("sweep: 16 members ≤ 4× one member (wall)", _get(cases, "sweep", "wall_ratio"),
        lambda v: v <= 4, "{:.2f}×")
    add("sweep: 16-member Fashion-MNIST MLP sweep ≥ 0.9× the member-samples/s of 16 runs in a row",
        _get(cases, "sweep", "fashion_throughput_ratio"), lambda v: v >= 0.9, "{:.2f}×")
    add("sweep, members split over the CPU devices: ≤ 4× one member (wall)",
        _get(cases, "sweep", "split_wall_ratio"), lambda v: v <= 4, "{:.2f}×")
    add("sweep, members split over the CPU devices: Fashion-MNIST MLP ≥ 0.9× runs in a row",
        _get(cases, "sweep", "fashion_split_throughput_ratio"), lambda v: v >= 0.9, "{:.2f}×")
    add("cnn: fnn ≥ 1.0× PyTorch eager samples/s", _get(cases, "cnn", "results", "fnn-manual", "vs_torch"),
        lambda v: v >= 1.0, "{:.2f}×", "fnn-manual (formulation auto); stretch 1.3×")
    add("fashion_cnn: fnn train wall ≤ 1.0× PyTorch eager (same recipe)",
        _get(cases, "fashion_cnn", "wall_ratio"), lambda v: v <= 1.0, "{:.2f}×",
        "whole process, compile included")
    add("fashion_cnn: test accuracy ≥ PyTorch's − 0.005", _get(cases, "fashion_cnn", "test_accuracy_diff"),
        lambda v: v >= -0.005, "{:+.4f}", "fnn − PyTorch")
    add("startup: warm ≥ 2× faster than cold", _get(cases, "startup", "speedup"),
        lambda v: v >= 2, "{:.2f}×")
    for c in ("help", "train-help", "config-error"):
        r = _get(cases, "startup", "results", c) or {}
        add(f"startup: {CONTESTANT_TITLES[c]} ≤ 0.3 s without importing JAX",
            r.get("median_s") if r.get("status") == "ok" else None,
            lambda v, r=r: v <= 0.3 and not r.get("imports_jax"), "{:.2f} s",
            "imports jax" if r.get("imports_jax") else "")
    add("memory: fashion_cnn peak RSS ≤ 1.5× PyTorch's (same recipe, few images)",
        _get(cases, "memory", "cnn_rss_vs_torch"), lambda v: v <= 1.5, "{:.2f}×")
    r = _get(cases, "memory", "results", "fnn-fashion_mnist") or {}
    add("memory: Fashion MLP config peak RSS ≤ 700 MB (few images)", r.get("peak_rss_mb"),
        lambda v: v <= 700, "{:.0f} MB")
    add("startup: quickstart cold ≤ 1.2× the baseline checkout's (--startup-baseline)",
        _get(cases, "startup", "cold_vs_baseline"), lambda v: v <= 1.2, "{:.2f}×")
    return rows


def fnn_version_of_children(settings: dict) -> Optional[str]:
    """``fnn.__version__`` of the fnn the workers import (this checkout's, first on their path),
    asked of a child process so that this one imports neither fnn nor jax."""
    if settings["in_process"]:
        import fnn

        return fnn.__version__
    try:
        p = subprocess.run([sys.executable, "-c", "import fnn; print(fnn.__version__)"],
                           cwd=str(ROOT), env=child_env(), capture_output=True, text=True,
                           timeout=settings["worker_timeout_s"])
    except subprocess.TimeoutExpired:
        return None
    lines = p.stdout.strip().splitlines()
    return lines[-1] if p.returncode == 0 and lines else None


def environment(settings: dict) -> dict:
    from importlib import metadata

    versions = {}
    for name in ("jax", "jaxlib", "numpy", "torch", "flax", "optax", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    fnn_version = fnn_version_of_children(settings)
    cpu = platform.processor() or platform.machine()
    flags = []
    try:
        info = Path("/proc/cpuinfo").read_text()
        for line in info.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in have]
                break
    except OSError:  # pragma: no cover
        pass
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(), "fnn": fnn_version, "versions": versions,
        "cpu": cpu, "cpu_flags": flags, "cpus_visible": os.cpu_count(),
        "threads": settings["threads"],
        "thread_policy": (f"every contestant pinned to {settings['threads']} core(s) with "
                          "sched_setaffinity; XLA's CPU intra-op pool = schedulable cores; "
                          f"torch.set_num_threads({settings['threads']}); threadpoolctl limit "
                          f"{settings['threads']} for scikit-learn"),
        "load_avg_start": [round(v, 2) for v in os.getloadavg()],
    }


def _fmt(v, spec="{:,.0f}", none="—"):
    if v is None:
        return none
    try:
        return spec.format(v)
    except (TypeError, ValueError):
        return str(v)


def _table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _status_cell(r: dict) -> str:
    return f"{r.get('status')}: {r.get('reason')}" if r.get("status") != "ok" else ""


def render_markdown(results: dict) -> str:
    env, cases = results["environment"], results["cases"]
    out = ["# fnn benchmark results", ""]
    out.append(f"{env['date']} · {env['cpu']} ({', '.join(env['cpu_flags'])}) · {env['threads']} "
               f"thread(s) · Python {env['python']} · "
               + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v))
    out.append("")
    out.append(f"Threads: {env['thread_policy']}. Load average (1, 5, 15 min) at start "
               f"{env['load_avg_start']}, at end {env.get('load_avg_end')}.")
    out.append("")
    if "targets" in results:
        out += ["## Targets", "", _table(["target", "measured", "status", "note"],
                [[t["target"], t["measured"] or "—", t["status"], t["note"]] for t in results["targets"]]), ""]
    for name, title in (("large", "Large MLP"), ("tiny", "Tiny MLP")):
        c = cases.get(name)
        if not c:
            continue
        cfg = c["config"]
        out += [f"## {title}: {'-'.join(map(str, cfg['sizes']))}, batch {cfg['batch']}, Adam, "
                f"one epoch of {cfg['samples']:,} random samples", ""]
        rows = []
        for k, r in c["results"].items():
            if r.get("status") == "ok":
                rows.append([CONTESTANT_TITLES.get(k, k), _fmt(r["samples_per_s"]),
                             _fmt(r["median_s"], "{:.3f}"),
                             f"{min(r['times_s']):.3f}–{max(r['times_s']):.3f}",
                             _fmt(r.get("fnn_speedup"), "{:.2f}×"),
                             _fmt(r["train_gflops_nominal"], "{:.1f}"),
                             _fmt(r["first_call_s"], "{:.2f}"), _fmt(r.get("peak_rss_mb"), "{:.0f}"),
                             _fmt(r.get("final_loss"), "{:.4f}"), _fmt(r.get("load_avg_1m"), "{}")])
            else:
                rows.append([CONTESTANT_TITLES.get(k, k)] + ["—"] * 8 + [_status_cell(r)])
        out += [_table(["contestant", "samples/s", "epoch wall s (median)", "min–max", "fnn-scan ÷ this",
                        "train GFLOP/s (6·W)", "first call s", "peak RSS MB", "epoch loss", "load 1m before/after"],
                       rows), ""]
    c = cases.get("util")
    if c and c["results"]["xla-matmul"].get("status") == "ok":
        r = c["results"]["xla-matmul"]
        out += ["## Utilization (large MLP)", "",
                f"Matmul reference, same run: the GEMMs of one training step (batch "
                f"{c['config']['batch']}: forward A·W, weight gradients Aᵀ·δ, input gradients δ·Wᵀ of every layer "
                f"but the first) scanned over the epoch: **{r['step_gemms']['gflops']:.1f} GFLOP/s** "
                f"(median {r['step_gemms']['median_s']:.3f} s); 512×512·512×512 chain: "
                f"{r['square_512']['gflops']:.1f} GFLOP/s. Per sample the nominal count is 6·W = "
                f"{c['flops_per_sample']['nominal_6w']:,} FLOP; the GEMMs actually executed are "
                f"{c['flops_per_sample']['executed_gemm']:,.0f} (the first layer's input gradient is not needed).", ""]
        rows = [[CONTESTANT_TITLES.get(k, k), f"{u['train_gflops_nominal']:.1f}",
                 f"{u['utilization_nominal']:.0%}", f"{u['train_gflops_executed']:.1f}",
                 f"{u['utilization_executed']:.0%}", f"{u['utilization_vs_square']:.0%}"]
                for k, u in c.get("utilization", {}).items()]
        out += [_table(["contestant", "GFLOP/s (6·W)", "of step GEMMs", "GFLOP/s (executed)",
                        "executed of step GEMMs", "6·W of 512³"], rows), ""]
    c = cases.get("fashion")
    if c:
        out += [f"## Fashion-MNIST: time to {c['config']['target']} validation accuracy", "",
                "Wall time from process launch (imports, data loading and compilation included) to the "
                "end of the first epoch whose validation accuracy ("
                + (f"{round(60000 * c['config']['recipe']['val_fraction']):,} held-out training images, "
                   if c["config"].get("recipe") else "held-out training images, ")
                + "the config's split) reaches the target; the fnn run is the shipped config through "
                "the CLI with a fresh compilation cache, timestamped by its in-program per-epoch "
                "callback.", ""]
        rc = c["config"].get("recipe")
        if rc:
            es = rc.get("early_stopping")
            out += [f"Recipe ({Path(c['config']['config']).name}, sha256 {c['config']['config_sha256'][:12]}): "
                    f"784-{'-'.join(map(str, rc['hidden']))}-10 {rc['activation']}, {rc['optimizer']} "
                    f"lr {rc['learning_rate']:g} ({rc['schedule']}), dropout {rc['drop_rate']:g}, batch "
                    f"{rc['batch_size']}, {rc['epochs']} epochs"
                    + (f", early stopping on {es['monitor']} (patience {es['patience']})" if es else "")
                    + ". PyTorch runs the same recipe; MLPClassifier gets the hidden sizes, adam, the "
                    "learning rate and batch size (no dropout, schedule or early stopping in it).", ""]
        rows = []
        for k, r in c["results"].items():
            if r.get("status") == "ok":
                vs = r.get("time_to_target_vs_fnn")
                lb = r.get("time_to_target_vs_fnn_lower_bound")
                rows.append([CONTESTANT_TITLES.get(k, k), _fmt(r["time_to_target_s"], "{:.1f}", "not reached"),
                             _fmt(r["epoch_reached"], "{}"), _fmt(vs, "{:.1f}×", f"≥ {lb:.1f}×" if lb else "—"),
                             _fmt(r.get("final_val_accuracy"), "{:.4f}"),
                             _fmt(r.get("final_test_accuracy"), "{:.4f}"), _fmt(r.get("epochs"), "{}"),
                             _fmt(r["wall_s"], "{:.1f}"), _fmt(r.get("peak_rss_mb"), "{:.0f}"), ""])
            else:
                rows.append([CONTESTANT_TITLES.get(k, k)] + ["—"] * 8 + [_status_cell(r)])
        out += [_table(["contestant", "time to target s", "epoch", "÷ fnn", "final val acc",
                        "test acc", "epochs", "total wall s", "peak RSS MB", "note"], rows), ""]
    c = cases.get("sweep")
    if c:
        out += [f"## Sweep scaling: tiny MLP, {c['config']['members']} members vs one "
                f"(one epoch of {c['config']['samples']:,} samples each)", ""]
        rows = []
        fashion = ("fnn-fashion-seq", "fnn-fashion-sweep", "fnn-fashion-sweep-split")
        for k, r in c["results"].items():
            if k in fashion:
                continue
            if r.get("status") == "ok":
                rows.append([CONTESTANT_TITLES.get(k, k), r["members"], _fmt(r["median_s"], "{:.4f}"),
                             f"{min(r['times_s']):.4f}–{max(r['times_s']):.4f}",
                             _fmt(r["samples_per_s"]), _fmt(r.get("peak_rss_mb"), "{:.0f}")])
            else:
                rows.append([CONTESTANT_TITLES.get(k, k), "—", "—", "—", "—", _status_cell(r)])
        out += [_table(["run", "members", "wall s (median)", "min–max", "member-samples/s", "peak RSS MB / note"], rows),
                "", f"Sweep ÷ one member: **{_fmt(c.get('wall_ratio'), '{:.2f}×')}**; members "
                f"split over the CPU devices: **{_fmt(c.get('split_wall_ratio'), '{:.2f}×')}**", ""]
        fc = c["config"].get("fashion", {})
        if any(k in c["results"] for k in fashion):
            out += [f"### Fashion-MNIST MLP ({Path(fc.get('config', '')).name}): "
                    f"{fc.get('members')} seeds as one sweep vs {fc.get('members')} runs one after another "
                    f"({fc.get('epochs')} epoch each, interleaved in one process)", ""]
            rows = []
            for k in fashion:
                r = c["results"].get(k, {})
                if r.get("status") == "ok":
                    rows.append([CONTESTANT_TITLES.get(k, k), r["members"], _fmt(r["median_s"], "{:.2f}"),
                                 f"{min(r['times_s']):.2f}–{max(r['times_s']):.2f}",
                                 _fmt(r["samples_per_s"]), _fmt(r.get("first_call_s"), "{:.1f}"),
                                 _fmt(r.get("peak_rss_mb"), "{:.0f}")])
                else:
                    rows.append([CONTESTANT_TITLES.get(k, k), "—", "—", "—", "—", "—", _status_cell(r)])
            out += [_table(["run", "members", "wall s (median)", "min–max", "member-samples/s",
                            "first call s", "peak RSS MB / note"], rows), "",
                    f"Sweep ÷ runs in a row (member-samples/s): "
                    f"**{_fmt(c.get('fashion_throughput_ratio'), '{:.2f}×')}**; members split over "
                    f"the CPU devices: **{_fmt(c.get('fashion_split_throughput_ratio'), '{:.2f}×')}**",
                    ""]
    c = cases.get("cnn")
    if c:
        out += render_cnn(c)
    c = cases.get("fashion_cnn")
    if c:
        out += render_fashion_cnn(c)
    c = cases.get("memory")
    if c:
        out += render_memory(c)
    c = cases.get("startup")
    if c:
        out += render_startup(c)
    return "\n".join(out) + "\n"


def render_memory(c: dict, top: int = 4) -> list:
    cfg = c["config"]
    out = [f"## Memory: XLA's figures per compiled program against peak RSS "
           f"({cfg['n_samples']} images, {cfg['epochs']} epoch(s))", ""]
    for k, r in c["results"].items():
        if r.get("status") != "ok":
            out += [f"{k}: {_status_cell(r)}", ""]
            continue
        if "programs" not in r:  # a peer: peak RSS only
            out += [f"{k}: peak RSS **{r['peak_rss_mb']:.0f} MB** (wall {r['wall_s']:.1f} s)", ""]
            continue
        out += [f"{k}: peak RSS **{r['peak_rss_mb']:.0f} MB**; after `import jax` "
                f"{r['after_import_jax_peak_rss_mb']:.0f} MB; {r['compiled']} programs compiled; "
                f"{r['notes']}", ""]
        rows = [[p["program"], f"{p['argument_mb']:.1f}", f"{p['output_mb']:.1f}",
                 f"{p['alias_mb']:.1f}", f"{p['temp_mb']:.1f}", f"{p['code_mb']:.2f}",
                 f"{p['peak_rss_mb_before_run']:.0f}"] for p in r["programs"][:top]]
        out += [_table(["program", "arguments MB", "outputs MB", "aliased MB", "temporaries MB",
                        "code MB", "peak RSS when compiled MB"], rows), ""]
    if c.get("cnn_rss_vs_torch") is not None:
        out += [f"fashion_cnn peak RSS ÷ PyTorch's: **{c['cnn_rss_vs_torch']:.2f}×**", ""]
    return out


def render_startup(c: dict) -> list:
    out = ["## Start-up: the command line, and `fnn train configs/quickstart.toml`", ""]
    rows = []
    for k, r in c["results"].items():
        title = CONTESTANT_TITLES.get(k, k)
        if r.get("status") != "ok":
            rows.append([title, "—", "—", "—", _status_cell(r)])
            continue
        extra = (f"exit {r['exit_status']}, {'imports' if r['imports_jax'] else 'no'} jax"
                 if "imports_jax" in r else
                 f"summary printed at {_fmt(r.get('summary_median_s'), '{:.2f}')} s; "
                 f"{', '.join(r.get('pictures', [])) or 'no pictures'}")
        rows.append([title, f"{r['median_s']:.2f}", ", ".join(f"{t:.2f}" for t in r["times_s"]),
                     extra, r["notes"]])
    out += [_table(["run", "wall s (median)", "runs", "what", "how"], rows), "",
            f"Cold ÷ warm: **{_fmt(c.get('speedup'), '{:.2f}×')}**; cold ÷ baseline cold: "
            f"**{_fmt(c.get('cold_vs_baseline'), '{:.2f}×')}**", ""]
    return out


def render_cnn(c: dict) -> list:
    def title(k):
        return {"torch": "PyTorch eager (SGD)", "torch-compile": "PyTorch torch.compile (SGD)"}.get(
            k, CONTESTANT_TITLES.get(k, k))

    cfg = c["config"]
    f = cfg["filters"]
    out = [f"## CNN: conv {f[0]}-{f[1]} 3×3 same + 2×2 max pools, dense {cfg['dense']}, "
           f"{cfg['classes']} outputs; batch {cfg['batch']}, one jitted SGD step, random data "
           f"({cfg.get('device', 'cpu')})", "",
           f"Each timed round is {cfg['steps']} steps; median of {cfg['repeats']} rounds. fnn's "
           "contestants run interleaved round by round in one process, PyTorch's in another; all "
           "start from the same weights (fnn's HWIO kernels as OIHW, the first dense layer's rows "
           "permuted from NHWC to NCHW flatten order) and see the same batches. Compilation is "
           "timed apart (fnn: `lower().compile()`; torch.compile: its first step).", ""]
    rows = []
    for k, r in c["results"].items():
        if r.get("status") == "ok":
            d = r.get("first_loss_diff") or []
            rows.append([title(k), r.get("formulation", "—"), _fmt(r["samples_per_s"]),
                         _fmt(r["median_s"] / cfg["steps"] * 1e3, "{:.1f}"),
                         f"{min(r['times_s']):.3f}–{max(r['times_s']):.3f}",
                         _fmt(r.get("vs_torch"), "{:.2f}×"), _fmt(r.get("compile_s"), "{:.2f}"),
                         _fmt(r.get("first_call_s"), "{:.2f}"),
                         _fmt(r["first_losses"][0] if r.get("first_losses") else None, "{:.6f}"),
                         _fmt(max(d) if d else None, "{:.1e}"), _fmt(r.get("peak_rss_mb"), "{:.0f}"),
                         _fmt(r.get("load_avg_1m"), "{}")])
        else:
            rows.append([title(k)] + ["—"] * 10 + [_status_cell(r)])
    out += [_table(["contestant", "conv formulation", "samples/s", "ms/step (median)", "round s min–max",
                    "÷ PyTorch eager", "compile s", "first round s", "step-1 loss",
                    f"max |Δloss| steps 1–2 vs {c.get('loss_reference') or '—'}", "peak RSS MB (process)",
                    "load 1m before/after"], rows), ""]
    return out


def render_fashion_cnn(c: dict) -> list:
    f = c["config"]
    rc = f.get("recipe") or {}
    out = [f"## Fashion-MNIST CNN: `{Path(f['config']).name}` end to end, fnn CLI vs PyTorch eager", "",
           "fnn: `python -m fnn train CONFIG --quiet` as a child process with a fresh compilation "
           "cache (wall time from launch to exit: interpreter, imports, data, compilation, training, "
           "test evaluation, plots; test accuracy from summary.json). PyTorch: the same layers and "
           "recipe (" + (f"Adam {rc.get('learning_rate', 0):g}, batch {rc.get('batch_size')}, "
                         f"{rc.get('epochs')} epochs, val fraction {rc.get('val_fraction')}, best "
                         "epoch by val accuracy restored, images ×1/255" if rc else "—")
           + "), wall time from its process's launch."
           + (f" Quick run: data.n_samples={f['n_samples']}." if f.get("n_samples") else ""), ""]
    rows = []
    for k, r in c["results"].items():
        if r.get("status") == "ok":
            rows.append(["PyTorch eager (same recipe)" if k == "torch" else CONTESTANT_TITLES.get(k, k),
                         _fmt(r["wall_s"], "{:.1f}"), _fmt(r.get("final_test_accuracy"), "{:.4f}"),
                         _fmt(r.get("epochs"), "{}"), _fmt(r.get("best_epoch"), "{}"),
                         _fmt(r.get("peak_rss_mb"), "{:.0f}"), _fmt(r.get("load_avg_1m"), "{}")])
        else:
            rows.append(["PyTorch eager (same recipe)" if k == "torch" else CONTESTANT_TITLES.get(k, k)]
                        + ["—"] * 5 + [_status_cell(r)])
    out += [_table(["contestant", "wall s", "test acc", "epochs", "best epoch", "peak RSS MB",
                    "load 1m before/after / note"], rows), "",
            f"fnn ÷ PyTorch wall: **{_fmt(c.get('wall_ratio'), '{:.2f}×')}**; test accuracy fnn − "
            f"PyTorch: **{_fmt(c.get('test_accuracy_diff'), '{:+.4f}')}**", ""]
    return out


def write(results: dict, out: Path) -> None:
    """``out/bench.json`` (every figure) and ``out/bench.md`` (the tables)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "bench.md").write_text(render_markdown(results))
