"""The run directory: where a run goes, what may be replaced, and what a resume must match.

A run directory holds ``config.toml`` (the resolved config), ``metrics.csv``, ``summary.json``,
the pictures and ``checkpoints/`` (``checkpoints/group-<i>/`` when a sweep has several groups).
Every check here runs before anything is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence

from fnn.experiment import config as config_mod
from fnn.experiment import runlock
from fnn.util import fileio

CONFIG_FILE = "config.toml"


class UsageError(ValueError):
    """Bad input (arguments, run directory state): the CLI exits with status 2."""


# What an fnn run directory may hold: ``--overwrite`` replaces a directory only when every entry
# is one of these (anything else is a user's file, and the run is refused naming it).
RUN_FILES = frozenset({CONFIG_FILE, "metrics.csv", "summary.json", "checkpoints", "curves.png",
                       "gradients.png", "activations.png", "decision_boundary.png",
                       "confusion.png", "predictions.csv", "model.jax", "model.jax.json",
                       "model.safetensors", "misclassified.png", "tensorboard",
                       "preprocessing.json", "error.log", "vocab.json",
                       "lr_find.png", "lr_find.csv", "lr_find_constant.csv"})
# Further names fnn writes at the top: a sweep member's export (model-<i>.jax, ...).
_MEMBER_EXPORT = re.compile(r"^model-\d+\.(jax|jax\.json|safetensors)$")
_CHECKPOINT = re.compile(r"^ckpt-\d+\.npz$")
_GROUP = re.compile(r"^group-\d+$")
SUBDIRS = ("checkpoints", "tensorboard", runlock.HIDDEN)  # everything under these is fnn's


def is_fnn_name(rel: Path) -> bool:
    """Whether a run writes a file at ``rel`` (relative to the run directory): a name of
    :data:`RUN_FILES`, a member export, a checkpoint (``checkpoints/[group-<i>/]ckpt-*.npz``)
    or a TensorBoard events file."""
    parts = rel.parts
    if len(parts) == 1:
        return parts[0] in RUN_FILES or bool(_MEMBER_EXPORT.match(parts[0]))
    if parts[0] == "checkpoints":
        return bool(_CHECKPOINT.match(parts[-1])) and (
            len(parts) == 2 or (len(parts) == 3 and bool(_GROUP.match(parts[1]))))
    return parts[0] == "tensorboard" and parts[-1].startswith("events.out.tfevents.")


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
        if not is_fnn_name(Path(entry.name)) and not entry.name.startswith("."):
            return entry.name
    return None




def check_run_dir(run_dir: Path, *, overwrite: bool, resume: bool,
                  inputs: Sequence[Path] = ()) -> None:
    """Refuse to touch a non-empty run directory unless --overwrite or --resume (exit 2).

    ``--overwrite`` may replace an fnn run directory only; a directory holding anything else is
    refused with the first foreign entry named, and so is one that holds a file of the run's own
    (``inputs``: the config being trained, a data file) or a file named like fnn's that fnn did
    not write (:func:`overwrite_plan`). ``--resume`` needs a config and a ``checkpoints/`` folder.
    The checks look at the real path (``..`` and symlinks resolved).
    """
    shown = str(run_dir)
    run_dir = real_path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run directory {shown!r} exists and is not a directory")
    # fnn's own .fnn/ (lock, manifest) alone is an empty run directory
    non_empty = run_dir.is_dir() and any(p.name != runlock.HIDDEN for p in run_dir.iterdir())
    if resume:
        if not non_empty or not (run_dir / CONFIG_FILE).is_file():
            raise UsageError(f"--resume: {shown!r} holds no run to resume (no {CONFIG_FILE})")
        if not (run_dir / "checkpoints").is_dir():
            # A run makes checkpoints/ when it starts (a run killed before its first checkpoint
            # resumes from epoch 0); without it there is nothing to resume.
            raise UsageError(f"--resume: {shown!r} has nothing to resume (no"
                             f" {run_dir / 'checkpoints'}); train it again with --overwrite")
        changed = changed_file(run_dir)  # what a resumed run rewrites must still be fnn's
        if changed is not None:
            raise UsageError(f"--resume: {str(Path(shown) / changed)!r} was not written by fnn "
                             "or was changed since, and the resumed run would replace it: move "
                             "it away first")
        return
    if non_empty and not overwrite:
        raise UsageError(
            f"run directory {shown!r} is not empty; pass --overwrite to replace it or "
            "--resume to continue it"
        )
    if non_empty and overwrite:
        overwrite_plan(run_dir, shown=shown, inputs=inputs)


def changed_file(run_dir: Path) -> Optional[str]:
    """The first file a resumed run rewrites (its reports, pictures and checkpoints; not
    ``config.toml`` nor the exports) that the manifest does not list as it is now, or None.
    A directory without a manifest (an earlier fnn) is not checked."""
    if not runlock.has_manifest(run_dir):
        return None
    entries = runlock.read_manifest(run_dir)
    for root, dirs, files in os.walk(run_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "tensorboard")
        for name in sorted(files):
            rel = (Path(root) / name).relative_to(run_dir)
            if (is_fnn_name(rel) and rel.name != CONFIG_FILE and not rel.name.startswith("model")
                    and not runlock.written_by_fnn(run_dir, rel.as_posix(), entries)
                    and not _checkpoint_file(run_dir / rel)):
                return rel.as_posix()
    return None


def _checkpoint_file(path: Path) -> bool:
    """A checkpoint file under checkpoints/: a run killed between saving it and recording it
    in the manifest (kill -9) left it, possibly torn; --resume continues from the newest
    complete one (:func:`fnn.experiment.checkpoint.latest` skips and warns about a torn one)."""
    return path.name.startswith("ckpt-") and (
        path.parent.name == "checkpoints" or path.parent.name.startswith("group-"))


def overwrite_plan(run_dir: Path, *, shown: Optional[str] = None,
                   inputs: Sequence[Path] = ()) -> list[Path]:
    """The files ``--overwrite`` deletes in ``run_dir``: only what fnn wrote there.

    A file is deleted when the run directory's manifest (:mod:`fnn.experiment.runlock`) lists
    it with its current size and mtime, or it is a TensorBoard events file, or an fnn temp file
    of a process that no longer runs; a directory written before manifests existed (none, but
    ``checkpoints/``) has its fnn-named files deleted. Dot-files (``.git/``, ``.notes``) and
    files fnn does not name (``checkpoints/notes.txt``) are kept.

    Raises:
      UsageError: a top-level entry that is not fnn's, no ``config.toml``, an input of this run
        inside the directory, or a file named like fnn's that fnn did not write or that was
        changed since (each one line, naming the path).
    """
    run_dir = real_path(run_dir)
    shown = shown if shown is not None else str(run_dir)
    if not run_dir.is_dir() or all(p.name == runlock.HIDDEN for p in run_dir.iterdir()):
        return []  # nothing to replace
    foreign = foreign_entry(run_dir)
    entries = runlock.read_manifest(run_dir)
    legacy = not runlock.has_manifest(run_dir)
    if foreign is not None or not (run_dir / CONFIG_FILE).is_file() or (
            legacy and not (run_dir / "checkpoints").is_dir()):
        what = (f"holds {foreign!r}, which" if foreign else f"has no {CONFIG_FILE}, so it"
                if not (run_dir / CONFIG_FILE).is_file() else
                "has no checkpoints/ and no fnn manifest, so it")
        raise UsageError(f"--overwrite: {shown!r} {what} is not part of an fnn run; "
                         "--overwrite replaces run directories only")
    for given in inputs:
        real = real_path(Path(given))
        if real == run_dir or run_dir in real.parents:
            raise UsageError(f"--overwrite: {str(given)!r} is inside the run directory {shown!r}"
                             " and --overwrite would replace it; keep the config and data "
                             "outside the run directory (or pick another --out)")
    doomed = []
    for root, dirs, files in os.walk(run_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            rel = path.relative_to(run_dir)
            if name.startswith("."):
                if fileio.is_stale_temp(path):
                    doomed.append(path)
                continue
            if runlock.written_by_fnn(run_dir, rel.as_posix(), entries) or (
                    rel.parts[0] == "tensorboard" and is_fnn_name(rel)) or (
                    legacy and is_fnn_name(rel)):
                doomed.append(path)
            elif is_fnn_name(rel):
                raise UsageError(f"--overwrite: {str(Path(shown) / rel)!r} was not written by "
                                 "fnn or was changed since; --overwrite deletes only fnn's own "
                                 "files: move it away or pick another --out")
    return doomed


def clear_run_dir(run_dir: Path, *, inputs: Sequence[Path] = ()) -> None:
    """Delete what :func:`overwrite_plan` lists, then the emptied fnn folders (``checkpoints/``,
    ``tensorboard/``); the directory itself and every other file stay."""
    run_dir = real_path(run_dir)
    for path in overwrite_plan(run_dir, inputs=inputs):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:
            raise fileio.WriteError(path, err) from None
    for sub in ("checkpoints", "tensorboard"):
        top = run_dir / sub
        if top.is_dir():
            for root, dirs, _ in sorted(os.walk(top, topdown=False)):
                if not os.listdir(root):
                    os.rmdir(root)
    runlock.reset_manifest(run_dir)


def run_dir_of(path: Path) -> Optional[Path]:
    """The run directory ``path`` (a real path) lies in: its parent or the folder above a
    ``checkpoints/``, ``tensorboard/`` or ``.fnn/`` entry; None outside run directories. A
    run directory holds ``config.toml`` and ``checkpoints/`` or ``.fnn/``."""
    for d in list(path.parents)[:4]:
        if (d / CONFIG_FILE).is_file() and ((d / "checkpoints").is_dir() or
                                            (d / runlock.HIDDEN).is_dir()):
            rel = path.relative_to(d)
            if len(rel.parts) == 1 or rel.parts[0] in SUBDIRS:
                return d
            return None
    return None


def check_output(path, flag: str, *, own: str = "", inputs: Sequence[tuple] = ()) -> Path:
    """Refuse an output path that would overwrite what a user keeps (exit 2, one line).

    Every command that writes a file the user names (``fnn export --output``, ``predict
    --output``, ``compare --out``) checks its path here before anything is computed or written:
    not a directory, not one of its own inputs, and not a file of a run directory (its config,
    metrics, summary, preprocessing, pictures, checkpoints, exported models), except a file of
    the kind the command itself writes (``own``: a regular expression on the file name, such
    as the exports of ``fnn export``).

    Args:
      path: the output as the user wrote it.  flag: the option, for the message.
      own: the names (full match) the command may replace inside a run directory.
      inputs: (path, what) pairs the output may not be, e.g. (x.csv, "the input file").
    Returns:
      ``path`` as a Path.
    """
    out = Path(path)
    shown = str(out)
    if out.is_dir():
        raise UsageError(f"{flag}: {shown!r} is a directory; expected a file name")
    real = real_path(out)
    for given, what in inputs:
        if real == real_path(Path(given)):
            raise UsageError(f"{flag}: {shown!r} is {what}; expected another path")
    run_dir = run_dir_of(real)
    if run_dir is not None:
        rel = real.relative_to(run_dir)
        mine = len(rel.parts) == 1 and own and re.fullmatch(own, rel.name)
        if not mine and (is_fnn_name(rel) or rel.parts[0] in SUBDIRS):
            raise UsageError(f"{flag}: {shown!r} is the file {rel.as_posix()} of the run directory"
                             f" {str(run_dir)!r}; fnn never writes over a run's own files; "
                             "expected another path")
    return out


def write_output(files: Sequence[tuple]) -> None:
    """Write a command's output files (checked by :func:`check_output`) as one atomic step;
    a file that lands in a run directory is recorded in its manifest.

    Args:
      files: (path, bytes) pairs, the main file first (a model, then its sidecar).
    Raises:
      fnn.util.fileio.WriteError: one line naming the file; nothing of the group is left.
    """
    fileio.atomic_write_group([(Path(p), (lambda data: lambda f: f.write(data))(d))
                               for p, d in files])
    for p, _ in files:
        real = real_path(Path(p))
        run_dir = run_dir_of(real)
        if run_dir is not None and runlock.has_manifest(run_dir):  # a legacy one stays so
            runlock.record(run_dir, real)


def adopt_legacy(run_dir: Path) -> None:
    """Record the fnn-named files of a run directory written before manifests existed (on
    ``--resume``), so that its manifest lists them beside what the resumed run writes."""
    run_dir = real_path(run_dir)
    if runlock.has_manifest(run_dir):
        return
    for root, dirs, files in os.walk(run_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(root) / name
            if is_fnn_name(path.relative_to(run_dir)):
                runlock.record(run_dir, path)


def check_resume_config(run_dir: Path, cfg, *, allowed: Sequence[str] = ()):
    """The config of a resumed run must equal the saved one, output.* and parallel.* aside
    (and the dotted keys ``allowed``, which the caller checks: a longer run,
    :mod:`fnn.experiment.extend`).

    Returns:
      the saved config.
    Raises:
      UsageError: another key differs (one line naming the first three).
    """
    saved = read_config(run_dir)
    a, b = config_mod.to_dict(saved), config_mod.to_dict(cfg)
    for d in (a, b):  # where and how a run executes may change between sessions
        d.pop("output", None), d.pop("parallel", None)
    fa, fb = config_mod.flatten(a), config_mod.flatten(b)
    diff = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k) and k not in allowed)
    if diff:
        shown = ", ".join(f"{k} ({fa.get(k)!r} -> {fb.get(k)!r})" for k in diff[:3])
        raise UsageError(f"--resume: the config differs from {run_dir / CONFIG_FILE}: {shown}")
    return saved


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
