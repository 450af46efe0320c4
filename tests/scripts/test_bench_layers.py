"""scripts/bench_layers.py at tiny sizes: every formulation runs, and with PyTorch the per-layer
convolution and the GEMM comparison run on the same shapes (no timings are asserted)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import bench_layers  # noqa: E402


def test_every_formulation_is_timed_on_a_tiny_layer():
    fwd = bench_layers.conv_case((6, 6, 2), 3, batch=2, rounds=1)
    dx = bench_layers.conv_input_grad_case((6, 6, 2), 3, batch=2, rounds=1)
    assert set(fwd) == set(dx) == {"im2col", "hybrid", "correlation", "xla", "winograd"}
    assert all(t > 0 for t in (*fwd.values(), *dx.values()))


def test_the_pytorch_side_times_the_same_layer_and_product():
    pytest.importorskip("torch")
    r = bench_layers.torch_conv_case((6, 6, 2), 3, batch=2, rounds=1)
    assert set(r) == {"fwd+bwd", "dL/dX"} and min(r.values()) > 0
    gj, gt = bench_layers.gemm_case(33, 17, 9, rounds=1, number=1)  # asserts the products agree
    assert gj > 0 and gt > 0
