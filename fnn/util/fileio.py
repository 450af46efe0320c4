"""Atomic file writes: readers see the old file or the new one, never a half-written one.

    write to a temp name in the same directory -> flush + fsync -> os.replace -> fsync the
    directory. On any failure the temp file is removed and the destination is untouched.
"""

from __future__ import annotations

import os
import pathlib
import secrets
from typing import BinaryIO, Callable, Union

PathLike = Union[str, os.PathLike]


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


def atomic_write(path: PathLike, write: Callable[[BinaryIO], object]) -> pathlib.Path:
    """Create or replace ``path`` atomically with what ``write(file)`` writes.

    Args:
      path: destination; its directory is created if missing.
      write: called with the temp file opened for binary writing.
    Returns:
      ``path`` as a :class:`pathlib.Path`.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, "xb") as f:  # mode 0666 & ~umask, like any new file
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path
