"""A sweep on a CPU, its members split over several CPU devices (``parallel.host_devices``).

XLA:CPU runs a vmapped sweep's batched products member by member on one device, so a sweep keeps
about one core of two busy. With the host's cores presented as separate CPU devices
(``jax_num_cpu_devices``, what ``XLA_FLAGS=--xla_force_host_platform_device_count`` does) and
the members' axis sharded over them, each device runs its share of the members on its own core.

Measured on a 2-core Xeon (BENCHMARKS.md, "Members over CPU devices"), the split pays where a
member's step has arithmetic enough to hide the extra per-step synchronisation: the
Fashion-MNIST MLP's 16-seed ``Trainer.sweep`` went from 0.76x to 0.95x the member-samples/s of
16 runs in a row, and ``fnn train configs/fashion_mnist.toml`` with 8 seeds ran in 0.87x the
wall; a 16-member sweep of a 16-16 net through ``fnn train`` ran 0.92x the wall at batch 512
but 1.15x (slower) at batch 64, and ``configs/sweep_lr.toml`` 1.0x. Hence the automatic rule
below: split when a member's parameters x batch rows reach :data:`AUTO_MIN_WORK`.

``parallel.host_devices``: 0 = automatic (the default), 1 = never, N = always, over N devices.

* :func:`configure`, before JAX's backends start (``fnn train`` calls it first thing): a run of
  more than one member on one process, with ``parallel.devices = 1`` and no device count of the
  user's own in ``XLA_FLAGS``, gets ``jax_num_cpu_devices`` = N (0: one per core). An unsplit
  program on the first of several CPU devices runs as it does on one (measured).
* :func:`sweep_mesh`, per compiled group: on the CPU backend with several CPU devices, the
  members' axis is split over the most devices that divide the group's members (a group of 12
  on 8 devices: 6). A group of one member, another backend, ``parallel.devices`` other than 1
  (the user's own mesh), or (automatic) a step below :data:`AUTO_MIN_WORK`: no split.

The split changes float32 rounding only: the members' results agree with the unsplit sweep's to
~1e-6 (tests/experiment/test_cpu_devices.py); resuming on the same machine is bitwise.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # the annotation only: JAX is imported where it is used
    import jax

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
# automatic split: a member's parameters x batch rows at least this (the Fashion-MNIST MLP's
# 535k x 128 = 68M gains; sweep_lr.toml's 4.5k x 64 = 0.29M does not)
AUTO_MIN_WORK = 1 << 22


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def wanted(cfg, members: int) -> int:
    """How many CPU devices a run of ``members`` members asks for (1: no split).

    Args:
      cfg: the config (``parallel``).  members: the run's members (grid × seeds).
    """
    p = cfg.parallel
    if members < 2 or p.devices != 1 or p.num_processes > 1 or p.host_devices == 1:
        return 1
    return p.host_devices or cores()  # 0: one device per core


def configure(cfg, members: int) -> int:
    """Ask JAX for :func:`wanted` CPU devices, before its backends start; returns the count
    asked for (1: nothing done). Leaves alone a device count the user put in ``XLA_FLAGS``
    and a process whose JAX backends are already running (then the devices are what they
    are)."""
    n = wanted(cfg, members)
    if n < 2 or DEVICE_COUNT_FLAG in os.environ.get("XLA_FLAGS", ""):
        return 1
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # the backends already started (a Python session that ran JAX)
        return 1
    return n


def sweep_mesh(cfg, members: int, net=None) -> Optional["jax.sharding.Mesh"]:
    """The mesh that splits a group of ``members`` over the CPU devices, or None.

    Args:
      cfg: the group's config.  members: the group's members.
      net: the group's network, or a callable that builds it (read only by the automatic rule).
    Returns:
      a 1-d mesh over the first k CPU devices, k the largest divisor of ``members`` not above
      the device count (and ``parallel.host_devices`` when set), k ≥ 2; else None.
    """
    if wanted(cfg, members) < 2:
        return None
    import jax

    from fnn.engine import parallel

    if jax.default_backend() != "cpu" or jax.process_count() > 1:
        return None
    if cfg.parallel.host_devices == 0 and work(net, cfg.training.batch_size) < AUTO_MIN_WORK:
        return None
    k = split(members, min(jax.device_count(), cfg.parallel.host_devices or jax.device_count()))
    return parallel.make_mesh(k) if k > 1 else None


def work(net, batch_size: int) -> int:
    """A member's step size for the automatic rule: parameters × batch rows (0 without a net).

    Args:
      net: a network, or a callable returning one.  batch_size: rows per step.
    """
    if net is None:
        return 0
    import jax

    net = net() if callable(net) else net  # networks are not callable; a builder is
    shapes = jax.eval_shape(net.init, jax.random.key(0))
    return batch_size * sum(int(a.size) for a in jax.tree.leaves(shapes))


def split(members: int, devices: int) -> int:
    """The most devices, at most ``devices``, that share ``members`` members evenly (16 on 2: 2;
    12 on 8: 6; 7 on 2: 1)."""
    return max(d for d in range(1, max(devices, 1) + 1) if members % d == 0)


def member_devices(groups, trainers) -> int:
    """The most devices any group's members were split over (1: none): ``summary.json``'s
    ``member_devices``.  groups: the plan's groups.  trainers: their (dataset, Trainer) pairs."""
    return max([1] + [t.mesh.devices.size for g, (_, t) in zip(groups, trainers)
                      if t.mesh is not None and len(g.members) > 1])
