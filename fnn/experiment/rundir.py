"""The run directory: where a run goes, what may be replaced, and what a resume must match.

A run directory holds ``config.toml`` (the resolved config), ``metrics.csv``, ``summary.json``,
the pictures and ``checkpoints/`` (``checkpoints/group-<i>/`` when a sweep has several groups).
Every check here runs before anything is written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from fnn.experiment import config as config_mod

CONFIG_FILE = "config.toml"


class UsageError(ValueError):
    """Bad input (arguments, run directory state): the CLI exits with status 2."""


# What an fnn run directory may hold: ``--overwrite`` replaces a directory only when every entry
# is one of these (anything else is a user's file, and the run is refused naming it).
RUN_FILES = frozenset({CONFIG_FILE, "metrics.csv", "summary.json", "checkpoints", "curves.png",
                       "gradients.png", "activations.png", "decision_boundary.png",
                       "confusion.png", "predictions.csv", "model.jax", "model.jax.json",
                       "model.safetensors", "misclassified.png", "tensorboard",
                       "preprocessing.json", "error.log"})


def run_dir_for(cfg, out: Optional[str]) -> Path:
    """``--out`` if given, else ``output.dir / (output.name or the config file's stem)``."""
    if out:
        return Path(out)
    name = cfg.output.name or (Path(cfg.source).stem if cfg.source else "run")
    return Path(cfg.output.dir) / name


def real_path(path: Path) -> Path:
    """``path`` with symlinks and ``..`` resolved: ``old/fresh/..`` is ``old``, whether or not
    ``old/fresh`` exists. Every check on a run directory looks at this path."""
    return Path(os.path.realpath(path))


def foreign_entry(run_dir: Path) -> Optional[str]:
    """The first entry of ``run_dir`` (sorted) that an fnn run does not write, or None."""
    for entry in sorted(run_dir.iterdir(), key=lambda p: p.name):
        if entry.name not in RUN_FILES and not entry.name.startswith("."):
            return entry.name
    return None




def check_run_dir(run_dir: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse to touch a non-empty run directory unless --overwrite or --resume (exit 2).

    ``--overwrite`` may replace an fnn run directory only; a directory holding anything else is
    refused with the first foreign entry named. ``--resume`` needs a config and a ``checkpoints/`` folder.
    The checks look at the real path (``..`` and symlinks resolved).
    """
    shown = str(run_dir)
    run_dir = real_path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run directory {shown!r} exists and is not a directory")
    non_empty = run_dir.is_dir() and any(run_dir.iterdir())
    if resume:
        if not non_empty or not (run_dir / CONFIG_FILE).is_file():
            raise UsageError(f"--resume: {shown!r} holds no run to resume (no {CONFIG_FILE})")
        if not (run_dir / "checkpoints").is_dir():
            # A run makes checkpoints/ when it starts (a run killed before its first checkpoint
            # resumes from epoch 0); without it there is nothing to resume.
            raise UsageError(f"--resume: {shown!r} has nothing to resume (no"
                             f" {run_dir / 'checkpoints'}); train it again with --overwrite")
        return
    if non_empty and not overwrite:
        raise UsageError(
            f"run directory {shown!r} is not empty; pass --overwrite to replace it or "
            "--resume to continue it"
        )
    if non_empty and overwrite:
        foreign = foreign_entry(run_dir)
        if foreign is not None or not (run_dir / CONFIG_FILE).is_file():
            what = f"holds {foreign!r}, which" if foreign else f"has no {CONFIG_FILE}, so it"
            raise UsageError(f"--overwrite: {shown!r} {what} is not part of an fnn run; "
                             "--overwrite replaces run directories only")


def remove_run_dir(run_dir: Path) -> None:
    """Delete an fnn run directory that :func:`check_run_dir` accepted for ``--overwrite``."""
    shutil.rmtree(real_path(run_dir))


def check_resume_config(run_dir: Path, cfg) -> None:
    """The config of a resumed run must equal the saved one (output.* aside)."""
    saved = read_config(run_dir)
    a, b = config_mod.to_dict(saved), config_mod.to_dict(cfg)
    for d in (a, b):  # where and how a run executes may change between sessions
        d.pop("output", None), d.pop("parallel", None)
    fa, fb = config_mod.flatten(a), config_mod.flatten(b)
    diff = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
    if diff:
        shown = ", ".join(f"{k} ({fa.get(k)!r} -> {fb.get(k)!r})" for k in diff[:3])
        raise UsageError(f"--resume: the config differs from {run_dir / CONFIG_FILE}: {shown}")


def checkpoint_dir(run_dir: Path, group_index: int, num_groups: int) -> Path:
    """``checkpoints/``, or ``checkpoints/group-<i>/`` when a sweep has several groups."""
    return run_dir / "checkpoints" / (f"group-{group_index}" if num_groups > 1 else "")


def read_config(run_dir: Path):
    """The resolved config a run saved, or a one-line UsageError naming the file."""
    path = run_dir / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not a UTF-8 text file (byte {err.start}); is this an fnn run"
                         " directory?") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot be read ({err.strerror})") from None
    return config_mod.from_dict(config_mod.parse_toml(text, source=str(path)), source=str(path))
