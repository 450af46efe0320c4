"""The one dataset type every source returns.

A :class:`Dataset` is a frozen dataclass of host-side NumPy arrays (the engine places them on the
device once). Its arrays are made read-only views, so a dataset cannot change after it was checked.

Array contract (checked on construction by :func:`fnn.data.validate.check_dataset`):

* features ``x_*``: float32 ``(batch, features)``; images stay uint8 ``(batch, H*W)`` (scale them
  inside the train step with :func:`fnn.data.prepare_inputs`);
* classification labels ``y_*``: int32 ``(batch,)`` in ``[0, num_classes)``;
* regression targets ``y_*``: float32 ``(batch, outputs)``;
* a split the source lacks is ``None`` (``x_val``/``y_val``, ``x_test``/``y_test``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from fnn.data.validate import check_dataset


def _frozen(a: np.ndarray | None) -> np.ndarray | None:
    if a is None or not isinstance(a, np.ndarray):
        return a
    v = a.view()
    v.flags.writeable = False
    return v


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Arrays of one dataset with their train/validation/test splits.

    Attributes:
      name: source name ("moons", "fashion_mnist", "csv", ...).
      task: "classification" or "regression".
      x_train: features ``(n_train, features)``, float32 (uint8 for images).
      y_train: int32 ``(n_train,)`` labels or float32 ``(n_train, outputs)`` targets.
      x_val, y_val: validation split drawn from the training data, or None.
      x_test, y_test: test split, or None.
      num_classes: number of classes k (classification), None for regression.
      classes: label names, ``classes[i]`` names class id i, or None.
      image_shape: ``(H, W)`` of flattened images, or None.
      x_mean, x_std: ``(features,)`` float32 standardization fitted on the training split
        (``x = (raw - x_mean) / x_std``), or None when the features were not standardized.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    num_classes: int | None = None
    classes: tuple[str, ...] | None = None
    image_shape: tuple[int, int] | None = None
    x_mean: np.ndarray | None = None
    x_std: np.ndarray | None = None

    def __post_init__(self):
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        check_dataset(self)
        for f in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "x_mean", "x_std"):
            object.__setattr__(self, f, _frozen(getattr(self, f)))

    @property
    def num_features(self) -> int:
        """Feature width (784 for 28x28 images)."""
        return int(self.x_train.shape[1])

    @property
    def num_outputs(self) -> int:
        """Width of the network output: target width for regression, ``num_classes`` for
        classification (the engine may use a single sigmoid unit when ``num_classes == 2``)."""
        if self.task == "regression":
            return int(self.y_train.shape[1])
        return int(self.num_classes)

    @property
    def num_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``(x, y)`` arrays of one split.

        Args:
          split: "train", "val" or "test".

        Returns:
          ``(x, y)`` with shapes as in the class docstring, or None when the split is absent.
        """
        if split not in ("train", "val", "test"):
            raise ValueError(f"split={split!r}: expected one of train, val, test")
        x = getattr(self, f"x_{split}")
        return None if x is None else (x, getattr(self, f"y_{split}"))

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"task={self.task!r}"]
        for s in ("train", "val", "test"):
            x = getattr(self, f"x_{s}")
            parts.append(f"{s}=None" if x is None else f"{s}={x.shape[0]}x{x.shape[1]} {x.dtype}")
        if self.task == "classification":
            parts.append(f"num_classes={self.num_classes}")
        else:
            parts.append(f"num_outputs={self.num_outputs}")
        if self.image_shape is not None:
            parts.append(f"image_shape={self.image_shape}")
        if self.x_mean is not None:
            parts.append("standardized")
        return f"Dataset({', '.join(parts)})"
