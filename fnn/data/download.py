"""Verified, atomic download of a named image dataset's missing files (see
:mod:`fnn.data.image_sources` for where they are looked for first).

When no searched directory has them and ``download=True`` (the default), the missing files are
downloaded into the cache directory (``$FNN_DATA_DIR/<name>/`` if that variable is set, else
``~/.cache/fnn/<name>/``) from the mirrors: option ``mirror=`` (a base URL or a list of them), else
``$FNN_DATA_MIRROR`` (comma-separated), else the dataset's published mirrors. A base URL may contain
``{name}``, replaced by the dataset name. Each download is written to a temporary file in the cache
directory, checked against the pinned SHA-256 (of the published ``.gz`` file, or of its
decompressed payload, so a faithful recompressed copy is accepted too), fsynced and renamed into
place; a file that fails the check or an interrupted download leaves nothing behind.

Local files are not checked against the digests (a user may hold a recompressed copy, as the Debian
package does); they are checked structurally by :func:`fnn.data.read_idx`.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from fnn.util import fileio
from fnn.data.image_sources import (DOWNLOAD_TIMEOUT_S, DownloadError, FileSpec, ImageSource,
                                    cache_dir, find_file, locate, search_dirs)
from fnn.data.validate import DataError

def mirror_urls(source: ImageSource, mirror: str | list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Base URLs to download from: ``mirror``, else ``$FNN_DATA_MIRROR``, else the defaults.

    Args:
      source: the dataset.
      mirror: a base URL or a sequence of them; ``{name}`` is replaced by the dataset name.

    Returns:
      the base URLs, each ending in ``/``.
    """
    if mirror is None and os.environ.get("FNN_DATA_MIRROR"):
        mirror = [m.strip() for m in os.environ["FNN_DATA_MIRROR"].split(",") if m.strip()]
    if mirror is None:
        bases = list(source.mirrors)
    elif isinstance(mirror, str):
        bases = [mirror]
    elif isinstance(mirror, (list, tuple)) and mirror and all(isinstance(m, str) for m in mirror):
        bases = list(mirror)
    else:
        raise DataError(f"mirror={mirror!r}: expected a base URL or a non-empty list of base URLs")
    out = []
    for b in bases:
        if not b.split(":", 1)[0].lower() in ("http", "https", "file"):
            raise DataError(f"mirror={b!r}: expected an http://, https:// or file:// base URL")
        b = b.replace("{name}", source.name)
        out.append(b if b.endswith("/") else b + "/")
    return out




def _raw_digest(path: str) -> str | None:
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return h.hexdigest()


def download_file(url: str, dest: Path, spec: FileSpec, *, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download ``url`` to ``dest`` atomically, verified against ``spec``'s SHA-256.

    The bytes go to a temporary file next to ``dest``, are hashed while written, fsynced, checked
    (``spec.sha256`` of the file, else ``spec.raw_sha256`` of its decompressed content) and only then
    renamed to ``dest``. On any failure the temporary file is removed and ``dest`` is untouched.

    Args:
      url: source URL.
      dest: final path; its directory must exist.
      spec: expected digests.
      timeout: socket timeout in seconds.

    Raises:
      DownloadError: incomplete transfer, or digest mismatch (the message gives both digests).
      OSError, urllib.error.URLError: network or file-system failure.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        h = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            announced = resp.headers.get("Content-Length")
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if announced is not None and announced.isdigit() and int(announced) != size:
            raise DownloadError(
                f"{url}: incomplete transfer: received {size} of {announced} bytes; the file was discarded"
            )
        got = h.hexdigest()
        if got != spec.sha256.lower():
            raw = _raw_digest(tmp) if spec.raw_sha256 else None
            if raw is None or raw != spec.raw_sha256.lower():
                raise DownloadError(
                    f"{url}: SHA-256 mismatch: got {got}, expected {spec.sha256}; the file was discarded"
                )
        os.replace(tmp, dest)
        fileio.fsync_dir(dest.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _hint(source: ImageSource) -> str:
    names = ", ".join(s.filename for s in source.files.values())
    return (
        f"put the files ({names}) in a directory given as path=DIR, in $FNN_DATA_DIR/{source.name}/ "
        f"or in ~/.cache/fnn/{source.name}/, or point mirror= / $FNN_DATA_MIRROR at a reachable copy"
    )


def fetch(
    source: ImageSource,
    *,
    path: str | os.PathLike | None = None,
    mirror: str | list[str] | None = None,
    download: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> dict[str, Path]:
    """Find the dataset's files, downloading the missing ones into the cache if needed.

    Args:
      source: the dataset.
      path: explicit directory (then nothing else is searched and nothing is downloaded).
      mirror: base URL(s) overriding ``$FNN_DATA_MIRROR`` and the defaults.
      download: allow downloading.
      timeout: socket timeout per request, in seconds.

    Returns:
      ``{role: file path}`` for the four roles.

    Raises:
      DataError: ``path`` given but incomplete.
      DownloadError: not found and not downloadable (offline, digest mismatch, ...); the message
        says where to put the files.
    """
    found = locate(source, path=path)
    if found is not None:
        return found
    if path is not None:
        d = Path(path).expanduser()
        missing = [s.filename for s in source.files.values() if find_file(d, s) is None]
        raise DataError(
            f"path={str(path)!r}: dataset {source.name!r} files missing: {', '.join(missing)} "
            "(expected each as NAME.gz or uncompressed NAME)"
        )
    searched = ", ".join(str(d) for d in search_dirs(source))
    if not download:
        raise DownloadError(f"dataset {source.name!r} not found (searched {searched}) and download=False; {_hint(source)}")
    bases = mirror_urls(source, mirror)
    target = cache_dir(source)
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"dataset {source.name!r}: cannot create cache directory {target} ({e}); {_hint(source)}") from None
    paths: dict[str, Path] = {}
    try:
        for role, spec in source.files.items():
            have = find_file(target, spec)
            if have is not None:
                paths[role] = have
                continue
            failures = []
            for base in bases:
                url = base + spec.filename
                try:
                    download_file(url, target / spec.filename, spec, timeout=timeout)
                except DownloadError as e:
                    failures.append(str(e))
                    continue
                except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
                    reason = getattr(e, "reason", None) or e
                    failures.append(f"{url}: {reason}")
                    continue
                paths[role] = target / spec.filename
                break
            else:
                raise DownloadError(
                    f"dataset {source.name!r}: could not download {spec.filename} "
                    f"({'; '.join(failures)}); not found locally (searched {searched}); {_hint(source)}"
                )
    finally:
        if created and len(paths) == 0:
            try:
                target.rmdir()  # leave no empty cache directory behind after a failed first download
            except OSError:
                pass
    return paths
