"""Start-up: the command line answers --help, argument errors and config errors without JAX.

Each case runs ``python -m fnn ...`` (or an import) in a fresh interpreter that prints, after the
command, whether ``jax`` was imported. No timing is asserted here; the start-up figures are in
``scripts/bench.py --cases startup``. The facade stays lazy (PEP 562) and every public name of it
still imports, under both the folder names and the flat layout's (``fnn.train``, ``fnn.layers``).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from markers import slow_cases

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"

# Runs argv as ``python -m fnn``, then reports (exit status, whether jax and numpy were imported).
_PROBE = """
import json, runpy, sys
sys.argv = ["fnn"] + json.loads(sys.argv[1])
code = 0
try:
    runpy.run_module("fnn", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "jax": "jax" in sys.modules, "numpy": "numpy" in sys.modules}),
      file=sys.stderr)
"""


def _probe(argv, tmp_path):
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv)], capture_output=True,
                         text=True, cwd=tmp_path, env=_env(tmp_path))
    result = json.loads(out.stderr.strip().splitlines()[-1])
    return result, out


def _env(tmp_path):
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT), "FNN_CACHE_DIR": str(tmp_path / "cache")}


def test_importing_the_cli_imports_no_jax(tmp_path):
    code = "import sys, fnn, fnn.cli; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=_env(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def _bad_config(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text((CONFIGS / "quickstart.toml").read_text() + "\n[bogus]\nx = 1\n")
    return str(path)


# (argv, expected exit status, a fragment of the output); "{bad}" is a config with an unknown
# section.
CASES = [
    (["--help"], 0, "usage: fnn"),
    (["--version"], 0, "fnn "),
    (["train", "--help"], 0, "--overwrite"),
    (["sweep", "--help"], 0, "--grid"),
    (["train", "--bogus-flag", str(CONFIGS / "quickstart.toml")], 2, "unrecognized arguments"),
    (["train"], 2, "CONFIG"),
    (["train", "{bad}"], 2, "bogus: unknown section"),
    (["train", str(CONFIGS / "quickstart.toml"), "--set", "training.epoch=3"], 2,
     "did you mean"),
    (["train", str(CONFIGS / "quickstart.toml"), "--set", "optimizer.momentum=0.5"], 2,
     "not an argument of optimizer 'adam'"),
    (["train", str(CONFIGS / "quickstart.toml"), "--set", "model.output=sigmoid"], 2,
     "requires output = 'softmax'"),
    (["train", str(CONFIGS / "quickstart.toml"), "--set", "model.activation=relu6"], 2,
     "model.activation"),
    (["train", str(CONFIGS / "shapes_cnn.toml"), "--set", "model.layers=3"], 2,
     "model.layers"),
    (["train", str(CONFIGS / "fashion_cnn.toml"), "--set", "training.epochs=0"], 2,
     "training.epochs"),
    (["train", "missing.toml"], 2, "does not exist"),
    (["sweep", str(CONFIGS / "quickstart.toml")], 2, "nothing to sweep"),
    (["sweep", str(CONFIGS / "quickstart.toml"), "--grid", "optimizer.nme=1,2"], 2,
     "unknown key"),
    (["gradcheck", str(CONFIGS / "quickstart.toml"), "--batch", "0"], 2, "--batch"),
    (["inspect", str(CONFIGS / "quickstart.toml"), "--set", "x.y=1"], 2, "unknown key"),
]


@pytest.mark.parametrize("argv,code,text", CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_help_and_bad_input_return_without_jax(argv, code, text, tmp_path):
    argv = [a.replace("{bad}", _bad_config(tmp_path)) for a in argv]
    result, out = _probe(argv, tmp_path)
    assert result["code"] == code, out.stderr
    assert text in out.stdout + out.stderr
    assert not result["jax"], f"fnn {' '.join(argv)} imported jax"
    # nor NumPy (~0.2 s): the config checks read fnn.data.names, not the loaders
    assert not result["numpy"], f"fnn {' '.join(argv)} imported numpy"
    assert "Traceback" not in out.stderr


def test_a_valid_config_does_reach_jax(tmp_path):
    """The probe can see jax: a run that passes the checks imports it (and trains)."""
    argv = ["train", str(CONFIGS / "quickstart.toml"), "--quiet", "--out", str(tmp_path / "run"),
            "--set", "training.epochs=1", "--set", "data.n_samples=200",
            "--set", "output.plots=false"]
    result, out = _probe(argv, tmp_path)
    assert result == {"code": 0, "jax": True, "numpy": True}, out.stderr


FACADE = ["MLP", "Sequential", "loss_and_grad", "gradcheck", "Trainer", "TrainState", "HParams",
          "EarlyStopping", "make_train_step", "backprop_trace", "manual_vjp", "load_run",
          "RunHandle", "retain_freed_memory", "__version__"]


def test_facade_names_import_lazily_and_match_their_modules():
    import fnn
    import fnn.engine
    import fnn.nn.mlp

    assert set(FACADE) <= set(fnn.__all__)
    for name in fnn.__all__:
        assert getattr(fnn, name) is not None
        assert name in dir(fnn)
    assert fnn.MLP is fnn.nn.mlp.MLP
    assert fnn.Trainer is fnn.engine.Trainer
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fnn.nope  # noqa: B018


# each alias is one fresh interpreter importing JAX (~1.4 s): the quick run keeps the README's two
@pytest.mark.parametrize("alias,real", slow_cases([
    ("train", "fnn.engine"), ("layers", "fnn.nn.layers"), ("activations", "fnn.nn.activations"),
    ("losses", "fnn.nn.losses"), ("schedules", "fnn.optim.schedules"),
    ("shuffle", "fnn.engine.shuffle"), ("diagnostics", "fnn.analysis.diagnostics"),
], slow={"activations", "losses", "schedules", "shuffle", "diagnostics"}))
def test_flat_layout_module_names_are_the_real_modules(alias, real, tmp_path):
    """``import fnn.<alias>`` / ``from fnn.<alias> import ...`` in a fresh interpreter, first."""
    code = (f"import importlib, sys, fnn.{alias} as a; import {real} as r; import fnn\n"
            f"print(a is r, fnn.{alias} is r, sys.modules['fnn.{alias}'] is r,"
            f" r.__spec__.name == '{real}')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=_env(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True"] * 4


@pytest.mark.parametrize("removed", ["initializers", "regularizers"])
def test_aliases_no_contract_names_are_gone(removed):
    """docs/architecture.md's alias table: these two were named by no public contract."""
    import fnn

    assert removed not in fnn.__all__
    with pytest.raises(AttributeError):
        getattr(fnn, removed)


def test_from_flat_layout_import_names(tmp_path):
    code = ("from fnn.train import Trainer, HParams, EarlyStopping, TrainState, make_train_step\n"
            "from fnn.layers import Dense, Conv2D\nfrom fnn.data import Augment, augment,"
            " prepare_inputs\nimport fnn.data.augmentation as m\n"
            "print(augment is m.augment, callable(augment))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=_env(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("package", ["fnn.optim", "fnn.engine", "fnn.data"])
def test_lazy_packages_export_every_listed_name(package):
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        getattr(module, "nope")


def test_a_registry_must_match_its_list_of_names():
    """fnn.nn.names / fnn.optim.names are the one list: an implementation off the list fails
    at import, naming both."""
    from fnn.util import registry

    with pytest.raises(RuntimeError, match=r"\['a', 'b'\] differs .* \['a'\]; add the name"):
        registry.table("activation", ("a",), {"a": 1, "b": 2})
    assert registry.table("activation", ("a", "b"), {"a": 1, "b": 2}) == {"a": 1, "b": 2}


def test_the_name_lists_are_the_registries():
    import inspect

    from fnn.nn import activations, initializers, losses, names
    from fnn.optim import aliases
    from fnn.optim import names as optim_names

    assert tuple(activations.ACTIVATIONS) == names.ACTIVATIONS
    assert tuple(initializers.INITIALIZERS) == names.INITIALIZERS
    assert {k: (v.output, v.classification) for k, v in losses.LOSSES.items()} == {
        k: tuple(v) for k, v in names.LOSSES.items()}
    assert {k: tuple(inspect.signature(f).parameters) for k, f in aliases.OPTIMIZERS.items()} \
        == optim_names.OPTIMIZERS
    from fnn.data import names as data_names
    from fnn.data import synthetic

    assert {k: (v.task, v.options) for k, v in synthetic.SYNTHETIC.items()} == {
        k: (task, opts) for k, (task, opts) in data_names.SYNTHETIC_SETS.items()}
