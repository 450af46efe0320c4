"""Atomic save / load / resume of the whole training state.

One checkpoint is one file, ``ckpt-000012.npz`` (the number is the epoch), holding

* every leaf of the :class:`fnn.train.TrainState` pytree — step, epoch, params, optimizer state,
  PRNG key, NaN guard, early-stopping state — as an ``.npy`` entry named ``"state"`` + the
  leaf's key path (``jax.tree_util.keystr``), e.g. ``state.params[1]['w']``;
* the history so far, one entry ``history/<metric>`` per metric ((epochs,) or (members, epochs));
* a JSON entry ``__meta__`` (UTF-8 bytes): format marker and version, epoch, the resolved config
  text, the caller's ``meta``, and a table of the leaves (path, shape, dtype, PRNG impl).

Typed PRNG keys are stored as ``jax.random.key_data`` (uint32, shape ``key.shape + (2,)`` for
threefry) and restored with ``jax.random.wrap_key_data`` and the recorded implementation; this
covers the (members,) key array of a sweep. Dtypes NumPy cannot name (bfloat16, ...) are stored
as same-width unsigned integers and viewed back. Everything round-trips bitwise.

Writes are atomic: the file is written under a temporary name in the same directory
(``.ckpt-000012.npz.<pid>-<random>.tmp``), flushed and fsynced, renamed over the final name
with ``os.replace``, and the directory is fsynced; only then are older checkpoints beyond
``keep`` removed. A crash at any point leaves the previous checkpoint intact and never a
half-written file under a final name. :func:`latest` removes the temporary leftovers of
processes that no longer run (a run directory has one writer: :mod:`fnn.experiment.runlock`).

Loading restores into the structure of a *template* state built fresh from the same config;
every leaf is checked, and any mismatch is a one-line :class:`CheckpointError`.

    path = checkpoint.save(run_dir, state, history, epoch=12, config_text=toml_text)
    ...
    path = checkpoint.latest(run_dir)
    state, history, meta = checkpoint.load(path, trainer.init(key))

The format of one file (names, header, how a leaf is stored) is :mod:`fnn.experiment.checkpoint_format`.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import time
import warnings
import zipfile
from typing import Any, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.experiment.checkpoint_format import (
    FORMAT_NAME, FORMAT_VERSION, HISTORY_PREFIX, META, NAME_RE, STATE_PREFIX, CheckpointError,
    CheckpointWarning, filename, flatten, is_checkpoint, is_key, open_checkpoint, read_header,
    restore_leaf, shape_dtype, to_host,
)
from fnn.util import fileio

PathLike = Union[str, os.PathLike]


# --------------------------------------------------------------------------------------------
# Save
# --------------------------------------------------------------------------------------------
def save(directory: PathLike, state, history: Optional[dict] = None, *, epoch: int,
         config_text: str = "", meta: Optional[dict] = None, keep: Optional[int] = 2
         ) -> pathlib.Path:
    """Atomically write one checkpoint of ``state`` and ``history`` into ``directory``.

    Args:
      directory: the run's checkpoint directory (created if missing).
      state: a :class:`fnn.train.TrainState` (any pytree of arrays and typed PRNG keys works),
        for one run or a sweep (leading members axis on every leaf).
      history: metric name -> array of shape (epochs,) or (members, epochs), or None.
      epoch: epochs completed; names the file ``ckpt-{epoch:06d}.npz``.
      config_text: the resolved config (TOML text), stored verbatim.
      meta: JSON-serializable dict stored for the caller (e.g. seeds, member labels).
      keep: how many checkpoints to keep, counting the new one; older ones (lower epoch) are
        removed after the new file is complete. ``None`` keeps all.
    Returns:
      the path of the new checkpoint.
    Raises:
      ValueError: bad ``epoch`` / ``keep``, ``meta`` not JSON-serializable, duplicate leaf
        paths — before anything is written.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"checkpoint epoch: {epoch!r}; expected an integer >= 0")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError(f"checkpoint keep: {keep!r}; expected an integer >= 1 or None")
    if not isinstance(config_text, str):
        raise ValueError(f"checkpoint config_text: a {type(config_text).__name__}; expected str")
    epoch = int(epoch)

    arrays: dict[str, np.ndarray] = {}
    table = []
    for path, leaf in flatten(state):
        arr, info = to_host(leaf)
        entry = STATE_PREFIX + path
        arrays[entry] = arr
        table.append({"path": path, "entry": entry, **info})
    hist_names = []
    for name, value in (history or {}).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"checkpoint history: metric name {name!r}; expected a non-empty str")
        arr = np.asarray(jax.device_get(value))
        hist_names.append({"name": name, "dtype": str(arr.dtype)})
        if arr.dtype.kind == "V":
            arr = arr.view(np.dtype(f"u{arr.dtype.itemsize}"))
        arrays[HISTORY_PREFIX + name] = np.asarray(arr, order="C")
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "epoch": epoch,
        "config_text": config_text,
        "meta": meta if meta is not None else {},
        "leaves": table,
        "history": hist_names,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "jax_version": jax.__version__,
    }
    try:
        blob = json.dumps(header).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint meta: not JSON-serializable ({err})") from None
    arrays[META] = np.frombuffer(blob, np.uint8)

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / filename(epoch)
    if final.is_file() and not is_checkpoint(final):  # damaged, or a user's: kept, not replaced
        kept = fileio.move_aside(final, ".corrupt")
        warnings.warn(f"checkpoint {final.name}: not a readable checkpoint; kept as {kept.name}",
                      CheckpointWarning, stacklevel=2)
    fileio.atomic_write(final, lambda f: np.savez(f, **arrays))
    if keep is not None:  # pruned: fnn's own older checkpoints only
        older = sorted((e, p) for e, p in _listing(directory) if e < epoch and is_checkpoint(p))
        for _, p in older[: max(0, len(older) - (keep - 1))]:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
    return final


def _listing(directory: pathlib.Path) -> list[tuple[int, pathlib.Path]]:
    """(epoch, path) of every file named like a checkpoint."""
    out = []
    for p in directory.iterdir():
        m = NAME_RE.match(p.name)
        if m and p.is_file():
            out.append((int(m.group(1)), p))
    return out


def checkpoints(directory: PathLike) -> list[pathlib.Path]:
    """Files named like checkpoints in ``directory``, oldest first (not validated).

    Args:
      directory: a checkpoint directory (may be missing).
    Returns:
      paths sorted by epoch number.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    return [p for _, p in sorted(_listing(directory))]


# --------------------------------------------------------------------------------------------
# Read
# --------------------------------------------------------------------------------------------
def _verify(path: pathlib.Path) -> None:
    """Raise CheckpointError unless ``path`` is a complete fnn checkpoint (all CRCs good)."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path.name}: truncated or corrupt ({err})") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path.name}: corrupt entry {bad}")
    with open_checkpoint(path) as npz:
        read_header(npz, path.name, check_version=False)


def latest(directory: PathLike) -> Optional[pathlib.Path]:
    """The newest complete checkpoint in ``directory``.

    Removes temporary files left by interrupted saves of processes that no longer run (a
    live process's save in progress is left alone). Files named like checkpoints that are
    truncated, corrupt or not fnn checkpoints are skipped with a :class:`CheckpointWarning`
    (and left in place); the next older one is tried. A checkpoint of another format version is
    returned (``load`` then says so).

    Args:
      directory: a checkpoint directory (may be missing).
    Returns:
      the path of the newest good checkpoint, or None when there is none.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return None
    fileio.remove_stale_temps(directory)  # a live writer's temp (another process) is kept
    for _, path in sorted(_listing(directory), reverse=True):
        try:
            _verify(path)
        except CheckpointError as err:
            warnings.warn(f"{err}; skipping it", CheckpointWarning, stacklevel=2)
            continue
        return path
    return None


def _count(paths: list) -> str:
    return f"{len(paths)} leaf" if len(paths) == 1 else f"{len(paths)} leaves"


def _hint(path: str) -> str:
    if path.startswith((".params", ".opt_state", ".early.best_params")):
        return " (different architecture or optimizer?)"
    return ""


def _restore_leaves(npz, table: dict, name: str, t_paths: list, t_leaves: list) -> list:
    """The leaves at ``t_paths`` restored like ``t_leaves`` (shape and dtype checked)."""
    restored = []
    for p, leaf in zip(t_paths, t_leaves):
        info = table[p]
        shape, dtype = tuple(info["shape"]), str(info["dtype"])
        want_shape, want_dtype = shape_dtype(leaf)
        if shape != want_shape:
            raise CheckpointError(
                f"checkpoint {name}: leaf {p} has shape {shape}, expected {want_shape}"
                f"{_hint(p) or ' (different sweep size?)'}")
        if dtype != want_dtype:
            raise CheckpointError(
                f"checkpoint {name}: leaf {p} has dtype {dtype}, expected {want_dtype}"
                + (" (different PRNG implementation?)" if is_key(leaf)
                   else " (different dtype or x64 setting?)"))
        if info["entry"] not in npz.files:
            raise CheckpointError(f"checkpoint {name}: entry for leaf {p} is missing")
        restored.append(restore_leaf(npz[info["entry"]], info, leaf, name, p))
    return restored


def has_subtree(path: PathLike, prefix: str) -> bool:
    """Whether the checkpoint at ``path`` holds any leaf under ``prefix`` (e.g. ``".params"``)."""
    path = pathlib.Path(path)
    try:
        with open_checkpoint(path) as npz:
            header = read_header(npz, path.name)
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {path.name}: truncated or corrupt ({err})") from None
    return any(e["path"] == prefix or e["path"].startswith(prefix + "[") or
               e["path"].startswith(prefix + ".") for e in header.get("leaves", []))


def _template(template, prefix: str = ""):
    """(leaf paths with ``prefix``, leaves, treedef) of a template pytree."""
    t_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    return ([prefix + jax.tree_util.keystr(p) for p, _ in t_leaves],
            [leaf for _, leaf in t_leaves], treedef)


def _index_free(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


def _renumbered(header: dict, t_paths: list, t_leaves: list, prefix: str = "") -> dict:
    """The leaf table keyed by the template's paths, for a checkpoint whose containers were
    numbered without their parameterless layers (an fnn.MLP with dropout before it became a
    Sequential: ``params[1]`` then is ``params[2]`` now).

    Used only when the exact paths do not match. Leaves are paired in tree order, which a
    parameterless entry (``{}``) does not change; every pair must have the same path up to its
    integer indices, and the same shape and dtype. Otherwise the exact table is returned (and
    the usual "missing leaf" error names the first difference).
    """
    table = {e["path"]: e for e in header.get("leaves", [])}
    entries = [e for e in header.get("leaves", [])
               if e["path"] == prefix or e["path"].startswith((prefix + "[", prefix + "."))
               or not prefix]
    if all(p in table for p in t_paths) or len(entries) != len(t_paths):
        return table
    for e, p, leaf in zip(entries, t_paths, t_leaves):
        if (_index_free(e["path"]) != _index_free(p)
                or (tuple(e["shape"]), str(e["dtype"])) != shape_dtype(leaf)):
            return table
    return {p: e for e, p in zip(entries, t_paths)}


def _check_missing(name: str, table: dict, t_paths: list, t_leaves: list) -> None:
    """Raise naming the first template leaf the checkpoint lacks (its shape, dtype, a hint)."""
    missing = [p for p in t_paths if p not in table]
    if missing:
        shape, dtype = shape_dtype(t_leaves[t_paths.index(missing[0])])
        raise CheckpointError(
            f"checkpoint {name}: leaf {missing[0]} is missing (expected shape {shape}"
            f" {dtype}; {_count(missing)} missing); the tree structure differs"
            f"{_hint(missing[0])}")


def load_subtree(path: PathLike, template, *, prefix: str):
    """Restore only the part of a saved state under ``prefix`` (``".params"``), without a whole
    template state: what loading a finished model needs (no optimizer or data).

    Args:
      path: a checkpoint file.  template: a pytree of the subtree's structure (arrays or
        ``jax.ShapeDtypeStruct``; for a sweep with the members axis).
      prefix: the subtree's key path in the state, e.g. ``".params"``.
    Returns:
      the restored subtree (jax arrays).
    Raises:
      CheckpointError: as :func:`load` (leaf missing, other shape or dtype, corrupt file).
    """
    path = pathlib.Path(path)
    name = path.name
    t_paths, t_leaves, treedef = _template(template, prefix)
    try:
        with open_checkpoint(path) as npz:
            header = read_header(npz, name)
            table = _renumbered(header, t_paths, t_leaves, prefix)
            _check_missing(name, table, t_paths, t_leaves)
            restored = _restore_leaves(npz, table, name, t_paths, t_leaves)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError) as err:
        raise CheckpointError(f"checkpoint {name}: truncated or corrupt ({err})") from None
    return jax.tree_util.tree_unflatten(treedef, restored)


def load(path: PathLike, template) -> tuple[Any, dict, dict]:
    """Restore a checkpoint into the structure of ``template``.

    Args:
      path: a checkpoint file (e.g. from :func:`latest`).
      template: a state of the same structure — a :class:`fnn.train.TrainState` built fresh
        from the same config (for a sweep: with the same members axis). Only its structure,
        shapes, dtypes, key implementations and shardings are used.
    Returns:
      ``(state, history, meta)``: the restored state (jax arrays placed like the template's
      leaves), history (metric name -> NumPy array), and meta, a dict with ``epoch``,
      ``format_version``, ``config_text``, ``meta`` (the caller's dict as saved), ``created``
      and ``jax_version``.
    Raises:
      CheckpointError: not an fnn checkpoint, truncated, another format version, or a leaf
        missing / extra / of another shape or dtype than the template's (the message names the
        leaf path and both shapes or dtypes).
    """
    path = pathlib.Path(path)
    name = path.name
    t_paths, t_leaves, treedef = _template(template)
    try:
        with open_checkpoint(path) as npz:
            header = read_header(npz, name)
            table = _renumbered(header, t_paths, t_leaves)
            _check_missing(name, table, t_paths, t_leaves)
            known = set(t_paths)
            extra = [p for p in table if p not in known]
            if extra:
                e = table[extra[0]]
                raise CheckpointError(
                    f"checkpoint {name}: leaf {extra[0]} (shape {tuple(e['shape'])}"
                    f" {e['dtype']}) is not in the template ({_count(extra)} extra);"
                    f" the tree structure differs"
                    + (" (early stopping on when saved, off now?)"
                       if extra[0].startswith(".early") else _hint(extra[0])))
            restored = _restore_leaves(npz, table, name, t_paths, t_leaves)
            history = {}
            for h in header.get("history", []):
                arr = npz[HISTORY_PREFIX + h["name"]]
                if arr.dtype != np.dtype(jnp.dtype(h["dtype"])):
                    arr = arr.view(jnp.dtype(h["dtype"]))
                history[h["name"]] = arr
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError) as err:
        raise CheckpointError(f"checkpoint {name}: truncated or corrupt ({err})") from None
    state = jax.tree_util.tree_unflatten(treedef, restored)
    meta = {
        "epoch": header["epoch"],
        "format_version": header["format_version"],
        "config_text": header.get("config_text", ""),
        "meta": header.get("meta", {}),
        "created": header.get("created"),
        "jax_version": header.get("jax_version"),
    }
    return state, history, meta
