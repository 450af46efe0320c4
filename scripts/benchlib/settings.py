"""The benchmark's cases, contestants and sizes (all sizes of a run in one dict)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: scripts/benchlib/ -> .
SCRIPTS = Path(__file__).resolve().parents[1]  # scripts/, the parent of this package
CASES = ("large", "tiny", "util", "cnn", "fashion", "fashion_cnn", "sweep", "memory", "startup")
MLP_CONTESTANTS = ("fnn-scan", "fnn-scan-autodiff", "fnn-scan-flat", "fnn-loop", "torch",
                   "torch-fused", "torch-compile", "flax")
# The CNN case: fnn's contestants run interleaved in one process, PyTorch's in another.
CNN_FNN_CONTESTANTS = ("fnn-manual", "fnn-im2col", "fnn-xla", "fnn-hybrid", "fnn-correlation",
                       "fnn-winograd", "fnn-autodiff", "fnn-split")
CNN_TORCH_CONTESTANTS = ("torch", "torch-compile")
ALL_CONTESTANTS = tuple(dict.fromkeys(
    MLP_CONTESTANTS + CNN_FNN_CONTESTANTS + CNN_TORCH_CONTESTANTS
    + ("xla-matmul", "fnn-train", "fnn-sweep", "fnn-sweep-split", "fnn-fashion-seq", "fnn-fashion-sweep",
       "fnn-fashion-sweep-split", "fnn-cli",
       "sklearn", "cold", "warm", "help", "train-help", "config-error", "baseline-cold",
       "fnn-memory")))
PEER_MODULES = {"torch": ("torch",), "torch-fused": ("torch",), "torch-compile": ("torch",),
                "flax": ("flax", "optax"), "sklearn": ("sklearn",)}
TARGET_ACCURACY = 0.885
RESULT_TAG = "fnn-bench"


def settings_from_args(args) -> dict:
    """The benchmark's parameters (all sizes in one dict, recorded in the JSON)."""
    quick = args.quick
    s = {
        "threads": args.threads or len(allowed_cpus()),
        "device": args.device,
        "malloc": getattr(args, "malloc", "retain"),
        "torch_compile": not args.no_torch_compile,
        "skip": [c.strip() for c in args.skip.split(",") if c.strip()],
        "repeats": args.repeats or (2 if quick else 5),
        "seed": 0,
        "large": {"sizes": [784, 64, 64, 10] if quick else [784, 512, 512, 10], "batch": 128,
                  "samples": args.samples or (2048 if quick else 60000), "learning_rate": 1e-3},
        "tiny": {"sizes": [2, 16, 16, 2], "batch": 32,
                 "samples": args.samples or (2048 if quick else 60000), "learning_rate": 1e-3},
        "val_samples": 256 if quick else 1024,
        "cnn": {"input_shape": [28, 28, 1], "filters": [8, 16] if quick else [32, 64],
                "kernel": 3, "pool": 2, "dense": 32 if quick else 128, "classes": 10,
                "batch": 32 if quick else 128, "learning_rate": 0.01, "optimizer": "sgd",
                "steps": args.cnn_steps or (2 if quick else 20), "distinct_batches": 4,
                "repeats": args.repeats or (2 if quick else 5)},
        "sweep": {"members": args.members or (4 if quick else 16),
                  "fashion_members": args.fashion_members or (4 if quick else 16),
                  "fashion_config": str(args.fashion_config),
                  "fashion_epochs": 1, "fashion_repeats": 1 if quick else 2,
                  "fashion_n_samples": args.n_images or (512 if quick else None),
                  # the -split variants: the members' axis sharded over one CPU device per core
                  "split_devices": max(2, args.threads or len(allowed_cpus()))},
        "fashion": {"config": str(args.fashion_config), "target": TARGET_ACCURACY,
                    "sklearn_epochs": args.sklearn_epochs, "sklearn_time_cap_s": 900,
                    "n_samples": args.n_images, "epochs": args.fashion_epochs},
        # quick: a few hundred images, two epochs (a smoke run; not the config's accuracy)
        "fashion_cnn": {"config": str(args.fashion_cnn_config),
                        "n_samples": args.n_images or (512 if quick else None),
                        "epochs": args.fashion_cnn_epochs or (2 if quick else None)},
        "startup": {"config": str(args.startup_config), "repeats": 1 if quick else 3,
                    "baseline": getattr(args, "startup_baseline", None)},
        # a few images and one epoch: where the bytes go, not the full run's figures
        "memory": {"configs": [str(args.fashion_cnn_config), str(args.fashion_config)],
                   "n_samples": args.n_images or (256 if quick else 2048),
                   "epochs": getattr(args, "memory_epochs", None) or 1},
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


def malloc_env() -> dict:
    """glibc's malloc settings that keep freed blocks for reuse (``fnn.util.allocator.ENV``),
    read from that stdlib-only module's file so that this process imports neither fnn nor jax."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_fnn_allocator", ROOT / "fnn" / "util" / "allocator.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return dict(mod.ENV)
