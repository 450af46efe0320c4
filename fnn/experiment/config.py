"""Experiment configs: TOML -> validated, frozen dataclasses; ``--set`` overrides; TOML out.

One schema, declared once below (section dataclasses whose fields carry their type, range and
help text), drives validation, the ``--set`` overrides, the resolved ``config.toml`` written
with every run, and the README's table of keys (:func:`markdown_table`).

Validation reports every problem in one pass, each on one line with its full dotted key:
unknown keys (with "did you mean"), wrong types, out-of-range values, unknown names, missing
required keys, and TOML syntax errors with line and column. :class:`ConfigError` carries the list.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REQUIRED = object()

DATASETS = ("xor", "moons", "circles", "spirals", "blobs", "sine", "polynomial",
            "fashion_mnist", "mnist", "csv", "npz")
ACTIVATIONS = ("identity", "linear", "sigmoid", "relu", "leaky_relu", "tanh", "softmax")
LOSSES = ("mse", "binary_cross_entropy", "cross_entropy")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "nadam",
              "adamax", "lion")
SCHEDULES = ("constant", "step", "exponential", "linear", "cosine", "warmup_cosine", "one_cycle")
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal")

# Keys a sweep may vary inside one compiled program (traced), and the HParams field each feeds.
TRACED_KEYS = {
    "optimizer.learning_rate": "learning_rate",
    "optimizer.weight_decay": "weight_decay",
    "regularization.l1": "l1",
    "regularization.l2": "l2",
    "regularization.drop_rate": "drop_rate",
}


class ConfigError(ValueError):
    """One or more config problems; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str], source: str = ""):
        self.errors = list(errors)
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.errors) == 1:
            msg = f"{where}{self.errors[0]}"
        else:
            msg = f"{where}{len(self.errors)} problems:\n  " + "\n  ".join(self.errors)
        super().__init__(msg)


def opt(default, help: str, *, type: str, choices=None, min=None, max=None,
        min_open: bool = False, max_open: bool = False):
    """A schema field: default (or REQUIRED), help text, type name and constraints."""
    meta = dict(help=help, type=type, choices=choices, min=min, max=max, min_open=min_open,
                max_open=max_open, required=default is REQUIRED)
    if default is REQUIRED:
        return field(default=None, metadata=meta)
    if isinstance(default, list):
        return field(default_factory=lambda d=tuple(default): d, metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataConfig:
    name: str = opt(REQUIRED, "dataset: " + ", ".join(DATASETS), type="str", choices=DATASETS)
    path: str = opt("", "file (csv/npz) or directory of IDX files; empty: the standard lookup",
                    type="str")
    target: str = opt("", "csv: name of the target column (default: the last column)", type="str")
    n_samples: Optional[int] = opt(None, "synthetic sets: number of examples (default: the set's)",
                                   type="int?", min=1)
    noise: Optional[float] = opt(None, "synthetic sets: noise level (default: the set's)",
                                 type="float?", min=0)
    num_classes: Optional[int] = opt(None, "blobs / spirals: number of classes (arms)",
                                     type="int?", min=2)
    val_fraction: Optional[float] = opt(None, "fraction of the training split held out for "
                                        "validation (default: the set's)", type="float?",
                                        min=0, max=1, max_open=True)
    test_fraction: Optional[float] = opt(None, "synthetic / tabular: fraction held out for test",
                                         type="float?", min=0, max=1, max_open=True)
    standardize: Optional[bool] = opt(None, "standardize features with train-split statistics",
                                      type="bool?")
    seed: int = opt(0, "seed of the synthetic data and of the splits", type="int", min=0)
    mirror: str = opt("", "fashion_mnist / mnist: base URL to download from when the files are "
                      "absent (also $FNN_DATA_MIRROR)", type="str")


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple = opt([32], "hidden layer widths, e.g. [64, 64]; [] for no hidden layer",
                        type="int_list", min=1)
    activation: Any = opt("relu", "hidden activation: one name or one per hidden layer",
                          type="str_or_list", choices=ACTIVATIONS)
    output: str = opt("", "output activation; empty: softmax for cross_entropy, sigmoid for "
                      "binary_cross_entropy, identity for mse", type="str",
                      choices=("",) + ACTIVATIONS)
    initializer: str = opt("", "weight initializer; empty: he_normal for ReLU layers, "
                           "glorot_uniform otherwise", type="str", choices=("",) + INITIALIZERS)
    dtype: str = opt("float32", "parameter dtype", type="str", choices=("float32", "float64"))


@dataclass(frozen=True)
class LossConfig:
    name: str = opt("", "mse, binary_cross_entropy or cross_entropy; empty: cross_entropy for "
                    "classification, mse for regression", type="str", choices=("",) + LOSSES)


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = opt("constant", "learning-rate schedule: " + ", ".join(SCHEDULES), type="str",
                    choices=SCHEDULES)
    warmup_epochs: int = opt(0, "linear warmup from 0 over this many epochs (any schedule)",
                             type="int", min=0)
    boundaries: tuple = opt([], "step: epochs at which the rate is multiplied by factor",
                            type="int_list", min=1)
    factor: float = opt(0.1, "step: multiplier at each boundary", type="float", min=0,
                        min_open=True)
    decay_rate: float = opt(0.9, "exponential: multiplier per epoch", type="float", min=0,
                            min_open=True)
    alpha: float = opt(0.0, "linear / cosine / warmup_cosine: final rate as a fraction of "
                       "learning_rate", type="float", min=0, max=1)
    pct_start: float = opt(0.3, "one_cycle: fraction of the run spent rising", type="float",
                           min=0, max=1, min_open=True, max_open=True)


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = opt("adam", "optimizer: " + ", ".join(OPTIMIZERS), type="str", choices=OPTIMIZERS)
    learning_rate: float = opt(1e-3, "learning rate η (the peak of a schedule)", type="float",
                               min=0, min_open=True)
    momentum: Optional[float] = opt(None, "sgd / momentum / nesterov / rmsprop: momentum "
                                    "coefficient", type="float?", min=0, max=1, max_open=True)
    b1: Optional[float] = opt(None, "adam family / lion: first-moment decay", type="float?",
                              min=0, max=1, max_open=True)
    b2: Optional[float] = opt(None, "adam family / lion: second-moment decay", type="float?",
                              min=0, max=1, max_open=True)
    eps: Optional[float] = opt(None, "adam family / rmsprop / adagrad: denominator epsilon",
                               type="float?", min=0, min_open=True)
    decay: Optional[float] = opt(None, "rmsprop: squared-gradient decay", type="float?", min=0,
                                 max=1, max_open=True)
    centered: Optional[bool] = opt(None, "rmsprop: centered variant", type="bool?")
    weight_decay: float = opt(0.0, "decoupled weight decay (adamw, lion) or decay added to the "
                              "gradient (others); 0 = off", type="float", min=0)
    decay_biases: bool = opt(False, "also decay biases (default: weights only)", type="bool")
    clip_norm: float = opt(0.0, "clip gradients to this global norm; 0 = off", type="float",
                           min=0)
    clip_value: float = opt(0.0, "clip each gradient entry to [-v, v]; 0 = off", type="float",
                            min=0)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@dataclass(frozen=True)
class RegularizationConfig:
    l1: float = opt(0.0, "L1 penalty λ₁ Σ|W| on weights", type="float", min=0)
    l2: float = opt(0.0, "L2 penalty λ₂ Σ W² on weights", type="float", min=0)
    drop_rate: float = opt(0.0, "probability of dropping a hidden unit (inverted dropout)",
                           type="float", min=0, max=1, max_open=True)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = opt(10, "passes over the training split", type="int", min=1)
    batch_size: int = opt(32, "mini-batch size B (1: SGD; the split size: batch GD)",
                          type="int", min=1)
    grad: str = opt("manual", "gradients: manual (hand-written backprop) or autodiff (jax.grad)",
                    type="str", choices=("manual", "autodiff"))
    seed: int = opt(0, "seed of initialization, shuffling, dropout and augmentation", type="int",
                    min=0)
    seeds: tuple = opt([], "several seeds trained as one vmapped sweep (overrides seed)",
                       type="int_list", min=0)
    nan_guard: str = opt("halt", "a non-finite loss or gradient skips the step and halts the run "
                         "(halt); revert also rolls back non-finite parameters after an update "
                         "(slower); off: no checks", type="str", choices=("halt", "revert", "off"))


@dataclass(frozen=True)
class EarlyStoppingConfig:
    enabled: bool = opt(False, "stop when the monitored metric stops improving", type="bool")
    monitor: str = opt("val_loss", "val_loss or val_accuracy", type="str",
                       choices=("val_loss", "val_accuracy"))
    patience: int = opt(10, "epochs without improvement before stopping", type="int", min=1)
    min_delta: float = opt(0.0, "smallest change that counts as an improvement", type="float",
                           min=0)
    restore_best: bool = opt(True, "restore the best epoch's parameters when stopping (and at the last epoch)",
                             type="bool")


@dataclass(frozen=True)
class AugmentationConfig:
    noise_std: float = opt(0.0, "Gaussian input noise σ (after scaling to [0, 1])",
                           type="float", min=0)
    translate: int = opt(0, "images: random shift by up to this many pixels", type="int", min=0)
    hflip: bool = opt(False, "images: random horizontal flip", type="bool")
    rotate_deg: float = opt(0.0, "images: random rotation by up to ± this many degrees",
                            type="float", min=0, max=180)


@dataclass(frozen=True)
class OutputConfig:
    dir: str = opt("runs", "parent directory of run directories", type="str")
    name: str = opt("", "run directory name; empty: the config file's name", type="str")
    checkpoint_every: int = opt(0, "save a checkpoint every K epochs (0: only at the end)",
                                type="int", min=0)
    keep_checkpoints: int = opt(2, "checkpoints kept", type="int", min=1)
    plots: bool = opt(True, "write curves.png (needs matplotlib)", type="bool")
    progress: bool = opt(True, "show a progress bar", type="bool")
    compilation_cache: bool = opt(True, "use JAX's persistent compilation cache "
                                  "(~/.cache/fnn/jax)", type="bool")


@dataclass(frozen=True)
class ParallelConfig:
    devices: int = opt(1, "devices to train on: 1 = one device, 0 = every device (a single run "
                       "is data parallel over them, a sweep's members are split over them)",
                       type="int", min=0)
    coordinator: str = opt("", "multi-process runs: HOST:PORT of process 0 (also "
                           "$FNN_COORDINATOR, --coordinator)", type="str")
    num_processes: int = opt(1, "multi-process runs: number of processes (also "
                             "$FNN_NUM_PROCESSES, --num-processes)", type="int", min=1)
    process_id: int = opt(0, "multi-process runs: this process's index (also $FNN_PROCESS_ID, "
                          "--process-id)", type="int", min=0)
    timeout: int = opt(60, "seconds to wait for every process to join", type="int", min=1)


@dataclass(frozen=True)
class DiagnosticsConfig:
    enabled: bool = opt(False, "per-layer gradient norm, weight norm, update/weight ratio and "
                        "dead/saturated-unit fractions per epoch in metrics.csv, plus "
                        "gradients.png and activations.png (see fnn/diagnostics.py); the "
                        "trained parameters are unchanged", type="bool")


@dataclass(frozen=True)
class Config:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    sweep: tuple = ()  # ((dotted key, (values...)), ...) — the grid of `fnn sweep`
    source: str = ""

    def get(self, dotted: str):
        """The value at a dotted key, e.g. ``cfg.get("optimizer.learning_rate")``."""
        node = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    def replace(self, dotted: str, value) -> "Config":
        """A copy with one dotted key changed (no validation; see :func:`apply_overrides`)."""
        head, _, rest = dotted.partition(".")
        if not rest:
            return dataclasses.replace(self, **{head: value})
        return dataclasses.replace(self, **{head: _replace_in(getattr(self, head), rest, value)})


def _replace_in(node, dotted, value):
    head, _, rest = dotted.partition(".")
    if not rest:
        return dataclasses.replace(node, **{head: value})
    return dataclasses.replace(node, **{head: _replace_in(getattr(node, head), rest, value)})


SECTIONS = {
    "data": DataConfig, "model": ModelConfig, "loss": LossConfig, "optimizer": OptimizerConfig,
    "regularization": RegularizationConfig, "training": TrainingConfig,
    "early_stopping": EarlyStoppingConfig, "augmentation": AugmentationConfig,
    "output": OutputConfig, "parallel": ParallelConfig,
    "diagnostics": DiagnosticsConfig,
}
SUBSECTIONS = {"optimizer.schedule": ScheduleConfig}


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if "type" in f.metadata}


def all_keys() -> dict[str, dataclasses.Field]:
    """Every dotted key of the schema -> its dataclass field."""
    out = {}
    for sec, cls in SECTIONS.items():
        for name, f in _fields(cls).items():
            out[f"{sec}.{name}"] = f
        for sub, sub_cls in SUBSECTIONS.items():
            if sub.startswith(sec + "."):
                for name, f in _fields(sub_cls).items():
                    out[f"{sub}.{name}"] = f
    return out


# ---------------------------------------------------------------------------------------------
# Validation of single values
# ---------------------------------------------------------------------------------------------
def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_value(key: str, value, f: dataclasses.Field):
    """Validate and normalize one value for the field ``f`` at dotted ``key``.

    Returns:
      (normalized value, error line or None).
    """
    m = f.metadata
    typ = m["type"]
    optional = typ.endswith("?")
    typ = typ.rstrip("?")

    def bad(expected):
        return None, f"{key}: {_describe(value)}; expected {expected}"

    def check_range(v):
        lo, hi = m["min"], m["max"]
        if lo is not None and (v < lo or (m["min_open"] and v == lo)):
            return f"{key}: {v!r} out of range; expected {'>' if m['min_open'] else '>='} {lo}"
        if hi is not None and (v > hi or (m["max_open"] and v == hi)):
            return f"{key}: {v!r} out of range; expected {'<' if m['max_open'] else '<='} {hi}"
        if isinstance(v, float) and not math.isfinite(v):
            return f"{key}: {v!r}; expected a finite number"
        return None

    def check_choice(v):
        choices = m["choices"]
        if choices and v not in choices:
            shown = ", ".join(repr(c) for c in choices if c != "")
            return f"{key}: {v!r} is not valid{_suggest(v, choices)}; expected one of: {shown}"
        return None

    if optional and value is None:
        return None, None
    if typ == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return bad("an integer")
        return value, check_range(value)
    if typ == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad("a number")
        return float(value), check_range(float(value))
    if typ == "bool":
        if not isinstance(value, bool):
            return bad("true or false")
        return value, None
    if typ == "str":
        if not isinstance(value, str):
            return bad("a string")
        return value, check_choice(value)
    if typ == "int_list":
        if not isinstance(value, (list, tuple)) or any(
                isinstance(v, bool) or not isinstance(v, int) for v in value):
            return bad("a list of integers, e.g. [64, 64]")
        for v in value:
            err = check_range(v)
            if err:
                return None, err
        return tuple(value), None
    if typ == "str_or_list":
        if isinstance(value, str):
            return value, check_choice(value)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            for v in value:
                err = check_choice(v)
                if err:
                    return None, err
            return tuple(value), None
        return bad("a name or a list of names")
    raise AssertionError(f"unknown schema type {typ}")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Building a Config from a dict
# ---------------------------------------------------------------------------------------------
def _build_section(cls, raw, prefix: str, errors: list[str]):
    if not isinstance(raw, dict):
        errors.append(f"{prefix}: {_describe(raw)}; expected a table [{prefix}]")
        return cls() if not any(f.metadata.get("required") for f in _fields(cls).values()) else None
    fields = _fields(cls)
    subs = {k[len(prefix) + 1:]: v for k, v in SUBSECTIONS.items() if k.startswith(prefix + ".")}
    kwargs = {}
    for key, value in raw.items():
        full = f"{prefix}.{key}"
        if key in subs:
            kwargs[key] = _build_section(subs[key], value, full, errors)
            continue
        if key not in fields:
            errors.append(f"{full}: unknown key{_suggest(key, [*fields, *subs])}")
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


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _build_sweep(raw, errors: list[str]) -> tuple:
    if not isinstance(raw, dict):
        errors.append(f"sweep: {_describe(raw)}; expected a table [sweep] of key = [values]")
        return ()
    keys = all_keys()
    grid = []
    for key, values in _flatten(raw).items():
        full = f"sweep.{key}"
        if key not in keys:
            errors.append(f"{full}: unknown key{_suggest(key, keys)}; expected a config key such"
                          " as optimizer.learning_rate")
            continue
        if not isinstance(values, list) or not values:
            errors.append(f"{full}: {_describe(values)}; expected a non-empty list of values")
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
            sections[key] = _build_section(SECTIONS[key], value, key, errors)
        elif key == "sweep":
            sections["sweep"] = _build_sweep(value, errors)
        else:
            errors.append(f"{key}: unknown section{_suggest(key, [*SECTIONS, 'sweep'])}")
    if "data" not in raw:
        errors.append("data.name: missing required key (add a [data] section)")
    if not errors:
        cfg = Config(**sections, source=source)
        errors.extend(cross_check(cfg))
        if not errors:
            return cfg
    raise ConfigError(errors, source)


def resolved_loss(cfg: Config) -> str:
    """The loss name, defaulting by task: cross_entropy (classification) or mse (regression)."""
    if cfg.loss.name:
        return cfg.loss.name
    return "mse" if cfg.data.name in ("sine", "polynomial") else "cross_entropy"


def resolved_output(cfg: Config) -> str:
    """The output activation, defaulting from the loss."""
    if cfg.model.output:
        return cfg.model.output
    return {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(
        resolved_loss(cfg), "identity")


def cross_check(cfg: Config) -> list[str]:
    """Checks that involve several keys (pairings, lengths, file paths)."""
    from fnn.nn import losses

    errors = []
    loss, output = resolved_loss(cfg), resolved_output(cfg)
    lo = losses.get(loss)
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
    if cfg.data.name in ("fashion_mnist", "mnist") and cfg.data.path and not os.path.isdir(
            cfg.data.path):
        errors.append(f"data.path: {cfg.data.path!r} is not a directory of IDX files")
    import inspect

    from fnn import optim

    accepted = inspect.signature(optim.OPTIMIZERS[cfg.optimizer.name]).parameters
    for name in ("momentum", "b1", "b2", "eps", "decay", "centered"):
        if getattr(cfg.optimizer, name) is not None and name not in accepted:
            errors.append(f"optimizer.{name}: not an argument of optimizer {cfg.optimizer.name!r};"
                          f" it accepts: {', '.join(p for p in accepted if p != 'mask')}")
    sch = cfg.optimizer.schedule
    if list(sch.boundaries) != sorted(set(sch.boundaries)):
        errors.append(f"optimizer.schedule.boundaries: {list(sch.boundaries)}; expected strictly "
                      "increasing epochs")
    if sch.warmup_epochs >= cfg.training.epochs and sch.warmup_epochs:
        errors.append(f"optimizer.schedule.warmup_epochs: {sch.warmup_epochs}; expected fewer "
                      f"than training.epochs = {cfg.training.epochs}")
    if len(set(cfg.training.seeds)) != len(cfg.training.seeds):
        errors.append(f"training.seeds: {list(cfg.training.seeds)}; expected distinct seeds")
    if cfg.early_stopping.monitor == "val_accuracy" and not lo.classification and \
            cfg.data.name in ("sine", "polynomial"):
        errors.append("early_stopping.monitor: 'val_accuracy' needs a classification task; "
                      "use 'val_loss'")
    for key, values in cfg.sweep:
        if key in ("training.seed", "training.seeds"):
            errors.append(f"sweep.{key}: use training.seeds (or --seeds N) to sweep seeds")
        try:
            for v in values:
                cross_check_value(cfg, key, v)
        except ConfigError as err:
            errors.extend(f"sweep.{e}" for e in err.errors)
    return errors


def cross_check_value(cfg: Config, key: str, value) -> None:
    """Re-run the cross checks with one key changed (used for sweep values)."""
    changed = cfg.replace(key, value)
    changed = dataclasses.replace(changed, sweep=())
    errs = cross_check(changed)
    if errs:
        raise ConfigError(errs)


# ---------------------------------------------------------------------------------------------
# Loading, overrides, writing
# ---------------------------------------------------------------------------------------------
def parse_toml(text: str, *, source: str = "") -> dict:
    """Parse TOML text; syntax errors become a ConfigError with line and column."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"TOML syntax error: {err}"], source) from None


def read_raw(path) -> dict:
    """Read a config file into a raw dict. Raises ConfigError for missing files or bad TOML."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"config file {str(p)!r} does not exist"])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"config file {str(p)!r} cannot be read: {err}"]) from None
    return parse_toml(text, source=str(p))


def parse_override(item: str) -> tuple[str, Any]:
    """``"optimizer.learning_rate=3e-3"`` -> ("optimizer.learning_rate", 0.003).

    The value is read as a TOML value (numbers, true/false, [lists], "strings"); a bare word
    that is not valid TOML is taken as a string.
    """
    if "=" not in item:
        raise ConfigError([f"--set {item!r}: expected KEY=VALUE, e.g. optimizer.learning_rate=3e-3"])
    key, _, text = item.partition("=")
    key, text = key.strip(), text.strip()
    if not key:
        raise ConfigError([f"--set {item!r}: empty key"])
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key, value


def apply_overrides(raw: dict, overrides) -> dict:
    """Apply ``--set`` items to a raw dict (validation happens in :func:`from_dict`)."""
    raw = _deepcopy(raw)
    errors = []
    known = all_keys()
    for item in overrides:
        try:
            key, value = parse_override(item)
        except ConfigError as err:
            errors.extend(err.errors)
            continue
        if key not in known and not key.startswith("sweep."):
            errors.append(f"--set {key}: unknown key{_suggest(key, known)}")
            continue
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    if errors:
        raise ConfigError(errors)
    return raw


def _deepcopy(d):
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d


def load(path, overrides=()) -> Config:
    """Load, override and validate a config file.

    Args:
      path: a TOML file.
      overrides: ``KEY=VALUE`` strings (``--set``), type-checked like the file.
    Returns:
      the frozen :class:`Config`.
    Raises:
      ConfigError: every problem, one line each, with full dotted keys.
    """
    raw = read_raw(path)
    try:
        raw = apply_overrides(raw, overrides)
    except ConfigError as err:
        raise ConfigError(err.errors, str(path)) from None
    return from_dict(raw, source=str(path))


def to_dict(cfg: Config) -> dict:
    """A TOML-shaped dict of every key (unset optional keys omitted)."""
    out = {}
    for sec in SECTIONS:
        out[sec] = _section_dict(getattr(cfg, sec))
    if cfg.sweep:
        sweep = {}
        for key, values in cfg.sweep:
            node = sweep
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = list(values)
        out["sweep"] = sweep
    return out


def _section_dict(node) -> dict:
    d = {}
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if dataclasses.is_dataclass(v):
            d[f.name] = _section_dict(v)
        elif v is not None:
            d[f.name] = list(v) if isinstance(v, tuple) else v
    return d


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf") if v == v else "nan"
    if isinstance(v, str):  # a TOML basic string: escape \, " and control characters
        return '"' + "".join(
            "\\" + ch if ch in '\\"' else
            f"\\u{ord(ch):04X}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch
            for ch in v) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(d: dict, _prefix: str = "") -> str:
    """Write a TOML-shaped dict (tables, scalars, lists) as TOML text."""
    lines, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_toml_value(v)}")
    out = "\n".join(lines)
    for k, v in tables:
        name = f"{_prefix}.{_key(k)}" if _prefix else _key(k)
        scalars = {kk: vv for kk, vv in v.items() if not isinstance(vv, dict)}
        body = dumps(v, name)
        if scalars or not body:
            out += ("\n\n" if out else "") + f"[{name}]\n" + body
        else:
            out += ("\n\n" if out else "") + body
    return out.strip() + "\n" if _prefix == "" else out


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else f'"{k}"'


def to_toml(cfg: Config) -> str:
    """The resolved config as TOML text (round-trips through :func:`from_dict`)."""
    return dumps(to_dict(cfg))


def markdown_table() -> str:
    """Every config key with its default and meaning, as a Markdown table (for the README)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, f in all_keys().items():
        if f.metadata.get("required"):
            default = "(required)"
        else:
            d = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            default = "(unset)" if d is None else f"`{_toml_value(list(d) if isinstance(d, tuple) else d)}`"
        meaning = f.metadata["help"].replace("|", "\\|")
        rows.append(f"| `{key}` | {default} | {meaning} |")
    rows.append("| `sweep.<key>` | | a list of values for any key above: `fnn sweep` (and "
                "`fnn train`) run the grid; traced keys share one compiled program |")
    return "\n".join(rows)


def sweep_members(cfg: Config, grid=None, seeds=None) -> list[dict]:
    """The members of a sweep: the cartesian product of the grid and the seeds.

    Args:
      cfg: the config.  grid: ((key, values), ...) — default ``cfg.sweep``.
      seeds: list of seeds — default ``training.seeds`` or ``[training.seed]``.
    Returns:
      list of {dotted key: value} dicts, each including "training.seed".
    """
    grid = cfg.sweep if grid is None else grid
    if seeds is None:
        seeds = list(cfg.training.seeds) or [cfg.training.seed]
    keys = [k for k, _ in grid]
    members = []
    for combo in itertools.product(*[v for _, v in grid]):
        for seed in seeds:
            members.append({**dict(zip(keys, combo)), "training.seed": seed})
    return members
