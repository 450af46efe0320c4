"""Host-side summaries of finished runs: final and best metrics, stop and halt epochs."""

from __future__ import annotations

import jax
import numpy as np

from fnn.engine.state import TrainState


def summarize(state: TrainState, history: dict) -> dict:
    """Host-side summary of one run: final/best metrics, best and stop epochs, halted."""
    hist = {k: np.asarray(v) for k, v in history.items()}
    trained = hist.get("trained", np.ones_like(next(iter(hist.values())), bool)).astype(bool)
    last = int(np.nonzero(trained)[0][-1]) if trained.any() else -1
    out = {"epochs_trained": int(trained.sum()), "steps": int(state.step)}
    for k, v in hist.items():
        if k != "trained" and last >= 0:
            out[f"final_{k}"] = float(v[last])
    out["halted"] = bool(state.halted)
    out["halted_step"] = int(state.halted_step) if bool(state.halted) else None
    # False only when an update itself made the parameters non-finite under nan_guard="halt"
    # (or anything under "off"): a caller must not use them.
    out["params_finite"] = bool(all(np.isfinite(np.asarray(leaf)).all()
                                    for leaf in jax.tree.leaves(state.params)))
    if state.early is not None:
        out["best_epoch"] = int(state.early.best_epoch)
        out["best_value"] = float(state.early.best)
        out["stopped_early"] = bool(state.early.stopped)
        out["stop_epoch"] = int(state.early.stop_epoch) if bool(state.early.stopped) else None
    return out


def members_summary(states: TrainState, history: dict) -> list[dict]:
    """:func:`summarize` for each member of a sweep."""
    n = int(states.step.shape[0])
    return [summarize(jax.tree.map(lambda a: a[i], states),
                      {k: v[i] for k, v in history.items()}) for i in range(n)]
