"""One writer per run directory, and the record of what fnn wrote there.

Both live in the run directory's hidden folder ``.fnn/``:

* ``.fnn/lock``: ``fcntl.flock``-ed (exclusive, non-blocking) by the process that trains into
  the directory, for the whole run. A second ``fnn train`` on the same directory, with or
  without ``--overwrite``, is refused in one line (exit 2) and touches nothing. The lock file is
  never deleted while a run holds it; an acquirer checks that the file it locked is still the
  one at the path (the unlink race).
* ``.fnn/manifest.jsonl``: one JSON line per file fnn wrote, ``{"path": relative path, "size":
  bytes, "mtime_ns": ...}``, appended after each completed write (a run's files, and what
  ``fnn export`` / ``predict`` / ``compare`` write into a run directory). ``--overwrite``
  deletes a file only while its size and mtime still match its line: a file the user wrote or
  changed is never deleted (:func:`fnn.experiment.rundir.overwrite_plan`).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Optional

HIDDEN = ".fnn"
LOCK = "lock"
MANIFEST = "manifest.jsonl"


class RunDirBusy(ValueError):
    """Another process writes the run directory (one line; exit status 2)."""


def _fcntl():
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no lock
        return None
    return fcntl


class RunLock:
    """An exclusive lock on one run directory, held until :meth:`release`.

    Args:
      run_dir: the run directory (its real path); it must exist.
      shown: the path as the user wrote it (for the message).
    Raises:
      RunDirBusy: another process holds the lock.
    """

    def __init__(self, run_dir: Path, shown: Optional[str] = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / HIDDEN / LOCK
        self.created: list[Path] = []  # what acquiring created (removed by release(undo=True))
        self.fd: Optional[int] = None
        shown = shown if shown is not None else str(run_dir)
        fcntl = _fcntl()
        hidden = self.path.parent
        if not hidden.exists():
            hidden.mkdir()
            self.created.append(hidden)
        while True:
            new = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if new:
                self.created.insert(0, self.path)
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                who = f" (pid {pid})" if pid.isdigit() else ""
                raise RunDirBusy(f"run directory {shown!r} is in use by another fnn run{who}; "
                                 "wait for it to finish or pick another --out") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # locked a file its holder removed on release: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self.fd = fd

    def release(self, *, undo: bool = False) -> None:
        """Release the lock; ``undo`` also removes the lock file and ``.fnn/`` if acquiring
        created them (nothing else was written)."""
        if self.fd is None:
            return
        if undo:
            for p in self.created:
                with contextlib.suppress(OSError):
                    p.rmdir() if p.is_dir() else p.unlink()
        os.close(self.fd)  # closing releases the flock
        self.fd = None


def lock_exists(run_dir: Path) -> bool:
    """Whether ``run_dir`` has fnn's lock file (a run directory written by this fnn)."""
    return (Path(run_dir) / HIDDEN / LOCK).is_file()


def manifest_path(run_dir: Path) -> Path:
    return Path(run_dir) / HIDDEN / MANIFEST


def has_manifest(run_dir: Path) -> bool:
    return manifest_path(run_dir).is_file()


def record(run_dir: Path, path: Path) -> None:
    """Append ``path`` (a file just written under ``run_dir``) to the run's manifest.

    Args:
      run_dir: the run directory (real path).  path: the file (real path), under it.
    """
    run_dir, path = Path(run_dir), Path(path)
    try:
        rel = path.relative_to(run_dir)
        st = path.stat()
    except (ValueError, OSError):
        return
    if rel.parts and rel.parts[0] == HIDDEN:
        return
    line = json.dumps({"path": rel.as_posix(), "size": st.st_size,
                       "mtime_ns": st.st_mtime_ns}) + "\n"
    manifest = manifest_path(run_dir)
    manifest.parent.mkdir(exist_ok=True)
    fd = os.open(manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))  # one short O_APPEND write: whole lines
    finally:
        os.close(fd)


def read_manifest(run_dir: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file fnn recorded (the last line wins; a
    torn or foreign line is skipped)."""
    out: dict[str, tuple[int, int]] = {}
    try:
        text = manifest_path(run_dir).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            e = json.loads(line)
            out[str(e["path"])] = (int(e["size"]), int(e["mtime_ns"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def written_by_fnn(run_dir: Path, rel: str, entries: dict) -> bool:
    """Whether ``run_dir/rel`` is a file fnn wrote and nobody changed since (size, mtime)."""
    if rel not in entries:
        return False
    try:
        st = (Path(run_dir) / rel).stat()
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == entries[rel]


def reset_manifest(run_dir: Path) -> None:
    """Start an empty manifest (after ``--overwrite`` deleted the files it listed)."""
    with contextlib.suppress(FileNotFoundError):
        manifest_path(run_dir).unlink()
