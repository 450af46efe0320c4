"""``fnn compare``: one metric of several runs (and of every sweep member) in one figure and one
table.

Reads only ``metrics.csv`` and ``summary.json`` of each run directory (no JAX, no data). Every
(run, member) is a line in the figure, labelled ``run: member``; the table has each one's final
and best value of the metric (best = lowest, or highest for accuracies), the best epoch, the test
loss / accuracy where the run has a test split, the epochs trained, and the run's wall time (a
sweep's members share one run, so they share its wall time). With one sweep run, its members are
compared.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from fnn.experiment.plot_style import log_ticks
from fnn.util.table import format_table
from fnn.experiment.config.errors import suggest
from fnn.experiment.members import RunDirError
from fnn.experiment.history import short_name
from fnn.experiment.rundir import check_output, write_output

DEFAULT_OUT = "compare.png"
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}  # --out's suffix picks the format


class Series(NamedTuple):
    """One member of one run: ``run`` and ``member`` labels, epochs (1-based) and values."""

    run: str
    member: str
    epochs: np.ndarray
    values: np.ndarray
    summary: dict


def _read_run(run_dir: Path) -> tuple[list[dict], dict]:
    metrics, summary = run_dir / "metrics.csv", run_dir / "summary.json"
    if not run_dir.is_dir() or not metrics.is_file() or not summary.is_file():
        raise RunDirError(f"{str(run_dir)!r} is not a finished run directory (no metrics.csv "
                          "or summary.json)")
    try:
        with open(metrics, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        info = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as err:
        why = (str(err).splitlines() or [type(err).__name__])[0]
        raise RunDirError(f"{str(run_dir)!r}: unreadable run files ({why})") from None
    return _checked_rows(rows, metrics), _checked_summary(info, summary)


def _checked_rows(rows: list, path: Path) -> list[dict]:
    """metrics.csv as fnn writes it: a member and an epoch column, every row complete, epochs
    integers and values numbers (a truncated or edited file is one line naming it)."""
    if not rows:
        raise RunDirError(f"{str(path)!r}: no rows; expected the per-epoch metrics fnn writes")
    missing = [c for c in ("member", "epoch") if c not in rows[0]]
    if missing:
        raise RunDirError(f"{str(path)!r}: no {' or '.join(repr(c) for c in missing)} column; "
                          "expected the header fnn writes (member,epoch,...)")
    for line, r in enumerate(rows, start=2):
        if None in r or any(v is None for v in r.values()):
            raise RunDirError(f"{str(path)!r}: line {line} has {'more' if None in r else 'fewer'}"
                              " fields than the header (a truncated or edited file)")
        try:
            int(r["epoch"])
            for k, v in r.items():
                if k not in ("member", "epoch") and v not in ("", "nan"):
                    float(v)
        except ValueError:
            raise RunDirError(f"{str(path)!r}: line {line} holds a value that is not a number "
                              "(a truncated or edited file)") from None
    return rows


def _checked_summary(info, path: Path) -> dict:
    """summary.json as fnn writes it: an object whose ``members`` is a list of objects."""
    if not isinstance(info, dict):
        raise RunDirError(f"{str(path)!r}: a JSON {type(info).__name__}; expected the object "
                          "fnn writes")
    members = info.get("members")
    if members is not None and not (isinstance(members, list) and all(
            isinstance(m, dict) for m in members)):
        raise RunDirError(f"{str(path)!r}: 'members' is not a list of objects")
    return info


def _names(run_dirs: Sequence[Path]) -> list[str]:
    """Directory names, or longer path tails where names repeat."""
    names = [p.name or str(p) for p in run_dirs]
    if len(set(names)) < len(names):
        names = ["/".join(p.resolve().parts[-2:]) for p in run_dirs]
    return names


def collect(run_dirs: Sequence, metric: Optional[str] = None) -> tuple[str, list[Series]]:
    """(metric, series of every run and member). Default metric: ``val_loss``.

    Raises:
      ValueError: not a finished run directory, or a metric some run lacks (one line).
    """
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise RunDirError("compare: give at least one RUN_DIR")
    runs = [(p, *_read_run(p)) for p in paths]
    if metric is None:
        metric = "val_loss" if all(rows and "val_loss" in rows[0] for _, rows, _ in runs) \
            else "train_loss"
    series = []
    for name, (p, rows, info) in zip(_names(paths), runs):
        columns = [k for k in (rows[0] if rows else {}) if k not in ("member", "epoch")]
        if metric not in columns:  # the progress bar's short names: val_acc = val_accuracy
            metric = next((c for c in columns if short_name(c) == metric), metric)
        if not rows or metric not in rows[0]:
            raise RunDirError(f"--metric {metric}: not in {p / 'metrics.csv'}"
                              f"{suggest(metric, columns)} (has: {', '.join(columns)})")
        entries = info.get("members") or [info]
        by_member: dict = {}
        for r in rows:
            by_member.setdefault(r["member"], []).append(r)
        for i, (label, rs) in enumerate(by_member.items()):
            s = next((e for e in entries if str(e.get("member")) == label),
                     entries[i] if i < len(entries) else {})
            s = {**{k: v for k, v in info.items() if k != "members"}, **s}
            vals = np.asarray([float(r[metric]) if r[metric] not in ("", "nan") else np.nan
                               for r in rs])
            series.append(Series(name, label if len(by_member) > 1 else "", np.asarray(
                [int(r["epoch"]) for r in rs]), vals, s))
    return metric, series


def _number(v):
    """A summary field shown only if it is a number (an edited summary.json shows nothing)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def table(metric: str, series: Sequence[Series]) -> str:
    """The terminal table (see the module docstring)."""
    high = metric.endswith("accuracy")
    rows = []
    for s in series:
        finite = np.where(np.isfinite(s.values))[0]
        best = (finite[np.argmax(s.values[finite])] if high else
                finite[np.argmin(s.values[finite])]) if finite.size else None
        rows.append({
            "run": s.run, "member": s.member or "-",
            f"final_{metric}": float(s.values[finite[-1]]) if finite.size else None,
            f"best_{metric}": float(s.values[best]) if best is not None else None,
            "best_epoch": int(s.epochs[best]) if best is not None else None,
            "test_loss": _number(s.summary.get("test_loss")),
            "test_accuracy": _number(s.summary.get("test_accuracy")),
            "epochs": int(s.epochs[-1]) if s.epochs.size else 0,
            "wall_s": _number(s.summary.get("wall_time_s")),
        })
    cols = [c for c in rows[0] if any(r[c] is not None for r in rows)]
    return format_table(rows, cols)


def plot(path, metric: str, series: Sequence[Series]) -> bool:
    """One axes, one line per (run, member), saved in the format of ``path``'s suffix
    (:data:`FORMATS`); False when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib import colormaps, ticker
    except ImportError:
        return False
    n = len(series)
    runs = list(dict.fromkeys(s.run for s in series))
    legend_out = n > 4
    fig = Figure(figsize=(7.0 + (3.0 if legend_out else 0), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    styles = ["-", "--", "-.", ":"]
    for i, s in enumerate(series):
        color = cmap(i if n <= 20 else i / max(1, n - 1))
        label = f"{s.run}: {s.member}" if s.member else s.run
        ax.plot(s.epochs, s.values, styles[runs.index(s.run) % 4], color=color, linewidth=1.5,
                marker="o" if s.epochs.size <= 3 else None, markersize=3, label=label)
    finite = np.concatenate([s.values[np.isfinite(s.values)] for s in series])
    if metric.endswith("loss") and finite.size and np.all(finite > 0) and \
            finite.max() / finite.min() > 5:
        ax.set_yscale("log")  # labels kept apart (minor ticks unlabelled: 0.09 next to 0.1)
        ax.yaxis.set_major_locator(ticker.FixedLocator(log_ticks(finite.min(),
                                                                        finite.max())))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_ylabel(metric.replace("_", " ") + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{metric}: " + (" vs ".join(runs) if len(runs) <= 4 else f"{len(runs)} runs")
                 + (f" ({n} members)" if n > len(runs) else ""), fontsize=11)
    if legend_out:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  ncol=1 if n <= 20 else 2, title="run: member", title_fontsize=8)
    else:
        ax.legend(fontsize=8, loc="best", title="run: member" if n > len(runs) else "run",
                  title_fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format=FORMATS.get(Path(path).suffix.lower(), "png"), dpi=110)
    write_output([(path, buf.getvalue())])
    return True


def compare(run_dirs: Sequence, *, metric: Optional[str] = None, out=None) -> tuple[str, Optional[Path]]:
    """The table text and the figure's path (None when matplotlib is missing).

    Args:
      run_dirs: finished run directories.  metric: a metrics.csv column (default val_loss).
      out: the figure, .png, .pdf or .svg (default ``compare.png`` in the current directory);
        never a file of a run directory (:func:`fnn.experiment.rundir.check_output`).
    """
    path = Path(out) if out else Path(DEFAULT_OUT)
    check_output(path, "--out")
    if path.suffix.lower() not in FORMATS:
        raise RunDirError(f"--out: {str(path)!r}; expected a file name ending in "
                          f"{', '.join(FORMATS)} (the suffix picks the format)")
    metric, series = collect(run_dirs, metric)
    text = table(metric, series)
    return text, (path if plot(path, metric, series) else None)
