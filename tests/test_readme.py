"""The README cannot rot: its set-up commands are what CI runs, its config table is generated
from the schema, and its Python examples run."""
import re
import subprocess
import sys
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_two_setup_commands_that_ci_runs():
    bash = _blocks("bash")
    assert len(bash) >= 2
    main_cmd, test_cmd = bash[0].strip(), bash[1].strip()
    assert README.index(main_cmd) < README.index("## ")  # at the top, before any section
    assert "quickstart.toml" in main_cmd and "pytest" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert main_cmd in ci, "the README's main command must be run verbatim by .ci/run"
    assert test_cmd in ci, "the README's test command must be run verbatim by .ci/run"


def test_config_table_is_generated_from_the_schema():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_shipped_config_is_listed():
    for path in sorted((ROOT / "configs").glob("*.toml")):
        assert f"configs/{path.name}" in README, f"{path.name} missing from the README"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples_run(index, monkeypatch):
    code = _blocks("python")[index]
    # README examples are user code: default dtype/rank promotion, as a user has it.
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme"})


def test_the_quoted_sequential_error_is_the_real_one():
    """Issue 23: the README quoted a Sequential shape error that differed from the real text."""
    import fnn
    from fnn.nn import layers as L

    stack = [L.Conv2D(32, 3, padding="same"), L.MaxPool2D(2), L.Conv2D(64, 3, padding="same"),
             L.MaxPool2D(2), L.Dense(10)]
    with pytest.raises(ValueError) as err:
        fnn.Sequential(stack, input_shape=(28, 28, 1))
    message = str(err.value)
    assert message.startswith("layers[4] (Dense): got input shape (7, 7, 64)")
    assert f"`{message}`" in " ".join(README.split()), message
