"""fnn.optim.flat: an element-wise optimizer on the raveled leaves gives the per-leaf parameters
and state (after the state's unravel) for every element-wise optimizer of fnn.optim; the
element-wise flags; the state conversions; refusals.

Equal: within MAX_ULP units in the last place of each leaf's largest entry. Bitwise on the
machine this was written on (AMD EPYC, AVX2), but XLA:CPU contracts multiply-adds into FMAs
kernel by kernel, so other compiler settings or machines may round an entry differently
(fnn.optim.flatten's docstring)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grad_helpers import assert_trees_within_ulp

import fnn.optim as optim
import fnn.optim.schedules as schedules

MAX_ULP = 4
SHAPES = ({"w": (2, 16), "b": (16,)}, {"w": (16, 16), "b": (16,)}, {"w": (16, 2), "b": (2,)})
STEPS = 7

ELEMENTWISE = {
    "sgd": lambda: optim.sgd(0.1),
    "momentum": lambda: optim.sgd(0.1, momentum=0.9),
    "nesterov": lambda: optim.sgd(0.1, momentum=0.9, nesterov=True),
    "sgd-schedule": lambda: optim.sgd(schedules.cosine_decay_schedule(0.1, 10)),
    "adagrad": lambda: optim.adagrad(0.1, initial_accumulator_value=0.1),
    "rmsprop": lambda: optim.rmsprop(1e-2),
    "rmsprop-centered-momentum": lambda: optim.rmsprop(1e-2, centered=True, momentum=0.5),
    "adam": lambda: optim.adam(1e-2),
    "adamw": lambda: optim.adamw(1e-2, weight_decay=1e-2),
    "nadam": lambda: optim.nadam(1e-2),
    "adamax": lambda: optim.adamax(1e-2),
    "lion": lambda: optim.lion(1e-3, weight_decay=1e-2),
    "clip-then-adam": lambda: optim.chain(optim.clip(0.5), optim.adam(1e-2)),
    "injected-adam": lambda: optim.inject_hyperparams(optim.adam)(learning_rate=1e-2),
    "injected-adamw-schedule": lambda: optim.inject_hyperparams(optim.adamw)(
        learning_rate=schedules.cosine_decay_schedule(1e-2, 10), weight_decay=1e-2),
}

NOT_ELEMENTWISE = {
    "clip_by_global_norm": lambda: optim.chain(optim.clip_by_global_norm(1.0),
                                               optim.adam(1e-2)),
    "adamw-masked": lambda: optim.adamw(1e-2, mask=optim.weights_only_mask),
    "user-optimizer": lambda: optim.Optimizer(optim.adam(1e-2).init, optim.adam(1e-2).update),
    "injected-masked": lambda: optim.inject_hyperparams(optim.adamw)(
        learning_rate=1e-2, mask=optim.weights_only_mask),
}


def assert_same(a, b):
    assert_trees_within_ulp(a, b, MAX_ULP)


def tree(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return tuple({k: jnp.asarray(scale * rng.standard_normal(s), jnp.float32)
                  for k, s in layer.items()} for layer in SHAPES)


def trajectory(opt, params, grads_seq):
    """(params, state) after the steps, jitted and scanned as a training loop runs them."""
    def body(carry, g):
        p, s = carry
        u, s = opt.update(g, s, p)
        return (optim.apply_updates(p, u), s), None

    stacked = jax.tree.map(lambda *gs: jnp.stack(gs), *grads_seq)
    return jax.jit(lambda p, gs: jax.lax.scan(body, (p, opt.init(p)), gs)[0])(params, stacked)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_flat_is_the_per_leaf_optimizer(name):
    opt = ELEMENTWISE[name]()
    assert opt.elementwise
    params = tree(0)
    grads_seq = [tree(10 + i, scale=0.5) for i in range(STEPS)]
    p_leaf, s_leaf = trajectory(opt, params, grads_seq)
    p_flat, s_flat = trajectory(optim.flat(opt), params, grads_seq)
    assert_same(p_flat, p_leaf)
    assert_same(optim.unravel_state(s_flat, s_leaf, params), s_leaf)
    assert_same(optim.ravel_state(s_leaf, params), s_flat)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_state_conversions_round_trip(name):
    opt, params = ELEMENTWISE[name](), tree(0)
    state = opt.init(params)
    _, state = opt.update(tree(1), state, params)  # nonzero moments
    flat_state = optim.ravel_state(state, params)
    chex.assert_trees_all_equal_structs(flat_state, optim.flat(opt).init(params))
    chex.assert_trees_all_equal(optim.unravel_state(flat_state, state, params), state)


@pytest.mark.parametrize("name", sorted(NOT_ELEMENTWISE))
def test_other_optimizers_are_not_flattened(name):
    opt = NOT_ELEMENTWISE[name]()
    assert not opt.elementwise and not optim.can_flatten(opt, tree(0))
    with pytest.raises(ValueError, match="flat: the optimizer is not element-wise"):
        optim.flat(opt)


@pytest.mark.parametrize("params, ok", [
    (tree(0), True),
    ({"w": jnp.ones((2, 3), jnp.float32), "b": jnp.ones((3,), jnp.bfloat16)}, False),
    ({"w": jnp.ones((2, 3), jnp.int32)}, False),
    ((), False),
])
def test_can_flatten_needs_one_float_dtype(params, ok):
    assert optim.can_flatten(optim.adam(1e-3), params) is ok


@pytest.mark.parametrize("like", [tree(3), {"a": jnp.zeros((2, 3, 4)), "b": jnp.zeros(())}])
def test_ravel_and_unravel_are_inverse(like):
    v = optim.ravel(like)
    assert v.shape == (sum(int(np.size(x)) for x in jax.tree.leaves(like)),)
    chex.assert_trees_all_equal(optim.unravel(v, like), like)
