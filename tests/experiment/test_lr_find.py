"""The learning-rate finder (fnn.experiment.lr_find): the ramp, the smoothing and the
suggestion rule, one compiled program, the vmapped constant rates, and the picture."""
from __future__ import annotations

import logging
import struct

import jax
import numpy as np
import pytest

import fnn
from fnn.experiment import config as C
from fnn.experiment import lr_find as L
from fnn.experiment.rundir import UsageError

from cli_helpers import CONFIGS

# A tiny MLP on 400 two-moons points, plain SGD: the loss falls, then diverges by lr ~ 5.
TINY = ["data.n_samples=400", "model.hidden=[16]", "optimizer.name=sgd",
        "training.batch_size=32", "output.progress=false"]
MIN, MAX, STEPS = 1e-2, 1e3, 20


@pytest.fixture(scope="module")
def cfg():
    return C.load(CONFIGS / "quickstart.toml", TINY)


@pytest.fixture(scope="module")
def result(cfg):
    return L.lr_find(cfg, min_lr=MIN, max_lr=MAX, steps=STEPS, constant=3)


@pytest.mark.parametrize("lo,hi,steps", [(1e-6, 1.0, 100), (1e-2, 1e3, 20), (0.3, 0.5, 5)])
def test_ramp_is_log_spaced_and_ends_at_the_bounds(lo, hi, steps):
    lrs = L.log_ramp(lo, hi, steps)
    assert lrs.shape == (steps,)
    assert lrs[0] == lo and lrs[-1] == hi
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, (hi / lo) ** (1.0 / (steps - 1)), rtol=1e-12)


def test_the_result_ramp_is_the_one_trained(result):
    np.testing.assert_array_equal(result.lrs, L.log_ramp(MIN, MAX, STEPS))
    np.testing.assert_array_equal(result.constant_lrs, L.log_ramp(MIN, MAX, 3))


@pytest.mark.parametrize("losses", [[1.0, 2.0, 3.0, 0.5], [5.0] * 7, [0.3, 0.1, 0.9]])
def test_smooth_is_the_bias_corrected_ema(losses):
    avg, want = 0.0, []
    for i, x in enumerate(losses):
        avg = 0.98 * avg + 0.02 * x
        want.append(avg / (1 - 0.98 ** (i + 1)))
    np.testing.assert_allclose(L.smooth(losses), want, rtol=1e-12)
    assert L.smooth(losses)[0] == losses[0]  # bias correction: the first point is itself


def test_smooth_turns_nan_from_the_first_non_finite_loss_on():
    out = L.smooth([1.0, 2.0, np.inf, 1.0])
    assert np.all(np.isfinite(out[:2])) and np.all(np.isnan(out[2:]))


@pytest.mark.parametrize("smoothed,stop", [
    ([3.0, 2.0, 1.0, 3.9, 4.1, 9.0], 4),     # 4.1 > 4 × 1.0
    ([1.0, 1.0, 1.0], 3),                    # never
    ([2.0, 1.0, np.nan, 0.5], 2),            # non-finite
    ([1.0, 0.5, 2.5], 2),                    # 2.5 > 4 × 0.5
])
def test_divergence_is_the_first_point_past_four_times_the_minimum(smoothed, stop):
    assert L.divergence(np.asarray(smoothed)) == stop


def test_steepest_picks_the_steepest_descent_in_log_lr():
    lrs = L.log_ramp(1e-4, 1.0, 40)
    x = np.log(lrs)
    # a smooth fall centred at lr = 1e-2, then a rise (divergence) from lr ~ 0.2 on
    smoothed = 1.0 - 0.5 * np.tanh(x - np.log(1e-2)) + np.where(lrs > 0.2, 50 * (lrs - 0.2), 0)
    stop = L.divergence(smoothed)
    lr = L.steepest(lrs, smoothed, stop)
    assert lr is not None and abs(np.log10(lr) - (-2)) < 0.15


def test_steepest_is_none_when_the_loss_never_falls():
    lrs = L.log_ramp(1e-4, 1.0, 30)
    assert L.steepest(lrs, np.linspace(1.0, 2.0, 30), 30) is None


def test_a_tiny_mlp_falls_then_diverges_and_the_suggestion_is_inside(result):
    r = result
    assert r.stop < STEPS, "the ramp to 1e3 diverges"
    best = int(np.nanargmin(r.smoothed[:r.stop]))
    assert 0 < best and r.smoothed[best] < 0.9 * r.smoothed[0], "the loss falls first"
    assert r.smoothed[r.stop] > 4 * r.smoothed[best] or not np.isfinite(r.smoothed[r.stop])
    assert r.suggestion is not None
    assert MIN < r.suggestion < MAX
    assert r.suggestion < r.lrs[r.stop], "below the divergence"
    assert r.suggestion in r.lrs


def test_the_ramp_is_one_compiled_program_with_one_scan(cfg, caplog):
    def scans(jaxpr, steps):
        n = 0
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "scan" and eqn.params["length"] == steps:
                n += 1
            for v in eqn.params.values():
                inner = getattr(v, "jaxpr", v)
                if hasattr(inner, "eqns"):
                    n += scans(inner, steps)
        return n

    caplog.set_level(logging.WARNING, logger="jax._src.interpreters.pxla")
    with jax.log_compiles():
        r = L.lr_find(cfg, min_lr=MIN, max_lr=MAX, steps=STEPS + 1)
    compiled = [rec.getMessage() for rec in caplog.records if "Compiling" in rec.getMessage()]
    assert sum("lr_range_test" in m for m in compiled) == 1, compiled
    assert r.losses.shape == (STEPS + 1,)
    trainer = L.build(cfg, 1)
    state = trainer.init(jax.random.key(0))
    lrs = np.stack([L.log_ramp(MIN, MAX, STEPS + 1)])
    jaxpr = jax.make_jaxpr(L.program(trainer, STEPS + 1))(state, lrs, trainer.data)
    assert scans(jaxpr.jaxpr, STEPS + 1) == 1  # the steps: one lax.scan


def test_the_vmapped_constant_rates_equal_separate_runs(cfg, result):
    assert result.constant_losses.shape == (3, STEPS)
    for k, lr in enumerate(result.constant_lrs):
        alone = L.schedule_losses(cfg, np.full((1, STEPS), lr))[0]
        np.testing.assert_allclose(result.constant_losses[k], alone, rtol=2e-5, atol=1e-6,
                                   equal_nan=True)
    # the last rate (1e3) diverges: its final smoothed loss is NaN, the others are finite
    assert np.all(np.isfinite(result.constant_final[:2])) and np.isnan(result.constant_final[2])
    np.testing.assert_array_equal(result.constant_final,
                                  L.smooth(result.constant_losses)[:, -1])


def test_the_ramp_alone_equals_the_ramp_beside_constant_rates(cfg, result):
    alone = L.schedule_losses(cfg, result.lrs[None])[0]
    np.testing.assert_allclose(result.losses, alone, rtol=2e-5, atol=1e-6, equal_nan=True)


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_files_png_and_csv(result, tmp_path):
    pytest.importorskip("matplotlib")
    written = L.write_files(result, tmp_path / "out", title="tiny")
    assert [p.name for p in written] == ["lr_find.png", "lr_find.csv", "lr_find_constant.csv"]
    w, h = _png_size(tmp_path / "out" / "lr_find.png")
    assert w > 400 and h > 300
    rows = (tmp_path / "out" / "lr_find.csv").read_text().splitlines()
    assert rows[0] == "lr,loss,smoothed_loss" and len(rows) == STEPS + 1
    first = [float(v) for v in rows[1].split(",")]
    assert first[0] == MIN and first[1] == pytest.approx(result.losses[0], rel=1e-6)
    const = (tmp_path / "out" / "lr_find_constant.csv").read_text().splitlines()
    assert const[0] == "lr,final_loss,final_smoothed_loss" and len(const) == 4


@pytest.mark.parametrize("kwargs,fragment", [
    ({"min_lr": 1.0, "max_lr": 0.1}, "min_lr 1 must be below max_lr 0.1"),
    ({"min_lr": 0.0}, "min_lr 0; expected a finite learning rate > 0"),
    ({"max_lr": float("inf")}, "max_lr inf; expected a finite"),
    ({"steps": 1}, "steps 1; expected an integer >= 5"),
    ({"steps": 2.5}, "steps 2.5; expected an integer"),
    ({"constant": 1}, "constant 1; expected an integer from 2 to 64"),
])
def test_api_errors_are_one_line_before_any_work(kwargs, fragment, tmp_path):
    with pytest.raises(UsageError) as err:
        fnn.lr_find(tmp_path / "missing.toml", **kwargs)  # checked before the config is read
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_facade_names():
    assert fnn.lr_find is L.lr_find and fnn.LRFindResult is L.LRFindResult
