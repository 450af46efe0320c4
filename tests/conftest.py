"""Shared pytest configuration.

* XLA compiles with cheap settings (see below): tests are dominated by compile time.
* x64 is *off* globally; tests that need float64 enable it locally with
  ``with jax.enable_x64(True):`` (see the ``x64`` fixture).
* Strict dtype promotion and rank promotion are raised as errors, as in equinox's
  test suite, so that a silent float32->float64 upcast or a broadcast of a
  rank-1 array against a rank-2 array is a test failure.
* Hypothesis runs derandomized, so CI is reproducible.
* Slow tests are collected first (see ``pytest_collection_modifyitems``).
"""
import os

# Tests are dominated by XLA compile time, not by arithmetic: compile with XLA:CPU's cheap
# settings (3-5x faster test runs). The arithmetic is the same op for op, but fusion decides which
# products become fused multiply-adds, so the last bits can differ from a default build (seen in
# a Lion moment under the flat update). The pins are taken under these settings; the checks that
# claim bitwise equality for users' programs run children with FNN_ORIGINAL_XLA_FLAGS.
# FNN_TEST_FULL_OPT=1 keeps the defaults.
if os.environ.get("FNN_TEST_FULL_OPT") != "1":
    _CHEAP = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
              "--xla_cpu_use_fusion_emitters=false")
    os.environ.setdefault("FNN_ORIGINAL_XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _CHEAP).strip()

import jax  # noqa: E402  (after XLA_FLAGS: the backend reads them when it starts)
import pytest  # noqa: E402
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


def pytest_collection_modifyitems(config, items):
    """Slow tests first (a stable sort: the order within each group is kept). Under ``-n 2`` the
    long end-to-end tests then start early and the short ones fill both workers at the end,
    instead of one minute-long test running alone after the rest (longest-first scheduling)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
