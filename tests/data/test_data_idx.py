"""IDX reader: round trips, and one clear error per kind of corruption."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from fnn.data import IDXError, read_idx, write_idx
from fnn.data.images import read_image_split


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "dtype,shape",
    [
        (np.uint8, (5, 28, 28)),
        (np.uint8, (7,)),
        (np.int8, (3, 4)),
        (np.int16, (2, 3, 4)),
        (np.int32, (6,)),
        (np.float32, (2, 5)),
        (np.float64, (1, 2, 3, 4)),
        (np.uint8, (0, 28, 28)),
    ],
)
def test_round_trip(tmp_path, dtype, shape, compress):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    p = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(p, a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == compress
    b = read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.shape == shape and b.dtype.isnative
    np.testing.assert_array_equal(a, b)
    b[...] = 0  # writable


def test_header_layout_follows_the_spec(tmp_path):
    p = tmp_path / "labels"
    write_idx(p, np.array([3, 1, 4], dtype=np.uint8))
    assert p.read_bytes() == b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([3, 1, 4])
    p = tmp_path / "ints"
    write_idx(p, np.array([[1, -2]], dtype=np.int32))
    assert p.read_bytes() == b"\x00\x00\x0c\x02" + struct.pack(">II", 1, 2) + struct.pack(">ii", 1, -2)


def test_gzip_detected_by_content_not_name(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "plain.gz", a, compress=False)
    write_idx(tmp_path / "packed", a, compress=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), a)


def _images_bytes(n=2, h=3, w=3):
    return b"\x00\x00\x08\x03" + struct.pack(">III", n, h, w) + bytes(range(n * h * w))


CORRUPTIONS = [
    # (name, file bytes, read_idx kwargs, expected message fragment)
    ("empty", b"", {}, "truncated header"),
    ("wrong_magic", b"\x01\x02\x08\x03" + _images_bytes()[4:], {}, "bad magic number 0x01020803"),
    ("wrong_dtype_code", b"\x00\x00\x07\x03" + _images_bytes()[4:], {}, "unknown dtype code 0x07"),
    ("unexpected_dtype", b"\x00\x00\x0b\x01" + struct.pack(">I", 2) + b"\x00\x01\x00\x02",
     {"dtype": np.uint8}, "dtype code 0x0B (int16), expected uint8 (code 0x08)"),
    ("unexpected_ndim", _images_bytes(), {"ndim": 1}, "declares 3 dimension(s)"),
    ("zero_dims", b"\x00\x00\x08\x00", {}, "0 dimensions"),
    ("truncated_dims", b"\x00\x00\x08\x03" + struct.pack(">I", 2), {}, "truncated header (dimension sizes)"),
    ("truncated_data", _images_bytes()[:-5], {}, "truncated data: the header declares 18 data bytes, found 13"),
    ("count_mismatch_trailing", _images_bytes() + b"\x00" * 9, {}, "9 unexpected byte(s) after the 18 data bytes"),
    ("gzip_garbage", b"\x1f\x8b\x08\x00" + b"\xde\xad\xbe\xef" * 8, {}, "corrupt gzip data"),
    ("gzip_truncated", gzip.compress(_images_bytes() * 50)[:40], {}, "truncated gzip stream"),
]


@pytest.mark.parametrize("name,blob,kwargs,fragment", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_each_corruption_has_its_own_error(tmp_path, name, blob, kwargs, fragment):
    p = tmp_path / f"{name}-idx3-ubyte"
    p.write_bytes(blob)
    with pytest.raises(IDXError) as exc:
        read_idx(p, **kwargs)
    msg = str(exc.value)
    assert fragment in msg
    assert str(p) in msg and "\n" not in msg
    assert isinstance(exc.value, ValueError)


def test_gz_name_with_raw_garbage_hints_at_the_name(tmp_path):
    p = tmp_path / "x-idx3-ubyte.gz"
    p.write_bytes(b"<html>not found</html>")
    with pytest.raises(IDXError, match=r"bad magic number .*the name ends in .gz but the content is not gzip"):
        read_idx(p)


def test_missing_file(tmp_path):
    with pytest.raises(IDXError, match="cannot open"):
        read_idx(tmp_path / "nope")


def _write_pair(tmp_path, n_images, n_labels, hw=(28, 28)):
    ip, lp = tmp_path / "img.gz", tmp_path / "lab.gz"
    write_idx(ip, np.zeros((n_images, *hw), dtype=np.uint8))
    write_idx(lp, np.zeros((n_labels,), dtype=np.uint8))
    return ip, lp


def test_image_label_pair(tmp_path):
    x, y = read_image_split(*_write_pair(tmp_path, 4, 4), image_shape=(28, 28))
    assert x.shape == (4, 784) and x.dtype == np.uint8 and y.shape == (4,) and y.dtype == np.int32


def test_image_label_count_mismatch(tmp_path):
    ip, lp = _write_pair(tmp_path, 4, 3)
    with pytest.raises(ValueError, match=r"holds 4 images but .*lab.gz holds 3 labels \(count mismatch\)"):
        read_image_split(ip, lp, image_shape=(28, 28))


def test_image_size_mismatch(tmp_path):
    ip, lp = _write_pair(tmp_path, 2, 2, hw=(27, 28))
    with pytest.raises(ValueError, match="images of size 27x28, expected 28x28"):
        read_image_split(ip, lp, image_shape=(28, 28))


def test_labels_file_given_as_images(tmp_path):
    ip, lp = _write_pair(tmp_path, 2, 2)
    with pytest.raises(IDXError, match="declares 1 dimension"):
        read_image_split(lp, lp, image_shape=(28, 28))


def test_write_idx_rejects_unsupported(tmp_path):
    with pytest.raises(ValueError, match="no IDX code"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.uint16))
    with pytest.raises(ValueError, match="0 dimensions"):
        write_idx(tmp_path / "a", np.uint8(3))
