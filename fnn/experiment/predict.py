"""``fnn predict``: apply a finished run's model to new inputs and write a CSV of predictions."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fnn.engine import metrics as metrics_mod
from fnn.experiment import report


def read_inputs(path, *, num_features: int, drop_column: str = "") -> np.ndarray:
    """Features from a .csv (header row, numeric columns) or .npz (array ``x``).

    Args:
      path: the file.  num_features: the width the model expects.
      drop_column: a column to ignore if present (the training target of a csv run).
    Returns:
      (examples, num_features) array.
    Raises:
      ValueError: unknown extension, missing array, non-numeric cell, wrong width.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"INPUT: {str(p)!r} does not exist")
    if p.suffix == ".npz":
        try:
            z = np.load(p, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an archive")
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            reason = str(err) if zipfile.is_zipfile(p) or str(err).startswith("a single") else \
                "not a zip archive"
            raise ValueError(f"INPUT {p.name}: not a readable .npz file ({reason})") from None
        with z:
            if "x" not in z:
                raise ValueError(f"INPUT {p.name}: no array 'x' (found: {', '.join(z.files) or 'none'})")
            try:
                x = np.asarray(z["x"])
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                raise ValueError(f"INPUT {p.name}: array 'x' cannot be read ({err})") from None
    elif p.suffix == ".csv":
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if len(rows) < 2:
            raise ValueError(f"INPUT {p.name}: expected a header row and at least one data row")
        header = [h.strip() for h in rows[0]]
        keep = [i for i, h in enumerate(header) if not (drop_column and h == drop_column)]
        x = np.empty((len(rows) - 1, len(keep)), np.float32)
        for r, row in enumerate(rows[1:], start=2):
            if len(row) != len(header):
                raise ValueError(f"INPUT {p.name}: row {r} has {len(row)} cells; expected {len(header)}")
            for j, i in enumerate(keep):
                try:
                    x[r - 2, j] = float(row[i])
                except ValueError:
                    raise ValueError(f"INPUT {p.name}: column {header[i]!r} row {r}: {row[i]!r} "
                                     "is not a number") from None
    else:
        raise ValueError(f"INPUT: {p.name!r}; expected a .csv or .npz file")
    if x.ndim == 3 and x.shape[1] * x.shape[2] == num_features:
        x = x.reshape(x.shape[0], -1)
    if x.ndim != 2 or x.shape[1] != num_features:
        raise ValueError(f"INPUT {p.name}: features of shape {x.shape}; the model expects "
                         f"(examples, {num_features})")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"INPUT {p.name}: non-finite value at row {bad[0]}, column {bad[1]}")
    return x


def predict_file(run_dir, input_path, output=None, *, member: int = 0) -> Path:
    """Predict ``input_path`` with member ``member`` of the run in ``run_dir``; returns the CSV path."""
    from fnn.experiment import runner

    inputs = {}

    def read(cfg, dataset):  # bad input fails before any model is built or compiled
        inputs["x"] = read_inputs(input_path, num_features=dataset.num_features,
                                  drop_column=cfg.data.target if cfg.data.name == "csv" else "")

    cfg, dataset, loaded = runner.load_run(run_dir, before_models=read)
    x = inputs["x"]
    flat = [(g, tr, st, j) for g, tr, st in loaded for j in range(len(g.members))]
    if not 0 <= member < len(flat):
        raise ValueError(f"--member: {member}; the run has {len(flat)} members")
    g, trainer, state, j = flat[member]
    params = runner._member(state, j, len(g.members) > 1).params
    if dataset.x_train.dtype == np.uint8:
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    elif dataset.x_mean is not None:
        x = ((x.astype(np.float32) - dataset.x_mean[None, :]) / dataset.x_std[None, :])
    net = trainer.net
    y_hat = np.asarray(jax.jit(lambda p, a: net.apply(p, metrics_mod.as_inputs(a, jnp.dtype(net.dtype))))(
        params, jnp.asarray(x)))
    buf = io.StringIO()
    w = csv.writer(buf)
    if dataset.task == "classification":
        names = list(dataset.classes) if dataset.classes else [str(i) for i in range(dataset.num_classes)]
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
    out = Path(output) if output else Path(input_path).with_suffix(".predictions.csv")
    report.atomic_write_text(out, buf.getvalue())
    return out
