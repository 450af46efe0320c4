#!/usr/bin/env python
"""Benchmark of mixed precision: one jitted train step in float32 and in mixed bfloat16.

    python scripts/bench_precision.py [--repeats 7] [--steps 20] [--out DIR] [--quick]

Cases (random data of a fixed NumPy seed, Adam(1e-3), softmax + cross-entropy, manual
gradients, state donated):

* ``mlp``: 784-512-512-10, batch 256;
* ``cnn``: conv 3×3×32 + ReLU, max-pool 2, conv 3×3×64 + ReLU, max-pool 2, dense 128, dense 10
  on 28×28×1 images, batch 128 (the Fashion CNN's shape);
* ``gpt``: 2 GPT blocks, width 128, 4 heads, 64 tokens, 65-token vocabulary, batch 32.

For each case both precisions are timed round-robin (``--repeats`` rounds of ``--steps`` steps),
so a noisy machine slows them alike; the figures are the median per step and the ratio
bfloat16 / float32 (below 1: mixed precision is faster). Writes DIR/precision.json and
DIR/precision.md.

On a CPU, XLA has no bfloat16 matrix units: it converts the operands to float32 for each
product, so mixed precision is expected to be *slower* there; the ratio that matters is the
accelerator's (H100/TPU bfloat16 tensor cores), measured when one is at hand.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from fnn import MLP, Sequential, optim  # noqa: E402
from fnn.engine import TrainState, make_train_step  # noqa: E402
from fnn.layers import (  # noqa: E402
    Conv2D, Dense, Embedding, Flatten, LayerNorm, MaxPool2D, PositionalEmbedding, Repeat,
    TransformerBlock,
)

PRECISIONS = ("full", "bfloat16")


def cases(quick: bool) -> dict:
    """name -> (network, batch (x, y)) ; ``quick`` shrinks every case for a smoke test."""
    rng = np.random.default_rng(0)
    b_mlp, b_cnn, b_gpt = (16, 8, 4) if quick else (256, 128, 32)
    width = 32 if quick else 512
    mlp = MLP([784, width, width, 10], output="softmax")
    cnn = Sequential([Conv2D(32, 3, activation="relu"), MaxPool2D(2),
                      Conv2D(64, 3, activation="relu"), MaxPool2D(2), Flatten(),
                      Dense(128, activation="relu"), Dense(10, activation="softmax")],
                     input_shape=(28, 28, 1))
    t, d = (16, 32) if quick else (64, 128)
    gpt = Sequential([Embedding(65, d), PositionalEmbedding(t), Repeat(TransformerBlock(4), 2),
                      LayerNorm(), Dense(65, activation="softmax")], input_shape=(t,))
    return {
        "mlp": (mlp, (rng.normal(size=(b_mlp, 784)).astype(np.float32),
                      rng.integers(0, 10, b_mlp).astype(np.int32))),
        "cnn": (cnn, (rng.normal(size=(b_cnn, 28, 28, 1)).astype(np.float32),
                      rng.integers(0, 10, b_cnn).astype(np.int32))),
        "gpt": (gpt, (rng.integers(0, 65, (b_gpt, t)).astype(np.int32),
                      rng.integers(0, 65, (b_gpt, t)).astype(np.int32))),
    }


def time_case(net, batch, *, repeats: int, steps: int) -> dict:
    """Median seconds per step of each precision, timed round-robin after a warm-up."""
    opt = optim.adam(1e-3)
    batch = jax.device_put(batch)
    runs = {}
    for p in PRECISIONS:
        step = make_train_step(net, "cross_entropy", opt, precision=p, donate=True)
        state = TrainState.create(net, opt, key=jax.random.key(0))
        state, m = step(state, batch)  # compile
        jax.block_until_ready(m)
        runs[p] = [step, state]
    times = {p: [] for p in PRECISIONS}
    for _ in range(repeats):
        for p in PRECISIONS:
            step, state = runs[p]
            t0 = time.perf_counter()
            for _ in range(steps):
                state, m = step(state, batch)
            jax.block_until_ready((state, m))
            times[p].append((time.perf_counter() - t0) / steps)
            runs[p][1] = state
    med = {p: statistics.median(v) for p, v in times.items()}
    return {"ms_per_step": {p: 1e3 * v for p, v in med.items()},
            "ratio_bf16_over_f32": med["bfloat16"] / med["full"]}


def markdown(results: dict, device: str) -> str:
    lines = [f"mixed precision train step on {device} (median ms per step)", "",
             "| case | float32 | bfloat16 mixed | bf16 / f32 |", "|---|---:|---:|---:|"]
    for name, r in results.items():
        ms = r["ms_per_step"]
        lines.append(f"| {name} | {ms['full']:.2f} | {ms['bfloat16']:.2f} |"
                     f" {r['ratio_bf16_over_f32']:.2f}× |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip())
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cases", default="mlp,cnn,gpt")
    ap.add_argument("--out", default="bench-precision")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, for a smoke test")
    args = ap.parse_args(argv)
    table = cases(args.quick)
    names = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(names) - set(table))
    if unknown:
        ap.error(f"--cases: {','.join(unknown)}; expected names from {','.join(table)}")
    device = f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind})"
    results = {}
    for name in names:
        net, batch = table[name]
        results[name] = time_case(net, batch, repeats=args.repeats, steps=args.steps)
        r = results[name]
        print(f"{name}: float32 {r['ms_per_step']['full']:.2f} ms, bfloat16"
              f" {r['ms_per_step']['bfloat16']:.2f} ms per step"
              f" ({r['ratio_bf16_over_f32']:.2f}x)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps({"device": device, "results": results},
                                                   indent=1) + "\n")
    (out / "precision.md").write_text(markdown(results, device))
    print(f"wrote {out / 'precision.json'}, {out / 'precision.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
