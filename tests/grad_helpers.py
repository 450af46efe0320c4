"""Helpers shared by the gradient tests (losses, network, gradients)."""
import functools

import jax
import numpy as np

# XLA:CPU spends most of these tests compiling small one-off programs; these options (no LLVM
# optimisation, the plain elemental emitter) make that ~3x cheaper with the same IEEE arithmetic.
# tests/conftest.py sets the same ones through XLA_FLAGS; passing them per jit keeps these tests
# cheap also under FNN_TEST_FULL_OPT=1. If a future XLA rejects an option, drop it here.
FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}
jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE)


def np_params(net, seed=0):
    """Random parameters from NumPy (eager jax.random compiles kernels for every new shape)."""
    rng = np.random.default_rng(seed)
    return net.params_from_dense(
        {"w": (rng.normal(size=(m, n)) / np.sqrt(m)).astype(net.dtype),
         "b": (0.1 * rng.normal(size=n)).astype(net.dtype)}
        for m, n in zip(net.sizes[:-1], net.sizes[1:]))
