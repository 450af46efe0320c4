"""Activations: every hand-written derivative against ``jax.grad``, softmax's VJP against
``jax.vjp``, numerical stability, and the registry's errors.

Shapes are kept fixed across examples so eager kernels are compiled once per shape.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.nn import activations as acts

ELEMENTWISE = ("identity", "sigmoid", "relu", "leaky_relu", "tanh", "gelu")
# A grid through 0 (exactly: the kink of the ReLU family, where both conventions take g'(0) from
# the z <= 0 side), tiny values on either side of it, and saturated tails.
GRID = np.concatenate([np.linspace(-6.0, 6.0, 121), [0.0, -1e-300, 1e-300, -1e-8, 1e-8, -40.0,
                                                     40.0, -700.0, 700.0]])

# sigmoid' = a(1 − a) and tanh' = (1 − a)(1 + a) are evaluated from the cached a = g(z), as the
# notes write them. XLA may round g(z) differently in the two compiled programs by an ulp of a
# (~1e-16 in float64, a ≈ 1), and that absolute error carries into g' unchanged; relative to a
# saturated g' ~ 1e-5 it is ~1e-11. Hence an absolute tolerance on the scale of a's rounding.
DERIV_ATOL = 1e-15


def _vmap_grad(fn, z):
    return jax.vmap(jax.grad(fn))(z)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_jax_grad(x64, name):
    act = acts.get(name)
    z = jnp.asarray(GRID, jnp.float64)
    assert 0.0 in GRID
    got = act.derivative(z, act.fn(z))
    want = _vmap_grad(act.fn, z)
    chex.assert_trees_all_equal_shapes_and_dtypes(got, want)
    chex.assert_trees_all_close(got, want, rtol=1e-12, atol=DERIV_ATOL)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_backward_is_grad_a_times_derivative_and_matches_vjp(x64, name):
    act = acts.get(name)
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(scale=3.0, size=(6, 5)))
    g = jnp.asarray(rng.normal(size=(6, 5)))
    a = act.fn(z)
    got = act.backward(z, a, g)
    chex.assert_trees_all_close(got, g * act.derivative(z, a), rtol=0, atol=0)
    _, vjp = jax.vjp(act.fn, z)
    chex.assert_trees_all_close(got, vjp(g)[0], rtol=1e-12, atol=DERIV_ATOL)
    assert act.elementwise and act.vjp is None


@settings(max_examples=60)
@given(
    name=st.sampled_from(ELEMENTWISE),
    values=st.lists(st.floats(-50.0, 50.0, allow_subnormal=False), min_size=8, max_size=8),
)
def test_derivative_matches_jax_grad_drawn(name, values):
    with jax.enable_x64(True):
        act = acts.get(name)
        z = jnp.asarray(np.asarray(values, np.float64))
        got = act.derivative(z, act.fn(z))
        chex.assert_trees_all_close(got, _vmap_grad(act.fn, z), rtol=1e-12, atol=DERIV_ATOL)


@pytest.mark.parametrize("name,expected_kink", [
    ("identity", False), ("sigmoid", False), ("relu", True), ("leaky_relu", True),
    ("tanh", False), ("softmax", False), ("gelu", False),
])
def test_kink_flags(name, expected_kink):
    assert acts.get(name).kink is expected_kink


# --- softmax -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 2), (4, 3), (7, 10)])
def test_softmax_backward_matches_jax_vjp(x64, shape):
    act = acts.get("softmax")
    rng = np.random.default_rng(sum(shape))
    z = jnp.asarray(rng.normal(scale=4.0, size=shape))
    g = jnp.asarray(rng.normal(size=shape))
    a = act.fn(z)
    _, vjp = jax.vjp(act.fn, z)
    chex.assert_trees_all_close(act.backward(z, a, g), vjp(g)[0], rtol=1e-11, atol=1e-15)
    # and against the explicit Jacobian diag(a) − a aᵀ, row by row
    jac = jax.vmap(lambda r: jnp.diag(r) - jnp.outer(r, r))(a)
    chex.assert_trees_all_close(act.backward(z, a, g), jnp.einsum("nij,ni->nj", jac, g),
                                rtol=1e-11, atol=1e-15)
    assert act.derivative is None and not act.elementwise


def test_softmax_values(x64):
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.normal(scale=5.0, size=(5, 4)))
    a = acts.softmax(z)
    chex.assert_trees_all_close(a, jax.nn.softmax(z, axis=-1), rtol=1e-13)
    chex.assert_trees_all_close(jnp.sum(a, axis=-1), jnp.ones(5), rtol=1e-14)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_softmax_is_stable_for_huge_logits(x64, dtype):
    z = jnp.asarray([[1e4, 0.0, -1e4], [3e38 if dtype == jnp.float32 else 1e300, 0.0, 1.0]], dtype)
    a = acts.softmax(z)
    assert a.dtype == dtype
    chex.assert_tree_all_finite(a)
    chex.assert_trees_all_close(a, jnp.asarray([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype))


# --- sigmoid stability ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_sigmoid_does_not_overflow(x64, dtype):
    act = acts.get("sigmoid")
    z = jnp.asarray([-1e4, -5e3, -1e3, 0.0, 1e3, 5e3, 1e4], dtype)
    a = act.fn(z)
    assert a.dtype == dtype
    chex.assert_tree_all_finite(a)
    # exact limits, not merely close: 1/(1 + e^{1e4}) is 0 and 1/(1 + e^{−1e4}) is 1
    assert float(a[0]) == 0.0 and float(a[-1]) == 1.0 and float(a[3]) == 0.5
    manual = act.derivative(z, a)
    auto = _vmap_grad(act.fn, z)
    chex.assert_tree_all_finite((manual, auto))
    assert float(manual[0]) == 0.0 and float(manual[-1]) == 0.0 and float(manual[3]) == 0.25
    chex.assert_trees_all_close(manual, auto, rtol=1e-6 if dtype == jnp.float32 else 1e-12)


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_saturating_activations_hit_their_limits(x64, name):
    act = acts.get(name)
    z = jnp.asarray([-1e4, 1e4], jnp.float64)
    lo = -1.0 if name == "tanh" else 0.0
    chex.assert_trees_all_close(act.fn(z), jnp.asarray([lo, 1.0]), rtol=0, atol=0)
    chex.assert_trees_all_close(act.derivative(z, act.fn(z)), jnp.zeros(2), rtol=0, atol=0)


# --- forward values ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,reference", [
    ("identity", lambda z: z),
    ("sigmoid", lambda z: 1.0 / (1.0 + np.exp(-z))),
    ("relu", lambda z: np.maximum(z, 0.0)),
    ("leaky_relu", lambda z: np.where(z > 0, z, acts.LEAKY_RELU_SLOPE * z)),
    ("tanh", np.tanh),
    # ½z(1 + tanh u) = z / (1 + e^{−2u}): the same function without 1 + tanh u's cancellation
    ("gelu", lambda z: z / (1 + np.exp(-2 * np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))),
])
def test_forward_matches_numpy(x64, name, reference):
    z = np.linspace(-5.0, 5.0, 41)
    chex.assert_trees_all_close(acts.get(name).fn(jnp.asarray(z)), reference(z), rtol=1e-13)


# --- registry ------------------------------------------------------------------------------------

@pytest.mark.parametrize("alias,name", [("linear", "identity"), ("none", "identity"),
                                        ("logistic", "sigmoid"), ("relu", "relu")])
def test_aliases(alias, name):
    assert acts.get(alias).name == name
    assert acts.canonical_name(alias) == name


@pytest.mark.parametrize("bad", ["swish", "ReLU", "", "soft_max"])
def test_unknown_activation_lists_the_valid_names(bad):
    with pytest.raises(ValueError, match=f"unknown activation {bad!r}") as info:
        acts.get(bad)
    for valid in (*acts.ACTIVATIONS, *acts.ALIASES):
        assert valid in str(info.value)


A = acts.LEAKY_RELU_SLOPE
MAX_LOWERED = [
    # name, g'(z) at z = -2, -0, 0, 3; g(-inf), g(inf), g(-1)
    ("relu", [0.0, 0.0, 0.0, 1.0], [0.0, np.inf, 0.0]),
    ("leaky_relu", [A, A, A, 1.0], [-np.inf, np.inf, -A]),
]


@pytest.mark.parametrize("name, slopes, at_inf", MAX_LOWERED, ids=[c[0] for c in MAX_LOWERED])
def test_relu_lowers_to_max_and_keeps_its_subgradient_in_every_mode(x64, name, slopes, at_inf):
    """ReLU is max(z, 0) and leaky ReLU max(z, αz) in the compiled program (XLA:CPU compiles
    where(z > 0, z, ·) after a dot and a bias about ten times slower), with the subgradient
    g'(0) of the manual backward (0, α) in forward and reverse mode alike."""
    g = acts.get(name).fn
    z = jnp.asarray([-2.0, -0.0, 0.0, 3.0])
    hlo = jax.jit(g).lower(z).as_text()
    assert "stablehlo.maximum" in hlo and "stablehlo.select" not in hlo
    np.testing.assert_array_equal(jax.vmap(jax.grad(g))(z), slopes)
    np.testing.assert_array_equal(jnp.diag(jax.jacfwd(g)(z)), slopes)
    np.testing.assert_array_equal(jax.vmap(jax.grad(jax.grad(g)))(z), np.zeros(4))
    np.testing.assert_array_equal(g(jnp.asarray([-np.inf, np.inf, -1.0])), at_inf)
