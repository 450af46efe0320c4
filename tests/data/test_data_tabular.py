"""CSV and NPZ user data: good files load; each bad file gives its own clear error."""
from __future__ import annotations

import numpy as np
import pytest

import fnn.data as data


def _csv(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------------------- CSV

def test_csv_string_labels_keep_the_mapping(tmp_path):
    p = _csv(tmp_path, "a,species,b\n1,setosa,2\n3,virginica,4\n5,setosa,6\n7,versicolor,8\n")
    ds = data.load("csv", path=p, target="species")
    assert ds.task == "classification" and ds.num_classes == 3
    assert ds.classes == ("setosa", "versicolor", "virginica")
    np.testing.assert_array_equal(ds.y_train, np.array([0, 2, 0, 1], np.int32))
    np.testing.assert_array_equal(ds.x_train, np.array([[1, 2], [3, 4], [5, 6], [7, 8]], np.float32))
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert [ds.classes[i] for i in ds.y_train] == ["setosa", "virginica", "setosa", "versicolor"]


def test_csv_integer_labels_default_last_column(tmp_path):
    p = _csv(tmp_path, "x1,x2,label\n0.5,1,0\n-1,2e3,2\n3,4,1\n")
    ds = data.load("csv", path=p)
    assert ds.task == "classification" and ds.num_classes == 3 and ds.classes is None
    np.testing.assert_array_equal(ds.y_train, [0, 2, 1])
    assert data.load("csv", path=p, num_classes=5).num_classes == 5


def test_csv_regression_and_task_override(tmp_path):
    p = _csv(tmp_path, "x,y\n1,0.5\n2,1.5\n3,2.25\n")
    ds = data.load("csv", path=p, target="y")
    assert ds.task == "regression" and ds.num_classes is None
    assert ds.y_train.shape == (3, 1) and ds.y_train.dtype == np.float32
    q = _csv(tmp_path, "x,count\n1,3\n2,4\n3,5\n", "q.csv")
    assert data.load("csv", path=q).task == "classification"
    r = data.load("csv", path=q, task="regression")
    assert r.task == "regression" and r.y_train[:, 0].tolist() == [3.0, 4.0, 5.0]
    big = _csv(tmp_path, "x,price\n1,250000\n2,300000\n", "big.csv")
    assert data.load("csv", path=big).task == "regression"


def test_csv_multi_target_regression_quotes_blank_lines_bom(tmp_path):
    p = tmp_path / "m.csv"
    p.write_bytes('\ufeff"feat, one";f2;t1;t2\n1;2;3;4\n\n5;6;7;8\n'.encode("utf-8"))
    ds = data.load("csv", path=p, target=["t1", "t2"], delimiter=";")
    assert ds.y_train.shape == (2, 2) and ds.x_train.shape == (2, 2)
    np.testing.assert_array_equal(ds.y_train, [[3, 4], [7, 8]])


def test_csv_splits_and_standardize(tmp_path):
    rows = "\n".join(f"{i},{i * i % 7},{i % 2}" for i in range(50))
    p = _csv(tmp_path, "a,b,c\n" + rows + "\n")
    ds = data.load("csv", path=p, val_fraction=0.2, test_fraction=0.2, standardize=True, seed=2)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (30, 10, 10)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)


def _load_error(name, path, opts) -> str:
    """The message of the ValueError that loading ``path`` raises."""
    with pytest.raises(ValueError) as exc:
        data.load(name, path=path, **opts)
    return str(exc.value)


BAD_CSV = [
    ("a,b,label\n1,2,x\n3,red,y\n", {}, "column 'b', line 3: value 'red' is not numeric"),
    ("a,b,label\n1,,x\n", {}, "column 'b', line 2: value '' is not numeric"),
    ("a,b\n1,2\n", {"target": "y"}, "target='y': no such column"),
    ("a,b,c\n1,2,3\n4,5\n", {}, "line 3 has 2 field(s), expected 3"),
    ("", {}, "empty; expected a header row"),
    ("a,b,c\n", {}, "no data rows after the header"),
    ("a,a,c\n1,2,3\n", {}, "duplicate column name(s) 'a'"),
    ("a,,c\n1,2,3\n", {}, "header column 2 has no name"),
    ("label\n1\n", {}, "only the target column(s); expected at least one feature column"),
    ("a,b\n1,nan\n2,1\n", {"target": "a"}, "column 'b', line 2: value 'nan' is not finite"),
    ("a,b\n1,1\n2,\n", {}, "column 'b', line 3: missing target value"),
    ("a,b\n1,cat\n2,dog\n", {"task": "regression"}, "line 2: value 'cat' is not numeric; expected numbers for task='regression'"),
    ("a,b\n1,1.5\n2,1\n", {"task": "classification"}, "label 1.5 at line 2 is not an integer class id"),
    ("a,b\n1,-1\n2,1\n", {"task": "classification"}, "label -1 at line 2 is negative"),
    ("a,b\n1,3\n2,1\n", {"num_classes": 2}, "num_classes=2: csv file"),
    ("a,b\n1,x\n2,y\n3,z\n", {"num_classes": 2}, "has 3 distinct text labels; expected num_classes=3 (or unset)"),
    ("a,b\n1,x\n2,y\n", {"num_classes": 3}, "has 2 distinct text labels; expected num_classes=2"),
    ("a,b\n1,2\n", {"task": "ordinal"}, "task='ordinal': expected one of auto, classification, regression"),
    ("a,b\n1,2\n", {"delimiter": ";;"}, "delimiter=';;': expected a single character"),
    ("a,b\n1,2\n", {"target": 3}, "target=3: expected a column name"),
    ("a,b\n1,0\n2,0\n", {}, "num_classes=1, expected an integer >= 2"),
]


@pytest.mark.parametrize("text,opts,fragment", BAD_CSV, ids=[f"csv{i}" for i in range(len(BAD_CSV))])
def test_bad_csv(tmp_path, text, opts, fragment):
    msg = _load_error("csv", _csv(tmp_path, text), opts)
    assert fragment in msg and "\n" not in msg


def test_csv_path_problems(tmp_path):
    with pytest.raises(ValueError, match="path= is required"):
        data.load("csv")
    with pytest.raises(ValueError, match="missing.csv': no such csv file"):
        data.load("csv", path=tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="not a regular file; expected a csv file"):  # /dev/zero
        data.load("csv", path="/dev/zero")
    p = tmp_path / "bin.csv"
    p.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(ValueError, match="not readable as CSV"):
        data.load("csv", path=p)


# ------------------------------------------------------------------------------------------- NPZ

def test_npz_classification_regression_and_splits(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "c.npz"
    np.savez(p, x=rng.standard_normal((20, 3)), y=np.arange(20) % 4)
    ds = data.load("npz", path=p, val_fraction=0.25)
    assert ds.task == "classification" and ds.num_classes == 4
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert len(ds.x_train) == 15 and len(ds.x_val) == 5 and ds.x_test is None
    q = tmp_path / "r.npz"
    np.savez_compressed(q, x=rng.standard_normal((10, 2)), y=rng.standard_normal(10),
                        x_test=rng.standard_normal((4, 2)), y_test=rng.standard_normal(4))
    r = data.load("npz", path=q)
    assert r.task == "regression" and r.y_train.shape == (10, 1) and r.y_test.shape == (4, 1)


def test_npz_text_labels_classes_and_images(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, x=np.zeros((3, 2)), y=np.array(["b", "a", "b"]))
    ds = data.load("npz", path=p)
    assert ds.classes == ("a", "b") and ds.y_train.tolist() == [1, 0, 1]
    q = tmp_path / "n.npz"
    np.savez(q, x=np.zeros((3, 2)), y=np.array([0, 2, 1]), classes=np.array(["cat", "dog", "eel"]))
    assert data.load("npz", path=q).classes == ("cat", "dog", "eel")
    im = tmp_path / "im.npz"
    np.savez(im, x=np.full((5, 4, 6), 7, np.uint8), y=np.arange(5) % 2)
    ds = data.load("npz", path=im)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape == (5, 24) and ds.image_shape == (4, 6)
    flat = tmp_path / "flat.npz"
    np.savez(flat, x=np.zeros((5, 24), np.uint8), y=np.arange(5) % 2)
    assert data.load("npz", path=flat, image_shape=(4, 6)).x_train.dtype == np.uint8
    assert data.load("npz", path=flat).x_train.dtype == np.float32


def _npz(tmp_path, **arrays):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    return p


Z = np.zeros((4, 2))
L = np.array([0, 1, 0, 1])
BAD_NPZ = [
    (dict(x=Z), {}, "missing array 'y' (found: x)"),
    (dict(X=Z, y=L), {}, "unknown array(s) 'X'"),
    (dict(x=Z, y=L[:3]), {}, "x has 4 rows but y has 3"),
    (dict(x=np.zeros(4), y=L), {}, "x has shape (4,); expected (n, features)"),
    (dict(x=np.array([[np.nan, 0]] * 4), y=L), {}, "x_train: 4 non-finite value(s) (NaN/inf), first at row 0, column 0"),
    (dict(x=Z, y=np.array([0, -1, 0, 1])), {}, "y label -1 at index 1 is negative"),
    (dict(x=Z, y=np.array([0, 5, 0, 1])), {"num_classes": 3}, "num_classes=3: npz file"),
    (dict(x=Z, y=L, x_test=np.zeros((2, 3)), y_test=L[:2]), {}, "x_test has 3 features but x_train has 2"),
    (dict(x=Z, y=L, x_val=Z), {}, "has x_val without y_val"),
    (dict(x=Z, y=np.array([0.5, 1, 0, 1])), {"task": "classification"}, "label 0.5 at index 0 is not an integer"),
    (dict(x=Z, y=np.array([0, np.inf, 0, 1])), {}, "1 non-finite target value(s)"),
    (dict(x=np.array([["a", "b"]] * 4), y=L), {}, "x has dtype <U1; expected numeric features"),
    (dict(x=Z, y=L, x_test=Z, y_test=L), {"test_fraction": 0.2}, "the source already has a test split"),
    (dict(x=Z, y=L), {"image_shape": (2, 1)}, "image_shape=(2, 1): x in npz file"),
    (dict(x=Z, y=L), {"image_shape": (0, 1)}, "image_shape=(0, 1): expected None or (height, width)"),
]


@pytest.mark.parametrize("arrays,opts,fragment", BAD_NPZ, ids=[f"npz{i}" for i in range(len(BAD_NPZ))])
def test_bad_npz(tmp_path, arrays, opts, fragment):
    msg = _load_error("npz", _npz(tmp_path, **arrays), opts)
    assert fragment in msg and "\n" not in msg


def test_npz_file_problems(tmp_path):
    with pytest.raises(ValueError, match="no such npz file"):
        data.load("npz", path=tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        data.load("npz", path=junk)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="holds a single array"):
        data.load("npz", path=single)
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, x=Z, y=np.array([{}, 1, 2, 3], dtype=object))
    with pytest.raises(ValueError, match="cannot read its arrays"):
        data.load("npz", path=pickled)
