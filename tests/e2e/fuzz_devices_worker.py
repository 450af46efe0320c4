"""The multi-device fuzz's child process (tests/e2e/test_fuzz.py::test_fuzz_multi_device_runs).

Started with four CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``, fixed
when JAX starts, hence a process of its own); runs the hypothesis examples in-process through
``fnn.cli.main`` with the fuzz's property (test_fuzz.check) and prints ``examples N`` at the end.
A failing example raises, with hypothesis's report, and the child exits non-zero.
"""
from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS), str(TESTS / "e2e")]

import conftest  # noqa: E402,F401  (the cheap XLA flags and the derandomized profile)
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import test_fuzz as T  # noqa: E402
from fnn.experiment import config as C  # noqa: E402

SEEN = collections.Counter()


@T.FUZZ
@given(devices=st.sampled_from([0, 1, 2, 3, 4, 5, 8, -1]),
       batch=st.sampled_from([1, 2, 3, 4, 6, 8, 12]), seeds=st.integers(1, 6),
       accumulate=st.sampled_from([1, 2, 3]), host=st.sampled_from([0, 1, 2, 3]),
       command=st.sampled_from(["train", "sweep"]), grid=st.booleans())
def fuzz_devices(devices, batch, seeds, accumulate, host, command, grid):
    raw = C.deepcopy(T.BASE)
    raw["training"] = {"epochs": 1, "batch_size": batch, "accumulate": accumulate,
                       "seeds": list(range(seeds))}
    raw["parallel"] = {"devices": devices, "host_devices": host}
    with T.Workdir() as root:
        (root / "c.toml").write_text(T._toml(raw))
        argv = [command, "c.toml"] + (["--grid", "optimizer.learning_rate=0.1,0.01"]
                                      if grid and command == "sweep" else [])
        SEEN[T.check(root, *argv)] += 1


if __name__ == "__main__":
    assert "device_count=4" in os.environ.get("XLA_FLAGS", ""), "start me with four devices"
    fuzz_devices()
    print("examples", sum(SEEN.values()), dict(SEEN))
