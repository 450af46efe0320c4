"""Tiny finished runs shared by the handle / export / compare / model-picture tests.

Each run is trained once per test session (in-process, :func:`cli_helpers.run_cli`) into a
temporary directory removed at exit, so the four test modules pay for each run once.
"""
from __future__ import annotations

import atexit
import functools
import gzip
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import CONFIGS, run_cli, shrink_args

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
_ROOT = Path(tempfile.mkdtemp(prefix="fnn-model-runs-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)

# name -> (config, extra --set overrides beyond cli_helpers.SHRINK)
RUNS = {
    "quickstart": ("quickstart", []),
    # three groups (optimizer.name is static) of two seeds each (one vmapped program per group)
    "optimizers": ("optimizers", []),
    "regression_sine": ("regression_sine", []),
    "shapes_cnn": ("shapes_cnn", []),  # an image model: input_shape (16, 16, 1)
    "fashion_mnist": ("fashion_mnist", [f"data.path={FASHION_DIR}", "model.hidden=[64]"]),
}


@functools.cache
def trained(name: str) -> Path:
    """The run directory of ``RUNS[name]``, trained on first use."""
    config, extra = RUNS[name]
    if config == "fashion_mnist" and not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST files not in {FASHION_DIR} (Debian dataset-fashion-mnist)")
    out = _ROOT / name
    args = shrink_args(config)
    for item in extra:
        args += ["--set", item]
    rc, stdout, stderr = run_cli("train", CONFIGS / f"{config}.toml", "--out", out, "--quiet",
                                 *args, plots=True)  # the model-picture tests read its PNGs
    assert rc == 0, stdout + stderr
    return out


def fashion_test_images(n: int) -> np.ndarray:
    """The first ``n`` Fashion-MNIST test images as float32 (n, 784) raw pixels 0..255."""
    with gzip.open(FASHION_DIR / "t10k-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read(16 + 784 * n)
    return np.frombuffer(raw[16:], np.uint8).reshape(n, 784).astype(np.float32)
