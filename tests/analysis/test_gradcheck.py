"""fnn.gradcheck: the per-leaf report of manual vs jax.grad vs finite differences.

gradcheck evaluates eagerly and compiles one finite-difference program per leaf, so each call costs
seconds on CPU: the tests share one good report and make only two more calls.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.nn import losses
from fnn.analysis.gradcheck import ErrorStats

SIZES = (3, 5, 2)
N = 6


@pytest.fixture(scope="module")
def problem():
    """A float32 network and data (gradcheck itself casts to float64)."""
    net = fnn.MLP(sizes=SIZES, activation="tanh", output="sigmoid")
    params = net.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, SIZES[0])).astype(np.float32)
    y = rng.uniform(size=(N, SIZES[-1])).astype(np.float32)
    return net, params, x, y


@pytest.fixture(scope="module")
def good_report(problem):
    net, params, x, y = problem
    return fnn.gradcheck(net, "mse", params, x, y, l1=0.01, l2=0.01)


def test_passes_on_a_good_network(good_report):
    report = good_report
    assert report.passed is True
    assert len(report.leaves) == 2 * (len(SIZES) - 1)
    assert report.worst_autodiff.norm_rel <= 1e-12
    assert report.worst_fd.norm_rel <= 1e-6
    for leaf in report.leaves:
        assert leaf.grad_norm > 0
        assert leaf.fd_checked == int(np.prod(leaf.shape)) and leaf.fd_skipped == 0
    assert np.isfinite(report.loss) and report.loss > 0


def test_gradcheck_leaves_x64_as_it_was(good_report):
    assert jnp.zeros(1).dtype == jnp.float32           # x64 enabled only inside the check


def test_str_has_a_row_per_leaf(good_report):
    text = str(good_report)
    lines = text.splitlines()
    for l in range(len(SIZES) - 1):
        for name, shape in (("w", (SIZES[l], SIZES[l + 1])), ("b", (SIZES[l + 1],))):
            rows = [line for line in lines if line.startswith(f"layer{l}.{name} ")]
            assert len(rows) == 1, text
            assert str(shape) in rows[0]
    assert lines[-1].startswith("PASS")
    assert "manual vs jax.grad" in lines[0] and "manual vs finite diff" in lines[0]


def test_to_json_parses(good_report):
    data = json.loads(good_report.to_json())
    assert data["passed"] is True
    assert data["tol_autodiff"] == good_report.tol_autodiff and data["fd_eps"] == 1e-6
    assert [leaf["path"] for leaf in data["leaves"]] == [l.path for l in good_report.leaves]
    for leaf in data["leaves"]:
        assert set(leaf["vs_autodiff"]) == {"max_abs", "max_rel", "norm_rel"}
        assert set(leaf["vs_fd"]) == {"max_abs", "max_rel", "norm_rel"}
        assert isinstance(leaf["shape"], list)
    assert data == good_report.to_dict() | {"leaves": data["leaves"]}


def _loose_mse_backward(net, loss, params, x, y):
    """The notes' loose ∇_A L = (ŷ − y) / N: the factor 2 of the MSE gradient is missing."""
    loose = losses.Loss("mse_without_factor_2", losses.mse_value,
                        grad_a=lambda a, y_: (a - y_) / a.shape[0])
    _, caches = net.forward(params, x)
    return net.backward(params, caches, loose, y)


def test_fails_on_a_wrong_backward(problem, good_report):
    """The same problem as the good report, with the notes' loose MSE gradient as the backward."""
    net, params, x, y = problem
    report = fnn.gradcheck(net, "mse", params, x, y, backward=_loose_mse_backward)
    assert report.passed is False
    # every gradient is exactly half the true one: norm-relative error 1/2 against both references
    np.testing.assert_allclose(report.worst_autodiff.norm_rel, 0.5, rtol=1e-9)
    np.testing.assert_allclose(report.worst_fd.norm_rel, 0.5, rtol=1e-5)
    assert str(report).splitlines()[-1].startswith("FAIL")
    assert json.loads(report.to_json())["passed"] is False
    # the hook is the only difference: the real backward, at 2x the loose one, passed
    assert good_report.passed
    for loose, good in zip(report.leaves, good_report.leaves):
        assert loose.path == good.path


def test_relu_kinks_are_skipped_not_failed():
    """Zero inputs and zero biases put hidden pre-activations exactly at the ReLU kink: those
    finite-difference coordinates are skipped, and the check still passes."""
    net = fnn.MLP(sizes=(2, 3, 1), activation="relu", output="sigmoid")
    params = net.init(jax.random.key(2))
    x = np.array([[0.0, 0.0], [1.0, 0.5], [0.0, 1.0], [-1.0, 2.0]], np.float32)
    y = np.array([0.0, 1.0, 1.0, 0.0], np.float32)
    from fnn.analysis import gradcheck as gc

    report = gc.gradcheck(net, "bce", params, x, y)
    # layer0.b: every coordinate at the kink (the zero row), so it is probed at a moved point
    assert [l.path for l in report.leaves if l.fd_moved] == ["layer0.b"], str(report)
    assert report.passed, str(report)
    with pytest.MonkeyPatch.context() as mp:  # at the first point only: skipped, not failed
        mp.setattr(gc, "MOVE_TRIES", 0)
        report = gc.gradcheck(net, "bce", params, x, y)
    assert sum(l.fd_skipped for l in report.leaves) > 0
    assert "at a ReLU kink skipped" in str(report)
    assert all(l.vs_fd.norm_rel <= report.tol_fd for l in report.leaves)


@pytest.mark.parametrize("a,b,max_abs,max_rel,norm_rel", [
    ([1.0, 2.0], [1.0, 2.0], 0.0, 0.0, 0.0),
    ([0.0, 0.0], [0.0, 0.0], 0.0, 0.0, 0.0),                 # both zero: relative error 0
    ([1.0, 0.0], [0.5, 0.0], 0.5, 0.5, 0.5),
    ([2.0, -1.0], [2.0, 1.0], 2.0, 2.0, 2.0 / np.sqrt(5.0)),
    ([1e-30], [0.0], 1e-30, 1.0, 1.0),
    ([], [], 0.0, 0.0, 0.0),
])
def test_error_stats(a, b, max_abs, max_rel, norm_rel):
    stats = ErrorStats.between(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose([stats.max_abs, stats.max_rel, stats.norm_rel],
                               [max_abs, max_rel, norm_rel], rtol=1e-12, atol=1e-300)
    assert ErrorStats.between(np.asarray(b), np.asarray(a)) == stats      # symmetric


def _all_kink_case():
    """Zero inputs and zero first-layer biases: every hidden Z is exactly 0, so every
    coordinate of layer0.b crosses the ReLU kink (layer0.w cannot move Z: x = 0)."""
    net = fnn.MLP(sizes=(2, 3, 2), activation="relu", output="softmax")
    params = net.init(jax.random.key(2))
    x = np.zeros((4, 2), np.float32)
    y = np.array([0, 1, 1, 0], np.int32)
    return net, "cross_entropy", params, x, y


def test_a_leaf_with_every_coordinate_at_a_kink_is_checked_at_a_moved_point():
    """Issue 23: such a leaf read 0.0e+00 in every finite-difference column with 0 coords, and
    passed. Now its finite differences are taken at a moved probe point, and say so."""
    report = fnn.gradcheck(*_all_kink_case())
    b0 = next(l for l in report.leaves if l.path == "layer0.b")
    assert b0.fd_moved and b0.fd_checked > 0, str(report)
    assert b0.vs_fd.norm_rel <= report.tol_fd
    row = next(line for line in str(report).splitlines() if line.startswith("layer0.b"))
    assert row.endswith("(moved)"), row
    assert not any(l.fd_moved for l in report.leaves if l.path != "layer0.b")
    assert report.passed, str(report)


def test_a_leaf_that_can_only_be_skipped_is_shown_as_skipped_and_never_passes(monkeypatch):
    from fnn.analysis import gradcheck as gc

    monkeypatch.setattr(gc, "MOVE_TRIES", 0)  # no moved point: the leaf stays unchecked
    report = fnn.gradcheck(*_all_kink_case())
    b0 = next(l for l in report.leaves if l.path == "layer0.b")
    assert b0.fd_checked == 0 and b0.fd_unchecked
    text = str(report)
    row = next(line for line in text.splitlines() if line.startswith("layer0.b"))
    # the three manual-vs-jax.grad columns, then no numbers for the finite differences
    assert row.split()[-4:] == ["0.0e+00", "skipped", "(kinks)", "0"], row
    assert row.count("e+00") == 4, row  # |grad| and the autodiff errors only
    assert "not checked by finite differences" in text and "layer0.b" in text.splitlines()[-2]
    assert report.passed is False and text.splitlines()[-1].startswith("FAIL")
