"""Validation of a whole config: raw dict -> :class:`Config`, and the checks across keys.

Contract: :func:`from_dict` reports every problem in one pass, one line each with its full
dotted key: unknown sections and keys (with "did you mean"), wrong types, out-of-range values
and names (:func:`~.values.check_value`), missing required keys, then the cross-key checks of
:func:`cross_check` (loss/output pairings, list lengths, file paths, optimizer arguments,
schedule boundaries, and the step-count rule: epochs × steps per epoch must stay below 2**31,
the engine's int32 step counter, where the data size is known from the config). It raises
:class:`ConfigError` or returns a valid Config; it never raises anything else for a raw dict
a TOML file can produce.
"""

from __future__ import annotations

import dataclasses
import os

from fnn.optim import names as optim_names
from fnn.data.names import SYNTHETIC_SETS
from fnn.engine.early_stopping import EarlyStopping
from fnn.nn import names as nn_names
from fnn.experiment.config.errors import ConfigError, describe, suggest
from fnn.experiment.config.resolve import data_facts, resolved_loss, resolved_output
from fnn.experiment.config.schema import (
    SECTIONS,
    SUBSECTIONS,
    Config,
    all_keys,
    section_fields,
)
from fnn.experiment.config.tomlio import flatten
from fnn.experiment.config.values import check_value

STEP_LIMIT = 2**31  # the engine's step counter is int32


def build_section(cls, raw, prefix: str, errors: list[str]):
    if not isinstance(raw, dict):
        errors.append(f"{prefix}: {describe(raw)}; expected a table [{prefix}]")
        return cls() if not any(f.metadata.get("required") for f in section_fields(cls).values()) else None
    fields = section_fields(cls)
    subs = {k[len(prefix) + 1:]: v for k, v in SUBSECTIONS.items() if k.startswith(prefix + ".")}
    kwargs = {}
    for key, value in raw.items():
        full = f"{prefix}.{key}"
        if key in subs:
            kwargs[key] = build_section(subs[key], value, full, errors)
            continue
        if key not in fields:
            errors.append(f"{full}: unknown key{suggest(key, [*fields, *subs])}")
            continue
        norm, err = check_value(full, value, fields[key])
        if err:
            errors.append(err)
        else:
            kwargs[key] = norm
    for name, f in fields.items():
        if f.metadata.get("required") and name not in kwargs and name not in raw:
            errors.append(f"{prefix}.{name}: missing required key")
    try:
        return cls(**{k: v for k, v in kwargs.items() if v is not None or k in fields})
    except TypeError:  # pragma: no cover - a sub-section failed
        return None


def build_sweep(raw, errors: list[str]) -> tuple:
    if not isinstance(raw, dict):
        errors.append(f"sweep: {describe(raw)}; expected a table [sweep] of key = [values]")
        return ()
    keys = all_keys()
    grid = []
    for key, values in flatten(raw).items():
        full = f"sweep.{key}"
        if key not in keys:
            errors.append(f"{full}: unknown key{suggest(key, keys)}; expected a config key such"
                          " as optimizer.learning_rate")
            continue
        if not isinstance(values, list) or not values:
            errors.append(f"{full}: {describe(values)}; expected a non-empty list of values")
            continue
        normed = []
        for v in values:
            norm, err = check_value(key, v, keys[key])
            if err:
                errors.append(f"sweep.{err}")
            else:
                normed.append(norm)
        grid.append((key, tuple(normed)))
    return tuple(grid)


def from_dict(raw: dict, *, source: str = "") -> Config:
    """Validate a raw (TOML-shaped) dict into a :class:`Config`.

    Raises:
      ConfigError: every problem found, one line each.
    """
    errors: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError([f"config: expected a table, got {type(raw).__name__}"], source)
    sections = {}
    for key, value in raw.items():
        if key in SECTIONS:
            sections[key] = build_section(SECTIONS[key], value, key, errors)
        elif key == "sweep":
            sections["sweep"] = build_sweep(value, errors)
        else:
            errors.append(f"{key}: unknown section{suggest(key, [*SECTIONS, 'sweep'])}")
    if "data" not in raw:
        errors.append("data.name: missing required key (add a [data] section)")
    model = raw.get("model")
    if isinstance(model, dict) and model.get("layers"):
        both = [k for k in ("hidden", "activation", "initializer") if k in model]
        if both:
            errors.append(f"model.{both[0]}: set together with model.layers; a [[model.layers]]"
                          " stack replaces hidden / activation / initializer (give one or the other)")
    if not errors:
        cfg = Config(**sections, source=source)
        errors.extend(cross_check(cfg))
        if not errors:
            return cfg
    raise ConfigError(errors, source)


def cross_check(cfg: Config) -> list[str]:
    """Checks that involve several keys (pairings, lengths, file paths)."""
    errors = []
    loss, output = resolved_loss(cfg), resolved_output(cfg)
    lo = nn_names.LOSSES[loss]  # resolved_loss: a registry name
    if lo.output is not None and output != lo.output:
        errors.append(f"model.output: {output!r} cannot be used with loss.name {loss!r}; "
                      f"{loss} requires output = {lo.output!r}")
    acts = cfg.model.activation
    if isinstance(acts, tuple) and len(acts) != len(cfg.model.hidden):
        errors.append(f"model.activation: {len(acts)} names for {len(cfg.model.hidden)} hidden "
                      f"layers {list(cfg.model.hidden)}; expected one name or "
                      f"{len(cfg.model.hidden)}")
    names = acts if isinstance(acts, tuple) else (acts,)
    if "softmax" in names:
        errors.append("model.activation: 'softmax' is only valid as model.output")
    if cfg.data.name in ("csv", "npz") and not cfg.data.path:
        errors.append(f"data.path: missing; data.name = {cfg.data.name!r} needs the file's path")
    if cfg.data.name in ("csv", "npz") and cfg.data.path and not os.path.isfile(cfg.data.path):
        errors.append(f"data.path: {cfg.data.path!r} does not exist or is not a file")
    errors.extend(_step_errors(cfg))
    if cfg.model.precision != "full" and cfg.model.dtype != "float32":
        errors.append(f"model.precision: {cfg.model.precision!r} with model.dtype ="
                      f" {cfg.model.dtype!r}; expected model.dtype = 'float32' (mixed precision"
                      f" keeps float32 master parameters)")
    errors.extend(_init_errors(cfg.model))
    if cfg.training.batch_size % cfg.training.accumulate:
        errors.append(f"training.accumulate: {cfg.training.accumulate}; expected a divisor of"
                      f" training.batch_size = {cfg.training.batch_size} (each micro-batch has"
                      f" batch_size / accumulate rows)")
    if cfg.data.name in ("fashion_mnist", "mnist") and cfg.data.path and not os.path.isdir(
            cfg.data.path):
        errors.append(f"data.path: {cfg.data.path!r} is not a directory of IDX files")
    accepted = optim_names.OPTIMIZERS[cfg.optimizer.name]
    for name in ("momentum", "b1", "b2", "eps", "decay", "centered"):
        if getattr(cfg.optimizer, name) is not None and name not in accepted:
            errors.append(f"optimizer.{name}: not an argument of optimizer {cfg.optimizer.name!r};"
                          f" it accepts: {', '.join(p for p in accepted if p != 'mask')}")
    sch = cfg.optimizer.schedule
    if list(sch.boundaries) != sorted(set(sch.boundaries)):
        errors.append(f"optimizer.schedule.boundaries: {list(sch.boundaries)}; expected strictly "
                      "increasing epochs")
    if sch.warmup_epochs >= cfg.training.epochs and sch.warmup_epochs and \
            not cfg.training.iterations:
        errors.append(f"optimizer.schedule.warmup_epochs: {sch.warmup_epochs}; expected fewer "
                      f"than training.epochs = {cfg.training.epochs}")
    if len(set(cfg.training.seeds)) != len(cfg.training.seeds):
        errors.append(f"training.seeds: {list(cfg.training.seeds)}; expected distinct seeds")
    # The rule is the engine's (EarlyStopping.check_task); here it is decided early where the
    # dataset's task is known from its name (the built-in regression sets).
    regression_set = SYNTHETIC_SETS.get(cfg.data.name, ("",))[0] == "regression"
    try:
        EarlyStopping(monitor=cfg.early_stopping.monitor).check_task(
            classification=lo.classification or not regression_set, loss=loss)
    except ValueError as err:
        errors.append(str(err))
    errors.extend(_step_count_errors(cfg))
    for key, values in cfg.sweep:
        if key in ("training.seed", "training.seeds"):
            errors.append(f"sweep.{key}: use training.seeds (or --seeds N) to sweep seeds")
        try:
            for v in values:
                cross_check_value(cfg, key, v)
        except ConfigError as err:
            errors.extend(f"sweep.{e}" for e in err.errors)
    return errors


def _init_errors(m) -> list[str]:
    """model.init_from / init_layers / init_member: the spec's syntax, and no init_* without
    a source."""
    from fnn.experiment import layer_selection

    if not m.init_from:
        unused = [f"model.{k}: {getattr(m, k)!r} has no effect without model.init_from (a run"
                  f" directory to start from)" for k, d in (("init_layers", "all"),
                                                              ("init_member", ""))
                  if getattr(m, k) != d]
        return unused
    err = layer_selection.spec_error(m.init_layers)
    return [err] if err else []


def cross_check_value(cfg: Config, key: str, value) -> None:
    """Re-run the cross checks with one key changed (used for sweep values)."""
    changed = cfg.replace(key, value)
    changed = dataclasses.replace(changed, sweep=())
    errs = cross_check(changed)
    if errs:
        raise ConfigError(errs)


TOKEN_DATA = ("text", "adder")  # fnn.data.TOKEN_NAMES: trained by steps on random windows


def _step_errors(cfg: Config) -> list[str]:
    """Step-based runs (training.iterations > 0) and token data go together; their keys."""
    d, t, sch = cfg.data, cfg.training, cfg.optimizer.schedule
    errors = []
    tokens = d.name in TOKEN_DATA
    # (an empty data.path is refused when the data are loaded: configs/char_gpt.toml is
    # complete but for the file, which comes from --set data.path=...)
    if d.name == "text" and d.path and not os.path.isfile(d.path):
        errors.append(f"data.path: {d.path!r} does not exist or is not a file")
    if d.block_size is not None and d.name == "adder" and d.block_size != 3 * (d.digits or 2):
        errors.append(f"data.block_size: {d.block_size}; the adder's windows are 3 × digits ="
                      f" {3 * (d.digits or 2)} ids (leave it unset)")
    for key in ("block_size", "digits"):
        if getattr(d, key) is not None and not tokens:
            errors.append(f"data.{key}: set for data.name = {d.name!r}; it applies to token data"
                          f" ({', '.join(TOKEN_DATA)})")
    if d.digits is not None and d.name == "text":
        errors.append("data.digits: set for data.name = 'text'; it applies to the adder")
    if tokens and not t.iterations:
        errors.append(f"training.iterations: 0 with data.name = {d.name!r}; expected a number of"
                      " steps > 0 (token data trains by steps on random windows)")
    if t.iterations and not tokens:
        errors.append(f"training.iterations: {t.iterations} with data.name = {d.name!r}; step-"
                      f"based runs draw windows of token data ({', '.join(TOKEN_DATA)}); use"
                      " training.epochs")
    if tokens and not cfg.model.layers:
        errors.append(f"model.layers: empty; data.name = {d.name!r} needs a [[model.layers]]"
                      " stack starting with an embedding layer")
    if t.iterations and t.iterations % t.eval_interval:
        errors.append(f"training.eval_interval: {t.eval_interval}; expected a divisor of"
                      f" training.iterations = {t.iterations}")
    if sch.warmup_steps and not t.iterations:
        errors.append(f"optimizer.schedule.warmup_steps: {sch.warmup_steps} in an epoch-based"
                      " run; use warmup_epochs (or set training.iterations)")
    if sch.warmup_epochs and t.iterations:
        errors.append(f"optimizer.schedule.warmup_epochs: {sch.warmup_epochs} in a step-based"
                      " run; use warmup_steps")
    if t.iterations and sch.warmup_steps >= t.iterations:
        errors.append(f"optimizer.schedule.warmup_steps: {sch.warmup_steps}; expected fewer"
                      f" than training.iterations = {t.iterations}")
    if t.iterations and sch.boundaries and sch.boundaries[-1] >= t.iterations:
        errors.append(f"optimizer.schedule.boundaries: {list(sch.boundaries)}; in a step-based"
                      f" run they are steps, expected below training.iterations ="
                      f" {t.iterations}")
    return errors


def _step_count_errors(cfg: Config) -> list[str]:
    """epochs × steps per epoch (and the schedule's boundaries in steps) below 2**31.

    Steps per epoch are ceil(rows / batch_size), known here where the config gives the data
    size (synthetic sets, MNIST files; CSV/NPZ files are read only for runs of 1,000 epochs or
    more). The builder's own ``batch_size <= rows`` check is not repeated: a batch larger than
    the data counts as one step per epoch.
    """
    t = cfg.training
    if t.iterations:
        return []  # steps are counted directly (int32 range by the schema)
    if t.epochs < 1000 and all(b < 1000 for b in cfg.optimizer.schedule.boundaries):
        return []  # under 2**31 for any data set of up to 2**21 batches per epoch
    rows = data_facts(cfg).rows
    if rows is None:
        return []  # decided by the engine once the training split is known
    steps = max(1, -(-rows // t.batch_size))
    errors = []
    if t.epochs * steps >= STEP_LIMIT:
        errors.append(f"training.epochs: {t.epochs} epochs of {steps} steps ({rows} examples, "
                      f"batch {t.batch_size}) is {t.epochs * steps} steps; expected fewer than "
                      f"2**31 = {STEP_LIMIT} (the step counter is int32)")
    for b in cfg.optimizer.schedule.boundaries:
        if b * steps >= STEP_LIMIT:
            errors.append(f"optimizer.schedule.boundaries: epoch {b} is step {b * steps}; "
                          f"expected fewer than 2**31 = {STEP_LIMIT} steps")
            break
    return errors
