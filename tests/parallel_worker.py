"""Run in a subprocess by tests/engine/test_parallel.py with XLA_FLAGS forcing 4 CPU devices.

Prints one JSON line: the worst relative / absolute differences between single-device and
4-device runs, for data-parallel runs (manual and autodiff, float64 and float32) and a sharded
8-member sweep.
"""
import json
import sys

import jax
import numpy as np

import fnn
from fnn import optim
from fnn.engine import parallel
from fnn.engine import HParams, Trainer


def worst_rel(a, b):
    out = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        out = max(out, float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-3))))
    return out


def main():
    dtype = sys.argv[1]
    assert jax.device_count() == 4, jax.devices()
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    data = fnn.data.load("moons", n_samples=320, val_fraction=0.25)
    net = fnn.MLP(sizes=(2, 16, 16, 2), activation="tanh", output="softmax", drop_rate=0.1,
                  dtype=dtype)
    mesh = parallel.make_mesh(4)
    result = {"devices": jax.device_count()}
    for grad in ("manual", "autodiff"):
        kw = dict(epochs=3, batch_size=32, grad=grad,
                  hparams=HParams(learning_rate=1e-2, l2=1e-3, drop_rate=0.1))
        make = lambda hp: optim.adam(hp.learning_rate)  # noqa: E731
        one = Trainer(net, "cross_entropy", make, data, **kw)
        reports = []
        four = Trainer(net, "cross_entropy", make, data, mesh=mesh,
                       progress=lambda e, m: reports.append(int(e)), **kw)
        s1, h1 = one.train(jax.random.key(0))
        s4, h4 = four.train(jax.random.key(0))
        result[f"data_parallel_{grad}"] = worst_rel(s1.params, s4.params)
        result[f"data_parallel_sharding_{grad}"] = str(s4.params[0]["w"].sharding.spec)
        keys = jax.random.split(jax.random.key(3), 8)
        hp = {"learning_rate": np.geomspace(1e-3, 1e-1, 8)}
        a, _ = one.sweep(keys, hp)
        b, _ = four.sweep(keys, hp)
        result[f"sweep_{grad}"] = worst_rel(a.params, b.params)
        result[f"sweep_sharding_{grad}"] = str(b.params[0]["w"].sharding.spec)
        jax.effects_barrier()
        result[f"reports_{grad}"] = reports
    print(json.dumps(result))


if __name__ == "__main__":
    main()
