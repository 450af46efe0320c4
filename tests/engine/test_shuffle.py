"""fnn.shuffle: the engine's per-epoch permutation (a keyed Feistel bijection, filtered to [0, n)).

What a user relies on: every example exactly once per epoch, for every n and key; the same
permutation under jit and vmap; different keys give (statistically) unrelated orders with
each position uniform over the examples.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from markers import slow_cases
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.engine import shuffle


def _perms(n, num_keys, seed=0, positions=None):
    """(num_keys, n) permutations, or only their columns ``positions``."""
    keys = jax.random.split(jax.random.key(seed), num_keys)
    take = (lambda p: p) if positions is None else (lambda p: p[np.asarray(positions)])
    return np.asarray(jax.jit(jax.vmap(lambda k: take(shuffle.permutation(k, n))))(keys))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 100, 1023, 1024, 1025,
                               60000, 65536, 65537])
def test_is_a_permutation(n):
    p = np.asarray(shuffle.permutation(jax.random.key(n), n))
    assert p.dtype == np.int32 and p.shape == (n,)
    np.testing.assert_array_equal(np.sort(p), np.arange(n))


@settings(max_examples=30)
@given(n=st.integers(0, 5000), seed=st.integers(0, 2**31 - 1))
def test_is_a_permutation_for_random_sizes_and_keys(n, seed):
    p = np.asarray(shuffle.permutation(jax.random.key(seed), n))
    np.testing.assert_array_equal(np.sort(p), np.arange(n))


@pytest.mark.parametrize("bits", range(0, 15))
def test_feistel_is_a_bijection_of_the_whole_domain(bits):
    keys = jax.random.bits(jax.random.key(bits), (shuffle.ROUNDS,), jnp.uint32)
    y = np.asarray(shuffle.feistel(jnp.arange(1 << bits, dtype=jnp.uint32), keys, bits))
    np.testing.assert_array_equal(np.sort(y), np.arange(1 << bits))


def test_deterministic_and_the_same_under_jit_and_vmap():
    keys = jax.random.split(jax.random.key(7), 5)
    eager = np.stack([np.asarray(shuffle.permutation(k, 777)) for k in keys])
    np.testing.assert_array_equal(_perms(777, 5, seed=7), eager)
    np.testing.assert_array_equal(np.asarray(shuffle.permutation(keys[0], 777)), eager[0])
    raw = jax.random.key_data(keys[0])  # a raw uint32[2] key works too
    assert np.asarray(shuffle.permutation(raw, 777)).shape == (777,)


def test_different_keys_give_different_orders():
    p = _perms(1000, 64)
    assert len({row.tobytes() for row in p}) == 64
    # Two independent uniform permutations agree in ~1 position on average.
    agree = [(p[i] == p[i + 1]).sum() for i in range(63)]
    assert np.mean(agree) < 3


def _chi2_upper(df, z=4.0):
    """A conservative upper bound on chi-square(df) (Wilson–Hilferty at z sigma, ~3e-5)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


@pytest.mark.parametrize("n", slow_cases([5, 10, 37, shuffle.SORT_BELOW + 1, 1500, 5000, 33000],
                                         slow={1500, 5000, 33000}))
def test_every_position_is_uniform_over_the_examples(n):
    """Where value v lands at position i over many keys: chi-square against uniform, per
    position (values grouped into at most 50 equal bins, so each bin expects >= 80)."""
    keys = 4000 if n < 10000 else 1000  # (33000: 16 bits, half the domain filtered out)
    positions = sorted({0, 1, n // 2, n - 1})
    p = _perms(n, keys, seed=n, positions=positions)
    bins = min(n, 50 if n < 10000 else 20)
    expected = keys / bins
    for j, pos in enumerate(positions):
        counts = np.bincount(p[:, j].astype(np.int64) * bins // n, minlength=bins)
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < _chi2_upper(bins - 1), (pos, counts)


def test_sizes_up_to_the_threshold_are_exactly_jax_random_permutation():
    key = jax.random.key(5)
    np.testing.assert_array_equal(np.asarray(shuffle.permutation(key, shuffle.SORT_BELOW)),
                                  np.asarray(jax.random.permutation(key, shuffle.SORT_BELOW)))


def test_neighbouring_positions_are_unrelated():
    """The order of two neighbouring positions is a fair coin, and p[i+1] - p[i] is not fixed
    (an affine shuffle such as (a i + b) mod n would fail both)."""
    n, keys = 3000, 4000
    p = _perms(n, keys, seed=3)
    below = (p[:, 10] < p[:, 11]).mean()
    assert abs(below - 0.5) < 4 * math.sqrt(0.25 / keys)
    diffs = (p[:, 1:] - p[:, :-1]) % n
    assert max(np.bincount(row, minlength=n).max() for row in diffs[:50]) < 12
    # Rank correlation of the value with its position, averaged over keys: ~0.
    pos = np.arange(n) - (n - 1) / 2
    corr = ((p - (n - 1) / 2) * pos).sum(1) / (pos ** 2).sum()
    assert abs(corr.mean()) < 4 * corr.std() / math.sqrt(keys)


@pytest.mark.parametrize("n", [-1, 2**31 + 1])
def test_bad_sizes(n):
    with pytest.raises(ValueError, match=r"^n: "):
        shuffle.permutation(jax.random.key(0), n)
