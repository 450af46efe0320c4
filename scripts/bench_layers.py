"""Layer formulation timings on this machine (not a test): Conv2D im2col vs hybrid vs correlation
vs xla vs winograd (3x3 stride 1 only) forward+backward and ∂L/∂X alone, interleaved, MaxPool2D
backward index vs mask vs scatter. Usage:
MALLOC_ARENA_MAX=2 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4611686018427387904 python scripts/bench_layers.py
(the malloc settings as scripts/bench.py gives them; without them page faults dominate)."""
import timeit

import jax
import jax.numpy as jnp
import numpy as np

from fnn.nn.layers import Conv2D, MaxPool2D
from fnn.nn.layers.pooling import MAX_POOL_BACKWARDS


def _time(fn, *args, number=20):
    jax.block_until_ready(fn(*args))
    return min(timeit.repeat(lambda: jax.block_until_ready(fn(*args)), number=number, repeat=3)) / number


def _formulations(kernel=3, strides=1):
    """The Conv2D formulations that support the geometry ("winograd": 3x3, stride 1 only)."""
    forms = ["im2col", "hybrid", "correlation", "xla"]
    return forms + ["winograd"] if (kernel, strides) == (3, 1) else forms


def _interleaved(fns, rounds, number):
    """min over ``rounds`` of each function's mean time, the functions interleaved round by round
    so that they see the same machine load."""
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, (fn, args) in fns.items():
            best[k] = min(best[k], _time(fn, *args, number=number))
    return best


def conv_case(shape, filters, batch=128, rounds=5):
    """Forward + backward (from ∂L/∂A = 1) of a 3x3 same ReLU Conv2D, per formulation, the
    formulations interleaved round by round."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch,) + shape), jnp.float32)
    fns = {}
    for form in _formulations():
        layer = Conv2D(filters, 3, 1, "same", activation="relu", formulation=form)
        params = layer.init(jax.random.key(0), shape, jnp.float32)[0]

        @jax.jit
        def step(params, x, layer=layer):
            y, cache, _ = layer.forward(params, {}, x)
            return layer.backward(params, cache, jnp.ones_like(y))

        fns[form] = (step, (params, x))
    return _interleaved(fns, rounds, number=10)


def conv_input_grad_case(shape, filters, batch=128, rounds=5):
    """∂L/∂X alone (the product that conv2's backward is limited by), per formulation, the
    formulations interleaved round by round so that they see the same machine load."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch,) + shape), jnp.float32)
    fns = {}
    for form in _formulations():
        layer = Conv2D(filters, 3, 1, "same", activation="relu", formulation=form)
        params = layer.init(jax.random.key(0), shape, jnp.float32)[0]
        y, cache, _ = layer.forward(params, {}, x)
        delta = jnp.ones_like(y)
        fns[form] = (jax.jit(lambda p, c, d, layer=layer: layer.backward_from_delta(p, c, d)[1]),
                     (params, cache, delta))
    return _interleaved(fns, rounds, number=10)


def pool_case(shape, batch=128):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch,) + shape), jnp.float32)
    out = {}
    for form in MAX_POOL_BACKWARDS:
        layer = MaxPool2D(2, backward_formulation=form)

        @jax.jit
        def step(x, layer=layer):
            y, cache, _ = layer.forward({}, {}, x)
            return layer.backward({}, cache, jnp.ones_like(y))[1]

        out[form] = _time(step, x)
    return out


if __name__ == "__main__":
    print("backend:", jax.default_backend())
    info = open("/proc/cpuinfo").read().splitlines()
    cpu = [ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")]
    flags = next((ln for ln in info if ln.startswith("flags")), "").split()
    print("cpu:", cpu[0] if cpu else "?", "| avx512f" if "avx512f" in flags else "| no avx512f",
          "| avx2" if "avx2" in flags else "")
    for shape, f in [((28, 28, 1), 32), ((14, 14, 32), 64)]:
        r = conv_case(shape, f)
        print(f"conv 3x3 same {shape}->{f}, batch 128, fwd+bwd (interleaved): "
              + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in r.items()))
        r = conv_input_grad_case(shape, f)
        print("  dL/dX alone (interleaved): "
              + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in r.items()))
    for shape in [(28, 28, 32), (14, 14, 64)]:
        r = pool_case(shape)
        print(f"maxpool 2x2 {shape}, batch 128, fwd+bwd: "
              + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in r.items()))
