"""``fnn bench``: fnn side by side with PyTorch, Flax+optax and scikit-learn on this machine.

    python scripts/bench.py [--cases large,tiny,...] [--only fnn|peers|all] [--out DIR]
    fnn bench ...                     (the same command)

One command runs every case and writes ``DIR/bench.json`` and ``DIR/bench.md``:

* ``large``   784-512-512-10 ReLU MLP, softmax cross-entropy, batch 128, Adam(1e-3), one epoch of
  60000 random samples: fnn's scanned run (manual and autodiff gradients), a Python loop over
  fnn's jitted step, PyTorch eager (default and fused Adam), Flax (linen) + optax jitted step loop.
* ``tiny``    the same contestants on a 2-16-16-2 MLP, batch 32.
* ``util``    the large MLP's training FLOP/s (6 × weights × samples) over the XLA fp32 matmul
  FLOP/s measured in the same run on the matmuls of that very training step (see ``_w_util``).
* ``fashion`` Fashion-MNIST time to 0.885 validation accuracy with configs/fashion_mnist.toml run
  by the fnn CLI (cold compilation cache, compile included), against scikit-learn's
  MLPClassifier (adam, same hidden sizes) and PyTorch running the same recipe.
* ``sweep``   a 16-member vmapped sweep of the tiny MLP (``Trainer.sweep``) vs one member
  (``Trainer.train``).
* ``startup`` wall time of ``fnn train configs/quickstart.toml`` with a fresh ``$FNN_CACHE_DIR``
  (cold) and again with JAX's persistent compilation cache filled (warm).

Method. Every contestant runs in its own child process (so each one's peak resident memory,
``VmHWM``, is its own and no framework's thread pool competes with another's), pinned with
``sched_setaffinity`` to the same ``--threads`` cores (default: all schedulable cores). XLA's CPU
client sizes its intra-op thread pool to the schedulable cores, so it uses exactly that many;
PyTorch gets ``torch.set_num_threads`` of the same count, scikit-learn a ``threadpoolctl`` limit.
Every contestant of a case gets the same data (a seeded NumPy generator), the same initial weights
(He-normal for ReLU layers, Glorot-uniform for the output layer, zero biases — fnn's defaults,
drawn once with NumPy and loaded into every framework), the same optimizer and batch size, and
the same per-epoch permutation (padded with its own first entries to a whole number of batches,
as fnn's engine does). Each timing is the median of ``--repeats`` epochs after a warm-up epoch
that includes compilation; first-call times are reported separately.

This module imports only the standard library at the top: each worker imports its own framework,
and the peers (``pip install 'fnn[bench]'``) are never dependencies of fnn. A peer that is not
installed is skipped with the reason in the results.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
CASES = ("large", "tiny", "util", "fashion", "sweep", "startup")
MLP_CONTESTANTS = ("fnn-scan", "fnn-scan-autodiff", "fnn-loop", "torch", "torch-fused", "flax")
PEER_MODULES = {"torch": ("torch",), "torch-fused": ("torch",), "flax": ("flax", "optax"),
                "sklearn": ("sklearn",)}
TARGET_ACCURACY = 0.885
RESULT_TAG = "fnn-bench"

CONTESTANT_TITLES = {
    "fnn-scan": "fnn scanned run (manual grads)",
    "fnn-scan-autodiff": "fnn scanned run (autodiff grads)",
    "fnn-loop": "fnn Python loop over jitted step",
    "torch": "PyTorch eager (Adam default)",
    "torch-fused": "PyTorch eager (Adam fused=True)",
    "flax": "Flax linen + optax jitted step loop",
    "fnn-train": "fnn Trainer.train (1 member)",
    "fnn-sweep": "fnn Trainer.sweep",
    "fnn-cli": "fnn train (CLI, cold cache)",
    "sklearn": "scikit-learn MLPClassifier (adam)",
    "xla-matmul": "XLA fp32 matmul reference",
    "fnn-scan (interleaved)": "fnn scanned run, interleaved with the GEMM reference",
    "cold": "cold (fresh FNN_CACHE_DIR)",
    "warm": "warm (persistent cache filled)",
}


# =============================================================================================
# Settings
# =============================================================================================
def settings_from_args(args) -> dict:
    """The benchmark's parameters (all sizes in one dict, recorded in the JSON)."""
    quick = args.quick
    s = {
        "threads": args.threads or len(_allowed_cpus()),
        "repeats": args.repeats or (2 if quick else 5),
        "seed": 0,
        "large": {"sizes": [784, 64, 64, 10] if quick else [784, 512, 512, 10], "batch": 128,
                  "samples": args.samples or (2048 if quick else 60000), "learning_rate": 1e-3},
        "tiny": {"sizes": [2, 16, 16, 2], "batch": 32,
                 "samples": args.samples or (2048 if quick else 60000), "learning_rate": 1e-3},
        "val_samples": 256 if quick else 1024,
        "sweep": {"members": args.members or (4 if quick else 16)},
        "fashion": {"config": str(args.fashion_config), "target": TARGET_ACCURACY,
                    "sklearn_epochs": args.sklearn_epochs, "sklearn_time_cap_s": 900},
        "startup": {"config": str(args.startup_config), "repeats": 1 if quick else 3},
        "worker_timeout_s": args.timeout,
        "in_process": args.in_process,
    }
    # The tiny MLP runs ~100x faster per epoch: take more repeats for a stable median.
    s["tiny"]["repeats"] = max(s["repeats"], 2 if quick else 9)
    s["large"]["repeats"] = s["repeats"]
    return s


def _allowed_cpus() -> list:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


# =============================================================================================
# Shared helpers (used inside workers)
# =============================================================================================
def _peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss where /proc is absent), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:  # pragma: no cover
        pass
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


def _mlp_data(cfg: dict, seed: int, val_samples: int):
    """Random features (N, in) float32 ~ N(0, 1) and labels (N,) int32, plus a small val set."""
    import numpy as np

    rng = np.random.default_rng([seed, 1])
    n, fin, k = cfg["samples"], cfg["sizes"][0], cfg["sizes"][-1]
    x = rng.standard_normal((n, fin), dtype=np.float32)
    y = rng.integers(0, k, n).astype(np.int32)
    xv = rng.standard_normal((val_samples, fin), dtype=np.float32)
    yv = rng.integers(0, k, val_samples).astype(np.int32)
    return x, y, xv, yv


def _init_params(sizes, seed: int):
    """fnn's default initialization drawn with NumPy: He-normal N(0, 2/fan_in) for the ReLU
    layers, Glorot-uniform U(±√(6/(fan_in+fan_out))) for the (softmax) output layer, zero biases.

    Returns: list of (w (in, out) float32, b (out,) float32).
    """
    import numpy as np

    rng = np.random.default_rng([seed, 2])
    out = []
    for l in range(len(sizes) - 1):
        fi, fo = sizes[l], sizes[l + 1]
        if l < len(sizes) - 2:
            w = rng.standard_normal((fi, fo)) * math.sqrt(2.0 / fi)
        else:
            r = math.sqrt(6.0 / (fi + fo))
            w = rng.uniform(-r, r, (fi, fo))
        out.append((w.astype(np.float32), np.zeros((fo,), np.float32)))
    return out


def _epoch_order(n: int, batch: int, seed: int, epoch: int):
    """The epoch's permutation padded with its own first entries: (batches, batch) int32."""
    import numpy as np

    nb = -(-n // batch)
    perm = np.random.default_rng([seed, 3, epoch]).permutation(n)
    pad = nb * batch - n
    if pad:
        perm = np.concatenate([perm, perm[:pad]])
    return perm.reshape(nb, batch).astype(np.int32)


def _timed_epochs(run_epoch, repeats: int, sync=lambda: None) -> dict:
    """Warm-up epoch (compilation included), then ``repeats`` timed epochs."""
    t0 = time.perf_counter()
    run_epoch(0)
    sync()
    first = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        run_epoch(r + 1)
        sync()
        times.append(time.perf_counter() - t0)
    return {"first_call_s": first, "times_s": times}


# =============================================================================================
# Workers: MLP throughput (large / tiny)
# =============================================================================================
def _w_mlp(spec: dict) -> dict:
    contestant = spec["contestant"]
    fn = {"fnn-scan": _mlp_fnn_scan, "fnn-scan-autodiff": _mlp_fnn_scan,
          "fnn-loop": _mlp_fnn_loop, "torch": _mlp_torch, "torch-fused": _mlp_torch,
          "flax": _mlp_flax}[contestant]
    cfg = spec["cfg"]
    data = _mlp_data(cfg, spec["seed"], spec["val_samples"])
    params = _init_params(cfg["sizes"], spec["seed"])
    out = fn(spec, cfg, data, params)
    nb = -(-cfg["samples"] // cfg["batch"])
    out.update(steps=nb, samples_per_epoch=nb * cfg["batch"])
    return out


def _fnn_net_params(cfg, params):
    import jax.numpy as jnp

    import fnn

    net = fnn.MLP(sizes=tuple(cfg["sizes"]), activation="relu", output="softmax")
    p = tuple({"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in params)
    return net, p


def _mlp_fnn_scan(spec, cfg, data, params) -> dict:
    import jax

    from fnn import optim
    from fnn.engine.trainer import TrainState, Trainer

    net, p = _fnn_net_params(cfg, params)
    opt = optim.adam(cfg["learning_rate"])
    grad = "autodiff" if spec["contestant"].endswith("autodiff") else "manual"
    x, y, xv, yv = data
    trainer = Trainer(net, "cross_entropy", opt, (x, y, xv, yv), epochs=1,
                      batch_size=cfg["batch"], grad=grad)
    box = {"state": TrainState.create(net, opt, key=jax.random.key(spec["seed"]), params=p),
           "losses": []}

    def run_epoch(_):
        box["state"], hist = trainer.run(box["state"])
        box["losses"].append(hist["train_loss"])

    res = _timed_epochs(run_epoch, spec["repeats"],
                        lambda: jax.block_until_ready((box["state"], box["losses"][-1])))
    res["final_loss"] = float(box["losses"][-1][-1])
    res["notes"] = (f"Trainer.run, epochs=1, in-program validation on {len(xv)} samples each "
                    f"epoch; grad={grad}")
    return res


def _host_batches(x, y, order):
    """The epoch's batches as NumPy views of one per-epoch gather (as PyTorch's loop does with
    ``x[idx]``); each step hands its view to the jitted function, as the README's loop does."""
    xs, ys = x[order], y[order]
    return [(xs[i], ys[i]) for i in range(order.shape[0])]


def _mlp_fnn_loop(spec, cfg, data, params) -> dict:
    import jax

    from fnn import optim
    from fnn.engine.trainer import TrainState, make_train_step

    net, p = _fnn_net_params(cfg, params)
    opt = optim.adam(cfg["learning_rate"])
    step = make_train_step(net, "cross_entropy", opt, grad="manual", donate=True)
    x, y = data[0], data[1]
    box = {"state": TrainState.create(net, opt, key=jax.random.key(spec["seed"]), params=p),
           "losses": None}

    def run_epoch(e):
        batches = _host_batches(x, y, _epoch_order(cfg["samples"], cfg["batch"], spec["seed"], e))
        state, losses = box["state"], []
        for xb, yb in batches:
            state, m = step(state, (xb, yb))
            losses.append(m["data_loss"])
        box["state"], box["losses"] = state, losses

    res = _timed_epochs(run_epoch, spec["repeats"],
                        lambda: jax.block_until_ready((box["state"], box["losses"])))
    res["final_loss"] = float(sum(float(v) for v in box["losses"]) / len(box["losses"]))
    res["notes"] = "make_train_step(grad='manual', donate=True); batches: NumPy views of one gather per epoch"
    return res


def _mlp_torch(spec, cfg, data, params) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(spec["threads"])
    layers = []
    for l, (w, b) in enumerate(params):
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if l < len(params) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    fused = spec["contestant"] == "torch-fused"
    opt = torch.optim.Adam(model.parameters(), lr=cfg["learning_rate"],
                           **({"fused": True} if fused else {}))
    x = torch.from_numpy(data[0])
    y = torch.from_numpy(data[1].astype(np.int64))
    box = {"losses": None}

    def run_epoch(e):
        idx = torch.from_numpy(_epoch_order(cfg["samples"], cfg["batch"], spec["seed"], e).astype(np.int64))
        xs, ys = x[idx], y[idx]
        losses = []
        for i in range(idx.shape[0]):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xs[i]), ys[i])
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        box["losses"] = losses

    res = _timed_epochs(run_epoch, spec["repeats"])
    res["final_loss"] = float(torch.stack(box["losses"]).mean())
    res["torch_threads"] = torch.get_num_threads()
    res["notes"] = (f"torch.set_num_threads({torch.get_num_threads()}); Adam "
                    f"{'fused=True' if fused else 'default implementation'}; batches: one gather per epoch")
    return res


def _mlp_flax(spec, cfg, data, params) -> dict:
    import functools

    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    sizes = cfg["sizes"]

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            for width in sizes[1:-1]:
                x = nn.relu(nn.Dense(width)(x))
            return nn.Dense(sizes[-1])(x)

    model = MLP()
    variables = {"params": {f"Dense_{l}": {"kernel": jnp.asarray(w), "bias": jnp.asarray(b)}
                            for l, (w, b) in enumerate(params)}}
    tx = optax.adam(cfg["learning_rate"])

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(variables, opt_state, xb, yb):
        def loss_fn(v):
            logits = model.apply(v, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        loss, grads = jax.value_and_grad(loss_fn)(variables)
        updates, opt_state = tx.update(grads, opt_state, variables)
        return optax.apply_updates(variables, updates), opt_state, loss

    x, y = data[0], data[1]
    box = {"v": variables, "o": tx.init(variables), "losses": None}

    def run_epoch(e):
        batches = _host_batches(x, y, _epoch_order(cfg["samples"], cfg["batch"], spec["seed"], e))
        v, o, losses = box["v"], box["o"], []
        for xb, yb in batches:
            v, o, loss = step(v, o, xb, yb)
            losses.append(loss)
        box.update(v=v, o=o, losses=losses)

    res = _timed_epochs(run_epoch, spec["repeats"],
                        lambda: jax.block_until_ready((box["v"], box["losses"])))
    res["final_loss"] = float(sum(float(v) for v in box["losses"]) / len(box["losses"]))
    res["notes"] = "jax.jit(step, donate params+opt state); batches: NumPy views of one gather per epoch"
    return res


# =============================================================================================
# Worker: matmul reference for utilization
# =============================================================================================
def _w_util(spec: dict) -> dict:
    """XLA fp32 matmul FLOP/s and fnn's scanned epoch, interleaved in one process.

    ``step_gemms`` (the reference): a ``lax.scan`` over the epoch's batches doing exactly the
    GEMMs of one training step of the large MLP, with the same shapes — forward
    A(l−1) W(l) (128×in · in×out), weight gradients A(l−1)ᵀ δ(l) (in×128 · 128×out) and the input
    gradients δ(l) W(l)ᵀ of every layer but the first — and a tiny weight update so that nothing
    is loop-invariant. No activation, loss or optimizer work: the attainable matmul throughput
    for this very model, batch size and thread count, i.e. the ceiling fnn could reach.
    ``square_512``: a scanned chain of 512×512 · 512×512 products (more reuse per FLOP; for
    reference). ``fnn-scan``: fnn's scanned epoch (manual gradients), as in the large case.
    The three alternate repeat by repeat, so they see the same machine load.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from fnn import optim
    from fnn.engine.trainer import TrainState, Trainer

    cfg = spec["cfg"]
    sizes, b = cfg["sizes"], cfg["batch"]
    nb = -(-cfg["samples"] // b)
    rng = np.random.default_rng([spec["seed"], 5])
    ws = [jnp.asarray(rng.standard_normal((i, o)) / math.sqrt(i), jnp.float32)
          for i, o in zip(sizes[:-1], sizes[1:])]
    xs = jnp.asarray(rng.standard_normal((nb, b, sizes[0])), jnp.float32)

    def step_gemms(ws, xs):
        def body(ws, x):
            acts, a = [x], x
            for w in ws:
                a = a @ w
                acts.append(a)
            d, grads = acts[-1], [None] * len(ws)
            for l in range(len(ws) - 1, -1, -1):
                grads[l] = acts[l].T @ d
                if l > 0:
                    d = d @ ws[l].T
            return [w - 1e-9 * g for w, g in zip(ws, grads)], None

        return jax.lax.scan(body, ws, xs)[0]

    gemm_flops = sum(2 * b * i * o * (3 if l > 0 else 2)
                     for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])))
    f1 = jax.jit(step_gemms)
    n, reps = 512, 64
    m = jnp.asarray(np.linalg.qr(rng.standard_normal((n, n)))[0], jnp.float32)
    c0 = jnp.asarray(rng.standard_normal((n, n)), jnp.float32)
    f2 = jax.jit(lambda c, m: jax.lax.scan(lambda c, _: (c @ m, None), c, None, length=reps)[0])

    net, p = _fnn_net_params(cfg, _init_params(sizes, spec["seed"]))
    opt = optim.adam(cfg["learning_rate"])
    x, y, xv, yv = _mlp_data(cfg, spec["seed"], spec["val_samples"])
    trainer = Trainer(net, "cross_entropy", opt, (x, y, xv, yv), epochs=1, batch_size=b)
    box = {"state": TrainState.create(net, opt, key=jax.random.key(spec["seed"]), params=p)}

    def fnn_epoch():
        box["state"], h = trainer.run(box["state"])
        return box["state"], h

    runs = {"step_gemms": lambda: f1(ws, xs), "fnn-scan": fnn_epoch, "square_512": lambda: f2(c0, m)}
    first, times = {}, {k: [] for k in runs}
    for k, fn in runs.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        first[k] = time.perf_counter() - t0
    for _ in range(spec["repeats"]):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "step_gemms": {"flops_per_step": gemm_flops, "steps": nb, "times_s": times["step_gemms"],
                       "median_s": med["step_gemms"], "gflops": gemm_flops * nb / med["step_gemms"] / 1e9},
        "square_512": {"flops": 2 * n ** 3 * reps, "times_s": times["square_512"],
                       "median_s": med["square_512"], "gflops": 2 * n ** 3 * reps / med["square_512"] / 1e9},
        "fnn_scan": {"times_s": times["fnn-scan"], "median_s": med["fnn-scan"],
                     "samples_per_s": nb * b / med["fnn-scan"], "first_call_s": first["fnn-scan"]},
        "times_s": times["step_gemms"], "first_call_s": first["step_gemms"],
    }


# =============================================================================================
# Worker: sweep scaling
# =============================================================================================
def _w_sweep(spec: dict) -> dict:
    import jax
    import jax.numpy as jnp

    import fnn
    from fnn import optim
    from fnn.engine.trainer import Trainer

    cfg = spec["cfg"]
    x, y, xv, yv = _mlp_data(cfg, spec["seed"], spec["val_samples"])
    net = fnn.MLP(sizes=tuple(cfg["sizes"]), activation="relu", output="softmax")
    trainer = Trainer(net, "cross_entropy", lambda hp: optim.adam(hp.learning_rate),
                      (x, y, xv, yv), epochs=1, batch_size=cfg["batch"])
    members = spec["members"]
    keys = jax.random.split(jax.random.key(spec["seed"]), members)
    lrs = jnp.geomspace(1e-4, 1e-2, members).astype(jnp.float32)
    box = {}
    if spec["contestant"] == "fnn-sweep":
        def run_epoch(_):
            box["out"] = trainer.sweep(keys, {"learning_rate": lrs})
        notes = f"Trainer.sweep over {members} keys × learning rates (geomspace 1e-4..1e-2)"
    else:
        def run_epoch(_):
            box["out"] = trainer.train(keys[0], {"learning_rate": 1e-3})
        notes = "Trainer.train, one member"
    res = _timed_epochs(run_epoch, spec["repeats"], lambda: jax.block_until_ready(box["out"]))
    nb = -(-cfg["samples"] // cfg["batch"])
    res.update(steps=nb, samples_per_epoch=nb * cfg["batch"] * (members if spec["contestant"] == "fnn-sweep" else 1),
               members=members if spec["contestant"] == "fnn-sweep" else 1, notes=notes)
    return res


# =============================================================================================
# Workers: Fashion-MNIST time to accuracy
# =============================================================================================
def _fashion_arrays(val_fraction: float = 0.1, seed: int = 0):
    """Fashion-MNIST from the same files and with the same split as fnn.data.load, NumPy only
    (no jax import in the peers' processes). Returns uint8 images (N, 784) and int labels."""
    import gzip

    import numpy as np

    dirs = []
    if os.environ.get("FNN_DATA_DIR"):
        dirs.append(Path(os.environ["FNN_DATA_DIR"]) / "fashion_mnist")
    dirs += [Path.home() / ".cache" / "fnn" / "fashion_mnist", Path("/usr/share/datasets/fashion-mnist")]
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")

    def find(d, name):
        for cand in (d / (name + ".gz"), d / name):
            if cand.is_file():
                return cand
        return None

    for d in dirs:
        paths = [find(d, n) for n in names]
        if all(paths):
            break
    else:
        raise FileNotFoundError("Fashion-MNIST files not found in " + ", ".join(map(str, dirs)))

    def read(path):
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        ndim = raw[3]
        shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
        arr = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)
        return arr.reshape(shape[0], -1) if ndim > 1 else arr

    x, y, xt, yt = (read(p) for p in paths)
    n = x.shape[0]
    n_val = max(1, int(round(val_fraction * n)))
    perm = np.random.default_rng([1, int(seed)]).permutation(n)  # fnn.data.splits.SPLIT_STREAM = 1
    val, train = perm[:n_val], perm[n_val:]
    return x[train], y[train].astype(np.int64), x[val], y[val].astype(np.int64), xt, yt.astype(np.int64)


def _w_fashion_fnn(spec: dict) -> dict:
    """The shipped config through the fnn CLI (``fnn train``), recording a timestamp at every
    epoch from the in-program progress callback (called every epoch of runs under 200 epochs:
    ``Trainer.progress_every = max(1, epochs // 100)``)."""
    from fnn import cli
    from fnn.experiment import runner

    records = []

    class Recorder(runner.ProgressBar):
        """Stands in for the tqdm bar (so the runner wires the per-epoch callback as it does for
        an interactive run) and timestamps every epoch instead of drawing."""

        def __init__(self, total, desc, *, enabled):
            self.bar = self  # not None: the runner passes us as the progress callback

        def __call__(self, epoch, metrics):
            records.append({"t": time.time(), "epoch": int(epoch),
                            "val_accuracy": float(metrics.get("val_accuracy", float("nan")))})

        def start_at(self, epoch):
            pass

        def close(self):
            pass

    runner.ProgressBar = Recorder
    out = Path(spec["tmp"]) / "run"
    rc = cli.main(["train", spec["config"], "--out", str(out), "--overwrite", "--quiet"])
    t_end = time.time()
    summary = json.loads((out / "summary.json").read_text())
    return _fashion_result(spec, records, t_end, rc=rc,
                           final_test_accuracy=summary.get("test_accuracy"),
                           train_wall_s=summary.get("wall_time_s"), epochs=summary.get("epochs"),
                           notes="fnn train configs/fashion_mnist.toml, fresh FNN_CACHE_DIR "
                                 "(compile included), checkpoints + plots written as configured")


def _fashion_result(spec, records, t_end, **extra) -> dict:
    t0 = spec["t_launch"]
    reached = next((r for r in records if r["val_accuracy"] >= spec["target"]), None)
    return {
        "epochs_log": [{"epoch": r["epoch"], "t_s": r["t"] - t0, "val_accuracy": r["val_accuracy"]}
                       for r in records],
        "time_to_target_s": (reached["t"] - t0) if reached else None,
        "epoch_reached": reached["epoch"] if reached else None,
        "final_val_accuracy": records[-1]["val_accuracy"] if records else None,
        "wall_s": t_end - t0,
        **extra,
    }


def _w_fashion_torch(spec: dict) -> dict:
    """PyTorch running the config's recipe (:func:`fashion_recipe` of fashion_mnist.toml: hidden
    sizes, activation, inverted dropout as fnn's, Adam with per-step cosine decay, batch size,
    epochs, early stopping): the same split, initialization scheme and padded per-epoch
    permutation, uint8 images scaled per batch, validation accuracy after every epoch, test at
    the end."""
    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    rc = spec["recipe"]
    xtr, ytr, xv, yv, xt, yt = _fashion_arrays(rc["val_fraction"], rc["data_seed"])
    sizes = [784, *rc["hidden"], 10]
    drop, lr, batch, epochs = rc["drop_rate"], rc["learning_rate"], rc["batch_size"], rc["epochs"]
    layers = []
    for l, (w, b) in enumerate(_init_params(sizes, spec["seed"])):
        if l > 0:
            layers.append(torch.nn.Dropout(drop))
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            lin.bias.zero_()
        layers.append(lin)
        if l < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    nb = -(-len(xtr) // batch)
    total = epochs * nb
    if rc["schedule"] == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
    else:  # constant
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    x8, y = torch.from_numpy(xtr), torch.from_numpy(ytr)

    def evaluate(xs, ys):
        model.eval()
        with torch.no_grad():
            logits = model(torch.from_numpy(xs).float().div_(255.0))
            t = torch.from_numpy(ys)
            acc = float((logits.argmax(1) == t).float().mean())
            loss = float(torch.nn.functional.cross_entropy(logits, t))
        model.train()
        return {"val_accuracy": acc, "val_loss": loss}

    es = rc["early_stopping"]
    best, best_state, wait, stopped_at = None, None, 0, None
    records = []
    for e in range(epochs):
        idx = torch.from_numpy(_epoch_order(len(xtr), batch, spec["seed"], e).astype(np.int64))
        xs, ys = x8[idx], y[idx]
        for i in range(nb):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(xs[i].float().div_(255.0)), ys[i])
            loss.backward()
            opt.step()
            sched.step()
        val = evaluate(xv, yv)
        records.append({"t": time.time(), "epoch": e + 1, "val_accuracy": val["val_accuracy"]})
        if es:  # fnn's rule: improve by more than min_delta, else wait; stop at patience
            v = val[es["monitor"]]
            sign = 1.0 if es["monitor"] == "val_accuracy" else -1.0
            if best is None or sign * (v - best) > es["min_delta"]:
                best, wait = v, 0
                best_state = {k: t.clone() for k, t in model.state_dict().items()}
            else:
                wait += 1
                if wait >= es["patience"]:
                    stopped_at = e + 1
                    break
    if es and es["restore_best"] and best_state is not None:
        model.load_state_dict(best_state)
    test = evaluate(xt, yt)["val_accuracy"]
    return _fashion_result(spec, records, time.time(), final_test_accuracy=test,
                           epochs=len(records), stopped_early_at=stopped_at,
                           notes=f"the config's recipe ({'-'.join(map(str, sizes))}, dropout {drop}, "
                                 f"Adam {lr:g} {rc['schedule']}, batch {batch}"
                                 f"{', early stopping on ' + es['monitor'] if es else ''}); "
                                 f"torch.set_num_threads({spec['threads']})")


def _w_fashion_sklearn(spec: dict) -> dict:
    """MLPClassifier with the config's hidden sizes, relu, adam at the config's (peak) learning
    rate and batch size, alpha 0 (no L2; it has no dropout and no schedule): one ``partial_fit``
    per epoch, validation accuracy after each, up to ``epochs`` epochs or ``time_cap_s``."""
    import warnings

    import numpy as np
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    rc = spec["recipe"]
    xtr, ytr, xv, yv, xt, yt = _fashion_arrays(rc["val_fraction"], rc["data_seed"])
    with threadpool_limits(spec["threads"]):
        xtr = xtr.astype(np.float32) / np.float32(255.0)
        xv = xv.astype(np.float32) / np.float32(255.0)
        clf = MLPClassifier(hidden_layer_sizes=tuple(rc["hidden"]), activation="relu",
                            solver="adam", alpha=0.0, batch_size=rc["batch_size"],
                            learning_rate_init=rc["learning_rate"], shuffle=True,
                            random_state=spec["seed"])
        classes = np.arange(10)
        records = []
        start = time.time()
        for e in range(spec["epochs"]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.partial_fit(xtr, ytr, classes=classes)
            records.append({"t": time.time(), "epoch": e + 1,
                            "val_accuracy": float(clf.score(xv, yv))})
            if time.time() - start > spec["time_cap_s"]:
                break
        test = float(clf.score(xt.astype(np.float32) / np.float32(255.0), yt))
    return _fashion_result(spec, records, time.time(), final_test_accuracy=test,
                           epochs=len(records),
                           notes=f"partial_fit per epoch, threadpoolctl limit {spec['threads']}, "
                                 f"up to {spec['epochs']} epochs / {spec['time_cap_s']} s")


WORKERS = {"mlp": _w_mlp, "util": _w_util, "sweep": _w_sweep, "fashion-fnn": _w_fashion_fnn,
           "fashion-torch": _w_fashion_torch, "fashion-sklearn": _w_fashion_sklearn}


def _worker_entry(spec_json: str) -> int:
    """Child process entry: pin the cores, run one worker, write its JSON result."""
    spec = json.loads(spec_json)
    cpus = _allowed_cpus()[: spec["threads"]]
    try:
        os.sched_setaffinity(0, cpus)
    except (AttributeError, OSError):  # pragma: no cover
        pass
    out = WORKERS[spec["worker"]](spec)
    out["peak_rss_mb"] = _peak_rss_mb()
    out["cpus"] = cpus
    Path(spec["result_path"]).write_text(json.dumps(out))
    return 0


_BOOT = ("import importlib.util, sys; s = importlib.util.spec_from_file_location("
         "'_fnn_bench_worker', sys.argv[1]); m = importlib.util.module_from_spec(s); "
         "s.loader.exec_module(m); sys.exit(m._worker_entry(sys.argv[2]))")


# =============================================================================================
# The parent: run workers, collect, report
# =============================================================================================
def _missing_peer(contestant: str) -> Optional[str]:
    """Why a peer cannot run (a module is not installed), or None."""
    for mod in PEER_MODULES.get(contestant, ()):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install 'fnn[bench]')"
    return None


def _child_env(extra: Optional[dict] = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.update(extra or {})
    return env


def run_worker(spec: dict, settings: dict, log=print, env_extra=None) -> dict:
    """Run one worker in a child process (or in-process with --in-process); never raises."""
    spec = dict(spec, threads=settings["threads"], seed=settings["seed"])
    with tempfile.TemporaryDirectory(prefix="fnn-bench-") as tmp:
        spec["result_path"] = str(Path(tmp) / "result.json")
        spec.setdefault("tmp", tmp)
        spec["t_launch"] = time.time()
        load_before = os.getloadavg()[0]
        if settings["in_process"]:
            try:
                old_env = {k: os.environ.get(k) for k in (env_extra or {})}
                os.environ.update(env_extra or {})
                try:
                    out = WORKERS[spec["worker"]](spec)
                finally:
                    for k, v in old_env.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v
                out["peak_rss_mb"] = None  # one process for all: not per contestant
            except Exception as err:  # noqa: BLE001 - reported, not raised
                return {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
        else:
            cmd = [sys.executable, "-c", _BOOT, str(Path(__file__).resolve()), json.dumps(spec)]
            try:
                p = subprocess.run(cmd, cwd=str(ROOT), env=_child_env(env_extra),
                                   capture_output=True, text=True,
                                   timeout=settings["worker_timeout_s"])
            except subprocess.TimeoutExpired:
                return {"status": "failed", "reason": f"timed out after {settings['worker_timeout_s']} s"}
            if p.returncode != 0 or not Path(spec["result_path"]).is_file():
                tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
                return {"status": "failed", "reason": f"exit {p.returncode}: {tail[0][:300]}"}
            out = json.loads(Path(spec["result_path"]).read_text())
    out["status"] = "ok"
    out["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if "times_s" in out and out["times_s"]:
        out["median_s"] = statistics.median(out["times_s"])
    return out


def _skip(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


def _selected(contestant: str, only: str) -> Optional[str]:
    """None if the contestant runs; else why not (--only, or a missing peer)."""
    is_fnn = contestant.startswith("fnn") or contestant in ("xla-matmul", "cold", "warm")
    if only == "fnn" and not is_fnn:
        return "excluded by --only fnn"
    if only == "peers" and is_fnn:
        return "excluded by --only peers"
    return _missing_peer(contestant)


def case_mlp(name: str, settings: dict, only: str, log) -> dict:
    cfg = settings[name]
    results = {}
    for c in MLP_CONTESTANTS:
        why = _selected(c, only)
        if why:
            log(f"  {name}/{c}: skipped ({why})")
            results[c] = _skip(why)
            continue
        log(f"  {name}/{c} ...")
        r = run_worker({"worker": "mlp", "contestant": c, "cfg": cfg, "repeats": cfg["repeats"],
                        "val_samples": settings["val_samples"]}, settings, log)
        if r["status"] == "ok":
            r["samples_per_s"] = r["samples_per_epoch"] / r["median_s"]
            log(f"    {r['samples_per_s']:,.0f} samples/s (median {r['median_s']:.3f} s, "
                f"first call {r['first_call_s']:.2f} s, final loss {r['final_loss']:.4f})")
        else:
            log(f"    {r['status']}: {r['reason']}")
        results[c] = r
    weights = sum(i * o for i, o in zip(cfg["sizes"][:-1], cfg["sizes"][1:]))
    ref = results.get("fnn-scan", {})
    for c, r in results.items():
        if r.get("status") == "ok":
            r["train_gflops_nominal"] = 6 * weights * r["samples_per_s"] / 1e9
            if ref.get("status") == "ok":
                r["fnn_speedup"] = ref["samples_per_s"] / r["samples_per_s"]
    return {"config": {**cfg, "weights": weights, "threads": settings["threads"]},
            "results": results}


def case_util(settings: dict, only: str, log, large: Optional[dict]) -> dict:
    cfg = settings["large"]
    why = _selected("xla-matmul", only)
    if why:
        return {"results": {"xla-matmul": _skip(why)}}
    log("  util/xla-matmul ...")
    r = run_worker({"worker": "util", "cfg": cfg, "repeats": cfg["repeats"],
                    "val_samples": settings["val_samples"]}, settings, log)
    out = {"config": {"sizes": cfg["sizes"], "batch": cfg["batch"], "threads": settings["threads"]},
           "results": {"xla-matmul": r}}
    if r["status"] != "ok":
        log(f"    {r['status']}: {r['reason']}")
        return out
    sizes, b = cfg["sizes"], cfg["batch"]
    weights = sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))
    true_per_sample = r["step_gemms"]["flops_per_step"] / b  # what the manual backward executes
    ref = r["step_gemms"]["gflops"]
    log(f"    step-shaped GEMMs {ref:.1f} GFLOP/s, 512^3 {r['square_512']['gflops']:.1f} GFLOP/s")
    rows = {}
    contestants = [("fnn-scan (interleaved)", r["fnn_scan"])]
    contestants += [(c, rr) for c, rr in ((large or {}).get("results") or {}).items()
                    if rr.get("status") == "ok"]
    log(f"    fnn-scan interleaved: {r['fnn_scan']['samples_per_s']:,.0f} samples/s")
    for c, rr in contestants:
        nominal = 6 * weights * rr["samples_per_s"] / 1e9
        executed = true_per_sample * rr["samples_per_s"] / 1e9
        rows[c] = {"train_gflops_nominal": nominal, "utilization_nominal": nominal / ref,
                   "train_gflops_executed": executed, "utilization_executed": executed / ref,
                   "utilization_vs_square": nominal / r["square_512"]["gflops"]}
    out["utilization"] = rows
    out["flops_per_sample"] = {"nominal_6w": 6 * weights, "executed_gemm": true_per_sample}
    return out


def case_sweep(settings: dict, only: str, log) -> dict:
    cfg = dict(settings["tiny"])
    members = settings["sweep"]["members"]
    results = {}
    for c in ("fnn-train", "fnn-sweep"):
        why = _selected(c, only)
        if why:
            results[c] = _skip(why)
            continue
        log(f"  sweep/{c} ...")
        r = run_worker({"worker": "sweep", "contestant": c, "cfg": cfg, "members": members,
                        "repeats": cfg["repeats"], "val_samples": settings["val_samples"]},
                       settings, log)
        if r["status"] == "ok":
            r["samples_per_s"] = r["samples_per_epoch"] / r["median_s"]
            log(f"    median {r['median_s']:.4f} s ({r['samples_per_s']:,.0f} member-samples/s)")
        else:
            log(f"    {r['status']}: {r['reason']}")
        results[c] = r
    out = {"config": {**cfg, "members": members, "threads": settings["threads"]},
           "results": results}
    one, many = results.get("fnn-train", {}), results.get("fnn-sweep", {})
    if one.get("status") == "ok" and many.get("status") == "ok":
        out["wall_ratio"] = many["median_s"] / one["median_s"]
    return out


def fashion_recipe(path: str) -> dict:
    """The training recipe of a Fashion-MNIST config, for the peers (defaults as fnn's schema)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    cfg = tomllib.loads(Path(path).read_text())
    d, m, o = cfg.get("data", {}), cfg.get("model", {}), cfg.get("optimizer", {})
    t, r = cfg.get("training", {}), cfg.get("regularization", {})
    sched = o.get("schedule", {})
    recipe = {
        "hidden": list(m.get("hidden", [32])), "activation": m.get("activation", "relu"),
        "optimizer": o.get("name", "adam"), "learning_rate": float(o.get("learning_rate", 1e-3)),
        "schedule": sched.get("name", "constant"), "drop_rate": float(r.get("drop_rate", 0.0)),
        "epochs": int(t.get("epochs", 10)), "batch_size": int(t.get("batch_size", 32)),
        "val_fraction": float(d.get("val_fraction", 0.1)), "data_seed": int(d.get("seed", 0)),
        "early_stopping": None,
    }
    es = cfg.get("early_stopping", {})
    if es.get("enabled"):
        recipe["early_stopping"] = {
            "monitor": es.get("monitor", "val_loss"), "patience": int(es.get("patience", 10)),
            "min_delta": float(es.get("min_delta", 0.0)), "restore_best": bool(es.get("restore_best", True))}
    unsupported = [k for k, ok in (
        ("data.name", d.get("name") == "fashion_mnist"), ("model.activation", recipe["activation"] == "relu"),
        ("optimizer.name", recipe["optimizer"] == "adam"),
        ("optimizer.schedule", recipe["schedule"] in ("constant", "cosine")
         and not sched.get("warmup_epochs") and not sched.get("alpha")),
        ("regularization", not r.get("l1") and not r.get("l2")),
        ("augmentation", not any(cfg.get("augmentation", {}).values()))) if not ok]
    if unsupported:
        raise ValueError(f"{path}: the peers' recipe cannot mirror {', '.join(unsupported)}")
    return recipe


def case_fashion(settings: dict, only: str, log) -> dict:
    f = settings["fashion"]
    results = {}
    try:
        recipe = fashion_recipe(f["config"])
    except ValueError as err:
        return {"config": f, "results": {c: {"status": "failed", "reason": str(err)}
                                         for c in ("fnn-cli", "sklearn", "torch")}}
    import hashlib

    f = dict(f, recipe=recipe, config_sha256=hashlib.sha256(Path(f["config"]).read_bytes()).hexdigest())
    plan = (("fnn-cli", "fashion-fnn"), ("sklearn", "fashion-sklearn"), ("torch", "fashion-torch"))
    for c, worker in plan:
        why = _selected(c, only)
        if why:
            results[c] = _skip(why)
            continue
        log(f"  fashion/{c} ...")
        spec = {"worker": worker, "contestant": c, "target": f["target"], "config": f["config"],
                "recipe": recipe, "epochs": f["sklearn_epochs"] if c == "sklearn" else recipe["epochs"],
                "time_cap_s": f["sklearn_time_cap_s"]}
        with tempfile.TemporaryDirectory(prefix="fnn-bench-cache-") as cache:
            r = run_worker(spec, settings, log, env_extra={"FNN_CACHE_DIR": cache})
        if r["status"] == "ok":
            ttt = r["time_to_target_s"]
            log(f"    time to {f['target']}: {'not reached' if ttt is None else f'{ttt:.1f} s'}"
                f" (epoch {r['epoch_reached']}), wall {r['wall_s']:.1f} s, test acc "
                f"{r['final_test_accuracy']:.4f}, peak RSS {r['peak_rss_mb']:.0f} MB")
        else:
            log(f"    {r['status']}: {r['reason']}")
        results[c] = r
    ref = results.get("fnn-cli", {})
    for c, r in results.items():
        if r.get("status") == "ok" and ref.get("status") == "ok" and ref["time_to_target_s"]:
            t = r["time_to_target_s"]
            r["time_to_target_vs_fnn"] = (t / ref["time_to_target_s"]) if t else None
            if t is None:  # not reached: at least its whole wall time
                r["time_to_target_vs_fnn_lower_bound"] = r["wall_s"] / ref["time_to_target_s"]
    return {"config": f, "results": results}


def case_startup(settings: dict, only: str, log) -> dict:
    st = settings["startup"]
    why = _selected("cold", only)
    if why:
        return {"results": {"cold": _skip(why), "warm": _skip(why)}}
    cold, warm, fails = [], [], []

    def once(cache: str) -> Optional[float]:
        with tempfile.TemporaryDirectory(prefix="fnn-bench-run-") as out:
            cmd = [sys.executable, "-m", "fnn", "train", st["config"], "--out", out + "/run",
                   "--overwrite", "--quiet"]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, cwd=str(ROOT), env=_child_env({"FNN_CACHE_DIR": cache}),
                               capture_output=True, text=True, timeout=settings["worker_timeout_s"])
            dt = time.perf_counter() - t0
        if p.returncode != 0:
            fails.append((p.stderr.strip().splitlines() or ["?"])[-1][:300])
            return None
        return dt

    load_before = os.getloadavg()[0]
    log("  startup: cold/warm fnn train ...")
    for _ in range(st["repeats"]):
        with tempfile.TemporaryDirectory(prefix="fnn-bench-cache-") as cache:
            t = once(cache)
            if t is not None:
                cold.append(t)
                for _ in range(st["repeats"] if len(cold) == 1 else 0):
                    t = once(cache)
                    if t is not None:
                        warm.append(t)
            entries = sum(1 for _ in Path(cache, "jax").glob("*")) if Path(cache, "jax").is_dir() else 0
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]

    def res(times, label):
        if not times:
            return {"status": "failed", "reason": fails[0] if fails else "no run"}
        return {"status": "ok", "times_s": times, "median_s": statistics.median(times),
                "load_avg_1m": load, "notes": label}

    out = {"config": st, "results": {
        "cold": res(cold, "fresh FNN_CACHE_DIR each run (python -m fnn train ... --quiet)"),
        "warm": res(warm, f"same FNN_CACHE_DIR as a finished cold run ({entries} cache entries)")}}
    if cold and warm:
        out["speedup"] = statistics.median(cold) / statistics.median(warm)
        log(f"    cold {statistics.median(cold):.2f} s, warm {statistics.median(warm):.2f} s")
    return out


# =============================================================================================
# Targets, environment, Markdown
# =============================================================================================
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
        "" if sk.get("time_to_target_vs_fnn") else "MLPClassifier did not reach 0.885: lower bound")
    add("sweep: 16 members ≤ 4× one member (wall)", _get(cases, "sweep", "wall_ratio"),
        lambda v: v <= 4, "{:.2f}×")
    add("startup: warm ≥ 2× faster than cold", _get(cases, "startup", "speedup"),
        lambda v: v >= 2, "{:.2f}×")
    return rows


def environment(settings: dict) -> dict:
    from importlib import metadata

    versions = {}
    for name in ("jax", "jaxlib", "numpy", "torch", "flax", "optax", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)', (ROOT / "fnn" / "__init__.py").read_text(), re.M)
    fnn_version = m.group(1) if m else None
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
        for k, r in c["results"].items():
            if r.get("status") == "ok":
                rows.append([CONTESTANT_TITLES.get(k, k), r["members"], _fmt(r["median_s"], "{:.4f}"),
                             f"{min(r['times_s']):.4f}–{max(r['times_s']):.4f}",
                             _fmt(r["samples_per_s"]), _fmt(r.get("peak_rss_mb"), "{:.0f}")])
            else:
                rows.append([CONTESTANT_TITLES.get(k, k), "—", "—", "—", "—", _status_cell(r)])
        out += [_table(["run", "members", "wall s (median)", "min–max", "member-samples/s", "peak RSS MB / note"], rows),
                "", f"Sweep ÷ one member: **{_fmt(c.get('wall_ratio'), '{:.2f}×')}**", ""]
    c = cases.get("startup")
    if c:
        out += ["## Start-up: `fnn train configs/quickstart.toml`", ""]
        rows = []
        for k, r in c["results"].items():
            if r.get("status") == "ok":
                rows.append([CONTESTANT_TITLES.get(k, k), f"{r['median_s']:.2f}",
                             ", ".join(f"{t:.2f}" for t in r["times_s"]), r["notes"]])
            else:
                rows.append([CONTESTANT_TITLES.get(k, k), "—", "—", _status_cell(r)])
        out += [_table(["run", "wall s (median)", "runs", "how"], rows), "",
                f"Cold ÷ warm: **{_fmt(c.get('speedup'), '{:.2f}×')}**", ""]
    return "\n".join(out) + "\n"


# =============================================================================================
# Command line
# =============================================================================================
def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="bench", description="fnn vs PyTorch, Flax+optax and scikit-learn on this machine.")
    p.add_argument("--cases", default=",".join(CASES),
                   help=f"comma-separated cases to run (default: all of {','.join(CASES)})")
    p.add_argument("--only", choices=("all", "fnn", "peers"), default="all",
                   help="run only fnn's contestants or only the peers (default: all)")
    p.add_argument("--out", default="bench-results", metavar="DIR",
                   help="directory for bench.json and bench.md (default: bench-results)")
    p.add_argument("--threads", type=int, default=None,
                   help="cores per contestant (default: all schedulable cores)")
    p.add_argument("--repeats", type=int, default=None, help="timed epochs per contestant (default 5)")
    p.add_argument("--samples", type=int, default=None, help="samples per epoch in large/tiny/sweep")
    p.add_argument("--members", type=int, default=None, help="sweep members (default 16)")
    p.add_argument("--sklearn-epochs", type=int, default=20, help="MLPClassifier epochs (default 20)")
    p.add_argument("--fashion-config", default=str(ROOT / "configs" / "fashion_mnist.toml"))
    p.add_argument("--startup-config", default=str(ROOT / "configs" / "quickstart.toml"))
    p.add_argument("--timeout", type=int, default=1800, help="seconds per child process")
    p.add_argument("--quick", action="store_true",
                   help="small sizes for a smoke run (not meaningful timings)")
    p.add_argument("--in-process", action="store_true",
                   help="run contestants in this process (tests; no per-contestant memory)")
    return p


def run(args, log=print) -> dict:
    """Run the selected cases; write DIR/bench.json and DIR/bench.md; return the results."""
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise ValueError(f"--cases: unknown {unknown}; expected names from {','.join(CASES)}")
    settings = settings_from_args(args)
    if settings["threads"] < 1 or settings["threads"] > len(_allowed_cpus()):
        raise ValueError(f"--threads: {settings['threads']}; expected 1..{len(_allowed_cpus())}")
    results = {"tag": RESULT_TAG, "settings": settings, "environment": environment(settings),
               "cases": {}}
    log(f"fnn bench: {results['environment']['cpu']}, {settings['threads']} thread(s), "
        f"load {results['environment']['load_avg_start']}")
    for name in CASES:
        if name not in cases:
            continue
        log(f"[{name}]")
        if name in ("large", "tiny"):
            results["cases"][name] = case_mlp(name, settings, args.only, log)
        elif name == "util":
            results["cases"][name] = case_util(settings, args.only, log, results["cases"].get("large"))
        elif name == "fashion":
            results["cases"][name] = case_fashion(settings, args.only, log)
        elif name == "sweep":
            results["cases"][name] = case_sweep(settings, args.only, log)
        elif name == "startup":
            results["cases"][name] = case_startup(settings, args.only, log)
    results["environment"]["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    results["targets"] = evaluate_targets(results["cases"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "bench.md").write_text(render_markdown(results))
    log(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return results


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except ValueError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
