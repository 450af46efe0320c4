"""The accuracy anchor and the whole run of ``scripts/bench_sequence.py --text FILE``: the
recipe's shipped config (configs/char_gpt.toml or configs/shakespeare_char.toml) through
``python -m fnn train`` against the same model and recipe in PyTorch (a child process of NumPy
and PyTorch only, ``benchlib/torch_sequence.py``), from the same initial weights.

Like every benchlib module this one imports only the standard library at the top.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib.sequence_models import fnn_layers_override, fnn_net, torch_model

ROOT = Path(__file__).resolve().parents[2]
OVERHEAD_S = 30.0  # the two processes' start, data, the parent's evaluation: besides compiling
SAFETY = 1.25  # the CLI's steps (its data, its checkpoints) against the timed step's


def measured(cmd, cwd) -> tuple[int, str, float, float]:
    """Run ``cmd``: (exit status, its stderr's tail, wall s, the child's own peak RSS in MB)."""
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)  # this child's rusage alone
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return p.returncode, err.read()[-500:], wall, usage.ru_maxrss / 1024


def eval_interval(s: dict, iterations: int) -> int:
    """The recipe's interval (250) where it divides the run, else one evaluation at the end."""
    return s["eval_interval"] if iterations % s["eval_interval"] == 0 else iterations


def estimate_s(s: dict, iterations: int, timing: dict) -> float:
    """Seconds the anchor of ``iterations`` steps should take, from the GPT case's step timing
    (fnn's manual step, PyTorch eager's, fnn's first call): fnn's run also evaluates
    ``eval_iters`` batches (a forward each, ~1/3 of a step) every ``eval_interval`` steps."""
    fnn_s = timing["ms_per_step"]["fnn-manual"] / 1e3
    torch_s = timing["ms_per_step"]["torch-eager"] / 1e3
    evals = s["eval_iters"] / (3 * eval_interval(s, iterations))
    compile_s = 2 * timing["first_call_s"]["fnn-manual"]  # the CLI's programs, the parent's eval
    return OVERHEAD_S + compile_s + SAFETY * iterations * (fnn_s * (1 + evals) + torch_s)


def fit_iterations(s: dict, requested: int, budget_s: float | None, timing: dict | None) -> int:
    """``requested``, or the most whole evaluation intervals that fit ``budget_s`` (0: none
    fits); no budget or no timing of the GPT step: ``requested``."""
    if budget_s is None or not timing or not {"fnn-manual", "torch-eager"} <= set(
            timing.get("ms_per_step", {})):
        return requested
    if estimate_s(s, requested, timing) <= budget_s:
        return requested
    step = s["eval_interval"]
    per = estimate_s(s, step, timing) - estimate_s(s, 0, timing)
    n = math.floor((budget_s - estimate_s(s, 0, timing)) / per) if per > 0 else 0
    return max(0, min(requested, n * step))


def anchor(text: str, s: dict, *, iterations: int, out: Path, device: str = "cpu",
           quick: bool = False) -> dict:
    """The recipe's config on ``text`` through the CLI (``python -m fnn train``, wall time and
    peak RSS of that process) against the same model and recipe in PyTorch eager on ``device``
    (a child process: the wall of its training loop, its peak RSS), from the same initial
    weights: both final models' mean cross-entropy over every non-overlapping window of the
    same validation split (the file's last 10 %), without dropout. ``quick``: the config
    shrunk to ``s``'s tiny sizes (a smoke test)."""
    import jax
    import numpy as np
    import torch

    import fnn
    from fnn.data.text import load_text

    run = out / Path(s["config"]).stem
    sets = [f"data.path={text}", f"training.iterations={iterations}",
            f"training.eval_interval={eval_interval(s, iterations)}"]
    if quick:
        sets += [f"data.block_size={s['t']}", f"training.batch_size={s['b']}",
                 f"training.eval_iters={s['eval_iters']}",
                 f"optimizer.schedule.warmup_steps={s['warmup']}", fnn_layers_override(s)]
    cmd = [sys.executable, "-m", "fnn", "train", str(ROOT / "configs" / s["config"]),
           "--out", str(run), "--overwrite", "--quiet"] + [a for v in sets for a in ("--set", v)]
    rc, err, fnn_wall, fnn_rss = measured(cmd, ROOT)
    if rc:
        raise SystemExit(f"fnn train failed: {err.strip()}")
    fnn_val = fnn.load_run(run).evaluate(split="val")["loss"]

    data = load_text(text, block_size=s["t"])  # the split fnn trained on
    v = data.vocab.size
    model = torch_model("gpt", s, fnn_net("gpt", s, v).init(jax.random.key(1337)), v)
    xv, yv = data.split("val")
    torch.save(model.state_dict(), out / "anchor_weights.pt")
    np.savez(out / "anchor_data.npz", train=data.train[0], xv=xv, yv=yv)
    spec = {"weights": str(out / "anchor_weights.pt"), "data": str(out / "anchor_data.npz"),
            "result": str(out / "anchor_torch.json"), "vocab": v, "block": s["t"],
            "batch": s["b"], "iterations": iterations, "lr": s["lr"], "lr_min": s["lr_min"],
            "warmup": s["warmup"], "device": device, **s["gpt"]}
    (out / "anchor_spec.json").write_text(json.dumps(spec))
    rc, err, _, torch_rss = measured(
        [sys.executable, str(ROOT / "scripts" / "benchlib" / "torch_sequence.py"),
         str(out / "anchor_spec.json")], ROOT)
    if rc:
        raise SystemExit(f"the PyTorch anchor failed: {err.strip()}")
    t = json.loads((out / "anchor_torch.json").read_text())
    return {"status": "ok", "config": f"configs/{s['config']}", "recipe": s["name"],
            "device": device, "quick": quick, "text": str(text),
            "characters": int(data.train.size + data.val.size),
            "vocabulary": v, "iterations": iterations, "val_windows": int(len(xv)),
            "fnn_val_loss": fnn_val, "torch_val_loss": t["torch_val_loss"],
            "val_loss_difference": fnn_val - t["torch_val_loss"],
            "fnn_cli_wall_s": fnn_wall, "torch_train_wall_s": t["torch_train_wall_s"],
            "wall_ratio_fnn_over_torch": fnn_wall / t["torch_train_wall_s"],
            "fnn_peak_rss_mb": fnn_rss, "torch_peak_rss_mb": torch_rss,
            "rss_ratio_fnn_over_torch": fnn_rss / torch_rss}
