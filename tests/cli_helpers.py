"""Helpers for the CLI / config / resume tests: run ``fnn`` in-process or as a process, and read
what a run directory holds.

In-process runs (:func:`run_cli`) call :func:`fnn.cli.main` with stdout/stderr redirected, so
no new interpreter starts. Subprocess runs (:func:`spawn`) are only for what needs a real
process (kill -9, Ctrl-C). Neither writes to ~/.cache: in-process runs get
``FNN_COMPILATION_CACHE=0`` and ``FNN_MALLOC=system`` (see :func:`in_process_env`),
subprocesses a throwaway ``FNN_CACHE_DIR`` shared by the processes of one test module, so a
resumed process reuses the program its killed predecessor compiled.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# Overrides that shrink each shipped config to a few seconds (epochs, data size); every other
# key is kept as shipped. A config not listed here is run with QUIET + training.epochs=2.
QUIET = ("--set", "output.progress=false")
EPOCHS = 2
SHRINK = {
    "quickstart": ["training.epochs=2", "data.n_samples=300"],
    "notes_xor": ["training.epochs=2"],
    "spirals": ["training.epochs=2", "data.n_samples=300", "optimizer.schedule.warmup_epochs=1"],
    "regression_sine": ["training.epochs=2", "data.n_samples=300"],
    "sweep_lr": ["training.epochs=2", "data.n_samples=300"],
    "optimizers": ["training.epochs=2", "data.n_samples=300"],
    "fashion_mnist": ["training.epochs=1", "output.checkpoint_every=1", "data.n_samples=512"],
    # a CNN test needs a few hundred images, not 60,000
    "fashion_cnn": ["training.epochs=1", "data.n_samples=512"],
    "shapes_cnn": ["training.epochs=2", "data.n_samples=400"],
    # step-based runs on token data: a few steps, two evaluations (TEXT_CONFIGS also need
    # --set data.path=FILE: a text the test writes with write_text_file)
    "adder": ["training.iterations=40", "training.eval_interval=20", "training.eval_iters=1",
              "optimizer.schedule.warmup_steps=5"],
    "char_gpt": ["training.iterations=20", "training.eval_interval=10", "training.eval_iters=1",
                 "optimizer.schedule.warmup_steps=5"],
    "char_lstm": ["training.iterations=20", "training.eval_interval=10", "training.eval_iters=1",
                  "optimizer.schedule.warmup_steps=5"],
    # the GPU recipe (6 blocks of 384 dims): 3 steps of a short, thin batch on CPU
    "shakespeare_char": ["training.iterations=3", "training.eval_interval=3",
                         "training.eval_iters=1", "training.batch_size=4", "data.block_size=32",
                         "optimizer.schedule.warmup_steps=1"],
}
TEXT_CONFIGS = ("char_gpt", "char_lstm", "shakespeare_char")  # data.name = "text": the path comes from --set


def write_text_file(path, chars: int = 4000) -> Path:
    """A small UTF-8 text (no download) for the text configs: words and newlines, seeded."""
    rng = np.random.default_rng(0)
    words = "to be or not that is the question whether tis nobler in mind".split()
    lines = [" ".join(rng.choice(words, 8)) for _ in range(chars // 40 + 1)]
    Path(path).write_text("\n".join(lines)[:chars] + "\n", encoding="utf-8")
    return Path(path)


def shrink_args(name: str) -> list[str]:
    """``--set`` arguments that shrink the shipped config ``name`` (progress bar off)."""
    args = list(QUIET)
    for item in SHRINK.get(name, [f"training.epochs={EPOCHS}"]):
        args += ["--set", item]
    return args


# In-process runs leave the test process's settings alone: JAX's config (no compilation cache)
# and glibc's malloc (FNN_MALLOC=system: `fnn`'s retained heap, fnn.util.allocator, kept the
# pytest worker's every freed block; the quick suite ran 237.6 s with it, 215.6 s without, one
# pair, 2-core AVX-512 EPYC). The allocator's own tests run it in child processes.
IN_PROCESS_ENV = {"FNN_COMPILATION_CACHE": "0", "FNN_MALLOC": "system"}


@contextlib.contextmanager
def in_process_env():
    """The environment of :data:`IN_PROCESS_ENV` for in-process runs, restored afterwards."""
    old = {k: os.environ.get(k) for k in IN_PROCESS_ENV}
    os.environ.update(IN_PROCESS_ENV)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_cli(*argv, plots: bool = False) -> tuple[int, str, str]:
    """``fnn.cli.main(argv)`` in-process: (exit status, stdout, stderr).

    argparse errors (SystemExit) are turned into their exit status like a real process.
    ``fnn train CONFIG.toml`` runs get ``--set output.plots=false`` (matplotlib's drawing is
    ~0.7 s a run, ~7 % of the quick suite's worker time) unless ``plots=True`` or the arguments set
    ``output.plots`` themselves: only the tests that read a picture draw one.
    """
    from fnn.cli import main

    argv = [str(a) for a in argv]
    if (not plots and len(argv) > 1 and argv[0] == "train" and argv[1].endswith(".toml")
            and not any(a.startswith("output.plots") for a in argv)):
        argv += ["--set", "output.plots=false"]
    out, err = io.StringIO(), io.StringIO()
    with in_process_env(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return rc, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------------
# Subprocesses
# ---------------------------------------------------------------------------------------------
def child_xla_flags(devices: int | None = None) -> str:
    """XLA_FLAGS for a child process: this session's (tests/conftest.py's cheap compile
    settings, 3x faster to compile; the last bits may differ from a default build), plus
    ``devices`` forced CPU devices.
    A test whose claim is about the programs users run (bitwise at XLA's default optimization)
    passes ``FNN_ORIGINAL_XLA_FLAGS`` instead."""
    flags = os.environ.get("XLA_FLAGS", "")
    if devices:
        flags += f" --xla_force_host_platform_device_count={devices}"
    return flags.strip()


def subprocess_env(cache_dir: Path) -> dict:
    """Environment of an ``fnn`` subprocess: this checkout importable, a private JAX cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["FNN_CACHE_DIR"] = str(cache_dir)
    env.pop("FNN_COMPILATION_CACHE", None)
    env.pop("FNN_DEBUG", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(argv, *, cwd: Path, cache_dir: Path) -> subprocess.Popen:
    """Start ``python -m fnn ARGV`` (stdout/stderr piped)."""
    return subprocess.Popen([sys.executable, "-m", "fnn", *map(str, argv)], cwd=cwd,
                            env=subprocess_env(cache_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_process(argv, *, cwd: Path, cache_dir: Path, timeout: float = 300):
    """Run ``python -m fnn ARGV`` to completion: CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "fnn", *map(str, argv)], cwd=cwd,
                          env=subprocess_env(cache_dir), capture_output=True, text=True,
                          timeout=timeout)


def finish_process(root: Path, cache: Path, *argv):
    """:func:`run_process` in ``root`` that must succeed without a traceback."""
    proc = run_process(argv, cwd=root, cache_dir=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc


def run_cli_in(root: Path, *argv) -> tuple[int, str, str]:
    """:func:`run_cli` with the working directory ``root`` (restored after)."""
    old = os.getcwd()
    os.chdir(root)
    try:
        return run_cli(*argv)
    finally:
        os.chdir(old)


def newest_epoch(ckpt_dir: Path) -> int:
    """The highest epoch among complete-named checkpoints in ``ckpt_dir`` (0 if none)."""
    best = 0
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            if p.name.startswith("ckpt-") and p.name.endswith(".npz"):
                best = max(best, int(p.name[5:-4]))
    return best


def wait_for_epoch(proc: subprocess.Popen, ckpt_dir: Path, epoch: int, *,
                   timeout: float = 240) -> int:
    """Poll ``ckpt_dir`` until a checkpoint of ``epoch`` or later exists; returns that epoch.

    Raises AssertionError if the process exits first or the timeout passes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        e = newest_epoch(ckpt_dir)
        if e >= epoch:
            return e
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process exited ({proc.returncode}) before epoch {epoch}; "
                                 f"newest checkpoint {e}\nstdout:\n{out}\nstderr:\n{err}")
        time.sleep(0.005)
    proc.kill()
    proc.communicate()
    raise AssertionError(f"no checkpoint of epoch {epoch} within {timeout} s")


# ---------------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------------
def read_metrics(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def final_checkpoint(ckpt_dir: Path) -> Path:
    from fnn.experiment import checkpoint

    path = checkpoint.latest(ckpt_dir)
    assert path is not None, f"no checkpoint in {ckpt_dir}"
    return path


def checkpoint_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every state and history entry of a checkpoint file (``np.load``), metadata excluded."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


def assert_bitwise_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray], what: str = ""):
    """Same entries, shapes, dtypes and bytes (NaNs compare equal)."""
    assert sorted(a) == sorted(b), f"{what}: entries differ: {sorted(set(a) ^ set(b))}"
    for k in a:
        x, y = a[k], b[k]
        assert x.dtype == y.dtype and x.shape == y.shape, (
            f"{what}: {k}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
        assert x.tobytes() == y.tobytes(), (
            f"{what}: {k} differs (max |diff| "
            f"{np.nanmax(np.abs(x.astype(np.float64) - y.astype(np.float64))) if x.size else 0})")


def params_of(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in arrays.items() if k.startswith("state.params")}


# a 3-class blobs run of two epochs, quiet and without pictures (init-from's source run)
BLOBS_TOML = """
[data]
name = "blobs"
num_classes = 3
n_samples = 300
[model]
hidden = [16, 16]
[training]
epochs = 2
[output]
progress = false
plots = false
"""


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
