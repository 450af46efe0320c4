"""The config schema: one frozen dataclass per TOML section, each field carrying its type,
range, choices and help text.

Contract: this module declares what a valid config *is* and nothing else. The schema drives
validation (:mod:`.values`, :mod:`.validate`), the ``--set`` overrides, the resolved
``config.toml`` and the README's table of keys (:func:`markdown_table`). Choice lists come from
the registries of the layers below (:mod:`fnn.nn.activations`, :mod:`fnn.nn.initializers`,
:mod:`fnn.nn.losses`, :mod:`fnn.optim`, :mod:`fnn.data`); only the schedule names are the
config's own vocabulary (the epoch-based schedules :mod:`fnn.experiment.build` maps onto
:mod:`fnn.optim.schedules`). Every integer key has a range: unless a field says otherwise its
upper bound is ``INT32_MAX`` (the engine's step counters and JAX's int32 arguments).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from fnn.data.names import MAX_CLASSES, NAMES as _DATA_NAMES
from fnn.experiment.layer_specs import MAX_LAYERS, MAX_UNITS
from fnn.nn import names as _names
from fnn.optim import names as _optimizers

REQUIRED = object()

DATASETS = tuple(_DATA_NAMES)
ACTIVATIONS = (*_names.ACTIVATIONS, *_names.ACTIVATION_ALIASES)
LOSSES = (*_names.LOSSES, *_names.LOSS_ALIASES)
OPTIMIZERS = tuple(_optimizers.OPTIMIZERS)
INITIALIZERS = (*_names.INITIALIZERS, *_names.INITIALIZER_ALIASES)
SCHEDULES = ("constant", "step", "exponential", "linear", "cosine", "warmup_cosine", "one_cycle")

INT32_MAX = 2**31 - 1   # default upper bound of every integer key
SEED_MAX = 2**32 - 1    # jax.random.key and NumPy's generators take a uint32 seed
N_SAMPLES_MAX = 10**8   # synthetic sets are generated in host memory
MAX_SEEDS = 1000        # seeds of one sweep (training.seeds, --seeds): each is a vmapped member
MAX_MEMBERS = 4096      # members of one sweep (grid x seeds)

# Keys a sweep may vary inside one compiled program (traced), and the HParams field each feeds.
TRACED_KEYS = {
    "optimizer.learning_rate": "learning_rate",
    "optimizer.weight_decay": "weight_decay",
    "regularization.l1": "l1",
    "regularization.l2": "l2",
    "regularization.drop_rate": "drop_rate",
}


def opt(default, help: str, *, type: str, choices=None, min=None, max=None,
        min_open: bool = False, max_open: bool = False, component: bool = False,
        max_len: Optional[int] = None):
    """A schema field: default (or REQUIRED), help text, type name and constraints.

    Integer types (``int``, ``int?``, ``int_list``) without ``max`` get ``max=INT32_MAX``.
    ``component=True`` marks a string that must be one path component (a run name);
    ``max_len`` bounds the length of an ``int_list``.
    """
    if max is None and type.rstrip("?") in ("int", "int_list"):
        max = INT32_MAX
    meta = dict(help=help, type=type, choices=choices, min=min, max=max, min_open=min_open,
                max_open=max_open, required=default is REQUIRED, component=component,
                max_len=max_len)
    if default is REQUIRED:
        return field(default=None, metadata=meta)
    if isinstance(default, list):
        return field(default_factory=lambda d=tuple(default): d, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    name: str = opt(REQUIRED, "dataset: " + ", ".join(DATASETS), type="str", choices=DATASETS)
    path: str = opt("", "file (csv/npz/text) or directory of IDX files; empty: the standard "
                    "lookup", type="str")
    target: str = opt("", "csv: name of the target column (default: the last column)", type="str")
    n_samples: Optional[int] = opt(None, "synthetic sets: number of examples (default: the set's)",
                                   type="int?", min=1, max=N_SAMPLES_MAX)
    noise: Optional[float] = opt(None, "synthetic sets: noise level (default: the set's)",
                                 type="float?", min=0)
    num_classes: Optional[int] = opt(None, "blobs / spirals: number of classes (arms)",
                                     type="int?", min=2, max=MAX_CLASSES)
    val_fraction: Optional[float] = opt(None, "fraction of the training split held out for "
                                        "validation (default: the set's)", type="float?",
                                        min=0, max=1, max_open=True)
    test_fraction: Optional[float] = opt(None, "synthetic / tabular: fraction held out for test",
                                         type="float?", min=0, max=1, max_open=True)
    standardize: Optional[bool] = opt(None, "standardize features with train-split statistics",
                                      type="bool?")
    seed: int = opt(0, "seed of the synthetic data and of the splits", type="int", min=0,
                    max=SEED_MAX)
    block_size: Optional[int] = opt(None, "text: characters per input window T (default 64; "
                                    "adder: 3 × digits)", type="int?", min=1, max=1 << 14)
    digits: Optional[int] = opt(None, "adder: digits of a and b in a+b=c (default 2)",
                                type="int?", min=1, max=6)
    mirror: str = opt("", "fashion_mnist / mnist: base URL to download from when the files are "
                      "absent (also $FNN_DATA_MIRROR)", type="str")


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple = opt([32], "hidden layer widths, e.g. [64, 64]; [] for no hidden layer",
                        type="int_list", min=1, max=MAX_UNITS, max_len=MAX_LAYERS)
    activation: Any = opt("relu", "hidden activation: one name or one per hidden layer",
                          type="str_or_list", choices=ACTIVATIONS)
    output: str = opt("", "output activation; empty: softmax for cross_entropy, sigmoid for "
                      "binary_cross_entropy, identity for mse", type="str",
                      choices=("",) + ACTIVATIONS)
    initializer: str = opt("", "weight initializer; empty: he_normal for ReLU layers, "
                           "glorot_uniform otherwise", type="str", choices=("",) + INITIALIZERS)
    dtype: str = opt("float32", "parameter dtype (of the master parameters under mixed "
                     "precision)", type="str", choices=_names.DTYPES)
    precision: str = opt("full", "compute precision: full (the parameter dtype) or bfloat16 "
                         "(mixed: forward and hand-written backward in bfloat16, float32 master "
                         "parameters, optimizer state and loss)", type="str",
                         choices=_names.PRECISIONS)
    init_from: str = opt("", "a finished run directory whose parameters and BatchNorm state"
                         " start this run (fine-tuning; fnn train --init-from); empty: drawn"
                         " from training.seed", type="str")
    init_layers: str = opt("all", "the layers model.init_from gives (fnn train --layers): all"
                           " (every layer must fit), or indices and slices of the config's"
                           " layers, e.g. ':-1' (all but the output layer), '0,2', '1:3'; the"
                           " others are drawn from training.seed", type="str")
    init_member: str = opt("", "the member of a sweep model.init_from takes: an index or a"
                           " label; empty: the sweep's best member (early_stopping.monitor)",
                           type="str")
    layers: tuple = opt((), "the hidden stack as [[model.layers]] tables (type = \"conv2d\", ...;"
                        " see the README's Layers section); the output dense layer is appended."
                        " Replaces hidden / activation / initializer", type="layers")


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
    warmup_steps: int = opt(0, "step-based runs (training.iterations): linear warmup from 0 "
                            "over this many steps, then the schedule (cosine: down to alpha × "
                            "learning_rate at the last iteration)", type="int", min=0)
    boundaries: tuple = opt([], "step: epochs (steps in step-based runs) at which the rate is "
                            "multiplied by factor",
                            type="int_list", min=1)
    factor: float = opt(0.1, "step: multiplier at each boundary", type="float", min=0,
                        min_open=True)
    decay_rate: float = opt(0.9, "exponential: multiplier per epoch", type="float", min=0,
                            min_open=True)
    alpha: float = opt(0.0, "linear / cosine / warmup_cosine: final (minimum) rate as a "
                       "fraction of learning_rate (0.1: 1e-3 decays to 1e-4)", type="float",
                       min=0, max=1)
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
    epochs: int = opt(10, "passes over the training split (unused when training.iterations "
                      "is set)", type="int", min=1)
    iterations: int = opt(0, "train by steps instead of epochs: this many optimizer steps on "
                          "random windows of token data (data.name = text / adder); 0: by "
                          "epochs", type="int", min=0)
    eval_interval: int = opt(250, "step-based runs: evaluate (one metrics.csv row, one "
                             "checkpoint chance) every this many steps; must divide "
                             "training.iterations", type="int", min=1)
    eval_iters: int = opt(20, "step-based runs: random validation batches per evaluation",
                          type="int", min=1)
    batch_size: int = opt(32, "mini-batch size B (1: SGD; the split size: batch GD)",
                          type="int", min=1)
    accumulate: int = opt(1, "gradient accumulation: each optimizer step sums the gradients of "
                          "this many micro-batches of batch_size / accumulate rows (the memory of "
                          "one micro-batch); must divide training.batch_size", type="int", min=1)
    grad: str = opt("manual", "gradients: manual (hand-written backprop) or autodiff (jax.grad)",
                    type="str", choices=("manual", "autodiff"))
    seed: int = opt(0, "seed of initialization, shuffling, dropout and augmentation", type="int",
                    min=0, max=SEED_MAX)
    seeds: tuple = opt([], "several seeds trained as one vmapped sweep (overrides seed)",
                       type="int_list", min=0, max=SEED_MAX, max_len=MAX_SEEDS)
    nan_guard: str = opt("halt", "a non-finite loss or gradient skips the step and halts the run "
                         "(halt); revert also rolls back non-finite parameters after an update "
                         "(slower); off: no checks", type="str", choices=("halt", "revert", "off"))
    flat_updates: str = opt("off", "run an element-wise optimizer on the parameters raveled into "
                            "one vector inside the scanned loop (fewer kernels per step: faster "
                            "for small nets, last bits may differ): off, on, or auto (networks "
                            "of at most 16,384 parameters); on/auto leave per-leaf updates where "
                            "the optimizer is not element-wise (clip_norm, masked weight decay)", type="str",
                            choices=("off", "on", "auto"))
    memory_limit_gb: float = opt(0.0, "refuse a run whose estimated memory (parameters, gradients, "
                                 "optimizer state, activations) exceeds this many GB; 0: 80% of "
                                 "this machine's memory", type="float", min=0)


@dataclass(frozen=True)
class EarlyStoppingConfig:
    enabled: bool = opt(False, "stop when the monitored metric stops improving", type="bool")
    monitor: str = opt("val_loss", "val_loss or val_accuracy", type="str",
                       choices=("val_loss", "val_accuracy"))
    patience: int = opt(10, "epochs (evaluations in step-based runs) without improvement "
                        "before stopping", type="int", min=1)
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
    name: str = opt("", "run directory name; empty: the config file's name", type="str",
                    component=True)
    checkpoint_every: int = opt(0, "save a checkpoint every K epochs (evaluations in step-based "
                                "runs; 0: only at the end)",
                                type="int", min=0)
    keep_checkpoints: int = opt(2, "checkpoints kept", type="int", min=1)
    plots: bool = opt(True, "write curves.png (needs matplotlib)", type="bool")
    progress: bool = opt(True, "show a progress bar", type="bool")
    tensorboard: bool = opt(False, "write each epoch's metrics to RUN_DIR/tensorboard/ as "
                            "TensorBoard event files while training (needs tensorboardX: "
                            "pip install 'fnn[tensorboard]')", type="bool")
    compilation_cache: bool = opt(True, "use JAX's persistent compilation cache "
                                  "(~/.cache/fnn/jax)", type="bool")


@dataclass(frozen=True)
class ParallelConfig:
    devices: int = opt(1, "devices to train on: 1 = one device, 0 = every device (a single run "
                       "is data parallel over them, a sweep's members are split over them)",
                       type="int", min=0)
    host_devices: int = opt(0, "on a CPU, a sweep's members split over CPU devices, one per "
                            "core: 0 = automatic (when a member's parameters x batch reach "
                            "2^22), 1 = never, N = always, over N devices; only with "
                            "devices = 1", type="int", min=0)
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


def section_fields(cls) -> dict[str, dataclasses.Field]:
    """The schema fields of one section dataclass (sub-sections excluded), by name."""
    return {f.name: f for f in dataclasses.fields(cls) if "type" in f.metadata}


def all_keys() -> dict[str, dataclasses.Field]:
    """Every dotted key of the schema -> its dataclass field."""
    out = {}
    for sec, cls in SECTIONS.items():
        for name, f in section_fields(cls).items():
            out[f"{sec}.{name}"] = f
        for sub, sub_cls in SUBSECTIONS.items():
            if sub.startswith(sec + "."):
                for name, f in section_fields(sub_cls).items():
                    out[f"{sub}.{name}"] = f
    return out

