"""Layer formulation timings on this machine (not a test): Conv2D im2col vs hybrid vs correlation
vs xla vs winograd (3x3 stride 1 only) forward+backward and ∂L/∂X alone, interleaved, MaxPool2D
backward index vs mask vs scatter; with ``--torch``, also PyTorch's convolution on the same layers
and the GEMM GFLOP/s of both sides at conv2's im2col shapes (the kernel that decides the CNN step
against PyTorch on a given CPU). Usage:
MALLOC_ARENA_MAX=2 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4611686018427387904 python scripts/bench_layers.py [--torch]
(the malloc settings as scripts/bench.py gives them; without them page faults dominate)."""
import os
import sys
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


def _best(fn, number, rounds):
    """min over ``rounds`` of ``fn``'s mean time over ``number`` calls (a synchronous, e.g.
    PyTorch CPU, function)."""
    fn()
    return min(timeit.repeat(fn, number=number, repeat=rounds)) / number


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


def torch_conv_case(shape, filters, batch=128, rounds=5):
    """PyTorch's 3x3 same ReLU convolution on the layer of :func:`conv_case` (NCHW, its default
    CPU kernels: oneDNN): forward + backward from ∂L/∂A = 1, and ∂L/∂X alone; min over rounds.

    Returns:
      {"fwd+bwd": seconds, "dL/dX": seconds}."""
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    h, w, c = shape
    x = torch.randn(batch, c, h, w)
    conv = torch.nn.Conv2d(c, filters, 3, padding=1)

    def fwd_bwd():
        xg = x.detach().requires_grad_(True)
        torch.relu(conv(xg)).sum().backward()

    y_shape = (batch, filters, h, w)
    delta = torch.ones(y_shape)

    def input_grad():
        return torch.nn.grad.conv2d_input(x.shape, conv.weight, delta, padding=1)

    with torch.no_grad():
        dx = _best(input_grad, 10, rounds)
    return {"fwd+bwd": _best(fwd_bwd, 10, rounds), "dL/dX": dx}


def gemm_case(m, k, n, rounds=5, number=10):
    """GFLOP/s (2mkn per product) of an (m×k)·(k×n) float32 product: XLA's dot and PyTorch's
    torch.mm (MKL / oneDNN), each timed on its own, min over rounds; the two products are
    checked to agree.

    Returns:
      (XLA GFLOP/s, torch GFLOP/s)."""
    import torch

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(k, n)).astype(np.float32)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    dot = jax.jit(jnp.dot)
    t_jax = _time(dot, ja, jb, number=number)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    t_torch = _best(lambda: torch.mm(ta, tb), number, rounds)
    flops = 2.0 * m * k * n
    diff = np.max(np.abs(np.asarray(dot(ja, jb)) - torch.mm(ta, tb).numpy()))
    scale = np.max(np.abs(a)) * np.max(np.abs(b)) * k
    assert diff <= 1e-5 * scale, f"XLA's and torch's products differ by {diff}"  # the same product
    return flops / t_jax / 1e9, flops / t_torch / 1e9


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
    if "--torch" in sys.argv[1:]:
        import torch

        print("torch:", torch.__version__, "threads", torch.get_num_threads(), "| mkldnn",
              torch.backends.mkldnn.is_available())
        for shape, f in [((28, 28, 1), 32), ((14, 14, 32), 64)]:
            r = torch_conv_case(shape, f)
            print(f"torch conv 3x3 same {shape}->{f}, batch 128: fwd+bwd {r['fwd+bwd'] * 1e3:.2f} ms,"
                  f" dL/dX alone {r['dL/dX'] * 1e3:.2f} ms")
        # conv2's im2col products (batch 128, 14x14 positions, 3x3x32 patches, 64 filters)
        rows, patch, filters = 128 * 14 * 14, 3 * 3 * 32, 64
        for name, (m, k, n) in [("forward X_col·W", (rows, patch, filters)),
                                ("dW = X_colᵀ·δ", (patch, rows, filters)),
                                ("dX_col = δ·W_colᵀ", (rows, filters, patch))]:
            gj, gt = gemm_case(m, k, n)
            print(f"GEMM {name} ({m}x{k})·({k}x{n}): XLA {gj:.0f} GFLOP/s, torch.mm {gt:.0f} GFLOP/s"
                  f" ({gj / gt:.2f}x)")
