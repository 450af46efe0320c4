"""Tests for fnn.schedules: values at chosen steps against closed-form numbers (float64 and
float32), traceability under jit and vmap, traced values, composition, and bad input."""
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn.optim.schedules as S

COS = math.cos
PI = math.pi

# (id, schedule factory, {step: closed-form value})
CASES = [
    ("constant", lambda: S.constant_schedule(0.3), {0: 0.3, 7: 0.3, 10**6: 0.3}),
    ("exponential", lambda: S.exponential_decay(1.0, 10, 0.5),
     {0: 1.0, 5: 0.5**0.5, 10: 0.5, 15: 0.5**1.5, 40: 0.5**4}),
    ("exponential staircase", lambda: S.exponential_decay(1.0, 10, 0.5, staircase=True),
     {0: 1.0, 9: 1.0, 10: 0.5, 19: 0.5, 25: 0.25}),
    ("exponential begin", lambda: S.exponential_decay(2.0, 10, 0.5, transition_begin=5),
     {0: 2.0, 5: 2.0, 15: 1.0, 25: 0.5}),
    ("exponential end_value", lambda: S.exponential_decay(1.0, 10, 0.5, end_value=0.3),
     {0: 1.0, 10: 0.5, 100: 0.3}),
    ("exponential growth capped", lambda: S.exponential_decay(1.0, 10, 2.0, end_value=3.0),
     {0: 1.0, 10: 2.0, 100: 3.0}),
    ("piecewise", lambda: S.piecewise_constant_schedule([10, 20], [1.0, 0.1, 0.01]),
     {0: 1.0, 9: 1.0, 10: 0.1, 19: 0.1, 20: 0.01, 1000: 0.01}),
    ("piecewise no boundaries", lambda: S.piecewise_constant_schedule([], [0.7]),
     {0: 0.7, 50: 0.7}),
    ("polynomial", lambda: S.polynomial_schedule(1.0, 0.0, 2.0, 10),
     {0: 1.0, 5: 0.25, 10: 0.0, 20: 0.0}),
    ("polynomial begin", lambda: S.polynomial_schedule(1.0, 0.5, 2.0, 10, transition_begin=5),
     {0: 1.0, 5: 1.0, 10: 0.5 + 0.5 * 0.25, 15: 0.5, 99: 0.5}),
    ("linear", lambda: S.linear_schedule(0.0, 1.0, 4),
     {0: 0.0, 1: 0.25, 2: 0.5, 3: 0.75, 4: 1.0, 9: 1.0}),
    ("linear decay", lambda: S.linear_schedule(1.0, 0.2, 8), {0: 1.0, 4: 0.6, 8: 0.2, 9: 0.2}),
    ("cosine", lambda: S.cosine_decay_schedule(2.0, 100),
     {0: 2.0, 25: 1.0 + COS(PI / 4), 50: 1.0, 100: 0.0, 200: 0.0}),
    ("cosine alpha", lambda: S.cosine_decay_schedule(2.0, 100, alpha=0.1),
     {0: 2.0, 50: 2.0 * (0.9 * 0.5 + 0.1), 100: 0.2, 200: 0.2}),
    ("cosine exponent", lambda: S.cosine_decay_schedule(2.0, 100, alpha=0.1, exponent=2.0),
     {0: 2.0, 50: 2.0 * (0.9 * 0.25 + 0.1), 100: 0.2}),
    ("warmup cosine", lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, 10, 110, end_value=0.1),
     {0: 0.0, 5: 0.5, 10: 1.0, 35: 0.1 + 0.9 * 0.5 * (1 + COS(PI / 4)), 60: 0.55,
      110: 0.1, 500: 0.1}),
    ("warmup cosine init", lambda: S.warmup_cosine_decay_schedule(0.2, 1.0, 4, 14),
     {0: 0.2, 2: 0.6, 4: 1.0, 9: 0.5, 14: 0.0}),
    ("warmup cosine no warmup", lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, 0, 100),
     {0: 1.0, 50: 0.5, 100: 0.0}),
    ("one cycle", lambda: S.one_cycle_schedule(100, 1.0),
     {0: 0.04, 15: 0.04 + 0.96 * 0.5, 30: 1.0,
      65: 4e-6 + (1 - 4e-6) * 0.5, 100: 4e-6, 300: 4e-6}),
    ("one cycle linear", lambda: S.one_cycle_schedule(
        10, 2.0, pct_start=0.2, div_factor=10.0, final_div_factor=100.0, anneal_strategy="linear"),
     {0: 0.2, 1: 1.1, 2: 2.0, 6: 2.0 + (0.002 - 2.0) * 0.5, 10: 0.002, 11: 0.002}),
    ("join", lambda: S.join_schedules(
        [S.constant_schedule(1.0), S.linear_schedule(1.0, 0.0, 10), S.constant_schedule(0.05)],
        [5, 15]),
     {0: 1.0, 4: 1.0, 5: 1.0, 10: 0.5, 14: 0.1, 15: 0.05, 99: 0.05}),
    ("with_warmup constant", lambda: S.with_warmup(S.constant_schedule(0.5), 4),
     {0: 0.0, 2: 0.25, 4: 0.5, 40: 0.5}),
    ("with_warmup float", lambda: S.with_warmup(0.5, 4, init_value=0.1), {0: 0.1, 2: 0.3, 4: 0.5}),
    ("with_warmup exponential", lambda: S.with_warmup(S.exponential_decay(1.0, 10, 0.5), 10),
     {0: 0.0, 5: 0.5, 10: 1.0, 20: 0.5, 30: 0.25}),
    ("with_warmup zero steps", lambda: S.with_warmup(S.linear_schedule(1.0, 0.0, 2), 0),
     {0: 1.0, 1: 0.5, 2: 0.0}),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,factory,expected", CASES, ids=IDS)
def test_closed_form_float64(name, factory, expected, x64):
    sched = factory()
    for step, value in expected.items():
        got = sched(step)
        assert got.dtype == jnp.float64
        assert float(got) == pytest.approx(value, rel=1e-12, abs=1e-15), (name, step)


@pytest.mark.parametrize("name,factory,expected", CASES, ids=IDS)
def test_closed_form_float32_under_jit_and_vmap(name, factory, expected):
    sched = factory()
    steps = np.array(list(expected), dtype=np.int32)
    values = np.array(list(expected.values()))
    jitted = jax.jit(sched)
    for step, value in zip(steps, values):
        got = jitted(jnp.asarray(step))
        assert got.dtype == jnp.float32 and got.shape == ()
        assert float(got) == pytest.approx(value, rel=1e-6, abs=1e-7), (name, step)
    batched = jax.jit(jax.vmap(sched))(jnp.asarray(steps))
    np.testing.assert_allclose(batched, values, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "factory",
    [
        lambda v: S.constant_schedule(v),
        lambda v: S.exponential_decay(v, 10, 0.5),
        lambda v: S.piecewise_constant_schedule([3], [v, v / 10]),
        lambda v: S.linear_schedule(0.0, v, 10),
        lambda v: S.cosine_decay_schedule(v, 10),
        lambda v: S.warmup_cosine_decay_schedule(0.0, v, 3, 10),
        lambda v: S.one_cycle_schedule(10, v),
        lambda v: S.with_warmup(S.cosine_decay_schedule(v, 10), 3),
    ],
    ids=["constant", "exponential", "piecewise", "linear", "cosine", "warmup_cosine",
         "one_cycle", "with_warmup"],
)
def test_traced_value_matches_python_value_and_vmaps(factory):
    steps = jnp.arange(12, dtype=jnp.int32)
    expected = np.stack([jax.vmap(factory(v))(steps) for v in (0.1, 0.3)])
    traced = jax.jit(jax.vmap(lambda v: jax.vmap(factory(v))(steps)))(
        jnp.asarray([0.1, 0.3], jnp.float32)
    )
    np.testing.assert_allclose(traced, expected, rtol=1e-6, atol=1e-7)


def test_schedules_run_inside_scan():
    sched = S.warmup_cosine_decay_schedule(0.0, 1.0, 5, 20)

    def body(count, _):
        return count + 1, sched(count)

    _, values = jax.lax.scan(body, jnp.zeros((), jnp.int32), None, length=25)
    expected = [float(sched(i)) for i in range(25)]
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: S.cosine_decay_schedule(1.0, 50, alpha=0.2),
        lambda: S.exponential_decay(1.0, 7, 0.8),
        lambda: S.polynomial_schedule(1.0, 0.1, 3.0, 50),
        lambda: S.piecewise_constant_schedule([10, 20, 30], [1.0, 0.5, 0.2, 0.1]),
    ],
)
def test_decay_schedules_are_non_increasing(factory):
    values = np.asarray(jax.vmap(factory())(jnp.arange(80)))
    assert np.all(np.diff(values) <= 1e-7)


@given(
    step=st.integers(min_value=0, max_value=10**6),
    warmup=st.integers(min_value=0, max_value=100),
    extra=st.integers(min_value=1, max_value=1000),
)
def test_warmup_cosine_stays_between_its_end_points(step, warmup, extra):
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        sched = S.warmup_cosine_decay_schedule(0.01, 1.0, warmup, warmup + extra, end_value=0.001)
        value = float(sched(jnp.asarray(step, jnp.int32)))
    assert 0.001 * (1 - 1e-6) <= value <= 1.0 * (1 + 1e-6)
    if step == warmup:
        assert value == pytest.approx(1.0, rel=1e-6)


def test_warmup_cosine_is_continuous_at_the_end_of_warmup(x64):
    sched = S.warmup_cosine_decay_schedule(0.0, 1.0, 100, 1000)
    assert float(sched(99)) == pytest.approx(0.99, rel=1e-12)
    assert float(sched(100)) == pytest.approx(1.0, rel=1e-12)
    assert float(sched(101)) == pytest.approx(0.5 * (1 + COS(PI / 900)), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

BAD = [
    (lambda: S.piecewise_constant_schedule([10, 10], [1.0, 0.5, 0.1]), "boundaries", "[10, 10]"),
    (lambda: S.piecewise_constant_schedule([20, 10], [1.0, 0.5, 0.1]), "boundaries", "[20, 10]"),
    (lambda: S.piecewise_constant_schedule([-1, 10], [1.0, 0.5, 0.1]), r"boundaries\[0\]", "-1"),
    (lambda: S.piecewise_constant_schedule([10], [1.0]), "values", "1"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 3, [5, 3]), "boundaries", "[5, 3]"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 2, [5, 6]), "schedules", "3"),
    (lambda: S.exponential_decay(1.0, 0, 0.5), "transition_steps", "0"),
    (lambda: S.exponential_decay(1.0, 10, 0.0), "decay_rate", "0.0"),
    (lambda: S.exponential_decay(1.0, 10, 0.5, transition_begin=-3), "transition_begin", "-3"),
    (lambda: S.exponential_decay(1.0, 10.5, 0.5), "transition_steps", "10.5"),
    (lambda: S.polynomial_schedule(1.0, 0.0, 0.0, 10), "power", "0.0"),
    (lambda: S.linear_schedule(1.0, 0.0, -5), "transition_steps", "-5"),
    (lambda: S.cosine_decay_schedule(1.0, 0), "decay_steps", "0"),
    (lambda: S.cosine_decay_schedule(1.0, 10, alpha=1.5), "alpha", "1.5"),
    (lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10), "decay_steps", "10"),
    (lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, -1, 10), "warmup_steps", "-1"),
    (lambda: S.one_cycle_schedule(100, 1.0, pct_start=1.5), "pct_start", "1.5"),
    (lambda: S.one_cycle_schedule(100, 1.0, div_factor=0.0), "div_factor", "0.0"),
    (lambda: S.one_cycle_schedule(100, 1.0, anneal_strategy="exp"), "anneal_strategy", "'exp'"),
    (lambda: S.one_cycle_schedule(3, 1.0, pct_start=0.1), "pct_start", "0.1"),
    (lambda: S.with_warmup(S.constant_schedule(1.0), -2), "warmup_steps", "-2"),
]


@pytest.mark.parametrize("factory,arg,value", BAD, ids=[f"{a}={v}" for _, a, v in BAD])
def test_bad_input_raises_naming_argument_and_value(factory, arg, value):
    with pytest.raises(ValueError, match=rf"{arg}.*{re.escape(value)}"):
        factory()
