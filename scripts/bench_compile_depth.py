#!/usr/bin/env python
"""Compile time of a char-level GPT's gradient step against its depth: Repeat (one scanned block)
versus the same blocks unrolled in the Sequential.

    PYTHONPATH=$PWD python scripts/bench_compile_depth.py [--depths 2,12] [--grad manual,autodiff]

The model is nanoGPT's CPU recipe (4 heads, 128 dims, block 64, vocabulary 65, batch 12):
Embedding, PositionalEmbedding, n TransformerBlocks, LayerNorm, Dense(65, softmax), the sequence
cross-entropy. Each figure is ``jax.jit(step).lower(...).compile()`` wall time on a fresh
function (no compilation cache), the median of ``--repeats``. Prints one row per depth and
the 12-block / 2-block ratio (the issue's target: ≤ 1.5× with Repeat).
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnn.nn import objective
from fnn.nn.layers import (Dense, Embedding, LayerNorm, PositionalEmbedding, Repeat,
                           TransformerBlock)
from fnn.nn.sequential import Sequential

V, T, D, H, B = 65, 64, 128, 4, 12


def gpt(depth: int, scanned: bool) -> Sequential:
    blocks = [Repeat(TransformerBlock(H), depth)] if scanned else [TransformerBlock(H)] * depth
    return Sequential([Embedding(V, D), PositionalEmbedding(T), *blocks, LayerNorm(),
                       Dense(V, "softmax")], input_shape=(T,))


def compile_seconds(net: Sequential, grad: str) -> float:
    params = net.init(jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(0).integers(0, V, size=(B, T)), jnp.int32)
    y = jax.nn.one_hot(x, V, dtype=jnp.float32)

    def step(params, x, y):
        out = objective.evaluate(net, "cross_entropy", params, x, y, mode=grad)
        return out.loss, out.grads

    t0 = time.perf_counter()
    jax.jit(step).lower(params, x, y).compile()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", default="2,12")
    ap.add_argument("--grad", default="manual,autodiff")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    print(f"jax {jax.__version__} {jax.default_backend()}; GPT {H} heads, {D} dims, block {T},"
          f" vocab {V}, batch {B}; compile seconds, median of {args.repeats}")
    for grad in args.grad.split(","):
        compile_seconds(gpt(1, False), grad)  # warm-up: the first compile in a process pays extra
        for scanned in (True, False):
            secs = {d: statistics.median(compile_seconds(gpt(d, scanned), grad)
                                         for _ in range(args.repeats)) for d in depths}
            row = "  ".join(f"{d:>2} blocks {s:6.2f}s" for d, s in secs.items())
            ratio = secs[depths[-1]] / secs[depths[0]]
            kind = "Repeat  " if scanned else "unrolled"
            print(f"{grad:>8} {kind}  {row}  ratio {depths[-1]}/{depths[0]} = {ratio:.2f}x")


if __name__ == "__main__":
    main()
