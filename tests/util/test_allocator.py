"""fnn.retain_freed_memory: glibc stops serving (and returning) large blocks with mmap, so the
next call of a jitted program reuses the pages of the last one's temporaries instead of faulting
them in again; FNN_MALLOC=system opts out; every fnn command applies it before parsing.

What it buys is measured in scripts/bench.py (the CNN case); here the setting itself is checked
through glibc's own accounting (mallinfo2: bytes in mmapped blocks), which is deterministic."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")

PROBE = textwrap.dedent("""
    import ctypes, json
    import fnn

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                    "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        print(json.dumps({"skip": "glibc without mallinfo2"}))
        raise SystemExit
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    applied = fnn.retain_freed_memory()
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(100 * 2**20)  # a temporary the size of a CNN step's
    mapped = libc.mallinfo2().hblkhd - before
    libc.free(block)
    kept = libc.mallinfo2().fordblks  # freed bytes glibc keeps for reuse
    print(json.dumps({"applied": applied, "mapped": mapped, "kept": kept}))
""")

MB100 = 100 * 2**20


def _probe(**env) -> dict:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("FNN_MALLOC", "MALLOC_"))}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True,
                         timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if "skip" in got:
        pytest.skip(got["skip"])
    return got


def test_large_blocks_come_from_the_heap_and_stay_there():
    got = _probe()
    assert got["applied"] is True
    assert got["mapped"] == 0, got          # not an mmap (which free would munmap)
    assert got["kept"] >= MB100, got        # freed, and kept for the next call


def test_opt_out_leaves_malloc_alone():
    for env in ({"FNN_MALLOC": "system"}, {"FNN_MALLOC_ARENAS": "0"}):
        got = _probe(**env)
        assert got["applied"] is False
        assert got["mapped"] >= MB100, got  # glibc's default: a block this large is an mmap


def test_every_command_applies_it_before_parsing(monkeypatch):
    import fnn.cli as cli

    calls = []
    monkeypatch.setattr(cli, "retain_freed_memory", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and calls == [1]
