"""Fuzzing what the CLI writes (issue 23): output paths onto a run's files, ``--overwrite``
over a run holding a user's files, concurrent writers and a disk that fills up.

The property, for every generated case: the exit status is 0, 1 or 2 (never 3); no traceback;
exit 2 is one line ``fnn: error: ...`` and changes nothing under the example's directory; a
full disk is exit 1 with one line naming the file (never a temp name) and leaves no temp file,
no exported model without its sidecar and no run directory without a checkpoint; and no file
of the user's (their inputs, dot-files, notes, the run's own files unless ``--overwrite`` was
asked to replace that run) is lost or changed.

Hypothesis runs derandomized (tests/conftest.py). Examples per test: $FNN_FUZZ_EXAMPLES
(default 8, well under half a minute in all). For the issue's campaign:

    FNN_FUZZ_EXAMPLES=1000 python -m pytest tests/e2e/test_fuzz_files.py -q
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import run_cli, run_cli_in, subprocess_env

# The fuzz campaigns (generated writes against run directories) run in the full suite (CI),
# not in the quick `-m "not slow"` run
pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FNN_FUZZ_EXAMPLES", "8"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

CONFIG = """\
[data]
name = "moons"
n_samples = 40
[model]
hidden = [3]
[training]
epochs = 2
batch_size = 8
[output]
plots = false
progress = false
"""


def tree(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` (dot-files included)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_in(root: Path, *argv) -> tuple[int, str]:
    """``fnn ARGV`` in-process with cwd ``root``; asserts the common property."""
    before = tree(root)
    rc, _, err = run_cli_in(root, *argv)
    assert rc in (0, 1, 2), f"exit {rc}: {err}"
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(
        ("fnn: warning:", "fnn: note:"))]
    if rc in (1, 2):
        assert len(lines) == 1 and lines[0].startswith("fnn: error: "), err
        assert ".tmp" not in lines[0], err
    if rc == 2:
        assert tree(root) == before, f"exit 2 changed files: {err}"
    assert not [p for p in root.rglob("*.tmp")], f"a temp file is left: {err}"
    return rc, err


class Workdir:
    """A fresh directory per example holding a copy of the trained run, its exported model,
    an input file and the config (hypothesis does not reset function-scoped fixtures)."""

    def __init__(self, trained: Path):
        self.trained = trained

    def __enter__(self) -> Path:
        self.root = Path(tempfile.mkdtemp(prefix="fnn-fuzz-files-"))
        shutil.copytree(self.trained, self.root / "run")  # mtimes kept: the manifest matches
        (self.root / "x.csv").write_text("x0,x1\n0.1,0.2\n0.5,-0.3\n")
        (self.root / "config.toml").write_text(CONFIG)
        return self.root

    def __exit__(self, *exc):
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-files")
    (root / "config.toml").write_text(CONFIG)
    rc, _, err = run_cli("train", root / "config.toml", "--out", root / "run", "--quiet",
                         plots=True)  # its pictures are among the files the fuzz protects
    assert rc == 0, err
    rc, _, err = run_cli("export", root / "run")
    assert rc == 0, err
    return root / "run"


def _ckpt(run: Path) -> str:
    return str(next((run / "checkpoints").glob("ckpt-*.npz")).relative_to(run))


# ---------------------------------------------------------------------------------------------
# Output paths onto a run's files
# ---------------------------------------------------------------------------------------------
_TARGETS = st.sampled_from(["summary.json", "config.toml", "preprocessing.json", "metrics.csv",
                            "CKPT", "checkpoints", "checkpoints/new.npz", ".fnn/manifest.jsonl",
                            ".fnn/lock", "model.jax", "model.jax.json", "model.safetensors",
                            "predictions.csv", "fresh.csv", "", "../x.csv", "../config.toml",
                            "../elsewhere.png"])
_COMMANDS = st.sampled_from(["export", "safetensors", "predict", "predict-model", "compare"])
_STYLES = st.sampled_from(["absolute", "relative", "dotdot", "symlink"])
_SUFFIX = st.sampled_from(["", ".png", ".pdf", ".svg", ".jpg"])

# files an output may never replace: a run's own files (the export's pair aside) and the
# command's inputs
_KEPT = ("run/summary.json", "run/config.toml", "run/metrics.csv", "run/preprocessing.json",
         "run/.fnn/lock")  # the manifest grows by a line when an export lands in the run
_INPUTS = {"predict": ("x.csv", "run/model.jax", "run/model.jax.json"),
           "predict-model": ("x.csv", "run/model.jax", "run/model.jax.json"),
           "safetensors": ("run/model.jax", "run/model.jax.json"),
           "compare": ("run/model.jax", "run/model.jax.json"), "export": ()}


@FUZZ
@given(command=_COMMANDS, target=_TARGETS, style=_STYLES, suffix=_SUFFIX)
def test_fuzz_outputs_onto_run_files(trained, command, target, style, suffix):
    with Workdir(trained) as root:
        run = root / "run"
        rel = _ckpt(run) if target == "CKPT" else target
        dest = Path("run", rel) if rel else Path("run")
        if suffix and command == "compare":
            dest = dest.with_name(dest.name + suffix)
        if style == "absolute":
            dest = root / dest
        elif style == "dotdot":
            inside = dest.parts[0] == "run" and dest != Path("run")  # not run.png beside it
            dest = Path("run") / "checkpoints" / ".." / dest.relative_to("run") if inside \
                else Path("run/checkpoints/..") if dest == Path("run") else dest
        elif style == "symlink":
            (root / "link").symlink_to(root / dest)
            dest = Path("link")
        kept = {k: v for k, v in tree(root).items()
                if k in _KEPT or k in _INPUTS[command] or k.startswith("run/checkpoints")}
        argv = {"export": ["export", "run", "--output", dest],
                "safetensors": ["export", "run", "--format", "safetensors", "--output", dest],
                "predict": ["predict", "run", "x.csv", "--output", dest],
                "predict-model": ["predict", "run/model.jax", "x.csv", "--output", dest],
                "compare": ["compare", "run", "--out", dest]}[command]
        run_in(root, *argv)
        after = tree(root)
        for path, digest in kept.items():  # never lost nor changed, whatever the exit status
            assert after.get(path) == digest, f"{path} lost or changed by {argv}"


# ---------------------------------------------------------------------------------------------
# --overwrite over a run holding a user's files
# ---------------------------------------------------------------------------------------------
_USER_FILES = st.lists(st.sampled_from([".git/HEAD", ".notes", "checkpoints/notes.txt",
                                        "checkpoints/.keep", "notes.txt", "summary.json",
                                        "metrics.csv", "curves.png", "CKPT", "model.jax",
                                        "tensorboard/README"]), max_size=3, unique=True)


@FUZZ
@given(user=_USER_FILES, config_inside=st.booleans(), resume=st.booleans())
def test_fuzz_overwrite_keeps_user_files(trained, user, config_inside, resume):
    with Workdir(trained) as root:
        run = root / "run"
        for name in user:
            p = run / (_ckpt(run) if name == "CKPT" else name)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"the user's own {name}\n")
        config = root / "config.toml"
        if config_inside:
            config = run / "config.toml"
            config.write_text("# my notes\n" + CONFIG)
        mine = {k: v for k, v in tree(root).items()
                if any(k == f"run/{n}" or (n == "CKPT" and k.startswith("run/checkpoints/ckpt"))
                       for n in user) or k == "x.csv" or (config_inside and k == "run/config.toml")}
        flags = ["--resume"] if resume else ["--overwrite"]
        rc, err = run_in(root, "train", config, "--out", "run", "--quiet", *flags)
        after = tree(root)
        for path, digest in mine.items():
            # a damaged file at a checkpoint's name that a resumed run writes again is kept
            # beside it (<name>.corrupt, with a warning), never replaced
            moved = [after[k] for k in after if k.startswith(path + ".corrupt")]
            assert after.get(path) == digest or digest in moved, \
                f"{path} lost or changed: rc {rc} {err}"


# ---------------------------------------------------------------------------------------------
# Concurrent writers: a second process holds the run directory's lock
# ---------------------------------------------------------------------------------------------
HOLDER = """\
import sys
from pathlib import Path
from fnn.experiment.runlock import RunLock
held = None
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "lock":
        held = RunLock(Path(arg))
    elif held is not None:
        held.release()
        held = None
    print("ok", flush=True)
"""


@pytest.fixture(scope="module")
def holder(tmp_path_factory):
    """A second process that locks and unlocks run directories on request."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            env=subprocess_env(tmp_path_factory.mktemp("holder")))

    def ask(line: str) -> None:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ok"

    yield ask
    proc.kill()
    proc.communicate()


@FUZZ
@given(flags=st.sampled_from([[], ["--overwrite"], ["--resume"]]),
       command=st.sampled_from(["train", "sweep"]), dotdot=st.booleans())
def test_fuzz_a_locked_run_directory_is_refused(trained, holder, flags, command, dotdot):
    with Workdir(trained) as root:
        holder(f"lock {root / 'run'}")
        try:
            out = "run/checkpoints/.." if dotdot else "run"
            extra = ["--seeds", "2"] if command == "sweep" else []
            rc, err = run_in(root, command, "config.toml", "--out", out, "--quiet", *flags,
                             *extra)
            assert rc == 2 and "in use by another fnn run" in err, err
        finally:
            holder("unlock")


# ---------------------------------------------------------------------------------------------
# A disk that fills up after a given number of bytes
# ---------------------------------------------------------------------------------------------
class FullDisk:
    """Every fnn write shares ``capacity`` bytes; past it a write raises ENOSPC."""

    def __init__(self, capacity: int):
        self.left = capacity

    def wrap(self, f):
        disk = self

        class Limited:
            def __getattr__(self, name):
                return getattr(f, name)

            def write(self, data):
                n = len(memoryview(data).cast("B"))
                if n > disk.left:
                    f.write(bytes(memoryview(data).cast("B")[:disk.left]))
                    disk.left = 0
                    raise OSError(28, "No space left on device")
                disk.left -= n
                return f.write(data)

        return Limited()


@FUZZ
@given(capacity=st.one_of(st.integers(0, 3000), st.integers(3000, 200_000)),
       command=st.sampled_from(["train", "train-overwrite", "export", "safetensors", "predict",
                                "compare"]))
def test_fuzz_a_full_disk(trained, monkeypatch, capacity, command):
    from fnn.util import fileio

    disk = FullDisk(capacity)
    real = fileio._write_temp
    with Workdir(trained) as root, monkeypatch.context() as m:
        m.setattr(fileio, "_write_temp", lambda path, write: real(path, lambda f: write(
            disk.wrap(f))))
        argv = {"train": ["train", "config.toml", "--out", "new", "--quiet"],
                "train-overwrite": ["train", "config.toml", "--out", "run", "--quiet",
                                    "--overwrite"],
                "export": ["export", "run", "--output", "out/m.jax"],
                "safetensors": ["export", "run", "--format", "safetensors", "--output",
                                "out/m.safetensors"],
                "predict": ["predict", "run", "x.csv", "--output", "out/p.csv"],
                "compare": ["compare", "run", "--out", "out/c.png"]}[command]
        inputs = {k: v for k, v in tree(root).items() if k in ("x.csv", "config.toml")}
        rc, err = run_in(root, *argv)
        after = tree(root)
        assert all(after.get(k) == v for k, v in inputs.items())
        if rc == 1:
            assert "cannot write" in err and "No space left on device" in err, err
        if command == "export":
            assert (root / "out/m.jax").exists() == (root / "out/m.jax.json").exists()
        if command == "train" and (root / "new").exists():
            assert list((root / "new" / "checkpoints").glob("ckpt-*.npz")), sorted(after)
        if command == "train-overwrite" and rc == 1 and (root / "run/config.toml").exists():
            assert list((root / "run" / "checkpoints").glob("ckpt-*.npz")), sorted(after)
