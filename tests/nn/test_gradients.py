"""Manual backprop vs ``jax.grad`` vs finite differences.

* The notes' worked example (2-2-1, ReLU hidden, sigmoid output, MSE), recomputed in NumPy from the
  notes' delta formulas with the exact loss factors, against both gradient modes.
* Hypothesis-drawn networks (depth, widths, batch, activations, loss, targets, dropout, L1/L2):
  manual and autodiff gradients of the same objective agree to rounding, in float64 and float32.
* Central finite differences agree with the manual gradients for smooth activations.

Compilation dominates the run time of the drawn-network tests (every draw is a new program), so
manual and autodiff gradients are computed in *one* jitted program per draw, compiled with XLA's
cheap-compile options (see ``grad_helpers.FAST_COMPILE``), and parameters and data come from NumPy.
"""

from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from grad_helpers import jit  # noqa: E402
from fnn.nn import objective as obj

# --- helpers -------------------------------------------------------------------------------------



def _both_modes(net, loss, l1, l2, params, x, y, key):
    """(manual loss, manual grads, autodiff loss, autodiff grads) through the public API."""
    lm, gm = fnn.loss_and_grad(net, loss, params, x, y, mode="manual", key=key, l1=l1, l2=l2)
    la, ga = fnn.loss_and_grad(net, loss, params, x, y, mode="autodiff", key=key, l1=l1, l2=l2)
    return lm, gm, la, ga


# net, loss, l1, l2 are static (hashable); params, x, y, key are traced.
both_modes = jit(_both_modes, static_argnums=(0, 1, 2, 3))


def rel_error(a, b) -> np.ndarray:
    """Elementwise CS231n relative error |a − b| / max(|a|, |b|) (0 where both are 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = np.abs(a - b)
    scale = np.maximum(np.abs(a), np.abs(b))
    return np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)


def assert_grads_rel_close(manual, auto, *, rtol: float):
    """chex tree assertion: every entry within ``rtol`` in the CS231n relative error
    |a − b| / max(|a|, |b|) (no absolute floor: entries that are exactly 0 in one mode must be
    exactly 0 in the other)."""

    def close(a, b):
        return a.shape == b.shape and bool(np.all(rel_error(a, b) <= rtol))

    def message(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        rel = rel_error(a, b)
        i = np.unravel_index(np.argmax(rel), rel.shape)
        return (f"worst relative error {rel[i]:.3e} at {i}: manual={a[i]!r} autodiff={b[i]!r} "
                f"(rtol {rtol:g}, max|leaf| {np.abs(a).max():.3e})")

    chex.assert_trees_all_equal_comparator(close, message, manual, auto)


# --- the notes' worked example -------------------------------------------------------------------

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0.0, 1.0, 1.0, 0.0])
# Hand-picked so that no hidden pre-activation is exactly 0 (Z(1) rows: [0.1, 0.2], [-0.6, 1.1],
# [0.9, -0.4], [0.2, 0.5]): ReLU' is well defined and both hidden units are dead on one example.
W1 = np.array([[0.8, -0.6], [-0.7, 0.9]])
B1 = np.array([0.1, 0.2])
W2 = np.array([[1.2], [-0.9]])
B2 = np.array([0.05])


def _worked_example_numpy():
    """The notes' formulas, with the exact factor of L = 1/N Σ (ŷ − y)²."""
    x, y = XOR_X, XOR_Y[:, None]
    n = x.shape[0]
    z1 = x @ W1 + B1
    a1 = np.maximum(z1, 0.0)
    z2 = a1 @ W2 + B2
    y_hat = 1.0 / (1.0 + np.exp(-z2))
    loss = np.sum((y_hat - y) ** 2) / n
    grad_a = 2.0 * (y_hat - y) / n                       # ∇_A L = 2(ŷ − y)/N
    delta2 = grad_a * y_hat * (1.0 - y_hat)              # δ(2) = ∇_A L ⊙ ŷ(1 − ŷ)
    delta1 = (delta2 @ W2.T) * (z1 > 0)                  # δ(1) = (δ(2) W(2)ᵀ) ⊙ ReLU'(Z(1))
    grads = (
        {"w": x.T @ delta1, "b": delta1.sum(axis=0)},    # ∂W(1) = A(0)ᵀ δ(1), ∂b(1) = Σ_rows δ(1)
        {"w": a1.T @ delta2, "b": delta2.sum(axis=0)},   # ∂W(2) = A(1)ᵀ δ(2), ∂b(2) = Σ_rows δ(2)
    )
    return z1, loss, grads


def test_worked_example_has_no_relu_at_the_kink():
    z1, _, _ = _worked_example_numpy()
    assert np.all(z1 != 0.0)
    assert np.any(z1 < 0.0) and np.any(z1 > 0.0)


@pytest.mark.parametrize("mode", ["manual", "autodiff"])
def test_worked_example_matches_the_notes(x64, mode):
    net = fnn.MLP(sizes=(2, 2, 1), activation="relu", output="sigmoid", dtype="float64")
    params = ({"w": jnp.asarray(W1), "b": jnp.asarray(B1)},
              {"w": jnp.asarray(W2), "b": jnp.asarray(B2)})
    _, want_loss, want_grads = _worked_example_numpy()
    loss, grads = jit(fnn.loss_and_grad, static_argnums=(0, 1), static_argnames="mode")(
        net, "mse", params, XOR_X, XOR_Y, mode=mode)
    chex.assert_trees_all_equal_structs(grads, params)
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-13)
    chex.assert_trees_all_close(grads, want_grads, rtol=1e-12, atol=1e-15)


def test_worked_example_notes_factor_is_not_the_gradient(x64):
    """The notes' loose ∇_A L = ŷ − y is off by exactly 2/N = 1/2 here; the code is exact."""
    net = fnn.MLP(sizes=(2, 2, 1), activation="relu", output="sigmoid", dtype="float64")
    params = ({"w": jnp.asarray(W1), "b": jnp.asarray(B1)},
              {"w": jnp.asarray(W2), "b": jnp.asarray(B2)})
    _, grads = jit(fnn.loss_and_grad, static_argnums=(0, 1))(net, "mse", params, XOR_X, XOR_Y)
    _, _, want = _worked_example_numpy()
    loose = jax.tree.map(lambda g: g * (XOR_X.shape[0] / 2.0), want)   # drop the factor 2/N
    assert not np.allclose(grads[1]["w"], loose[1]["w"])
    np.testing.assert_allclose(grads[1]["w"] * 2.0, loose[1]["w"], rtol=1e-12)


# --- hypothesis-drawn networks: manual vs jax.grad -----------------------------------------------

HIDDEN = ("identity", "sigmoid", "relu", "leaky_relu", "tanh")
# Every valid (output activation, loss) pairing.
OUTPUT_LOSS = (
    ("identity", "mse"), ("sigmoid", "mse"), ("tanh", "mse"), ("relu", "mse"),
    ("softmax", "mse"), ("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy"),
)
DROPOUT_KEY_SEED = 1234


@dataclasses.dataclass(frozen=True)
class Case:
    sizes: tuple
    hidden: tuple
    output: str
    loss: str
    batch: int
    drop_rate: float
    l1: float
    l2: float
    targets: str   # how targets are given: dense / flat / labels / onehot / soft / hard
    initializer: str   # "normal" (see build) or "zeros"
    seed: int


@st.composite
def cases(draw) -> Case:
    depth = draw(st.integers(1, 4))                      # number of dense layers
    output, loss = draw(st.sampled_from(OUTPUT_LOSS))
    widths = [draw(st.integers(1, 16)) for _ in range(depth)]
    units = draw(st.integers(2 if output == "softmax" else 1, 16))
    hidden = tuple(draw(st.sampled_from(HIDDEN)) for _ in range(depth - 1))
    batch = draw(st.integers(1, 32))
    dropout = depth > 1 and draw(st.booleans())
    drop_rate = draw(st.sampled_from((0.1, 0.5, 0.9))) if dropout else 0.0
    l1 = draw(st.sampled_from((0.0, 0.0, 1e-3, 0.3)))
    l2 = draw(st.sampled_from((0.0, 0.0, 1e-3, 0.3)))
    if loss == "cross_entropy":
        targets = draw(st.sampled_from(("labels", "onehot", "soft")))
    elif loss == "binary_cross_entropy":
        targets = draw(st.sampled_from(("hard", "soft") + (("flat",) if units == 1 else ())))
    else:
        targets = draw(st.sampled_from(("dense",) + (("flat",) if units == 1 else ())))
    # "zeros" gives exact ties everywhere (Z = 0 at every ReLU, logits 0, weights 0 under L1).
    initializer = draw(st.sampled_from(("normal",) * 5 + ("zeros",)))
    seed = draw(st.integers(0, 2**31 - 1))
    return Case(tuple(widths) + (units,), hidden, output, loss, batch, drop_rate, l1, l2,
                targets, initializer, seed)


def build(case: Case, dtype: str):
    """(net, params, x, y, key) for a drawn case; data from a NumPy generator seeded by the case."""
    net = fnn.MLP(sizes=case.sizes, activation=case.hidden, output=case.output,
                  drop_rate=case.drop_rate, dtype=dtype)
    rng = np.random.default_rng(case.seed)
    # Parameters and data from NumPy, placed with device_put: eager jax.random or jnp.asarray
    # would compile a new kernel for every drawn shape, which costs more than the test itself
    # (net.init is tested in test_network.py). Weights N(0, 1/fan_in), biases N(0, 0.1²) so that
    # they are exercised too, or all zeros.
    def layer(fan_in, fan_out):
        if case.initializer == "zeros":
            return {"w": np.zeros((fan_in, fan_out)), "b": np.zeros(fan_out)}
        return {"w": rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in),
                "b": 0.1 * rng.normal(size=fan_out)}

    params = net.params_from_dense(
        {k: jax.device_put(v.astype(dtype)) for k, v in layer(m, n).items()}
        for m, n in zip(case.sizes[:-1], case.sizes[1:])
    )
    n, k = case.batch, case.sizes[-1]
    x = rng.normal(size=(n, case.sizes[0])).astype(dtype)
    if case.targets == "labels":
        y = rng.integers(0, k, size=n).astype(np.int32)
    elif case.targets == "onehot":
        y = np.eye(k, dtype=dtype)[rng.integers(0, k, size=n)]
    elif case.targets == "soft":
        y = (rng.dirichlet(np.ones(k), size=n) if case.loss == "cross_entropy"
             else rng.uniform(size=(n, k))).astype(dtype)
    elif case.targets == "hard":
        y = rng.integers(0, 2, size=(n, k)).astype(dtype)
    elif case.targets == "flat":
        y = (rng.integers(0, 2, size=n) if case.loss == "binary_cross_entropy"
             else rng.normal(size=n)).astype(dtype)
    else:
        y = rng.normal(size=(n, k)).astype(dtype)
    key = jax.random.key(DROPOUT_KEY_SEED) if case.drop_rate > 0 else None
    return net, params, jax.device_put(x), jax.device_put(y), key


def _check_float64(case):
    with jax.enable_x64(True):
        net, params, x, y, key = build(case, "float64")
        lm, gm, la, ga = both_modes(net, case.loss, case.l1, case.l2, params, x, y, key)
        chex.assert_trees_all_equal_shapes_and_dtypes(gm, params)
        chex.assert_trees_all_equal_structs(gm, ga)
        np.testing.assert_allclose(float(lm), float(la), rtol=1e-12)
        assert_grads_rel_close(gm, ga, rtol=1e-9)


def _check_float32(case):
    net, params, x, y, key = build(case, "float32")
    lm, gm, la, ga = both_modes(net, case.loss, case.l1, case.l2, params, x, y, key)
    chex.assert_trees_all_equal_shapes_and_dtypes(gm, params)
    np.testing.assert_allclose(float(lm), float(la), rtol=1e-5)
    chex.assert_trees_all_close(gm, ga, rtol=1e-4, atol=1e-5)


# Each drawn case compiles its own program (~0.25 s), so the draws are split: a quick share runs
# with every `pytest -m "not slow"`, the rest (other draws: hypothesis derives a derandomized
# test's seed from its name) only in the full suite. 200 float64 and 50 float32 cases in all.
@settings(max_examples=25)
@given(case=cases())
def test_manual_matches_autodiff_float64(case):
    _check_float64(case)


@pytest.mark.slow
@settings(max_examples=175)
@given(case=cases())
def test_manual_matches_autodiff_float64_more_draws(case):
    _check_float64(case)


@settings(max_examples=8)
@given(case=cases())
def test_manual_matches_autodiff_float32(case):
    _check_float32(case)


@pytest.mark.slow
@settings(max_examples=42)
@given(case=cases())
def test_manual_matches_autodiff_float32_more_draws(case):
    _check_float32(case)


# --- central finite differences ------------------------------------------------------------------

FD_EPS = 1e-6


@functools.partial(jit, static_argnums=(0, 1, 2, 3))
def _manual_and_fd(net, loss, l1, l2, params, x, y, key):
    """Manual gradient and the central difference (L(θ + εe_i) − L(θ − εe_i)) / 2ε of the
    objective for every coordinate i of the flattened parameters."""
    _, manual = fnn.loss_and_grad(net, loss, params, x, y, mode="manual", key=key, l1=l1, l2=l2)
    xb, yb, _ = obj.prepare_batch(net, loss, x, y)
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def f(theta):
        return obj.objective(net, loss, unravel(theta), xb, yb, key=key, l1=l1, l2=l2)[0]

    steps = FD_EPS * jnp.eye(flat.size, dtype=flat.dtype)
    fd = (jax.vmap(f)(flat[None, :] + steps) - jax.vmap(f)(flat[None, :] - steps)) / (2 * FD_EPS)
    return jax.flatten_util.ravel_pytree(manual)[0], fd


# Smooth activations only (no ReLU kink for a difference quotient to straddle); L1 is smooth away
# from w = 0, which random weights never hit.
FD_CASES = [
    # sizes, hidden, output, loss, drop_rate, l1, l2, targets
    ((3, 4, 2), "tanh", "softmax", "cross_entropy", 0.0, 0.0, 0.0, "labels"),
    ((3, 5, 1), "sigmoid", "sigmoid", "binary_cross_entropy", 0.0, 0.0, 0.01, "hard"),
    ((2, 4, 3, 2), ("tanh", "sigmoid"), "identity", "mse", 0.5, 0.0, 0.0, "dense"),
    ((4, 3, 3), "identity", "softmax", "mse", 0.0, 0.01, 0.0, "dense"),
    ((3, 4, 2), "tanh", "tanh", "mse", 0.3, 0.0, 0.1, "dense"),
    ((5, 2), (), "sigmoid", "mse", 0.0, 0.0, 0.0, "dense"),
    ((3, 6, 6, 3), "sigmoid", "softmax", "cross_entropy", 0.25, 0.02, 0.02, "soft"),
    ((2, 3, 3), "tanh", "sigmoid", "binary_cross_entropy", 0.0, 0.0, 0.0, "soft"),
]


@pytest.mark.parametrize("sizes,hidden,output,loss,drop_rate,l1,l2,targets", FD_CASES)
def test_finite_differences_match_manual(x64, sizes, hidden, output, loss, drop_rate, l1, l2,
                                         targets):
    case = Case(sizes, hidden if isinstance(hidden, tuple) else (hidden,) * (len(sizes) - 2),
                output, loss, 7, drop_rate, l1, l2, targets, "normal", sum(sizes))
    net, params, x, y, key = build(case, "float64")
    manual, fd = (np.asarray(a) for a in _manual_and_fd(net, loss, l1, l2, params, x, y, key))
    # truncation O(ε²) and rounding O(u·|L|/ε) ≈ 1e-10: far below the tolerance
    norm_rel = np.linalg.norm(manual - fd) / max(np.linalg.norm(manual), np.linalg.norm(fd))
    assert norm_rel <= 1e-6, f"‖manual − fd‖/‖·‖ = {norm_rel:.2e}"
    assert np.linalg.norm(manual) > 0
