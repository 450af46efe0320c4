"""The benchmark's cases, contestants and sizes (all sizes of a run in one dict)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: scripts/benchlib/ -> .
SCRIPTS = Path(__file__).resolve().parents[1]  # scripts/, the parent of this package
CASES = ("large", "tiny", "util", "fashion", "sweep", "startup")
MLP_CONTESTANTS = ("fnn-scan", "fnn-scan-autodiff", "fnn-loop", "torch", "torch-fused", "flax")
PEER_MODULES = {"torch": ("torch",), "torch-fused": ("torch",), "flax": ("flax", "optax"),
                "sklearn": ("sklearn",)}
TARGET_ACCURACY = 0.885
RESULT_TAG = "fnn-bench"


def settings_from_args(args) -> dict:
    """The benchmark's parameters (all sizes in one dict, recorded in the JSON)."""
    quick = args.quick
    s = {
        "threads": args.threads or len(allowed_cpus()),
        "repeats": args.repeats or (2 if quick else 5),
        "seed": 0,
        "large": {"sizes": [784, 64, 64, 10] if quick else [784, 512, 512, 10], "batch": 128,
                  "samples": args.samples or (2048 if quick else 60000), "learning_rate": 1e-3},
        "tiny": {"sizes": [2, 16, 16, 2], "batch": 32,
                 "samples": args.samples or (2048 if quick else 60000), "learning_rate": 1e-3},
        "val_samples": 256 if quick else 1024,
        "sweep": {"members": args.members or (4 if quick else 16)},
        "fashion": {"config": str(args.fashion_config), "target": TARGET_ACCURACY,
                    "sklearn_epochs": args.sklearn_epochs, "sklearn_time_cap_s": 900},
        "startup": {"config": str(args.startup_config), "repeats": 1 if quick else 3},
        "worker_timeout_s": args.timeout,
        "in_process": args.in_process,
    }
    # The tiny MLP runs ~100x faster per epoch: take more repeats for a stable median.
    s["tiny"]["repeats"] = max(s["repeats"], 2 if quick else 9)
    s["large"]["repeats"] = s["repeats"]
    return s


def allowed_cpus() -> list:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))
