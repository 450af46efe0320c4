"""Pinned results: a short run of every shipped config ends on exactly these parameters.

The layout and layer work moves code around without changing arithmetic, so the final parameters
of a short run at the config's own seed must stay **bitwise** the same. The pins live in
``tests/pins/<config>.json``: for each machine that wrote them, keyed by its fingerprint (JAX
version, CPU architecture and instruction-set flags), per ``state.params`` leaf of the final
checkpoint its sha256, three moments and its first values. On a machine whose fingerprint is
pinned the comparison is bitwise. Elsewhere XLA may pick other kernels (AVX2 and AVX-512 round
differently), so it is a tolerant one against the closest pinned machine: every moment and first
value to ``fallback_rtol`` relative to the leaf's own scale (its root mean square, its sum of
absolute values), so that a bias that is rounding noise near 1e-9 is not held to 1e-5 of
itself. ``fallback_rtol`` is 1e-5, or ten times the spread seen between the pinned machines
where that is larger (the Fashion CNN's short run drifts 3e-4 between an AVX2 and an AVX-512
EPYC); a real change of the math moves parameters far more. A config whose run is chaotic across
CPUs (the Fashion MLP's epoch of Adam with dropout drifts 0.19 of its scale) has no tolerant
check: on a machine that is not pinned it is skipped, with the command that adds the machine.

Regenerate after a deliberate change of the arithmetic (say why in the commit), on each kind of
machine, or add this machine's pins beside the others':
``FNN_REGEN_PINS=1 python -m pytest tests/e2e/test_pinned.py`` (replaces this machine's entry,
keeps the others; ``FNN_REGEN_PINS=reset`` drops them).
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

from cli_helpers import (CONFIGS, TEXT_CONFIGS, checkpoint_arrays,
                         final_checkpoint, params_of, run_cli, shrink_args, write_text_file)

PINS = Path(__file__).resolve().parents[1] / "pins"
FASHION = Path("/usr/share/datasets/fashion-mnist")
# Every shipped config but the image ones that need files (those are pinned when present).
NAMES = sorted(p.stem for p in CONFIGS.glob("*.toml"))


def cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return ""


def fingerprint() -> str:
    text = f"jax {jax.__version__} {platform.machine()} {cpu_flags()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cpu_description() -> str:
    """The CPU model and its widest vector extension, for a reader of the pin files."""
    model = ""
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "")
    except OSError:
        pass
    flags = cpu_flags().split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model or platform.processor() or platform.machine()} ({isa}), jax {jax.__version__}"


def read_pin(path: Path) -> dict:
    """A pin file as {"machines": {fingerprint: {"cpu", "leaves"}}, "fallback_rtol"}; the
    one-machine layout written before (``fingerprint``, ``leaves``) reads as one entry."""
    data = json.loads(path.read_text())
    if "machines" not in data:
        data = {"machines": {data["fingerprint"]: {"cpu": "unrecorded",
                                                   "leaves": data["leaves"]}}}
    data.setdefault("fallback_rtol", FALLBACK_RTOL)
    return data


FALLBACK_RTOL = 1e-5
#: A config whose runs differ more than this between pinned CPUs is checked bitwise only.
MEANINGFUL_RTOL = 1e-2


def _scales(pin: dict) -> tuple[np.ndarray, float]:
    """(per-moment scale, per-value scale) of a leaf pin: |f| summed, f² summed, |f| summed;
    the root mean square."""
    s1, s2, s_abs = pin["moments"]
    n = max(1, int(np.prod(pin["shape"])))
    return np.array([s_abs, s2, s_abs]), float(np.sqrt(s2 / n))


def relative_gap(got: dict, want: dict) -> float:
    """The largest difference of two leaf pins' moments and first values, each relative to the
    pinned leaf's own scale (:func:`_scales`)."""
    m_scale, v_scale = _scales(want)
    dm = np.abs(np.subtract(got["moments"], want["moments"])) / np.maximum(m_scale, 1e-30)
    head_w = np.asarray(want["head"])
    dv = np.abs(np.asarray(got["head"]) - head_w) / np.maximum(np.abs(head_w) + v_scale, 1e-30)
    return float(max(dm.max(initial=0.0), dv.max(initial=0.0)))


def spread(machines: dict) -> float:
    """The largest :func:`relative_gap` between the leaves of any two pinned machines."""
    entries = list(machines.values())
    return max((relative_gap(a["leaves"][k], b["leaves"][k]) for i, a in enumerate(entries)
                for b in entries[i + 1:] for k in a["leaves"] if k in b["leaves"]), default=0.0)


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
    pin = PINS / f"{name}.json"
    here = fingerprint()
    regen = os.environ.get("FNN_REGEN_PINS", "")
    if regen in ("1", "reset"):
        PINS.mkdir(exist_ok=True)
        machines = {} if regen == "reset" or not pin.exists() else read_pin(pin)["machines"]
        machines[here] = {"cpu": cpu_description(),
                          "leaves": {k: leaf_pin(v) for k, v in got.items()}}
        rtol = max(FALLBACK_RTOL, float(f"{10 * spread(machines):.2g}"))
        rtol = None if rtol > MEANINGFUL_RTOL else rtol  # chaotic across CPUs: bitwise only
        pin.write_text(json.dumps({"fallback_rtol": rtol, "machines": machines},
                                  indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {pin} ({len(machines)} machines, fallback_rtol {rtol})")
    assert pin.exists(), f"no pin for {name}: run FNN_REGEN_PINS=1 python -m pytest {__file__}"
    want = read_pin(pin)
    machines = want["machines"]
    for entry in machines.values():
        assert sorted(got) == sorted(entry["leaves"]), name
    if here in machines:  # a pinned machine: bitwise
        for k, v in got.items():
            w = machines[here]["leaves"][k]
            assert [v.dtype.name, list(v.shape)] == [w["dtype"], w["shape"]], k
            assert hashlib.sha256(v.tobytes()).hexdigest() == w["sha256"], (
                f"{name}: {k} is no longer bitwise the pinned value: got {leaf_pin(v)['head']}"
                f" want {w['head']}")
        return
    # another machine: within fallback_rtol of the closest pinned one
    if want["fallback_rtol"] is None:
        pytest.skip(f"{name}: this machine ({cpu_description()}) is not pinned, and this"
                    f" config's short run drifts by {spread(machines):.2g} of its scale between"
                    f" the pinned CPUs, too far for a tolerant check; add this machine:"
                    f" FNN_REGEN_PINS=1 python -m pytest {__file__}")
    gaps = {fp: max(relative_gap(leaf_pin(v), e["leaves"][k]) for k, v in got.items())
            for fp, e in machines.items()}
    closest = min(gaps, key=gaps.get)
    assert gaps[closest] <= want["fallback_rtol"], (
        f"{name}: this machine ({cpu_description()}, fingerprint {here}) is not pinned, and its"
        f" parameters differ from the closest pinned machine's ({machines[closest]['cpu']}) by"
        f" {gaps[closest]:.3g} of their scale (allowed {want['fallback_rtol']:g}); if the"
        f" arithmetic is unchanged, add this machine: FNN_REGEN_PINS=1 python -m pytest {__file__}")


@pytest.mark.parametrize("change, low, high", [
    (lambda f: f, 0.0, 0.0),                                   # the same leaf
    (lambda f: f + np.where(np.arange(f.size) == 0, 2e-9, 0), 0.0, 1e-7),  # noise on a ~0 entry
    (lambda f: f * (1 + 1e-6), 5e-7, 2e-6),                    # rounding-sized drift
    (lambda f: f * 1.01, 5e-3, 3e-2),                          # a real change
])
def test_relative_gap_is_scaled_by_the_leaf(change, low, high):
    """The tolerant check measures a difference against the leaf's scale, not against an entry
    that is itself rounding noise (a bias of -1.9e-9 against -3.7e-9 is no change at all)."""
    f = np.array([-3.7e-9, 4.2e-4, 2.9e-2, -0.5, 0.25], np.float32)
    gap = relative_gap(leaf_pin(change(f).astype(np.float32)), leaf_pin(f))
    assert low <= gap <= high


def test_spread_and_read_pin_of_the_one_machine_layout(tmp_path):
    f = np.linspace(-1, 1, 9, dtype=np.float32)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"fingerprint": "abc", "leaves": {"w": leaf_pin(f)}}))
    pin = read_pin(old)
    assert list(pin["machines"]) == ["abc"] and pin["fallback_rtol"] == FALLBACK_RTOL
    assert spread(pin["machines"]) == 0.0
    pin["machines"]["def"] = {"cpu": "x", "leaves": {"w": leaf_pin(f * np.float32(1.001))}}
    assert 5e-4 < spread(pin["machines"]) < 2e-3
