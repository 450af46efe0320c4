"""Checks on dataset arrays, with one-line errors that name the field, the value and what was expected.

Every check raises :class:`DataError` (a ``ValueError``), so the CLI can turn any bad-data problem
into exit status 2 without a traceback. The checks run on the host (NumPy), before anything is
placed on a device or compiled.

Contract checked by :func:`check_dataset` for every split that is present:

* features ``x``: 2-D ``(batch, features)``, dtype float32 or uint8, at least one row, all finite;
* classification labels ``y``: int32 ``(batch,)`` with ``0 <= y < num_classes``;
* regression targets ``y``: float32 ``(batch, outputs)``, all finite;
* ``x`` and ``y`` of a split have the same number of rows; every split has the training split's
  feature width (and target width); ``x_val``/``y_val`` (and ``x_test``/``y_test``) are both
  present or both ``None``.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

TASKS = ("classification", "regression")
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A dataset, data file or data option is invalid. The message is one line."""


def _where(dataset_name: str | None, field: str) -> str:
    return f"dataset {dataset_name!r}: {field}" if dataset_name else field


def check_features(x: Any, *, field: str, dataset_name: str | None = None) -> None:
    """Check one feature array.

    Args:
      x: features, ``(batch, features)``, float32 or uint8.
      field: name used in the message, e.g. ``"x_train"``.
      dataset_name: dataset name used in the message.

    Raises:
      DataError: not a 2-D float32/uint8 array, empty, or holding NaN/inf (the message gives the
        count and the first (row, column)).
    """
    where = _where(dataset_name, field)
    if not isinstance(x, np.ndarray):
        raise DataError(f"{where}: expected a NumPy array, got {type(x).__name__}")
    if x.ndim != 2:
        raise DataError(f"{where}: expected shape (batch, features), got shape {x.shape}")
    if x.shape[0] == 0:
        raise DataError(f"{where}: the split is empty (shape {x.shape}); expected at least one example")
    if x.shape[1] == 0:
        raise DataError(f"{where}: has no feature columns (shape {x.shape})")
    if x.dtype not in (np.float32, np.uint8):
        raise DataError(f"{where}: dtype {x.dtype}, expected float32 (features) or uint8 (images)")
    if x.dtype == np.float32:
        bad = ~np.isfinite(x)
        count = int(bad.sum())
        if count:
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise DataError(
                f"{where}: {count} non-finite value(s) (NaN/inf), first at row {row}, column {col}; "
                "expected finite features"
            )


def check_labels(
    y: Any, *, num_classes: int, field: str, dataset_name: str | None = None
) -> None:
    """Check classification labels.

    Args:
      y: labels, int32 ``(batch,)``.
      num_classes: declared number of classes k; labels must lie in ``[0, k)``.
      field: name used in the message, e.g. ``"y_train"``.
      dataset_name: dataset name used in the message.

    Raises:
      DataError: wrong shape/dtype, or a label negative or ``>= num_classes`` (the message gives the
        first offending index and value).
    """
    where = _where(dataset_name, field)
    if not isinstance(y, np.ndarray):
        raise DataError(f"{where}: expected a NumPy array, got {type(y).__name__}")
    if y.ndim != 1:
        raise DataError(f"{where}: expected class labels of shape (batch,), got shape {y.shape}")
    if y.dtype != np.int32:
        raise DataError(f"{where}: dtype {y.dtype}, expected int32 class labels")
    if y.shape[0] == 0:
        raise DataError(f"{where}: the split is empty; expected at least one label")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        kind = "negative" if y[i] < 0 else "out of range"
        raise DataError(
            f"{where}: label {int(y[i])} at index {i} is {kind} "
            f"({int(bad.sum())} bad label(s)); expected 0 <= label < num_classes={num_classes}"
        )


def check_targets(y: Any, *, field: str, dataset_name: str | None = None) -> None:
    """Check regression targets.

    Args:
      y: targets, float32 ``(batch, outputs)``.
      field: name used in the message, e.g. ``"y_train"``.
      dataset_name: dataset name used in the message.

    Raises:
      DataError: wrong shape/dtype, empty, or holding NaN/inf.
    """
    where = _where(dataset_name, field)
    if not isinstance(y, np.ndarray):
        raise DataError(f"{where}: expected a NumPy array, got {type(y).__name__}")
    if y.ndim != 2 or y.shape[1] == 0:
        raise DataError(f"{where}: expected regression targets of shape (batch, outputs), got shape {y.shape}")
    if y.dtype != np.float32:
        raise DataError(f"{where}: dtype {y.dtype}, expected float32 regression targets")
    if y.shape[0] == 0:
        raise DataError(f"{where}: the split is empty; expected at least one target")
    bad = ~np.isfinite(y)
    count = int(bad.sum())
    if count:
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{where}: {count} non-finite target value(s) (NaN/inf), first at row {row}, column {col}"
        )


def check_dataset(ds: Any) -> None:
    """Check a whole dataset (a :class:`fnn.data.Dataset` or anything with the same attributes).

    Args:
      ds: object with ``name, task, num_classes, x_train, y_train, x_val, y_val, x_test, y_test``.

    Raises:
      DataError: the first problem found, as a one-line message (see the module docstring).
    """
    name = ds.name
    if ds.task not in TASKS:
        raise DataError(f"dataset {name!r}: task={ds.task!r}, expected one of {', '.join(TASKS)}")
    if ds.task == "classification":
        k = ds.num_classes
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 2:
            raise DataError(f"dataset {name!r}: num_classes={k!r}, expected an integer >= 2 for classification")
        classes = getattr(ds, "classes", None)
        if classes is not None and len(classes) != k:
            raise DataError(
                f"dataset {name!r}: classes has {len(classes)} name(s) but num_classes={k}; expected one name per class"
            )
    elif ds.num_classes is not None:
        raise DataError(f"dataset {name!r}: num_classes={ds.num_classes!r}, expected None for regression")
    if ds.x_train is None or ds.y_train is None:
        raise DataError(f"dataset {name!r}: x_train/y_train missing; expected a training split")
    width = None
    out_width = None
    for split in SPLITS:
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if x is None and y is None:
            continue
        if (x is None) != (y is None):
            missing = f"x_{split}" if x is None else f"y_{split}"
            raise DataError(f"dataset {name!r}: {missing} is None but its partner is not; expected both or neither")
        check_features(x, field=f"x_{split}", dataset_name=name)
        if ds.task == "classification":
            check_labels(y, num_classes=ds.num_classes, field=f"y_{split}", dataset_name=name)
        else:
            check_targets(y, field=f"y_{split}", dataset_name=name)
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"dataset {name!r}: x_{split} has {x.shape[0]} rows but y_{split} has {y.shape[0]}; expected equal"
            )
        if width is None:
            width = x.shape[1]
            dtype = x.dtype
            out_width = y.shape[1] if y.ndim == 2 else None
        else:
            if x.shape[1] != width:
                raise DataError(
                    f"dataset {name!r}: x_{split} has {x.shape[1]} features but x_train has {width}; "
                    "expected the same feature width in every split"
                )
            if x.dtype != dtype:
                raise DataError(
                    f"dataset {name!r}: x_{split} has dtype {x.dtype} but x_train has {dtype}; expected the same"
                )
            if out_width is not None and y.shape[1] != out_width:
                raise DataError(
                    f"dataset {name!r}: y_{split} has {y.shape[1]} outputs but y_train has {out_width}; expected the same"
                )


def check_int(value: Any, *, field: str, minimum: int | None = None) -> int:
    """Return ``value`` as an int (bools rejected) ``>= minimum``, or raise DataError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
        minimum is not None and value < minimum
    ):
        expected = "an integer" + (f" >= {minimum}" if minimum is not None else "")
        raise DataError(f"{field}={value!r}: expected {expected}")
    return int(value)


def check_float(
    value: Any, *, field: str, minimum: float | None = None, maximum: float | None = None,
    open_min: bool = False, open_max: bool = False,
) -> float:
    """Return ``value`` as a finite float within the bounds, or raise DataError naming ``field``."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and np.isfinite(float(value))
    if ok and minimum is not None:
        ok = value > minimum if open_min else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if open_max else value <= maximum
    if not ok:
        lo = "-inf" if minimum is None else f"{minimum}"
        hi = "inf" if maximum is None else f"{maximum}"
        interval = f"{'(' if open_min or minimum is None else '['}{lo}, {hi}{')' if open_max or maximum is None else ']'}"
        raise DataError(f"{field}={value!r}: expected a finite number in {interval}")
    return float(value)


def check_bool(value: Any, *, field: str) -> bool:
    """Return ``value`` if it is a bool, or raise DataError naming ``field``."""
    if not isinstance(value, (bool, np.bool_)):
        raise DataError(f"{field}={value!r}: expected true or false")
    return bool(value)


def check_options(where: str, given: dict[str, Any], valid: dict[str, Any]) -> dict[str, Any]:
    """Merge ``given`` options over the defaults ``valid``; unknown names raise DataError.

    Args:
      where: what the options are for (used in the message), e.g. ``"load('moons')"``.
      given: options passed by the caller.
      valid: every accepted option name with its default.

    Returns:
      the merged options.
    """
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise DataError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; valid options are "
            f"{', '.join(sorted(valid))}"
        )
    return {**valid, **given}


FLOAT32_MAX = float(np.finfo(np.float32).max)


def to_float32(a, where: str) -> np.ndarray:
    """``a`` as float32; a finite value beyond float32's range (3.5e38) is a one-line DataError
    naming its position, not NumPy's overflow warning and an inf.

    Args:
      a: a numeric array (any shape).  where: what the message calls it (``x_train``).
    Returns:
      float32 array of a's shape.
    """
    a = np.asarray(a)
    if a.dtype.kind == "f" and a.dtype.itemsize > 4 or a.dtype.kind in "iu" and a.dtype.itemsize > 2:
        with np.errstate(invalid="ignore"):
            big = np.isfinite(a) & (np.abs(a.astype(np.float64)) > FLOAT32_MAX)
        if big.any():
            at = tuple(int(i) for i in np.argwhere(big)[0])
            pos = f"row {at[0]}" + (f", column {at[1]}" if len(at) > 1 else "")
            raise DataError(f"{where}: value {float(a[at]):.4g} at {pos} is beyond the float32 "
                            f"range (|x| <= {FLOAT32_MAX:.4g}); expected smaller values "
                            "(rescale the column)")
    return a.astype(np.float32)


def conform_inputs(x: Any, shape: tuple, what: str = "x", *,
                   image_shape: tuple | None = None) -> np.ndarray:
    """New inputs for a model of input shape ``shape``, laid out as ``(examples, *shape)``.

    The one rule for inputs entering a trained model (``RunHandle.predict``, ``fnn predict`` on a
    run directory or an exported model). Accepted: ``(N, *shape)``; ``(N, H, W)`` for a
    one-channel image model of shape ``(H, W, 1)``; flat ``(N, prod(shape))`` rows in the
    stored row-major (H, W, C) order; and for a flat model of images (an MLP on Fashion-MNIST),
    ``(N, H, W)`` images (of ``image_shape`` when it is known). Any other layout is refused,
    also one of matching total size: ``(N, 1, 16, 16)`` (channels first) is not silently read
    as ``(N, 16, 16, 1)``.

    Args:
      x: array-like inputs.  shape: one example's shape, e.g. ``(16, 16, 1)`` or ``(2,)``.
      what: the name the message gives the inputs (``x``, ``INPUT x.npz``).
      image_shape: (H, W) of the images a flat model was trained on, or None.
    Returns:
      ``(N, *shape)`` NumPy array (x's dtype).
    Raises:
      DataError: another layout, no batch axis, or a non-real dtype (one line).
    """
    x = np.asarray(x)
    shape = tuple(int(d) for d in shape)
    width = int(np.prod(shape))
    accepted = [f"(examples, {', '.join(map(str, shape))})"]
    if len(shape) == 3 and shape[2] == 1:
        accepted.append(f"(examples, {shape[0]}, {shape[1]})")
    if len(shape) > 1:
        accepted.append(f"flat (examples, {width})")
    expected = " or ".join([", ".join(accepted[:-1]), accepted[-1]] if len(accepted) > 2
                           else accepted)
    if x.dtype.kind not in "fiub":
        raise DataError(f"{what}: dtype {x.dtype}; expected real numbers")
    if x.dtype.kind == "f" and x.dtype.itemsize > 4 and x.size:
        to_float32(x.reshape(x.shape[0], -1) if x.ndim >= 2 else x, what)  # range only
    if x.ndim >= 1 and x.shape[0] == 0:
        raise DataError(f"{what}: shape {x.shape} holds no examples; expected at least one "
                        f"row of {accepted[0]}")
    if x.ndim == 1 and x.shape[0] == width:
        raise DataError(f"{what}: shape {x.shape}; expected a batch {accepted[0]} — for one "
                        "example use x[None]")
    if x.ndim >= 2 and tuple(x.shape[1:]) == shape:
        return x
    if x.ndim == 2 and x.shape[1] == width:
        return x.reshape((x.shape[0], *shape))
    if len(shape) == 3 and shape[2] == 1 and tuple(x.shape[1:]) == shape[:2]:
        return x[..., None]
    if len(shape) == 1 and x.ndim == 3 and x.shape[1] * x.shape[2] == width and (
            image_shape is None or tuple(x.shape[1:]) == tuple(image_shape)):
        return x.reshape(x.shape[0], width)
    hint = ""
    if len(shape) == 3 and x.ndim == 4 and tuple(x.shape[1:]) == (shape[2], *shape[:2]):
        hint = " (channels first? fnn images are channels last: (examples, H, W, C))"
    raise DataError(f"{what}: inputs of shape {x.shape}; the model expects {expected}{hint}")


def token_ids(x: Any, vocab_size: int, what: str = "x") -> np.ndarray:
    """Token-id inputs of a sequence model as int32, each in ``[0, vocab_size - 1]``.

    The one rule for ids entering a trained sequence model (``RunHandle.predict``,
    ``fnn predict`` on a run or an exported model): integer arrays, or floats holding whole
    numbers (a CSV is read as floats). An id out of range is refused rather than clamped, as
    an embedding's gather would clamp it silently.

    Args:
      x: array-like (N, T) ids.  vocab_size: V.  what: the name the message gives the inputs.
    Returns:
      (N, T) int32 NumPy array.
    Raises:
      DataError: non-integer values or an id outside [0, V - 1], naming its row and column.
    """
    x = np.asarray(x)
    expected = f"integer token ids in [0, {int(vocab_size) - 1}]"
    if x.dtype.kind not in "iubf":
        raise DataError(f"{what}: dtype {x.dtype}; expected {expected}")
    flat = x.reshape(x.shape[0], -1) if x.ndim >= 2 else x.reshape(1, -1)
    with np.errstate(invalid="ignore"):
        bad = (flat < 0) | (flat >= vocab_size)
        if x.dtype.kind == "f":
            bad |= ~np.isfinite(flat) | (np.floor(flat) != flat)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{what}: row {r}, column {c}: {flat[r, c].item()!r} is not a token "
                        f"id; expected {expected}")
    return x.astype(np.int32)
