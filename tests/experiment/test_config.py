"""fnn.config: the TOML schema, validation, ``--set`` overrides and the resolved config.toml.

Pure Python, no training (the CLI end to end is in tests/cli/test_cli.py). Every error is checked
to be one line that names the full dotted key.
"""
from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli_helpers import CONFIGS
from fnn.experiment import config as C
from fnn.experiment import build as exp

SHIPPED = sorted(CONFIGS.glob("*.toml"))
MOONS = {"data": {"name": "moons"}}


def _same(a: C.Config, b: C.Config) -> bool:
    return dataclasses.replace(a, source="") == dataclasses.replace(b, source="")


def _nested(dotted: str, value, base=None) -> dict:
    """``_nested("optimizer.schedule.name", "x")`` -> MOONS plus {"optimizer": {"schedule": ...}}."""
    raw = C.deepcopy(MOONS if base is None else base)
    node = raw
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return raw


def _errors(raw) -> list[str]:
    with pytest.raises(C.ConfigError) as info:
        C.from_dict(raw)
    errors = info.value.errors
    for e in errors:
        assert "\n" not in e, e
    return errors


def _one_error(raw) -> str:
    errors = _errors(raw)
    assert len(errors) == 1, errors
    return errors[0]


# ---------------------------------------------------------------------------------------------
# Shipped configs, defaults and the resolved config.toml
# ---------------------------------------------------------------------------------------------
def test_configs_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {"quickstart", "notes_xor", "spirals", "regression_sine", "fashion_mnist",
            "sweep_lr", "optimizers"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_round_trips_through_resolved_toml(path):
    cfg = C.load(path)
    assert cfg.source == str(path)
    text = C.to_toml(cfg)
    again = C.from_dict(C.parse_toml(text))
    assert _same(cfg, again)
    assert C.to_toml(again) == text  # the resolved text is a fixed point
    flat = C.flatten(C.to_dict(cfg))
    # a layer stack and the MLP keys exclude each other: the one not in use is not written
    unused = (("model.hidden", "model.activation", "model.initializer") if cfg.model.layers
              else ("model.layers",))
    for key in C.all_keys():  # every key that has a value is written out
        assert (key in flat) == (cfg.get(key) is not None and key not in unused), key


def test_defaults_fill_every_key():
    cfg = C.from_dict(MOONS)
    for key, f in C.all_keys().items():
        if f.metadata["required"]:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert cfg.get(key) == default, key
    assert cfg.sweep == ()


def test_overrides_are_type_checked_and_reflected_in_resolved_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "moons"\n[training]\nepochs = 3\n')
    cfg = C.load(path, ["optimizer.learning_rate=3e-3", "model.hidden=[8, 4]",
                        "model.activation=tanh", "training.epochs=7",
                        "early_stopping.enabled=true", "optimizer.schedule.name=cosine",
                        'output.name="a b"', "optimizer.learning_rate=1"])  # last one wins
    assert cfg.optimizer.learning_rate == 1.0 and type(cfg.optimizer.learning_rate) is float
    assert cfg.model.hidden == (8, 4) and cfg.model.activation == "tanh"
    assert cfg.training.epochs == 7 and cfg.early_stopping.enabled is True
    raw = C.parse_toml(C.to_toml(cfg))
    assert raw["optimizer"]["learning_rate"] == 1.0
    assert raw["optimizer"]["schedule"]["name"] == "cosine"
    assert raw["model"]["hidden"] == [8, 4]
    assert raw["training"]["epochs"] == 7
    assert raw["output"]["name"] == "a b"


def test_override_may_change_the_shape_of_a_value(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "moons"\n[model]\nhidden = [4, 4]\n'
                    'activation = ["relu", "tanh"]\n')
    assert C.load(path).model.activation == ("relu", "tanh")
    assert C.load(path, ["model.activation=sigmoid"]).model.activation == "sigmoid"


def test_override_of_a_sweep_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "moons"\n')
    cfg = C.load(path, ["sweep.optimizer.learning_rate=[1e-3, 1e-2]"])
    assert cfg.sweep == (("optimizer.learning_rate", (1e-3, 1e-2)),)
    assert C.from_dict(C.parse_toml(C.to_toml(cfg))).sweep == cfg.sweep


@pytest.mark.parametrize("text, value", [
    ("1e-3", 1e-3), ("2", 2), ("2.0", 2.0), ("-1", -1), ("true", True), ("false", False),
    ("[64, 64]", [64, 64]), ("[]", []), ("relu", "relu"), ('"relu"', "relu"),
    ("'x y'", "x y"), ("runs/a b", "runs/a b"), ('["relu", "tanh"]', ["relu", "tanh"]),
    (" 5 ", 5), ("", ""), ("a=b", "a=b"), ("inf", math.inf),
])
def test_parse_override_reads_a_toml_value(text, value):
    key, got = C.parse_override(f"training.epochs={text}")
    assert key == "training.epochs"
    assert got == value and type(got) is type(value)


_names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


_run_names = _names.filter(lambda s: "\x00" not in s and "/" not in s and "\\" not in s
                           and s not in (".", "..") and (s == "" or s.strip() != ""))


@given(path=_names.filter(lambda s: "\x00" not in s), name=_run_names,
       lr=st.floats(min_value=1e-300, max_value=1e300),
       hidden=st.lists(st.integers(1, C.MAX_UNITS), max_size=4),
       seeds=st.lists(st.integers(0, 2**32 - 1), max_size=4, unique=True),
       l2=st.floats(min_value=0, max_value=1e6), patience=st.integers(1, 10**9))
def test_resolved_toml_round_trips_any_valid_value(path, name, lr, hidden, seeds, l2, patience):
    raw = {"data": {"name": "moons", "path": path, "target": name},
           "model": {"hidden": hidden, "activation": "tanh"},
           "optimizer": {"learning_rate": lr},
           "regularization": {"l2": l2},
           "training": {"seeds": seeds},
           "early_stopping": {"patience": patience},
           "output": {"name": name, "dir": path}}
    cfg = C.from_dict(raw)
    again = C.from_dict(C.parse_toml(C.to_toml(cfg)))
    assert _same(cfg, again)
    assert again.optimizer.learning_rate == lr and again.data.path == path


# ---------------------------------------------------------------------------------------------
# Values: types, ranges, names
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(C.all_keys()))
def test_every_key_rejects_a_wrong_type_naming_the_full_key(key, tmp_path):
    err = _one_error(_nested(key, {"x": 1}))
    assert err.startswith(f"{key}: ") and "expected" in err, err
    # --set is checked exactly like the file
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "moons"\n')
    with pytest.raises(C.ConfigError) as info:
        C.load(path, [f"{key}={{ x = 1 }}"])
    assert info.value.errors == [err]
    assert str(info.value) == f"{path}: {err}"


@pytest.mark.parametrize("key, value, fragment", [
    ("optimizer.learning_rate", "fast", "optimizer.learning_rate: 'fast' (str); expected a number"),
    ("optimizer.learning_rate", True, "optimizer.learning_rate: True (bool); expected a number"),
    ("training.epochs", 2.5, "training.epochs: 2.5 (float); expected an integer"),
    ("training.epochs", 2.0, "training.epochs: 2.0 (float); expected an integer"),
    ("training.batch_size", True, "training.batch_size: True (bool); expected an integer"),
    ("training.epochs", "10", "training.epochs: '10' (str); expected an integer"),
    ("early_stopping.enabled", "yes", "early_stopping.enabled: 'yes' (str); expected true or false"),
    ("early_stopping.enabled", 1, "early_stopping.enabled: 1 (int); expected true or false"),
    ("data.standardize", "true", "data.standardize: 'true' (str); expected true or false"),
    ("model.hidden", 32, "model.hidden: 32 (int); expected a list of integers"),
    ("model.hidden", [32.5], "model.hidden: [32.5] (list); expected a list of integers"),
    ("model.hidden", [True], "model.hidden: [True] (list); expected a list of integers"),
    ("model.activation", 3, "model.activation: 3 (int); expected a name or a list of names"),
    ("model.activation", [], "model.activation: [] (list); expected a name or a list of names"),
    ("data.name", 5, "data.name: 5 (int); expected a string"),
    ("training.seeds", [0, "1"], "training.seeds: [0, '1'] (list); expected a list of integers"),
])
def test_wrong_types(key, value, fragment):
    err = _one_error(_nested(key, value))
    assert err.startswith(f"{key}: ") and fragment in err, err


@pytest.mark.parametrize("key, value, fragment", [
    ("optimizer.learning_rate", -0.1, "optimizer.learning_rate: -0.1 out of range; expected > 0"),
    ("optimizer.learning_rate", 0, "optimizer.learning_rate: 0.0 out of range; expected > 0"),
    ("optimizer.learning_rate", math.nan, "optimizer.learning_rate: nan; expected a finite number"),
    ("optimizer.learning_rate", math.inf, "optimizer.learning_rate: inf; expected a finite number"),
    ("regularization.drop_rate", 1.0, "regularization.drop_rate: 1.0 out of range; expected < 1"),
    ("regularization.drop_rate", -0.5, "regularization.drop_rate: -0.5 out of range; expected >= 0"),
    ("regularization.l2", -1e-4, "regularization.l2: -0.0001 out of range; expected >= 0"),
    ("training.batch_size", 0, "training.batch_size: 0 out of range; expected >= 1"),
    ("training.epochs", 0, "training.epochs: 0 out of range; expected >= 1"),
    ("training.seed", -1, "training.seed: -1 out of range; expected >= 0"),
    ("training.seeds", [0, -1], "training.seeds: -1 out of range; expected >= 0"),
    ("early_stopping.patience", 0, "early_stopping.patience: 0 out of range; expected >= 1"),
    ("early_stopping.min_delta", -1.0, "early_stopping.min_delta: -1.0 out of range"),
    ("data.val_fraction", 1.0, "data.val_fraction: 1.0 out of range; expected < 1"),
    ("data.test_fraction", -0.1, "data.test_fraction: -0.1 out of range; expected >= 0"),
    ("data.n_samples", 0, "data.n_samples: 0 out of range; expected >= 1"),
    ("data.num_classes", 1, "data.num_classes: 1 out of range; expected >= 2"),
    ("optimizer.momentum", 1.0, "optimizer.momentum: 1.0 out of range; expected < 1"),
    ("optimizer.b2", 1.5, "optimizer.b2: 1.5 out of range; expected < 1"),
    ("optimizer.eps", 0.0, "optimizer.eps: 0.0 out of range; expected > 0"),
    ("optimizer.schedule.pct_start", 0.0, "optimizer.schedule.pct_start: 0.0 out of range"),
    ("optimizer.schedule.factor", 0, "optimizer.schedule.factor: 0.0 out of range; expected > 0"),
    ("optimizer.schedule.boundaries", [0], "optimizer.schedule.boundaries: 0 out of range"),
    ("augmentation.rotate_deg", 181, "augmentation.rotate_deg: 181.0 out of range; expected <= 180"),
    ("model.hidden", [8, 0], "model.hidden: 0 out of range; expected >= 1"),
    ("output.keep_checkpoints", 0, "output.keep_checkpoints: 0 out of range; expected >= 1"),
])
def test_out_of_range(key, value, fragment):
    assert fragment in _one_error(_nested(key, value))


@pytest.mark.parametrize("key, value", [
    ("regularization.drop_rate", 0.0), ("regularization.drop_rate", 0.999),
    ("data.val_fraction", 0.0), ("augmentation.rotate_deg", 180), ("optimizer.b1", 0),
    ("optimizer.schedule.alpha", 1.0), ("training.seeds", [0]), ("model.hidden", []),
    ("output.checkpoint_every", 0), ("optimizer.learning_rate", 1e-300),
])
def test_boundary_values_are_accepted(key, value):
    cfg = C.from_dict(_nested(key, value))
    got = cfg.get(key)
    assert got == (tuple(value) if isinstance(value, list) else value)
    if isinstance(value, int) and C.all_keys()[key].metadata["type"].startswith("float"):
        assert type(got) is float  # an integer is accepted where a number is expected


@pytest.mark.parametrize("key, value, suggestion", [
    ("data.name", "mnsit", "mnist"), ("data.name", "moon", "moons"),
    ("model.activation", "rleu", "relu"), ("model.activation", ["tahn"], "tanh"),
    ("model.output", "sigmod", "sigmoid"), ("model.initializer", "he_norml", "he_normal"),
    ("loss.name", "cross_entropi", "cross_entropy"), ("optimizer.name", "adamm", "adam"),
    ("optimizer.schedule.name", "cosin", "cosine"), ("training.grad", "auto", "autodiff"),
    ("early_stopping.monitor", "val_acc", "val_accuracy"), ("model.dtype", "flaot32", "float32"),
    ("training.nan_guard", "revrt", "revert"),
])
def test_unknown_names_suggest_the_closest(key, value, suggestion):
    err = _one_error(_nested(key, value))
    assert err.startswith(f"{key}: ") and "is not valid" in err
    assert f"did you mean {suggestion!r}?" in err
    assert "expected one of:" in err


def test_unknown_name_without_a_close_match_lists_the_choices():
    err = _one_error(_nested("data.name", "zzzz"))
    assert "did you mean" not in err
    assert "expected one of: 'xor', 'moons'" in err


# ---------------------------------------------------------------------------------------------
# Structure: sections, keys, required keys
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, fragment", [
    ({**MOONS, "trainig": {"epochs": 1}}, "trainig: unknown section (did you mean 'training'?)"),
    ({**MOONS, "zzz": {}}, "zzz: unknown section"),
    (_nested("optimizer.lerning_rate", 1.0),
     "optimizer.lerning_rate: unknown key (did you mean 'learning_rate'?)"),
    (_nested("optimizer.schedule.wamup_epochs", 1),
     "optimizer.schedule.wamup_epochs: unknown key (did you mean 'warmup_epochs'?)"),
    (_nested("optimizer.shedule.name", "cosine"),
     "optimizer.shedule: unknown key (did you mean 'schedule'?)"),
    (_nested("model.hiden", [4]), "model.hiden: unknown key (did you mean 'hidden'?)"),
    (_nested("model.foo", 1), "model.foo: unknown key"),
    ({}, "data.name: missing required key"),
    ({"data": {"seed": 1}}, "data.name: missing required key"),
    ({"data": 5}, "data: 5 (int); expected a table [data]"),
    ({**MOONS, "model": 3}, "model: 3 (int); expected a table [model]"),
    (_nested("optimizer.schedule", "cosine"), "optimizer.schedule: 'cosine' (str); expected a table"),
])
def test_structure_errors(raw, fragment):
    err = _one_error(raw)
    assert fragment in err
    if "(did you mean" not in fragment:
        assert "did you mean" not in err


def test_every_problem_is_reported_in_one_pass():
    raw = {"data": {"name": "moons", "n_samples": "many"},
           "optimizer": {"learning_rate": -1, "nmae": "adam"},
           "training": {"batch_size": 0},
           "traning": {}}
    with pytest.raises(C.ConfigError) as info:
        C.from_dict(raw, source="x.toml")
    errors = info.value.errors
    assert len(errors) == 5, errors
    for fragment in ("data.n_samples: 'many' (str)", "optimizer.learning_rate: -1.0 out of range",
                     "optimizer.nmae: unknown key (did you mean 'name'?)",
                     "training.batch_size: 0 out of range",
                     "traning: unknown section (did you mean 'training'?)"):
        assert sum(fragment in e for e in errors) == 1, (fragment, errors)
    msg = str(info.value)
    assert msg.splitlines()[0] == f"x.toml: 5 problems: {errors[0]} (all 5 below)"
    assert msg.splitlines()[1:] == [f"  {e}" for e in errors]


def test_three_errors_three_lines(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "moons"\n[optimizer]\nlearning_rate = -1\n'
                    '[regularization]\ndrop_rate = 1.0\n[training]\nbatch_size = 0\n')
    with pytest.raises(C.ConfigError) as info:
        C.load(path)
    assert [e.split(":")[0] for e in info.value.errors] == [
        "optimizer.learning_rate", "regularization.drop_rate", "training.batch_size"]


# ---------------------------------------------------------------------------------------------
# Checks across keys
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, fragment", [
    ({**MOONS, "loss": {"name": "cross_entropy"}, "model": {"output": "sigmoid"}},
     "model.output: 'sigmoid' cannot be used with loss.name 'cross_entropy'"),
    ({**MOONS, "loss": {"name": "binary_cross_entropy"}, "model": {"output": "softmax"}},
     "binary_cross_entropy requires output = 'sigmoid'"),
    ({**MOONS, "model": {"output": "identity"}},  # default loss for moons: cross_entropy
     "model.output: 'identity' cannot be used with loss.name 'cross_entropy'"),
    ({**MOONS, "model": {"hidden": [4, 4], "activation": ["relu"]}},
     "model.activation: 1 names for 2 hidden layers [4, 4]; expected one name or 2"),
    ({**MOONS, "model": {"hidden": [4], "activation": "softmax"}},
     "model.activation: 'softmax' is only valid as model.output"),
    ({"data": {"name": "csv"}}, "data.path: missing; data.name = 'csv' needs the file's path"),
    ({"data": {"name": "npz"}}, "data.path: missing; data.name = 'npz' needs the file's path"),
    ({"data": {"name": "csv", "path": "no/such.csv"}},
     "data.path: 'no/such.csv' does not exist or is not a file"),
    ({"data": {"name": "npz", "path": "."}}, "data.path: '.' does not exist or is not a file"),
    ({"data": {"name": "mnist", "path": "no/such/dir"}},
     "data.path: 'no/such/dir' is not a directory of IDX files"),
    (_nested("optimizer.schedule.boundaries", [5, 3]),
     "optimizer.schedule.boundaries: [5, 3]; expected strictly increasing epochs"),
    (_nested("optimizer.schedule.warmup_epochs", 10),
     "optimizer.schedule.warmup_epochs: 10; expected fewer than training.epochs = 10"),
    (_nested("training.seeds", [1, 1]), "training.seeds: [1, 1]; expected distinct seeds"),
    ({"data": {"name": "sine"}, "early_stopping": {"monitor": "val_accuracy", "enabled": True}},
     "early_stopping.monitor: 'val_accuracy' needs a classification task"),
])
def test_cross_checks(raw, fragment):
    assert fragment in _one_error(raw)


# ---------------------------------------------------------------------------------------------
# Sweeps
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sweep, fragment", [
    ({"optimizer": {"lr": [1e-3]}}, "sweep.optimizer.lr: unknown key (did you mean"),
    ({"optimizer": {"learning_rate": ["fast"]}},
     "sweep.optimizer.learning_rate: 'fast' (str); expected a number"),
    ({"optimizer": {"learning_rate": [1e-3, -1.0]}},
     "sweep.optimizer.learning_rate: -1.0 out of range; expected > 0"),
    ({"optimizer": {"learning_rate": []}}, "sweep.optimizer.learning_rate: [] (list); expected a non-empty list"),
    ({"optimizer": {"learning_rate": 0.1}}, "expected a non-empty list of values"),
    ({"model": {"activation": ["relu", "softmax"]}},
     "sweep.model.activation: 'softmax' is only valid as model.output"),
    ({"training": {"seed": [1, 2]}}, "sweep.training.seed: use training.seeds (or --seeds N)"),
])
def test_sweep_errors(sweep, fragment):
    assert fragment in _one_error({**MOONS, "sweep": sweep})


def test_sweep_groups_traced_and_static_keys():
    traced = C.from_dict({**MOONS, "training": {"seeds": [0, 1]},
                          "sweep": {"optimizer": {"learning_rate": [1e-3, 1e-2]}}})
    assert len(C.sweep_members(traced)) == 4
    groups = exp.plan(traced)
    assert len(groups) == 1 and groups[0].traced == ("learning_rate",)
    assert groups[0].seeds == [0, 1, 0, 1]
    assert groups[0].hparams == {"learning_rate": [1e-3, 1e-3, 1e-2, 1e-2]}
    assert len(set(groups[0].labels)) == 4

    mixed = C.from_dict({**MOONS, "training": {"seeds": [0, 1]},
                         "sweep": {"optimizer": {"learning_rate": [1e-3, 1e-2]},
                                   "model": {"activation": ["relu", "tanh"]}}})
    groups = exp.plan(mixed)
    assert [g.config.model.activation for g in groups] == ["relu", "tanh"]
    assert [len(g.members) for g in groups] == [4, 4]
    assert sorted(i for g in groups for i in g.members) == list(range(8))
    # --seeds / --grid style arguments override the config's
    assert len(C.sweep_members(mixed, grid=(("model.activation", ("relu",)),), seeds=[0, 1, 2])) == 3


# ---------------------------------------------------------------------------------------------
# Files and overrides
# ---------------------------------------------------------------------------------------------
def test_toml_syntax_error_has_line_and_column(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "moons"\nepochs = = 3\n')
    with pytest.raises(C.ConfigError) as info:
        C.load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: TOML syntax error") and "line 3, column" in msg
    assert "\n" not in msg


def test_missing_and_unreadable_config_files(tmp_path):
    with pytest.raises(C.ConfigError, match="config file .*nope.toml' does not exist"):
        C.load(tmp_path / "nope.toml")
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.load(tmp_path)  # a directory
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[data]\nname = \"\xff\xfe\"\n")
    with pytest.raises(C.ConfigError, match="cannot be read"):
        C.load(bad)


@pytest.mark.parametrize("overrides, fragments", [
    (["optimizer.learning_rate"], ["--set 'optimizer.learning_rate': expected KEY=VALUE"]),
    (["=3"], ["--set '=3': empty key"]),
    (["optimizer.lerning_rate=1"],
     ["--set optimizer.lerning_rate: unknown key (did you mean 'optimizer.learning_rate'?)"]),
    (["trainng.epochs=1", "model.hiden=[3]"],
     ["--set trainng.epochs: unknown key (did you mean 'training.epochs'?)",
      "--set model.hiden: unknown key (did you mean 'model.hidden'?)"]),
    (["training.epochs=abc"], ["training.epochs: 'abc' (str); expected an integer"]),
    (["training.epochs=2.5"], ["training.epochs: 2.5 (float); expected an integer"]),
    (["optimizer.learning_rate=-1"], ["optimizer.learning_rate: -1.0 out of range; expected > 0"]),
    (["model.activation=rleu"], ["model.activation: 'rleu' is not valid (did you mean 'relu'?)"]),
])
def test_bad_overrides(tmp_path, overrides, fragments):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "moons"\n')
    with pytest.raises(C.ConfigError) as info:
        C.load(path, overrides)
    assert len(info.value.errors) == len(fragments)
    for e, f in zip(info.value.errors, fragments):
        assert f in e
    assert str(info.value).startswith(f"{path}: ")


def test_nan_guard_choices_are_the_engines():
    """The schema lists its choices literally (it imports no JAX); they must be the engine's."""
    from fnn.engine import NAN_GUARDS
    assert tuple(C.all_keys()["training.nan_guard"].metadata["choices"]) == NAN_GUARDS
