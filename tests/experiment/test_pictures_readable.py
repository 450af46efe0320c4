"""Issue 23: what a reader could not read in the pictures. Every figure is captured as it is
saved and its texts are measured after drawing: panel titles inside the figure and apart from
each other, no two tick labels of a log axis on top of each other, the decision-region legend
clear of the contour labels."""
from __future__ import annotations

import numpy as np
import pytest

from fnn.experiment import curve_plots, model_plots, plot_style


@pytest.fixture
def saved_figures(monkeypatch):
    """Every matplotlib Figure saved while the test runs, drawn (text extents are final)."""
    from matplotlib.figure import Figure

    figures = []
    real = Figure.savefig

    def spy(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        figures.append(self)
        return out

    monkeypatch.setattr(Figure, "savefig", spy)
    return figures


def _box(artist, fig):
    return artist.get_window_extent(fig.canvas.get_renderer())


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _assert_titles_readable(fig):
    boxes = [_box(ax.title, fig) for ax in fig.axes if ax.get_title()]
    page = fig.bbox
    for b in boxes:
        assert b.x0 >= page.x0 - 1 and b.x1 <= page.x1 + 1, "a panel title is cut off"
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not _overlap(a, b), "two panel titles overlap"


LONG = ["best of 2: optimizer.name=sgd training.seed=0",
        "best of 2: optimizer.name=momentum training.seed=0",
        "best of 2: optimizer.name=adam training.seed=0"]


def test_sweep_confusion_titles_neither_overlap_nor_are_cut_off(tmp_path, saved_figures):
    panels = [model_plots.ConfusionPanel(t, np.array([[22, 4], [4, 30]]), "test") for t in LONG]
    assert model_plots.plot_confusion(tmp_path / "c.png", panels, ["0", "1"], title="optimizers")
    _assert_titles_readable(saved_figures[-1])


def _regions(title):
    g = np.linspace(-1.5, 2.5, 60, dtype=np.float32)
    xx, yy = np.meshgrid(g, g)
    p1 = 1.0 / (1.0 + np.exp(-(xx - yy) * 2.0))
    probs = np.stack([1 - p1, p1], axis=-1)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.5, 2.5, (200, 2)).astype(np.float32)
    return model_plots.RegionPanel(title, g, g, probs, x, (x[:, 0] > x[:, 1]).astype(int))


def test_decision_region_titles_readable_and_the_legend_clear_of_contour_labels(
        tmp_path, saved_figures):
    panels = [_regions(t) for t in LONG]
    assert model_plots.plot_decision_regions(tmp_path / "d.png", panels, ["0", "1"], title="x")
    fig = saved_figures[-1]
    _assert_titles_readable(fig)
    for ax in fig.axes:
        legend = ax.get_legend()
        labels = [t for t in ax.texts if t.get_text() in {"0.1", "0.25", "0.5", "0.75", "0.9"}]
        assert legend is not None and labels
        box = _box(legend, fig)
        for t in labels:
            assert not _overlap(box, _box(t, fig)), f"the legend covers contour label {t.get_text()}"


@pytest.mark.parametrize("lo,hi", [(0.085, 0.35), (0.09, 0.12), (0.0095, 0.4), (0.55, 0.91)])
def test_log_axis_tick_labels_do_not_collide(tmp_path, saved_figures, lo, hi):
    epochs = 30
    loss = np.geomspace(hi, lo, epochs)
    history = {"train_loss": loss, "val_loss": loss * 1.01, "train_accuracy": np.linspace(0.5, 1, epochs)}
    assert curve_plots.plot_curves(tmp_path / "c.png", history, title="t")
    fig = saved_figures[-1]
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    ymin, ymax = ax.get_ylim()
    shown = [t for t in ax.yaxis.get_major_ticks()
             if ymin <= t.get_loc() <= ymax and t.label1.get_visible() and t.label1.get_text()]
    assert len(shown) >= 2, [t.label1.get_text() for t in shown]
    boxes = sorted((_box(t.label1, fig) for t in shown), key=lambda b: b.y0)
    for a, b in zip(boxes, boxes[1:]):
        assert b.y0 >= a.y1, f"tick labels collide: {[t.label1.get_text() for t in shown]}"


def test_log_ticks_keep_apart():
    ticks = plot_style.log_ticks(0.085, 0.35)
    assert not {0.09, 0.1} <= set(ticks)
    gaps = np.diff(np.log10(ticks))
    assert gaps.min() >= np.log10(0.35 / 0.085) / 7 - 1e-12
