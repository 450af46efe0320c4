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


def assert_trees_within_ulp(a, b, max_ulp: int):
    """Equal structure and dtypes; each float leaf within ``max_ulp`` units in the last place of
    its largest entry (NaNs where the other has NaNs), the others (keys, integers) exactly."""
    import chex
    import jax.numpy as jnp

    chex.assert_trees_all_equal_structs(a, b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype
        if np.issubdtype(x.dtype, np.floating) and x.size:
            scale = np.nanmax(np.abs(y)) if np.isfinite(y).any() else 0.0
            tol = max_ulp * np.finfo(x.dtype).eps * scale
            np.testing.assert_allclose(x, y, rtol=0, atol=tol, equal_nan=True)
        else:
            np.testing.assert_array_equal(x, y)
