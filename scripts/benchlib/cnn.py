"""The CNN case's workers and the PyTorch side of the Fashion-MNIST CNN recipe.

``cnn``: the 2-conv CNN (3x3 same convolutions, 2x2 max pools, dense, softmax output), one
jitted SGD step per batch on random data. :func:`cnn_fnn` runs fnn's contestants (the manual
backward with each Conv2D formulation, and ``jax.grad`` of the same Sequential) interleaved
round by round in one process; :func:`cnn_torch` runs PyTorch eager and ``torch.compile``
interleaved in another. Every contestant starts from the same weights
(:func:`benchlib.inputs.cnn_params`, converted by :func:`benchlib.inputs.cnn_params_to_torch`)
and sees the same batches, so the first step's loss must agree across all of them.

``fashion_cnn``: :func:`fashion_cnn_torch` trains the layers of ``configs/fashion_cnn.toml``
(:func:`fashion_cnn_recipe`) with the config's recipe in PyTorch eager.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from benchlib.inputs import cnn_data, cnn_params, cnn_params_to_torch, fashion_arrays
from benchlib.measure import interleaved

FORMULATION = {"fnn-manual": "auto", "fnn-im2col": "im2col", "fnn-xla": "xla",
               "fnn-hybrid": "hybrid", "fnn-correlation": "correlation",
               "fnn-winograd": "winograd", "fnn-autodiff": "auto", "fnn-split": "auto"}


def fnn_cnn_net(cfg: dict, formulation: str = "auto"):
    """fnn's Sequential of the benchmark CNN."""
    import fnn

    L = fnn.layers
    layers = []
    for f in cfg["filters"]:
        layers += [L.Conv2D(f, cfg["kernel"], padding="same", activation="relu",
                            formulation=formulation), L.MaxPool2D(cfg["pool"])]
    layers += [L.Flatten(), L.Dense(cfg["dense"], activation="relu"),
               L.Dense(cfg["classes"], activation="softmax")]
    return fnn.Sequential(layers, input_shape=tuple(cfg["input_shape"]))


def _fnn_params(net, params):
    """The shared (w, b) list as the Sequential's per-layer parameter tuple."""
    import jax.numpy as jnp

    it = iter(params)
    out = []
    for layer in net.layers:
        if type(layer).__name__ in ("Conv2D", "Dense"):
            w, b = next(it)
            out.append({"w": jnp.asarray(w), "b": jnp.asarray(b)})
        else:
            out.append({})
    return tuple(out)


def cnn_fnn(spec: dict) -> dict:
    """fnn's CNN contestants in one process, interleaved: each round runs ``steps`` jitted,
    donating SGD steps of every contestant in turn. Compilation (``lower().compile()``) is timed
    on its own; the first round (from the shared initial weights) gives the first-step losses.
    ``fnn-split`` (alone in a child started with ``spec["split"]`` CPU devices) is fnn-manual
    with the state replicated and each batch's rows sharded over the devices: one program whose
    two halves run side by side and all-reduce the gradients (the first lever of issue 24)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import fnn

    cfg = spec["cfg"]
    params = cnn_params(cfg, spec["seed"])
    x, y = cnn_data(cfg, spec["seed"])
    batches = [(jnp.asarray(x[i]), jnp.asarray(y[i])) for i in range(x.shape[0])]
    jax.block_until_ready(batches)
    opt = fnn.optim.sgd(cfg["learning_rate"])
    mesh = None
    if "fnn-split" in spec["contestants"]:  # the batch's rows split over the CPU devices
        from fnn.engine import parallel

        n = spec.get("split") or 0
        if n < 2 or jax.device_count() < n:
            raise RuntimeError(f"fnn-split: {n} CPU devices asked for, {jax.device_count()}"
                               " present")
        mesh = parallel.make_mesh(n)
        batches = [(parallel.place(mesh, np.asarray(a), shard=True),
                    parallel.place(mesh, np.asarray(b), shard=True)) for a, b in batches]
    boxes, runs, compile_s, resolved = {}, {}, {}, {}
    for c in spec["contestants"]:
        net = fnn_cnn_net(cfg, FORMULATION[c])
        grad = "autodiff" if c == "fnn-autodiff" else "manual"
        step = fnn.make_train_step(net, "cross_entropy", opt, grad=grad, donate=True)
        state = fnn.TrainState.create(net, opt, key=jax.random.key(spec["seed"]),
                                      params=_fnn_params(net, params))
        if c == "fnn-split":  # the state replicated, each device's step on its half of the rows
            state = jax.tree.map(lambda a: parallel.place(mesh, a), state)
        t0 = time.perf_counter()
        compiled = step.lower(state, batches[0]).compile()
        compile_s[c] = time.perf_counter() - t0
        # which one "auto" picked here, per conv layer ("im2col / winograd" where they differ)
        picked = [layer.resolved_formulation(shape[-1]) for layer, shape
                  in zip(net.layers, net.shapes) if type(layer).__name__ == "Conv2D"]
        resolved[c] = " / ".join(dict.fromkeys(picked))
        boxes[c] = {"state": state, "losses": []}

        def run(box=boxes[c], compiled=compiled):
            state, losses = box["state"], []
            for s in range(cfg["steps"]):
                state, m = compiled(state, batches[s % len(batches)])
                losses.append(m["data_loss"])
            box["state"] = state
            if not box["losses"]:
                box["losses"] = losses  # the first round: from the initial weights
            return state

        runs[c] = run
    first, times = interleaved(runs, spec["repeats"], jax.block_until_ready)
    out = {}
    for c in spec["contestants"]:
        out[c] = {"times_s": times[c], "first_call_s": first[c], "compile_s": compile_s[c],
                  "first_losses": [float(v) for v in boxes[c]["losses"][:2]],
                  "formulation": resolved[c], "platform": jax.default_backend(),
                  "notes": f"make_train_step(grad={'autodiff' if c == 'fnn-autodiff' else 'manual'}"
                           f", donate=True), Conv2D formulation={FORMULATION[c]!r} "
                           f"(-> {resolved[c]} on {jax.default_backend()})"}
    return {"contestants": out, "times_s": []}


def torch_device(spec: dict):
    """(torch device, sync function) for the run's ``device`` ("cpu" or "gpu")."""
    import torch

    if spec.get("device") == "gpu":
        if not torch.cuda.is_available():
            raise RuntimeError("--device gpu: torch.cuda.is_available() is False")
        return torch.device("cuda"), torch.cuda.synchronize
    torch.set_num_threads(spec["threads"])
    return torch.device("cpu"), lambda: None


def torch_cnn_model(cfg: dict, params, device):
    """PyTorch's nn.Sequential of the benchmark CNN with fnn's weights (converted)."""
    import torch

    tp = cnn_params_to_torch(cfg, params)
    k = cfg["kernel"]
    assert k % 2 == 1, "padding k//2 equals XLA's SAME only for odd kernels"
    layers, c = [], cfg["input_shape"][2]
    for f in cfg["filters"]:
        layers += [torch.nn.Conv2d(c, f, k, padding=k // 2), torch.nn.ReLU(),
                   torch.nn.MaxPool2d(cfg["pool"])]
        c = f
    flat = tp[len(cfg["filters"])][0].shape[1]
    layers += [torch.nn.Flatten(), torch.nn.Linear(flat, cfg["dense"]), torch.nn.ReLU(),
               torch.nn.Linear(cfg["dense"], cfg["classes"])]
    model = torch.nn.Sequential(*layers)
    mods = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for m, (w, b) in zip(mods, tp):
            m.weight.copy_(torch.from_numpy(w))
            m.bias.copy_(torch.from_numpy(b))
    return model.to(device)


def cnn_torch(spec: dict) -> dict:
    """PyTorch eager and ``torch.compile`` (default mode) of the same CNN and weights, SGD,
    interleaved round by round in one process. ``torch.compile`` compiles on its first step:
    that step is timed on its own as its compile time."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    cfg = spec["cfg"]
    device, sync = torch_device(spec)
    params = cnn_params(cfg, spec["seed"])
    x, y = cnn_data(cfg, spec["seed"])
    xs = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3))).to(device)
    ys = torch.from_numpy(y.astype(np.int64)).to(device)
    runs, boxes, compile_s, failed = {}, {}, {}, {}
    for c in spec["contestants"]:  # the same batch order for each: 0, 1, ..., cycled
        model = torch_cnn_model(cfg, params, device)
        opt = torch.optim.SGD(model.parameters(), lr=cfg["learning_rate"])
        fwd = model
        if c == "torch-compile":
            fwd = torch.compile(model)
        box = boxes[c] = {"i": 0, "losses": []}

        def one(box=box, fwd=fwd, opt=opt):
            i = box["i"] % xs.shape[0]
            box["i"] += 1
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(fwd(xs[i]), ys[i])
            loss.backward()
            opt.step()
            if len(box["losses"]) < 2:  # the first steps: from the shared initial weights
                box["losses"].append(loss.detach())

        if c == "torch-compile":
            t0 = time.perf_counter()
            try:
                one()
                sync()
            except Exception as err:  # noqa: BLE001 - reported as this contestant's skip
                failed[c] = f"torch.compile failed here: {type(err).__name__}: {str(err)[:200]}"
                continue
            compile_s[c] = time.perf_counter() - t0

        def run(one=one):
            for _ in range(cfg["steps"]):
                one()

        runs[c] = run
    first, times = interleaved(runs, spec["repeats"], lambda _: sync())
    out = {}
    for c in spec["contestants"]:
        if c in failed:
            out[c] = {"status": "skipped", "reason": failed[c]}
            continue
        out[c] = {"times_s": times[c], "first_call_s": first[c], "compile_s": compile_s.get(c),
                  "first_losses": [float(v) for v in boxes[c]["losses"][:2]],
                  "platform": device.type,
                  "notes": ("torch.compile(model), SGD eager; compile time = its first step"
                            if c == "torch-compile" else "PyTorch eager, NCHW, SGD")
                  + (f"; torch.set_num_threads({torch.get_num_threads()})" if device.type == "cpu"
                     else "; CUDA")}
    return {"contestants": out, "times_s": []}


# --- the Fashion-MNIST CNN recipe in PyTorch --------------------------------------------------
def fashion_cnn_recipe(path: str) -> dict:
    """The recipe of a ``model.layers`` Fashion-MNIST config for PyTorch: the layers (conv2d,
    max_pool2d, flatten, dense, dropout) plus the output dense layer, and the training recipe of
    :func:`benchlib.cases.fashion_recipe`. Raises ValueError for what PyTorch cannot mirror."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    from benchlib.cases import fashion_recipe

    cfg = tomllib.loads(Path(path).read_text())
    recipe = fashion_recipe(path)
    recipe.pop("hidden")
    layers, bad = [], []
    for i, spec in enumerate(cfg.get("model", {}).get("layers", [])):
        t = spec.get("type")
        act = spec.get("activation", "identity")
        if t == "conv2d":
            k = spec.get("kernel_size", 3)
            ok = (spec.get("padding", "same") == "same" and spec.get("strides", 1) in (1, [1, 1])
                  and isinstance(k, int) and k % 2 == 1 and act in ("relu", "identity"))
            layers.append({"type": t, "filters": int(spec["filters"]), "kernel": k, "activation": act})
        elif t == "max_pool2d":
            p = spec.get("pool_size", 2)
            ok = isinstance(p, int) and spec.get("strides", p) == p and spec.get("padding", "valid") == "valid"
            layers.append({"type": t, "pool": p})
        elif t == "dense":
            ok = act in ("relu", "identity")
            layers.append({"type": t, "units": int(spec["units"]), "activation": act})
        elif t == "dropout":
            ok = True
            layers.append({"type": t, "rate": float(spec.get("rate", 0.5))})
        elif t == "flatten":
            ok = True
            layers.append({"type": t})
        else:
            ok = False
        if not ok:
            bad.append(f"model.layers[{i}] ({t})")
    if not layers:
        bad.append("model.layers (none)")
    if cfg.get("regularization", {}).get("drop_rate") is not None:
        bad.append("regularization.drop_rate")
    if bad:
        raise ValueError(f"{path}: the PyTorch recipe cannot mirror {', '.join(bad)}")
    recipe["layers"] = layers
    recipe["n_samples"] = cfg.get("data", {}).get("n_samples")
    return recipe


def torch_recipe_model(layers, seed: int, device, classes: int = 10):
    """nn.Sequential of the recipe's layers (NCHW, 1x28x28 inputs) plus the output dense layer,
    initialized as fnn (He-normal for ReLU layers, Glorot-uniform otherwise, zero biases; a
    conv's fan_in = kh·kw·C) from a NumPy generator. Dense inputs after a flatten are in
    PyTorch's NCHW order (the nets are equal in distribution, not weight for weight)."""
    import numpy as np
    import torch

    rng = np.random.default_rng([seed, 8])
    shape = [1, 28, 28]
    mods = []

    def init(m, fan_in, fan_out, relu):
        w = (rng.standard_normal(tuple(m.weight.shape)) * math.sqrt(2.0 / fan_in) if relu else
             rng.uniform(-1, 1, tuple(m.weight.shape)) * math.sqrt(6.0 / (fan_in + fan_out)))
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(w.astype(np.float32)))
            m.bias.zero_()

    for spec in list(layers) + [{"type": "dense", "units": classes, "activation": "output"}]:
        t = spec["type"]
        if t == "conv2d":
            k, f = spec["kernel"], spec["filters"]
            m = torch.nn.Conv2d(shape[0], f, k, padding=k // 2)
            init(m, k * k * shape[0], f, spec["activation"] == "relu")
            mods.append(m)
            shape = [f, shape[1], shape[2]]
        elif t == "max_pool2d":
            mods.append(torch.nn.MaxPool2d(spec["pool"]))
            shape = [shape[0], shape[1] // spec["pool"], shape[2] // spec["pool"]]
        elif t == "flatten":
            mods.append(torch.nn.Flatten())
            shape = [int(np.prod(shape))]
        elif t == "dropout":
            mods.append(torch.nn.Dropout(spec["rate"]))
        elif t == "dense":
            if len(shape) != 1:
                mods.append(torch.nn.Flatten())
                shape = [int(np.prod(shape))]
            m = torch.nn.Linear(shape[0], spec["units"])
            init(m, shape[0], spec["units"], spec["activation"] == "relu")
            mods.append(m)
            shape = [spec["units"]]
        if spec.get("activation") == "relu":
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods).to(device)


def fashion_cnn_torch(spec: dict) -> dict:
    """PyTorch eager training the config's CNN with its recipe (Adam, batch, epochs, the
    config's validation split, best-epoch restore on val accuracy, images scaled by 1/255)."""
    import torch

    from benchlib.peers import fit_recipe

    device, sync = torch_device(spec)
    torch.manual_seed(spec["seed"])
    rc = spec["recipe"]
    arrays = fashion_arrays(rc["val_fraction"], rc["data_seed"], spec.get("n_samples"))
    model = torch_recipe_model(rc["layers"], spec["seed"], device)
    res = fit_recipe(spec, model, arrays, device, sync, image_shape=(1, 28, 28))
    res["notes"] = (f"the config's layers + dense 10; Adam {rc['learning_rate']:g} "
                    f"{rc['schedule']}, batch {rc['batch_size']}, {rc['epochs']} epochs"
                    + (f", best epoch by {rc['early_stopping']['monitor']} restored"
                       if rc["early_stopping"] and rc["early_stopping"]["restore_best"] else "")
                    + (f"; torch.set_num_threads({spec['threads']})" if device.type == "cpu" else "; CUDA"))
    return res
