"""Experiment configs: TOML -> validated, frozen dataclasses; ``--set`` overrides; TOML out.

One schema, declared once (:mod:`.schema`: section dataclasses whose fields carry their type,
range and help text), drives validation, the ``--set`` overrides, the resolved ``config.toml``
written with every run, and the README's table of keys (:func:`markdown_table`).

Validation reports every problem in one pass, each on one line with its full dotted key:
unknown keys (with "did you mean"), wrong types, out-of-range values, unknown names, missing
required keys, and TOML syntax errors with line and column. :class:`ConfigError` carries the list.

Modules: :mod:`.errors` (ConfigError), :mod:`.schema` (the sections, choice lists from the
registries, integer ranges), :mod:`.values` (one value against its field), :mod:`.tomlio`
(TOML text and files in and out), :mod:`.resolve` (task-dependent defaults, what is known of
the data), :mod:`.validate` (from_dict and the cross-key checks), :mod:`.overrides` (``--set``,
load, sweep members), :mod:`.table` (the README table). Everything callers use is re-exported
here: ``from fnn.experiment import config as C; C.load(...)``.
"""

from fnn.experiment.config.errors import ConfigError, describe, short_int, suggest
from fnn.experiment.config.overrides import (
    ConfigNotice,
    apply_overrides,
    load,
    parse_override,
    sweep_members,
)
from fnn.experiment.config.resolve import DataFacts, data_facts, notes, resolved_loss, resolved_output
from fnn.experiment.config.schema import (
    ACTIVATIONS,
    DATASETS,
    INITIALIZERS,
    INT32_MAX,
    LOSSES,
    N_SAMPLES_MAX,
    OPTIMIZERS,
    REQUIRED,
    SCHEDULES,
    SECTIONS,
    SEED_MAX,
    MAX_MEMBERS,
    MAX_SEEDS,
    MAX_UNITS,
    MAX_LAYERS,
    SUBSECTIONS,
    TRACED_KEYS,
    AugmentationConfig,
    Config,
    DataConfig,
    DiagnosticsConfig,
    EarlyStoppingConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    OutputConfig,
    ParallelConfig,
    RegularizationConfig,
    ScheduleConfig,
    TrainingConfig,
    all_keys,
    opt,
    section_fields,
)
from fnn.experiment.config.table import markdown_table
from fnn.experiment.config.tomlio import (
    MAX_DEPTH,
    deepcopy,
    dumps,
    flatten,
    parse_toml,
    read_raw,
    to_dict,
    to_toml,
    toml_value,
)
from fnn.experiment.config.validate import (
    STEP_LIMIT,
    build_section,
    build_sweep,
    cross_check,
    cross_check_value,
    from_dict,
)
from fnn.experiment.config.values import check_value

# The names callers used before the split (fnn/experiment/runner.py reads _flatten).
_flatten = flatten
_deepcopy = deepcopy
