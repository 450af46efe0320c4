"""What every picture shares: matplotlib imported lazily (without pyplot's global backend),
titles that fit their panel, readable log-axis ticks and distinguishable colors.

The picture modules (:mod:`~fnn.experiment.curve_plots`, :mod:`~fnn.experiment.model_plots`,
:mod:`~fnn.experiment.diagnostic_plots`, :mod:`~fnn.experiment.misclassified`, the figure of
:mod:`~fnn.experiment.compare`) import this one, and no module of the run's report.
"""

from __future__ import annotations

import threading

import numpy as np

MAX_LEGEND_MEMBERS = 40  # beyond this a sweep's legend names only the first and last member


def prefetch_matplotlib() -> None:
    """Import matplotlib in a daemon thread, so a later picture finds it loaded.

    The CLI calls this at the start of a run: the import (~0.6 s, a quarter of a warm
    quickstart run) then overlaps data loading, compilation and training instead of following
    them. A missing matplotlib is left for the picture to report.
    """
    threading.Thread(target=import_matplotlib, name="fnn-import-matplotlib",
                     daemon=True).start()


def import_matplotlib():
    """(Figure, FigureCanvasAgg, matplotlib.ticker, Line2D), or None when matplotlib is missing."""
    try:
        from matplotlib import ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        return None
    return Figure, FigureCanvasAgg, ticker, Line2D


def wrap_title(text: str, inches: float, fontsize: float) -> str:
    """``text`` broken at spaces into lines that fit ``inches`` of width at ``fontsize``
    points (about 0.6 em a character), so a panel's title never runs into its neighbour's."""
    import textwrap

    width = max(12, int(inches * 72.0 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False)
                     for line in str(text).split("\n"))


def log_locator(ticker, lo: float, hi: float):
    """A fixed locator of :func:`log_ticks` over [lo, hi]."""
    return ticker.FixedLocator(log_ticks(lo, hi))


def log_ticks(lo: float, hi: float, *, max_ticks: int = 7) -> list[float]:
    """Readable major ticks for a log axis over [lo, hi] (0 < lo <= hi).

    Candidates are m·10^k, taken by preference (1, then 2 and 5, then 3, then 4, 6, 7, 8, 9);
    one is kept only if it is at least 1/max_ticks of the axis (in log10) from every tick kept
    already, so no two labels collide (0.09 next to 0.1, say). When fewer than three survive (a
    range of well under a decade), evenly spaced round values are used, thinned the same way.

    Returns:
      the sorted tick values.
    """
    lo, hi = float(lo), float(hi)
    if not (0 < lo <= hi) or not np.isfinite(hi):
        return []
    if hi / lo < 1.0 + 1e-9:
        return [lo]
    span = float(np.log10(hi) - np.log10(lo))
    gap = span / max_ticks

    def thin(candidates):
        kept = []
        for v in candidates:
            if lo <= v <= hi and all(abs(np.log10(v) - np.log10(k)) >= gap for k in kept):
                kept.append(v)
        return sorted(kept)

    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    order = (1, 2, 5, 3, 4, 6, 7, 8, 9)
    ticks = thin([float(f"{m}e{d}") for m in order for d in decades])
    if len(ticks) >= 3:
        return ticks
    from matplotlib import ticker

    even = [float(f"{v:.6g}") for v in ticker.MaxNLocator(nbins=5).tick_values(lo, hi)]
    return thin(sorted(set(ticks) | set(even), key=lambda v: (v not in ticks, v)))


def distinct_colors(n: int) -> list:
    """n distinguishable colors: tab10, then tab20, then a sampled colormap."""
    from matplotlib import colormaps

    if n <= 10:
        return [f"C{i}" for i in range(n)]
    if n <= 20:
        cmap = colormaps["tab20"]
        return [cmap(i) for i in range(n)]
    cmap = colormaps["viridis"]
    return [cmap(i / max(1, n - 1)) for i in range(n)]
