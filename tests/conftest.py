"""Shared pytest configuration.

* x64 is *off* globally; tests that need float64 enable it locally with
  ``with jax.enable_x64(True):`` (see the ``x64`` fixture).
* Strict dtype promotion and rank promotion are raised as errors, as in equinox's
  test suite, so that a silent float32->float64 upcast or a broadcast of a
  rank-1 array against a rank-2 array is a test failure.
* Hypothesis runs derandomized, so CI is reproducible.
"""
import jax
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fnn",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("fnn")


@pytest.fixture(autouse=True)
def _strict_promotion():
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        yield


@pytest.fixture
def x64():
    """Enable float64 for the duration of one test."""
    with jax.enable_x64(True):
        yield
