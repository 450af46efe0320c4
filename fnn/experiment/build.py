"""From a validated :class:`~fnn.config.Config` to data, network, optimizer and compiled runs.

This is the thin layer between the config file and the engine (:mod:`fnn.train`): it never
computes a formula, it only wires names to objects.

A sweep is split into *groups*: members that differ only in traced keys (learning rate, weight
decay, L1/L2, drop rate, seed) share one compiled program (a vmap); members that differ in a
static key (architecture, optimizer name, batch size, ...) form separate groups, compiled once
each.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.experiment import config as config_mod
from fnn.experiment.config import Config
from fnn.data.validate import DataError
from fnn.experiment import layer_specs, memory
from fnn.nn.layers import Dense
from fnn.nn.mlp import MLP
from fnn.nn.sequential import Sequential
from fnn.engine import EarlyStopping, HParams, Loop, Monitor, Numerics, Trainer
from fnn.engine.windows import Windows
from fnn.experiment.optimizer_config import build_schedule, optimizer_factory, rounds  # noqa: F401

TOKEN_DATA = ("text", "adder")  # fnn.data.TOKEN_NAMES: sequence data trained by steps

_DATA_OPTION_KEYS = ("n_samples", "noise", "num_classes", "val_fraction", "test_fraction",
                     "standardize")


def load_dataset(cfg: Config):
    """The configured dataset (:func:`fnn.data.load`). Raises ValueError on bad data."""
    from fnn import data

    d = cfg.data
    options = {k: getattr(d, k) for k in _DATA_OPTION_KEYS if getattr(d, k) is not None}
    if d.name in ("csv", "npz"):
        options["path"] = d.path
        if d.target and d.name == "csv":
            options["target"] = d.target
    elif d.name in ("fashion_mnist", "mnist"):
        if d.path:
            options["path"] = d.path
        if d.mirror:
            options["mirror"] = d.mirror
    elif d.name == "text":
        if not d.path:
            raise DataError("data.path: missing; data.name = 'text' needs the UTF-8 file's path"
                            " (e.g. --set data.path=input.txt)")
        options = {"path": d.path, **({"block_size": d.block_size} if d.block_size else {}),
                   **({"val_fraction": d.val_fraction} if d.val_fraction is not None else {})}
    if d.name == "adder":
        options.pop("standardize", None)
        if d.digits is not None:
            options["digits"] = d.digits
    if d.name != "text":
        options["seed"] = d.seed
    try:
        return data.load(d.name, **options)
    except ValueError as err:  # name the config key: "path=..." -> "data.path=..."
        msg = str(err)
        key = msg.partition("=")[0]
        prefix = "data." if key.isidentifier() and hasattr(d, key) else "data: "
        raise DataError(prefix + msg) from None


def num_outputs(cfg: Config, dataset) -> int:
    """Output units: one sigmoid unit for two classes with a sigmoid output, else k (or the
    regression target width)."""
    if dataset.task == "regression":
        return dataset.num_outputs
    k = int(dataset.num_classes)
    if k == 2 and config_mod.resolved_output(cfg) == "sigmoid":
        return 1
    return k


def input_shape(cfg: Config, dataset) -> tuple:
    """One example's shape as the network takes it: (H, W, 1) images for a stack that starts
    spatially (a conv or pool layer), else (features,)."""
    if cfg.model.layers and dataset.image_shape is not None and \
            layer_specs.takes_images(cfg.model.layers):
        return (*dataset.image_shape, 1)
    return (dataset.num_features,)


def build_net(cfg: Config, dataset):
    """The network of ``model.*`` sized by the data.

    ``model.layers`` set: a :class:`fnn.Sequential` of those layers plus the output dense layer
    (one unit per class or target, activation ``model.output``), its input shape from the data
    (:func:`input_shape`). Otherwise the MLP (features, *hidden, outputs).

    Raises:
      ValueError: a layer stack that does not fit the data, naming ``model.layers[i]``.
    """
    m = cfg.model
    if cfg.data.name in TOKEN_DATA:  # ids (T,) in, next-id probabilities (T, V) out
        vocab, block = int(dataset.num_classes), int(dataset.num_features)
        layers = layer_specs.build(m.layers, vocab_size=vocab, max_len=block) + (
            Dense(vocab, activation=config_mod.resolved_output(cfg)),)
        try:
            return Sequential(layers, input_shape=(block,), dtype=m.dtype)
        except ValueError as err:
            msg = str(err)
            raise ValueError("model." + msg if msg.startswith("layers[") else msg) from None
    if m.layers:
        layers = layer_specs.build(m.layers) + (
            Dense(num_outputs(cfg, dataset), activation=config_mod.resolved_output(cfg)),)
        try:
            return Sequential(layers, input_shape=input_shape(cfg, dataset), dtype=m.dtype)
        except ValueError as err:
            msg = str(err)
            if msg.startswith(f"layers[{len(layers) - 1}]"):
                msg = "model.layers (the output dense layer): " + msg.partition(":")[2].strip()
            elif msg.startswith("layers["):
                msg = "model." + msg
            raise ValueError(msg) from None
    return MLP(
        sizes=(dataset.num_features, *m.hidden, num_outputs(cfg, dataset)),
        activation=m.activation,
        output=config_mod.resolved_output(cfg),
        drop_rate=mlp_drop_rate(cfg),
        initializer=m.initializer or None,
        dtype=m.dtype,
    )


def mlp_drop_rate(cfg: Config) -> float:
    """The rate of the MLP's Dropout layers: ``regularization.drop_rate``, or, when a sweep
    varies it, its first nonzero value (the run's drop_rate hyperparameter then sets every
    member's rate); 0 (no Dropout layers: the plain tuple of dense dicts) otherwise."""
    swept = [v for k, values in cfg.sweep if k == "regularization.drop_rate" for v in values]
    rates = [cfg.regularization.drop_rate, *swept]
    return next((float(r) for r in rates if r), 0.0)


def hparams_of(cfg: Config) -> HParams:
    """The traced hyperparameters' values in ``cfg``.

    ``regularization.drop_rate`` is the MLP's dropout rate. For a ``[[model.layers]]`` stack a
    nonzero value (or a sweep over it) overrides every dropout layer's rate; 0 leaves each
    layer its own ``rate`` (drop_rate None).
    """
    rate = cfg.regularization.drop_rate
    if cfg.model.layers and not rate:
        rate = None
    return HParams(
        learning_rate=cfg.optimizer.learning_rate,
        weight_decay=cfg.optimizer.weight_decay,
        l1=cfg.regularization.l1,
        l2=cfg.regularization.l2,
        drop_rate=rate,
    )


def build_augment(cfg: Config, dataset):
    """The on-device augmentation of ``augmentation.*``, or None when all are off."""
    a = cfg.augmentation
    if not (a.noise_std or a.translate or a.hflip or a.rotate_deg):
        return None
    from fnn.data import Augment

    geometric = a.translate or a.hflip or a.rotate_deg
    if geometric and dataset.image_shape is None:
        raise ValueError(
            f"augmentation: translate/hflip/rotate_deg need image data; data.name = "
            f"{cfg.data.name!r} has no image shape"
        )
    return Augment(noise_std=a.noise_std, translate=a.translate, hflip=a.hflip,
                   rotate_deg=a.rotate_deg, image_shape=dataset.image_shape)


def build_early_stopping(cfg: Config) -> Optional[EarlyStopping]:
    e = cfg.early_stopping
    if not e.enabled:
        return None
    return EarlyStopping(monitor=e.monitor, patience=e.patience, min_delta=e.min_delta,
                         restore_best=e.restore_best)


def build_trainer(cfg: Config, dataset, *, traced=None, progress=None, mesh=None,
                  members: int = 1) -> Trainer:
    """The compiled run for ``cfg`` on ``dataset``.

    Args:
      cfg: a validated config.  dataset: from :func:`load_dataset`.
      traced: hyperparameter names to trace (sweeps); default: learning rate and nonzero ones.
      progress: a progress callback for :class:`~fnn.train.Trainer`.
      mesh: a device mesh (:func:`fnn.parallel.make_mesh`) or None.
      members: sweep members trained in this program (for the memory estimate).
    Raises:
      ValueError: a batch size larger than the training split, data that do not fit, a run
        whose estimated memory exceeds the limit (:mod:`fnn.experiment.memory`), etc.
    """
    t = cfg.training
    net = build_net(cfg, dataset)
    memory.check(cfg, net, members=members)
    windows = None
    if t.iterations:  # token rows; every round eval_interval steps on random windows
        windows = Windows(int(dataset.block_size), t.eval_interval, t.eval_iters,
                          int(dataset.answer_len))
        data = (dataset.train, dataset.val)
        steps = t.eval_interval
    else:
        steps = -(-dataset.num_train // t.batch_size)
        val = (dataset.x_val, dataset.y_val) if dataset.x_val is not None else (None, None)
        data = (dataset.x_train, dataset.y_train, *val)
    return Trainer(
        net, config_mod.resolved_loss(cfg), optimizer_factory(cfg, steps), data,
        loop=Loop(epochs=rounds(cfg), batch_size=t.batch_size, accumulate=t.accumulate,
                  early_stopping=build_early_stopping(cfg), windows=windows),
        numerics=Numerics(grad=t.grad, precision=cfg.model.precision, nan_guard=t.nan_guard,
                          flat_updates=t.flat_updates),
        monitor=Monitor(progress=progress, diagnostics=cfg.diagnostics.enabled),
        hparams=hparams_of(cfg), traced=traced, augment=build_augment(cfg, dataset), mesh=mesh,
    )


# ---------------------------------------------------------------------------------------------
# Sweeps: members and groups
# ---------------------------------------------------------------------------------------------
@dataclass
class Group:
    """Members sharing one compiled program.

    config: the group's config (static keys set).  title: e.g. "model.activation=sigmoid".
    members: indices into the whole sweep.  labels: one label per member.
    seeds: per-member seeds.  hparams: per-member traced values (dict name -> list).
    traced: names of the traced hyperparameters.
    """

    config: Config
    title: str
    members: list
    labels: list
    seeds: list
    hparams: dict
    traced: tuple


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict) and "type" in v:  # a [[model.layers]] table: dense(units=2)
        args = ",".join(f"{k}={_fmt(x)}" for k, x in v.items() if k != "type")
        return f"{v['type']}({args})"
    if isinstance(v, tuple):
        return ("+" if v and isinstance(v[0], dict) else "-").join(_fmt(x) for x in v)
    return str(v)


def _frozen(v):
    """A hashable stand-in for a config value (model.layers is a tuple of dicts)."""
    if isinstance(v, dict):
        return tuple((k, _frozen(x)) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return tuple(_frozen(x) for x in v)
    return v


def member_label(member: dict, grid, *, seeds_vary: bool) -> str:
    """A member's one name everywhere (summary, tables, legends, ``--member``): its swept values
    by their full config keys, e.g. ``optimizer.name=adam training.seed=1``."""
    parts = [f"{k}={_fmt(member[k])}" for k, _ in grid]
    if seeds_vary or not parts:
        parts.append(f"training.seed={member['training.seed']}")
    return " ".join(parts)


def plan(cfg: Config, grid=None, seeds=None) -> list[Group]:
    """Split the sweep (grid × seeds) into groups of one compiled program each.

    A config without a sweep and with one seed gives one group of one member.
    """
    members = config_mod.sweep_members(cfg, grid, seeds)
    grid = cfg.sweep if grid is None else grid
    static_keys = [k for k, _ in grid if k not in config_mod.TRACED_KEYS]
    traced_keys = [k for k, _ in grid if k in config_mod.TRACED_KEYS]
    groups: dict = {}
    for i, m in enumerate(members):
        skey = tuple((k, m[k]) for k in static_keys)
        groups.setdefault(_frozen(skey), (skey, []))[1].append(i)
    out = []
    # Every group's config carries the whole grid: what it varies decides its network's layout
    # (a sweep over the MLP's drop_rate needs its Dropout layers, see mlp_drop_rate).
    base = cfg if tuple(grid) == tuple(cfg.sweep) else dataclasses.replace(cfg, sweep=tuple(grid))
    for skey, idx in groups.values():
        gcfg = base
        for k, v in skey:
            gcfg = gcfg.replace(k, v)
        title = ", ".join(f"{k}={_fmt(v)}" for k, v in skey) or "all members"
        traced = tuple(config_mod.TRACED_KEYS[k] for k in traced_keys)
        hp = {config_mod.TRACED_KEYS[k]: [members[i][k] for i in idx] for k in traced_keys}
        labels = [member_label(members[i], grid, seeds_vary=len(
            set(m["training.seed"] for m in members)) > 1) for i in idx]
        out.append(Group(gcfg, title, idx, labels, [members[i]["training.seed"] for i in idx],
                         hp, traced))
    return out


def group_hparams(group: Group) -> dict:
    """The group's per-member traced values as arrays."""
    return {k: np.asarray(v) for k, v in group.hparams.items()}


def member_keys(seeds) -> jax.Array:
    """One PRNG key per member: ``jax.random.key(seed)``."""
    return jnp.stack([jax.random.key(int(s)) for s in seeds])


class FirstBatch(NamedTuple):
    """The first training batch of a config at the run's initial parameters.

    net: the built network.  params: its initial parameters (as the run's first state).
    x: (n, *net.input_shape) network inputs (stored images scaled by
    :func:`fnn.data.prepare_inputs`, as inside the train step).  y: (n,) labels or (n, K).
    loss: the resolved loss name.  drop_key: the dropout key (None without dropout).
    drop_rate, l1, l2: the config's regularization.
    """

    net: Any
    params: Any
    x: Any
    y: Any
    loss: str
    drop_key: Any
    drop_rate: float
    l1: float
    l2: float


def first_batch(cfg: Config, n: int) -> FirstBatch:
    """The first ``n`` training examples of ``cfg`` and its network at initial parameters
    (the key split of :meth:`fnn.engine.TrainState.create`): what ``fnn gradcheck`` and
    ``fnn inspect`` look at.

    Args:
      cfg: a validated config.  n: batch size (capped at the training split's size).
    Returns:
      :class:`FirstBatch`.
    """
    from fnn.data import prepare_inputs

    dataset = load_dataset(cfg)
    net = build_net(cfg, dataset)
    n = min(n, dataset.num_train)
    x = prepare_inputs(jnp.asarray(np.asarray(dataset.x_train[:n])), shape=net.input_shape,
                       dtype=jnp.dtype(net.dtype), keep_integers=net.integer_inputs)
    y = np.asarray(dataset.y_train[:n])
    init_key, drop_key = jax.random.split(jax.random.key(cfg.training.seed))
    r = cfg.regularization
    return FirstBatch(net, net.init(init_key), x, y, config_mod.resolved_loss(cfg),
                      drop_key if r.drop_rate > 0 else None, r.drop_rate, r.l1, r.l2)
