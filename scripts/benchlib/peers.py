"""The peers: PyTorch, Flax+optax and scikit-learn, each a worker run in its own process.

Each gets the same data, initial weights, optimizer, batch size and padded per-epoch order as
fnn's contestants (:mod:`benchlib.inputs`). Installed with ``pip install 'fnn[bench]'``; a peer
that is not installed is skipped (:func:`benchlib.workers.missing_peer`).
"""

from __future__ import annotations

import math
import time

from benchlib.inputs import epoch_order, fashion_arrays, host_batches, init_params
from benchlib.measure import time_to_target, timed_epochs


def mlp_torch(spec, cfg, data, params) -> dict:
    """``torch`` / ``torch-fused`` / ``torch-compile``: PyTorch eager with Adam default or
    ``fused=True``, or ``torch.compile(model)`` with the default Adam (its first epoch, the
    "first call", includes the compilation). On the GPU (``--device gpu``) everything is on
    CUDA and each epoch ends with ``torch.cuda.synchronize()``."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from benchlib.cnn import torch_device

    device, sync = torch_device(spec)
    layers = []
    for l, (w, b) in enumerate(params):
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if l < len(params) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    fused = spec["contestant"] == "torch-fused"
    opt = torch.optim.Adam(model.parameters(), lr=cfg["learning_rate"],
                           **({"fused": True} if fused else {}))
    fwd = torch.compile(model) if spec["contestant"] == "torch-compile" else model
    x = torch.from_numpy(data[0]).to(device)
    y = torch.from_numpy(data[1].astype(np.int64)).to(device)
    box = {"losses": None}

    def run_epoch(e):
        idx = torch.from_numpy(epoch_order(cfg["samples"], cfg["batch"], spec["seed"], e).astype(np.int64))
        xs, ys = x[idx.to(device)], y[idx.to(device)]
        losses = []
        for i in range(idx.shape[0]):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(fwd(xs[i]), ys[i])
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        box["losses"] = losses

    res = timed_epochs(run_epoch, spec["repeats"], sync)
    res["final_loss"] = float(torch.stack(box["losses"]).mean())
    res["torch_threads"] = torch.get_num_threads()
    how = ("torch.compile(model), Adam default" if spec["contestant"] == "torch-compile" else
           f"Adam {'fused=True' if fused else 'default implementation'}")
    res["notes"] = ((f"torch.set_num_threads({torch.get_num_threads()}); " if device.type == "cpu"
                     else "CUDA; ") + how + "; batches: one gather per epoch")
    return res


def mlp_flax(spec, cfg, data, params) -> dict:
    """``flax``: a Flax linen MLP with an optax Adam, one jitted (donating) step per batch."""
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
        batches = host_batches(x, y, epoch_order(cfg["samples"], cfg["batch"], spec["seed"], e))
        v, o, losses = box["v"], box["o"], []
        for xb, yb in batches:
            v, o, loss = step(v, o, xb, yb)
            losses.append(loss)
        box.update(v=v, o=o, losses=losses)

    res = timed_epochs(run_epoch, spec["repeats"],
                       lambda: jax.block_until_ready((box["v"], box["losses"])))
    res["final_loss"] = float(sum(float(v) for v in box["losses"]) / len(box["losses"]))
    res["notes"] = "jax.jit(step, donate params+opt state); batches: NumPy views of one gather per epoch"
    return res


def fit_recipe(spec: dict, model, arrays, device, sync, image_shape=None) -> dict:
    """Train ``model`` with the config's recipe (``spec["recipe"]``): Adam with per-step cosine
    decay or a constant rate, batch size, epochs, the same padded per-epoch permutation as
    fnn's contestants, uint8 images scaled by 1/255 per batch, validation accuracy after every
    epoch, fnn's early-stopping rule (improve by more than min_delta, else wait; stop at
    patience) and the best epoch's weights restored; test accuracy at the end. Returns a
    :func:`benchlib.measure.time_to_target` result."""
    import numpy as np
    import torch

    rc = spec["recipe"]
    xtr, ytr, xv, yv, xt, yt = arrays
    lr, batch, epochs = rc["learning_rate"], rc["batch_size"], rc["epochs"]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    nb = -(-len(xtr) // batch)
    total = epochs * nb
    if rc["schedule"] == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
    else:  # constant
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    shape = (-1, *image_shape) if image_shape else (-1, xtr.shape[1])
    x8, y = torch.from_numpy(xtr).to(device), torch.from_numpy(ytr).to(device)

    def inputs(xb):
        return xb.float().div_(255.0).reshape(shape)

    def evaluate(xs, ys):
        model.eval()
        t = torch.from_numpy(ys).to(device)
        with torch.no_grad():  # in chunks of 2,048 images, as fnn evaluates the test split
            logits = torch.cat([model(inputs(torch.tensor(xs[i:i + 2048], device=device)))
                                for i in range(0, len(xs), 2048)])
            acc = float((logits.argmax(1) == t).float().mean())
            loss = float(torch.nn.functional.cross_entropy(logits, t))
        model.train()
        return {"val_accuracy": acc, "val_loss": loss}

    es = rc["early_stopping"]
    best, best_state, best_epoch, wait, stopped_at = None, None, None, 0, None
    records = []
    for e in range(epochs):
        idx = torch.from_numpy(epoch_order(len(xtr), batch, spec["seed"], e).astype(np.int64)).to(device)
        xs, ys = x8[idx], y[idx]
        for i in range(nb):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(inputs(xs[i])), ys[i])
            loss.backward()
            opt.step()
            sched.step()
        val = evaluate(xv, yv)
        sync()
        records.append({"t": time.time(), "epoch": e + 1, "val_accuracy": val["val_accuracy"]})
        if es:
            v = val[es["monitor"]]
            sign = 1.0 if es["monitor"] == "val_accuracy" else -1.0
            if best is None or sign * (v - best) > es["min_delta"]:
                best, best_epoch, wait = v, e + 1, 0
                best_state = {k: t.clone() for k, t in model.state_dict().items()}
            else:
                wait += 1
                if wait >= es["patience"]:
                    stopped_at = e + 1
                    break
    if es and es["restore_best"] and best_state is not None:
        model.load_state_dict(best_state)
    test = evaluate(xt, yt)["val_accuracy"]
    return time_to_target(spec, records, time.time(), final_test_accuracy=test,
                          epochs=len(records), stopped_early_at=stopped_at, best_epoch=best_epoch)


def fashion_torch(spec: dict) -> dict:
    """PyTorch running the config's recipe (:func:`benchlib.cases.fashion_recipe` of
    fashion_mnist.toml: hidden sizes, activation, inverted dropout as fnn's, Adam with per-step
    cosine decay, batch size, epochs, early stopping) with :func:`fit_recipe`: the same split,
    initialization scheme and padded per-epoch permutation."""
    import numpy as np
    import torch

    from benchlib.cnn import torch_device

    device, sync = torch_device(spec)
    torch.manual_seed(spec["seed"])
    rc = spec["recipe"]
    arrays = fashion_arrays(rc["val_fraction"], rc["data_seed"], spec.get("n_samples"))
    sizes = [784, *rc["hidden"], 10]
    drop, lr, batch = rc["drop_rate"], rc["learning_rate"], rc["batch_size"]
    layers = []
    for l, (w, b) in enumerate(init_params(sizes, spec["seed"])):
        if l > 0:
            layers.append(torch.nn.Dropout(drop))
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            lin.bias.zero_()
        layers.append(lin)
        if l < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    res = fit_recipe(spec, model, arrays, device, sync)
    es = rc["early_stopping"]
    res["notes"] = (f"the config's recipe ({'-'.join(map(str, sizes))}, dropout {drop}, "
                    f"Adam {lr:g} {rc['schedule']}, batch {batch}"
                    f"{', early stopping on ' + es['monitor'] if es else ''}); "
                    + (f"torch.set_num_threads({spec['threads']})" if device.type == "cpu" else "CUDA"))
    return res


def fashion_sklearn(spec: dict) -> dict:
    """MLPClassifier with the config's hidden sizes, relu, adam at the config's (peak) learning
    rate and batch size, alpha 0 (no L2; it has no dropout and no schedule): one ``partial_fit``
    per epoch, validation accuracy after each, up to ``epochs`` epochs or ``time_cap_s``."""
    import warnings

    import numpy as np
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    rc = spec["recipe"]
    xtr, ytr, xv, yv, xt, yt = fashion_arrays(rc["val_fraction"], rc["data_seed"], spec.get("n_samples"))
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
    return time_to_target(spec, records, time.time(), final_test_accuracy=test,
                          epochs=len(records),
                          notes=f"partial_fit per epoch, threadpoolctl limit {spec['threads']}, "
                                f"up to {spec['epochs']} epochs / {spec['time_cap_s']} s")
