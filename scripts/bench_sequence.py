#!/usr/bin/env python
"""The sequence models' train step, fnn against PyTorch, from the same weights and batch.

    python scripts/bench_sequence.py [--recipe cpu|gpu] [--device cpu|gpu] [--repeats 5]
                                     [--steps 10] [--cases gpt,lstm] [--no-torch-compile]
                                     [--text FILE [--iterations N] [--budget S]]
                                     [--out DIR] [--quick]

Recipes (``--recipe``, benchlib/sequence_models.py; random token ids of a fixed NumPy seed,
vocabulary 65; AdamW(1e-3, b2 = 0.99, weight decay 0.1 on matrices and embeddings) after
clipping at global norm 1.0):

* ``cpu`` (the default): nanoGPT's CPU recipe, configs/char_gpt.toml and configs/char_lstm.toml:
  block 64, batch 12; the GPT of 4 blocks, 4 heads, 128 dims, dropout 0.
* ``gpu``: nanoGPT's full Shakespeare recipe, configs/shakespeare_char.toml: block 256, batch 64;
  the GPT of 6 blocks, 6 heads, 384 dims, dropout 0.2 (after the embeddings, on the attention
  weights, on both residual branches: nanoGPT's four places); the LSTM at that block and batch.

Cases:

* ``gpt``: Embedding(65, D), PositionalEmbedding(T), [Dropout,] pre-LayerNorm GPT blocks (GELU
  MLP of 4D; ``Repeat``), LayerNorm, Dense(65) + softmax cross-entropy. PyTorch: the same
  architecture written as nanoGPT writes it (``wte``, ``wpe``, ``c_attn``, ``c_proj``, ``c_fc``,
  GELU tanh, ``ln_f``, ``lm_head``; nanoGPT's dropouts), here and not imported from nanoGPT.
* ``lstm``: Embedding(65, 64), LSTM(256), LayerNorm, Dense(65). PyTorch: ``nn.LSTM`` with
  ``weight_ih_l0 = w[:D].T``, ``weight_hh_l0 = w[D:].T`` (gates i, f, g, o), ``bias_hh_l0 = 0``.

Contestants: fnn's jitted step with the hand-written backward (``fnn-manual``) and with
``jax.grad`` (``fnn-autodiff``), state donated; PyTorch eager (``torch-eager``) and
``torch.compile`` of the same module (``torch-compile``). Every contestant starts from fnn's
initial weights copied into PyTorch, and the first forward's loss is printed for each so that a
mismatch shows (with dropout the losses agree only roughly: the masks differ). All run in this
one process, timed round-robin (``--repeats`` rounds of ``--steps`` steps each, after a warm-up
that includes compilation), so a noisy machine slows them alike; PyTorch gets
``torch.set_num_threads`` = the cores this process may use (``--torch-threads``). Run it on a
quiet machine: under load from another process, PyTorch's two OpenMP threads slow its GPT step
4-5x (one thread does not), while XLA's pool degrades gracefully, which flatters fnn; the 1-minute
load average is recorded with each case. ``--device gpu``: fnn on JAX's GPU backend (which must
be the default one; GPU memory is not preallocated, XLA_PYTHON_CLIENT_PREALLOCATE=false, so that
PyTorch and the anchor's processes share the card), PyTorch's model and batch on CUDA, TF32
matmuls on both sides (XLA's default float32 dot on Ampere and later; nanoGPT sets PyTorch's),
every timed round ending in ``torch.cuda.synchronize()``. Figures: median ms per step, tokens/s
(batch × block / step) and the ratio to PyTorch eager (above 1: fnn is faster). Writes
DIR/sequence.json and DIR/sequence.md. Also reports the CPU flags (AVX2 / AVX-512), as the CPU
ratios depend on them.

``--text FILE`` adds the anchor (benchlib/sequence_anchor.py): the recipe's config through
``python -m fnn train`` against the same recipe in PyTorch on ``--device``, validation losses,
wall times, peak RSS. ``--iterations`` (default: the recipe's, 2,000 or 5,000); ``--budget S``
caps them, after the GPT case's step timing, to the most whole evaluation intervals (250
steps) whose estimated time fits what is left of S seconds since the start (the JSON records
the cap); ``--quick`` shrinks the config to the tiny shapes too.
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

from benchlib.sequence_anchor import anchor, fit_iterations  # noqa: E402
from benchlib.sequence_models import (  # noqa: E402
    RECIPES, V, fnn_net, fnn_optimizer, shapes, torch_device, torch_model,
)
from fnn.engine import TrainState, make_train_step  # noqa: E402

FNN = ("fnn-manual", "fnn-autodiff")
TORCH = ("torch-eager", "torch-compile")


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
              torch_threads: int = 0, device: str = "cpu") -> dict:
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
        dev, sync = torch_device(device)
        xt = torch.tensor(x, dtype=torch.long, device=dev)
        yt = torch.tensor(y, dtype=torch.long, device=dev)
        for c in TORCH:
            if c == "torch-compile" and not torch_compile:
                skipped[c] = "excluded by --no-torch-compile"
                continue
            step = torch_step(torch_model(case, s, params).to(dev), compiled=c == "torch-compile")
            t0 = time.perf_counter()
            try:
                first_loss[c] = float(step(xt, yt))
            except Exception as err:  # noqa: BLE001 - torch.compile needs a C++ toolchain
                skipped[c] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
                continue
            compile_s[c] = time.perf_counter() - t0
            runners[c] = _torch_runner(step, xt, yt, sync)
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


def _torch_runner(step, x, y, sync=lambda: None):
    def run(n):
        sync()
        t0 = time.perf_counter()
        for _ in range(n):
            loss = step(x, y)
        float(loss)
        sync()
        return time.perf_counter() - t0

    return run


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


def anchor_line(a: dict) -> str:
    if a["status"] != "ok":
        return f"anchor: {a['status']}: {a['reason']}"
    return (f"anchor ({a['config']}, {a['iterations']} iterations, {a['device']}): val loss fnn"
            f" {a['fnn_val_loss']:.4f}, torch {a['torch_val_loss']:.4f}"
            f" (difference {a['val_loss_difference']:+.4f}); wall fnn CLI"
            f" {a['fnn_cli_wall_s']:.1f} s, torch {a['torch_train_wall_s']:.1f} s"
            f" ({a['wall_ratio_fnn_over_torch']:.2f}x); peak RSS fnn {a['fnn_peak_rss_mb']:.0f}"
            f" MB, torch {a['torch_peak_rss_mb']:.0f} MB ({a['rss_ratio_fnn_over_torch']:.2f}x)")


def main(argv=None) -> int:
    start = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip())
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="cpu",
                    help="the shapes and config: cpu = configs/char_gpt.toml, "
                    "gpu = configs/shakespeare_char.toml")
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                    help="gpu: JAX's GPU backend (the default one) and PyTorch on CUDA")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cases", default="gpt,lstm")
    ap.add_argument("--no-torch-compile", dest="torch_compile", action="store_false")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="PyTorch's intra-op threads (default: every core this process may use)")
    ap.add_argument("--out", default="bench-sequence")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, for a smoke test")
    ap.add_argument("--text", default="", help="also the accuracy anchor and the whole run: "
                    "the recipe's config on this UTF-8 file vs the same recipe in PyTorch")
    ap.add_argument("--iterations", type=int, default=0,
                    help="of the anchor (default: the recipe's, 2,000 or 5,000)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for this whole run: "
                    "the anchor's iterations are capped to fit (whole evaluation intervals)")
    args = ap.parse_args(argv)
    names = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(names) - {"gpt", "lstm"})
    if unknown:
        ap.error(f"--cases: {','.join(unknown)}; expected names from gpt,lstm")
    if args.device == "gpu":  # before JAX's first use: PyTorch and the children share the card
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        if jax.default_backend() != "gpu":
            ap.error(f"--device gpu: JAX's default backend is {jax.default_backend()}")
    s = shapes(args.quick, args.recipe)
    machine = (f"{cpu_flags()}, {len(os.sched_getaffinity(0))} cores, "
               f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind}), "
               f"recipe {args.recipe}{' (quick)' if args.quick else ''}, device {args.device}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"machine": machine, "recipe": args.recipe, "device": args.device,
           "quick": args.quick, "results": {}}

    def write():
        (out / "sequence.json").write_text(json.dumps(doc, indent=1) + "\n")
        (out / "sequence.md").write_text(markdown(doc["results"], machine) + (
            f"\n{anchor_line(doc['anchor'])}\n" if "anchor" in doc else ""))

    for name in names:
        r = doc["results"][name] = time_case(name, s, repeats=args.repeats, steps=args.steps,
                                             torch_compile=args.torch_compile,
                                             torch_threads=args.torch_threads,
                                             device=args.device)
        print(name + ": " + ", ".join(f"{c} {v:.2f} ms" for c, v in r["ms_per_step"].items()),
              flush=True)
    write()  # the timing stays on record should the anchor not finish
    rc = 0
    if args.text:
        if args.device == "gpu":
            import torch
            torch.cuda.empty_cache()  # the timing's PyTorch memory, for the anchor's processes
        requested = args.iterations or s["iterations"]
        left = None if args.budget is None else args.budget - (time.perf_counter() - start)
        n = fit_iterations(s, requested, left, doc["results"].get("gpt"))
        cap = {"requested_iterations": requested, "budget_left_s": left,
               "capped": n < requested}
        if n <= 0:
            doc["anchor"] = {"status": "skipped", **cap, "reason": f"no whole evaluation "
                             f"interval fits the {left:.0f} s left of --budget {args.budget:.0f}"}
        else:
            doc["anchor"] = {"status": "unfinished", **cap, "iterations": n, "reason":
                             f"the anchor of {n} iterations started and did not end (killed?)"}
            write()
            try:
                doc["anchor"] = {**anchor(args.text, s, iterations=n, out=out,
                                          device=args.device, quick=args.quick), **cap}
            except SystemExit as err:  # one side failed: its message, on record
                doc["anchor"] = {"status": "failed", **cap, "reason": str(err)}
                rc = 1
        print(anchor_line(doc["anchor"]), flush=True)
    write()
    print(markdown(doc["results"], machine))
    print(f"wrote {out / 'sequence.json'}, {out / 'sequence.md'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
