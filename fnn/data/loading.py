"""``fnn.data.load(name, **options)`` and ``valid_options(name)``: every source behind one call
(the table of names and options is the package docstring, :mod:`fnn.data`)."""
from __future__ import annotations

import os
from typing import Any

from fnn.data.dataset import Dataset
from fnn.data.images import load_image_files
from fnn.data.splits import build_dataset
from fnn.data.shapes import CLASSES as SHAPE_CLASSES
from fnn.data.shapes import shapes
from fnn.data.synthetic import SYNTHETIC
from fnn.data.names import IMAGE_NAMES, NAMES
from fnn.data.csv_file import read_csv
from fnn.data.npz_file import read_npz
from fnn.data.validate import (
    DataError,
    check_bool,
    check_float,
    check_int,
    check_options,
)




_SHAPES_OPTIONS = {"n_samples": 1000, "noise": 0.1, "seed": 0, "image_size": 16,
                   "val_fraction": 0.0, "test_fraction": 0.2}

_SPLIT_DEFAULTS = {"val_fraction": 0.0, "test_fraction": 0.0, "seed": 0, "standardize": False}
_IMAGE_OPTIONS = {"path": None, "mirror": None, "download": True, "val_fraction": 0.0, "seed": 0,
                  "n_samples": None}
_CSV_OPTIONS = {"path": None, "target": None, "delimiter": ",", "task": "auto", "num_classes": None,
                **_SPLIT_DEFAULTS}
_TEXT_OPTIONS = {"path": None, "block_size": 64, "val_fraction": 0.1}
_ADDER_OPTIONS = {"digits": 2, "n_samples": None, "val_fraction": 0.1, "test_fraction": 0.1,
                  "seed": 0}
_NPZ_OPTIONS = {"path": None, "task": "auto", "num_classes": None, "image_shape": None, **_SPLIT_DEFAULTS}


def valid_options(name: str) -> dict[str, Any]:
    """Every option ``load(name, ...)`` accepts, with its default.

    Args:
      name: a dataset name (one of ``NAMES``).

    Returns:
      ``{option: default}``.
    """
    if name in SYNTHETIC:
        return dict(SYNTHETIC[name].options)
    if name == "shapes":
        return dict(_SHAPES_OPTIONS)
    if name in IMAGE_NAMES:
        return dict(_IMAGE_OPTIONS)
    if name == "csv":
        return dict(_CSV_OPTIONS)
    if name == "npz":
        return dict(_NPZ_OPTIONS)
    if name == "text":
        return dict(_TEXT_OPTIONS)
    if name == "adder":
        return dict(_ADDER_OPTIONS)
    raise DataError(f"dataset name {name!r}: unknown; expected one of {', '.join(NAMES)}")


def _split_opts(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "val_fraction": o["val_fraction"],
        "test_fraction": o.get("test_fraction", 0.0),
        "seed": check_int(o["seed"], field="seed", minimum=0),
        "standardize": check_bool(o.get("standardize", False), field="standardize"),
    }


def _path(o: dict[str, Any], name: str) -> str | os.PathLike:
    p = o["path"]
    if p is None:
        raise DataError(f"load({name!r}): path= is required; expected the {name} file to read")
    if not isinstance(p, (str, os.PathLike)):
        raise DataError(f"path={p!r}: expected a file path")
    return p


def _num_classes_opt(v: Any) -> int | None:
    return None if v is None else check_int(v, field="num_classes", minimum=2)


def _load_synthetic(name: str, o: dict[str, Any]) -> Dataset:
    spec = SYNTHETIC[name]
    gen: dict[str, Any] = {"noise": check_float(o["noise"], field="noise", minimum=0.0)}
    k = None
    if "num_classes" in o:
        k = gen["num_classes"] = check_int(o["num_classes"], field="num_classes", minimum=2)
    if "num_features" in o:
        gen["num_features"] = check_int(o["num_features"], field="num_features", minimum=1)
    if "factor" in o:
        gen["factor"] = check_float(o["factor"], field="factor", minimum=0.0, maximum=1.0, open_min=True, open_max=True)
    if "turns" in o:
        gen["turns"] = check_float(o["turns"], field="turns", minimum=0.0, open_min=True)
    min_n = 4 if name == "xor" else (k or 2) if spec.task == "classification" else 1
    gen["n_samples"] = check_int(o["n_samples"], field="n_samples", minimum=min_n)
    gen["seed"] = check_int(o["seed"], field="seed", minimum=0)
    x, y = spec.fn(**gen)
    return build_dataset(name, spec.task, x, y, num_classes=spec.num_classes(gen), **_split_opts(o))


def _load_shapes(o: dict[str, Any]) -> Dataset:
    size = check_int(o["image_size"], field="image_size", minimum=8)
    if size > 256:
        raise DataError(f"image_size={size}: expected at most 256")
    n = check_int(o["n_samples"], field="n_samples", minimum=len(SHAPE_CLASSES))
    if n > 1_000_000:
        raise DataError(f"n_samples={n}: expected at most 1000000 for the shapes set")
    x, y = shapes(n_samples=n, noise=check_float(o["noise"], field="noise", minimum=0.0),
                  seed=check_int(o["seed"], field="seed", minimum=0), image_size=size)
    return build_dataset("shapes", "classification", x, y, num_classes=len(SHAPE_CLASSES),
                         classes=SHAPE_CLASSES, image_shape=(size, size), **_split_opts(o))


def _load_images(name: str, o: dict[str, Any]) -> Dataset:
    path = o["path"]
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise DataError(f"path={path!r}: expected a directory path")
    download = check_bool(o["download"], field="download")
    source, (x, y), (x_test, y_test) = load_image_files(name, path=path, mirror=o["mirror"], download=download)
    if o["n_samples"] is not None:  # a subset for quick runs and tests: the first n of each split
        n = check_int(o["n_samples"], field="n_samples", minimum=1)
        x, y, x_test, y_test = x[:n], y[:n], x_test[:n], y_test[:n]
    return build_dataset(
        name, "classification", x, y, x_test=x_test, y_test=y_test,
        num_classes=len(source.classes), classes=source.classes, image_shape=source.image_shape,
        **_split_opts(o),
    )


def _load_csv(o: dict[str, Any]) -> Dataset:
    t = o["target"]
    if t is not None and not isinstance(t, str) and not (
        isinstance(t, (list, tuple)) and t and all(isinstance(v, str) for v in t)
    ):
        raise DataError(f"target={t!r}: expected a column name or a list of column names")
    d = o["delimiter"]
    if not isinstance(d, str) or len(d) != 1:
        raise DataError(f"delimiter={d!r}: expected a single character")
    data = read_csv(_path(o, "csv"), target=t, delimiter=d, task=o["task"],
                    num_classes=_num_classes_opt(o["num_classes"]))
    return build_dataset("csv", data.task, data.x, data.y, num_classes=data.num_classes,
                         classes=data.classes, **_split_opts(o))


def _load_npz(o: dict[str, Any]) -> Dataset:
    shape = o["image_shape"]
    if shape is not None and not (
        isinstance(shape, (list, tuple)) and len(shape) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    ):
        raise DataError(f"image_shape={shape!r}: expected None or (height, width) with positive integers")
    data = read_npz(_path(o, "npz"), task=o["task"], num_classes=_num_classes_opt(o["num_classes"]),
                    image_shape=shape)
    return build_dataset(
        "npz", data.task, data.x, data.y, x_val=data.x_val, y_val=data.y_val, x_test=data.x_test,
        y_test=data.y_test, num_classes=data.num_classes, classes=data.classes, image_shape=data.image_shape,
        **_split_opts(o),
    )


def load(name: str, **options: Any) -> Dataset:
    """Load a dataset by name.

    Args:
      name: one of ``NAMES``: "xor", "moons", "circles", "spirals", "blobs", "sine", "polynomial",
        "fashion_mnist", "mnist", "csv", "npz".
      **options: the source's options (table in the module docstring; :func:`valid_options`).

    Returns:
      a checked :class:`Dataset` (a :class:`fnn.data.text.TokenDataset` for "text" and
      "adder"): features float32 ``(n, features)`` (images uint8 ``(n, H*W)``),
      labels int32 ``(n,)`` or regression targets float32 ``(n, k)``; absent splits are None.

    Raises:
      DataError: unknown name or option (the message lists the valid ones), bad option values,
        bad files or data; DownloadError (a DataError) when image files are missing and cannot be
        downloaded.
    """
    if not isinstance(name, str) or name not in NAMES:
        raise DataError(f"dataset name {name!r}: unknown; expected one of {', '.join(NAMES)}")
    o = check_options(f"load({name!r})", options, valid_options(name))
    if name in SYNTHETIC:
        return _load_synthetic(name, o)
    if name == "shapes":
        return _load_shapes(o)
    if name in IMAGE_NAMES:
        return _load_images(name, o)
    if name == "csv":
        return _load_csv(o)
    if name == "text":
        from fnn.data import text

        return text.load_text(_path(o, "text"), block_size=o["block_size"],
                              val_fraction=o["val_fraction"])
    if name == "adder":
        from fnn.data import text

        return text.adder(**o)
    return _load_npz(o)
