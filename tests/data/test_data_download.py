"""Lookup order and verified, atomic download of image datasets, against a local HTTP server only."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import fnn.data as data
from fnn.data import images
from data_helpers import (
    FILENAMES,
    N_TEST,
    N_TRAIN,
    closed_port_url,
    files_under,
    serve_directory,
    tiny_source,
    write_tiny_mnist,
)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated HOME / FNN_DATA_DIR, no mirror override, no proxy for 127.0.0.1, and a fake
    'mnist' source whose pinned digests are those of freshly generated tiny files."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    monkeypatch.delenv("FNN_DATA_MIRROR", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served = tmp_path / "served"
    write_tiny_mnist(served)
    monkeypatch.setitem(images.SOURCES, "mnist", tiny_source(served))

    class Env:
        pass

    e = Env()
    e.home, e.served, e.tmp = home, served, tmp_path
    e.cache = home / ".cache" / "fnn" / "mnist"
    return e


def _check_tiny(ds):
    assert ds.x_train.shape == (N_TRAIN, 784) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (N_TEST, 784) and ds.y_test.dtype == np.int32
    assert ds.image_shape == (28, 28) and ds.num_classes == 10


def test_good_download_is_accepted_and_cached(env):
    with serve_directory(env.served) as url:
        ds = data.load("mnist", mirror=url)
    _check_tiny(ds)
    assert files_under(env.cache) == sorted(FILENAMES.values())  # no temp files left
    for fname in FILENAMES.values():
        assert (env.cache / fname).read_bytes() == (env.served / fname).read_bytes()
    # Second load comes from the cache: the mirror is now unreachable.
    ds2 = data.load("mnist", mirror=closed_port_url())
    np.testing.assert_array_equal(ds2.x_train, ds.x_train)


def test_download_goes_to_fnn_data_dir_when_set(env, monkeypatch):
    monkeypatch.setenv("FNN_DATA_DIR", str(env.tmp / "datadir"))
    with serve_directory(env.served) as url:
        _check_tiny(data.load("mnist", mirror=url))
    assert files_under(env.tmp / "datadir" / "mnist") == sorted(FILENAMES.values())
    assert not env.cache.exists()


@pytest.mark.parametrize("how", ["env", "option_list", "name_placeholder"])
def test_mirror_sources(env, monkeypatch, how):
    # Serve from a parent directory so that "{name}" can be exercised.
    parent = env.tmp / "mirror"
    write_tiny_mnist(parent / "mnist")
    monkeypatch.setitem(images.SOURCES, "mnist", tiny_source(parent / "mnist"))
    with serve_directory(parent) as url:
        if how == "env":
            monkeypatch.setenv("FNN_DATA_MIRROR", f"{closed_port_url()},{url}mnist/")
            ds = data.load("mnist")
        elif how == "option_list":
            ds = data.load("mnist", mirror=[closed_port_url(), url + "mnist"])  # first fails, second works
        else:
            ds = data.load("mnist", mirror=url + "{name}/")
    _check_tiny(ds)


def test_corrupted_file_is_rejected_and_nothing_left(env):
    bad = env.tmp / "bad"
    write_tiny_mnist(bad, seed=1)  # same names and format, other bytes -> digest mismatch
    with serve_directory(bad) as url:
        with pytest.raises(data.DownloadError, match="SHA-256 mismatch") as exc:
            data.load("mnist", mirror=url)
    assert "train-images-idx3-ubyte.gz" in str(exc.value)
    assert files_under(env.cache) == []
    assert not env.cache.exists()


def test_one_corrupted_file_among_good_ones(env):
    mixed = env.tmp / "mixed"
    write_tiny_mnist(mixed)
    (mixed / FILENAMES["test_images"]).write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    with serve_directory(mixed) as url, pytest.raises(data.DownloadError, match="t10k-images-idx3-ubyte.gz"):
        data.load("mnist", mirror=url)
    left = files_under(env.cache)
    assert FILENAMES["test_images"] not in left
    assert not [f for f in left if f.startswith(".") or f.endswith(".part")]
    # The verified files stay; a later good mirror completes the set.
    with serve_directory(env.served) as url:
        _check_tiny(data.load("mnist", mirror=url))


def test_truncated_transfer_leaves_nothing(env):
    with serve_directory(env.served, truncate=True) as url, \
            pytest.raises(data.DownloadError, match="incomplete transfer"):
        data.load("mnist", mirror=url)
    assert files_under(env.cache) == []


def test_recompressed_copy_with_same_payload_is_accepted(env):
    # A mirror holding a recompressed .gz (as the Debian package does) passes on the payload digest.
    recompressed = env.tmp / "recompressed"
    recompressed.mkdir()
    for fname in FILENAMES.values():
        payload = gzip.decompress((env.served / fname).read_bytes())
        (recompressed / fname).write_bytes(gzip.compress(payload, compresslevel=1, mtime=12345))
        assert (recompressed / fname).read_bytes() != (env.served / fname).read_bytes()
    with serve_directory(recompressed) as url:
        _check_tiny(data.load("mnist", mirror=url))


def test_offline_error_says_where_to_put_the_files(env):
    with pytest.raises(data.DownloadError) as exc:
        data.load("mnist", mirror=closed_port_url())
    msg = str(exc.value)
    assert "\n" not in msg
    for needle in ("could not download", "$FNN_DATA_DIR/mnist/", "~/.cache/fnn/mnist/", "path=",
                   "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "127.0.0.1"):
        assert needle in msg
    assert files_under(env.cache) == []
    assert isinstance(exc.value, ValueError)


def test_download_false_never_touches_the_network(env):
    with pytest.raises(data.DownloadError, match="download=False"):
        data.load("mnist", download=False, mirror=closed_port_url())


def test_bad_mirror_values(env):
    with pytest.raises(data.DataError, match="mirror="):
        data.load("mnist", mirror="ftp://example.invalid/")
    with pytest.raises(data.DataError, match="mirror="):
        data.load("mnist", mirror=[])


# ------------------------------------------------------------------------------------ lookup order

def test_lookup_order(env, monkeypatch):
    explicit = env.tmp / "explicit"
    datadir = env.tmp / "datadir"
    write_tiny_mnist(explicit, seed=11)
    write_tiny_mnist(datadir / "mnist", seed=12)
    write_tiny_mnist(env.cache, seed=13, compress=False)  # uncompressed names are accepted too
    monkeypatch.setenv("FNN_DATA_DIR", str(datadir))
    ref = {s: data.load("mnist", path=d).x_train for s, d in
           [(11, explicit), (12, datadir / "mnist"), (13, env.cache)]}
    assert not np.array_equal(ref[11], ref[12]) and not np.array_equal(ref[12], ref[13])
    no_net = closed_port_url()
    np.testing.assert_array_equal(data.load("mnist", path=explicit, mirror=no_net).x_train, ref[11])
    np.testing.assert_array_equal(data.load("mnist", mirror=no_net).x_train, ref[12])
    monkeypatch.delenv("FNN_DATA_DIR")
    np.testing.assert_array_equal(data.load("mnist", mirror=no_net).x_train, ref[13])


def test_system_dir_is_searched_last(env, monkeypatch):
    system = env.tmp / "system"
    write_tiny_mnist(system, seed=5)
    src = tiny_source(env.served, system_dirs=(str(system),))
    monkeypatch.setitem(images.SOURCES, "mnist", src)
    assert images.search_dirs(src)[-1] == system
    ds = data.load("mnist", download=False)
    np.testing.assert_array_equal(ds.x_train, data.load("mnist", path=system).x_train)


def test_search_dirs_of_the_real_sources(env, monkeypatch):
    monkeypatch.setenv("FNN_DATA_DIR", "/data")
    fm = images.search_dirs(images.FASHION_MNIST)
    assert fm == [Path("/data/fashion_mnist"), env.home / ".cache/fnn/fashion_mnist",
                  Path("/usr/share/datasets/fashion-mnist")]
    assert images.search_dirs(images.MNIST) == [Path("/data/mnist"), env.home / ".cache/fnn/mnist"]
    assert images.search_dirs(images.MNIST, path="/x") == [Path("/x")]


def test_explicit_path_incomplete_is_an_error_and_no_fallback(env):
    partial = env.tmp / "partial"
    write_tiny_mnist(partial)
    os.remove(partial / FILENAMES["train_labels"])
    write_tiny_mnist(env.cache)  # a complete copy elsewhere must not be used
    with pytest.raises(data.DataError, match="train-labels-idx1-ubyte.gz") as exc:
        data.load("mnist", path=partial)
    assert "path=" in str(exc.value) and not isinstance(exc.value, data.DownloadError)


def test_default_mirrors_are_published_https_or_http_urls():
    for src in (images.FASHION_MNIST, images.MNIST):
        assert src.mirrors and all(m.startswith(("https://", "http://")) and m.endswith("/") for m in src.mirrors)
        assert set(src.files) == set(images.ROLES)
        for spec in src.files.values():
            assert len(spec.sha256) == 64 and len(spec.raw_sha256) == 64
            int(spec.sha256, 16), int(spec.raw_sha256, 16)
