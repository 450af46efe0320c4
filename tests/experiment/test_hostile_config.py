"""Issue 17, the config side: hostile configs and ``--set``/``--grid`` values end in one line
naming the key (exit 2, nothing written), never in a traceback; settings that were accepted
and not honoured are honoured or refused.

Everything here fails in validation (no compile) except the few marked runs (1 epoch, tiny).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from cli_helpers import run_cli, write_config
from fnn.experiment import config as C

TINY = """
[data]
name = "moons"
n_samples = 40
[model]
hidden = [4]
[training]
epochs = 1
batch_size = 8
[output]
plots = false
progress = false
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_config(tmp_path / "tiny.toml", TINY)


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_line_exit_2(argv, root, *fragments):
    before = _files(root)
    rc, out, err = run_cli(*argv)
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in lines[0], lines[0]
    assert _files(root) == before, "files were written on exit 2"
    return lines[0]


# ---------------------------------------------------------------------------------------------
# Deep nesting
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["[" * 1000 + "]" * 1000, "{a = " * 1000 + "1" + "}" * 1000,
                                   "[" * 40 + "]" * 40])
def test_deeply_nested_toml_is_one_line_naming_the_file(tmp_path, value):
    path = write_config(tmp_path / "deep.toml", f"[data]\nname = \"moons\"\nx = {value}\n")
    with pytest.raises(C.ConfigError) as info:
        C.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "nest" in str(info.value)


def test_deeply_nested_set_value_is_one_line(tiny, tmp_path):
    _one_line_exit_2(["train", tiny, "--set", "model.hidden=" + "[" * 1000 + "]" * 1000],
                     tmp_path, "model.hidden")


# ---------------------------------------------------------------------------------------------
# Integer ranges
# ---------------------------------------------------------------------------------------------
HUGE = [
    ("training.seed", "9223372036854775808"), ("training.seed", str(2**32)),
    ("training.seeds", "[0, 9223372036854775808]"), ("data.n_samples", str(10**30)),
    ("data.seed", str(10**30)), ("early_stopping.patience", "3000000000"),
    ("optimizer.schedule.boundaries", "[3000000000]"), ("training.epochs", str(10**30)),
    ("training.epochs", str(2**63 - 1)), ("training.batch_size", str(10**30)),
    ("model.hidden", f"[{10**30}]"), ("output.checkpoint_every", str(2**40)),
    ("data.num_classes", str(10**9)), ("optimizer.learning_rate", str(10**400)),
]


@pytest.mark.parametrize("key,text", HUGE, ids=[f"{k}={v[:12]}" for k, v in HUGE])
def test_integers_beyond_jax_are_one_line_naming_the_key(tiny, tmp_path, key, text):
    line = _one_line_exit_2(["train", tiny, "--set", f"{key}={text}"], tmp_path, key)
    assert "out of range" in line


def test_every_integer_key_has_a_range():
    for key, f in C.all_keys().items():
        if f.metadata["type"].rstrip("?") in ("int", "int_list"):
            assert f.metadata["max"] is not None and f.metadata["max"] <= C.SEED_MAX, key
            assert f.metadata["min"] is not None, key


def test_grid_values_are_range_checked(tiny, tmp_path):
    _one_line_exit_2(["sweep", tiny, "--grid", "early_stopping.patience=1,3000000000"], tmp_path,
                     "sweep.early_stopping.patience", "out of range")


def test_seeds_flag_is_bounded(tiny, tmp_path):
    _one_line_exit_2(["sweep", tiny, "--seeds", str(10**30)], tmp_path, "--seeds")


@pytest.mark.parametrize("epochs,batch", [(2**31 - 1, 8), (10**8, 1)])
def test_epochs_times_steps_must_fit_the_int32_step_counter(epochs, batch):
    with pytest.raises(C.ConfigError, match=r"training.epochs: .* expected fewer than 2\*\*31"):
        C.from_dict({"data": {"name": "moons", "n_samples": 40},
                     "training": {"epochs": epochs, "batch_size": batch}})
    C.from_dict({"data": {"name": "moons", "n_samples": 40},
                 "training": {"epochs": 10**6, "batch_size": 40}})  # 10**6 steps: fine


# ---------------------------------------------------------------------------------------------
# Strings: NUL, run names
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["output.name", "output.dir", "data.path"])
def test_nul_in_a_string_names_the_field(key):
    with pytest.raises(C.ConfigError) as info:
        C.from_dict({"data": {"name": "moons"}, key.split(".")[0]: {key.split(".")[1]: "a\x00b"}}
                    if key != "data.path" else {"data": {"name": "moons", "path": "a\x00b"}})
    assert str(info.value).startswith(f"{key}: ") and "NUL" in str(info.value)


@pytest.mark.parametrize("name", ["..", ".", "../escape", "a/b/c", "a\\b", "  "])
def test_output_name_is_one_path_component(tiny, tmp_path, name):
    _one_line_exit_2(["train", tiny, "--set", f'output.name="{name}"'.replace("\\", "\\\\")],
                     tmp_path, "output.name")


def test_valid_run_names_pass():
    for name in ("", "run-1", "a.b", "résumé", "x..y"):
        C.from_dict({"data": {"name": "moons"}, "output": {"name": name}})


# ---------------------------------------------------------------------------------------------
# Choice lists are the registries'
# ---------------------------------------------------------------------------------------------
def test_choice_lists_come_from_the_registries():
    from fnn import data, optim
    from fnn.nn import activations, initializers, losses

    keys = C.all_keys()
    assert set(keys["model.initializer"].metadata["choices"]) - {""} == {
        *initializers.INITIALIZERS, *initializers.ALIASES}
    assert set(keys["model.output"].metadata["choices"]) - {""} == {
        *activations.ACTIVATIONS, *activations.ALIASES}
    assert set(keys["model.activation"].metadata["choices"]) == {
        *activations.ACTIVATIONS, *activations.ALIASES}
    assert set(keys["loss.name"].metadata["choices"]) - {""} == {*losses.LOSSES, *losses.ALIASES}
    assert tuple(keys["optimizer.name"].metadata["choices"]) == tuple(optim.OPTIMIZERS)
    assert tuple(keys["data.name"].metadata["choices"]) == tuple(data.NAMES)
    for name in ("zeros", "xavier_uniform", "kaiming_normal"):  # missing before the split
        C.from_dict({"data": {"name": "moons"}, "model": {"initializer": name}})


def test_loss_and_output_aliases_resolve_to_registry_names():
    cfg = C.from_dict({"data": {"name": "moons"}, "loss": {"name": "bce"},
                       "model": {"output": "logistic"}})
    assert C.resolved_loss(cfg) == "binary_cross_entropy" and C.resolved_output(cfg) == "sigmoid"


# ---------------------------------------------------------------------------------------------
# Files: binary config.toml
# ---------------------------------------------------------------------------------------------
def test_binary_config_file_names_the_file(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(C.ConfigError, match=r"bin.toml' cannot be read: not UTF-8"):
        C.load(path)


def test_binary_config_toml_on_resume_names_the_file(tiny, tmp_path):
    rc, out, err = run_cli("train", tiny, "--out", tmp_path / "run")
    assert rc == 0, err
    (tmp_path / "run" / "config.toml").write_bytes(b"\xff\xfe garbage")
    rc, out, err = run_cli("train", tiny, "--out", tmp_path / "run", "--resume")
    assert rc == 2 and "config.toml" in err and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------------------------------------
# Settings honoured
# ---------------------------------------------------------------------------------------------
def _csv(path, rows, header="a,b,y"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_regression_csv_with_loss_unset_defaults_to_mse_and_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    data = _csv(tmp_path / "reg.csv", [(f"{a:.3f}", f"{b:.3f}", f"{a + b + 0.5:.4f}")
                                       for a, b in rng.normal(size=(40, 2))])
    cfg_path = write_config(tmp_path / "reg.toml", TINY.replace(
        'name = "moons"\nn_samples = 40', f'name = "csv"\npath = "{data}"'))
    cfg = C.load(cfg_path)
    assert C.resolved_loss(cfg) == "mse" and C.resolved_output(cfg) == "identity"
    rc, out, err = run_cli("train", cfg_path, "--out", tmp_path / "run")
    assert rc == 0, err


def test_binary_cross_entropy_on_three_classes_says_which_reading(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _csv(tmp_path / "three.csv", [(i * 0.1, -i * 0.1, i % 3) for i in range(30)])
    cfg_path = write_config(tmp_path / "bce.toml", TINY.replace(
        'name = "moons"\nn_samples = 40', f'name = "csv"\npath = "{data}"') +
        '[loss]\nname = "binary_cross_entropy"\n')
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        C.load(cfg_path)
    assert [str(w.message) for w in seen if w.category is C.ConfigNotice] == [
        "loss.name = 'binary_cross_entropy' with 3 classes: trained as 3 independent sigmoid "
        "units, one per class (one-vs-rest, multi-label reading); for one class per example use "
        "loss.name = 'cross_entropy'"]
    rc, out, err = run_cli("train", cfg_path, "--out", tmp_path / "run")
    assert rc == 0, err
    notes = [ln for ln in err.splitlines() if ln.startswith("fnn: note: ")]
    assert len(notes) == 1 and "one-vs-rest" in notes[0], err


def test_float64_run_is_float64_and_x64_is_restored(tiny, tmp_path):
    import jax

    from cli_helpers import checkpoint_arrays, final_checkpoint, params_of

    before = jax.config.jax_enable_x64
    rc, out, err = run_cli("train", tiny, "--set", 'model.dtype="float64"', "--out", tmp_path / "r")
    assert rc == 0, err
    assert "truncat" not in err.lower(), err
    params = params_of(checkpoint_arrays(final_checkpoint(tmp_path / "r" / "checkpoints")))
    assert params and all(v.dtype == np.float64 for v in params.values()), {
        k: v.dtype for k, v in params.items()}
    assert jax.config.jax_enable_x64 == before
