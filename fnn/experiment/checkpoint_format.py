"""The checkpoint file's format: its names, its header and how one leaf is stored and restored.

A checkpoint is an ``.npz`` archive (see :mod:`fnn.experiment.checkpoint` for what it holds and
how it is written). Each leaf is an ``.npy`` entry; typed PRNG keys are stored as
``jax.random.key_data`` with their implementation recorded, and dtypes NumPy cannot name
(bfloat16, ...) as same-width unsigned integers viewed back on load, so every leaf round-trips
bitwise. The JSON header (``__meta__``) carries a format marker and version.
"""

from __future__ import annotations

import json
import pathlib
import re
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

FORMAT_VERSION = 1
FORMAT_NAME = "fnn-checkpoint"

META = "__meta__"
STATE_PREFIX = "state"
HISTORY_PREFIX = "history/"
NAME_RE = re.compile(r"^ckpt-(\d+)\.npz$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the template (one-line message)."""


class CheckpointWarning(UserWarning):
    """An unreadable checkpoint file was skipped by :func:`latest`."""


def filename(epoch: int) -> str:
    """The file name of the checkpoint of ``epoch``.

    Args:
      epoch: epochs completed (≥ 0).
    Returns:
      e.g. ``"ckpt-000012.npz"``.
    """
    return f"ckpt-{int(epoch):06d}.npz"


def is_key(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def flatten(tree) -> list[tuple[str, Any]]:
    """(key path string, leaf) pairs in tree order; duplicate path strings are an error."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    out = [(jax.tree_util.keystr(p), leaf) for p, leaf in leaves]
    seen = set()
    for path, _ in out:
        if path in seen:
            raise ValueError(f"state: two leaves have the same key path {path!r}")
        seen.add(path)
    return out


def to_host(leaf) -> tuple[np.ndarray, dict]:
    """A leaf as a storable NumPy array, and its table entry (shape, dtype, impl, view)."""
    info: dict = {}
    if is_key(leaf):
        info["key_impl"] = str(jax.random.key_impl(leaf))
        info["shape"] = list(leaf.shape)
        info["dtype"] = str(leaf.dtype)
        arr = np.asarray(jax.device_get(jax.random.key_data(leaf)))
    else:
        arr = np.asarray(jax.device_get(leaf))
        info["shape"] = list(arr.shape)
        info["dtype"] = str(arr.dtype)
    if arr.dtype.kind == "V":  # bfloat16 & co.: store the bits
        arr = arr.view(np.dtype(f"u{arr.dtype.itemsize}"))
        info["view"] = True
    return np.asarray(arr, order="C"), info


def read_header(npz, name: str, *, check_version: bool = True) -> dict:
    if META not in npz.files:
        raise CheckpointError(f"checkpoint {name}: not an fnn checkpoint (no {META} entry)")
    raw = npz[META]
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {name}: unreadable metadata ({err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise CheckpointError(f"checkpoint {name}: not an fnn checkpoint (format marker missing)")
    version = header.get("format_version")
    if check_version and version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {name}: format version {version!r}; this fnn reads version"
            f" {FORMAT_VERSION}" + (" (written by a newer fnn?)" if isinstance(version, int)
                                    and version > FORMAT_VERSION else "")
        )
    return header


def open_checkpoint(path: pathlib.Path):
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(
            f"checkpoint {path.name}: not an fnn checkpoint or truncated ({err})") from None


def is_checkpoint(path: pathlib.Path) -> bool:
    """Whether ``path`` opens as an fnn checkpoint with a header (not a full CRC check): what
    may be replaced or pruned; anything else at a checkpoint's name is a user's, or damaged."""
    try:
        with open_checkpoint(path) as npz:
            read_header(npz, path.name, check_version=False)
    except (CheckpointError, OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return False
    return True


def restore_leaf(arr: np.ndarray, info: dict, template_leaf, name: str, path: str):
    if info.get("view"):
        arr = arr.view(jnp.dtype(info["dtype"]))
    if is_key(template_leaf):
        impl = info.get("key_impl")
        want = str(jax.random.key_impl(template_leaf))
        if impl != want:
            raise CheckpointError(
                f"checkpoint {name}: leaf {path} is a {impl} key, expected a {want} key")
        return jax.random.wrap_key_data(jnp.asarray(arr), impl=impl)
    if isinstance(template_leaf, jax.Array):  # same placement as the template's leaf
        return jax.make_array_from_callback(arr.shape, template_leaf.sharding,
                                            lambda idx: arr[idx])
    return jnp.asarray(arr)


def shape_dtype(leaf) -> tuple[tuple, str]:
    """A leaf's (shape, dtype name), for checking it against a stored table entry."""
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
        leaf = np.asarray(leaf)
    return tuple(leaf.shape), str(leaf.dtype)
