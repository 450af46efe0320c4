#!/usr/bin/env python
"""One gradient evaluation, hand-written backprop vs ``jax.grad``: ``python scripts/bench_grad.py``.

Network 784-512-512-10, ReLU hidden layers, softmax output, cross-entropy, batch 128, float32,
random data. Each mode is ``jax.jit(fnn.objective.evaluate)`` (validation done once, outside the
timed call), compiled before timing. A *repeat* times ``--calls`` back-to-back calls of one mode
and blocks on the last result; the two modes alternate repeat by repeat (manual, autodiff,
manual, ...) so that a noisy neighbour or a frequency change hits both alike, and the reported
time per call is the median over ``--repeats``. Prints both times and the ratio manual/autodiff.

Options: --batch, --repeats, --calls, --dropout (drop_rate, with a fixed key), --hlo DIR (write
the optimized HLO of both programs and print op counts).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import fnn  # noqa: E402
from fnn.nn import objective

SIZES = (784, 512, 512, 10)
MODES = ("manual", "autodiff")


def build(batch: int, drop_rate: float):
    net = fnn.MLP(sizes=SIZES, activation="relu", output="softmax", drop_rate=drop_rate)
    params = net.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, SIZES[0])).astype(np.float32)
    labels = rng.integers(0, SIZES[-1], size=batch)
    xb, yb, _ = objective.prepare_batch(net, "cross_entropy", jnp.asarray(x), jnp.asarray(labels))
    return net, params, xb, yb


def step_fns(net, key):
    def make(mode):
        def step(params, x, y):
            out = objective.evaluate(net, "cross_entropy", params, x, y, mode=mode, key=key)
            return out.loss, out.grads
        return jax.jit(step)
    return {mode: make(mode) for mode in MODES}


def hlo_stats(text: str) -> dict:
    """Counts of a few op kinds in optimized HLO text (the entry computation and fusions)."""
    ops = collections.Counter(re.findall(r"=\s*\S+\s+([a-z][a-z0-9\-]*)\(", text))
    keys = ("fusion", "dot", "custom-call", "transpose", "copy", "reduce", "broadcast",
            "select", "compare", "exponential", "divide", "multiply", "add")
    return {k: ops.get(k, 0) for k in keys} | {"total ops": sum(ops.values())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--hlo", metavar="DIR", help="write optimized HLO of both modes to DIR")
    args = ap.parse_args(argv)

    net, params, x, y = build(args.batch, args.dropout)
    key = jax.random.key(1) if args.dropout > 0 else None
    fns = step_fns(net, key)

    # compile (excluded from timing) and check that both modes agree
    t0 = time.perf_counter()
    outs = {m: jax.block_until_ready(f(params, x, y)) for m, f in fns.items()}
    compile_s = time.perf_counter() - t0
    diff = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))
               for a, b in zip(jax.tree.leaves(outs["manual"][1]),
                               jax.tree.leaves(outs["autodiff"][1])))

    for f in fns.values():                       # warm-up
        for _ in range(3):
            jax.block_until_ready(f(params, x, y))

    times = {m: [] for m in MODES}
    for r in range(args.repeats):
        order = MODES if r % 2 == 0 else MODES[::-1]
        for mode in order:
            f = fns[mode]
            t0 = time.perf_counter()
            for _ in range(args.calls):
                out = f(params, x, y)
            jax.block_until_ready(out)
            times[mode].append((time.perf_counter() - t0) / args.calls)

    med = {m: statistics.median(ts) for m, ts in times.items()}
    spread = {m: (min(ts), max(ts)) for m, ts in times.items()}
    print(f"fnn gradient step: {'-'.join(map(str, SIZES))} relu/softmax/cross_entropy, "
          f"batch {args.batch}, float32, drop_rate {args.dropout}")
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"jax {jax.__version__}, {os.cpu_count()} cpus")
    print(f"{args.repeats} repeats x {args.calls} calls, interleaved; compile (both) "
          f"{compile_s:.2f} s; max leaf-relative |manual - autodiff| = {diff:.1e}")
    for m in MODES:
        lo, hi = spread[m]
        print(f"  {m:<9} {med[m] * 1e3:8.3f} ms/step  (median; min {lo * 1e3:.3f}, "
              f"max {hi * 1e3:.3f})")
    ratio = med["manual"] / med["autodiff"]
    print(f"  ratio manual/autodiff = {ratio:.3f}  (target <= 0.8)")

    if args.hlo:
        os.makedirs(args.hlo, exist_ok=True)
        print("optimized HLO op counts:")
        for mode, f in fns.items():
            text = f.lower(params, x, y).compile().as_text()
            with open(os.path.join(args.hlo, f"{mode}.hlo.txt"), "w") as fh:
                fh.write(text)
            print(f"  {mode:<9} {hlo_stats(text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
