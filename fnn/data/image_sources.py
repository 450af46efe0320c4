"""The named image datasets ("fashion_mnist", "mnist"): their published files and digests, and
where they are looked for.

Lookup order for the four IDX files (each either ``name.gz`` or its uncompressed ``name``); the
first directory holding all four is used:

1. ``path=DIR`` given to :func:`fnn.data.load` (then nothing else is tried),
2. ``$FNN_DATA_DIR/<name>/``,
3. ``~/.cache/fnn/<name>/``,
4. the Debian package location (``/usr/share/datasets/fashion-mnist/``, fashion_mnist only).

Downloading what is missing is :mod:`fnn.data.download`; reading the files is
:mod:`fnn.data.images`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

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


def find_file(directory: Path, spec: FileSpec) -> Path | None:
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
        found = {role: find_file(d, spec) for role, spec in source.files.items()}
        if all(found.values()):
            return found
    return None
