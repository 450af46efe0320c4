"""Pinned results: a short run of every shipped config ends on exactly these parameters.

The layout and layer work moves code around without changing arithmetic, so the final parameters
of a short run at the config's own seed must stay **bitwise** the same. The pins live in
``tests/pins/<config>.json`` (per ``state.params`` leaf of the final checkpoint: its
sha256, three moments and its first values) with the
fingerprint of the machine that wrote them (JAX version, CPU architecture and instruction-set
flags). On a machine with the same fingerprint the comparison is bitwise; elsewhere XLA may pick
other kernels, so it is to 1e-5 relative (a real change of the math moves parameters far more).

Regenerate after a deliberate change of the arithmetic (say why in the commit):
``FNN_REGEN_PINS=1 python -m pytest tests/e2e/test_pinned.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import jax
import numpy as np
import pytest

from cli_helpers import (CONFIGS, TEXT_CONFIGS, assert_bitwise_equal, checkpoint_arrays,
                         final_checkpoint, params_of, run_cli, shrink_args, write_text_file)

PINS = Path(__file__).resolve().parents[1] / "pins"
FASHION = Path("/usr/share/datasets/fashion-mnist")
# Every shipped config but the image ones that need files (those are pinned when present).
NAMES = sorted(p.stem for p in CONFIGS.glob("*.toml"))


def fingerprint() -> str:
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    except OSError:
        pass
    text = f"jax {jax.__version__} {platform.machine()} {flags}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def leaf_pin(v: np.ndarray) -> dict:
    """What a pin stores of one leaf: its bytes' digest, and values for a tolerant check."""
    f = v.astype(np.float64).ravel()
    return {"dtype": v.dtype.name, "shape": list(v.shape),
            "sha256": hashlib.sha256(v.tobytes()).hexdigest(),
            "moments": [float(f.sum()), float(np.square(f).sum()), float(np.abs(f).sum())],
            "head": [float(x) for x in f[:8]]}


def final_params(tmp_path: Path, name: str) -> dict[str, np.ndarray]:
    out = tmp_path / name
    text = ("--set", f"data.path={write_text_file(tmp_path / 'input.txt')}") \
        if name in TEXT_CONFIGS else ()  # the text configs' file: one the test writes
    rc, stdout, stderr = run_cli("train", CONFIGS / f"{name}.toml", "--out", out,
                                 *shrink_args(name), *text, "--set", "output.plots=false")
    assert rc == 0, stderr
    ckpts = sorted({p.parent for p in out.rglob("ckpt-*.npz")})
    arrays = {}
    for i, ckpt in enumerate(ckpts):
        prefix = f"group{i}/" if len(ckpts) > 1 else ""
        arrays.update({prefix + k: v for k, v in params_of(checkpoint_arrays(
            final_checkpoint(ckpt))).items()})
    assert arrays, f"no parameters in {out}"
    return arrays


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_short_run_parameters_are_pinned(tmp_path, name):
    text = (CONFIGS / f"{name}.toml").read_text()
    if "fashion" in text and not FASHION.is_dir():
        pytest.skip("Fashion-MNIST files not installed")
    got = final_params(tmp_path, name)
    pin = PINS / f"{name}.npz"
    pin = PINS / f"{name}.json"
    if os.environ.get("FNN_REGEN_PINS") == "1":
        PINS.mkdir(exist_ok=True)
        pin.write_text(json.dumps({"fingerprint": fingerprint(),
                                   "leaves": {k: leaf_pin(v) for k, v in got.items()}},
                                  indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {pin}")
    assert pin.exists(), f"no pin for {name}: run FNN_REGEN_PINS=1 python -m pytest {__file__}"
    want = json.loads(pin.read_text())
    assert sorted(got) == sorted(want["leaves"]), name
    same_machine = want["fingerprint"] == fingerprint()
    for k, v in got.items():
        w = want["leaves"][k]
        assert [v.dtype.name, list(v.shape)] == [w["dtype"], w["shape"]], k
        if same_machine:
            assert hashlib.sha256(v.tobytes()).hexdigest() == w["sha256"], (
                f"{name}: {k} is no longer bitwise the pinned value: got {leaf_pin(v)['head']}"
                f" want {w['head']}")
        else:
            np.testing.assert_allclose(leaf_pin(v)["moments"], w["moments"], rtol=1e-5,
                                       err_msg=k)
            np.testing.assert_allclose(leaf_pin(v)["head"], w["head"], rtol=1e-5, atol=1e-6,
                                       err_msg=k)
