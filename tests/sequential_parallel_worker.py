"""Run in a subprocess by tests/e2e/test_sequential_e2e.py with XLA_FLAGS forcing 4 CPU devices.

A small conv net with BatchNorm (and dropout) trained data parallel on 4 devices and on one, in
float64; prints one JSON line: the worst relative differences of the parameters and of the
BatchNorm running statistics (which match only if the batch statistics are over the global
batch, not each device's quarter), and the parameters' sharding.
"""
import json

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import fnn  # noqa: E402
from fnn import layers as L  # noqa: E402
from fnn import optim  # noqa: E402
from fnn.engine import HParams, Trainer, parallel  # noqa: E402


def worst_rel(a, b):
    out = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        out = max(out, float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-3))))
    return out


def main():
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8, 8, 1))
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int32)
    net = fnn.Sequential([L.Conv2D(4, 3, activation="relu"), L.MaxPool2D(2), L.BatchNorm(),
                          L.Flatten(), L.Dropout(0.1), L.Dense(2, "softmax")],
                         input_shape=(8, 8, 1), dtype="float64")
    result = {"devices": jax.device_count()}
    for grad in ("manual",):  # the hand-written backward; autodiff: tests/engine/test_parallel.py
        kw = dict(epochs=3, batch_size=16, grad=grad, hparams=HParams(learning_rate=1e-2))
        make = lambda hp: optim.adam(hp.learning_rate)  # noqa: E731
        one = Trainer(net, "cross_entropy", make, (x, y), **kw)
        four = Trainer(net, "cross_entropy", make, (x, y), mesh=parallel.make_mesh(4), **kw)
        s1, _ = one.train(jax.random.key(0))
        s4, _ = four.train(jax.random.key(0))
        result[f"params_{grad}"] = worst_rel(s1.params, s4.params)
        result[f"bn_state_{grad}"] = worst_rel(s1.net_state, s4.net_state)
        result[f"bn_moved_{grad}"] = worst_rel(net.init_state(), s1.net_state)
        result[f"sharding_{grad}"] = str(s4.params[0]["w"].sharding.spec)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
