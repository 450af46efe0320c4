"""fnn.retain_freed_memory: a jitted call with a 75 MB temporary stops page-faulting it in again
on every call; FNN_MALLOC=system opts out; the CLI applies it."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")

PROBE = textwrap.dedent("""
    import json, resource, sys
    import fnn
    applied = fnn.retain_freed_memory()
    import jax, jax.numpy as jnp
    from jax import lax

    @jax.jit
    def f(x):  # im2col: a (64·16·16, 9·32) patch matrix, 19 MB, and a product of it, 75 MB
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        p = jnp.concatenate([xp[:, i:i + 16, j:j + 16] for i in range(3) for j in range(3)], -1)
        y = p.reshape(-1, 288) @ jnp.ones((288, 1152), jnp.float32)
        return jnp.max(y, axis=0)

    x = jnp.ones((64, 16, 16, 32), jnp.float32)
    for _ in range(3):
        f(x).block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        f(x).block_until_ready()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
    print(json.dumps({"applied": applied, "faults_per_call": faults}))
""")

PAGES = (64 * 16 * 16 * 1152 * 4) // 4096  # the product's 4 KiB pages


def _probe(**env) -> dict:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("FNN_MALLOC", "MALLOC_"))}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_retained_memory_is_reused_across_calls():
    got = _probe()
    assert got["applied"] is True
    # without it every call faults its temporaries in again (~8,700 pages here, see below);
    # with it the same pages are reused: a few of bookkeeping at most
    assert got["faults_per_call"] < PAGES / 20, got


def test_opt_out_leaves_malloc_alone():
    got = _probe(FNN_MALLOC="system")
    assert got["applied"] is False
    try:
        thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        thp = ""
    if "[always]" not in thp:  # with 4 KiB pages the default re-faults the block every call
        assert got["faults_per_call"] > PAGES / 4, got


def test_the_cli_applies_it_before_parsing(monkeypatch):
    import fnn.cli as cli

    calls = []
    monkeypatch.setattr(cli, "retain_freed_memory", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and calls == [1]
