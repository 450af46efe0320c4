"""A config-driven run as a short pipeline: resolve, plan, build, train in chunks, report.

    run(cfg) = report(train(build(plan(resolve(cfg)))))

* :func:`resolve` — paths made absolute, the run directory chosen and checked, the processes of a
  multi-process run joined, the device mesh made; nothing is written.
* :func:`plan_run` — the sweep's groups (one compiled program each, :func:`fnn.experiment.build.plan`).
* :func:`build` — every group's data and trainer, and the resolved config text. Every input is
  validated here, so a bad one stops the run before the directory is created.
* :func:`train` — the directory is created, ``config.toml`` written, and each group trained in
  chunks with checkpoints between them (:mod:`fnn.experiment.chunks`).
* :func:`report` — ``metrics.csv``, ``summary.json``, the pictures, the terminal table.

Each step is a function of the previous step's result (:class:`Resolved`, :class:`Plan`,
:class:`Built`, :class:`Trained`). The run directory's layout is in :mod:`fnn.experiment.rundir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Optional


from fnn.engine import parallel
from fnn.experiment import build as exp
from fnn.experiment import (cpu_devices, curve_plots, extend, model_report, plot_style, report,
                            runlock, tensorboard_log)
from fnn.experiment import config as config_mod
from fnn.experiment.chunks import (InterruptFlag, Interrupted, traced_names,
                                   train_group)
from fnn.experiment.results import (SUMMARY_COLUMNS, environment, member_of, member_summaries,
                                    results_table, stack_histories)
from fnn.data.text import VOCAB_FILE
from fnn.experiment.rundir import (CONFIG_FILE, UsageError, adopt_legacy, check_resume_config,
                                   check_run_dir, checkpoint_dir, clear_run_dir, real_path, run_dir_for)
from fnn.util import fileio
from fnn.util.fileio import atomic_write_text

__all__ = ["run", "resolve", "plan_run", "build", "train", "report_run",
           "UsageError", "Interrupted", "CONFIG_FILE", "SUMMARY_COLUMNS", "member_of",
           "checkpoint_dir", "parallel_spec"]


class Resolved(NamedTuple):
    """A config ready to run: where it goes and on what."""

    cfg: Any
    run_dir: Path
    mesh: Any
    main: bool
    quiet: bool
    overwrite: bool
    resume: bool
    grid: Any
    seeds: Any
    inputs: tuple = ()  # the run's own files (config, data): never inside what it replaces
    lock: Optional[runlock.RunLock] = None  # held from here when the directory has one
    longer: Optional[tuple] = None  # (old, new) length of a finished run continued further


class Plan(NamedTuple):
    resolved: Resolved
    groups: list


class Built(NamedTuple):
    """Everything a run needs, built and validated; nothing written yet."""

    plan: Plan
    dataset: Any
    trainers: list  # (dataset, trainer) per group
    config_text: str
    starts: tuple = ()  # per group: an init_from.Start (model.init_from), or None


class Trained(NamedTuple):
    built: Built
    members: list      # per-member summary dicts
    histories: list    # per-member history dicts
    labels: list       # per-member labels
    plot_groups: list  # (group title, member indices)
    wall: float
    samples: int


def parallel_spec(cfg) -> parallel.ParallelSpec:
    """``[parallel]`` of the config, completed from the FNN_* environment variables."""
    p = cfg.parallel
    return parallel.spec_from_env(parallel.ParallelSpec(
        devices=p.devices, coordinator=p.coordinator, num_processes=p.num_processes,
        process_id=p.process_id, timeout=p.timeout))


def resolve(cfg, *, out=None, overwrite=False, resume=False, quiet=False, grid=None,
            seeds=None) -> Resolved:
    """Absolute data path, the checked run directory, joined processes, the mesh."""
    if cfg.data.path:  # saved absolute, so evaluate / predict work from any directory
        cfg = cfg.replace("data.path", str(Path(cfg.data.path).resolve()))
    if cfg.model.init_from:
        cfg = cfg.replace("model.init_from", str(Path(cfg.model.init_from).resolve()))
    run_dir = run_dir_for(cfg, out)
    if cfg.model.init_from and not resume:
        src, dst = real_path(Path(cfg.model.init_from)), real_path(run_dir)
        if src == dst or dst in src.parents:
            raise UsageError(f"model.init_from: {cfg.model.init_from!r} is inside the run "
                             f"directory {str(run_dir)!r}, which this run writes; train into "
                             f"another directory (--out)")
    spec = parallel_spec(cfg)
    cpu_devices.configure(cfg, len(config_mod.sweep_members(cfg, grid, seeds)))  # sweeps on CPUs
    parallel.initialize(spec)  # multi-process runs: join before any other JAX work
    main = parallel.is_main_process()
    inputs = tuple(Path(p) for p in (cfg.source, cfg.data.path) if p and Path(p).exists())
    lock = None
    if main and runlock.lock_exists(real_path(run_dir)):  # a running run: refused first
        lock = runlock.RunLock(real_path(run_dir), str(run_dir))
    try:
        if main:
            check_run_dir(run_dir, overwrite=overwrite, resume=resume, inputs=inputs)
            if cfg.output.plots:  # matplotlib's ~0.6 s import overlaps compilation and training
                plot_style.prefetch_matplotlib()
        longer = None
        if resume:
            ckpts = real_path(run_dir) / "checkpoints"
            saved = check_resume_config(run_dir, cfg, allowed=extend.LENGTH_KEYS)
            longer = extend.check(saved, cfg, run_dir, [ckpts, *sorted(ckpts.glob("group-*"))])
        if cfg.output.tensorboard:  # a missing extra: one line before anything is built or written
            tensorboard_log.require()
        mesh = parallel.make_mesh(spec.devices)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return Resolved(cfg, run_dir, mesh, main, quiet or not main, overwrite, resume, grid, seeds,
                    inputs, lock, longer)


def plan_run(r: Resolved) -> Plan:
    """The sweep's groups: members that share one compiled program."""
    return Plan(r, exp.plan(r.cfg, r.grid, r.seeds))


def build(p: Plan) -> Built:
    """Every group's dataset and trainer (errors surface here, before anything is written)."""
    r = p.resolved
    cfg = r.cfg
    dataset = exp.load_dataset(cfg)
    from fnn.experiment import checkpoint, init_from

    trainers, starts = [], []
    for gi, g in enumerate(p.groups):
        data_g = dataset if g.config.data == cfg.data else exp.load_dataset(g.config)
        mesh = r.mesh or cpu_devices.sweep_mesh(g.config, len(g.members),
                                                lambda: exp.build_net(g.config, data_g))
        parallel.check_divisible(mesh, batch_size=g.config.training.batch_size,
                                 members=len(g.members),
                                 accumulate=g.config.training.accumulate)
        show_progress = g.config.output.progress and not r.quiet
        trainers.append((data_g, exp.build_trainer(g.config, data_g, traced=traced_names(cfg, g),
                                                   mesh=mesh, progress=show_progress,
                                                   members=len(g.members))))
        resumed = r.resume and checkpoint.latest(
            checkpoint_dir(real_path(r.run_dir), gi, len(p.groups))) is not None
        # a resumed run starts from its checkpoint: the source is not read again
        starts.append(None if resumed else init_from.for_config(g.config, trainers[-1][1].net))
    swept = cfg if r.grid is None else dataclasses.replace(cfg, sweep=tuple(r.grid))
    config_text = config_mod.to_toml(swept)
    parallel.check_same_config(config_mod.to_toml(dataclasses.replace(
        cfg, parallel=config_mod.ParallelConfig(), sweep=tuple(r.grid or cfg.sweep))))
    return Built(p, dataset, trainers, config_text, tuple(starts))


@contextlib.contextmanager
def writing(b: Built) -> Iterator[None]:
    """The run directory, locked for this process, cleared (``--overwrite``) and holding the
    config; every file written inside it is recorded in its manifest.

    The lock is taken (if :func:`resolve` did not) once the directory exists, and the checks
    of :func:`resolve` run again under it: another run may have written it meanwhile. A write
    that fails (disk full) before any checkpoint exists removes what this run wrote (and the
    directory, if this run made it); with a checkpoint, the run stays resumable.
    """
    r = b.plan.resolved
    run_dir = real_path(r.run_dir)  # where the checks looked: old/fresh/.. is old
    if not r.main:  # only process 0 writes the run directory
        yield
        return
    created = not run_dir.exists()
    lock = r.lock
    try:
        if lock is None:
            run_dir.mkdir(parents=True, exist_ok=True)
            lock = runlock.RunLock(run_dir, str(r.run_dir))
            check_run_dir(r.run_dir, overwrite=r.overwrite, resume=r.resume, inputs=r.inputs)
    except BaseException:
        if lock is not None:
            lock.release(undo=True)
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise
    written: list[Path] = []

    def note(path: Path) -> None:
        written.append(path)
        runlock.record(run_dir, path)

    started = False
    try:
        with fileio.watch(run_dir, note):
            if r.resume:
                adopt_legacy(run_dir)
                if r.longer:  # the run's length grew: its config says so from now on
                    atomic_write_text(run_dir / CONFIG_FILE, b.config_text)
            else:
                if r.overwrite:
                    clear_run_dir(run_dir, inputs=r.inputs)
                # checkpoints/ first: a directory with a config always has one
                (run_dir / "checkpoints").mkdir(exist_ok=True)
                atomic_write_text(run_dir / CONFIG_FILE, b.config_text)
            vocab = getattr(b.dataset, "vocab", None)
            if vocab is not None:  # token data: what generate and predict read back
                vocab.save(run_dir / VOCAB_FILE)
            started = True
            yield
    except BaseException as err:
        resumable = r.resume or any(p.name.startswith("ckpt-") for p in written)
        if isinstance(err, OSError) and resumable:
            if isinstance(err, fileio.WriteError):
                err.strerror += (f"; the checkpoints written so far are kept in {r.run_dir} "
                                 "(free space, then continue with --resume)")
        elif not resumable and (isinstance(err, OSError) or not started):
            _remove_written(run_dir, written, created, lock)
        raise
    finally:
        if lock is not r.lock:
            lock.release()


def _remove_written(run_dir: Path, written: list, created: bool, lock) -> None:
    """Undo a run that failed before its first checkpoint: its files, its folders, and the
    directory itself if the run made it (a user's file there is kept)."""
    for path in written:
        with contextlib.suppress(OSError):
            path.unlink()
    for sub in ("tensorboard", "checkpoints"):
        top = run_dir / sub
        for root, _, files in sorted(os.walk(top, topdown=False)) if top.is_dir() else ():
            for name in files:
                if created and name.startswith("events.out.tfevents."):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(root, name))
            with contextlib.suppress(OSError):
                os.rmdir(root)
    if created:
        runlock.reset_manifest(run_dir)
        lock.release(undo=True)
        for d in (run_dir / runlock.HIDDEN, run_dir):
            with contextlib.suppress(OSError):
                d.rmdir()


def train(b: Built) -> Trained:
    """Train every group in chunks (checkpoints between them), inside :func:`writing`."""
    r = b.plan.resolved
    run_dir = real_path(r.run_dir)
    members, histories, labels, plot_groups = [], [], [], []
    t0 = time.perf_counter()
    samples = 0
    groups = b.plan.groups
    total = sum(len(g.members) for g in groups)
    with InterruptFlag() as interrupt:
        starts = b.starts or (None,) * len(groups)
        for gi, (g, (data_g, trainer)) in enumerate(zip(groups, b.trainers)):
            log = None
            if r.cfg.output.tensorboard:
                log = functools.partial(tensorboard_log.EpochLog, run_dir, g.labels,
                                        members=total)
            state, history, _ = train_group(
                g, trainer, checkpoint_dir(run_dir, gi, len(groups)), resume=r.resume,
                quiet=r.quiet, interrupt=interrupt, config_text=b.config_text, log=log,
                start=starts[gi])
            ms = member_summaries(g.config, g, trainer, state, history, data_g)
            samples += sum(m["epochs_trained"] for m in ms) * trainer.examples_per_epoch
            start = len(labels)
            members.extend(ms)
            labels.extend(g.labels)
            batched = len(g.members) > 1
            for j in range(len(g.members)):
                histories.append({k: (v[j] if batched else v) for k, v in history.items()})
            plot_groups.append((g.title, list(range(start, len(labels)))))
    return Trained(b, members, histories, labels, plot_groups, time.perf_counter() - t0, samples)


def report_run(t: Trained, *, echo: Callable = print) -> dict:
    """``metrics.csv``, ``summary.json`` and the pictures (process 0 only); the summary."""
    b = t.built
    r = b.plan.resolved
    cfg, run_dir, dataset = r.cfg, r.run_dir, b.dataset
    summary = {
        "config": cfg.source, "run_dir": str(run_dir), "dataset": cfg.data.name,
        "task": dataset.task, "num_train": dataset.num_train,
        "epochs": exp.rounds(cfg), "members": t.members,
        **({"iterations": cfg.training.iterations} if cfg.training.iterations else {}),
        "wall_time_s": t.wall, "samples_per_s": t.samples / t.wall if t.wall > 0 else None,
        **environment(), "member_devices": cpu_devices.member_devices(b.plan.groups, b.trainers)}
    start = next((s for s in b.starts if s is not None), None)
    if start is not None:
        summary["init_from"] = start.record()
    if len(t.members) == 1:
        summary.update({k: v for k, v in t.members[0].items() if k not in ("member", "group")})
    if not r.main:  # only process 0 writes the run directory
        return summary
    sweep = len(t.histories) > 1
    history = stack_histories(t.histories) if sweep else t.histories[0]
    labels = t.labels if sweep else None
    report.write_metrics_csv(run_dir / "metrics.csv", history, member_labels=labels)
    pictures = model_report.prepare(run_dir, cfg, dataset, summary)  # per-class accuracy
    report.write_summary(run_dir / "summary.json", summary)
    if not r.quiet:  # the table first: the pictures (about a second of matplotlib) come after
        echo(results_table(cfg, t.members))
        echo(f"run directory: {run_dir}  ({t.wall:.1f} s, {summary['samples_per_s']:.3g} "
             "samples/s incl. compilation)")
    pictures.draw()
    if cfg.output.plots:
        kw = dict(member_labels=labels, groups=t.plot_groups if sweep else None,
                  title=Path(cfg.source).stem if cfg.source else None)
        ok = curve_plots.plot_curves(run_dir / "curves.png", history, **kw)
        if not ok and not r.quiet:
            echo("note: matplotlib is not installed; curves.png skipped "
                 "(pip install 'fnn[cli]' to get plots)")
        if ok and cfg.diagnostics.enabled:
            from fnn.experiment import diagnostic_plots

            diagnostic_plots.plot_diagnostics(run_dir, history, [tr.net for _, tr in b.trainers],
                                              **kw)
    return summary


def run(cfg, *, out=None, overwrite=False, resume=False, quiet=False, grid=None, seeds=None,
        echo=print, init_from=None, layers=None, init_member=None) -> dict:
    """Train every member of ``cfg`` (one run, or a sweep) and write the run directory.

    Every input is validated before anything is written; the run directory is created only
    when data, network and trainer have been built, and it is locked for the whole run (a
    second run on it is refused: :mod:`fnn.experiment.runlock`).

    Args:
      init_from / layers / init_member: set ``model.init_from`` (a finished run directory to
        start from), ``model.init_layers`` (a layer spec, e.g. ":-1") and
        ``model.init_member``: fine-tuning (:mod:`fnn.experiment.init_from`); None keeps the
        config's.

    Returns:
      the summary dict (also written to summary.json).
    Raises:
      UsageError / ValueError: bad input (exit 2).  Interrupted: Ctrl-C (exit 130).
    """
    cfg = with_init(cfg, init_from, layers, init_member)
    resolved = resolve(cfg, out=out, overwrite=overwrite, resume=resume, quiet=quiet, grid=grid,
                       seeds=seeds)
    try:
        built = build(plan_run(resolved))
        if not resolved.quiet:
            echo(summary_text(built))
            for start in dict.fromkeys(s.describe() for s in built.starts if s is not None):
                echo(start)
        with writing(built):
            return report_run(train(built), echo=echo)
    finally:
        if resolved.lock is not None:
            resolved.lock.release()


def with_init(cfg, init_from=None, layers=None, init_member=None):
    """``cfg`` with the model.init_* keys given (None: kept), cross-checked (ConfigError)."""
    changes = {"model.init_from": init_from, "model.init_layers": layers,
               "model.init_member": init_member}
    changes = {k: str(v) for k, v in changes.items() if v is not None}
    if not changes:
        return cfg
    for key, value in changes.items():
        cfg = cfg.replace(key, value)
    errors = config_mod.cross_check(cfg)
    if errors:
        raise config_mod.ConfigError(errors, cfg.source)
    return cfg


def summary_text(b: Built) -> str:
    """The network summary of every distinct group (:mod:`fnn.experiment.model_summary`)."""
    from fnn.experiment import model_summary

    nets = [trainer.net for _, trainer in b.trainers]
    return model_summary.text(model_summary.summaries(b.plan.groups, nets))
