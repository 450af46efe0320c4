"""What a trained model needs to turn raw inputs into network inputs, stored in the run directory.

A run directory's ``preprocessing.json`` holds one :class:`DataSpec` per sweep group (groups
that sweep ``data.*`` keys may see different data): the dataset's name and task, the feature
width and image shape, the raw input dtype (``uint8`` images are scaled by 1/255 inside the
step), the standardization statistics fitted on the training split (``x = (raw - mean) / std``)
and the class names. With it, a finished run predicts without loading or downloading its data.

:func:`prepare` is the one place that applies this preprocessing to raw float inputs; the
Python handle (:mod:`fnn.experiment.handle`), ``fnn predict`` and ``fnn export`` all call it.
A ``DataSpec`` has the attributes of a :class:`fnn.data.Dataset` that building a network reads
(``task``, ``num_features``, ``num_outputs``, ``num_classes``, ``classes``, ``image_shape``),
so :func:`fnn.experiment.build.build_net` accepts it in place of the dataset.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.data.augmentation import prepare_inputs
from fnn.util import fileio

FILE = "preprocessing.json"
FORMAT = "fnn-preprocessing"


@dataclasses.dataclass(frozen=True, eq=False)
class DataSpec:
    """The data facts a trained model needs (see the module docstring).

    Attributes:
      name: data.name.  task: "classification" or "regression".
      num_features: raw feature width F (784 for 28x28 images).
      num_outputs: target width (regression) or number of classes.
      raw_dtype: "uint8" (images, scaled by 1/255), "float32", or "int32" (token ids, taken
        as they are; task "sequence").
      num_classes, classes: classification only (``classes[i]`` names class i), else None.
      image_shape: (H, W) of flattened images, or None.
      x_mean, x_std: float32 (F,) standardization statistics, or None.
    """

    name: str
    task: str
    num_features: int
    num_outputs: int
    raw_dtype: str = "float32"
    num_classes: Optional[int] = None
    classes: Optional[tuple] = None
    image_shape: Optional[tuple] = None
    x_mean: Optional[np.ndarray] = None
    x_std: Optional[np.ndarray] = None

    @property
    def class_names(self) -> list[str]:
        """``classes``, or "0", "1", ... when the dataset names none (empty for regression)."""
        if self.task != "classification":
            return []
        return list(self.classes) if self.classes else [str(i) for i in range(self.num_classes)]


def from_dataset(ds) -> DataSpec:
    """The :class:`DataSpec` of a :class:`fnn.data.Dataset` (or a token dataset: int32 ids,
    num_features = block size, num_outputs = num_classes = vocabulary size)."""
    if ds.task == "sequence":
        return DataSpec(name=ds.name, task="sequence", num_features=ds.num_features,
                        num_outputs=ds.num_outputs, raw_dtype="int32", num_classes=ds.num_classes)
    return DataSpec(
        name=ds.name, task=ds.task, num_features=ds.num_features, num_outputs=ds.num_outputs,
        raw_dtype="uint8" if ds.x_train.dtype == np.uint8 else "float32",
        num_classes=ds.num_classes, classes=tuple(ds.classes) if ds.classes else None,
        image_shape=tuple(ds.image_shape) if ds.image_shape else None,
        x_mean=None if ds.x_mean is None else np.asarray(ds.x_mean, np.float32),
        x_std=None if ds.x_std is None else np.asarray(ds.x_std, np.float32))


def to_dict(spec: DataSpec) -> dict:
    d = dataclasses.asdict(spec)
    for k in ("x_mean", "x_std"):  # float32 -> float64 repr round-trips exactly
        d[k] = None if d[k] is None else [float(v) for v in np.asarray(d[k], np.float32)]
    for k in ("classes", "image_shape"):
        d[k] = None if d[k] is None else list(d[k])
    return d


def from_dict(d: dict) -> DataSpec:
    """Inverse of :func:`to_dict`. Raises ValueError on a malformed entry."""
    try:
        kw = {f.name: d[f.name] for f in dataclasses.fields(DataSpec) if f.name in d}
        for k in ("x_mean", "x_std"):
            if kw.get(k) is not None:
                kw[k] = np.asarray(kw[k], np.float32)
        for k in ("classes", "image_shape"):
            if kw.get(k) is not None:
                if not isinstance(kw[k], list):
                    raise ValueError(f"{k} is a {type(kw[k]).__name__}; expected a list")
                kw[k] = tuple(kw[k])
        spec = DataSpec(**kw)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{FILE}: malformed entry ({err})") from None
    if spec.raw_dtype not in ("uint8", "float32", "int32"):
        raise ValueError(f"{FILE}: raw_dtype {spec.raw_dtype!r}; expected 'uint8', 'float32' or"
                         " 'int32' (token ids)")
    if spec.task not in ("classification", "regression", "sequence"):
        raise ValueError(f"{FILE}: task {spec.task!r}; expected 'classification', 'regression' "
                         "or 'sequence'")
    for k in ("num_features", "num_outputs"):
        v = getattr(spec, k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{FILE}: {k} {v!r}; expected a positive integer")
    if spec.task in ("classification", "sequence"):  # a sequence's classes: the vocabulary
        k = spec.num_classes
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"{FILE}: num_classes {k!r}; expected an integer >= 2")
        if spec.num_outputs != k:
            raise ValueError(f"{FILE}: num_outputs {spec.num_outputs}; expected num_classes = {k}")
        if spec.classes is not None and (len(spec.classes) != k or not all(
                isinstance(c, str) for c in spec.classes)):
            raise ValueError(f"{FILE}: classes {list(spec.classes)!r:.60}; expected {k} class "
                             "names (num_classes)")
    for k in ("x_mean", "x_std"):
        v = getattr(spec, k)
        if v is not None and v.shape != (spec.num_features,):
            raise ValueError(f"{FILE}: {k} has shape {v.shape}; expected ({spec.num_features},)"
                             " (num_features)")
    return spec


def write(run_dir, specs: list[DataSpec]) -> Path:
    """Write ``RUN_DIR/preprocessing.json`` (one spec per sweep group), atomically."""
    text = json.dumps({"format": FORMAT, "format_version": 1,
                       "groups": [to_dict(s) for s in specs]}, indent=1) + "\n"
    return fileio.atomic_write(Path(run_dir) / FILE, lambda f: f.write(text.encode("utf-8")))


def read(run_dir) -> Optional[list[DataSpec]]:
    """The specs of ``RUN_DIR/preprocessing.json``, or None when the run has none (older runs).

    Raises:
      ValueError: an unreadable or malformed file (one line).
    """
    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable ({err})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not raw.get("groups"):
        raise ValueError(f"{path}: not an fnn preprocessing file")
    return [from_dict(g) for g in raw["groups"]]


def prepare(spec: DataSpec, x: jax.Array, dtype) -> jax.Array:
    """Raw inputs -> network inputs, as in training. Traceable (symbolic batch sizes too).

    uint8 datasets: ``clip(round(x), 0, 255)`` as uint8, then ``x / 255``
    (:func:`fnn.data.prepare_inputs`); standardized datasets: ``(x - mean) / std`` in float32.

    Args:
      spec: the run's :class:`DataSpec`.  x: (batch, F) raw values (any real dtype).
      dtype: the network's parameter dtype.
    Returns:
      (batch, F) array of ``dtype``.
    """
    x = jnp.asarray(x)
    if spec.raw_dtype == "int32":  # token ids: the network takes them as they are
        return x.astype(jnp.int32)
    if spec.raw_dtype == "uint8":
        if not jnp.issubdtype(x.dtype, jnp.integer):
            x = jnp.clip(jnp.round(x.astype(jnp.float32)), 0, 255)
        return prepare_inputs(x.astype(jnp.uint8), dtype=dtype)
    x = x.astype(jnp.float32)
    if spec.x_mean is not None:
        x = (x - jnp.asarray(spec.x_mean)[None, :]) / jnp.asarray(spec.x_std)[None, :]
    return x.astype(dtype)
