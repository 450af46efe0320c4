"""``--set KEY=VALUE`` overrides, loading a config file, and the members of a sweep.

Contract: :func:`parse_override` reads one ``KEY=VALUE`` (the value as a TOML value, a bare
word as a string); :func:`apply_overrides` puts them into a raw dict (unknown keys refused,
with "did you mean"); :func:`load` = read, override, validate, and tell the user (one
:class:`ConfigNotice` warning each) how an ambiguous setting is read. Values from ``--set``
are checked exactly like the file's (ranges included), and every problem is a ConfigError.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from fnn.experiment.config.errors import ConfigError, suggest
from fnn.experiment.config.resolve import notes
from fnn.experiment.config.schema import MAX_MEMBERS, Config, all_keys
from fnn.experiment.config.tomlio import MAX_DEPTH, too_deep, deepcopy, read_raw
from fnn.experiment.config.validate import from_dict


class ConfigNotice(UserWarning):
    """How fnn reads an ambiguous but valid setting (printed as one line by the CLI)."""


def parse_override(item: str) -> tuple[str, Any]:
    """``"optimizer.learning_rate=3e-3"`` -> ("optimizer.learning_rate", 0.003).

    The value is read as a TOML value (numbers, true/false, [lists], "strings"); a bare word
    that is not valid TOML is taken as a string.
    """
    if "=" not in item:
        raise ConfigError([f"--set {item!r}: expected KEY=VALUE, e.g. optimizer.learning_rate=3e-3"])
    key, _, text = item.partition("=")
    key, text = key.strip(), text.strip()
    if not key:
        raise ConfigError([f"--set {item!r}: empty key"])
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    except (RecursionError, ValueError):
        raise ConfigError([f"--set {key}: the value cannot be read (nested too deeply, or an "
                           "integer of more than 4300 digits)"]) from None
    if too_deep(value, MAX_DEPTH - 1) is not None:
        raise ConfigError([f"--set {key}: value nested deeper than {MAX_DEPTH} levels"])
    return key, value


def apply_overrides(raw: dict, overrides) -> dict:
    """Apply ``--set`` items to a raw dict (validation happens in :func:`from_dict`)."""
    raw = deepcopy(raw)
    errors = []
    known = all_keys()
    for item in overrides:
        try:
            key, value = parse_override(item)
        except ConfigError as err:
            errors.extend(err.errors)
            continue
        if key not in known and not key.startswith("sweep."):
            errors.append(f"--set {key}: unknown key{suggest(key, known)}")
            continue
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    if errors:
        raise ConfigError(errors)
    return raw


def load(path, overrides=()) -> Config:
    """Load, override and validate a config file.

    Args:
      path: a TOML file.
      overrides: ``KEY=VALUE`` strings (``--set``), type-checked like the file.
    Returns:
      the frozen :class:`Config`.
    Raises:
      ConfigError: every problem, one line each, with full dotted keys.
    Warns:
      ConfigNotice: one per reading the user should know of (:func:`~.resolve.notes`).
    """
    raw = read_raw(path)
    try:
        raw = apply_overrides(raw, overrides)
    except ConfigError as err:
        raise ConfigError(err.errors, str(path)) from None
    cfg = from_dict(raw, source=str(path))
    for line in notes(cfg):
        warnings.warn(line, ConfigNotice, stacklevel=2)
    return cfg


def sweep_members(cfg: Config, grid=None, seeds=None) -> list[dict]:
    """The members of a sweep: the cartesian product of the grid and the seeds.

    Args:
      cfg: the config.  grid: ((key, values), ...) — default ``cfg.sweep``.
      seeds: list of seeds — default ``training.seeds`` or ``[training.seed]``.
    Returns:
      list of {dotted key: value} dicts, each including "training.seed".
    """
    grid = cfg.sweep if grid is None else grid
    if seeds is None:
        seeds = list(cfg.training.seeds) or [cfg.training.seed]
    keys = [k for k, _ in grid]
    count = len(seeds)
    for _, values in grid:
        count *= len(values)
    if count > MAX_MEMBERS:
        sizes = " x ".join([*(str(len(v)) for _, v in grid), f"{len(seeds)} seed(s)"])
        raise ConfigError([f"sweep: {sizes} = {count} members; expected at most {MAX_MEMBERS}"
                           " (split the sweep into several runs)"])
    members = []
    for combo in itertools.product(*[v for _, v in grid]):
        for seed in seeds:
            members.append({**dict(zip(keys, combo)), "training.seed": seed})
    return members
