"""benchlib.kernels: the kernels of a scanned step counted in compiled HLO text (a loop body's
fusions, a conditional as its costliest branch), and the count of a Trainer's epoch with and
without the flat optimizer update. No timings."""
from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from benchlib import kernels  # noqa: E402

import fnn  # noqa: E402


def scanned(n, with_cond):
    def body(c, x):
        y = jnp.sin(c * x) @ jnp.cos(c.T)
        if with_cond:
            y = jax.lax.cond(jnp.sum(y) > 0, lambda v: jnp.exp(v) + 1.0, lambda v: v, y)
        return y, jnp.sum(y)

    xs = jnp.ones((n, 4, 4))
    return jax.jit(lambda c: jax.lax.scan(body, c, xs)).lower(jnp.eye(4)).compile().as_text()


@pytest.mark.parametrize("n", [3, 7])
@pytest.mark.parametrize("with_cond", [False, True])
def test_kernel_count_of_a_scan(n, with_cond):
    out = kernels.kernel_count(scanned(n, with_cond))
    assert out["trip_count"] == n
    assert out["kernels"] == sum(out["by_kind"].values()) >= 1
    assert out["control"] == (1 if with_cond else 0)
    assert kernels.kernel_count(scanned(n, with_cond), trip_count=n) == out
    with pytest.raises(ValueError, match="no while loop with trip count"):
        kernels.kernel_count(scanned(n, with_cond), trip_count=n + 100)


def test_flat_updates_cut_the_kernels_of_a_small_net():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 2)).astype(np.float32)
    y = rng.integers(0, 2, 256).astype(np.int32)
    net = fnn.MLP(sizes=(2, 16, 16, 2), activation="relu", output="softmax")
    counts = {}
    for flat in ("off", "on"):
        opt = fnn.optim.adam(1e-3)
        tr = fnn.Trainer(net, "cross_entropy", opt, (x, y), epochs=1, batch_size=32,
                         flat_updates=flat)
        state = fnn.TrainState.create(net, opt, key=jax.random.key(0))
        counts[flat] = kernels.scanned_epoch_kernels(tr, state)
        assert counts[flat]["trip_count"] == 8 and counts[flat]["control"] == 1
    assert counts["on"]["kernels"] < counts["off"]["kernels"]
