"""Keep freed host memory for reuse: glibc malloc settings for programs with large temporaries.

XLA:CPU allocates an executable's temporaries as one block per call (74 MB for the benchmark
CNN's training step at batch 128). glibc serves a block that large with ``mmap`` and returns it
with ``munmap`` on free, so every call page-faults the whole block in again: 18,154 minor faults
per step, and the step took 110 ms instead of 67 ms on a 2-core machine (the faults are in
``/usr/bin/time -v``'s "Minor page faults"). Keeping freed memory in the heap lets the next call
reuse the same pages:

    M_ARENA_MAX = cores      one arena per core (at least 2), not glibc's 8 per core
    M_MMAP_MAX = 0           no block is served by mmap
    M_TRIM_THRESHOLD         freed memory at the heap's top is kept (2³¹−1 bytes, mallopt's
                             largest value; the environment variable below takes any size)

Capping the arenas stops XLA's worker threads from growing an arena each (glibc's default is 8
per core; capping them cut the Fashion-MNIST MLP config's peak RSS by ~80 MB). A cap of *one*
arena, tried first, serialized XLA's compiler threads on one lock: on the 2-core AMD EPYC (AVX2)
the quickstart's scanned run compiled in 2.1-2.6 s against 1.6-1.7 s without a cap, and
``fnn train configs/fashion_mnist.toml`` took 56-59 s against 47 s with one arena per core
(peak RSS 631-649 MB with one, 656 MB with two, 678-681 MB uncapped; ``/usr/bin/time -v``).
The large temporaries are allocated by the thread that calls the executable, which owns the
main (brk) heap, so one arena per core keeps them out of mmap all the same. The cost: the
process keeps its peak heap until it exits.

Two ways to apply them:

* as environment variables, before the process starts — complete (39 faults per CNN step):
  ``MALLOC_ARENA_MAX=<cores> MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4611686018427387904``
  (:data:`ENV`; ``scripts/bench.py`` gives them to every contestant, fnn and peers alike);
* :func:`retain_freed_memory` (``mallopt``), from inside the process. Every ``fnn`` command calls
  it at start-up (``FNN_MALLOC=system`` opts out); a Python program calls
  ``fnn.retain_freed_memory()`` first thing. A thread that already owns an arena keeps it, so
  this is partial (about 900 faults per CNN step, 73 ms).

The scanned training loop (:class:`fnn.Trainer`) allocates its temporaries once per call of the
whole run, so it gains little; a Python loop over a jitted step, and evaluation in chunks, gain
the most.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4
M_ARENA_MAX = -8
NEVER_TRIM = 1 << 62  # the environment variable's value: never trim

ARENAS = max(2, os.cpu_count() or 2)  # one arena per core (module docstring)
ENV = {"MALLOC_ARENA_MAX": str(ARENAS), "MALLOC_MMAP_MAX_": "0",
       "MALLOC_TRIM_THRESHOLD_": str(NEVER_TRIM)}
OPT_OUT = "FNN_MALLOC"  # FNN_MALLOC=system: leave malloc as it is


def _libc():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    return lib if hasattr(lib, "mallopt") else None


def retain_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (module docstring).

    Call it before JAX creates its thread pool (before the first computation): a thread that has
    already allocated keeps its own arena. A no-op off glibc (macOS, musl) and when the
    environment variable ``FNN_MALLOC=system`` is set.

    Returns:
      True if all three settings were applied.
    """
    if os.environ.get(OPT_OUT, "").strip().lower() == "system":
        return False
    if os.environ.get("FNN_MALLOC_ARENAS", "").strip() == "0":  # the earlier opt-out
        return False
    lib = _libc()
    if lib is None:
        return False
    lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.mallopt.restype = ctypes.c_int
    ok = lib.mallopt(M_ARENA_MAX, ARENAS) == 1
    ok &= lib.mallopt(M_MMAP_MAX, 0) == 1
    # the threshold is an int in mallopt's signature: the largest one it takes
    ok &= lib.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return bool(ok)
