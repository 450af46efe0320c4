#!/usr/bin/env python
"""Benchmark of the training engine: the scanned run vs a Python loop, manual vs autodiff.

    python scripts/bench_engine.py [--samples 60000] [--tiny-samples 8192] [--repeats 7]
                                   [--cases tiny,large] [--no-profile]

Two networks on random float32 data (a fixed NumPy seed), Adam(1e-3), softmax + cross-entropy,
ReLU hidden layers:

* tiny:  2-16-16-2, batch 32, ``--tiny-epochs`` epochs of ``--tiny-samples`` examples;
* large: 784-512-512-10, batch 128, one epoch of ``--samples`` examples.

Contestants, each with ``grad="manual"`` (the notes' backprop) and ``grad="autodiff"``
(``jax.grad``):

* ``scan``: ``Trainer.train(key)`` — the whole run (shuffling, mini-batches, Adam, NaN guard,
  end-of-epoch evaluation on a 128-example validation split) as one XLA program, timed on
  calls after the first, so compilation is excluded (printed separately);
* ``loop``: a Python ``for`` loop over ``make_train_step(...)`` (jitted, warmed up, state
  donated) over batches pre-sliced on the device.

The contestants of a case are timed round-robin, ``--repeats`` rounds, so a noisy machine slows
them alike; the figures are the best round (the least disturbed) and the median. Samples/s
counts the examples trained on (padding included).

``--profile`` (default on) explains the figures: for the tiny net, the kernels per train step in
the compiled HLO and the time of scans of the step's components (forward, gradient, + Adam,
+ guard and metrics); the Python dispatch cost of a jitted call on the TrainState pytree; for
the large net, the gradient alone, manual vs autodiff, their HLO dots, and the achieved FLOP/s.

Targets (issue 4): scan ≥ 15× the Python loop on the tiny net; manual ≤ 0.8× autodiff time on
the large net.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fnn import MLP, optim  # noqa: E402
from fnn.nn import losses as losses_mod  # noqa: E402
from fnn.nn import objective as obj  # noqa: E402
from fnn.engine import Trainer, TrainState, make_train_step, train_step_fn  # noqa: E402


# --------------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------------
def make_data(n, features, classes, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features), dtype=np.float32)
    y = rng.integers(0, classes, n).astype(np.int32)
    xv = rng.standard_normal((128, features), dtype=np.float32)
    yv = rng.integers(0, classes, 128).astype(np.int32)
    return x, y, xv, yv


def round_robin(fns: dict, repeats: int) -> dict:
    """Time each zero-argument callable ``repeats`` times, interleaved. Returns name -> [s]."""
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(fn())
            times[k].append(time.perf_counter() - t)
    return times


def first_call(fn) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


def scan_contestant(net, data, *, epochs, batch_size, grad):
    tr = Trainer(net, "cross_entropy", optim.adam(1e-3), data, epochs=epochs,
                 batch_size=batch_size, grad=grad)
    key = jax.random.key(0)
    fn = lambda: tr.train(key)  # noqa: E731
    first = first_call(fn)
    return fn, lambda t: first - t, epochs * tr.batches_per_epoch  # compile = first − steady


def loop_contestant(net, data, *, epochs, batch_size, grad):
    x, y = data[0], data[1]
    n = len(x)
    opt = optim.adam(1e-3)
    step = make_train_step(net, "cross_entropy", opt, grad=grad, donate=True)
    nb = math.ceil(n / batch_size)
    perm = np.random.default_rng(1).permutation(n)
    perm = np.concatenate([perm, perm[: nb * batch_size - n]]).reshape(nb, batch_size)
    xd, yd = jax.device_put(x), jax.device_put(y)
    batches = [(xd[jnp.asarray(i)], yd[jnp.asarray(i)]) for i in perm]  # sliced once, on device
    jax.block_until_ready(batches)
    holder = {"state": TrainState.create(net, opt, key=jax.random.key(0))}

    def run():
        state = holder["state"]
        for _ in range(epochs):
            for b in batches:
                state, _ = step(state, b)
        holder["state"] = state
        return state

    first = first_call(lambda: step(holder["state"], batches[0])[1])  # compiles; donates
    holder["state"] = TrainState.create(net, opt, key=jax.random.key(0))
    steps = epochs * nb
    return run, lambda t: first - t / steps, steps  # compile = first step − a steady step


def run_case(title, net, data, *, epochs, batch_size, repeats):
    print(f"\n{title}", flush=True)
    fns, info = {}, {}
    for kind, make in (("scan", scan_contestant), ("loop", loop_contestant)):
        for grad in ("manual", "autodiff"):
            fn, compile_of, steps = make(net, data, epochs=epochs, batch_size=batch_size,
                                         grad=grad)
            fns[(kind, grad)] = fn
            info[(kind, grad)] = (compile_of, steps)
    times = round_robin(fns, repeats)
    best = {}
    for k, ts in times.items():
        compile_of, steps = info[k]
        t, med = min(ts), statistics.median(ts)
        best[k] = t
        samples = steps * batch_size
        print(f"  {k[0]:<5} {k[1]:<9} {samples / t:>12,.0f} samples/s  {1e6 * t / steps:>9.1f} µs/step"
              f"   (median {samples / med:>10,.0f}/s; compilation {compile_of(t):.2f} s)",
              flush=True)
    return best


# --------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------
_NOT_KERNELS = ("parameter(", "get-tuple-element(", "tuple(", "constant(", "bitcast(")


def kernel_count(compiled_text: str) -> dict:
    """Instructions of the ENTRY computation that run as kernels (thunks), by kind."""
    entry = compiled_text[compiled_text.index("\nENTRY"):]
    entry = entry[: entry.index("\n}")]
    counts = {"dot": 0, "fusion": 0, "other": 0}
    for line in entry.split("\n")[1:]:
        m = re.search(r"= \S+ ([a-z-]+)\(", line)
        if not m or any(s in line for s in _NOT_KERNELS):
            continue
        op = m.group(1)
        if op == "dot" or "__ynn_fusion" in line or "__xnn_fusion" in line:
            counts["dot"] += 1  # matmuls (XLA dots and YNNPACK/XNNPACK fusions around them)
        elif op == "fusion":
            counts["fusion"] += 1
        else:
            counts["other"] += 1
    return counts


def scan_fn(body, steps):
    """jitted ``carry -> carry``: ``lax.scan`` of ``body(carry)`` over ``steps`` iterations."""
    return jax.jit(lambda c: jax.lax.scan(lambda c, _: (body(c), None), c, None,
                                          length=steps)[0])


def profile_tiny(net, repeats, batch_size=32, steps=2048):
    print("\nprofile, tiny net (scan of the same batch, best of", repeats, "):", flush=True)
    loss = losses_mod.get("cross_entropy")
    opt = optim.adam(1e-3)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch_size, 2), dtype=np.float32))
    labels = jnp.asarray(rng.integers(0, 2, batch_size).astype(np.int32))
    y = losses_mod.prepare_targets(loss, labels, 2, jnp.float32)
    state = TrainState.create(net, opt, key=jax.random.key(0))

    def fwd(p, b):
        yh, caches = net.forward(p, b[0])
        return jax.tree.map(lambda a: a + 0 * loss.value(caches[-1].z, yh, b[1]), p)

    def grads(p, b):
        g = obj.evaluate(net, loss, p, b[0], b[1], mode="manual").grads
        return jax.tree.map(lambda a, d: a - 1e-3 * d, p, g)

    def adam(s, b):
        g = obj.evaluate(net, loss, s[0], b[0], b[1], mode="manual").grads
        u, o = opt.update(g, s[1], s[0])
        return optim.apply_updates(s[0], u), o

    step = train_step_fn(net, loss, opt)
    parts = {
        "forward + loss": (lambda p: fwd(p, (x, y)), state.params),
        "forward + manual gradient + SGD update": (lambda p: grads(p, (x, y)), state.params),
        "forward + manual gradient + Adam update": (lambda s: adam(s, (x, y)),
                                                    (state.params, state.opt_state)),
        "full train step (+ key split, NaN guard, metrics)": (lambda s: step(s, (x, labels))[0],
                                                              state),
    }
    fns = {}
    for name, (body, carry) in parts.items():
        f = scan_fn(body, steps)
        jax.block_until_ready(f(carry))
        fns[name] = (lambda f=f, c=carry: f(c))
    for name, ts in round_robin(fns, repeats).items():
        print(f"  {name:<52} {1e6 * min(ts) / steps:7.1f} µs/step")
    text = jax.jit(step).lower(state, (x, labels)).compile().as_text()
    k = kernel_count(text)
    print(f"  kernels in one compiled train step: {sum(k.values())} ({k['dot']} matmul,"
          f" {k['fusion']} fused elementwise/reduction, {k['other']} other)")
    # the floor of a Python loop: dispatching a jitted call on the TrainState pytree
    ident = jax.jit(lambda s, b: (s, b[0][0, 0]), donate_argnums=(0,))
    s = jax.tree.map(jnp.copy, state)
    s, _ = ident(s, (x, labels))

    def loop():
        nonlocal s
        for _ in range(256):
            s, _ = ident(s, (x, labels))
        return s

    t = min(round_robin({"f": loop}, repeats)["f"]) / 256
    print(f"  Python dispatch of a no-op jitted call on the TrainState"
          f" ({len(jax.tree.leaves(state))} leaves): {1e6 * t:.1f} µs/call")


def profile_large(net, repeats, batch_size=128):
    print("\nprofile, large net (one batch, best of", repeats * 3, "):", flush=True)
    loss = losses_mod.get("cross_entropy")
    p = net.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch_size, 784), dtype=np.float32))
    y = jax.nn.one_hot(jnp.asarray(rng.integers(0, 10, batch_size)), 10, dtype=jnp.float32)
    fns, texts = {}, {}
    for mode in ("manual", "autodiff"):
        f = jax.jit(lambda p, x, y, m=mode: obj.evaluate(net, loss, p, x, y, mode=m).grads)
        c = f.lower(p, x, y).compile()
        texts[mode] = c.as_text()
        fns[mode] = (lambda c=c: c(p, x, y))
        jax.block_until_ready(fns[mode]())
    f = jax.jit(lambda p, x: net.apply(p, x)).lower(p, x).compile()
    fns["forward"] = lambda: f(p, x)
    # the rest of a train step: Adam, then the NaN guard, the metrics and the key split
    opt = optim.adam(1e-3)
    state = TrainState.create(net, opt, key=jax.random.key(0), params=p)

    def grad_adam(s, x, y):
        g = obj.evaluate(net, loss, s.params, x, y, mode="manual").grads
        u, o = opt.update(g, s.opt_state, s.params)
        return optim.apply_updates(s.params, u), o

    ga = jax.jit(grad_adam).lower(state, x, y).compile()
    fns["+ Adam"] = lambda: ga(state, x, y)
    full = jax.jit(train_step_fn(net, loss, opt)).lower(state, (x, y)).compile()
    fns["full step"] = lambda: full(state, (x, y))
    times = round_robin(fns, repeats * 3)
    sizes = net.sizes
    fwd_flops = 2 * batch_size * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    bwd_flops = 2 * fwd_flops - 2 * batch_size * sizes[0] * sizes[1]  # no dX for the inputs
    labels = {"manual": "manual gradient", "autodiff": "autodiff gradient",
              "forward": "forward only", "+ Adam": "manual gradient + Adam",
              "full step": "full train step (+ NaN guard, metrics, key split)"}
    for k, ts in times.items():
        flops = fwd_flops if k == "forward" else fwd_flops + bwd_flops
        print(f"  {labels[k]:<50} {1e3 * min(ts):7.3f} ms/batch"
              f"   {flops / min(ts) / 1e9:6.1f} GFLOP/s")
    for mode, text in texts.items():
        k = kernel_count(text)
        dots = sorted(re.findall(r"f32\[[0-9,]+\][^ ]* dot\(", text))
        print(f"  {mode:<9} gradient HLO: {sum(k.values())} kernels, {k['dot']} matmul kernels;"
              f" dots {[d.split('{')[0].split(' ')[0] for d in dots]}")
    print(f"  ratio manual / autodiff (gradient only): "
          f"{min(times['manual']) / min(times['autodiff']):.2f}")


# --------------------------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=60000, help="large net: examples (one epoch)")
    p.add_argument("--tiny-samples", type=int, default=8192, help="tiny net: examples per epoch")
    p.add_argument("--tiny-epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--cases", default="tiny,large")
    p.add_argument("--no-profile", dest="profile", action="store_false")
    a = p.parse_args(argv)
    dev = jax.devices()[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"jax {jax.__version__} on {dev.platform} ({dev.device_kind}), {os.cpu_count()} CPUs,"
          f" load average {load:.1f}; best of {a.repeats} rounds")

    cases = a.cases.split(",")
    if "tiny" in cases:
        net = MLP(sizes=(2, 16, 16, 2), activation="relu", output="softmax")
        data = make_data(a.tiny_samples, 2, 2)
        best = run_case(f"tiny 2-16-16-2, batch 32, {a.tiny_epochs} epochs x {a.tiny_samples}"
                        f" samples", net, data, epochs=a.tiny_epochs, batch_size=32,
                        repeats=a.repeats)
        for grad in ("manual", "autodiff"):
            r = best[("loop", grad)] / best[("scan", grad)]
            print(f"  -> {grad}: scan is {r:.1f}x the Python loop (target >= 15x)")
        if a.profile:
            profile_tiny(net, a.repeats)
    if "large" in cases:
        net = MLP(sizes=(784, 512, 512, 10), activation="relu", output="softmax")
        data = make_data(a.samples, 784, 10)
        best = run_case(f"large 784-512-512-10, batch 128, 1 epoch x {a.samples} samples", net,
                        data, epochs=1, batch_size=128, repeats=a.repeats)
        for kind in ("scan", "loop"):
            r = best[(kind, "manual")] / best[(kind, "autodiff")]
            print(f"  -> {kind}: manual / autodiff time = {r:.2f} (target <= 0.8)")
        r = best[("loop", "manual")] / best[("scan", "manual")]
        print(f"  -> manual: scan is {r:.2f}x the Python loop")
        if a.profile:
            profile_large(net, a.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
