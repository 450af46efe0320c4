"""Named image datasets ("fashion_mnist", "mnist"): file lookup, verified download, reading.

Lookup order for the four IDX files (each either ``name.gz`` or its uncompressed ``name``); the
first directory holding all four is used:

1. ``path=DIR`` given to :func:`fnn.data.load` (then nothing else is tried),
2. ``$FNN_DATA_DIR/<name>/``,
3. ``~/.cache/fnn/<name>/``,
4. the Debian package location (``/usr/share/datasets/fashion-mnist/``, fashion_mnist only).

When none has them and ``download=True`` (the default), the missing files are downloaded into the
cache directory (``$FNN_DATA_DIR/<name>/`` if that variable is set, else ``~/.cache/fnn/<name>/``)
from the mirrors: option ``mirror=`` (a base URL or a list of them), else ``$FNN_DATA_MIRROR``
(comma-separated), else the dataset's published mirrors. A base URL may contain ``{name}``, replaced
by the dataset name. Each download is written to a temporary file in the cache directory, checked
against the pinned SHA-256 (of the published ``.gz`` file, or of its decompressed payload, so a
faithful recompressed copy is accepted too), fsynced and renamed into place; a file that fails the
check or an interrupted download leaves nothing behind.

Local files are not checked against the digests (a user may hold a recompressed copy, as the Debian
package does); they are checked structurally by :func:`fnn.data.read_idx`.

One concept needs the length: the MNIST-format image sets: locating, verifying, downloading and reading their IDX files.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from fnn.util import fileio
from fnn.data.idx import read_idx
from fnn.data.validate import DataError

DOWNLOAD_TIMEOUT_S = 60.0
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


class DownloadError(DataError):
    """The dataset files are not available locally and could not be downloaded and verified."""


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One published file.

    Attributes:
      filename: the published name, e.g. ``"train-images-idx3-ubyte.gz"``.
      sha256: SHA-256 (hex) of the published file.
      raw_sha256: SHA-256 (hex) of its decompressed content, or None.
    """

    filename: str
    sha256: str
    raw_sha256: str | None = None

    @property
    def raw_name(self) -> str:
        """The uncompressed file name (``filename`` without ``.gz``)."""
        return self.filename[:-3] if self.filename.endswith(".gz") else self.filename


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """A named image dataset in MNIST format.

    Attributes:
      name: dataset name, also the sub-directory name under the data and cache directories.
      mirrors: default base URLs, tried in order.
      files: ``{role: FileSpec}`` for the roles in ``ROLES``.
      classes: label names, ``classes[i]`` names label i.
      image_shape: ``(H, W)``.
      system_dirs: extra read-only directories searched last (e.g. a distribution package).
    """

    name: str
    mirrors: tuple[str, ...]
    files: dict[str, FileSpec]
    classes: tuple[str, ...]
    image_shape: tuple[int, int] = (28, 28)
    system_dirs: tuple[str, ...] = ()


# Published mirrors (module constants; override with mirror= or $FNN_DATA_MIRROR).
FASHION_MNIST_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# Fashion-MNIST: sha256 = the published .gz files (whose MD5s are the ones in the Zalando README:
# 8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...); raw_sha256 = the decompressed IDX payloads,
# computed from the Debian package dataset-fashion-mnist 0.0~git20200523.55506a9-1 (its .gz files
# are recompressed, so their own SHA-256 differs, but the payloads are the published ones).
FASHION_MNIST = ImageSource(
    name="fashion_mnist",
    mirrors=FASHION_MNIST_MIRRORS,
    files={
        "train_images": FileSpec(
            "train-images-idx3-ubyte.gz",
            "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte.gz",
            "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte.gz",
            "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte.gz",
            "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    system_dirs=(DEBIAN_FASHION_MNIST_DIR,),
)

# MNIST: the widely published SHA-256 digests of the original files (MD5s f68b3c2d..., d53e105e...,
# 9fb629c4..., ec29112d... on the original MNIST page) and of their decompressed payloads.
MNIST = ImageSource(
    name="mnist",
    mirrors=MNIST_MIRRORS,
    files={
        "train_images": FileSpec(
            "train-images-idx3-ubyte.gz",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte.gz",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte.gz",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte.gz",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
    classes=tuple(str(i) for i in range(10)),
)

SOURCES: dict[str, ImageSource] = {"fashion_mnist": FASHION_MNIST, "mnist": MNIST}


def get_source(name: str) -> ImageSource:
    """The :class:`ImageSource` registered under ``name`` (raises DataError listing the names)."""
    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(f"image dataset {name!r}: unknown; expected one of {', '.join(sorted(SOURCES))}") from None


def cache_dir(source: ImageSource) -> Path:
    """Where downloads go: ``$FNN_DATA_DIR/<name>/`` if set, else ``~/.cache/fnn/<name>/``."""
    root = os.environ.get("FNN_DATA_DIR")
    return Path(root) / source.name if root else Path.home() / ".cache" / "fnn" / source.name


def search_dirs(source: ImageSource, *, path: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for the files, in order (see the module docstring).

    Args:
      source: the dataset.
      path: explicit directory; when given it is the only one searched.

    Returns:
      the directories, first match wins.
    """
    if path is not None:
        return [Path(path).expanduser()]
    dirs = []
    if os.environ.get("FNN_DATA_DIR"):
        dirs.append(Path(os.environ["FNN_DATA_DIR"]) / source.name)
    dirs.append(Path.home() / ".cache" / "fnn" / source.name)
    dirs.extend(Path(d) for d in source.system_dirs)
    return dirs


def _find_file(directory: Path, spec: FileSpec) -> Path | None:
    for fname in (spec.filename, spec.raw_name):
        p = directory / fname
        if p.is_file():
            return p
    return None


def locate(source: ImageSource, *, path: str | os.PathLike | None = None) -> dict[str, Path] | None:
    """Find a directory holding all four files.

    Args:
      source: the dataset.
      path: explicit directory (only it is searched).

    Returns:
      ``{role: file path}`` from the first directory holding all four, or None.
    """
    for d in search_dirs(source, path=path):
        found = {role: _find_file(d, spec) for role, spec in source.files.items()}
        if all(found.values()):
            return found
    return None


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
        missing = [s.filename for s in source.files.values() if _find_file(d, s) is None]
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
            have = _find_file(target, spec)
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
