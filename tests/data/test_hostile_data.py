"""Issue 17, the data side: hostile CSV/NPZ/IDX files and predict inputs are one-line
DataErrors naming the file (and the array, line or value), checked before anything is
allocated from a declared size."""
from __future__ import annotations

import csv
import gzip
import io
import struct
import zipfile

import numpy as np
import pytest

from fnn import data
from fnn.data.idx import read_idx
from fnn.experiment import predict


def _err(fn, *args, **kw) -> str:
    with pytest.raises(ValueError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


X4 = np.zeros((4, 2), np.float32)


@pytest.mark.parametrize("y,fragment", [
    (np.array([0, 1, 2, 10**9]), "label 1000000000 at index 3 is too large"),
    (np.array([0, 1, 2, 2**40], np.int64), f"label {2**40} at index 3 is too large"),
    (np.array([0, 1, 2, 2**64 - 1], np.uint64), f"label {2**64 - 1} at index 3 is too large"),
])
def test_huge_npz_labels_are_refused_with_their_true_value(tmp_path, y, fragment):
    msg = _err(data.load, "npz", path=_npz(tmp_path / "d.npz", x=X4, y=y))
    assert fragment in msg and "d.npz" in msg and "negative" not in msg


def test_npz_with_zero_rows(tmp_path):
    msg = _err(data.load, "npz", path=_npz(tmp_path / "e.npz", x=np.zeros((0, 2), np.float32),
                                            y=np.zeros((0,), np.int64)))
    assert "e.npz" in msg and "at least one example" in msg


def _crafted_npz(path, shape, dtype="<f8"):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False,
                                                  "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", header.getvalue() + b"\0" * 64)
        buf = io.BytesIO()
        np.save(buf, np.zeros(4, np.int64))
        z.writestr("y.npy", buf.getvalue())
    return path


def test_npz_header_declaring_2e11_elements_is_refused_before_allocating(tmp_path):
    msg = _err(data.load, "npz", path=_crafted_npz(tmp_path / "big.npz", (200_000_000_000,)))
    assert "big.npz" in msg and "'x'" in msg and "declares shape (200000000000,)" in msg


def _idx_raw(count, rows=28, cols=28, data_bytes=b"\0" * 100):
    return bytes([0, 0, 0x08, 3]) + struct.pack(">3I", count, rows, cols) + data_bytes


@pytest.mark.parametrize("compress", [False, True])
def test_idx_count_0xffffffff_is_refused_before_allocating(tmp_path, compress):
    raw = _idx_raw(0xFFFFFFFF)
    p = tmp_path / "images-idx3-ubyte"
    p.write_bytes(gzip.compress(raw) if compress else raw)
    msg = _err(read_idx, p)
    assert "truncated data" in msg and str(p) in msg


def test_idx_with_zero_images(tmp_path):
    from fnn.data.idx import write_idx
    from fnn.data.images import read_image_split

    write_idx(tmp_path / "img", np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / "lab", np.zeros((0,), np.uint8))
    msg = _err(read_image_split, tmp_path / "img", tmp_path / "lab", image_shape=(28, 28))
    assert "0 images" in msg and "img" in msg


@pytest.mark.parametrize("y,fragment", [
    (np.array([1 + 1j, 0, 1, 0]), "dtype complex128"),
    (np.array(["2020-01-01"] * 4, dtype="datetime64[D]"), "dtype datetime64[D]"),
])
def test_npz_odd_label_dtypes_are_one_line(tmp_path, y, fragment):
    assert fragment in _err(data.load, "npz", path=_npz(tmp_path / "o.npz", x=X4, y=y))


@pytest.mark.parametrize("x", [np.zeros((4, 2), complex), np.array([["a", "b"]] * 4),
                               np.zeros((4, 2), "datetime64[s]")])
def test_npz_odd_feature_dtypes_are_one_line(tmp_path, x):
    assert "expected numeric features" in _err(
        data.load, "npz", path=_npz(tmp_path / "f.npz", x=x, y=np.array([0, 1, 0, 1])))


def test_csv_nan_is_reported_by_file_line_and_name(tmp_path):
    rows = [f"{i},{i % 2}" for i in range(20)]
    rows[16] = "nan,1"  # data row 17 is file line 18 (header is line 1)
    p = tmp_path / "n.csv"
    p.write_text("a,y\n" + "\n".join(rows) + "\n")
    msg = _err(data.load, "csv", path=p, val_fraction=0.2)
    assert "n.csv" in msg and "line 18" in msg and "column 'a'" in msg


def test_csv_field_over_the_csv_limit_is_one_line(tmp_path):
    p = tmp_path / "wide.csv"
    p.write_text("a,y\n" + "1" * (csv.field_size_limit() + 10) + ",0\n")
    msg = _err(data.load, "csv", path=p)
    assert "wide.csv" in msg and "line 2" in msg and "field" in msg


def test_sparse_integer_labels_are_refused_with_the_remedies(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("a,y\n1,0\n2,99\n3,0\n4,99\n5,0\n")
    msg = _err(data.load, "csv", path=p)
    assert "{0, 99}" in msg and "2 of the 100 ids" in msg and "num_classes=100" in msg
    ds = data.load("csv", path=p, num_classes=100)  # the stated remedy keeps the ids
    assert ds.num_classes == 100


# ---------------------------------------------------------------------------------------------
# predict inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x,fragment", [
    (np.array([["a", "b"]]), "dtype <U1"), (np.zeros((1, 2), "datetime64[s]"), "datetime64"),
    (np.zeros((1, 2), complex), "complex128"),
])
def test_predict_inputs_of_odd_dtype_are_one_line(tmp_path, x, fragment):
    msg = _err(predict.read_inputs, _npz(tmp_path / "x.npz", x=x), num_features=2)
    assert "x.npz" in msg and fragment in msg


def test_predict_csv_field_limit_is_one_line(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text("a,b\n" + "1" * (csv.field_size_limit() + 1) + ",2\n")
    msg = _err(predict.read_inputs, p, num_features=2)
    assert "in.csv" in msg and "not readable as CSV" in msg


def test_predict_crafted_npz_is_refused_before_allocating(tmp_path):
    msg = _err(predict.read_inputs, _crafted_npz(tmp_path / "c.npz", (200_000_000_000,)),
               num_features=2)
    assert "c.npz" in msg and "declares" in msg
