#!/usr/bin/env python
"""The last step of scripts/gpu_check.sh: DIR/summary.md from DIR/bench/bench.json and
DIR/configs/bench.json, the GPU targets of issue 15 met or missed, printed.

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


def target(name, value, ok, fmt, note=""):
    status = "n/a" if value is None else ("met" if ok(value) else "missed")
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

lines = [f"# fnn GPU check{' (SMOKE RUN on CPU: not figures)' if smoke else ''}", ""]
if cases:
    v = env["versions"]
    lines += [f"{env['date']} · device {'cpu' if smoke else 'gpu'} · "
              + ", ".join(f"{k} {x}" for k, x in v.items() if x) + f" · {wall} s in all", ""]
lines += ["| target | measured | status | note |", "| --- | --- | --- | --- |"]
lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
lines += ["", f"Tables: {out / 'bench' / 'bench.md'}, {out / 'configs' / 'bench.md'}; log: {out / 'gpu_check.log'}"]
text = "\n".join(lines) + "\n"
(out / "summary.md").write_text(text)
print(text, end="")
sys.exit(0 if cases else 1)
