"""Atomic file writes: readers see the old file or the new one, never a half-written one.

    write to a temp name in the same directory -> flush + fsync -> os.replace -> fsync the
    directory. On any failure (an OSError, Ctrl-C, SIGTERM turned into an exception) the temp
    file is removed and the destination is untouched.

A failed write raises :class:`WriteError`: one line naming the destination the caller asked
for (never the temp name), e.g. ``cannot write runs/a/model.jax: No space left on device``.
:func:`atomic_write_group` writes several files (a model and its sidecar) as one step: every
temp file is written first, then all are renamed, so a full disk leaves none of them.
:func:`watch` lets a caller learn every path written under a directory (a run's manifest).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import re
import secrets
import threading
from typing import BinaryIO, Callable, Iterator, Sequence, Union

PathLike = Union[str, os.PathLike]

# Out of space or an I/O fault: the write failed, not the user's input (the CLI's exit 1).
RESOURCE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO})
_TEMP_RE = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")

_watch_lock = threading.Lock()
_watchers: list[tuple[pathlib.Path, Callable[[pathlib.Path], None]]] = []


class WriteError(OSError):
    """A file could not be written; the message is one line naming the destination.

    ``resource`` is True when the cause is lack of space or an I/O error (ENOSPC, EFBIG,
    EDQUOT, EIO), False for a path that cannot be written (permission, read-only, a
    directory, ...).
    """

    def __init__(self, path: PathLike, err: OSError):
        reason = err.strerror or str(err) or type(err).__name__
        super().__init__(err.errno, f"cannot write {os.fspath(path)}: {reason}")
        self.path = pathlib.Path(path)
        self.resource = err.errno in RESOURCE_ERRNOS

    def __str__(self) -> str:
        return self.strerror


def fsync_dir(directory: PathLike) -> None:
    """fsync a directory so a rename into it survives a crash (a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(path: pathlib.Path) -> pathlib.Path:
    """A unique hidden temp name next to ``path`` (``.<name>.<pid>-<random>.tmp``)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def is_stale_temp(path: PathLike) -> bool:
    """Whether ``path`` is a temp file of :func:`temp_name` whose writer is gone: another
    process that no longer runs, or this one (whose caller is not writing at the time)."""
    m = _TEMP_RE.match(pathlib.Path(path).name)
    if m is None:
        return False
    pid = int(m.group(1))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False
    return False


def move_aside(path: PathLike, suffix: str) -> pathlib.Path:
    """Rename ``path`` to ``<name><suffix>`` (``<name><suffix>.1``, ... if taken), so that a
    file about to be replaced is kept; returns the new path."""
    path = pathlib.Path(path)
    new, n = path.with_name(path.name + suffix), 0
    while new.exists():
        n += 1
        new = path.with_name(f"{path.name}{suffix}.{n}")
    os.rename(path, new)
    return new


def remove_stale_temps(directory: PathLike) -> None:
    """Remove the temp files that dead processes left in ``directory`` (not recursive)."""
    d = pathlib.Path(directory)
    if not d.is_dir():
        return
    for p in d.iterdir():
        if is_stale_temp(p):
            with contextlib.suppress(OSError):
                p.unlink()


@contextlib.contextmanager
def watch(directory: PathLike, on_written: Callable[[pathlib.Path], None]) -> Iterator[None]:
    """Call ``on_written(real_path)`` after each completed write under ``directory``.

    Args:
      directory: a directory (its real path is compared with each written file's real path).
      on_written: called with the written file's real path, after its rename.
    """
    entry = (pathlib.Path(os.path.realpath(directory)), on_written)
    with _watch_lock:
        _watchers.append(entry)
    try:
        yield
    finally:
        with _watch_lock:
            _watchers.remove(entry)


def _notify(path: pathlib.Path) -> None:
    real = pathlib.Path(os.path.realpath(path))
    with _watch_lock:
        watchers = list(_watchers)
    for root, callback in watchers:
        if real.is_relative_to(root):
            callback(real)


def _mkdir(path: pathlib.Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(path, err) from None


def _write_temp(path: pathlib.Path, write: Callable[[BinaryIO], object]) -> pathlib.Path:
    """Write a fsynced temp file next to ``path``; on any failure it is removed."""
    tmp = temp_name(path)
    try:
        with open(tmp, "xb") as f:  # mode 0666 & ~umask, like any new file
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise WriteError(path, err) from None
        raise
    return tmp


def atomic_write(path: PathLike, write: Callable[[BinaryIO], object]) -> pathlib.Path:
    """Create or replace ``path`` atomically with what ``write(file)`` writes.

    Args:
      path: destination; its directory is created if missing.
      write: called with the temp file opened for binary writing.
    Returns:
      ``path`` as a :class:`pathlib.Path`.
    Raises:
      WriteError: the file could not be written (one line naming ``path``); nothing is left.
    """
    path = pathlib.Path(path)
    atomic_write_group([(path, write)])
    return path


def atomic_write_group(files: Sequence[tuple[PathLike, Callable[[BinaryIO], object]]]) -> None:
    """Write several files as one step: all temps first, then every rename, the first file last.

    A failure while writing (disk full) leaves every destination as it was and no temp file.
    The renames run last to first, so the first file (a model, whose sidecar comes second)
    appears only once the others are in place; a failing rename restores what it replaced.

    Args:
      files: (destination, write callback) pairs, as for :func:`atomic_write`.
    Raises:
      WriteError: one line naming the destination that failed.
    """
    items = [(pathlib.Path(p), w) for p, w in files]
    temps: list[tuple[pathlib.Path, pathlib.Path]] = []
    try:
        for path, write in items:
            _mkdir(path)
            temps.append((_write_temp(path, write), path))
        done: list[tuple[pathlib.Path, pathlib.Path | None]] = []  # (dest, backup of the old)
        try:
            for tmp, path in reversed(temps):
                backup = None
                if len(temps) > 1 and path.is_file():
                    backup = temp_name(path)
                    try:
                        os.link(path, backup)
                    except OSError:  # no hard links here: no undo for this file
                        backup = None
                try:
                    os.replace(tmp, path)
                except OSError as err:
                    if backup is not None:
                        os.unlink(backup)
                    raise WriteError(path, err) from None
                done.append((path, backup))
        except BaseException:
            for path, backup in reversed(done):  # undo: the group is all or nothing
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, path)
                    else:
                        os.unlink(path)
            raise
        for _, backup in done:
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    for parent in dict.fromkeys(path.parent for path, _ in items):
        fsync_dir(parent)
    for path, _ in items:
        _notify(path)


def atomic_write_bytes(path: PathLike, data: bytes) -> pathlib.Path:
    """Write ``data`` to ``path`` atomically (readers see the old file or the new one).

    Args:
      path: destination; its directory is created if missing.
      data: the file's contents.
    Returns:
      ``path`` as a :class:`pathlib.Path`.
    """
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: PathLike, text: str) -> pathlib.Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`.

    Args:
      path: destination.
      text: the file's contents.
    Returns:
      ``path`` as a :class:`pathlib.Path`.
    """
    return atomic_write_bytes(path, text.encode("utf-8"))
