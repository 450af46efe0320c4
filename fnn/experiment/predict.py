"""``fnn predict``: apply a finished run's model (or one written by ``fnn export``) to new inputs
and write a CSV of predictions (a sequence model's: one row per example and position)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np


def read_inputs(path, *, num_features: int = 0, shape: tuple = (), drop_column: str = "",
                image_shape=None) -> np.ndarray:
    """Features from a .csv (numeric columns, a header row optional) or .npz (array ``x``).

    A CSV whose first row is all numbers has no header: that row is data, not names (the
    ``drop_column`` then cannot be found by name, so the file must hold the features only).

    Args:
      path: the file.  shape: one example's shape as the model takes it, e.g. (16, 16, 1);
        or num_features: the width of a flat model (shape ``(num_features,)``).
      drop_column: a column to ignore if present (the training target of a csv run).
      image_shape: (H, W) of the images a flat model was trained on, or None.
    Returns:
      (examples, *shape) array: ``x`` may be (N, *shape), (N, H, W) for a one-channel image
      model, or flat (N, prod(shape)) (:func:`fnn.data.validate.conform_inputs`).
    Raises:
      ValueError: unknown extension, missing array, non-numeric cell, another layout.
    """
    from fnn.data.validate import conform_inputs

    shape = tuple(shape) or (int(num_features),)
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"INPUT: {str(p)!r} does not exist")
    if p.suffix == ".npz":
        from fnn.data.npz_file import load_npz_arrays
        from fnn.data.validate import DataError

        try:
            with np.load(p, allow_pickle=False) as z:
                names = list(z.files) if isinstance(z, np.lib.npyio.NpzFile) else None
        except Exception:  # noqa: BLE001 - reported by load_npz_arrays below, in its words
            names = None
        if names is not None and "x" not in names:
            raise ValueError(f"INPUT {p.name}: no array 'x' (found: {', '.join(names) or 'none'})")
        try:
            arrays = load_npz_arrays(p, f"INPUT {p.name}", only=("x",))
        except DataError as err:
            msg = str(err).replace(f"path={str(p)!r}", f"INPUT {p.name}")
            msg = msg.replace("not a readable .npz archive", "not a readable .npz file")
            msg = msg.replace("cannot read its arrays", "array 'x' cannot be read")
            raise ValueError(msg) from None
        x = np.asarray(arrays["x"])
        if x.dtype.kind not in "biuf":
            raise ValueError(f"INPUT {p.name}: array 'x' has dtype {x.dtype}; expected real "
                             "numbers (integer or float features)")
    elif p.suffix == ".csv":
        rows: list = []
        try:
            with open(p, newline="", encoding="utf-8") as f:
                for row in csv.reader(f):
                    rows.append(row)
        except (csv.Error, UnicodeDecodeError) as err:
            line = len(rows) + 1
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            if "field larger than field limit" in why:
                why = f"a field longer than {csv.field_size_limit()} characters"
            raise ValueError(f"INPUT {p.name}: line {line}: not readable as CSV ({why})") from None
        headerless = bool(rows) and _all_numbers(rows[0])
        if headerless:  # the first row is data: named by position
            rows = [[f"column {i + 1}" for i in range(len(rows[0]))]] + rows
        if len(rows) < 2:
            raise ValueError(f"INPUT {p.name}: expected a header row and at least one data row")
        header = [h.strip() for h in rows[0]]
        keep = [i for i, h in enumerate(header) if not (drop_column and h == drop_column)]
        x = np.empty((len(rows) - 1, len(keep)), np.float32)
        for r, row in enumerate(rows[1:], start=1 if headerless else 2):
            if len(row) != len(header):
                raise ValueError(f"INPUT {p.name}: row {r} has {len(row)} cells; expected {len(header)}")
            for j, i in enumerate(keep):
                try:
                    value = float(row[i])
                except (ValueError, OverflowError):
                    raise ValueError(f"INPUT {p.name}: column {header[i]!r} row {r}: {row[i][:40]!r} "
                                     "is not a number") from None
                if abs(value) > FLOAT32_MAX and np.isfinite(value):  # not inf with a warning
                    raise ValueError(f"INPUT {p.name}: column {header[i]!r} row {r}: "
                                     f"{row[i][:40]!r} is beyond the float32 range "
                                     f"(|x| <= {FLOAT32_MAX:.4g})")
                x[r - (1 if headerless else 2), j] = value
    else:
        raise ValueError(f"INPUT: {p.name!r}; expected a .csv or .npz file")
    x = conform_inputs(x, shape, f"INPUT {p.name}", image_shape=image_shape)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x.reshape(x.shape[0], -1)))[0]
        raise ValueError(f"INPUT {p.name}: non-finite value at row {bad[0]}, column {bad[1]}")
    return x


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _all_numbers(row) -> bool:
    """Whether every cell of a CSV row reads as a number (a data row, not a header)."""
    try:
        return bool(row) and all(np.isfinite(float(c)) or c.strip().lower() in (
            "nan", "inf", "-inf") for c in row)
    except ValueError:
        return False


def predict_file(source, input_path, output=None, *, member=0) -> Path:
    """Predict ``input_path`` with a run directory's member ``member`` (index or label) or with
    a model written by ``fnn export``; write a CSV of predictions and return its path.

    Bad input (not a run directory nor an exported model, a corrupt artifact, inputs of the
    wrong width, an output that is a directory, the input, the model or a file of a run
    directory: :func:`fnn.experiment.rundir.check_output`) raises ValueError with one line
    before anything is written.
    """
    from fnn.experiment.rundir import check_output, write_output

    src = Path(source)
    out = Path(output) if output else Path(input_path).with_suffix(".predictions.csv")
    inputs = [(input_path, "the input file (the predictions would overwrite the inputs)")]
    if src.is_file():  # an exported model and its sidecar
        inputs += [(src, f"the model {str(src)!r}"),
                   (Path(str(src) + ".json"), f"the metadata of the model {str(src)!r}")]
    check_output(out, "--output", own=r"predictions\.csv", inputs=inputs)
    if src.is_dir():
        from fnn.experiment import handle as handle_mod

        h = handle_mod.load_run(src, member=member)
        drop = h.config.data.target if h.config.data.name == "csv" else ""
        x = read_inputs(input_path, shape=tuple(h.input_shape), drop_column=drop,
                        image_shape=h.spec.image_shape)
        if h.vocab_size:
            x = _tokens(x, h.vocab_size, input_path)
        y_hat = h.predict(x)
        task, classes = h.task, (h.vocabulary if h.task == "sequence" else h.classes)
    elif src.is_file():
        from fnn.experiment import export

        exported, meta = export.load(src)
        shape = tuple(meta["input_shape"])
        x = read_inputs(input_path, shape=shape)
        if meta.get("input_dtype") == "int32":
            x = _tokens(x, int(exported.out_avals[0].shape[-1]), input_path)
        y_hat = export.call(exported, meta, x)
        task, classes = meta["task"], meta.get("classes") or []
        if meta.get("output_kind") == "logits":  # a sequence model: softmax over the tokens
            y_hat = _softmax(y_hat)
    else:
        raise ValueError(f"{str(src)!r} is neither a run directory nor an exported model "
                         "(fnn export)")
    text = predictions_csv(y_hat, task, classes, x=x if task == "sequence" else None)
    write_output([(out, text.encode("utf-8"))])
    return out


def _tokens(x, vocab_size: int, path) -> np.ndarray:
    """A sequence model's inputs as int32 ids, a bad one named with the file."""
    from fnn.data.validate import token_ids

    return token_ids(x, vocab_size, f"INPUT {Path(path).name}")


def _softmax(z: np.ndarray) -> np.ndarray:
    """softmax over the last axis, in float64: e^(z − max z) / Σ e^(z − max z)."""
    e = np.exp(z.astype(np.float64) - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def predictions_csv(y_hat: np.ndarray, task: str, classes, *, x=None) -> str:
    """The CSV text of ``fnn predict``: the predicted class and each class probability, or the
    regression outputs ``y_0, y_1, ...`` (6 significant digits). A sequence model (y_hat
    (n, T, V), token ids ``x`` (n, T)) has one row per example and position: the input token,
    the most likely next token and its probability (tokens by ``classes``, else by id)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    if task == "sequence":
        names = list(classes) if classes else [str(i) for i in range(y_hat.shape[-1])]
        ids = np.argmax(y_hat, axis=-1)
        w.writerow(["example", "position", "token", "next", "p_next"])
        for n in range(y_hat.shape[0]):
            for t in range(y_hat.shape[1]):
                k = int(ids[n, t])
                w.writerow([n, t, names[int(x[n, t])], names[k], f"{y_hat[n, t, k]:.6g}"])
    elif task == "classification":
        names = list(classes) if classes else [str(i) for i in range(max(2, y_hat.shape[1]))]
        if y_hat.shape[1] == 1:
            ids = (y_hat[:, 0] > 0.5).astype(int)
            w.writerow(["prediction", f"p_{names[1]}"])
            for i, p in zip(ids, y_hat[:, 0]):
                w.writerow([names[i], f"{p:.6g}"])
        else:
            ids = np.argmax(y_hat, axis=1)
            w.writerow(["prediction"] + [f"p_{n}" for n in names])
            for i, row in zip(ids, y_hat):
                w.writerow([names[i]] + [f"{v:.6g}" for v in row])
    else:
        w.writerow([f"y_{k}" for k in range(y_hat.shape[1])])
        for row in y_hat:
            w.writerow([f"{v:.6g}" for v in row])
    return buf.getvalue()
