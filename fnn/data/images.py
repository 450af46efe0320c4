"""Reading a named image dataset ("fashion_mnist", "mnist"): locate (or download) its four IDX
files and read them as ``(x, y)`` splits.

Where the files are looked for: :mod:`fnn.data.image_sources`; how the missing ones are
downloaded and verified: :mod:`fnn.data.download`. Their names are re-exported here.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fnn.data.download import fetch, mirror_urls, download_file  # noqa: F401 (re-exported)
from fnn.data.idx import read_idx
from fnn.data.image_sources import (  # noqa: F401 (re-exported)
    DEBIAN_FASHION_MNIST_DIR, DOWNLOAD_TIMEOUT_S, FASHION_MNIST, MNIST, ROLES, SOURCES, DownloadError, FileSpec, ImageSource,
    cache_dir, get_source, locate, search_dirs)
from fnn.data.validate import DataError

def read_image_split(images_path: Path, labels_path: Path, *, image_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair and check that they match.

    Args:
      images_path: IDX file of uint8 images ``(n, H, W)``.
      labels_path: IDX file of uint8 labels ``(n,)``.
      image_shape: expected ``(H, W)``.

    Returns:
      ``x`` uint8 ``(n, H*W)`` and ``y`` int32 ``(n,)``.

    Raises:
      IDXError / DataError: malformed files, unexpected image size, or different counts.
    """
    images = read_idx(images_path, dtype=np.uint8, ndim=3)
    labels = read_idx(labels_path, dtype=np.uint8, ndim=1)
    if tuple(images.shape[1:]) != tuple(image_shape):
        raise DataError(
            f"{images_path}: images of size {images.shape[1]}x{images.shape[2]}, "
            f"expected {image_shape[0]}x{image_shape[1]}"
        )
    if images.shape[0] == 0:
        raise DataError(f"{images_path}: the header declares 0 images; expected at least one")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path}: holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels "
            "(count mismatch); expected equal counts"
        )
    return images.reshape(images.shape[0], -1), labels.astype(np.int32)


def load_image_files(
    name: str,
    *,
    path: str | os.PathLike | None = None,
    mirror: str | list[str] | None = None,
    download: bool = True,
) -> tuple[ImageSource, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Locate (or download) and read a named image dataset.

    Args:
      name: "fashion_mnist" or "mnist" (a key of ``SOURCES``).
      path, mirror, download: see :func:`fetch`.

    Returns:
      ``(source, (x_train, y_train), (x_test, y_test))`` with ``x`` uint8 ``(n, H*W)`` and
      ``y`` int32 ``(n,)``.
    """
    source = get_source(name)
    files = fetch(source, path=path, mirror=mirror, download=download)
    train = read_image_split(files["train_images"], files["train_labels"], image_shape=source.image_shape)
    test = read_image_split(files["test_images"], files["test_labels"], image_shape=source.image_shape)
    return source, train, test
