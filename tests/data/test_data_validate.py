"""Dataset construction checks: one-line errors naming field, value, expectation."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fnn.data as data
from fnn.data import DataError, Dataset


def _cls(**over):
    kw = dict(
        name="t", task="classification",
        x_train=np.zeros((6, 3), np.float32), y_train=np.array([0, 1, 2, 0, 1, 2], np.int32),
        x_val=np.ones((2, 3), np.float32), y_val=np.array([1, 2], np.int32),
        num_classes=3,
    )
    kw.update(over)
    return Dataset(**kw)


def _reg(**over):
    kw = dict(name="r", task="regression", x_train=np.zeros((4, 2), np.float32),
              y_train=np.zeros((4, 1), np.float32))
    kw.update(over)
    return Dataset(**kw)


def test_good_dataset_properties():
    ds = _cls()
    assert ds.num_features == 3 and ds.num_outputs == 3 and ds.num_train == 6
    assert ds.split("test") is None and ds.split("val")[0].shape == (2, 3)
    r = _reg(y_train=np.zeros((4, 2), np.float32))
    assert r.num_outputs == 2 and r.num_classes is None
    assert "train=6x3 float32" in repr(ds) and "num_classes=3" in repr(ds)


def test_dataset_is_frozen_and_read_only():
    src = np.zeros((6, 3), np.float32)
    ds = _cls(x_train=src)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    with pytest.raises(ValueError):
        ds.x_train[0, 0] = 1.0
    src[0, 0] = 1.0  # the caller's own array stays writable


nan_x = np.zeros((6, 3), np.float32)
nan_x[2, 1] = np.nan
nan_x[4, 0] = np.inf

BAD = [
    (lambda: _cls(x_train=np.zeros((0, 3), np.float32), y_train=np.zeros((0,), np.int32)),
     "x_train: the split is empty"),
    (lambda: _cls(x_val=np.zeros((0, 3), np.float32), y_val=np.zeros((0,), np.int32)),
     "x_val: the split is empty"),
    (lambda: _cls(x_train=nan_x), "x_train: 2 non-finite value(s) (NaN/inf), first at row 2, column 1"),
    (lambda: _cls(y_train=np.array([0, 1, 3, 0, 1, 2], np.int32)),
     "y_train: label 3 at index 2 is out of range (1 bad label(s)); expected 0 <= label < num_classes=3"),
    (lambda: _cls(y_val=np.array([-1, 2], np.int32)), "y_val: label -1 at index 0 is negative"),
    (lambda: _cls(x_val=np.ones((2, 4), np.float32)),
     "x_val has 4 features but x_train has 3; expected the same feature width in every split"),
    (lambda: _cls(y_val=np.array([1], np.int32)), "x_val has 2 rows but y_val has 1"),
    (lambda: _cls(x_val=None), "x_val is None but its partner is not"),
    (lambda: _cls(x_train=np.zeros((6, 3), np.float64)), "x_train: dtype float64, expected float32"),
    (lambda: _cls(y_train=np.zeros(6, np.int64)), "y_train: dtype int64, expected int32"),
    (lambda: _cls(y_train=np.zeros((6, 1), np.int32)), "expected class labels of shape (batch,)"),
    (lambda: _cls(x_train=np.zeros(6, np.float32)), "x_train: expected shape (batch, features), got shape (6,)"),
    (lambda: _cls(num_classes=1), "num_classes=1, expected an integer >= 2"),
    (lambda: _cls(classes=("a", "b")), "classes has 2 name(s) but num_classes=3"),
    (lambda: _cls(task="ranking"), "task='ranking', expected one of classification, regression"),
    (lambda: _reg(num_classes=2), "num_classes=2, expected None for regression"),
    (lambda: _reg(y_train=np.full((4, 1), np.nan, np.float32)), "y_train: 4 non-finite target value(s)"),
    (lambda: _reg(y_train=np.zeros(4, np.float32)), "expected regression targets of shape (batch, outputs)"),
    (lambda: _reg(x_val=np.zeros((1, 2), np.float32), y_val=np.zeros((1, 3), np.float32)),
     "y_val has 3 outputs but y_train has 1"),
    (lambda: _cls(x_test=np.zeros((2, 3), np.uint8), y_test=np.zeros(2, np.int32)),
     "x_test has dtype uint8 but x_train has float32"),
]


@pytest.mark.parametrize("make,fragment", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_datasets(make, fragment):
    with pytest.raises(DataError) as exc:
        make()
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg
    assert isinstance(exc.value, ValueError)


def test_check_dataset_is_reusable_on_any_object():
    ds = _cls()
    data.check_dataset(ds)
    fake = dataclasses.replace  # Dataset.__post_init__ re-checks on replace
    with pytest.raises(DataError):
        fake(ds, y_train=np.array([0, 1, 2, 0, 1, 9], np.int32))


def test_split_indices():
    tr, va, te = data.split_indices(10, val_fraction=0.2, test_fraction=0.1, seed=0)
    assert (len(tr), len(va), len(te)) == (7, 2, 1)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(10))
    tr2, _, _ = data.split_indices(10, val_fraction=0.2, test_fraction=0.1, seed=0)
    np.testing.assert_array_equal(tr, tr2)
    tr, va, te = data.split_indices(5)
    np.testing.assert_array_equal(tr, np.arange(5))
    assert va is None and te is None
    # A nonzero fraction of a tiny set still yields one example.
    _, va, _ = data.split_indices(5, val_fraction=0.01)
    assert len(va) == 1


# --- token ids entering a trained sequence model ----------------------------------------------
@pytest.mark.parametrize("x, expected", [
    (np.array([[0, 9, 3]], np.int64), [[0, 9, 3]]),
    (np.array([[0.0, 9.0]], np.float32), [[0, 9]]),  # a CSV is read as floats
    (np.array([[1, 2]], np.uint8), [[1, 2]]),
])
def test_token_ids_accepts_whole_numbers_in_range(x, expected):
    from fnn.data.validate import token_ids

    out = token_ids(x, 10)
    assert out.dtype == np.int32 and out.tolist() == expected


@pytest.mark.parametrize("x, message", [
    (np.array([[1, 10]]), "x: row 0, column 1: 10 is not a token id; expected integer token ids in [0, 9]"),
    (np.array([[0, 0], [-1, 0]]), "x: row 1, column 0: -1 is not a token id"),
    (np.array([[0.5, 0]]), "x: row 0, column 0: 0.5 is not a token id"),
    (np.array([[np.nan, 0]]), "x: row 0, column 0: nan is not a token id"),
    (np.array([[0, np.inf]]), "x: row 0, column 1: inf is not a token id"),
    (np.array([["a", "b"]]), "x: dtype <U1; expected integer token ids in [0, 9]"),
])
def test_token_ids_refuses_what_an_embedding_would_clamp(x, message):
    from fnn.data.validate import DataError, token_ids

    with pytest.raises(DataError) as err:
        token_ids(x, 10)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
