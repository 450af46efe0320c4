"""Plots of the training diagnostics (:mod:`fnn.diagnostics`): gradients.png, activations.png.

Both read a history with the per-layer keys ``grad_norm/layer<l>``, ``slope/layer<l>``,
``saturated/layer<l>`` and ``dead/layer<l>`` (a :class:`fnn.train.Trainer` run with
``diagnostics=True``), of shape
(epochs,) for one run or (members, epochs) for a sweep, plus the optional boolean ``trained``.
A sweep is drawn one panel per member group (the groups of :func:`fnn.experiment.plan`), each
line the median over the group's members (one member: its own values). Row l is that of
:func:`fnn.diagnostics.rows` (a Repeat's copies are rows of their own); with ``names``
(:func:`layer_names`) the legend says which, ``layer 3: layer2[0] TransformerBlock`` (gradcheck's
leaf prefix: copy 0 of ``net.layers[2]``), else ``layer 3``.

* :func:`plot_gradients` — ‖∂L/∂W(l)‖ per layer vs epoch (log scale, the same y range in every
  panel), and a last panel with the gradient norm against the layer index at the first and last
  epoch, one line per group: vanishing gradients show as a line falling towards layer 1.
* :func:`plot_activations` — per layer vs epoch, on the validation split: the mean slope g'(Z)
  (the factor each layer applies to the δ passing through it), the fraction of saturated entries
  (g'(Z) < 10 % of its maximum) and of dead units (saturated on every example).
* :func:`plot_diagnostics` — both, as a run directory's gradients.png and activations.png.

matplotlib is optional: each function returns False (and writes nothing) without it.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from fnn.analysis import diagnostics as diag
from fnn.experiment.curve_plots import PathLike
from fnn.experiment.history import history_arrays
from fnn.experiment.plot_style import import_matplotlib
from fnn.util.fileio import atomic_write_bytes

_LAYER_KEY = re.compile(r"^(?P<stat>[a-z_]+)/layer(?P<layer>\d+)$")


def layer_series(history: dict, stat: str) -> dict[int, np.ndarray]:
    """{layer l: (members, epochs) array} of ``<stat>/layer<l>``, skipped epochs as NaN.

    Args:
      history: metric name -> (epochs,) or (members, epochs).
      stat: e.g. "grad_norm".
    Returns:
      the layers in increasing order (empty when the history has no such keys).
    """
    arrays, members, epochs, _ = history_arrays(history)
    trained = arrays.get("trained", np.ones((members, epochs), bool)).astype(bool)
    out = {}
    for key, value in arrays.items():
        m = _LAYER_KEY.match(key)
        if m and m.group("stat") == stat:
            out[int(m.group("layer"))] = np.where(trained, value.astype(np.float64), np.nan)
    return dict(sorted(out.items()))


def layer_names(nets: Sequence) -> dict[int, str]:
    """{l: "layer2[0] TransformerBlock"} for the rows of every network (a sweep's groups may
    differ); a row the networks name differently is left out (its legend says ``layer l``)."""
    names, clash = {}, set()
    for net in nets:
        for l, r in enumerate(diag.rows(net), start=1):
            name = f"{r.name} {r.kind}"
            clash |= {l} if names.setdefault(l, name) != name else set()
    return {l: n for l, n in names.items() if l not in clash}


def _median(values: np.ndarray) -> np.ndarray:
    """Median over members (axis 0), NaN where every member is NaN, without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=0)


def _groups(groups, members: int, sweep: bool) -> list[tuple[str, list[int]]]:
    if groups is None:
        return [("" if not sweep else "all members", list(range(members)))]
    out = [(str(t), [int(i) for i in idx]) for t, idx in groups]
    for t, idx in out:
        if not idx or any(not 0 <= i < members for i in idx):
            raise ValueError(f"groups: group {t!r} has member indices {idx}; expected a non-empty"
                             f" list from 0 to {members - 1}")
    return out


def _layer_colors(layers: Sequence[int]):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    n = max(1, len(layers) - 1)
    return {l: cmap(0.9 * i / n) for i, l in enumerate(layers)}


def _layer_label(l: int, last: Optional[int], names: Optional[dict]) -> str:
    name = (names or {}).get(l)
    return f"layer {l}" + (f": {name}" if name else "") + (" (output)" if l == last else "")


def _finish(fig, path, Line2D, colors: dict, layers, last: Optional[int],
            title: Optional[str], names: Optional[dict] = None) -> None:
    """One layer-colour legend beside the first row (if any layers), the title, the PNG."""
    handles = [Line2D([], [], color=colors[l], linewidth=2, label=_layer_label(l, last, names))
               for l in layers]
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=8,
                   ncol=1 if len(handles) <= 16 else 2)
    if title:
        fig.suptitle(title)
    _save(fig, path)


def _output_layer(series: dict[int, np.ndarray], groups) -> Optional[int]:
    """The output layer's index when every group's network has the same depth, else None."""
    lasts = set()
    for _, idx in groups:
        present = [l for l, v in series.items() if np.any(np.isfinite(v[idx]))]
        lasts.add(max(present) if present else None)
    return lasts.pop() if len(lasts) == 1 else None


def _epoch_axis(ax, ticker, epochs: int) -> None:
    ax.set_xlabel("epoch")
    if epochs < 5:
        ax.set_xlim(0.5, epochs + 0.5)
        ax.xaxis.set_major_locator(ticker.FixedLocator(list(range(1, epochs + 1))))
    else:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)


def _save(fig, path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def _decade_limits(values: np.ndarray) -> Optional[tuple[float, float]]:
    finite = values[np.isfinite(values) & (values > 0)]
    if not finite.size:
        return None
    lo, hi = np.floor(np.log10(finite.min())), np.ceil(np.log10(finite.max()))
    if hi - lo < 1:
        hi = lo + 1
    return 10.0 ** lo, 10.0 ** hi


def _log_decades(ax, ticker, limits) -> None:
    ax.set_yscale("log")
    if limits is not None:
        ax.set_ylim(*limits)
        span = np.log10(limits[1]) - np.log10(limits[0])
        if span <= 2:  # a decade or two: label 1, 2, 5 of each
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10.0, subs=(1.0, 2.0, 5.0),
                                                         numticks=20))
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
        else:
            step = max(1, int(np.ceil(span / 8)))  # at most ~8 labelled decades
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10.0 ** step, numticks=20))
            ax.yaxis.set_minor_locator(ticker.LogLocator(base=10.0, subs=(1.0,), numticks=40))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def plot_gradients(path: PathLike, history: dict, *, member_labels: Optional[Sequence] = None,
                   groups: Optional[Sequence[tuple[str, Sequence[int]]]] = None,
                   title: Optional[str] = None, names: Optional[dict] = None) -> bool:
    """Gradient norm ‖∂L/∂W(l)‖ per layer vs epoch (log scale), and by layer, to a PNG.

    Args:
      path: the PNG file (written atomically).
      history: with ``grad_norm/layer<l>`` keys; (epochs,) or (members, epochs).
      member_labels: unused in the drawing (lines are group medians); accepted for symmetry
        with :func:`fnn.experiment.curve_plots.plot_curves`.
      groups: sweeps: (group title, [member indices]) per panel; default all members.
      title: the figure title.
      names: {l: what row l is} for the legend (:func:`layer_names`); None: ``layer l`` only.
    Returns:
      True when written; False without matplotlib.
    Raises:
      ValueError: no ``grad_norm/layer<l>`` keys in the history, bad groups.
    """
    arrays, members, epochs, sweep = history_arrays(history)
    series = layer_series(history, "grad_norm")
    if not series:
        raise ValueError("history: no grad_norm/layer<l> keys (train with diagnostics enabled)")
    groups = _groups(groups, members, sweep)
    mpl = import_matplotlib()
    if mpl is None:
        return False
    Figure, FigureCanvasAgg, ticker, Line2D = mpl

    layers = list(series)
    last = _output_layer(series, groups)
    colors = _layer_colors(layers)
    medians = [{l: _median(series[l][idx]) for l in layers} for _, idx in groups]
    limits = _decade_limits(np.concatenate([v for m in medians for v in m.values()]))
    x = np.arange(1, epochs + 1)
    n_panels = len(groups) + 1
    ncols = min(n_panels, 3)
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(4.6 * ncols + 1.6, 3.8 * nrows + (0.5 if title else 0.2)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    for (gtitle, idx), med, ax in zip(groups, medians, axes):
        for l in layers:
            y = med[l]
            if not np.any(np.isfinite(y)):
                continue
            ax.plot(x, y, color=colors[l], linewidth=1.6, marker="o" if epochs <= 2 else None,
                    markersize=3)
        _log_decades(ax, ticker, limits)
        _epoch_axis(ax, ticker, epochs)
        ax.set_ylabel("‖∂L/∂W(l)‖ (log scale)")
        ax.set_title(gtitle or "gradient norm per layer", fontsize=10)
    # The profile: gradient norm against depth, first and last epoch, one color per group.
    ax = axes[len(groups)]
    handles = []
    for g, ((gtitle, _), med) in enumerate(zip(groups, medians)):
        color = f"C{g % 10}"
        stack = np.stack([med[l] for l in layers])  # (layers, epochs)
        done = np.nonzero(np.any(np.isfinite(stack), axis=0))[0]
        if not done.size:
            continue
        first, final = done[0], done[-1]
        ax.plot(layers, stack[:, first], "--", color=color, marker="o", markersize=3,
                linewidth=1.2)
        if final != first:
            ax.plot(layers, stack[:, final], "-", color=color, marker="o", markersize=3,
                    linewidth=1.8)
        handles.append(Line2D([], [], color=color, linewidth=2, label=gtitle or "run"))
    handles.append(Line2D([], [], color="black", linestyle="--", label="epoch 1"))
    if epochs > 1:
        handles.append(Line2D([], [], color="black", linestyle="-", label="last epoch"))
    _log_decades(ax, ticker, limits)
    ax.set_xlabel("layer l (1 = next to the input)")
    ax.xaxis.set_major_locator(ticker.FixedLocator(layers) if len(layers) <= 12
                               else ticker.MaxNLocator(integer=True))
    ax.set_ylabel("‖∂L/∂W(l)‖ (log scale)")
    ax.set_title("gradient norm by layer", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="best")
    # One layer legend for the per-epoch panels, beside the first row.
    _finish(fig, path, Line2D, colors, layers, last, title, names)
    return True


def plot_activations(path: PathLike, history: dict, *, member_labels: Optional[Sequence] = None,
                     groups: Optional[Sequence[tuple[str, Sequence[int]]]] = None,
                     title: Optional[str] = None, names: Optional[dict] = None) -> bool:
    """Activation health per layer vs epoch: mean g'(Z), saturated entries, dead units (PNG).

    One row per group, three panels: the mean slope g'(Z), the fraction of saturated (example,
    unit) entries and the fraction of dead units of each layer on the validation split (see
    :mod:`fnn.diagnostics`).
    Layers without a per-unit derivative (softmax output; blocks without an activation of their
    own, such as a TransformerBlock's copies) are left out; when none is left (a GPT) the panels
    say so.

    Args:
      path, history, member_labels, groups, title, names: as :func:`plot_gradients`; the history
        needs ``slope/layer<l>``, ``saturated/layer<l>`` or ``dead/layer<l>`` keys.
    Returns:
      True when written; False without matplotlib.
    Raises:
      ValueError: no such keys in the history, bad groups.
    """
    arrays, members, epochs, sweep = history_arrays(history)
    panels = [("slope", "mean slope g'(Z)"),
              ("saturated", "saturated entries: g'(Z) < 10% of max"),
              ("dead", "dead units: saturated on every example")]
    series = {stat: layer_series(history, stat) for stat, _ in panels}
    if not any(series.values()):
        raise ValueError("history: no slope/, saturated/ or dead/layer<l> keys (train with "
                         "diagnostics enabled)")
    groups = _groups(groups, members, sweep)
    mpl = import_matplotlib()
    if mpl is None:
        return False
    Figure, FigureCanvasAgg, ticker, Line2D = mpl

    layers = sorted(set().union(*[set(s) for s in series.values()]))
    depth = layer_series(history, "weight_norm") or layer_series(history, "grad_norm")
    last = _output_layer(depth, groups) if depth else None
    colors = _layer_colors(layers)
    x = np.arange(1, epochs + 1)
    nrows = len(groups)
    fig = Figure(figsize=(4.4 * len(panels) + 1.6, 3.4 * nrows + (0.5 if title else 0.2)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, len(panels), squeeze=False)
    shown = set()
    for r, (gtitle, idx) in enumerate(groups):
        for c, (stat, heading) in enumerate(panels):
            ax = axes[r][c]
            for l, values in series[stat].items():
                y = _median(values[idx])
                if not np.any(np.isfinite(y)):
                    continue
                shown.add(l)
                ax.plot(x, y, color=colors[l], linewidth=1.6,
                        marker="o" if epochs <= 2 else None, markersize=3)
            ax.set_ylim(-0.03, 1.03)
            if stat == "slope":
                ax.set_ylabel("mean g'(Z) (validation split)")
            else:
                ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
                ax.set_ylabel("fraction (validation split)")
            _epoch_axis(ax, ticker, epochs)
            ax.set_title(f"{gtitle}:\n{heading}" if gtitle else heading, fontsize=10)
    if not shown:  # e.g. a GPT: embeddings, blocks, normalization and a softmax output
        for ax in axes.ravel():
            ax.text(0.5, 0.5, "no layer with an element-wise\nactivation of its own (all NaN)",
                    ha="center", va="center", transform=ax.transAxes, color="0.4", fontsize=9)
    _finish(fig, path, Line2D, colors, [l for l in layers if l in shown], last, title, names)
    return True


def plot_diagnostics(run_dir, history: dict, nets: Sequence, **kw) -> bool:
    """``run_dir``/gradients.png and activations.png, the legend naming the rows of ``nets``
    (every group's network). kw: as :func:`plot_gradients`. Returns: False without matplotlib."""
    names = layer_names(nets)
    ok = plot_gradients(Path(run_dir) / "gradients.png", history, names=names, **kw)
    return plot_activations(Path(run_dir) / "activations.png", history, names=names, **kw) and ok
