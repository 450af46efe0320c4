"""``fnn summary CONFIG|RUN_DIR`` and the table ``fnn train`` prints before the first epoch:
:meth:`fnn.Sequential.summary` of the configured network, with the run's optimizer and batch.

A sweep whose groups differ in network, optimizer or batch (static keys such as
``model.layers`` or ``optimizer.name``) gets one table per distinct group, titled with the
group; members that differ only in traced values (learning rate, ...) share one table.
Nothing is trained or compiled (shapes only; see :mod:`fnn.nn.summary`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from fnn.experiment import build as exp
from fnn.experiment import members as members_mod
from fnn.experiment.rundir import UsageError


def summaries(groups, nets) -> list[tuple[str, object]]:
    """[(group title or "", NetworkSummary)] of each distinct (network, optimizer, batch).

    Args:
      groups: from :func:`fnn.experiment.build.plan`.  nets: each group's built network (a
        :class:`fnn.Sequential`: every network a config builds is one).
    """
    out, seen = [], []
    for g, net in zip(groups, nets):
        c = g.config
        key = (net, c.optimizer, c.training.batch_size)
        if key in seen:
            continue
        seen.append(key)
        optimizer = exp.optimizer_factory(c, 1)(exp.hparams_of(c))
        out.append((g.title if len(groups) > 1 else "",
                    net.summary(optimizer=optimizer, batch_size=c.training.batch_size)))
    return out


def text(items) -> str:
    """The tables, one after another (each headed by its group when a sweep has several)."""
    parts = []
    for title, s in items:
        parts.append((f"{title}\n" if title else "") + str(s))
    return "\n\n".join(parts)


def for_config(cfg, dataset=None) -> list[tuple[str, object]]:
    """:func:`summaries` of a validated config (its data loaded for the input shape unless
    ``dataset`` is given)."""
    groups = exp.plan(cfg)
    dataset = exp.load_dataset(cfg) if dataset is None else dataset
    nets = [exp.build_net(g.config, dataset if g.config.data == cfg.data
                          else exp.load_dataset(g.config)) for g in groups]
    return summaries(groups, nets)


def for_run_dir(run_dir) -> list[tuple[str, object]]:
    """:func:`summaries` of a run directory's config (``preprocessing.json`` gives the input
    shape, so no data is loaded)."""
    cfg = members_mod.read_config(run_dir)
    groups = exp.plan(cfg)
    specs = members_mod.data_specs(run_dir, cfg, groups)
    return summaries(groups, [exp.build_net(g.config, spec) for g, spec in zip(groups, specs)])


def for_source(source, overrides=()) -> tuple[object, list[tuple[str, object]]]:
    """(config, summaries) of a config file (with ``--set`` overrides) or a run directory."""
    from fnn.experiment import config as config_mod

    p = Path(source)
    if p.is_dir():
        if overrides:
            raise UsageError("fnn summary: --set applies to a config file, not to a run "
                             f"directory ({str(p)!r})")
        return members_mod.read_config(p), for_run_dir(p)
    cfg = config_mod.load(source, list(overrides))
    return cfg, for_config(cfg)


def banner(cfg) -> Optional[str]:
    """The first line above the tables: the config and the optimizer."""
    return (f"summary: {cfg.source or 'config'}  optimizer {cfg.optimizer.name}  "
            f"batch {cfg.training.batch_size}")
