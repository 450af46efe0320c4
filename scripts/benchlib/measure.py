"""What a worker measures: epoch times (after a warm-up), peak memory, time to an accuracy."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss where /proc is absent), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:  # pragma: no cover
        pass
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


def timed_epochs(run_epoch, repeats: int, sync=lambda: None) -> dict:
    """Warm-up epoch (compilation included), then ``repeats`` timed epochs."""
    t0 = time.perf_counter()
    run_epoch(0)
    sync()
    first = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        run_epoch(r + 1)
        sync()
        times.append(time.perf_counter() - t0)
    return {"first_call_s": first, "times_s": times}


def interleaved(runs: dict, repeats: int, sync) -> tuple[dict, dict]:
    """Each zero-argument callable once (first call), then ``repeats`` rounds of all of them in
    turn, so they see the same machine load. Returns (name -> first s, name -> [s])."""
    first, times = {}, {k: [] for k in runs}
    for k, fn in runs.items():
        t0 = time.perf_counter()
        sync(fn())
        first[k] = time.perf_counter() - t0
    for _ in range(repeats):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            sync(fn())
            times[k].append(time.perf_counter() - t0)
    return first, times


def time_to_target(spec: dict, records: list, t_end: float, **extra) -> dict:
    """A time-to-accuracy result from per-epoch ``{"t", "epoch", "val_accuracy"}`` records,
    times counted from the worker's launch (``spec["t_launch"]``)."""
    t0 = spec["t_launch"]
    reached = next((r for r in records if r["val_accuracy"] >= spec["target"]), None)
    return {
        "epochs_log": [{"epoch": r["epoch"], "t_s": r["t"] - t0, "val_accuracy": r["val_accuracy"]}
                       for r in records],
        "time_to_target_s": (reached["t"] - t0) if reached else None,
        "epoch_reached": reached["epoch"] if reached else None,
        "final_val_accuracy": records[-1]["val_accuracy"] if records else None,
        "wall_s": t_end - t0,
        **extra,
    }
