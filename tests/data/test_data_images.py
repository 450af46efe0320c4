"""Real Fashion-MNIST from the Debian package location (skipped where the files are absent)."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

import fnn.data as data
from fnn.data import images

DEBIAN = Path(images.DEBIAN_FASHION_MNIST_DIR)
HAVE_DEBIAN = all((DEBIAN / s.filename).is_file() for s in images.FASHION_MNIST.files.values())
needs_files = pytest.mark.skipif(
    not HAVE_DEBIAN, reason=f"Fashion-MNIST files absent from {DEBIAN} (Debian package dataset-fashion-mnist)"
)


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """Empty HOME and FNN_DATA_DIR, so the lookup reaches the system location; no network."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    monkeypatch.delenv("FNN_DATA_MIRROR", raising=False)


@pytest.mark.slow
@needs_files
def test_fashion_mnist_loads_from_the_system_location(offline_home):
    ds = data.load("fashion_mnist", download=False)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.uint8 and ds.x_test.dtype == np.uint8
    assert ds.y_train.dtype == np.int32 and ds.y_train.shape == (60000,) and ds.y_test.shape == (10000,)
    assert ds.x_val is None and ds.image_shape == (28, 28) and ds.num_classes == 10
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    np.testing.assert_array_equal(np.bincount(ds.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 1000))
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    assert ds.x_train.nbytes == 60000 * 784  # stored uint8: 4x smaller than float32


@pytest.mark.slow
@needs_files
def test_system_files_hold_the_pinned_payloads():
    """The Debian .gz files are recompressed, but their payloads are the published ones."""
    for spec in images.FASHION_MNIST.files.values():
        blob = (DEBIAN / spec.filename).read_bytes()
        assert hashlib.sha256(gzip.decompress(blob)).hexdigest() == spec.raw_sha256


def test_mnist_is_not_looked_up_in_the_fashion_location():
    assert images.MNIST.system_dirs == ()
