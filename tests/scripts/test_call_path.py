"""scripts/call_path.py: one `fnn train` never calls back into a module through an import cycle."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "call_path.py"


def _load():
    spec = importlib.util.spec_from_file_location("call_path", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_imports_of_reads_local_and_from_imports():
    cp = _load()
    mine = cp.imports_of("fnn.experiment.build")
    assert "fnn.engine" in mine and "fnn.engine.Trainer" in mine
    assert not any(m.startswith(("jax", "numpy")) for m in mine)


@pytest.mark.slow
def test_a_train_has_no_calls_through_an_import_cycle(tmp_path, monkeypatch):
    """Every call back into a module already on the stack is a callback handed down (a writer,
    an optimizer transform), none a pair of modules that import each other."""
    cp = _load()
    monkeypatch.setenv("FNN_COMPILATION_CACHE", "0")
    r = cp.follow(["train", str(SCRIPT.parents[1] / "configs" / "notes_xor.toml"), "--out",
                   str(tmp_path / "run"), "--quiet", "--set", "training.epochs=2",
                   "--set", "output.plots=false"])
    assert r["exit"] == 0 and r["cross_module_calls"] > 100
    cycles = {p: n for p, n in r["pairs"].items()
              if p[1] in cp.imports_of(p[0]) and p[0] in cp.imports_of(p[1])}
    assert cycles == {}, cycles
