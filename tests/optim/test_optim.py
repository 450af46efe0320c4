"""Tests for fnn.optim: each optimizer against an independent NumPy float64 reference written
here from the published update rule, convergence on a quadratic and on Rosenbrock, composition,
clipping, weight decay and masks, no recompilation for traced hyperparameters, dtypes,
scan/vmap, validation errors and the registry."""
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import fnn.optim as optim
import fnn.optim.schedules as schedules

N_STEPS = 50
SHAPES = ({"w": (3, 4), "b": (4,)}, {"w": (4, 2), "b": (2,)})  # fnn's params layout


def make_params(dtype, seed=0):
    """Params with entries of magnitude in [1, 2] (random sign), so rtol is meaningful."""
    rng = np.random.default_rng(seed)

    def leaf(shape):
        x = rng.uniform(1.0, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        return jnp.asarray(x, dtype=dtype)

    return tuple({k: leaf(s) for k, s in layer.items()} for layer in SHAPES)


def make_grads(params, n_steps=N_STEPS, seed=1):
    """(n_steps, n) fixed random gradients (float64 NumPy) and the stacked pytree version."""
    flat, unravel = ravel_pytree(params)
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(n_steps, flat.size))
    stacked = jax.vmap(unravel)(jnp.asarray(g, dtype=flat.dtype))
    return np.asarray(g.astype(flat.dtype), dtype=np.float64), stacked


def run_optimizer(opt, params, stacked_grads, jit=True):
    """Trajectory of flattened params, (n_steps, n), under lax.scan (and the final state if
    ``jit=False``, for use inside a transformation)."""

    def body(carry, g):
        p, s = carry
        u, s = opt.update(g, s, p)
        p = optim.apply_updates(p, u)
        return (p, s), ravel_pytree(p)[0]

    def scan(p, gs):
        (_, state), traj = jax.lax.scan(body, (p, opt.init(p)), gs)
        return traj, state

    if not jit:
        return scan(params, stacked_grads)
    traj, _ = jax.jit(scan)(params, stacked_grads)
    return np.asarray(traj, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Independent NumPy float64 references, one loop per published rule, on flat vectors.
# ---------------------------------------------------------------------------------------------


def ref_sgd(theta, grads, learning_rate, momentum=0.0, nesterov=False):
    # PyTorch SGD (dampening 0): b = mu b + g; step = g + mu b (Nesterov) or b.
    buf = np.zeros_like(theta)
    out = []
    for g in grads:
        if momentum:
            buf = momentum * buf + g
            step = g + momentum * buf if nesterov else buf
        else:
            step = g
        theta = theta - learning_rate * step
        out.append(theta)
    return np.stack(out)


def ref_adagrad(theta, grads, learning_rate, initial_accumulator_value=0.0, eps=1e-10):
    # Duchi et al. 2011 / PyTorch: s += g^2; theta -= lr g / (sqrt(s) + eps).
    s = np.full_like(theta, initial_accumulator_value)
    out = []
    for g in grads:
        s = s + g * g
        theta = theta - learning_rate * g / (np.sqrt(s) + eps)
        out.append(theta)
    return np.stack(out)


def ref_rmsprop(
    theta, grads, learning_rate, decay=0.9, eps=1e-8, centered=False, momentum=0.0, nesterov=False
):
    # PyTorch RMSprop (alpha = decay): v = a v + (1-a) g^2; centered subtracts m^2;
    # buf = mu buf + g / (sqrt(.) + eps); theta -= lr buf.
    v = np.zeros_like(theta)
    m = np.zeros_like(theta)
    buf = np.zeros_like(theta)
    out = []
    for g in grads:
        v = decay * v + (1 - decay) * g * g
        if centered:
            m = decay * m + (1 - decay) * g
            denom = np.sqrt(v - m * m) + eps
        else:
            denom = np.sqrt(v) + eps
        step = g / denom
        if momentum:
            buf = momentum * buf + step
            step = step + momentum * buf if nesterov else buf
        theta = theta - learning_rate * step
        out.append(theta)
    return np.stack(out)


def ref_adam(theta, grads, learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    # Kingma & Ba 2015, Alg. 1; AdamW as PyTorch: theta -= lr (adam_step + wd theta).
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        theta = theta - learning_rate * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * theta)
        out.append(theta)
    return np.stack(out)


def ref_nadam(theta, grads, learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    # Dozat 2016, Alg. 2 with constant mu: m_bar = mu m_hat_next + (1-mu) g_hat.
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_bar = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        theta = theta - learning_rate * m_bar / (np.sqrt(v_hat) + eps)
        out.append(theta)
    return np.stack(out)


def ref_adamax(theta, grads, learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    # Kingma & Ba 2015, Alg. 2 (eps as PyTorch): u = max(b2 u, |g| + eps).
    m = np.zeros_like(theta)
    u = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        theta = theta - (learning_rate / (1 - b1**t)) * m / u
        out.append(theta)
    return np.stack(out)


def ref_lion(theta, grads, learning_rate, b1=0.9, b2=0.99, weight_decay=0.0):
    # Chen et al. 2023, Program 1.
    m = np.zeros_like(theta)
    out = []
    for g in grads:
        c = b1 * m + (1 - b1) * g
        theta = theta - learning_rate * (np.sign(c) + weight_decay * theta)
        m = b2 * m + (1 - b2) * g
        out.append(theta)
    return np.stack(out)


# (registry name, kwargs, reference); every kwarg is passed to both.
REFERENCE_CASES = [
    ("sgd", dict(learning_rate=0.01), ref_sgd),
    ("momentum", dict(learning_rate=0.01, momentum=0.8), ref_sgd),
    ("nesterov", dict(learning_rate=0.01, momentum=0.8, nesterov=True), ref_sgd),
    ("adagrad", dict(learning_rate=0.02), ref_adagrad),
    ("adagrad", dict(learning_rate=0.02, initial_accumulator_value=0.1, eps=1e-3), ref_adagrad),
    ("rmsprop", dict(learning_rate=0.005), ref_rmsprop),
    ("rmsprop", dict(learning_rate=0.005, decay=0.7, eps=1e-3, centered=True), ref_rmsprop),
    ("rmsprop", dict(learning_rate=0.002, momentum=0.6), ref_rmsprop),
    ("rmsprop", dict(learning_rate=0.002, centered=True, momentum=0.6, nesterov=True), ref_rmsprop),
    ("adam", dict(learning_rate=0.01), ref_adam),
    ("adam", dict(learning_rate=0.01, b1=0.5, b2=0.8, eps=0.1), ref_adam),
    ("adamw", dict(learning_rate=0.01, weight_decay=0.1), ref_adam),
    ("nadam", dict(learning_rate=0.01), ref_nadam),
    ("nadam", dict(learning_rate=0.01, b1=0.6, b2=0.9, eps=1e-3), ref_nadam),
    ("adamax", dict(learning_rate=0.01), ref_adamax),
    ("adamax", dict(learning_rate=0.01, b1=0.5, b2=0.8, eps=1e-2), ref_adamax),
    ("lion", dict(learning_rate=0.005), ref_lion),
    ("lion", dict(learning_rate=0.005, b1=0.5, b2=0.9, weight_decay=0.3), ref_lion),
]


def _case_id(case):
    name, kw, _ = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items() if k != "learning_rate")


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=_case_id)
def test_matches_numpy_reference_float64(case, x64):
    """Python-float hyperparameters, float64, rtol 1e-12."""
    name, kwargs, reference = case
    params = make_params(jnp.float64)
    g_np, g_tree = make_grads(params)
    theta0 = np.asarray(ravel_pytree(params)[0])
    expected = reference(theta0, g_np, **kwargs)
    assert np.min(np.abs(expected)) > 0.2  # so that rtol alone is meaningful
    actual = run_optimizer(optim.get(name, **kwargs), params, g_tree)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=_case_id)
def test_matches_numpy_reference_float32_vmapped_over_learning_rates(case):
    """float32, rtol 1e-5; the optimizer is built from a traced learning rate and run under
    lax.scan inside jax.vmap over a vector of learning rates, one reference run per entry."""
    name, kwargs, reference = case
    params = make_params(jnp.float32)
    g_np, g_tree = make_grads(params)
    theta0 = np.asarray(ravel_pytree(params)[0], dtype=np.float64)
    lr0 = kwargs["learning_rate"]
    lrs = np.array([lr0, lr0 / 2], dtype=np.float32)
    rest = {k: v for k, v in kwargs.items() if k != "learning_rate"}

    def run(lr):
        return run_optimizer(optim.get(name, learning_rate=lr, **rest), params, g_tree, jit=False)

    trajectories, states = jax.jit(jax.vmap(run))(jnp.asarray(lrs))
    assert trajectories.dtype == jnp.float32
    for leaf in jax.tree.leaves(states):
        assert leaf.shape[:1] == (2,)
        assert leaf.dtype in (jnp.float32, jnp.int32)
    for lr, actual in zip(lrs, np.asarray(trajectories, dtype=np.float64)):
        expected = reference(theta0, g_np, learning_rate=float(lr), **rest)
        assert np.min(np.abs(expected)) > 0.2
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=0)


def test_every_registered_optimizer_has_a_reference_case():
    assert {c[0] for c in REFERENCE_CASES} == set(optim.OPTIMIZERS)


# ---------------------------------------------------------------------------------------------
# Closed-form first steps: the documented conventions.
# ---------------------------------------------------------------------------------------------

G = np.array([0.5, -2.0, 3.0])
THETA = np.array([1.0, -1.0, 2.0])
LR = 0.1


def _first_update(opt):
    params = jnp.asarray(THETA)
    state = opt.init(params)
    u, _ = opt.update(jnp.asarray(G), state, params)
    return np.asarray(u)


# (name, optimizer, expected first update as a function of nothing)
FIRST_STEP_CASES = [
    # Adam: eps after the bias-corrected root: m_hat = g, v_hat = g^2 -> -lr g / (|g| + eps).
    ("adam eps after sqrt", optim.adam(LR, eps=0.5), -LR * G / (np.abs(G) + 0.5)),
    ("nadam", optim.nadam(LR, b1=0.9, eps=0.5),
     -LR * G * (0.9 / (1 + 0.9) + 1) / (np.abs(G) + 0.5)),
    ("adamax", optim.adamax(LR, eps=0.5), -LR * G / (np.abs(G) + 0.5)),
    # AdamW: decay multiplied by the learning rate.
    ("adamw decay times lr", optim.adamw(LR, eps=0.5, weight_decay=0.3),
     -LR * (G / (np.abs(G) + 0.5) + 0.3 * THETA)),
    # Adagrad: accumulators start at initial_accumulator_value (default 0).
    ("adagrad s0=0", optim.adagrad(LR, eps=0.5), -LR * G / (np.abs(G) + 0.5)),
    ("adagrad s0=0.7", optim.adagrad(LR, initial_accumulator_value=0.7, eps=0.5),
     -LR * G / (np.sqrt(0.7 + G**2) + 0.5)),
    # RMSProp: v_0 = 0 (initial_scale), m_0 = 0.
    ("rmsprop v0=0", optim.rmsprop(LR, decay=0.9, eps=0.5),
     -LR * G / (np.sqrt(0.1 * G**2) + 0.5)),
    ("rmsprop v0=2", optim.rmsprop(LR, decay=0.9, eps=0.5, initial_scale=2.0),
     -LR * G / (np.sqrt(0.9 * 2.0 + 0.1 * G**2) + 0.5)),
    ("rmsprop centered", optim.rmsprop(LR, decay=0.9, eps=0.5, centered=True),
     -LR * G / (np.sqrt(0.1 * G**2 - 0.01 * G**2) + 0.5)),
    ("lion", optim.lion(LR), -LR * np.sign(G)),
    ("sgd", optim.sgd(LR), -LR * G),
    ("momentum", optim.sgd(LR, momentum=0.9), -LR * G),
    ("nesterov", optim.sgd(LR, momentum=0.9, nesterov=True), -LR * 1.9 * G),
]


@pytest.mark.parametrize(
    "name,opt,expected", FIRST_STEP_CASES, ids=[c[0] for c in FIRST_STEP_CASES]
)
def test_first_step_closed_form(name, opt, expected, x64):
    np.testing.assert_allclose(_first_update(opt), expected, rtol=1e-14)


@pytest.mark.parametrize(
    "opt,field,value",
    [
        (optim.adagrad(LR), "sum_of_squares", 0.0),
        (optim.adagrad(LR, initial_accumulator_value=0.3), "sum_of_squares", 0.3),
        (optim.rmsprop(LR), "nu", 0.0),
        (optim.rmsprop(LR, initial_scale=0.25), "nu", 0.25),
        (optim.rmsprop(LR, centered=True), "mu", 0.0),
        (optim.adam(LR), "mu", 0.0),
        (optim.adam(LR), "nu", 0.0),
    ],
)
def test_initial_accumulators(opt, field, value):
    state = opt.init(make_params(jnp.float32))[0]
    for leaf in jax.tree.leaves(getattr(state, field)):
        np.testing.assert_array_equal(leaf, np.full(leaf.shape, value, np.float32))


# ---------------------------------------------------------------------------------------------
# Convergence table: every optimizer x {quadratic, Rosenbrock}
# ---------------------------------------------------------------------------------------------

CONV_STEPS = 10_000
QUAD_A = np.array([1.0, 4.0])
QUAD_C = np.array([1.0, -2.0])


def quadratic(x):
    a, c = jnp.asarray(QUAD_A, x.dtype), jnp.asarray(QUAD_C, x.dtype)
    return 0.5 * jnp.sum(a * jnp.square(x - c))


def rosenbrock(x):
    return jnp.square(1 - x[0]) + 100 * jnp.square(x[1] - jnp.square(x[0]))


PROBLEMS = {"quadratic": (quadratic, QUAD_C), "rosenbrock": (rosenbrock, np.array([1.0, 1.0]))}

CONVERGENCE_TABLE = {
    "sgd": lambda: optim.sgd(1.5e-3),
    "momentum": lambda: optim.get("momentum", learning_rate=5e-4),
    "nesterov": lambda: optim.get("nesterov", learning_rate=5e-4),
    "adagrad": lambda: optim.adagrad(0.5),
    "rmsprop": lambda: optim.rmsprop(1e-3),
    "rmsprop-centered-momentum": lambda: optim.rmsprop(1e-4, centered=True, momentum=0.9),
    "adam": lambda: optim.adam(0.03),
    "adamw": lambda: optim.adamw(0.01),
    "nadam": lambda: optim.nadam(0.01),
    "adamax": lambda: optim.adamax(0.03),
    "lion": lambda: optim.lion(1e-3),
    "adam-warmup-cosine": lambda: optim.adam(
        schedules.warmup_cosine_decay_schedule(0.0, 0.05, 100, CONV_STEPS, 1e-3)
    ),
    "lion-cosine": lambda: optim.lion(schedules.cosine_decay_schedule(3e-3, CONV_STEPS, 0.1)),
    "clipped-sgd": lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(1.5e-3)),
}


def test_convergence_table_covers_every_optimizer():
    assert set(optim.OPTIMIZERS) <= set(CONVERGENCE_TABLE)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("name", sorted(CONVERGENCE_TABLE))
def test_convergence(name, problem):
    fn, minimum = PROBLEMS[problem]
    opt = CONVERGENCE_TABLE[name]()

    @jax.jit
    def minimize(x0):
        def body(carry, _):
            x, s = carry
            u, s = opt.update(jax.grad(fn)(x), s, x)
            return (optim.apply_updates(x, u), s), None

        (x, _), _ = jax.lax.scan(body, (x0, opt.init(x0)), None, length=CONV_STEPS)
        return x

    x = minimize(jnp.array([-1.2, 1.0], dtype=jnp.float32))
    np.testing.assert_allclose(x, minimum, rtol=3e-2, atol=3e-2)


# ---------------------------------------------------------------------------------------------
# Composition, clipping, weight decay and masks
# ---------------------------------------------------------------------------------------------


def test_chain_equals_applying_each_transformation_by_hand():
    params = make_params(jnp.float32)
    _, grads = make_grads(params, n_steps=3)
    parts = [
        optim.clip_by_global_norm(1.0),
        optim.scale_by_adam(b1=0.8),
        optim.add_decayed_weights(0.1),
        optim.scale_by_learning_rate(0.05),
    ]
    chained = optim.chain(*parts)

    def by_chain(params):
        state, out = chained.init(params), []
        for i in range(3):
            g = jax.tree.map(lambda x: x[i], grads)
            updates, state = chained.update(g, state, params)
            params = optim.apply_updates(params, updates)
            out.append((updates, state))
        return out

    def by_hand(params):
        states, out = [t.init(params) for t in parts], []
        for i in range(3):
            updates = jax.tree.map(lambda x: x[i], grads)
            for j, t in enumerate(parts):
                updates, states[j] = t.update(updates, states[j], params)
            params = optim.apply_updates(params, updates)
            out.append((updates, tuple(states)))
        return out

    chex.assert_trees_all_close(jax.jit(by_chain)(params), jax.jit(by_hand)(params), rtol=1e-6)


def test_adam_is_scale_by_adam_then_learning_rate():
    params = make_params(jnp.float32)
    _, grads = make_grads(params, n_steps=1)
    g = jax.tree.map(lambda x: x[0], grads)
    a, _ = optim.adam(0.1).update(g, optim.adam(0.1).init(params), params)
    sba = optim.scale_by_adam()
    b, _ = sba.update(g, sba.init(params), params)
    chex.assert_trees_all_close(a, jax.tree.map(lambda x: -0.1 * x, b), rtol=1e-7)


@pytest.mark.parametrize("scale_factor", [1e-3, 0.5, 0.999, 1.0, 1.001, 3.0, 1e4])
def test_clip_by_global_norm_bounds_the_norm_exactly(scale_factor, x64):
    params = make_params(jnp.float64)
    max_norm = 2.5
    grads = jax.tree.map(lambda p: p * (scale_factor * max_norm), params)
    grads = jax.tree.map(lambda g: g / optim.global_norm(params), grads)  # ||g|| = sf * max
    clipper = optim.clip_by_global_norm(max_norm)
    clipped, _ = clipper.update(grads, clipper.init(params), params)
    norm = float(optim.global_norm(clipped))
    if scale_factor < 1.0:
        chex.assert_trees_all_equal(clipped, grads)  # untouched, bit for bit
    elif scale_factor == 1.0:
        # On the boundary the computed ||g|| may round to either side of max_norm (it depends
        # on the reduction order XLA picks): untouched, or scaled by 1 - O(eps).
        assert norm == pytest.approx(max_norm, rel=1e-14)
        chex.assert_trees_all_close(clipped, grads, rtol=1e-14)
    else:
        assert norm == pytest.approx(max_norm, rel=1e-14)
        # direction is kept
        chex.assert_trees_all_close(
            clipped, jax.tree.map(lambda g: g / scale_factor, grads), rtol=1e-13
        )


@given(
    scale=st.floats(min_value=1e-3, max_value=1e3),
    max_norm=st.floats(min_value=1e-2, max_value=1e2),
)
def test_clip_by_global_norm_never_exceeds_max_norm(scale, max_norm):
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        params = make_params(jnp.float32)
        grads = jax.tree.map(lambda p: p * scale, params)
        clipper = optim.clip_by_global_norm(max_norm)
        clipped, _ = clipper.update(grads, clipper.init(params), params)
        assert float(optim.global_norm(clipped)) <= max_norm * (1 + 1e-6)


def test_global_norm_is_the_l2_norm_of_all_leaves(x64):
    params = make_params(jnp.float64)
    flat = np.asarray(ravel_pytree(params)[0])
    assert float(optim.global_norm(params)) == pytest.approx(np.linalg.norm(flat), rel=1e-15)


def test_clip_by_value():
    g = {"a": jnp.array([-3.0, -0.5, 0.0, 0.5, 3.0])}
    t = optim.clip(1.0)
    u, _ = t.update(g, t.init(g))
    np.testing.assert_array_equal(u["a"], [-1.0, -0.5, 0.0, 0.5, 1.0])


WD, WD_LR = 0.1, 0.05

DECAY_CASES = {
    "add_decayed_weights+sgd": lambda mask=None: optim.chain(
        optim.add_decayed_weights(WD, mask), optim.sgd(WD_LR)
    ),
    "adamw": lambda mask=None: optim.adamw(WD_LR, weight_decay=WD, mask=mask),
    "lion": lambda mask=None: optim.lion(WD_LR, weight_decay=WD, mask=mask),
}


@pytest.mark.parametrize("name", sorted(DECAY_CASES))
def test_weight_decay_with_zero_gradient_shrinks_by_one_minus_lr_wd(name, x64):
    opt = DECAY_CASES[name]()
    params = make_params(jnp.float64)
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = opt.init(params)
    for _ in range(5):
        updates, state = opt.update(zeros, state, params)
        new = optim.apply_updates(params, updates)
        chex.assert_trees_all_close(
            new, jax.tree.map(lambda p: p * (1 - WD_LR * WD), params), rtol=1e-15
        )
        params = new


@pytest.mark.parametrize("name", sorted(DECAY_CASES))
@pytest.mark.parametrize(
    "mask_kind", ["callable", "bool tree", "array tree"]
)
def test_weight_decay_mask_excludes_biases(name, mask_kind, x64):
    params = make_params(jnp.float64)
    mask = {
        "callable": optim.weights_only_mask,
        "bool tree": optim.weights_only_mask(params),
        "array tree": jax.tree.map(jnp.asarray, optim.weights_only_mask(params)),
    }[mask_kind]
    opt = DECAY_CASES[name](mask)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = opt.update(zeros, opt.init(params), params)
    new = optim.apply_updates(params, updates)
    for layer_new, layer_old in zip(new, params):
        np.testing.assert_array_equal(layer_new["b"], layer_old["b"])
        np.testing.assert_allclose(layer_new["w"], layer_old["w"] * (1 - WD_LR * WD), rtol=1e-15)


def test_weights_only_mask():
    params = make_params(jnp.float32)
    assert optim.weights_only_mask(params) == ({"w": True, "b": False}, {"w": True, "b": False})


def test_adamw_decays_every_leaf_without_mask():
    params = make_params(jnp.float32)
    zeros = jax.tree.map(jnp.zeros_like, params)
    opt = optim.adamw(0.1, weight_decay=0.5)
    updates, _ = opt.update(zeros, opt.init(params), params)
    for leaf in jax.tree.leaves(updates):
        assert np.all(np.asarray(leaf) != 0)


# ---------------------------------------------------------------------------------------------
# Traced hyperparameters: no recompilation, vmap over a learning-rate vector, scan
# ---------------------------------------------------------------------------------------------


def count_traces(fn):
    """Wrap ``fn`` so ``wrapped.traces`` counts how often it runs in Python, i.e. how often a
    ``jax.jit`` around it traces (chex.assert_max_traces keys its counter on the source text,
    which collides across parametrized tests)."""

    def wrapped(*args):
        wrapped.traces += 1
        return fn(*args)

    wrapped.traces = 0
    return wrapped


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_no_recompilation_for_a_new_learning_rate(name):
    params = make_params(jnp.float32)
    _, grads = make_grads(params, n_steps=1)
    g = jax.tree.map(lambda x: x[0], grads)
    state = optim.get(name, learning_rate=0.1).init(params)

    @count_traces
    def step_fn(lr, g, state, params):
        return optim.get(name, learning_rate=lr).update(g, state, params)

    step = jax.jit(step_fn)

    u1, s1 = step(jnp.asarray(0.1, jnp.float32), g, state, params)
    u1b, _ = step(jnp.asarray(0.1, jnp.float32), g, state, params)
    u2, s2 = step(jnp.asarray(0.2, jnp.float32), g, state, params)
    chex.assert_trees_all_equal(u1, u1b)
    # u is linear in lr for a constant learning rate (and weight decay is scaled by lr too).
    chex.assert_trees_all_close(u2, jax.tree.map(lambda x: 2 * x, u1), rtol=1e-6)
    chex.assert_trees_all_equal_structs(s1, s2)
    assert step_fn.traces == 1


@pytest.mark.parametrize("name", ["adamw", "lion"])
def test_no_recompilation_for_a_new_weight_decay(name):
    params = make_params(jnp.float32)
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = optim.get(name, learning_rate=0.1, weight_decay=0.1).init(params)

    @count_traces
    def step_fn(wd, state, params):
        return optim.get(name, learning_rate=0.1, weight_decay=wd).update(zeros, state, params)

    step = jax.jit(step_fn)
    u1, _ = step(jnp.asarray(0.1, jnp.float32), state, params)
    u2, _ = step(jnp.asarray(0.3, jnp.float32), state, params)
    chex.assert_trees_all_close(u2, jax.tree.map(lambda x: 3 * x, u1), rtol=1e-6)
    assert step_fn.traces == 1


def test_no_recompilation_with_a_traced_schedule_value():
    params = make_params(jnp.float32)
    g = jax.tree.map(jnp.ones_like, params)

    @count_traces
    def step_fn(peak, state, params):
        sched = schedules.warmup_cosine_decay_schedule(0.0, peak, 2, 10)
        return optim.adam(sched).update(g, state, params)

    step = jax.jit(step_fn)
    state = optim.adam(schedules.constant_schedule(1.0)).init(params)
    for peak in (0.1, 0.2, 0.3):
        step(jnp.asarray(peak, jnp.float32), state, params)
    assert step_fn.traces == 1


def test_jitted_update_called_twice_compiles_once():
    opt = optim.adam(1e-3)
    params = make_params(jnp.float32)
    g = jax.tree.map(jnp.ones_like, params)
    chex.clear_trace_counter()
    update = jax.jit(chex.assert_max_traces(opt.update, n=1))
    state = opt.init(params)
    for _ in range(3):
        u, state = update(g, state, params)
        params = optim.apply_updates(params, u)
    assert int(state[0].count) == 3


def test_vmap_over_a_batch_of_states():
    # e.g. one state per seed: vmap init and update over a leading axis of params
    opt = optim.adam(0.1)
    params = make_params(jnp.float32)
    batch = jax.tree.map(lambda p: jnp.stack([p, 2 * p, 3 * p]), params)
    states = jax.jit(jax.vmap(opt.init))(batch)
    assert states[0].count.shape == (3,)
    u, states = jax.jit(jax.vmap(opt.update))(batch, states, batch)
    assert states[0].count.dtype == jnp.int32
    chex.assert_trees_all_equal_shapes(u, batch)
    # the middle row equals an unbatched step on its own params
    single = jax.tree.map(lambda p: 2 * p, params)
    u1, _ = opt.update(single, opt.init(single), single)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], u), u1, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------------------------

DTYPE_OPTIMIZERS = {
    **{name: (lambda name=name: optim.get(name, learning_rate=0.1)) for name in optim.OPTIMIZERS},
    "rmsprop-centered-momentum": lambda: optim.rmsprop(0.1, centered=True, momentum=0.5),
    "adam-schedule": lambda: optim.adam(schedules.warmup_cosine_decay_schedule(0.0, 0.1, 2, 10)),
    "clip-chain": lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.clip(0.1)),
    "adamw-masked": lambda: optim.adamw(0.1, weight_decay=0.1, mask=optim.weights_only_mask),
    "injected-adam": lambda: optim.inject_hyperparams(optim.adam)(learning_rate=0.1),
}


def _assert_float_leaves(tree, dtype):
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(leaf.dtype, jnp.integer):
            assert leaf.dtype == jnp.int32, leaf.dtype
        elif leaf.ndim > 0:  # scalar hyperparameters of injected optimizers are default float
            assert leaf.dtype == dtype, (leaf.dtype, dtype)


@pytest.mark.parametrize("use_x64", [False, True], ids=["x32", "x64"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("name", sorted(DTYPE_OPTIMIZERS))
def test_dtype_preserved(name, dtype, use_x64):
    # Dtypes are decided at trace time, so jax.eval_shape (trace, no compile) checks exactly
    # what jit would produce, for two steps and through apply_updates.
    with jax.enable_x64(use_x64):
        opt = DTYPE_OPTIMIZERS[name]()
        params = make_params(dtype)
        g = jax.tree.map(lambda p: (p * 0.3).astype(dtype), params)

        def two_steps(params):
            state = opt.init(params)
            _assert_float_leaves(state, dtype)
            for _ in range(2):
                updates, state = opt.update(g, state, params)
                _assert_float_leaves(updates, dtype)
                _assert_float_leaves(state, dtype)
                chex.assert_trees_all_equal_shapes(updates, params)
                params = optim.apply_updates(params, updates)
                _assert_float_leaves(params, dtype)
            return params, state

        out_params, out_state = jax.eval_shape(two_steps, params)
        _assert_float_leaves(out_params, dtype)
        _assert_float_leaves(out_state, dtype)
        for leaf in jax.tree.leaves(out_params):
            assert not leaf.weak_type


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_bfloat16_runs_stay_finite_and_track_float32(name):
    # In bfloat16, b2 = 0.999 rounds to 1: coefficients like 1 - b2 and 1 - b2**t must be formed
    # in float32 first, or Adam divides 0 by 0.
    # Lion's sign(.) flips where its argument rounds across 0; keep its steps smaller.
    kwargs = dict(learning_rate=0.01 if name == "lion" else 0.05)
    p32 = make_params(jnp.float32)
    _, g32 = make_grads(p32, n_steps=20)
    final32 = run_optimizer(optim.get(name, **kwargs), p32, g32)[-1]
    p16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), p32)
    g16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), g32)
    final16 = run_optimizer(optim.get(name, **kwargs), p16, g16)[-1]
    assert np.all(np.isfinite(final16))
    np.testing.assert_allclose(final16, final32, atol=0.1)


def test_dtype_preserved_when_run():
    opt = optim.adamw(0.1, weight_decay=0.1)
    params = make_params(jnp.float32)
    g = jax.tree.map(jnp.ones_like, params)
    updates, state = jax.jit(opt.update)(g, opt.init(params), params)
    _assert_float_leaves(updates, jnp.float32)
    _assert_float_leaves(state, jnp.float32)
    _assert_float_leaves(optim.apply_updates(params, updates), jnp.float32)


# ---------------------------------------------------------------------------------------------
# Schedules inside optimizers, inject_hyperparams
# ---------------------------------------------------------------------------------------------


def test_schedule_learning_rate_uses_count_and_int32_state(x64):
    sched = schedules.piecewise_constant_schedule([2, 4], [1.0, 0.5, 0.25])
    opt = optim.sgd(sched)
    params = {"x": jnp.zeros(3)}
    g = {"x": jnp.ones(3)}
    state = opt.init(params)
    assert state[0].count.dtype == jnp.int32
    seen = []
    for _ in range(6):
        u, state = opt.update(g, state, params)
        seen.append(float(u["x"][0]))
    assert seen == [-1.0, -1.0, -0.5, -0.5, -0.25, -0.25]
    assert int(state[0].count) == 6


def test_inject_hyperparams_matches_plain_and_can_be_changed():
    params = make_params(jnp.float32)
    _, grads = make_grads(params, n_steps=3)
    plain = optim.adamw(0.05, weight_decay=0.1)
    injected = optim.inject_hyperparams(optim.adamw)(learning_rate=0.05, weight_decay=0.1)
    ps, is_ = plain.init(params), injected.init(params)
    for i in range(3):
        g = jax.tree.map(lambda x: x[i], grads)
        up, ps = plain.update(g, ps, params)
        ui, is_ = jax.jit(injected.update)(g, is_, params)
        chex.assert_trees_all_close(up, ui, rtol=1e-6)
    assert int(is_.count) == 3
    np.testing.assert_allclose(is_.hyperparams["learning_rate"], 0.05, rtol=1e-7)
    # change the learning rate in the state: the update doubles
    g = jax.tree.map(lambda x: x[0], grads)
    zero_wd = is_._replace(hyperparams={**is_.hyperparams, "weight_decay": jnp.float32(0.0)})
    u1, _ = injected.update(g, zero_wd, params)
    doubled = zero_wd._replace(
        hyperparams={**zero_wd.hyperparams, "learning_rate": jnp.float32(0.1)}
    )
    u2, _ = injected.update(g, doubled, params)
    chex.assert_trees_all_close(u2, jax.tree.map(lambda x: 2 * x, u1), rtol=1e-6)


def test_inject_hyperparams_stores_the_schedule_value():
    sched = schedules.linear_schedule(1.0, 0.0, 4)
    opt = optim.inject_hyperparams(optim.sgd)(learning_rate=sched)
    params = {"x": jnp.zeros(2)}
    state = opt.init(params)
    values = []
    for _ in range(3):
        _, state = opt.update({"x": jnp.ones(2)}, state, params)
        values.append(float(state.hyperparams["learning_rate"]))
    assert values == pytest.approx([1.0, 0.75, 0.5])


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

BAD_ARGS = [
    (optim.sgd, dict(learning_rate=0.0), "learning_rate", 0.0),
    (optim.sgd, dict(learning_rate=-0.1), "learning_rate", -0.1),
    (optim.sgd, dict(learning_rate=float("nan")), "learning_rate", float("nan")),
    (optim.sgd, dict(learning_rate=0.1, momentum=1.0), "momentum", 1.0),
    (optim.sgd, dict(learning_rate=0.1, momentum=-0.5), "momentum", -0.5),
    (optim.adam, dict(learning_rate=-1.0), "learning_rate", -1.0),
    (optim.adam, dict(learning_rate=0.1, b1=1.0), "b1", 1.0),
    (optim.adam, dict(learning_rate=0.1, b1=-0.1), "b1", -0.1),
    (optim.adam, dict(learning_rate=0.1, b2=1.5), "b2", 1.5),
    (optim.adam, dict(learning_rate=0.1, eps=0.0), "eps", 0.0),
    (optim.adam, dict(learning_rate=0.1, eps=-1e-8), "eps", -1e-8),
    (optim.adamw, dict(learning_rate=0.1, weight_decay=-1e-4), "weight_decay", -1e-4),
    (optim.nadam, dict(learning_rate=0.1, b2=1.0), "b2", 1.0),
    (optim.adamax, dict(learning_rate=0.1, b1=2.0), "b1", 2.0),
    (optim.lion, dict(learning_rate=0.1, b2=-0.2), "b2", -0.2),
    (optim.lion, dict(learning_rate=0.1, weight_decay=-1.0), "weight_decay", -1.0),
    (optim.adagrad, dict(learning_rate=0.1, eps=0.0), "eps", 0.0),
    (optim.adagrad, dict(learning_rate=0.1, initial_accumulator_value=-1.0),
     "initial_accumulator_value", -1.0),
    (optim.rmsprop, dict(learning_rate=0.1, decay=1.0), "decay", 1.0),
    (optim.rmsprop, dict(learning_rate=0.1, momentum=1.2), "momentum", 1.2),
    (optim.rmsprop, dict(learning_rate=0.1, eps=-1.0), "eps", -1.0),
    (optim.clip_by_global_norm, dict(max_norm=0.0), "max_norm", 0.0),
    (optim.clip, dict(max_delta=-1.0), "max_delta", -1.0),
    (optim.add_decayed_weights, dict(weight_decay=-0.1), "weight_decay", -0.1),
    (optim.adam, dict(learning_rate=np.float32(-0.5)), "learning_rate", np.float32(-0.5)),
]


@pytest.mark.parametrize(
    "factory,kwargs,arg,value", BAD_ARGS, ids=[f"{f.__name__}-{a}={v}" for f, _, a, v in BAD_ARGS]
)
def test_bad_hyperparameter_raises_naming_argument_and_value(factory, kwargs, arg, value):
    with pytest.raises(ValueError, match=rf"{arg}\b.*{re.escape(repr(value))}"):
        factory(**kwargs)


def test_non_scalar_learning_rate_raises():
    with pytest.raises(ValueError, match="learning_rate must be a scalar"):
        optim.adam(np.ones(3))
    with pytest.raises(ValueError, match="learning_rate must be a scalar"):
        optim.adam(jnp.ones(3))


def test_nesterov_without_momentum_raises():
    with pytest.raises(ValueError, match="nesterov"):
        optim.sgd(0.1, nesterov=True)


def test_traced_hyperparameters_are_not_checked():
    # A traced 0 (e.g. one entry of a sweep) can't be checked, and must not raise.
    jax.jit(lambda lr: optim.adam(lr).init({"x": jnp.ones(2)}))(jnp.asarray(0.0))


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_mismatched_grads_and_params_name_both_structures(name):
    params = make_params(jnp.float32)
    grads = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    opt = optim.get(name, learning_rate=0.1)
    state = opt.init(params)
    expected = (
        f"grads={jax.tree.structure(grads)} and params={jax.tree.structure(params)}"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        opt.update(grads, state, params)


def test_apply_updates_with_mismatched_structures_raises():
    params = make_params(jnp.float32)
    with pytest.raises(ValueError, match="updates and params must have the same tree structure"):
        optim.apply_updates(params, params[0])


def test_mask_with_wrong_structure_raises():
    params = make_params(jnp.float32)
    opt = optim.adamw(0.1, mask={"w": True})
    with pytest.raises(ValueError, match="mask and params"):
        opt.update(params, opt.init(params), params)


def test_add_decayed_weights_needs_params():
    t = optim.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match="needs params"):
        t.update({"x": jnp.ones(2)}, t.init(None))


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_registry_names():
    assert set(optim.OPTIMIZERS) == {
        "sgd", "momentum", "nesterov", "adagrad", "rmsprop",
        "adam", "adamw", "nadam", "adamax", "lion",
    }


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'.*sgd.*lion"):
        optim.get("adamm", learning_rate=0.1)


def test_get_unknown_argument_raises_value_error():
    with pytest.raises(ValueError, match="optimizer 'adam'.*accepted arguments: learning_rate"):
        optim.get("adam", learning_rate=0.1, momentum=0.9)


def test_get_momentum_defaults():
    params = {"x": jnp.zeros(1)}
    g = {"x": jnp.ones(1)}
    for name, expected in [("momentum", [-1.0, -1.9]), ("nesterov", [-1.9, -2.71])]:
        opt = optim.get(name, learning_rate=1.0)
        state = opt.init(params)
        got = []
        for _ in range(2):
            u, state = opt.update(g, state, params)
            got.append(float(u["x"][0]))
        assert got == pytest.approx(expected)
