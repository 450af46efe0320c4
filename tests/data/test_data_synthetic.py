"""Synthetic datasets: shapes, dtypes, determinism, class balance, splits, standardization, options."""
from __future__ import annotations

import numpy as np
import pytest

import fnn.data as data
from fnn.data.synthetic import polynomial_target

# name, options, task, num_classes, num_features
SETS = [
    ("xor", {"n_samples": 400, "noise": 0.1}, "classification", 2, 2),
    ("moons", {}, "classification", 2, 2),
    ("circles", {}, "classification", 2, 2),
    ("spirals", {}, "classification", 3, 2),
    ("spirals", {"num_classes": 5, "n_samples": 503}, "classification", 5, 2),
    ("blobs", {}, "classification", 3, 2),
    ("blobs", {"num_classes": 4, "num_features": 7}, "classification", 4, 7),
    ("sine", {}, "regression", None, 1),
    ("polynomial", {}, "regression", None, 2),
    ("polynomial", {"num_features": 5}, "regression", None, 5),
]
IDS = [f"{n}-{i}" for i, (n, *_) in enumerate(SETS)]


def _all_x(ds):
    return np.concatenate([a for a in (ds.x_train, ds.x_val, ds.x_test) if a is not None])


def _all_y(ds):
    return np.concatenate([a for a in (ds.y_train, ds.y_val, ds.y_test) if a is not None])


@pytest.mark.parametrize("name,opts,task,k,d", SETS, ids=IDS)
def test_shapes_and_dtypes(name, opts, task, k, d):
    ds = data.load(name, val_fraction=0.1, test_fraction=0.2, **opts)
    n = opts.get("n_samples", 1000)
    assert ds.name == name and ds.task == task and ds.num_classes == k
    assert ds.num_features == d and ds.image_shape is None
    sizes = [len(ds.x_train), len(ds.x_val), len(ds.x_test)]
    assert sum(sizes) == n and sizes[1] == round(0.1 * n) and sizes[2] == round(0.2 * n)
    for x, y in (ds.split("train"), ds.split("val"), ds.split("test")):
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == d
        assert np.isfinite(x).all()
        if task == "classification":
            assert y.dtype == np.int32 and y.shape == (len(x),)
            assert y.min() >= 0 and y.max() < k
        else:
            assert y.dtype == np.float32 and y.shape == (len(x), 1)
    assert ds.num_outputs == (k if task == "classification" else 1)


@pytest.mark.parametrize("name,opts,task,k,d", SETS, ids=IDS)
def test_deterministic_per_seed_and_seeds_differ(name, opts, task, k, d):
    a = data.load(name, seed=3, val_fraction=0.1, **opts)
    b = data.load(name, seed=3, val_fraction=0.1, **opts)
    c = data.load(name, seed=4, val_fraction=0.1, **opts)
    for f in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("name,opts,task,k,d", [s for s in SETS if s[2] == "classification"],
                         ids=[i for i, s in zip(IDS, SETS) if s[2] == "classification"])
def test_class_balance(name, opts, task, k, d):
    ds = data.load(name, test_fraction=0.0, **opts)
    counts = np.bincount(ds.y_train, minlength=k)
    assert len(counts) == k and counts.max() - counts.min() <= 1
    # Splitting only partitions the balanced set, and each split holds every class.
    ds = data.load(name, val_fraction=0.1, test_fraction=0.3, **opts)
    counts = np.bincount(_all_y(ds), minlength=k)
    assert counts.max() - counts.min() <= 1
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert set(np.unique(y)) == set(range(k))


@pytest.mark.parametrize("name", ["moons", "circles", "spirals", "blobs"])
def test_rows_are_shuffled(name):
    y = data.load(name, test_fraction=0.0).y_train
    assert (np.diff(y) != 0).sum() > len(y) // 4


def test_xor_is_the_notes_truth_table():
    ds = data.load("xor")
    np.testing.assert_array_equal(ds.x_train, np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32))
    np.testing.assert_array_equal(ds.y_train, np.array([0, 1, 1, 0], dtype=np.int32))
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.x_val is None and ds.y_val is None and ds.x_test is None and ds.y_test is None
    assert ds.num_classes == 2


def test_noisy_xor_is_centered_on_the_corners():
    ds = data.load("xor", n_samples=4000, noise=0.05)
    corners = np.round(ds.x_train).astype(np.int32)
    np.testing.assert_array_equal(ds.y_train, corners[:, 0] ^ corners[:, 1])
    assert 0 < np.abs(ds.x_train - corners).max() < 0.5
    np.testing.assert_array_equal(data.load("xor", n_samples=8).x_train[4:], data.load("xor").x_train)


def test_xor_val_split_of_four_points():
    ds = data.load("xor", val_fraction=0.25)
    assert len(ds.x_train) == 3 and len(ds.x_val) == 1


def test_geometry():
    c = data.load("circles", noise=0.0, test_fraction=0.0, factor=0.3)
    r = np.linalg.norm(c.x_train, axis=1)
    np.testing.assert_allclose(r, np.where(c.y_train == 0, 1.0, 0.3), rtol=1e-5)
    s = data.load("sine", noise=0.0, test_fraction=0.0)
    np.testing.assert_allclose(s.y_train, np.sin(s.x_train), atol=1e-6)
    p = data.load("polynomial", noise=0.0, test_fraction=0.0, num_features=3)
    np.testing.assert_allclose(p.y_train, polynomial_target(p.x_train), rtol=1e-5, atol=1e-5)
    m = data.load("moons", noise=0.0, test_fraction=0.0)
    upper = m.x_train[m.y_train == 0]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0, rtol=1e-5)


def test_polynomial_formula_by_hand():
    x = np.array([[0.5, -1.0]])
    # 1 + (0.5 - (-1)) + (1/2)(0.25 + 0.5*(-1) + 1) - 0.5 (0.125 - 1)
    expected = 1 + 1.5 + 0.5 * 0.75 - 0.5 * (-0.875)
    np.testing.assert_allclose(polynomial_target(x), [[expected]])


def test_noise_option_changes_spread():
    a = data.load("blobs", noise=0.1, test_fraction=0.0)
    b = data.load("blobs", noise=2.0, test_fraction=0.0)
    spread = lambda ds: np.mean([ds.x_train[ds.y_train == c].std(axis=0).mean() for c in range(3)])  # noqa: E731
    assert spread(a) < 0.2 < 1.5 < spread(b)


def test_standardize_fitted_on_train_only():
    raw = data.load("blobs", val_fraction=0.2, seed=1)
    ds = data.load("blobs", val_fraction=0.2, seed=1, standardize=True)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_mean, raw.x_train.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ds.x_val, (raw.x_val - ds.x_mean) / ds.x_std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.x_test, (raw.x_test - ds.x_mean) / ds.x_std, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ds.y_val, raw.y_val)
    assert ds.x_train.dtype == np.float32 and raw.x_mean is None


def test_split_is_a_partition_and_seeded():
    a = data.load("moons", val_fraction=0.1, test_fraction=0.2, seed=5)
    full = data.load("moons", test_fraction=0.0, seed=5)
    rows = lambda x: {tuple(r) for r in x.tolist()}  # noqa: E731
    assert rows(_all_x(a)) == rows(full.x_train)
    assert not rows(a.x_train) & rows(a.x_val) and not rows(a.x_val) & rows(a.x_test)


BAD_OPTIONS = [
    ("moons", {"bogus": 1}, "unknown option(s) 'bogus'; valid options are n_samples, noise"),
    ("moons", {"n_samples": 1}, "n_samples=1: expected an integer >= 2"),
    ("xor", {"n_samples": 3}, "n_samples=3: expected an integer >= 4"),
    ("spirals", {"num_classes": 1}, "num_classes=1: expected an integer >= 2"),
    ("moons", {"noise": -0.1}, "noise=-0.1: expected a finite number in [0.0, inf)"),
    ("moons", {"noise": float("nan")}, "noise=nan"),
    ("moons", {"seed": -1}, "seed=-1: expected an integer >= 0"),
    ("moons", {"seed": 1.5}, "seed=1.5"),
    ("moons", {"n_samples": True}, "n_samples=True"),
    ("circles", {"factor": 1.0}, "factor=1.0: expected a finite number in (0.0, 1.0)"),
    ("moons", {"val_fraction": 1.0}, "val_fraction=1.0: expected a number in [0, 1)"),
    ("moons", {"test_fraction": -0.1}, "test_fraction=-0.1"),
    ("moons", {"val_fraction": 0.5, "test_fraction": 0.5}, "leave 0 for training"),
    ("moons", {"standardize": "yes"}, "standardize='yes': expected true or false"),
    ("sine", {"num_classes": 3}, "unknown option(s) 'num_classes'"),
    ("nope", {}, "dataset name 'nope': unknown; expected one of xor, moons, circles, spirals, blobs, sine, polynomial"),
]


@pytest.mark.parametrize("name,opts,fragment", BAD_OPTIONS)
def test_bad_options(name, opts, fragment):
    with pytest.raises(ValueError) as exc:
        data.load(name, **opts)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_valid_options_lists_defaults():
    assert data.valid_options("xor")["n_samples"] == 4
    assert set(data.valid_options("fashion_mnist")) == {"path", "mirror", "download", "val_fraction", "seed",
                                                        "n_samples"}
    assert set(data.NAMES) == {"xor", "moons", "circles", "spirals", "blobs", "sine", "polynomial", "shapes",
                               "fashion_mnist", "mnist", "csv", "npz", "text", "adder"}


def test_shapes_set_is_balanced_deterministic_images():
    a = data.load("shapes", n_samples=500, seed=3)
    b = data.load("shapes", n_samples=500, seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.dtype == np.uint8 and a.x_train.shape[1] == 16 * 16
    assert a.image_shape == (16, 16) and a.classes[:3] == ("square", "circle", "triangle")
    counts = np.bincount(np.concatenate([a.y_train, a.y_test]), minlength=5)
    assert counts.max() - counts.min() <= 1
    assert not np.array_equal(a.x_train, data.load("shapes", n_samples=500, seed=4).x_train)
    with pytest.raises(ValueError, match="image_size=4"):
        data.load("shapes", image_size=4)
