"""What a finished run reports: per-member summaries, the results table, the environment."""

from __future__ import annotations

import platform

import jax
import numpy as np

from fnn.version import __version__
from fnn.engine import summarize
from fnn.experiment import memory
from fnn.util.table import format_table


def member_of(tree, i: int, batched: bool):
    """Member ``i`` of a sweep's stacked pytree (the tree itself for a single run)."""
    return jax.tree.map(lambda a: a[i], tree) if batched else tree


def best_position(entries: list[dict], positions: list[int], monitor: str) -> int:
    """The position (in ``positions``) of the best member by ``best_<monitor>``.

    Args:
      entries: the members' summary dicts (``summary.json``'s ``members``).
      positions: the indices of ``entries`` to choose among.
      monitor: ``early_stopping.monitor`` (max for accuracies, min otherwise).
    Returns:
      an index into ``positions`` (0 when a member lacks the metric).
    """
    key = f"best_{monitor}" if all(f"best_{monitor}" in entries[i] for i in positions) \
        else "best_val_loss"
    values = [entries[i].get(key) for i in positions]
    if any(v is None for v in values):
        return 0
    return int(np.argmax(values) if monitor.endswith("accuracy") else np.argmin(values))


def best_epoch_metrics(history: dict, monitor: str) -> tuple[int, dict]:
    """(1-based best epoch, metrics at it) by the monitored metric among trained epochs."""
    trained = np.asarray(history.get("trained", np.ones_like(history[monitor], bool)), bool)
    values = np.where(trained, np.asarray(history[monitor], np.float64), np.nan)
    if np.all(np.isnan(values)):
        return 0, {}
    i = int(np.nanargmax(values) if monitor.endswith("accuracy") else np.nanargmin(values))
    return i + 1, {k: float(v[i]) for k, v in history.items() if k != "trained"}


def member_summaries(cfg, group, trainer, state, history, dataset) -> list[dict]:
    batched = len(group.members) > 1
    monitor = cfg.early_stopping.monitor
    if monitor not in history:
        monitor = "val_loss"
    out = []
    for j, label in enumerate(group.labels):
        st = member_of(state, j, batched)
        h = {k: (v[j] if batched else v) for k, v in history.items()}
        s = {"member": label, "group": group.title, "seed": group.seeds[j]}
        s.update({k: v[j] for k, v in group.hparams.items()})
        s.update(summarize(st, h))
        best_epoch, best = best_epoch_metrics(h, monitor)
        s["best_epoch_by_" + monitor] = best_epoch
        # the documented fields, also without early stopping (best epoch: by the monitor)
        s.setdefault("best_epoch", best_epoch)
        s.setdefault("stopped_early", False)
        s.setdefault("stop_epoch", None)
        s.update({f"best_{k}": v for k, v in best.items()})
        if dataset.x_test is not None:
            test = trainer.evaluate(st.params, dataset.x_test, dataset.y_test, state=st.net_state,
                                    chunk=memory.eval_chunk(trainer.net))
            s.update({f"test_{k}": v for k, v in test.items()})
        out.append(s)
    return out


def environment() -> dict:
    dev = jax.devices()[0]
    return {
        "fnn_version": __version__, "jax_version": jax.__version__,
        "python": platform.python_version(), "platform": dev.platform,
        "device": getattr(dev, "device_kind", str(dev)), "device_count": jax.device_count(),
        "machine": platform.machine(),
    }


SUMMARY_COLUMNS = ("member", "epochs_trained", "final_train_loss", "final_val_loss",
                   "final_val_accuracy", "final_val_exact_match", "test_loss", "test_accuracy",
                   "test_exact_match", "best_epoch", "halted")


def stack_histories(histories: list[dict]) -> dict:
    """Members' histories as (members, epochs) arrays.

    Groups may differ in their keys (per-layer diagnostics of networks of different depths) and
    in their length (a ``--grid training.epochs=10,20`` sweep): a key missing from a member's
    history is NaN there, and a shorter history is padded with NaN (``trained`` with False)
    after its last epoch.
    """
    keys = list(dict.fromkeys(k for h in histories for k in h))
    epochs = max(int(np.shape(next(iter(h.values())))[-1]) for h in histories)

    def column(h, k):
        n = int(np.shape(next(iter(h.values())))[-1])
        fill = False if k == "trained" else np.nan
        v = np.asarray(h[k]) if k in h else np.full((n,), fill)
        if v.dtype.kind not in "fb":
            v = v.astype(np.float64)
        pad = np.full((epochs - n,), fill, v.dtype)
        return np.concatenate([v, pad])

    return {k: np.stack([column(h, k) for h in histories]) for k in keys}


def results_table(cfg, members: list[dict]) -> str:
    """The final summary table, sorted by the monitored metric for sweeps.

    ``final_*`` columns are the last trained epoch's; ``best_<monitor>`` (and ``best_epoch``)
    the best epoch's, whose parameters the checkpoint holds when ``restore_best`` is on.
    """
    monitor = cfg.early_stopping.monitor
    key = f"best_{monitor}"
    rows = list(members)
    if len(rows) > 1 and all(key in m for m in rows):
        rows.sort(key=lambda m: (-m[key] if monitor.endswith("accuracy") else m[key]))
    cols = [c for c in SUMMARY_COLUMNS if any(c in m for m in rows)]
    if key in rows[0]:  # the saved model is the best epoch's: show it beside the last epoch's
        cols.insert(1, key)
    if any(m.get("stopped_early") for m in rows):
        cols.append("stop_epoch")
    rows = [{**m, "best_epoch": m.get("best_epoch", m.get(f"best_epoch_by_{monitor}"))} for m in rows]
    return format_table(rows, cols)
