"""fnn's contestants, each a worker function ``spec -> result dict`` run in its own process.

Only fnn's public API: ``fnn.MLP``, ``fnn.Trainer``, ``fnn.TrainState``, ``fnn.make_train_step``,
``fnn.optim``; for the Fashion-MNIST run ``fnn.cli`` with ``fnn.experiment.chunks`` (its progress
bar), and for the Fashion-MNIST sweep ``fnn.experiment.build`` (the config's trainer).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

from benchlib.inputs import epoch_order, host_batches, init_params, mlp_data
from benchlib.kernels import scanned_epoch_kernels
from benchlib.measure import interleaved, time_to_target, timed_epochs


def net_params(cfg, params):
    """fnn's MLP of ``cfg["sizes"]`` and the shared initial weights as its parameter pytree."""
    import jax.numpy as jnp

    import fnn

    net = fnn.MLP(sizes=tuple(cfg["sizes"]), activation="relu", output="softmax")
    p = tuple({"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in params)
    return net, p


def mlp_scan(spec, cfg, data, params) -> dict:
    """``fnn-scan`` / ``fnn-scan-autodiff`` / ``fnn-scan-flat`` (``flat_updates="on"``): one
    epoch per ``Trainer.run`` call; ``kernels_per_step`` counted in the compiled epoch."""
    import jax

    import fnn

    net, p = net_params(cfg, params)
    opt = fnn.optim.adam(cfg["learning_rate"])
    grad = "autodiff" if spec["contestant"].endswith("autodiff") else "manual"
    flat = "on" if spec["contestant"].endswith("flat") else "off"
    x, y, xv, yv = data
    trainer = fnn.Trainer(net, "cross_entropy", opt, (x, y, xv, yv), epochs=1,
                          batch_size=cfg["batch"], grad=grad, flat_updates=flat)
    box = {"state": fnn.TrainState.create(net, opt, key=jax.random.key(spec["seed"]), params=p),
           "losses": []}
    kernels = scanned_epoch_kernels(trainer, box["state"])

    def run_epoch(_):
        box["state"], hist = trainer.run(box["state"])
        box["losses"].append(hist["train_loss"])

    res = timed_epochs(run_epoch, spec["repeats"],
                       lambda: jax.block_until_ready((box["state"], box["losses"][-1])))
    res["final_loss"] = float(box["losses"][-1][-1])
    res["kernels_per_step"] = kernels["kernels"]
    res["kernels_by_kind"] = kernels["by_kind"]
    res["notes"] = (f"Trainer.run, epochs=1, in-program validation on {len(xv)} samples each "
                    f"epoch; grad={grad}, flat_updates={flat}; {kernels['kernels']} kernels "
                    f"per step")
    return res


def mlp_loop(spec, cfg, data, params) -> dict:
    """``fnn-loop``: a Python loop over fnn's jitted, donating train step."""
    import jax

    import fnn

    net, p = net_params(cfg, params)
    opt = fnn.optim.adam(cfg["learning_rate"])
    step = fnn.make_train_step(net, "cross_entropy", opt, grad="manual", donate=True)
    x, y = data[0], data[1]
    box = {"state": fnn.TrainState.create(net, opt, key=jax.random.key(spec["seed"]), params=p),
           "losses": None}

    def run_epoch(e):
        batches = host_batches(x, y, epoch_order(cfg["samples"], cfg["batch"], spec["seed"], e))
        state, losses = box["state"], []
        for xb, yb in batches:
            state, m = step(state, (xb, yb))
            losses.append(m["data_loss"])
        box["state"], box["losses"] = state, losses

    res = timed_epochs(run_epoch, spec["repeats"],
                       lambda: jax.block_until_ready((box["state"], box["losses"])))
    res["final_loss"] = float(sum(float(v) for v in box["losses"]) / len(box["losses"]))
    res["notes"] = "make_train_step(grad='manual', donate=True); batches: NumPy views of one gather per epoch"
    return res


def util(spec: dict) -> dict:
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

    import fnn

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

    net, p = net_params(cfg, init_params(sizes, spec["seed"]))
    opt = fnn.optim.adam(cfg["learning_rate"])
    x, y, xv, yv = mlp_data(cfg, spec["seed"], spec["val_samples"])
    trainer = fnn.Trainer(net, "cross_entropy", opt, (x, y, xv, yv), epochs=1, batch_size=b)
    box = {"state": fnn.TrainState.create(net, opt, key=jax.random.key(spec["seed"]), params=p)}

    def fnn_epoch():
        box["state"], h = trainer.run(box["state"])
        return box["state"], h

    runs = {"step_gemms": lambda: f1(ws, xs), "fnn-scan": fnn_epoch, "square_512": lambda: f2(c0, m)}
    first, times = interleaved(runs, spec["repeats"], jax.block_until_ready)
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


def split_mesh(spec: dict):
    """The mesh of a -split contestant: ``spec["split"]`` CPU devices that share the members
    (the child was started with that many, ``cases.split_devices_env``); None otherwise."""
    n = spec.get("split") or 0
    if n < 2:
        return None
    import jax

    from fnn.engine import parallel

    if jax.device_count() < n:
        raise RuntimeError(f"split: {n} CPU devices asked for, {jax.device_count()} present")
    members = spec["members"]
    k = max(d for d in range(1, n + 1) if members % d == 0)
    return parallel.make_mesh(k) if k > 1 else None


def sweep(spec: dict) -> dict:
    """``fnn-sweep`` (``Trainer.sweep`` over members) or ``fnn-train`` (one ``Trainer.train``)."""
    import jax
    import jax.numpy as jnp

    import fnn

    cfg = spec["cfg"]
    x, y, xv, yv = mlp_data(cfg, spec["seed"], spec["val_samples"])
    net = fnn.MLP(sizes=tuple(cfg["sizes"]), activation="relu", output="softmax")
    mesh = split_mesh(spec)
    trainer = fnn.Trainer(net, "cross_entropy", lambda hp: fnn.optim.adam(hp.learning_rate),
                          (x, y, xv, yv), epochs=1, batch_size=cfg["batch"], mesh=mesh)
    members = spec["members"]
    keys = jax.random.split(jax.random.key(spec["seed"]), members)
    lrs = jnp.geomspace(1e-4, 1e-2, members).astype(jnp.float32)
    box = {}
    if spec["contestant"] in ("fnn-sweep", "fnn-sweep-split"):
        def run_epoch(_):
            box["out"] = trainer.sweep(keys, {"learning_rate": lrs})
        notes = f"Trainer.sweep over {members} keys × learning rates (geomspace 1e-4..1e-2)"
        if mesh is not None:
            notes += f", members split over {mesh.devices.size} CPU devices"
    else:
        def run_epoch(_):
            box["out"] = trainer.train(keys[0], {"learning_rate": 1e-3})
        notes = "Trainer.train, one member"
    res = timed_epochs(run_epoch, spec["repeats"], lambda: jax.block_until_ready(box["out"]))
    nb = -(-cfg["samples"] // cfg["batch"])
    many = spec["contestant"] != "fnn-train"
    res.update(steps=nb, samples_per_epoch=nb * cfg["batch"] * (members if many else 1),
               members=members if many else 1, notes=notes)
    return res


def fashion_sweep(spec: dict) -> dict:
    """The MLP of configs/fashion_mnist.toml (its network, data, optimizer and schedule, built by
    fnn.experiment.build as ``fnn train`` builds them, ``training.epochs`` set to
    ``spec["epochs"]``): ``members`` seeds as one vmapped ``Trainer.sweep`` against the same
    ``members`` seeds as ``Trainer.train`` runs one after another, interleaved (one warm-up call
    each, compilation included, then ``repeats`` rounds)."""
    import jax

    from fnn.experiment import build as exp
    from fnn.experiment import config as config_mod

    overrides = [f"training.epochs={spec['epochs']}"]
    if spec.get("n_samples"):
        overrides.append(f"data.n_samples={spec['n_samples']}")
    cfg = config_mod.load(spec["config"], overrides)
    dataset = exp.load_dataset(cfg)
    members = spec["members"]
    trainer = exp.build_trainer(cfg, dataset, members=members)
    hp = exp.hparams_of(cfg)
    keys = exp.member_keys(range(members))
    runs = {"fnn-fashion-seq": lambda: [trainer.train(keys[i], hp) for i in range(members)],
            "fnn-fashion-sweep": lambda: trainer.sweep(keys, hp)}
    hows = [("fnn-fashion-seq", f"Trainer.train for seeds 0..{members - 1}, one after another"),
            ("fnn-fashion-sweep", f"Trainer.sweep over seeds 0..{members - 1}")]
    mesh = split_mesh(spec)
    if mesh is not None:
        split = exp.build_trainer(cfg, dataset, members=members, mesh=mesh)
        runs["fnn-fashion-sweep-split"] = lambda: split.sweep(keys, hp)
        hows.append(("fnn-fashion-sweep-split", f"Trainer.sweep over seeds 0..{members - 1}, "
                     f"members split over {mesh.devices.size} CPU devices"))
    first, times = interleaved(runs, spec["repeats"], jax.block_until_ready)
    samples = members * dataset.num_train * spec["epochs"]
    out = {}
    if mesh is None:
        out["fnn-fashion-sweep-split"] = {"status": "skipped", "reason": (
            f"{members} members do not split over {spec.get('split')} CPU devices"
            if spec.get("split") else "needs a child process with its own CPU devices")}
    for c, how in hows:
        out[c] = {"times_s": times[c], "first_call_s": first[c], "samples_per_epoch": samples,
                  "members": members, "epochs": spec["epochs"], "num_train": dataset.num_train,
                  "notes": how + f", {spec['epochs']} epoch(s) of {dataset.num_train:,} images"}
    return {"contestants": out, "times_s": [], "platform": jax.default_backend()}


def fashion(spec: dict) -> dict:
    """The shipped config through the fnn CLI (``fnn train``), recording a timestamp at every
    epoch from the in-program progress callback (called every epoch of runs under 200 epochs:
    ``Trainer.progress_every = max(1, epochs // 100)``)."""
    from fnn import cli
    from fnn.experiment import chunks

    records = []

    class Recorder(chunks.ProgressBar):
        """Stands in for the tqdm bar (so the runner wires the per-epoch callback as it does for
        an interactive run) and timestamps every epoch instead of drawing."""

        def __init__(self, total, desc, *, enabled):
            self.bar = self  # not None: the runner passes us as the progress callback

        def __call__(self, epoch, metrics):
            records.append({"t": time.time(), "epoch": int(epoch),
                            "val_accuracy": float(metrics.get("val_accuracy", float("nan")))})

        def start_at(self, epoch):
            pass

        def sync(self, history, start):  # the bar's host-side catch-up: nothing to draw
            pass

        def close(self):
            pass

    out = Path(spec["tmp"]) / "run"
    # Not --quiet: a quiet run compiles no progress callback. The Recorder draws nothing; the
    # results table goes to the worker's captured stdout.
    real, chunks.ProgressBar = chunks.ProgressBar, Recorder
    try:
        sets = [a for item in spec.get("sets", ()) for a in ("--set", item)]
        rc = cli.main(["train", spec["config"], *sets, "--out", str(out), "--overwrite",
                       "--set", "output.progress=true"])
    finally:
        chunks.ProgressBar = real  # matters with --in-process only
    t_end = time.time()
    summary = json.loads((out / "summary.json").read_text())
    return time_to_target(spec, records, t_end, rc=rc,
                          final_test_accuracy=summary.get("test_accuracy"),
                          train_wall_s=summary.get("wall_time_s"), epochs=summary.get("epochs"),
                          notes="fnn train configs/fashion_mnist.toml, fresh FNN_CACHE_DIR "
                                "(compile included), checkpoints + plots written as configured")
