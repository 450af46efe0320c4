"""Mixed precision in the engine: ``Trainer(..., precision="bfloat16")`` keeps float32 master
parameters, optimizer state and metrics, and trains like the float32 run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import MLP, optim
from fnn.engine import Trainer, TrainState, make_train_step


def blobs(n=256, seed=0):
    rng = np.random.default_rng(seed)
    centers = 3.0 * rng.standard_normal((3, 4))
    y = rng.integers(0, 3, n).astype(np.int32)
    return (centers[y] + rng.standard_normal((n, 4))).astype(np.float32), y


def test_a_bf16_run_keeps_float32_state_and_learns_like_float32():
    x, y = blobs()
    net = MLP([4, 32, 3], output="softmax")
    runs = {}
    for p in ("full", "bfloat16"):
        t = Trainer(net, "cross_entropy", optim.adam(1e-2), (x, y, x[:64], y[:64]), epochs=5,
                    batch_size=32, precision=p)
        runs[p] = t.train(jax.random.key(0))
    state, hist = runs["bfloat16"]
    dtypes = {leaf.dtype for leaf in jax.tree.leaves((state.params, state.opt_state))
              if jnp.issubdtype(leaf.dtype, jnp.floating)}
    assert dtypes == {jnp.dtype("float32")}
    assert hist["train_loss"].dtype == jnp.float32
    full = runs["full"][1]
    assert hist["val_accuracy"][-1] >= full["val_accuracy"][-1] - 0.02
    np.testing.assert_allclose(hist["train_loss"], full["train_loss"], rtol=0.1)
    # the runs differ (bf16 rounding): the precision reached the step
    assert not np.array_equal(np.asarray(state.params[0]["w"]),
                              np.asarray(runs["full"][0].params[0]["w"]))


def test_the_master_update_keeps_steps_bf16_parameters_would_lose():
    """A step far below bfloat16's resolution of a weight (1 + 2^-12) still moves the float32
    master copy: the update is applied in float32."""
    net = MLP([2, 2], output="identity")
    opt = optim.sgd(2.0 ** -12)
    state = TrainState.create(net, opt, key=jax.random.key(0))
    state = state._replace(params=jax.tree.map(jnp.ones_like, state.params))
    x = np.ones((4, 2), np.float32)
    y = np.zeros((4, 2), np.float32)
    step = make_train_step(net, "mse", opt, precision="bfloat16")
    new, _ = step(state, (x, y))
    w = np.asarray(new.params[0]["w"])
    assert w.dtype == np.float32 and np.all(w < 1.0) and np.all(w > 0.99)
    assert np.all(jnp.asarray(w, jnp.bfloat16) == 1.0)  # bf16 parameters would not have moved


@pytest.mark.parametrize("kwargs,match", [
    ({"precision": "half"}, r"^precision: 'half'; expected one of: full, bfloat16"),
    ({"precision": "bfloat16", "dtype": "float64"},
     r"^precision: 'bfloat16' with parameters in float64; expected float32 master"),
])
def test_bad_precision_in_the_trainer_is_one_line(kwargs, match, request):
    if kwargs.get("dtype") == "float64":
        request.getfixturevalue("x64")
    x, y = blobs(64)
    net = MLP([4, 3], output="softmax", dtype=kwargs.pop("dtype", "float32"))
    with pytest.raises(ValueError, match=match):
        Trainer(net, "cross_entropy", optim.sgd(0.1), (x.astype(net.dtype), y), epochs=1,
                batch_size=16, **kwargs)


def test_a_user_network_cannot_be_rebuilt_in_bfloat16():
    class Linear:
        input_shape = (4,)

        def init(self, key):
            return {"w": jax.random.normal(key, (4, 3))}

        def apply(self, params, x, *, key=None):
            return jax.nn.softmax(x @ params["w"])

    with pytest.raises(ValueError, match=r"user network; it cannot be rebuilt with \['dtype'\]"):
        make_train_step(Linear(), "cross_entropy", optim.sgd(0.1), grad="autodiff",
                        precision="bfloat16")
