"""Config-driven runs: the run directory, chunked training with checkpoints, resume, reports.

A run directory holds::

    config.toml     the resolved config (every key, defaults filled in)
    metrics.csv     one row per epoch per member
    summary.json    final / best / test metrics, best and stop epoch, halted, wall time, versions
    curves.png      loss and accuracy vs epoch (one panel per member group for sweeps)
    gradients.png   with ``[diagnostics] enabled``: per-layer gradient norm vs epoch and by layer
    activations.png with ``[diagnostics] enabled``: saturated / dead units per layer vs epoch
    checkpoints/    the whole training state, every ``output.checkpoint_every`` epochs and at
                    the end (``checkpoints/group-<i>/`` when a sweep has several groups)

Training runs in chunks of epochs (a chunk is one call of the compiled run; chunked and
unchunked runs are bitwise equal). Between chunks the runner saves checkpoints and honours
Ctrl-C: the first interrupt finishes the current chunk, saves a checkpoint and exits with 130.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import jax
import numpy as np

import fnn
from fnn.experiment import checkpoint, report
from fnn.engine import parallel
from fnn.experiment import config as config_mod
from fnn.experiment import build as exp
from fnn.engine.trainer import summarize

CONFIG_FILE = "config.toml"


class UsageError(ValueError):
    """Bad input (arguments, run directory state): the CLI exits with status 2."""


class Interrupted(Exception):
    """Ctrl-C was honoured after saving a checkpoint: the CLI exits with status 130."""


# ---------------------------------------------------------------------------------------------
# Run directory
# ---------------------------------------------------------------------------------------------
def run_dir_for(cfg, out: Optional[str]) -> Path:
    """``--out`` if given, else ``output.dir / (output.name or the config file's stem)``."""
    if out:
        return Path(out)
    name = cfg.output.name or (Path(cfg.source).stem if cfg.source else "run")
    return Path(cfg.output.dir) / name


def check_run_dir(run_dir: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse to touch a non-empty run directory unless --overwrite or --resume (exit 2)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run directory {str(run_dir)!r} exists and is not a directory")
    non_empty = run_dir.is_dir() and any(run_dir.iterdir())
    if resume:
        if not non_empty or not (run_dir / CONFIG_FILE).is_file():
            raise UsageError(f"--resume: {str(run_dir)!r} holds no run to resume (no {CONFIG_FILE})")
        return
    if non_empty and not overwrite:
        raise UsageError(
            f"run directory {str(run_dir)!r} is not empty; pass --overwrite to replace it or "
            "--resume to continue it"
        )


def check_resume_config(run_dir: Path, cfg) -> None:
    """The config of a resumed run must equal the saved one (output.* aside)."""
    saved = config_mod.from_dict(config_mod.parse_toml((run_dir / CONFIG_FILE).read_text()),
                                 source=str(run_dir / CONFIG_FILE))
    a, b = config_mod.to_dict(saved), config_mod.to_dict(cfg)
    for d in (a, b):  # where and how a run executes may change between sessions
        d.pop("output", None), d.pop("parallel", None)
    fa, fb = config_mod._flatten(a), config_mod._flatten(b)
    diff = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
    if diff:
        shown = ", ".join(f"{k} ({fa.get(k)!r} -> {fb.get(k)!r})" for k in diff[:3])
        raise UsageError(f"--resume: the config differs from {run_dir / CONFIG_FILE}: {shown}")


# ---------------------------------------------------------------------------------------------
# Progress bar
# ---------------------------------------------------------------------------------------------
class ProgressBar:
    """A tqdm bar over epochs fed from inside the compiled run (or nothing when quiet)."""

    def __init__(self, total: int, desc: str, *, enabled: bool):
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=True,
                                dynamic_ncols=True, mininterval=0.2, file=sys.stderr)
            except ImportError:  # pragma: no cover - tqdm is a CLI extra
                self.bar = None

    def __call__(self, epoch, metrics) -> None:
        if self.bar is None:
            return
        e = int(epoch)
        self.bar.update(max(0, e - self.bar.n))
        shown = {}
        for k in ("train_loss", "val_loss", "val_accuracy"):
            if k in metrics and np.isfinite(float(metrics[k])):
                shown[k.replace("accuracy", "acc")] = f"{float(metrics[k]):.4g}"
        self.bar.set_postfix(shown, refresh=False)

    def start_at(self, epoch: int) -> None:
        if self.bar is not None:
            self.bar.update(epoch)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------
# Training a group
# ---------------------------------------------------------------------------------------------
def chunk_size(cfg) -> int:
    """Epochs per compiled call: ``checkpoint_every``, else a divisor of the epochs near 1/5."""
    total = cfg.training.epochs
    if cfg.output.checkpoint_every:
        return min(cfg.output.checkpoint_every, total)
    target = max(1, total // 5)
    return max(d for d in range(1, target + 1) if total % d == 0)


class _InterruptFlag:
    """First SIGINT sets a flag (honoured at the next chunk); a second one aborts."""

    def __init__(self):
        self.set = False
        self._old = None

    def __enter__(self):
        if threading_main():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        print("\ninterrupt: finishing the current chunk and saving a checkpoint "
              "(Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _concat(history, new):
    new = {k: np.asarray(v) for k, v in new.items()}
    if history is None:
        return new
    return {k: np.concatenate([history[k], new[k]], axis=-1) for k in new}


def traced_names(cfg, group) -> Optional[tuple]:
    """Hyperparameters a group traces: the defaults plus those its sweep varies."""
    if not group.traced:
        return None
    hp = exp.hparams_of(group.config)
    default = ("learning_rate",) + tuple(n for n in hp._fields[1:] if float(getattr(hp, n)) != 0)
    return tuple(dict.fromkeys(default + tuple(group.traced)))


def checkpoint_dir(run_dir: Path, group_index: int, num_groups: int) -> Path:
    """``checkpoints/``, or ``checkpoints/group-<i>/`` when a sweep has several groups."""
    return run_dir / "checkpoints" / (f"group-{group_index}" if num_groups > 1 else "")


def initial_state(group, trainer):
    """(first TrainState, hyperparameters) of a group: a vmapped sweep, or one run."""
    hp = exp.group_hparams(group)
    if len(group.members) > 1:
        return trainer.init_sweep(exp.member_keys(group.seeds), hp), hp
    hp = {k: float(v[0]) for k, v in hp.items()}
    return trainer.init(jax.random.key(group.seeds[0]), hp), hp


def train_group(group, trainer, ckpt_dir: Path, *, resume: bool, quiet: bool,
                interrupt: _InterruptFlag, config_text: str):
    """Train one group (one compiled program) with its already built ``trainer``.

    Returns:
      (state, history, seconds) with state and history as host (NumPy) copies.
    """
    gcfg = group.config
    batched = len(group.members) > 1
    main = parallel.is_main_process()
    bar = ProgressBar(gcfg.training.epochs, group.title if batched else "train",
                      enabled=gcfg.output.progress and not quiet and main)
    trainer.progress = bar if bar.bar is not None else None  # read when the run is traced
    state, hp = initial_state(group, trainer)
    history, epoch = None, 0
    if resume:
        path = checkpoint.latest(ckpt_dir)
        if path is not None:
            state, history, meta = checkpoint.load(path, state)
            state = trainer._place(state, shard=batched)
            history = {k: np.asarray(v) for k, v in history.items()} if history else None
            epoch = int(meta["epoch"])
            bar.start_at(epoch)
    total, chunk = gcfg.training.epochs, chunk_size(gcfg)
    t0 = time.perf_counter()
    try:
        while epoch < total:
            n = min(chunk, total - epoch)
            state, h = trainer.run(state, hp, epochs=n, batched=batched)
            history = _concat(history, parallel.to_host(h))
            epoch += n
            every = gcfg.output.checkpoint_every
            if interrupt.set or (every and epoch % every == 0) or epoch == total:
                host_state = parallel.to_host(state)  # a collective on multi-process runs
                if main:
                    checkpoint.save(ckpt_dir, host_state, history, epoch=epoch,
                                    config_text=config_text, meta={"group": group.title},
                                    keep=gcfg.output.keep_checkpoints)
            if interrupt.set and epoch < total:
                bar.close()
                raise Interrupted(f"interrupted at epoch {epoch}/{total}; checkpoint saved in "
                                  f"{ckpt_dir}; continue with --resume")
    finally:
        bar.close()
    return parallel.to_host(state), history, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------------
def _member(tree, i, batched):
    return jax.tree.map(lambda a: a[i], tree) if batched else tree


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
        st = _member(state, j, batched)
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
            test = trainer.evaluate(st.params, dataset.x_test, dataset.y_test)
            s.update({f"test_{k}": v for k, v in test.items()})
        out.append(s)
    return out


def environment() -> dict:
    dev = jax.devices()[0]
    return {
        "fnn_version": fnn.__version__, "jax_version": jax.__version__,
        "python": platform.python_version(), "platform": dev.platform,
        "device": getattr(dev, "device_kind", str(dev)), "device_count": jax.device_count(),
        "machine": platform.machine(),
    }


SUMMARY_COLUMNS = ("member", "epochs_trained", "final_train_loss", "final_val_loss",
                   "final_val_accuracy", "test_loss", "test_accuracy", "best_epoch", "halted")


# ---------------------------------------------------------------------------------------------
# The whole command
# ---------------------------------------------------------------------------------------------
def run(cfg, *, out=None, overwrite=False, resume=False, quiet=False, grid=None, seeds=None,
        echo=print) -> dict:
    """Train every member of ``cfg`` (one run, or a sweep) and write the run directory.

    Every input is validated before anything is written; the run directory is created only
    when data, network and trainer have been built.

    Returns:
      the summary dict (also written to summary.json).
    Raises:
      UsageError / ValueError: bad input (exit 2).  Interrupted: Ctrl-C (exit 130).
    """
    if cfg.data.path:  # saved absolute, so evaluate / predict work from any directory
        cfg = cfg.replace("data.path", str(Path(cfg.data.path).resolve()))
    run_dir = run_dir_for(cfg, out)
    spec = parallel_spec(cfg)
    parallel.initialize(spec)  # multi-process runs: join before any other JAX work
    main = parallel.is_main_process()
    quiet = quiet or not main
    if main:
        check_run_dir(run_dir, overwrite=overwrite, resume=resume)
        if cfg.output.plots:  # matplotlib's ~0.6 s import overlaps compilation and training
            report.prefetch_matplotlib()
    if resume:
        check_resume_config(run_dir, cfg)
    mesh = parallel.make_mesh(spec.devices)
    groups = exp.plan(cfg, grid, seeds)
    dataset = exp.load_dataset(cfg)
    built = []  # (dataset, trainer) per group, built before writing: errors surface now
    for g in groups:
        parallel.check_divisible(mesh, batch_size=g.config.training.batch_size,
                                 members=len(g.members))
        data_g = dataset if g.config.data == cfg.data else exp.load_dataset(g.config)
        built.append((data_g, exp.build_trainer(g.config, data_g, traced=traced_names(cfg, g),
                                                mesh=mesh)))
    config_text = config_mod.to_toml(cfg if grid is None else dataclasses.replace(cfg, sweep=tuple(grid)))
    parallel.check_same_config(config_mod.to_toml(dataclasses.replace(
        cfg, parallel=config_mod.ParallelConfig(), sweep=tuple(grid or cfg.sweep))))
    if main:
        if overwrite and run_dir.exists() and not resume:
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            report.atomic_write_text(run_dir / CONFIG_FILE, config_text)
    members, histories, labels, plot_groups = [], [], [], []
    t0 = time.perf_counter()
    samples = 0
    with _InterruptFlag() as interrupt:
        for gi, (g, (data_g, trainer)) in enumerate(zip(groups, built)):
            state, history, _ = train_group(
                g, trainer, checkpoint_dir(run_dir, gi, len(groups)), resume=resume,
                quiet=quiet, interrupt=interrupt, config_text=config_text)
            ms = member_summaries(g.config, g, trainer, state, history, data_g)
            samples += sum(m["epochs_trained"] for m in ms) * data_g.num_train
            start = len(labels)
            members.extend(ms)
            labels.extend(g.labels)
            batched = len(g.members) > 1
            for j in range(len(g.members)):
                histories.append({k: (v[j] if batched else v) for k, v in history.items()})
            plot_groups.append((g.title, list(range(start, len(labels)))))
    wall = time.perf_counter() - t0
    summary = {
        "config": cfg.source, "run_dir": str(run_dir), "dataset": cfg.data.name,
        "task": dataset.task, "num_train": dataset.num_train,
        "epochs": cfg.training.epochs, "members": members,
        "wall_time_s": wall, "samples_per_s": samples / wall if wall > 0 else None,
        **environment(),
    }
    if len(members) == 1:
        summary.update({k: v for k, v in members[0].items() if k not in ("member", "group")})
    if not main:  # only process 0 writes the run directory
        return summary
    stacked = _stack(histories)
    report.write_metrics_csv(run_dir / "metrics.csv", stacked if len(histories) > 1 else histories[0],
                             member_labels=labels if len(histories) > 1 else None)
    report.write_summary(run_dir / "summary.json", summary)
    if cfg.output.plots:
        ok = report.plot_curves(run_dir / "curves.png",
                                stacked if len(histories) > 1 else histories[0],
                                member_labels=labels if len(histories) > 1 else None,
                                groups=plot_groups if len(histories) > 1 else None,
                                title=Path(cfg.source).stem if cfg.source else None)
        if not ok and not quiet:
            echo("note: matplotlib is not installed; curves.png skipped "
                 "(pip install 'fnn[cli]' to get plots)")
        if ok and cfg.diagnostics.enabled:
            from fnn.experiment import diagnostic_plots as report_diagnostics

            kw = dict(member_labels=labels if len(histories) > 1 else None,
                      groups=plot_groups if len(histories) > 1 else None,
                      title=Path(cfg.source).stem if cfg.source else None)
            diag_hist = stacked if len(histories) > 1 else histories[0]
            report_diagnostics.plot_gradients(run_dir / "gradients.png", diag_hist, **kw)
            report_diagnostics.plot_activations(run_dir / "activations.png", diag_hist, **kw)
    if not quiet:
        echo(results_table(cfg, members))
        echo(f"run directory: {run_dir}  ({wall:.1f} s, {summary['samples_per_s']:.3g} samples/s"
             " incl. compilation)")
    return summary


def parallel_spec(cfg) -> parallel.ParallelSpec:
    """``[parallel]`` of the config, completed from the FNN_* environment variables."""
    p = cfg.parallel
    return parallel.spec_from_env(parallel.ParallelSpec(
        devices=p.devices, coordinator=p.coordinator, num_processes=p.num_processes,
        process_id=p.process_id, timeout=p.timeout))


def _stack(histories: list[dict]) -> dict:
    # Groups may differ in their keys (per-layer diagnostics of networks of different depths):
    # a key missing from a member's history is NaN there.
    keys = list(dict.fromkeys(k for h in histories for k in h))

    def column(h, k):
        if k in h:
            return np.asarray(h[k])
        return np.full(np.shape(next(iter(h.values()))), np.nan)

    return {k: np.stack([column(h, k) for h in histories]) for k in keys}


def results_table(cfg, members: list[dict]) -> str:
    """The final summary table, sorted by the monitored metric for sweeps."""
    monitor = cfg.early_stopping.monitor
    key = f"best_{monitor}"
    rows = list(members)
    if len(rows) > 1 and all(key in m for m in rows):
        rows.sort(key=lambda m: (-m[key] if monitor.endswith("accuracy") else m[key]))
    cols = [c for c in SUMMARY_COLUMNS if any(c in m for m in rows)]
    if len(rows) > 1 and key in rows[0]:
        cols.insert(1, key)
    if any(m.get("stopped_early") for m in rows):
        cols.append("stop_epoch")
    rows = [{**m, "best_epoch": m.get("best_epoch", m.get(f"best_epoch_by_{monitor}"))} for m in rows]
    return report.format_table(rows, cols)


# ---------------------------------------------------------------------------------------------
# Loading a finished run (evaluate / predict)
# ---------------------------------------------------------------------------------------------
def load_run(run_dir, *, before_models=None):
    """(config, dataset, [(group, trainer, state)]) of a finished run directory.

    ``before_models(cfg, dataset)``, if given, is called before any network is built or
    compiled, so that other input (e.g. the file to predict) is checked first.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise UsageError(f"{str(run_dir)!r} is not a run directory (no {CONFIG_FILE})")
    cfg = config_mod.from_dict(config_mod.parse_toml((run_dir / CONFIG_FILE).read_text()),
                               source=str(run_dir / CONFIG_FILE))
    dataset = exp.load_dataset(cfg)
    if before_models is not None:
        before_models(cfg, dataset)
    groups = exp.plan(cfg)
    loaded = []
    for gi, g in enumerate(groups):
        ckpt_dir = checkpoint_dir(run_dir, gi, len(groups))
        path = checkpoint.latest(ckpt_dir)
        if path is None:
            raise UsageError(f"{str(run_dir)!r}: no checkpoint in {ckpt_dir}")
        trainer = exp.build_trainer(g.config, dataset, traced=traced_names(cfg, g))
        state, _, _ = checkpoint.load(path, initial_state(g, trainer)[0])
        loaded.append((g, trainer, state))
    return cfg, dataset, loaded
