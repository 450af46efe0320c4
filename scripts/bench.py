#!/usr/bin/env python
"""fnn side by side with PyTorch, Flax+optax and scikit-learn on this machine.

    python scripts/bench.py [--cases large,tiny,...] [--only fnn|peers|all] [--out DIR]

One command runs every case and writes ``DIR/bench.json`` and ``DIR/bench.md``:

* ``large``   784-512-512-10 ReLU MLP, softmax cross-entropy, batch 128, Adam(1e-3), one epoch of
  60000 random samples: fnn's scanned run (manual and autodiff gradients), a Python loop over
  fnn's jitted step, PyTorch eager (default and fused Adam), Flax (linen) + optax jitted step loop.
* ``tiny``    the same contestants on a 2-16-16-2 MLP, batch 32.
* ``util``    the large MLP's training FLOP/s (6 × weights × samples) over the XLA fp32 matmul
  FLOP/s measured in the same run on the matmuls of that very training step
  (see ``benchlib.fnn_side.util``).
* ``fashion`` Fashion-MNIST time to 0.885 validation accuracy with configs/fashion_mnist.toml run
  by the fnn CLI (cold compilation cache, compile included), against scikit-learn's
  MLPClassifier (adam, same hidden sizes) and PyTorch running the same recipe.
* ``sweep``   a 16-member vmapped sweep of the tiny MLP (``Trainer.sweep``) vs one member
  (``Trainer.train``).
* ``startup`` wall time of ``fnn train configs/quickstart.toml`` with a fresh ``$FNN_CACHE_DIR``
  (cold) and again with JAX's persistent compilation cache filled (warm).

Method. Every contestant runs in its own child process (so each one's peak resident memory,
``VmHWM``, is its own and no framework's thread pool competes with another's), pinned with
``sched_setaffinity`` to the same ``--threads`` cores (default: all schedulable cores). XLA's CPU
client sizes its intra-op thread pool to the schedulable cores, so it uses exactly that many;
PyTorch gets ``torch.set_num_threads`` of the same count, scikit-learn a ``threadpoolctl`` limit.
Every contestant of a case gets the same data (a seeded NumPy generator), the same initial weights
(He-normal for ReLU layers, Glorot-uniform for the output layer, zero biases — fnn's defaults,
drawn once with NumPy and loaded into every framework), the same optimizer and batch size, and
the same per-epoch permutation (padded with its own first entries to a whole number of batches,
as fnn's engine does). Each timing is the median of ``--repeats`` epochs after a warm-up epoch
that includes compilation; first-call times are reported separately.

This process imports neither fnn nor jax (the modules in ``scripts/benchlib/`` import only the
standard library at the top): each worker imports its own framework, and the peers
(``pip install 'fnn[bench]'``) are never dependencies of fnn. A peer that is not installed is
skipped with the reason in the results.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # run from any directory, or loaded by runpy / importlib (tests)
    sys.path.insert(0, _HERE)

from benchlib import report  # noqa: E402
from benchlib.cases import run_case  # noqa: E402
from benchlib.settings import CASES, RESULT_TAG, ROOT, allowed_cpus, settings_from_args  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench.py", description="fnn vs PyTorch, Flax+optax and scikit-learn on this machine; "
        "writes bench.json and bench.md.")
    p.add_argument("--cases", default=",".join(CASES),
                   help=f"comma-separated cases to run (default: all of {','.join(CASES)})")
    p.add_argument("--only", choices=("all", "fnn", "peers"), default="all",
                   help="run only fnn's contestants or only the peers (default: all)")
    p.add_argument("--out", default="bench-results", metavar="DIR",
                   help="directory for bench.json and bench.md (default: bench-results)")
    p.add_argument("--threads", type=int, default=None,
                   help="cores per contestant (default: all schedulable cores)")
    p.add_argument("--repeats", type=int, default=None, help="timed epochs per contestant (default 5)")
    p.add_argument("--samples", type=int, default=None, help="samples per epoch in large/tiny/sweep")
    p.add_argument("--members", type=int, default=None, help="sweep members (default 16)")
    p.add_argument("--sklearn-epochs", type=int, default=20, help="MLPClassifier epochs (default 20)")
    p.add_argument("--fashion-config", default=str(ROOT / "configs" / "fashion_mnist.toml"))
    p.add_argument("--startup-config", default=str(ROOT / "configs" / "quickstart.toml"))
    p.add_argument("--timeout", type=int, default=1800, help="seconds per child process")
    p.add_argument("--quick", action="store_true",
                   help="small sizes for a smoke run (not meaningful timings)")
    p.add_argument("--in-process", action="store_true",
                   help="run contestants in this process (tests; no per-contestant memory)")
    return p


def run(args, log=print) -> dict:
    """Run the selected cases; write DIR/bench.json and DIR/bench.md; return the results."""
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise ValueError(f"--cases: unknown {unknown}; expected names from {','.join(CASES)}")
    settings = settings_from_args(args)
    if settings["threads"] < 1 or settings["threads"] > len(allowed_cpus()):
        raise ValueError(f"--threads: {settings['threads']}; expected 1..{len(allowed_cpus())}")
    results = {"tag": RESULT_TAG, "settings": settings, "environment": report.environment(settings),
               "cases": {}}
    log(f"bench: {results['environment']['cpu']}, {settings['threads']} thread(s), "
        f"load {results['environment']['load_avg_start']}")
    for name in CASES:  # in this order: util reads large's results
        if name in cases:
            log(f"[{name}]")
            results["cases"][name] = run_case(name, settings, args.only, log, results["cases"])
    results["environment"]["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    results["targets"] = report.evaluate_targets(results["cases"])
    out = Path(args.out)
    report.write(results, out)
    log(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return results


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except ValueError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
