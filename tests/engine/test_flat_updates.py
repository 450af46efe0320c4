"""Numerics.flat_updates: the scanned loop's optimizer on the raveled leaves trains the same
parameters, optimizer state and history as the per-leaf optimizer (single runs, a sweep, the
NaN guard's skipped step), keeps the carried state per leaf, and is chosen as documented.

Same: within MAX_ULP units in the last place of each leaf's largest entry. XLA:CPU contracts
multiply-adds into FMAs kernel by kernel, so the flat kernel may round an entry differently:
bitwise with the default compiler settings for these cases on an AMD EPYC (AVX2); under the
test suite's cheap settings Lion's moment differs in a few entries."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grad_helpers import assert_trees_within_ulp

from fnn import MLP, optim
from fnn.engine import Trainer, TrainState
from fnn.engine import epoch as epoch_mod
from markers import slow_cases

MAX_ULP = 8


def assert_same(a, b):
    assert_trees_within_ulp(a, b, MAX_ULP)


def blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    x = (rng.standard_normal((n, 3)) + 2.0 * np.eye(3)[y]).astype(np.float32)
    return x, y


def train(opt, flat_updates, *, data=None, epochs=3, key=1, **kw):
    net = MLP(sizes=(3, 8, 8, 3), activation="relu", output="softmax")
    tr = Trainer(net, "cross_entropy", opt, blobs(96) if data is None else data, epochs=epochs,
                 batch_size=16, flat_updates=flat_updates, **kw)
    return tr, tr.train(jax.random.key(key))


OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.1),
    "momentum": lambda: optim.sgd(0.1, momentum=0.9),
    "rmsprop": lambda: optim.rmsprop(1e-2),
    "adam": lambda: optim.adam(1e-2),
    "adamw": lambda: optim.adamw(1e-2, weight_decay=1e-2),
    "lion": lambda: optim.lion(1e-3),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("nan_guard", slow_cases(["halt", "off"], slow={"off"}))
def test_flat_run_is_the_per_leaf_run(name, nan_guard):
    runs = {f: train(OPTIMIZERS[name](), f, nan_guard=nan_guard)[1] for f in ("off", "on")}
    (s_on, h_on), (s_off, h_off) = runs["on"], runs["off"]
    assert_same(s_on.params, s_off.params)
    assert_same(s_on.opt_state, s_off.opt_state)  # per leaf outside the scan
    assert_same(h_on, h_off)
    assert int(s_on.step) == 18


def test_flat_sweep_is_the_per_leaf_sweep():
    net = MLP(sizes=(3, 8, 3), activation="relu", output="softmax")
    keys = jax.random.split(jax.random.key(0), 3)
    lrs = {"learning_rate": jnp.asarray([1e-3, 1e-2, 3e-2], jnp.float32)}
    out = {}
    for f in ("off", "on"):
        tr = Trainer(net, "cross_entropy", lambda hp: optim.adam(hp.learning_rate), blobs(64),
                     epochs=2, batch_size=16, flat_updates=f)
        out[f] = tr.sweep(keys, lrs)
    assert_same(out["on"], out["off"])


def test_nan_guard_skips_a_non_finite_gradient_under_flat_updates():
    x, y = blobs(96)
    x[40] = 3e38  # its forward overflows: a non-finite loss and gradient, the run halts there
    runs = {f: train(optim.adam(1e-2), f, data=(x, y))[1] for f in ("off", "on")}
    (s_on, h_on), (s_off, h_off) = runs["on"], runs["off"]
    assert bool(s_on.halted) and int(s_on.halted_step) == int(s_off.halted_step)
    assert int(s_on.step) == int(s_on.halted_step)  # the bad step was skipped
    assert all(bool(jnp.isfinite(p).all()) for p in jax.tree.leaves(s_on.params))
    assert_same(s_on.params, s_off.params)
    assert_same(s_on.opt_state, s_off.opt_state)
    assert_same(h_on, h_off)


def test_a_user_state_continues_under_flat_updates():
    """A state made by TrainState.create with the per-leaf optimizer runs as it is."""
    net = MLP(sizes=(3, 8, 3), activation="relu", output="softmax")
    opt = optim.adam(1e-2)
    results = []
    for f in ("off", "on"):
        tr = Trainer(net, "cross_entropy", opt, blobs(64), epochs=2, batch_size=16,
                     flat_updates=f)
        state, _ = tr.run(TrainState.create(net, opt, key=jax.random.key(3)))
        results.append(state)
    assert_same(results[0], results[1])


SMALL = ({"w": jnp.zeros((2, 16)), "b": jnp.zeros((16,))},)
LARGE = ({"w": jnp.zeros((784, 512)), "b": jnp.zeros((512,))},)


@pytest.mark.parametrize("setting, opt, params, expected", [
    ("auto", optim.adam(1e-3), SMALL, True),
    ("auto", optim.adam(1e-3), LARGE, False),
    ("on", optim.adam(1e-3), LARGE, True),
    ("off", optim.adam(1e-3), SMALL, False),
    ("on", optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-3)), SMALL, False),
    ("auto", optim.adamw(1e-3, mask=optim.weights_only_mask), SMALL, False),
])
def test_use_flat(setting, opt, params, expected):
    assert epoch_mod.use_flat(setting, opt, params) is expected


def test_flat_updates_rejects_unknown_settings():
    with pytest.raises(ValueError, match=r"flat_updates: 'yes'; expected one of"):
        Trainer(MLP(sizes=(3, 8, 3)), "cross_entropy", optim.adam(1e-3), blobs(32), epochs=1,
                batch_size=16, flat_updates="yes")
