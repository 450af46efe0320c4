"""``lr_find.png``: the range test's loss against the learning rate (log axis), the smoothed
curve, the suggested rate and the divergence marked, and the ★ variant's constant-rate runs
on the same axes. matplotlib is optional: :func:`png_bytes` returns None without it."""

from __future__ import annotations

import io

import numpy as np

from fnn.experiment.plot_style import import_matplotlib, log_ticks, wrap_title


def _ylim(result) -> tuple[float, float]:
    """A y range that shows the smoothed fall and the start of the divergence, not the
    blow-up nor single noisy batches: from the lowest considered value (batches, smoothed,
    constant runs) to a little above the highest smoothed one before the divergence."""
    stop = max(2, result.stop)
    smoothed = result.smoothed[:stop][np.isfinite(result.smoothed[:stop])]
    top = float(smoothed.max())
    seen = [smoothed, result.losses[:stop]]
    if result.constant_final is not None:
        seen.append(result.constant_final)
    seen = np.concatenate(seen)
    seen = seen[np.isfinite(seen) & (seen <= top)]
    lo = float(seen.min())
    span = max(top - lo, 1e-6 * max(1.0, abs(top)))
    return lo - 0.06 * span, top + 0.12 * span


def png_bytes(result, *, title: str = ""):
    """The figure of a :class:`~fnn.experiment.lr_find.LRFindResult` as PNG bytes (None when
    matplotlib is missing)."""
    mpl = import_matplotlib()
    if mpl is None:
        return None
    Figure, FigureCanvasAgg, ticker, _ = mpl
    fig = Figure(figsize=(7.2, 5.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    lrs, stop = result.lrs, result.stop
    ax.plot(lrs, result.losses, color="C0", alpha=0.3, linewidth=1.0,
            label="loss of each batch")
    ax.plot(lrs[:stop], result.smoothed[:stop], color="C0", linewidth=2.0,
            label="smoothed (EMA, β = 0.98)")
    if stop < len(lrs):
        ax.plot(lrs[stop:], result.smoothed[stop:], color="0.55", linewidth=1.5,
                linestyle="--", label="smoothed, past the divergence")
        ax.axvline(lrs[stop], color="0.4", linestyle=":", linewidth=1.2,
                   label=f"diverged: {lrs[stop]:.1e} (smoothed > 4× min)")
    lo, hi = _ylim(result)
    if result.constant_lrs is not None:
        final = result.constant_final
        ok = np.isfinite(final) & (final <= hi)
        steps = len(lrs)
        ax.plot(result.constant_lrs[ok], final[ok], "o-", color="C1", markersize=6,
                linewidth=1.0, label=f"★ {len(final)} constant rates, {steps} steps each "
                "(one vmapped run): final smoothed loss")
        if (~ok).any():
            ax.plot(result.constant_lrs[~ok], np.full(int((~ok).sum()), hi - 0.02 * (hi - lo)),
                    "^", color="C3", markersize=7, linestyle="none",
                    label="★ constant rate that diverged (off the top)")
    if result.suggestion is not None:
        j = int(np.argmin(np.abs(np.log(lrs) - np.log(result.suggestion))))
        ax.axvline(result.suggestion, color="C2", linestyle="--", linewidth=1.2)
        ax.plot([result.suggestion], [result.smoothed[j]], "*", color="C2", markersize=16,
                markeredgecolor="black", markeredgewidth=0.6, linestyle="none",
                label=f"suggested: {result.suggestion:.1e} (steepest descent)")
    ax.set_xscale("log")
    pad = (lrs[-1] / lrs[0]) ** 0.015  # the markers at the bounds drawn whole
    ax.set_xlim(lrs[0] / pad, lrs[-1] * pad)
    ax.xaxis.set_major_locator(ticker.FixedLocator(log_ticks(lrs[0], lrs[-1], max_ticks=8)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.0e}" if v < 1e-2
                                                      else f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylim(lo, hi)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.grid(True, alpha=0.3, which="major")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    ax.set_title(wrap_title(title or "learning-rate range test", 6.6, 10), fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", pad_inches=0.1)
    return buf.getvalue()
