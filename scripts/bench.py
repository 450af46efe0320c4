#!/usr/bin/env python
"""fnn side by side with PyTorch, Flax+optax and scikit-learn on this machine.

    python scripts/bench.py [--cases large,tiny,...] [--only fnn|peers|all] [--out DIR]
    python scripts/bench.py --cases cnn,fashion_cnn,sweep --quick    # a smoke run of the new cases
    python scripts/bench.py --device gpu ...                           # JAX on CUDA, PyTorch on CUDA

One command runs every case and writes ``DIR/bench.json`` and ``DIR/bench.md``:

* ``large``   784-512-512-10 ReLU MLP, softmax cross-entropy, batch 128, Adam(1e-3), one epoch of
  60000 random samples: fnn's scanned run (manual and autodiff gradients), a Python loop over
  fnn's jitted step, PyTorch eager (default and fused Adam), Flax (linen) + optax jitted step loop.
* ``tiny``    the same contestants on a 2-16-16-2 MLP, batch 32.
* ``util``    the large MLP's training FLOP/s (6 × weights × samples) over the XLA fp32 matmul
  FLOP/s measured in the same run on the matmuls of that very training step
  (see ``benchlib.fnn_side.util``).
* ``cnn``     the 2-conv CNN (32 and 64 filters 3x3 same, 2x2 max pools, dense 128, 10 outputs),
  batch 128, one jitted SGD step per batch of random data: fnn's manual backward with Conv2D
  formulation "auto" and each formulation explicitly (im2col, xla, hybrid, correlation,
  winograd), ``jax.grad`` of the same Sequential, "auto" with the batch's rows split over one CPU
  device per core (``fnn-split``, its own child), PyTorch eager and ``torch.compile``; the same initial weights (HWIO kernels
  converted to OIHW, the first dense layer's rows permuted from NHWC to NCHW flatten order), so
  the first step's loss agrees across all of them. fnn's contestants run interleaved in one
  process, PyTorch's in another; samples/s, the ratio to PyTorch eager, compile time apart.
* ``fashion`` Fashion-MNIST time to 0.885 validation accuracy with configs/fashion_mnist.toml run
  by the fnn CLI (cold compilation cache, compile included), against scikit-learn's
  MLPClassifier (adam, same hidden sizes) and PyTorch running the same recipe.
* ``fashion_cnn`` configs/fashion_cnn.toml end to end (``python -m fnn train ... --quiet``, fresh
  compilation cache; wall time of the process, test accuracy from summary.json) against the same
  layers and recipe in PyTorch eager: wall-time ratio and test-accuracy difference.
* ``sweep``   a 16-member vmapped sweep of the tiny MLP (``Trainer.sweep``) vs one member
  (``Trainer.train``), wall ratio; and 16 seeds of configs/fashion_mnist.toml's MLP (one epoch)
  as one sweep vs 16 ``Trainer.train`` runs one after another, in member-samples/s.
* ``memory``  configs/fashion_cnn.toml and configs/fashion_mnist.toml on a few images
  (``--n-images``, default 2048) for ``--memory-epochs`` (1): XLA's memory figures of every
  compiled program (arguments, outputs, temporaries, code) against the process's peak RSS, and
  PyTorch's peak RSS on the same CNN recipe when torch is installed (``benchlib/memory.py``).
* ``startup`` ``fnn --help``, ``fnn train --help`` and a config error (median wall, whether
  JAX was imported); ``fnn train configs/quickstart.toml`` with a fresh ``$FNN_CACHE_DIR``
  (cold: wall and the moment the summary table is printed) and with JAX's persistent
  compilation cache filled (warm); with ``--startup-baseline DIR``, DIR's older fnn cold,
  interleaved (see ``benchlib/startup.py``).

Method. Every contestant runs in its own child process (so each one's peak resident memory,
``VmHWM``, is its own and no framework's thread pool competes with another's), pinned with
``sched_setaffinity`` to the same ``--threads`` cores (default: all schedulable cores). XLA's CPU
client sizes its intra-op thread pool to the schedulable cores, so it uses exactly that many;
PyTorch gets ``torch.set_num_threads`` of the same count, scikit-learn a ``threadpoolctl`` limit.
Every child, whatever its framework, gets the same glibc malloc settings (``--malloc retain``, the
default: freed blocks are kept for reuse, as every ``fnn`` command sets them; see
``fnn/util/allocator.py``), so no contestant pays page faults for memory another would recycle.
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
from benchlib.workers import environ  # noqa: E402
from benchlib.settings import (ALL_CONTESTANTS, CASES, RESULT_TAG, ROOT, allowed_cpus,  # noqa: E402
                               malloc_env, settings_from_args)


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
    p.add_argument("--startup-baseline", default=None, metavar="DIR",
                   help="startup case: also run DIR's fnn (a checkout of an older commit, e.g. "
                        "git worktree add /tmp/old 5f7e31a) on its quickstart, cold, interleaved")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per child process")
    p.add_argument("--fashion-members", type=int, default=None,
                   help="members of the Fashion-MNIST MLP sweep in the sweep case (default 16)")
    p.add_argument("--fashion-cnn-config", default=str(ROOT / "configs" / "fashion_cnn.toml"))
    p.add_argument("--fashion-cnn-epochs", type=int, default=None,
                   help="override the CNN config's training.epochs (default: the config's)")
    p.add_argument("--fashion-epochs", type=int, default=None,
                   help="override the MLP config's training.epochs in the fashion case")
    p.add_argument("--n-images", type=int, default=None,
                   help="data.n_samples for the Fashion-MNIST runs (default: all; --quick: 512 "
                        "for fashion_cnn and the Fashion sweep)")
    p.add_argument("--memory-epochs", type=int, default=None,
                   help="memory case: training.epochs of each run (default 1)")
    p.add_argument("--skip", default="", metavar="LIST",
                   help="comma-separated contestants not to run, in every case (e.g. "
                        "sklearn,fnn-hybrid); each is listed as skipped")
    p.add_argument("--cnn-steps", type=int, default=None, help="CNN steps per timed round (default 20)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="cpu (default) or gpu: JAX_PLATFORMS=cuda for fnn, PyTorch on CUDA")
    p.add_argument("--no-torch-compile", action="store_true",
                   help="skip the torch.compile contestants (their compilation takes ~40 s on CPU)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes for a smoke run (not meaningful timings)")
    p.add_argument("--malloc", choices=("retain", "system"), default="retain",
                   help="retain (default): every contestant, fnn and peers alike, runs with glibc "
                        "keeping freed blocks for reuse (fnn.util.allocator: MALLOC_ARENA_MAX=<cores> "
                        "MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2^62); system: glibc's defaults")
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
    unknown = sorted(set(settings["skip"]) - set(ALL_CONTESTANTS))
    if unknown:
        raise ValueError(f"--skip: unknown {unknown}; expected names from {','.join(ALL_CONTESTANTS)}")
    if settings["threads"] < 1 or settings["threads"] > len(allowed_cpus()):
        raise ValueError(f"--threads: {settings['threads']}; expected 1..{len(allowed_cpus())}")
    if settings["device"] == "gpu":  # the workers inherit it (child_env keeps a set value)
        os.environ.setdefault("JAX_PLATFORMS", "cuda")
    # inherited by every child, whatever its framework; restored when the run ends
    malloc = malloc_env() if settings["malloc"] == "retain" else {"FNN_MALLOC": "system"}
    with environ(malloc):
        return _run_cases(args, cases, settings, log)


def _run_cases(args, cases, settings, log) -> dict:
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
