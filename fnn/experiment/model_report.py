"""What the finished run's trained models show, written into the run directory at the end of a run.

:func:`write_all` is :func:`prepare` then :meth:`Pictures.draw`. The runner calls the two
apart: :func:`prepare` at its report step (before ``summary.json`` is written), the pictures
after the summary table is printed, so that drawing them does not delay it. :func:`prepare`

* writes ``preprocessing.json`` (:mod:`fnn.experiment.preprocessing`), so the run predicts and
  exports without its data;
* for classification, adds to every member of the summary (and to the top level of a single
  run) ``per_class_accuracy`` ({class name: accuracy}), ``confusion_matrix`` (rows = true
  class, columns = predicted; counts summing to the split's size) and ``confusion_split``:
  the test split where there is one, else validation, else training;
* with ``output.plots``: ``confusion.png`` (classification); ``misclassified.png`` for image
  classifiers (the most confidently wrong images of the confusion split, from the run's best
  member; :mod:`fnn.experiment.misclassified`), and the summary's ``misclassified``: that
  member's label, the split, how many were wrong, and the split indices shown;
  ``decision_boundary.png`` for classification on 2-D inputs (predicted class regions and probability contours over the
  training points) or regression on 1-D inputs (the fitted curve over the data). Sweeps get
  one panel per group, showing the group's best member by ``early_stopping.monitor``.

Parameters are read back from the run's final checkpoints (:mod:`fnn.experiment.members`).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from fnn.experiment import build as exp
from fnn.experiment import members as members_mod
from fnn.experiment import memory, misclassified, model_plots, preprocessing
from fnn.experiment.results import best_position

GRID = 200  # decision-region grid points per axis


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) int64 counts: [i, j] = examples of true class i predicted as j."""
    return np.bincount(np.asarray(y_true, np.int64) * k + np.asarray(y_pred, np.int64),
                       minlength=k * k).reshape(k, k)


def per_class_accuracy(counts: np.ndarray, names) -> dict:
    """{class name: fraction of its examples predicted correctly} (None for an absent class)."""
    rows = counts.sum(axis=1)
    return {str(n): (float(counts[i, i] / rows[i]) if rows[i] else None)
            for i, n in enumerate(names)}


def _eval_split(ds) -> tuple[str, np.ndarray, np.ndarray]:
    for split in ("test", "val", "train"):
        arrays = ds.split(split)
        if arrays is not None:
            return split, np.asarray(arrays[0]), np.asarray(arrays[1])
    raise AssertionError("a dataset always has a training split")  # pragma: no cover


class Pictures:
    """The model pictures of a finished run, computed (panels) but not yet drawn."""

    def __init__(self, draws=()):
        self._draws = list(draws)

    def draw(self) -> list[Path]:
        """Draw every picture (matplotlib); returns the PNGs written (none without matplotlib)."""
        return [path for path, fn in self._draws if fn()]


def write_all(run_dir, cfg, dataset, summary: dict) -> list[Path]:
    """:func:`prepare` and draw: write the files above; update ``summary`` in place.

    Returns:
      the PNGs written.
    """
    return prepare(run_dir, cfg, dataset, summary).draw()


def prepare(run_dir, cfg, dataset, summary: dict) -> Pictures:
    """Write ``preprocessing.json``, add the per-class figures to ``summary`` (in place) and
    compute the pictures' panels; nothing is drawn.

    Args:
      run_dir: the run directory (config.toml and final checkpoints written).
      cfg: the run's config (``output.plots``, ``early_stopping.monitor``).
      dataset: the base config's dataset, as trained on.  summary: the run's summary dict.
    Returns:
      the :class:`Pictures` to draw (none with ``output.plots = false``).
    """
    run_dir = Path(run_dir)
    run_cfg = members_mod.read_config(run_dir)  # with the sweep grid, as load_run sees it
    groups = exp.plan(run_cfg)
    datasets = [dataset if g.config.data == run_cfg.data else exp.load_dataset(g.config)
                for g in groups]
    specs = [preprocessing.from_dataset(d) for d in datasets]
    preprocessing.write(run_dir, specs)
    spec0 = specs[0]
    classify = spec0.task == "classification"
    curve = spec0.task == "regression" and spec0.num_features == 1 and spec0.num_outputs == 1
    if not classify and not curve:
        return Pictures()
    entries = summary["members"]
    refs = members_mod.member_refs(groups)
    conf_panels, region_panels, curve_panels = [], [], []
    # misclassified.png: the run's best member, over every group
    top = refs[best_position(entries, list(range(len(refs))), cfg.early_stopping.monitor)]
    wrong = None
    for gi, (g, ds, spec) in enumerate(zip(groups, datasets, specs)):
        net, params, state = members_mod.load_group(run_dir, run_cfg, groups, gi, spec)
        fn = jax.jit(members_mod.prediction_fn(net, spec))
        n = len(g.members)
        mine = [r for r in refs if r.group_index == gi]
        best = best_position(entries, [r.index for r in mine], cfg.early_stopping.monitor)
        # the best member's label names the group's values too (one spelling: full keys)
        title = f"best of {n}: {mine[best].label}" if n > 1 else \
            (g.title if len(groups) > 1 else "")
        p_best = members_mod.select(params, best, n)
        s_best = members_mod.select(state, best, n)
        if classify:
            split, x, y = _eval_split(ds)
            names = spec.class_names
            # the best member's regions grid rides on its evaluation rows: one compiled program
            grid = _grid(ds) if spec.num_features == 2 and cfg.output.plots else None
            for r in mine:
                rows = x if grid is None or r.position != best else \
                    np.concatenate([x, grid[2].astype(x.dtype)])
                y_all = members_mod.apply_chunked(fn, members_mod.select(params, r.position, n),
                                                  members_mod.select(state, r.position, n), rows,
                                                  chunk=memory.eval_chunk(net))
                y_hat = y_all[:x.shape[0]]
                if rows is not x:
                    region_panels.append(_regions(grid, y_all[x.shape[0]:], ds, title))
                counts = confusion_counts(y, members_mod.class_ids(y_hat), len(names))
                entries[r.index].update(per_class_accuracy=per_class_accuracy(counts, names),
                                        confusion_matrix=counts.tolist(), confusion_split=split)
                if r.position == best:
                    conf_panels.append(model_plots.ConfusionPanel(title, counts, split))
                if r is top and spec.image_shape and cfg.output.plots:
                    wrong = (misclassified.errors(members_mod.class_probabilities(y_hat), x, y,
                                                  spec.image_shape, split), r.label)
        elif cfg.output.plots:
            xt, yt = np.asarray(ds.x_train)[:, 0], np.asarray(ds.y_train)[:, 0]
            xs = np.linspace(xt.min(), xt.max(), 400, dtype=np.float32)
            ys = members_mod.apply_chunked(fn, p_best, s_best, xs[:, None])[:, 0]
            curve_panels.append(model_plots.CurvePanel(title, xt, yt, xs, ys))
    if wrong is not None:
        e = wrong[0]
        summary["misclassified"] = {"member": wrong[1], "split": e.split, "wrong": e.of,
                                    "examples": e.total, "shown": e.index.tolist()}
    if len(entries) == 1 and classify:
        summary.update({k: entries[0][k] for k in
                        ("per_class_accuracy", "confusion_matrix", "confusion_split")})
    if not cfg.output.plots:
        return Pictures()
    name = Path(cfg.source).stem if cfg.source else run_dir.name
    draws = []
    if conf_panels:
        draws.append((run_dir / "confusion.png", lambda: model_plots.plot_confusion(
            run_dir / "confusion.png", conf_panels, spec0.class_names,
            title=f"{name}: confusion matrix")))
    if wrong is not None:
        draws.append((run_dir / "misclassified.png", lambda: misclassified.plot_misclassified(
            run_dir / "misclassified.png", wrong[0], spec0.class_names,
            title=f"{name}: most confident mistakes"
            + (f" (best member: {wrong[1]})" if len(refs) > 1 else ""))))
    if region_panels:
        draws.append((run_dir / "decision_boundary.png", lambda: model_plots.plot_decision_regions(
            run_dir / "decision_boundary.png", region_panels, spec0.class_names,
            title=f"{name}: decision regions over the training points")))
    if curve_panels:
        draws.append((run_dir / "decision_boundary.png", lambda: model_plots.plot_fitted_curve(
            run_dir / "decision_boundary.png", curve_panels,
            title=f"{name}: fitted curve over the training data")))
    return Pictures(draws)


def _grid(ds) -> tuple:
    """(gx, gy, points): a GRID × GRID lattice over the training points' box (8 % margin),
    points (GRID², 2) in row-major order of (gy, gx)."""
    x = np.asarray(ds.x_train)
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = 0.08 * (hi - lo) + 1e-6
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], GRID, dtype=np.float32)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], GRID, dtype=np.float32)
    xx, yy = np.meshgrid(gx, gy)
    return gx, gy, np.stack([xx.ravel(), yy.ravel()], axis=1)


def _regions(grid: tuple, y_hat: np.ndarray, ds, title) -> model_plots.RegionPanel:
    """The decision-regions panel from the network's outputs ``y_hat`` (GRID², k) on ``grid``."""
    gx, gy, _ = grid
    probs = members_mod.class_probabilities(y_hat)
    return model_plots.RegionPanel(title, gx, gy, probs.reshape(GRID, GRID, -1),
                                   np.asarray(ds.x_train), np.asarray(ds.y_train))
