"""The README cannot rot: its set-up commands are what CI runs, its config table is generated
from the schema, and its Python examples run."""
import re
import subprocess
import sys
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[2]
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

    stack = [L.Conv2D(2, 3, padding="same"), L.MaxPool2D(3)]
    with pytest.raises(ValueError) as err:
        fnn.Sequential(stack, input_shape=(2, 2, 1))
    message = str(err.value)
    assert message.startswith("layers[1] (MaxPool2D): got input shape (2, 2, 2)")
    assert f"`{message}`" in " ".join(README.split()), message


# --- every bash block runs too --------------------------------------------------------------
# Each `fnn ...` command of the README's bash blocks runs in a scratch directory (configs/
# copied in) as `python -m fnn ...`, shortened by appending the --set overrides of
# tests/cli_helpers.py's SHRINK for its config (the same shrinking every end-to-end test uses).
NOT_RUN = {
    # block text starts with -> why the test cannot run it
    "# on host A (process 0)": "two hosts side by side; the same two-process run is "
                               "tests/engine/test_parallel.py::test_two_processes_with_gloo_equal_one_process",
    "# after the training above": "reads the run of the block before it; the same train, "
                                  "generate and resume run in tests/e2e/test_text_e2e.py",
    "# needs a download": "apt-get / pip download fetch the text; tests train on text they "
                          "write (tests/e2e/test_text_e2e.py, test_cli's shipped char_* configs)",
}
SET_UP = ("pip install",)  # the set-up commands: run verbatim by .ci/run (test above)
IN_ORDER = "# in order"  # a block whose commands build on each other: one case, one directory


def _commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments dropped."""
    text = block.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            part = part.strip()
            if part and not part.startswith(SET_UP) and "pytest" not in part:
                out.append(part)
    return out


def _bash_cases():
    """One case per command; a block opening with ``# in order`` is one case of its commands."""
    cases = []
    for block in _blocks("bash"):
        if any(block.startswith(k) for k in NOT_RUN):
            continue
        commands = _commands(block)
        if block.startswith(IN_ORDER):
            cases.append(" && ".join(commands))
        else:
            cases += commands
    return cases


def test_every_bash_block_is_run_or_listed_with_a_reason():
    for block in _blocks("bash"):
        if any(block.startswith(k) for k in NOT_RUN):
            continue
        assert _commands(block) or all(c.strip().startswith(SET_UP) or "pytest" in c
                                       for c in block.split("&&")), block
    assert any("device_count=4" in c for c in _bash_cases())  # the multi-device command runs


@pytest.mark.slow
@pytest.mark.parametrize("commands", _bash_cases(), ids=lambda c: " ".join(c.split()))
def test_bash_blocks_run(commands, tmp_path):
    import shutil

    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    for command in commands.split(" && "):  # in order, in one directory
        _run_readme_command(command, tmp_path)


def _run_readme_command(command: str, tmp_path: Path) -> None:
    import os
    import shlex

    sys.path.insert(0, str(ROOT / "tests"))
    from cli_helpers import SHRINK, child_xla_flags
    from model_runs import FASHION_DIR

    words = shlex.split(command)
    # the commands as written, compiled with the suite's cheap settings (child_xla_flags)
    env = dict(os.environ, PYTHONPATH=str(ROOT), FNN_COMPILATION_CACHE="0",
               XLA_FLAGS=child_xla_flags())
    while "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
        key, _, value = words.pop(0).partition("=")
        env[key] = f"{env[key]} {value}" if key == "XLA_FLAGS" else value
    assert words[0] == "fnn", command
    config = next(Path(w).stem for w in words if w.endswith(".toml"))
    extra = [a for item in SHRINK.get(config, ["training.epochs=2"]) for a in ("--set", item)]
    if config.startswith("fashion"):
        if not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file():
            pytest.skip(f"Fashion-MNIST files not in {FASHION_DIR}")
        extra += ["--set", f"data.path={FASHION_DIR}", "--set", "data.n_samples=512"]
    if "parallel.devices=4" in command and "XLA_FLAGS" not in command:
        # "one device per GPU": a CPU runner has one device, so four are forced
        env["XLA_FLAGS"] = child_xla_flags(4)
    if "--out" not in words:
        extra += ["--out", str(tmp_path / "run")]
    proc = subprocess.run([sys.executable, "-m", "fnn", *words[1:], *extra], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
