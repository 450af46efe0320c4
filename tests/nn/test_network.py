"""The MLP: parameter pytree, static description, initializers, input validation, dropout,
L1/L2, and both gradient modes under ``jit`` and ``vmap``.

Computations are jitted (one program per case), and test-side arithmetic, slicing and stacking
use NumPy: eager jax.numpy compiles every primitive separately for each new shape, which costs more
on CPU than one compiled program.
"""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from grad_helpers import jit, np_params  # noqa: E402
from fnn.nn import initializers as inits
from fnn.nn import layers

MODES = ("manual", "autodiff")


jit_loss_and_grad = jit(fnn.loss_and_grad, static_argnums=(0, 1),
                            static_argnames=("mode",))


# --- params pytree and the static description ----------------------------------------------------

@pytest.mark.parametrize("sizes", [(3, 1), (4, 8, 3), (2, 5, 7, 1), (6, 4, 4, 4, 2)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_params_structure_and_shapes(x64, sizes, dtype):
    net = fnn.MLP(sizes=sizes, output="softmax" if sizes[-1] > 1 else "sigmoid", dtype=dtype)
    params = jax.eval_shape(net.init, jax.random.key(0))     # structure only: nothing compiled
    assert isinstance(params, tuple) and len(params) == len(sizes) - 1 == net.num_layers
    for layer, (fan_in, fan_out) in zip(params, zip(sizes[:-1], sizes[1:])):
        assert isinstance(layer, dict) and set(layer) == {"w", "b"}
        assert layer["w"].shape == (fan_in, fan_out) and layer["b"].shape == (fan_out,)
        assert layer["w"].dtype == layer["b"].dtype == jnp.dtype(dtype)
    assert sum(x.size for x in jax.tree.leaves(params)) == net.num_params()
    net.check_params(params)


def test_init_values_biases_zero_and_keys_split(x64):
    net = fnn.MLP(sizes=(4, 6, 6, 6, 3), activation="tanh", output="softmax", dtype="float64")
    params = net.init(jax.random.key(0))
    chex.assert_trees_all_equal_shapes_and_dtypes(params, jax.eval_shape(net.init, jax.random.key(0)))
    for layer in params:
        chex.assert_trees_all_equal(layer["b"], np.zeros(layer["b"].shape))
    assert not np.allclose(params[1]["w"], params[2]["w"])        # one key per layer
    chex.assert_trees_all_equal(params, net.init(jax.random.key(0)))
    assert not np.allclose(params[0]["w"], net.init(jax.random.key(1))[0]["w"])


@settings(max_examples=25)
@given(sizes=st.lists(st.integers(1, 16), min_size=2, max_size=5).map(tuple))
def test_params_structure_drawn(sizes):
    net = fnn.MLP(sizes=sizes, activation="tanh", output="identity")
    # eval_shape: the structure without running the initializers
    params = jax.eval_shape(net.init, jax.random.key(0))
    expected = tuple({"b": jax.ShapeDtypeStruct((o,), jnp.float32),
                      "w": jax.ShapeDtypeStruct((i, o), jnp.float32)}
                     for i, o in zip(sizes[:-1], sizes[1:]))
    assert jax.tree.structure(params) == jax.tree.structure(expected)
    chex.assert_trees_all_equal_shapes_and_dtypes(params, expected)


def test_description_is_hashable_and_a_jit_static_argument():
    a = fnn.MLP(sizes=(3, 4, 2), activation="relu", output="softmax")
    b = fnn.MLP(sizes=[3, 4, 2], activation="relu", output="softmax")   # list normalized
    c = fnn.MLP(sizes=(3, 4, 2), activation="tanh", output="softmax")
    assert a == b and hash(a) == hash(b) and a != c
    assert a.sizes == (3, 4, 2) and isinstance(a.sizes, tuple)
    assert len({a, b, c}) == 2
    traces = []

    @functools.partial(jit, static_argnums=0)
    def apply(net, params, x):
        traces.append(net)
        return net.apply(params, x)

    params = np_params(a)
    x = jnp.ones((2, 3))
    out_a = apply(a, params, x)
    out_b = apply(b, params, x)        # equal description: cache hit, no retrace
    assert len(traces) == 1
    apply(c, params, x)                # different description: retrace
    assert len(traces) == 2
    chex.assert_trees_all_close(out_a, out_b)
    chex.assert_trees_all_close(out_a, a.apply(params, x), rtol=1e-6)


@pytest.mark.parametrize("alias,name", [("linear", "identity"), ("logistic", "sigmoid")])
def test_description_canonicalizes_aliases(alias, name):
    net = fnn.MLP(sizes=(2, 3, 1), activation=alias, output=alias)
    assert net.activations == (name, name)
    assert net == fnn.MLP(sizes=(2, 3, 1), activation=name, output=name)


def test_replace_and_per_layer_activations():
    net = fnn.MLP(sizes=(2, 3, 4, 1), activation=("relu", "tanh"), output="sigmoid")
    assert net.activations == ("relu", "tanh", "sigmoid")
    wide = net.replace(dtype="float64", drop_rate=0.25)
    assert wide.dtype == "float64" and wide.drop_rate == 0.25 and wide.activations == net.activations


def test_apply_matches_numpy_forward(x64):
    net = fnn.MLP(sizes=(3, 4, 2), activation="tanh", output="softmax", dtype="float64")
    params = np_params(net, 1)
    x = np.random.default_rng(1).normal(size=(5, 3))
    p = jax.tree.map(np.asarray, params)
    z2 = np.tanh(x @ p[0]["w"] + p[0]["b"]) @ p[1]["w"] + p[1]["b"]
    want = np.exp(z2) / np.exp(z2).sum(axis=1, keepdims=True)
    y_hat, caches = net.forward(params, x)
    chex.assert_trees_all_close(y_hat, want, rtol=1e-13)
    chex.assert_trees_all_close(caches[-1].z, z2, rtol=1e-13)
    chex.assert_trees_all_close(net.logits(params, x), z2, rtol=1e-13)


# --- initializers --------------------------------------------------------------------------------

FAN_IN, FAN_OUT = 400, 300
INIT_STD = {
    "glorot_uniform": math.sqrt(2.0 / (FAN_IN + FAN_OUT)),   # r/√3 with r = √(6/(in+out))
    "glorot_normal": math.sqrt(2.0 / (FAN_IN + FAN_OUT)),
    "he_uniform": math.sqrt(2.0 / FAN_IN),                   # r/√3 with r = √(6/in)
    "he_normal": math.sqrt(2.0 / FAN_IN),
    "lecun_normal": math.sqrt(1.0 / FAN_IN),
}
UNIFORM_BOUND = {"glorot_uniform": math.sqrt(6.0 / (FAN_IN + FAN_OUT)),
                 "he_uniform": math.sqrt(6.0 / FAN_IN)}


@pytest.mark.parametrize("name", sorted(INIT_STD))
def test_initializer_empirical_std_matches_formula(name):
    w = np.asarray(inits.get(name)(jax.random.key(7), (FAN_IN, FAN_OUT)))
    assert w.shape == (FAN_IN, FAN_OUT) and w.dtype == np.float32
    std = INIT_STD[name]
    # 120k samples: the sample std is within ~0.5% of σ (4 standard errors ≈ 4·σ/√(2n) = 0.8%)
    np.testing.assert_allclose(w.std(), std, rtol=0.01)
    assert abs(w.mean()) < 4 * std / math.sqrt(w.size)
    if name in UNIFORM_BOUND:
        r = UNIFORM_BOUND[name]
        assert np.abs(w).max() <= r and np.abs(w).max() > 0.99 * r


@pytest.mark.parametrize("alias,name", [("xavier_uniform", "glorot_uniform"),
                                        ("kaiming_normal", "he_normal")])
def test_initializer_aliases(alias, name):
    a = inits.get(alias)(jax.random.key(0), (5, 4))
    b = inits.get(name)(jax.random.key(0), (5, 4))
    chex.assert_trees_all_equal(a, b)


def test_zeros_initializer_and_bad_shape():
    chex.assert_trees_all_equal(inits.zeros(jax.random.key(0), (2, 3)), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"initializer: shape \(3,\); expected a 2-d"):
        inits.he_normal(jax.random.key(0), (3,))


@pytest.mark.parametrize("activation,expected", [
    ("relu", "he_normal"), ("leaky_relu", "he_normal"), ("tanh", "glorot_uniform"),
    ("sigmoid", "glorot_uniform"), ("identity", "glorot_uniform"), ("linear", "glorot_uniform"),
])
def test_default_initializer_per_activation(activation, expected):
    net = fnn.MLP(sizes=(FAN_IN, FAN_OUT, 2), activation=activation, output="softmax")
    assert net.layers[0].init_name == expected
    assert net.layers[1].init_name == "glorot_uniform"                # softmax output: Glorot
    w = np.asarray(net.init(jax.random.key(3))[0]["w"])
    np.testing.assert_allclose(w.std(), INIT_STD[expected], rtol=0.01)


def test_explicit_initializer_overrides_defaults():
    net = fnn.MLP(sizes=(3, 4, 2), activation="relu", output="softmax", initializer="xavier_normal")
    assert [l.init_name for l in net.layers] == ["glorot_normal", "glorot_normal"]


@pytest.mark.parametrize("bad", ["uniform", "He", "orthogonal"])
def test_unknown_initializer_lists_the_valid_names(bad):
    for call in (lambda: inits.get(bad), lambda: fnn.MLP(sizes=(2, 1), initializer=bad)):
        with pytest.raises(ValueError, match=f"unknown initializer {bad!r}") as info:
            call()
        for valid in (*inits.INITIALIZERS, *inits.ALIASES):
            assert valid in str(info.value)


# --- bad input -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    net = fnn.MLP(sizes=(3, 5, 2), activation="relu", output="softmax")
    return net, np_params(net)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(4, 2), (4, 4), (1, 30)])
def test_input_width_mismatch_names_layer_and_shapes(small, mode, shape):
    net, params = small
    x = jnp.ones(shape)
    pattern = rf"x: shape \({shape[0]}, {shape[1]}\); expected a batch of shape \(batch, 3\)"
    with pytest.raises(ValueError, match=pattern):
        fnn.loss_and_grad(net, "cross_entropy", params, x, jnp.zeros(shape[0], jnp.int32), mode=mode)
    with pytest.raises(ValueError, match=pattern):
        net.apply(params, x)


def test_input_rank_mismatch(small):
    net, params = small
    with pytest.raises(ValueError, match=r"x: shape \(2, 3, 1\); expected a batch of shape \(batch, 3\)"):
        net.apply(params, jnp.ones((2, 3, 1)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("mode", MODES)
def test_non_finite_inputs(small, bad, mode):
    net, params = small
    x = np.ones((4, 3), np.float32)
    x[2, 1] = bad
    with pytest.raises(ValueError, match=r"x: 1 non-finite value\(s\) \(NaN/inf\), first at index \(2, 1\)"):
        fnn.loss_and_grad(net, "cross_entropy", params, x, np.zeros(4, np.int32), mode=mode)


@pytest.mark.parametrize("y_shape", [(3,), (5,), (5, 2), ()])
def test_target_batch_mismatch(small, y_shape):
    net, params = small
    y = jnp.zeros(y_shape, jnp.int32)
    with pytest.raises(ValueError, match=r"y: shape .* does not match x of shape \(4, 3\); expected 4 targets"):
        fnn.loss_and_grad(net, "cross_entropy", params, jnp.ones((4, 3)), y)


@pytest.mark.parametrize("sizes,match", [
    ((3,), r"sizes: \(3,\); expected at least \(inputs, outputs\)"),
    ((), r"sizes: \(\); expected at least"),
    (3, r"sizes: 3; expected a sequence of layer widths"),
    ("34", r"sizes\[0\]: '3'; expected a positive integer"),
    ((3, 0, 2), r"sizes\[1\]: 0; expected a positive integer"),
    ((3, -4, 2), r"sizes\[1\]: -4; expected a positive integer"),
    ((3, 2.5), r"sizes\[1\]: 2.5; expected a positive integer"),
    ((True, 2), r"sizes\[0\]: True; expected a positive integer"),
])
def test_bad_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        fnn.MLP(sizes=sizes)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", True, None, float("nan")])
def test_bad_drop_rate(rate):
    with pytest.raises(ValueError, match=r"drop_rate: .*; expected a probability in \[0, 1\)"):
        fnn.MLP(sizes=(3, 4, 2), drop_rate=rate)


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "swish"}, r"unknown activation 'swish'; expected one of: .*identity.*relu"),
    ({"output": "softplus"}, r"unknown activation 'softplus'; expected one of: .*softmax"),
    ({"activation": ("relu",)}, r"activation: 1 names for 2 hidden layers"),
    ({"activation": "softmax"}, r"activation: 'softmax' is only supported as the output"),
    ({"dtype": "int32"}, r"dtype: 'int32'; expected one of: float32, float64"),
])
def test_bad_description(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fnn.MLP(sizes=(3, 4, 4, 2), **kwargs)


def test_bad_params_name_layer_and_shapes(small):
    net, params = small
    broken = (params[0], {"w": jnp.ones((4, 2)), "b": params[1]["b"]})
    with pytest.raises(ValueError, match=r"params\[1\]\['w'\]: shape \(4, 2\); expected \(5, 2\) for layers\[1\] \(Dense\)"):
        fnn.loss_and_grad(net, "cross_entropy", broken, jnp.ones((2, 3)), jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match=r"params: 1 entry; expected a tuple of 2 entries"):
        fnn.loss_and_grad(net, "cross_entropy", params[:1], jnp.ones((2, 3)), jnp.zeros(2, jnp.int32))


def test_bad_mode_and_loss(small):
    net, params = small
    x, y = jnp.ones((2, 3)), jnp.zeros(2, jnp.int32)
    with pytest.raises(ValueError, match=r"mode: 'numeric'; expected one of: manual, autodiff"):
        fnn.loss_and_grad(net, "cross_entropy", params, x, y, mode="numeric")
    with pytest.raises(ValueError, match=r"unknown loss 'nll'; expected one of: .*cross_entropy.*mse"):
        fnn.loss_and_grad(net, "nll", params, x, y)


# --- dropout -------------------------------------------------------------------------------------

@pytest.mark.parametrize("drop_rate", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dropout_mask_statistics(x64, drop_rate, dtype):
    shape = (400, 250)
    mask = np.asarray(layers.dropout_mask(jax.random.key(11), shape, drop_rate, dtype))
    assert mask.dtype == dtype and mask.shape == shape
    n = mask.size
    dropped = float(np.mean(mask == 0))
    assert abs(dropped - drop_rate) < 5 * math.sqrt(drop_rate * (1 - drop_rate) / n)
    one = np.asarray(1, dtype)
    scale = one / (one - np.asarray(drop_rate, dtype))               # 1/(1 − p) in that dtype
    kept = mask[mask != 0]
    np.testing.assert_allclose(kept, scale, rtol=4 * np.finfo(dtype).eps)
    assert abs(mask.mean() - 1.0) < 5 * math.sqrt(drop_rate / (1 - drop_rate) / n)  # E[M] = 1


def test_dropout_in_the_network():
    """Masks sit on the inputs of layers 2..L (never on X), differ per layer, fraction ≈ p."""
    p = 0.3
    net = fnn.MLP(sizes=(8, 300, 300, 300, 2), activation="relu", output="softmax", drop_rate=p)
    # positive weights keep every activation positive, so a == 0 only where the mask dropped it
    params = net.params_from_dense(
        {"w": jnp.full((m, n), 0.01, jnp.float32), "b": jnp.zeros((n,), jnp.float32)}
        for m, n in zip(net.sizes[:-1], net.sizes[1:]))
    x = jnp.ones((64, 8))
    _, caches = jit(lambda prm, k: net.forward(prm, x, key=k))(params, jax.random.key(5))
    # layers: Dense, Dropout, Dense, Dropout, Dense, Dropout, Dense; a Dropout's cache is its mask
    assert [type(layer).__name__ for layer in net.layers[:2]] == ["Dense", "Dropout"]
    masks = [np.asarray(caches[i]) for i in (1, 3, 5)]
    for m in masks:
        assert m.shape == (64, 300)
        assert abs(np.mean(m == 0) - p) < 5 * math.sqrt(p * (1 - p) / m.size)
        np.testing.assert_allclose(m[m != 0], np.float32(1) / np.float32(0.7), rtol=1e-6)
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    np.testing.assert_array_equal(np.asarray(caches[2].x), np.asarray(caches[0].a) * masks[0])


@pytest.fixture(scope="module")
def dropout_net():
    net = fnn.MLP(sizes=(4, 16, 16, 3), activation="tanh", output="softmax", drop_rate=0.5,
                  dtype="float64")
    x = np.random.default_rng(2).normal(size=(1, 4))
    return net, np_params(net, 2), x, np.asarray([1])


def test_same_dropout_key_same_mask_in_both_modes(x64, dropout_net):
    """Batch of one: a dropped unit i of layer l's input zeroes row i of ∂W(l) exactly, in both
    modes, so both modes must have drawn the same mask from the key."""
    net, params, x, y = dropout_net
    key = jax.random.key(42)
    _, caches = jit(lambda k: net.forward(params, x, key=k))(key)
    manual = jit_loss_and_grad(net, "cross_entropy", params, x, y, mode="manual", key=key)
    auto = jit_loss_and_grad(net, "cross_entropy", params, x, y, mode="autodiff", key=key)
    chex.assert_trees_all_close(manual, auto, rtol=1e-12, atol=1e-300)
    for l in (2, 4):  # the dense layers after a Dropout (whose cache, caches[l - 1], is its mask)
        dropped = np.asarray(caches[l - 1])[0] == 0
        assert dropped.any() and (~dropped).any()
        for grads in (manual[1], auto[1]):
            w_grad = np.asarray(grads[l]["w"])
            assert np.all(w_grad[dropped] == 0.0)
            assert np.all(np.any(w_grad[~dropped] != 0.0, axis=1))
    # the same key again: the same masks and loss; another key: another loss
    again = jit_loss_and_grad(net, "cross_entropy", params, x, y, mode="manual", key=key)
    chex.assert_trees_all_equal(manual, again)
    other = jit_loss_and_grad(net, "cross_entropy", params, x, y, mode="manual",
                              key=jax.random.key(43))
    assert float(other[0]) != float(manual[0])


@pytest.mark.parametrize("mode", MODES)
def test_evaluation_applies_no_dropout(x64, dropout_net, mode):
    net, params, x, y = dropout_net
    no_dropout = net.replace(drop_rate=0.0)
    plain = no_dropout.params_from_dense(net.dense_params(params))
    _, caches = net.forward(params, x)                        # key=None: evaluation
    assert caches[1] is None and caches[3] is None            # the Dropout layers drew no mask
    chex.assert_trees_all_equal(net.apply(params, x), no_dropout.apply(plain, x))
    chex.assert_trees_all_equal(
        net.dense_params(jit_loss_and_grad(net, "cross_entropy", params, x, y, mode=mode)[1]),
        jit_loss_and_grad(no_dropout, "cross_entropy", plain, x, y, mode=mode)[1])
    # a key with drop_rate 0 (the description's, or an override) is also no dropout
    key = jax.random.key(0)
    chex.assert_trees_all_close(no_dropout.apply(plain, x, key=key), net.apply(params, x),
                                rtol=0, atol=0)
    chex.assert_trees_all_close(net.apply(params, x, key=key, drop_rate=0.0), net.apply(params, x),
                                rtol=0, atol=0)


def test_traced_drop_rate_override_under_jit(x64, dropout_net):
    net, params, x, y = dropout_net
    key = jax.random.key(9)

    @jit
    def both(rate):
        m = fnn.loss_and_grad(net, "ce", params, x, y, mode="manual", key=key, drop_rate=rate)
        a = fnn.loss_and_grad(net, "ce", params, x, y, mode="autodiff", key=key, drop_rate=rate)
        return m, a

    for rate in (0.0, 0.25, 0.5):
        m, a = both(jnp.asarray(rate))
        chex.assert_trees_all_close(m, a, rtol=1e-12, atol=1e-300)
    m0, _ = both(jnp.asarray(0.0))
    chex.assert_trees_all_close(m0, jit_loss_and_grad(net, "ce", params, x, y, mode="manual"),
                                rtol=1e-14)


# --- L1 / L2 -------------------------------------------------------------------------------------

PENALTY_NET = fnn.MLP(sizes=(3, 5, 2), activation="tanh", output="identity", dtype="float64")


@functools.partial(jit, static_argnums=0)
def _with_and_without_penalty(mode, params, x, y, l1, l2):
    base = fnn.loss_and_grad(PENALTY_NET, "mse", params, x, y, mode=mode)   # Python 0.0: skipped
    return base, fnn.loss_and_grad(PENALTY_NET, "mse", params, x, y, mode=mode, l1=l1, l2=l2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("l1,l2", [(0.1, 0.0), (0.0, 0.1), (0.03, 0.2)])
@pytest.mark.parametrize("initializer", ["he_normal", "zeros"])
def test_penalties_apply_to_weights_only(x64, mode, l1, l2, initializer):
    rng = np.random.default_rng(4)
    init = (lambda shape: rng.normal(size=shape)) if initializer != "zeros" else np.zeros
    params = tuple({"w": init((m, n)), "b": init((n,))} for m, n in [(3, 5), (5, 2)])
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    (base_loss, base), (loss, grads) = _with_and_without_penalty(
        mode, params, x, y, np.float64(l1), np.float64(l2))
    penalty = sum(l1 * np.abs(p["w"]).sum() + l2 * np.square(p["w"]).sum() for p in params)
    np.testing.assert_allclose(float(loss), float(base_loss) + float(penalty), rtol=1e-13)
    for g, g0, p in zip(grads, base, params):
        chex.assert_trees_all_equal(g["b"], g0["b"])                 # biases: untouched
        # weights: + λ₁ sign(W) + 2 λ₂ W   (sign(0) = 0 for the zero initializer)
        chex.assert_trees_all_close(g["w"], g0["w"] + l1 * np.sign(p["w"]) + 2 * l2 * p["w"],
                                    rtol=1e-12, atol=1e-15)


# --- jit and vmap --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def problem():
    net = fnn.MLP(sizes=(4, 6, 5, 3), activation=("relu", "tanh"), output="softmax",
                  dtype="float64")
    rng = np.random.default_rng(8)
    return net, np_params(net, 8), rng.normal(size=(5, 4)), rng.integers(0, 3, size=5)


def test_jit_matches_eager(x64, problem):
    """The eager path too (it is what a notebook user calls); one hidden layer keeps it cheap."""
    _, _, x, y = problem
    net = fnn.MLP(sizes=(4, 5, 3), activation="leaky_relu", output="softmax", dtype="float64")
    params = np_params(net, 8)
    for mode in MODES:
        eager = fnn.loss_and_grad(net, "cross_entropy", params, x, y, mode=mode, l2=0.01)
        jitted = jax.jit(lambda p, x_, y_: fnn.loss_and_grad(net, "cross_entropy", p, x_, y_,
                                                             mode=mode, l2=0.01))(params, x, y)
        chex.assert_trees_all_close(jitted, eager, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("mode", MODES)
def test_vmap_over_seeds(x64, problem, mode):
    net, _, x, y = problem
    keys = jax.random.split(jax.random.key(0), 4)
    stacked = jit(jax.vmap(net.init))(keys)
    chex.assert_tree_shape_prefix(stacked, (4,))
    f = functools.partial(fnn.loss_and_grad, net, "cross_entropy", x=x, y=y, mode=mode)
    batched = jit(jax.vmap(lambda p: f(p)))(stacked)
    one = jit(lambda p: f(p))
    stacked_np = jax.tree.map(np.asarray, stacked)
    looped = [one(jax.tree.map(lambda a, i=i: a[i], stacked_np)) for i in range(4)]
    chex.assert_trees_all_close(batched, jax.tree.map(lambda *a: np.stack(a), *looped),
                                rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("targets", ["labels", "one_hot"])
def test_vmap_over_single_examples_gives_per_example_grads(x64, problem, mode, targets):
    net, params, x, labels = problem
    y = labels if targets == "labels" else np.eye(3)[labels]
    f = jit(jax.vmap(lambda xi, yi: fnn.loss_and_grad(net, "ce", params, xi, yi, mode=mode)))
    losses, grads = f(x, y)                                   # xi: (features,), yi: () or (K,)
    chex.assert_shape(losses, (5,))
    one = jit(lambda xi, yi: fnn.loss_and_grad(net, "ce", params, xi, yi, mode=mode))
    looped = [one(x[i:i + 1], y[i:i + 1]) for i in range(5)]
    # batched and unbatched matmuls may sum in different orders: rounding-level atol
    chex.assert_trees_all_close((losses, grads),
                                jax.tree.map(lambda *a: np.stack(a), *looped),
                                rtol=1e-12, atol=1e-15)
    # the batch loss is a mean over examples, so its gradient is the mean of per-example ones
    batch = jit_loss_and_grad(net, "ce", params, x, y, mode=mode)
    chex.assert_trees_all_close(jax.tree.map(lambda g: np.mean(g, 0), (losses, grads)), batch,
                                rtol=1e-12, atol=1e-15)
