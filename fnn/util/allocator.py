"""Keep freed host memory for reuse: glibc malloc settings for programs with large temporaries.

XLA:CPU allocates each executable's temporaries as one block per call (74 MB for the benchmark
CNN's training step at batch 128). glibc serves a block that large with ``mmap`` and returns it
with ``munmap`` on free, so every call page-faults the whole block in again: about 18,000 minor
faults, a third of that step's time on a 2-core machine (``/usr/bin/time -v`` reports them).
Keeping freed memory in the heap makes the next call reuse the same pages:

    M_ARENA_MAX = 1          one arena: every thread's blocks come from the main (brk) heap,
                             which can grow past the 64 MB limit of a thread arena's heap
    M_MMAP_MAX = 0           no block is served by mmap
    M_TRIM_THRESHOLD = 2³¹−1 freed memory at the heap's top is kept up to 2 GiB (mallopt's
                             largest value; the environment variable below takes any size)

The cost: the process keeps its peak heap for its lifetime (peak RSS itself does not grow). The
same settings as environment variables, for any process (set before it starts):
``MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4611686018427387904``.

One arena also keeps XLA's worker threads from growing an arena each (glibc's default is 8 per
core): on configs/fashion_mnist.toml capping them cut peak RSS by ~80 MB.

Every ``fnn`` command calls :func:`retain_freed_memory` at start-up (``FNN_MALLOC=system`` leaves
glibc's defaults). A Python program calls ``fnn.retain_freed_memory()`` itself, first thing,
before JAX starts its threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4
M_ARENA_MAX = -8
NEVER_TRIM = 1 << 62  # the environment variable's value: never trim

ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(NEVER_TRIM)}
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
    ok = lib.mallopt(M_ARENA_MAX, 1) == 1
    ok &= lib.mallopt(M_MMAP_MAX, 0) == 1
    # the threshold is an int in mallopt's signature: the largest one it takes
    ok &= lib.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return bool(ok)
