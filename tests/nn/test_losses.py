"""Losses: values against NumPy, hand-written output gradients against ``jax.grad``, numerical
stability at extreme logits, invalid loss/output pairings and target validation."""

from __future__ import annotations

import functools
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from grad_helpers import jit, np_params  # noqa: E402
from fnn.nn import activations as acts
from fnn.nn import losses

N, K = 5, 4



# Eager loss_and_grad compiles every primitive separately for each new shape; one jitted program
# per case is several times cheaper. (Validation errors are tested eagerly, they come first.)
jit_loss_and_grad = jit(fnn.loss_and_grad, static_argnums=(0, 1), static_argnames=("mode",))


@functools.partial(jit, static_argnums=(0, 1))
def delta_and_grad(name, output, z, y):
    """(value, hand-written δ(L), jax.grad of the value w.r.t. the logits z)."""
    loss, act = losses.get(name), acts.get(output)
    value = loss.value(z, act.fn(z), y)
    delta = loss.output_delta(act, z, act.fn(z), y)
    return value, delta, jax.grad(lambda z_: loss.value(z_, act.fn(z_), y))(z)


def _targets(name, rng, n=N, k=K):
    if name == "mse":
        return rng.normal(size=(n, k))
    if name == "binary_cross_entropy":
        return rng.integers(0, 2, size=(n, k)).astype(np.float64)
    return np.eye(k)[rng.integers(0, k, size=n)]


def _numpy_loss(name, z, y):
    if name == "mse":
        return np.sum((z - y) ** 2) / z.shape[0]            # identity output: ŷ = z
    if name == "binary_cross_entropy":
        p = 1.0 / (1.0 + np.exp(-z))
        return -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)) / z.shape[0]
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(y * logp) / z.shape[0]


OUTPUT_FOR = {"mse": "identity", "binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}


@pytest.mark.parametrize("name", ["mse", "binary_cross_entropy", "cross_entropy"])
def test_value_matches_numpy(x64, name):
    rng = np.random.default_rng(0)
    z, y = rng.normal(scale=2.0, size=(N, K)), _targets(name, rng)
    got, _, _ = delta_and_grad(name, OUTPUT_FOR[name], jnp.asarray(z), jnp.asarray(y))
    np.testing.assert_allclose(float(got), _numpy_loss(name, z, y), rtol=1e-13)


# z includes exact zeros (the tie of max(z, 0) and |z| in the stable BCE form).
Z_WITH_ZEROS = np.array([[0.0, -2.5, 1.5, 0.0], [3.0, 0.0, -0.5, 7.0], [-8.0, 0.25, 0.0, -1e-3],
                         [0.0, 0.0, 0.0, 0.0], [12.0, -12.0, 2.0, -2.0]])


@pytest.mark.parametrize("name,output", [
    ("binary_cross_entropy", "sigmoid"),
    ("cross_entropy", "softmax"),
    ("mse", "identity"), ("mse", "sigmoid"), ("mse", "tanh"), ("mse", "relu"),
    ("mse", "leaky_relu"), ("mse", "softmax"),
])
@pytest.mark.parametrize("targets", ["hard", "soft"])
def test_output_delta_matches_jax_grad(x64, name, output, targets):
    """δ(L) = ∂L/∂Z(L): fused (ŷ − y)/N, or ∇_A L ⊙ g'(Z) / softmax's JVP, vs jax.grad."""
    rng = np.random.default_rng(1)
    if targets == "hard":
        y = _targets(name, rng)
    elif name == "cross_entropy":
        y = rng.dirichlet(np.ones(K), size=N)
    else:
        y = rng.uniform(size=(N, K))
    _, got, want = delta_and_grad(name, output, jnp.asarray(Z_WITH_ZEROS), jnp.asarray(y))
    chex.assert_trees_all_close(got, want, rtol=1e-12, atol=1e-16)


def test_mse_grad_a_is_exact_with_its_factor_two(x64):
    rng = np.random.default_rng(2)
    a, y = jnp.asarray(rng.normal(size=(N, K))), jnp.asarray(rng.normal(size=(N, K)))
    want = jax.grad(lambda a_: losses.mse_value(a_, a_, y))(a)
    chex.assert_trees_all_close(losses.mse_grad_a(a, y), want, rtol=1e-14)
    chex.assert_trees_all_close(losses.mse_grad_a(a, y), 2 * (a - y) / N, rtol=1e-15)


def test_bce_gradient_at_zero_logit_is_sigmoid_minus_target(x64):
    """Regression: the stable form once had jax.grad ℓ'(0) = −y instead of σ(0) − y = ½ − y."""
    z = jnp.zeros((2, 1))
    y = jnp.asarray([[0.0], [1.0]])
    _, delta, g = _bce_all(z, y)
    want = jnp.asarray([[0.25], [-0.25]])                                      # (½ − y)/N, N=2
    chex.assert_trees_all_close((g, delta), (want, want), rtol=1e-15)


@settings(max_examples=40)
@given(
    name=st.sampled_from(["mse", "binary_cross_entropy", "cross_entropy"]),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.1, 1.0, 10.0, 50.0]),
)
def test_output_delta_matches_jax_grad_drawn(name, seed, scale):
    with jax.enable_x64(True):
        rng = np.random.default_rng(seed)
        z = jnp.asarray(rng.normal(scale=scale, size=(N, K)))
        y = jnp.asarray(_targets(name, rng))
        _, got, want = delta_and_grad(name, OUTPUT_FOR[name], z, y)
        chex.assert_trees_all_close(got, want, rtol=1e-10, atol=1e-16)


# --- stability -----------------------------------------------------------------------------------

def _ce_loss_and_delta(z, y):
    return delta_and_grad("cross_entropy", "softmax", z, y)


@pytest.mark.parametrize("shift", [1e8, -1e8])
def test_softmax_ce_is_shift_invariant_in_float32(shift):
    # Logits are multiples of 8 and |shift| = 1e8 is too: float32 spaces its values 8 apart in
    # [2^26, 2^27) ∋ 1e8 ± 24, so z + shift is exactly representable and the comparison measures
    # the loss's stability, not the rounding of the shifted inputs.
    z = np.array([[0.0, 8.0, -16.0, 24.0], [-8.0, 0.0, 16.0, 8.0]], np.float32)
    shifted = z + np.float32(shift)
    np.testing.assert_array_equal(shifted - np.float32(shift), z)    # exact in float32
    y = jnp.asarray(np.eye(4, dtype=np.float32)[[3, 0]])
    base = _ce_loss_and_delta(jnp.asarray(z), y)
    moved = _ce_loss_and_delta(jnp.asarray(shifted), y)
    chex.assert_tree_all_finite(moved)
    chex.assert_trees_all_close(moved, base, rtol=1e-6, atol=1e-7)


def test_softmax_ce_shift_invariant_through_the_network():
    """The same shift as a bias on the output layer: loss and gradients unchanged, both modes."""
    net = fnn.MLP(sizes=(4, 4), output="softmax")
    w = jnp.asarray([[0.0, 8.0, -16.0, 24.0], [-8.0, 0.0, 16.0, 8.0], [8.0, 8.0, 0.0, -8.0],
                     [0.0, 0.0, 0.0, 0.0]], jnp.float32)
    x = jnp.eye(4, dtype=jnp.float32)            # one-hot rows: x @ w picks rows, exactly
    labels = jnp.asarray([3, 0, 1, 2])
    for mode in ("manual", "autodiff"):
        outs = [jit_loss_and_grad(net, "cross_entropy",
                                  ({"w": w, "b": jnp.full((4,), s, jnp.float32)},), x, labels,
                                  mode=mode)
                for s in (0.0, 1e8, -1e8)]
        chex.assert_tree_all_finite(outs)
        chex.assert_trees_all_close(outs[1], outs[0], rtol=1e-6, atol=1e-7)
        chex.assert_trees_all_close(outs[2], outs[0], rtol=1e-6, atol=1e-7)


def test_softmax_ce_with_minus_inf_non_target_logit():
    z = jnp.asarray([[-jnp.inf, 1.0, 2.0], [0.5, -jnp.inf, -1.0]], jnp.float32)
    y = jnp.asarray([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], jnp.float32)
    value, delta, grad = _ce_loss_and_delta(z, y)
    chex.assert_tree_all_finite((value, delta, grad))
    chex.assert_trees_all_close(delta, grad, rtol=1e-6, atol=1e-7)
    assert float(delta[0, 0]) == 0.0 and float(delta[1, 1]) == 0.0   # e^{-inf} = 0: no gradient
    want = -(np.log(np.exp(2.0) / (np.exp(1.0) + np.exp(2.0)))
             + np.log(np.exp(0.5) / (np.exp(0.5) + np.exp(-1.0)))) / 2
    np.testing.assert_allclose(float(value), want, rtol=1e-6)


def _bce_all(z, y):
    return delta_and_grad("binary_cross_entropy", "sigmoid", z, y)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("logit,target,want_loss,want_delta", [
    (1e9, 1.0, 0.0, 0.0),        # confidently right
    (1e9, 0.0, 1e9, 1.0),        # confidently wrong: loss = z, not inf
    (-1e9, 0.0, 0.0, 0.0),
    (-1e9, 1.0, 1e9, -1.0),
    (-np.inf, 0.0, 0.0, 0.0),    # 0·(−inf) must not become NaN
])
def test_bce_is_finite_at_extreme_logits(x64, dtype, logit, target, want_loss, want_delta):
    z = jnp.asarray([[logit]], dtype)
    y = jnp.asarray([[target]], dtype)
    value, delta, grad = _bce_all(z, y)
    chex.assert_tree_all_finite((value, delta, grad))
    np.testing.assert_allclose(float(value), want_loss, rtol=1e-7)
    np.testing.assert_allclose(float(delta[0, 0]), want_delta, atol=0)
    np.testing.assert_allclose(float(grad[0, 0]), want_delta, atol=0)


@pytest.mark.parametrize("mode", ["manual", "autodiff"])
def test_bce_extreme_logits_through_the_network(mode):
    net = fnn.MLP(sizes=(1, 1), output="sigmoid")
    params = ({"w": jnp.asarray([[1e9]], jnp.float32), "b": jnp.zeros((1,), jnp.float32)},)
    x = jnp.asarray([[1.0], [1.0], [-1.0], [-1.0]], jnp.float32)     # logits ±1e9
    y = jnp.asarray([1.0, 0.0, 0.0, 1.0], jnp.float32)                 # both targets each
    loss, grads = jit_loss_and_grad(net, "binary_cross_entropy", params, x, y, mode=mode)
    chex.assert_tree_all_finite((loss, grads))
    np.testing.assert_allclose(float(loss), 2e9 / 4, rtol=1e-6)
    # δ = (ŷ − y)/N = [0, 1, 0, −1]/4  ⇒  ∂b = 0, ∂w = Σ x δ = (1·1 + (−1)(−1))/4
    np.testing.assert_allclose(float(grads[0]["b"][0]), 0.0, atol=0)
    np.testing.assert_allclose(float(grads[0]["w"][0, 0]), 0.5, rtol=1e-6)


# --- pairings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss,output", [
    ("cross_entropy", "sigmoid"), ("cross_entropy", "identity"), ("cross_entropy", "tanh"),
    ("binary_cross_entropy", "softmax"), ("binary_cross_entropy", "identity"),
    ("binary_cross_entropy", "relu"),
])
def test_invalid_pairing_names_loss_and_output(loss, output):
    net = fnn.MLP(sizes=(3, 2), output=output)
    params = np_params(net, 0)
    x, y = jnp.zeros((2, 3)), jnp.asarray([0, 1])
    for mode in ("manual", "autodiff"):
        with pytest.raises(ValueError, match=rf"(?=.*'{loss}')(?=.*'{output}')"):
            fnn.loss_and_grad(net, loss, params, x, y, mode=mode)
    with pytest.raises(ValueError, match=rf"(?=.*'{loss}')(?=.*'{output}')"):
        losses.check_pairing(losses.get(loss), output, 2)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "binary_cross_entropy"])
def test_one_unit_softmax_is_rejected(loss):
    with pytest.raises(ValueError, match=rf"(?=.*'{loss}')(?=.*'softmax')"):
        losses.check_pairing(losses.get(loss), "softmax", 1)
    with pytest.raises(ValueError, match=r"(?=.*softmax)(?=.*2 output units)"):
        fnn.MLP(sizes=(3, 1), output="softmax")


@pytest.mark.parametrize("loss,output,units", [
    ("mse", "identity", 1), ("mse", "softmax", 3), ("mse", "relu", 2),
    ("binary_cross_entropy", "sigmoid", 1), ("binary_cross_entropy", "sigmoid", 3),
    ("binary_cross_entropy", "logistic", 1),
    ("cross_entropy", "softmax", 2), ("ce", "softmax", 10),
])
def test_valid_pairings_are_accepted(loss, output, units):
    losses.check_pairing(losses.get(loss), output, units)


# --- registry and targets ------------------------------------------------------------------------

@pytest.mark.parametrize("alias,name", [("mean_squared_error", "mse"), ("bce", "binary_cross_entropy"),
                                        ("ce", "cross_entropy"),
                                        ("categorical_cross_entropy", "cross_entropy")])
def test_loss_aliases(alias, name):
    assert losses.get(alias).name == name


@pytest.mark.parametrize("bad", ["hinge", "MSE", "crossentropy"])
def test_unknown_loss_lists_the_valid_names(bad):
    with pytest.raises(ValueError, match=f"unknown loss {bad!r}") as info:
        losses.get(bad)
    for valid in (*losses.LOSSES, *losses.ALIASES):
        assert valid in str(info.value)


@pytest.mark.parametrize("labels,match", [
    ([0, 1, 3], r"labels: value 3 out of range.*\[0, 2\]"),
    ([0, -1, 2], r"labels: value -1 out of range"),
    ([7], r"labels: value 7 out of range"),
])
def test_labels_out_of_range(labels, match):
    net = fnn.MLP(sizes=(2, 3), output="softmax")
    params = np_params(net, 0)
    x = jnp.zeros((len(labels), 2))
    with pytest.raises(ValueError, match=match):
        fnn.loss_and_grad(net, "cross_entropy", params, x, jnp.asarray(labels))


def test_labels_are_checked_even_when_closed_over_in_jit():
    """Regression: the range check used jnp.min, which is traced inside jit even for constants."""
    net = fnn.MLP(sizes=(2, 3), output="softmax")
    params = np_params(net, 0)
    x = jnp.zeros((2, 2))
    good, bad = jnp.asarray([0, 2]), jnp.asarray([0, 3])
    loss = jit(lambda p: fnn.loss_and_grad(net, "cross_entropy", p, x, good)[0])(params)
    assert np.isfinite(float(loss))
    with pytest.raises(ValueError, match="labels: value 3 out of range"):
        jit(lambda p: fnn.loss_and_grad(net, "cross_entropy", p, x, bad)[0])(params)


@pytest.mark.parametrize("loss,output,units,y,match", [
    ("binary_cross_entropy", "sigmoid", 1, [[0.0], [1.5]], r"value 1.5 out of range.*\[0, 1\]"),
    ("binary_cross_entropy", "sigmoid", 1, [0.0, -1.0], r"value -1.0 out of range"),
    ("cross_entropy", "softmax", 3, [[0.0, 1.0, 0.0], [2.0, -1.0, 0.0]], r"out of range"),
    ("cross_entropy", "softmax", 3, [0.0, 1.0], r"shape \(2,\).*3-unit output"),
    ("cross_entropy", "softmax", 3, [[0.0, 1.0], [1.0, 0.0]], r"shape \(2, 2\).*\(batch, 3\)"),
    ("mse", "identity", 2, [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], r"shape \(2, 3\).*\(batch, 2\)"),
])
def test_bad_targets(loss, output, units, y, match):
    net = fnn.MLP(sizes=(2, units), output=output)
    params = np_params(net, 0)
    with pytest.raises(ValueError, match=match):
        fnn.loss_and_grad(net, loss, params, jnp.zeros((2, 2)), jnp.asarray(y))


@pytest.mark.parametrize("mode", ["manual", "autodiff"])
def test_integer_labels_and_one_hot_agree(x64, mode):
    net = fnn.MLP(sizes=(3, 6, 4), activation="tanh", output="softmax", dtype="float64")
    params = np_params(net, 3)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(7, 3)))
    labels = rng.integers(0, 4, size=7)
    one_hot = jnp.asarray(np.eye(4)[labels])
    from_labels = jit_loss_and_grad(net, "cross_entropy", params, x, jnp.asarray(labels), mode=mode)
    from_one_hot = jit_loss_and_grad(net, "cross_entropy", params, x, one_hot, mode=mode)
    chex.assert_trees_all_close(from_labels, from_one_hot, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["manual", "autodiff"])
def test_flat_binary_targets_equal_column_targets(x64, mode):
    net = fnn.MLP(sizes=(3, 4, 1), activation="relu", output="sigmoid", dtype="float64")
    params = np_params(net, 4)
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(6, 3)))
    y = rng.integers(0, 2, size=6)
    flat = jit_loss_and_grad(net, "bce", params, x, jnp.asarray(y), mode=mode)
    column = jit_loss_and_grad(net, "bce", params, x, jnp.asarray(y[:, None].astype(np.float64)),
                               mode=mode)
    chex.assert_trees_all_close(flat, column, rtol=0, atol=0)
