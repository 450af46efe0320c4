#!/usr/bin/env python
"""The sequence models' train step, fnn against PyTorch, from the same weights and batch.

    python scripts/bench_sequence.py [--repeats 5] [--steps 10] [--cases gpt,lstm]
                                     [--no-torch-compile] [--out DIR] [--quick]

Cases (nanoGPT's CPU recipe, configs/char_gpt.toml and configs/char_lstm.toml; vocabulary 65,
block 64, batch 12; AdamW(1e-3, b2 = 0.99, weight decay 0.1 on matrices and embeddings) after
clipping at global norm 1.0; random token ids of a fixed NumPy seed):

* ``gpt``: Embedding(65, 128), PositionalEmbedding(64), 4 pre-LayerNorm GPT blocks (4 heads,
  GELU MLP of 512; ``Repeat``), LayerNorm, Dense(65) + softmax cross-entropy. PyTorch: the same
  architecture written as nanoGPT writes it (``wte``, ``wpe``, ``c_attn``, ``c_proj``, ``c_fc``,
  GELU tanh, ``ln_f``, ``lm_head``), here and not imported from nanoGPT.
* ``lstm``: Embedding(65, 64), LSTM(256), LayerNorm, Dense(65). PyTorch: ``nn.LSTM`` with
  ``weight_ih_l0 = w[:D].T``, ``weight_hh_l0 = w[D:].T`` (gates i, f, g, o), ``bias_hh_l0 = 0``.

Contestants: fnn's jitted step with the hand-written backward (``fnn-manual``) and with
``jax.grad`` (``fnn-autodiff``), state donated; PyTorch eager (``torch-eager``) and
``torch.compile`` of the same module (``torch-compile``). Every contestant starts from fnn's
initial weights copied into PyTorch, and the first forward's loss is printed for each so that a
mismatch shows. All run in this one process, timed round-robin (``--repeats`` rounds of
``--steps`` steps each, after a warm-up that includes compilation), so a noisy machine slows
them alike; PyTorch gets ``torch.set_num_threads`` = the cores this process may use
(``--torch-threads``). Run it on a quiet machine: under load from another process, PyTorch's
two OpenMP threads slow its GPT step 4-5x (one thread does not), while XLA's pool degrades
gracefully, which flatters fnn; the 1-minute load average is recorded with each case. Figures:
median ms per step, tokens/s (batch × block / step) and the ratio to PyTorch eager (above 1:
fnn is faster). Writes DIR/sequence.json and DIR/sequence.md. Also reports the CPU flags
(AVX2 / AVX-512), as the ratios depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib (PyTorch's modules)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fnn import Sequential, optim  # noqa: E402
from fnn.engine import TrainState, make_train_step  # noqa: E402
from fnn.layers import (  # noqa: E402
    LSTM, Dense, Embedding, LayerNorm, PositionalEmbedding, Repeat, TransformerBlock,
)

V, T, B = 65, 64, 12
FNN = ("fnn-manual", "fnn-autodiff")
TORCH = ("torch-eager", "torch-compile")


def shapes(quick: bool) -> dict:
    """The sizes of each case (``quick``: tiny, for a smoke test)."""
    if quick:
        return {"t": 16, "b": 2, "gpt": dict(d=32, heads=2, depth=2), "lstm": dict(d=16, h=32)}
    return {"t": T, "b": B, "gpt": dict(d=128, heads=4, depth=4), "lstm": dict(d=64, h=256)}


def fnn_net(case: str, s: dict) -> Sequential:
    t = s["t"]
    if case == "gpt":
        g = s["gpt"]
        layers = [Embedding(V, g["d"]), PositionalEmbedding(t),
                  Repeat(TransformerBlock(g["heads"]), g["depth"]), LayerNorm()]
    else:
        layers = [Embedding(V, s["lstm"]["d"]), LSTM(s["lstm"]["h"]), LayerNorm()]
    return Sequential(layers + [Dense(V, activation="softmax")], input_shape=(t,))


def fnn_optimizer() -> optim.Optimizer:
    """What configs/char_gpt.toml builds, at a constant rate (no schedule in a timing)."""
    return optim.chain(optim.clip_by_global_norm(1.0),
                       optim.adamw(1e-3, b2=0.99, weight_decay=0.1,
                                   mask=optim.weights_only_mask))


# --- PyTorch: the same networks, the same weights ----------------------------------------------
def torch_model(case: str, s: dict, params):
    """The PyTorch module of ``case`` holding fnn's ``params`` (copied, float32)."""
    import torch

    from benchlib.torch_sequence import modules

    def t_(a):
        return torch.tensor(np.asarray(a, np.float32))

    GPT, CharLSTM = modules(V, s["t"])

    def dense(lin, p):
        lin.weight.copy_(t_(p["w"]).T)
        lin.bias.copy_(t_(p["b"]))

    def norm(ln, p):
        ln.weight.copy_(t_(p["scale"]))
        ln.bias.copy_(t_(p["bias"]))

    with torch.no_grad():
        if case == "gpt":
            g = s["gpt"]
            m = GPT(g["d"], g["heads"], g["depth"])
            m.wte.weight.copy_(t_(params[0]["w"]))
            m.wpe.weight.copy_(t_(params[1]["w"]))
            (ln1, attn), (ln2, ff) = params[2]  # Repeat: every leaf stacked over the blocks
            for i, blk in enumerate(m.h):
                pick = jax.tree.map(lambda a: a[i], ((ln1, attn), (ln2, ff)))
                (p_ln1, p_attn), (p_ln2, p_ff) = pick
                norm(blk.ln_1, p_ln1)
                norm(blk.ln_2, p_ln2)
                dense(blk.c_attn, p_attn["qkv"])  # Q, K, V in that order
                dense(blk.c_proj, p_attn["proj"])
                dense(blk.c_fc, p_ff["fc"])
                dense(blk.mlp_proj, p_ff["proj"])
            norm(m.ln_f, params[3])
            dense(m.lm_head, params[4])
        else:
            c = s["lstm"]
            m = CharLSTM(c["d"], c["h"])
            m.wte.weight.copy_(t_(params[0]["w"]))
            w, b = np.asarray(params[1]["w"]), np.asarray(params[1]["b"])
            m.lstm.weight_ih_l0.copy_(t_(w[:c["d"]]).T)
            m.lstm.weight_hh_l0.copy_(t_(w[c["d"]:]).T)
            m.lstm.bias_ih_l0.copy_(t_(b))
            m.lstm.bias_hh_l0.zero_()
            norm(m.ln, params[2])
            dense(m.head, params[3])
    return m


def torch_step(model, compiled: bool):
    """A ``step(x, y) -> loss`` of PyTorch: forward, cross-entropy, backward, clip, AdamW."""
    import torch
    from torch.nn import functional as F

    decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices and embeddings
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    fwd = torch.compile(model) if compiled else model

    def step(x, y):
        logits = fwd(x)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.detach()

    return step


# --- timing ------------------------------------------------------------------------------------
def time_case(case: str, s: dict, *, repeats: int, steps: int, torch_compile: bool,
              torch_threads: int = 0) -> dict:
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, (s["b"], s["t"])).astype(np.int32)
    y = rng.integers(0, V, (s["b"], s["t"])).astype(np.int32)
    net = fnn_net(case, s)
    params = net.init(jax.random.key(0))
    opt = fnn_optimizer()
    runners, first_loss, compile_s = {}, {}, {}
    batch = jax.device_put((jnp.asarray(x), jnp.asarray(y)))
    for c in FNN:
        step = make_train_step(net, "cross_entropy", opt, grad=c.split("-")[1], donate=True)
        state = TrainState.create(net, opt, key=jax.random.key(0),
                                  params=jax.tree.map(jnp.array, params))
        t0 = time.perf_counter()
        state, m = step(state, batch)
        jax.block_until_ready(m)
        compile_s[c] = time.perf_counter() - t0
        first_loss[c] = float(m["loss"])
        runners[c] = _fnn_runner(step, state, batch)
    skipped = {}
    try:
        import torch
    except ImportError:
        torch = None
        skipped = {c: "torch not installed" for c in TORCH}
    if torch is not None:
        torch.manual_seed(0)
        torch.set_num_threads(torch_threads or len(os.sched_getaffinity(0)))
        xt, yt = torch.tensor(x, dtype=torch.long), torch.tensor(y, dtype=torch.long)
        for c in TORCH:
            if c == "torch-compile" and not torch_compile:
                skipped[c] = "excluded by --no-torch-compile"
                continue
            step = torch_step(torch_model(case, s, params), compiled=c == "torch-compile")
            t0 = time.perf_counter()
            try:
                first_loss[c] = float(step(xt, yt))
            except Exception as err:  # noqa: BLE001 - torch.compile needs a C++ toolchain
                skipped[c] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
                continue
            compile_s[c] = time.perf_counter() - t0
            runners[c] = _torch_runner(step, xt, yt)
    times = {c: [] for c in runners}
    for _ in range(repeats):
        for c, run in runners.items():
            times[c].append(run(steps) / steps)
    ms = {c: 1e3 * statistics.median(v) for c, v in times.items()}
    tokens = s["b"] * s["t"]
    eager = ms.get("torch-eager")
    return {"shape": {"batch": s["b"], "block": s["t"], **s[case]},
            "ms_per_step": ms, "tokens_per_s": {c: 1e3 * tokens / v for c, v in ms.items()},
            "ratio_to_torch_eager": {c: eager / v for c, v in ms.items()} if eager else {},
            "first_step_loss": first_loss, "first_call_s": compile_s, "skipped": skipped,
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "load_avg_1m": os.getloadavg()[0]}


def _fnn_runner(step, state, batch):
    box = [state]

    def run(n):
        t0 = time.perf_counter()
        s = box[0]
        for _ in range(n):
            s, m = step(s, batch)
        jax.block_until_ready((s, m))
        box[0] = s
        return time.perf_counter() - t0

    return run


def _torch_runner(step, x, y):
    def run(n):
        t0 = time.perf_counter()
        for _ in range(n):
            loss = step(x, y)
        float(loss)
        return time.perf_counter() - t0

    return run


# --- the accuracy anchor and the whole run: configs/char_gpt.toml against PyTorch ---------------
def _measured(cmd, cwd) -> tuple[int, str, float, float]:
    """Run ``cmd``: (exit status, its stderr's tail, wall s, the child's own peak RSS in MB)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)  # this child's rusage alone
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return p.returncode, err.read()[-500:], wall, usage.ru_maxrss / 1024


def anchor(text: str, *, iterations: int, out: Path) -> dict:
    """configs/char_gpt.toml on ``text`` through the CLI (``python -m fnn train``, wall time and
    peak RSS of that process) against the same model and recipe in PyTorch eager (a child
    process of NumPy and PyTorch only, ``benchlib/torch_sequence.py``: the wall of its training
    loop, its peak RSS), from the same initial weights: both final models' mean cross-entropy
    over every non-overlapping window of the same validation split (the file's last 10 %)."""
    import torch

    import fnn
    from fnn.data.text import load_text

    root = Path(__file__).resolve().parents[1]
    run = out / "char_gpt"
    sets = [f"data.path={text}", f"training.iterations={iterations}",
            f"training.eval_interval={iterations // 8 if iterations % 8 == 0 else iterations}"]
    cmd = [sys.executable, "-m", "fnn", "train", str(root / "configs" / "char_gpt.toml"),
           "--out", str(run), "--overwrite", "--quiet"] + [a for v in sets for a in ("--set", v)]
    rc, err, fnn_wall, fnn_rss = _measured(cmd, root)
    if rc:
        raise SystemExit(f"fnn train failed: {err.strip()}")
    fnn_val = fnn.load_run(run).evaluate(split="val")["loss"]

    data = load_text(text, block_size=T)  # the split fnn trained on
    v = data.vocab.size
    s = {"t": T, "gpt": dict(d=128, heads=4, depth=4)}
    global V
    V_saved, V = V, v
    try:
        model = torch_model("gpt", s, fnn_net("gpt", s).init(jax.random.key(1337)))
    finally:
        V = V_saved
    xv, yv = data.split("val")
    torch.save(model.state_dict(), out / "anchor_weights.pt")
    np.savez(out / "anchor_data.npz", train=data.train[0], xv=xv, yv=yv)
    spec = {"weights": str(out / "anchor_weights.pt"), "data": str(out / "anchor_data.npz"),
            "result": str(out / "anchor_torch.json"), "vocab": v, "block": T, "batch": B,
            "iterations": iterations, "lr": 1e-3, "lr_min": 1e-4, "warmup": 100,
            **s["gpt"]}
    (out / "anchor_spec.json").write_text(json.dumps(spec))
    rc, err, _, torch_rss = _measured(
        [sys.executable, str(root / "scripts" / "benchlib" / "torch_sequence.py"),
         str(out / "anchor_spec.json")], root)
    if rc:
        raise SystemExit(f"the PyTorch anchor failed: {err.strip()}")
    t = json.loads((out / "anchor_torch.json").read_text())
    return {"text": str(text), "characters": int(data.train.size + data.val.size),
            "vocabulary": v, "iterations": iterations, "val_windows": int(len(xv)),
            "fnn_val_loss": fnn_val, "torch_val_loss": t["torch_val_loss"],
            "val_loss_difference": fnn_val - t["torch_val_loss"],
            "fnn_cli_wall_s": fnn_wall, "torch_train_wall_s": t["torch_train_wall_s"],
            "wall_ratio_fnn_over_torch": fnn_wall / t["torch_train_wall_s"],
            "fnn_peak_rss_mb": fnn_rss, "torch_peak_rss_mb": torch_rss,
            "rss_ratio_fnn_over_torch": fnn_rss / torch_rss}


def cpu_flags() -> str:
    """The vector extensions of this CPU that matter to the GEMMs (Linux /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                  if ln.startswith("model name")), "unknown")
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                      if ln.startswith("flags")), []))
    has = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} ({', '.join(has) or 'no AVX2'})"


def markdown(results: dict, machine: str) -> str:
    lines = [f"sequence-model train step, {machine} (median of round-robin rounds)", "",
             "| case | contestant | ms / step | tokens/s | vs torch eager | first-step loss |"
             " first call (s) |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        for c, v in r["ms_per_step"].items():
            ratio = r["ratio_to_torch_eager"].get(c)
            lines.append(f"| {name} | {c} | {v:.2f} | {r['tokens_per_s'][c]:,.0f} |"
                         f" {'' if ratio is None else f'{ratio:.2f}×'} |"
                         f" {r['first_step_loss'][c]:.5f} | {r['first_call_s'][c]:.1f} |")
        for c, why in r["skipped"].items():
            lines.append(f"| {name} | {c} | skipped: {why} | | | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip())
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cases", default="gpt,lstm")
    ap.add_argument("--no-torch-compile", dest="torch_compile", action="store_false")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="PyTorch's intra-op threads (default: every core this process may use)")
    ap.add_argument("--out", default="bench-sequence")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, for a smoke test")
    ap.add_argument("--text", default="", help="also the accuracy anchor and the whole run: "
                    "configs/char_gpt.toml on this UTF-8 file vs the same recipe in PyTorch")
    ap.add_argument("--iterations", type=int, default=2000, help="of the anchor (the recipe's)")
    args = ap.parse_args(argv)
    names = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(names) - {"gpt", "lstm"})
    if unknown:
        ap.error(f"--cases: {','.join(unknown)}; expected names from gpt,lstm")
    s = shapes(args.quick)
    machine = f"{cpu_flags()}, {len(os.sched_getaffinity(0))} cores, {jax.devices()[0].platform}"
    results = {}
    for name in names:
        r = results[name] = time_case(name, s, repeats=args.repeats, steps=args.steps,
                                      torch_compile=args.torch_compile,
                                      torch_threads=args.torch_threads)
        print(name + ": " + ", ".join(f"{c} {v:.2f} ms" for c, v in r["ms_per_step"].items()),
              flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = {}
    if args.text:
        a = extra["anchor"] = anchor(args.text, iterations=args.iterations, out=out)
        print(f"anchor: val loss fnn {a['fnn_val_loss']:.4f}, torch {a['torch_val_loss']:.4f}"
              f" (difference {a['val_loss_difference']:+.4f}); wall fnn CLI"
              f" {a['fnn_cli_wall_s']:.1f} s, torch {a['torch_train_wall_s']:.1f} s"
              f" ({a['wall_ratio_fnn_over_torch']:.2f}x); peak RSS fnn {a['fnn_peak_rss_mb']:.0f}"
              f" MB, torch {a['torch_peak_rss_mb']:.0f} MB ({a['rss_ratio_fnn_over_torch']:.2f}x)",
              flush=True)
    (out / "sequence.json").write_text(json.dumps({"machine": machine, "results": results,
                                                   **extra}, indent=1) + "\n")
    (out / "sequence.md").write_text(markdown(results, machine))
    print(markdown(results, machine))
    print(f"wrote {out / 'sequence.json'}, {out / 'sequence.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
