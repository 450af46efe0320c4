#!/usr/bin/env python
"""The last step of scripts/gpu_check.sh: DIR/summary.md from DIR/bench/bench.json,
DIR/configs/bench.json (the GPU targets of issue 15) and DIR/sequence/sequence.json (the GPT
case of issue 22: nanoGPT's Shakespeare recipe), met or missed, printed.

    python scripts/gpu_summary.py DIR SMOKE(0|1) WALL_SECONDS
"""
import json
import sys
from pathlib import Path

out, smoke, wall = Path(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
cases = {}
for sub in ("bench", "configs"):
    p = out / sub / "bench.json"
    if p.is_file():
        d = json.loads(p.read_text())
        cases.update(d["cases"])
        env = d["environment"]
seq_path = out / "sequence" / "sequence.json"
seq = json.loads(seq_path.read_text()) if seq_path.is_file() else None
NANOGPT_VAL, RECIPE_ITERS, TOLERANCE = 1.4697, 5000, 0.03


def get(*path):
    d = cases
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def sps(case, c):
    return get(case, "results", c, "samples_per_s")


def best(case, names):
    vals = [(sps(case, c), c) for c in names if sps(case, c)]
    return max(vals) if vals else (None, None)


def ratio(a, b):
    return a / b if a and b else None


rows = []


def target(name, value, ok, fmt, note="", status=None):
    status = status or ("n/a" if value is None else ("met" if ok(value) else "missed"))
    rows.append((name, "—" if value is None else fmt.format(value), status, note))


t_large, c_large = best("large", ("torch", "torch-fused"))
target("large MLP: fnn ≥ 1.0× PyTorch CUDA eager", ratio(sps("large", "fnn-scan"), t_large),
       lambda v: v >= 1.0, "{:.2f}×", f"vs {c_large}; torch.compile: "
       + (f"{ratio(sps('large', 'fnn-scan'), sps('large', 'torch-compile')):.2f}×"
          if sps("large", "torch-compile") else str(get("large", "results", "torch-compile", "reason"))))
target("CNN: fnn ≥ 0.9× PyTorch (cuDNN)", get("cnn", "results", "fnn-manual", "vs_torch"),
       lambda v: v >= 0.9, "{:.2f}×", "fnn-manual vs torch eager; torch.compile: "
       + (f"{ratio(sps('cnn', 'fnn-manual'), sps('cnn', 'torch-compile')):.2f}×"
          if sps("cnn", "torch-compile") else str(get("cnn", "results", "torch-compile", "reason"))))
t_tiny, c_tiny = best("tiny", ("torch", "torch-fused"))
target("tiny MLP: fnn scanned ≥ 50× PyTorch eager", ratio(sps("tiny", "fnn-scan"), t_tiny),
       lambda v: v >= 50, "{:.1f}×", f"vs {c_tiny}")
target(f"{get('sweep', 'config', 'members') or 64}-member sweep ≤ 1.5× one member's wall",
       get("sweep", "wall_ratio"), lambda v: v <= 1.5, "{:.2f}×")
fr = get("fashion", "results", "fnn-cli") or {}
target("Fashion-MNIST MLP config ≤ 10 s end to end (compile included)",
       fr.get("wall_s") if fr.get("status") == "ok" else None, lambda v: v <= 10, "{:.1f} s",
       f"test acc {fr.get('final_test_accuracy', float('nan')):.4f}" if fr.get("status") == "ok" else "")
fc = get("fashion_cnn") or {}
target("Fashion-MNIST CNN config: fnn wall ÷ PyTorch (report)", fc.get("wall_ratio"),
       lambda v: v <= 1.0, "{:.2f}×", f"test acc fnn − PyTorch {fc.get('test_accuracy_diff', float('nan')):+.4f}")

# the GPT case: nanoGPT's Shakespeare recipe (configs/shakespeare_char.toml)
g = (seq or {}).get("results", {}).get("gpt") or {}
ratios, tps = g.get("ratio_to_torch_eager", {}), g.get("tokens_per_s", {})
timed = "fnn-manual" in tps and "torch-eager" in tps
if timed:
    vs_compile = ratio(tps["fnn-manual"], tps.get("torch-compile"))
    note = (f"fnn {tps['fnn-manual']:,.0f} tokens/s, PyTorch eager {tps['torch-eager']:,.0f}; "
            f"jax.grad {ratios.get('fnn-autodiff', float('nan')):.2f}×; torch.compile: "
            + (f"{vs_compile:.2f}×" if vs_compile else str(g["skipped"].get("torch-compile"))))
elif seq is None:
    note = "the GPT case did not run (see the log)"
else:
    note = f"not timed: {g.get('skipped') or 'no GPT case in sequence.json'}"
target("GPT step (nanoGPT Shakespeare recipe): fnn tokens/s ≥ 1.0× PyTorch eager (report)",
       ratios.get("fnn-manual") if timed else None, lambda v: v >= 1.0, "{:.2f}×", note)
a = (seq or {}).get("anchor")
if seq is None:
    why = "not run: the GPT case did not run (see the log)"
elif a is None:
    why = "not run: no text at .gpu_data/shakespeare.txt"
elif a.get("status") != "ok":
    why = f"not run: {a.get('status')}: {a.get('reason')}"
else:
    why = None
if why:
    for name in ("GPT anchor: fnn val loss within 0.03 of PyTorch's (same recipe, text, weights)",
                 "GPT anchor: fnn val loss ≤ nanoGPT's 1.4697 + 0.03 (5,000 iterations)"):
        target(name, None, None, "", why)
else:
    n = a["iterations"]
    run = (f"{n:,} iterations" + (f" (capped from {a['requested_iterations']:,} to fit the time;"
                                  " --gpt-iterations 5000 for the whole recipe)"
                                  if a.get("capped") else ""))
    target("GPT anchor: fnn val loss within 0.03 of PyTorch's (same recipe, text, weights)",
           a["val_loss_difference"], lambda v: abs(v) <= TOLERANCE, "{:+.4f}",
           f"fnn {a['fnn_val_loss']:.4f}, PyTorch {a['torch_val_loss']:.4f} after {run}; wall "
           f"fnn CLI {a['fnn_cli_wall_s']:.0f} s, PyTorch's loop {a['torch_train_wall_s']:.0f} s"
           f" ({a['wall_ratio_fnn_over_torch']:.2f}×)")
    target("GPT anchor: fnn val loss ≤ nanoGPT's 1.4697 + 0.03 (5,000 iterations)",
           a["fnn_val_loss"], lambda v: v - NANOGPT_VAL <= TOLERANCE, "{:.4f}",
           f"{a['fnn_val_loss'] - NANOGPT_VAL:+.4f} vs nanoGPT (its figure is on its own "
           f"input.txt; here a {a['characters']:,}-character text)" + ("" if n == RECIPE_ITERS and not a.get("quick")
                                                    else f"; not comparable: {run}"),
           status=None if n == RECIPE_ITERS and not a.get("quick") else "n/a")

lines = [f"# fnn GPU check{' (SMOKE RUN on CPU: not figures)' if smoke else ''}", ""]
if cases:
    v = env["versions"]
    lines += [f"{env['date']} · device {'cpu' if smoke else 'gpu'} · "
              + ", ".join(f"{k} {x}" for k, x in v.items() if x) + f" · {wall} s in all", ""]
lines += ["| target | measured | status | note |", "| --- | --- | --- | --- |"]
lines += [f"| {a} | {b} | {c} | {' '.join(str(d).split()).replace('|', '/')} |"
          for a, b, c, d in rows]  # a note (a failure's stderr) on one line, no cell breaks
lines += ["", f"Tables: {out / 'bench' / 'bench.md'}, {out / 'configs' / 'bench.md'}, "
          f"{out / 'sequence' / 'sequence.md'}; log: {out / 'gpu_check.log'}"]
text = "\n".join(lines) + "\n"
(out / "summary.md").write_text(text)
print(text, end="")
sys.exit(0 if cases else 1)
