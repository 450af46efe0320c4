#!/usr/bin/env python
"""fnn side by side with PyTorch, Flax+optax and scikit-learn: ``python scripts/bench.py --help``.

The implementation is :mod:`fnn.bench` (also ``fnn bench``). It is loaded here from its file so
that this parent process imports neither fnn nor jax: every contestant runs in its own child.
"""
import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "fnn" / "bench.py"
_spec = importlib.util.spec_from_file_location("_fnn_bench", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

if __name__ == "__main__":
    sys.exit(bench.main())
