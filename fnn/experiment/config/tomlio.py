"""TOML in and out: parsing text and files into raw dicts, writing a Config back as TOML.

Contract: :func:`parse_toml` and :func:`read_raw` turn text or a file into a raw (TOML-shaped)
dict or raise :class:`ConfigError` with one line naming the file: syntax errors with line and
column, files that are not UTF-8 text, and nesting deeper than :data:`MAX_DEPTH` (checked
without recursion; tomllib's own RecursionError on ~1,000 levels is caught). :func:`to_toml`
writes every key of a Config so that it round-trips through :func:`~.validate.from_dict`.
Nothing here knows the schema beyond the section names.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from fnn.experiment.config.errors import ConfigError
from fnn.experiment.config.schema import SECTIONS, Config

MAX_DEPTH = 32  # tables and arrays; the schema needs 4 (sweep.optimizer.schedule.boundaries)


def too_deep(raw, limit: int = MAX_DEPTH):
    """The dotted path of the first value nested deeper than ``limit``, or None (iterative)."""
    stack = [(raw, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > limit:
            return path or "(top level)"
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node[:1000]))
    return None


def parse_toml(text: str, *, source: str = "") -> dict:
    """Parse TOML text; syntax errors become a ConfigError with line and column."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"TOML syntax error: {err}"], source) from None
    except RecursionError:
        raise ConfigError([f"TOML nesting too deep to parse; expected at most {MAX_DEPTH} "
                           "levels of tables and arrays"], source) from None
    except ValueError as err:  # e.g. an integer literal beyond str()'s 4300-digit limit
        raise ConfigError([f"TOML value cannot be read: {str(err).splitlines()[0]}"],
                          source) from None
    where = too_deep(raw)
    if where is not None:
        key = where.split("[")[0]
        raise ConfigError([f"{key}: nested deeper than {MAX_DEPTH} levels of tables and arrays;"
                           " expected key = value pairs in [section] tables"], source)
    return raw


def read_raw(path) -> dict:
    """Read a config file into a raw dict. Raises ConfigError for missing files or bad TOML."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"config file {str(p)!r} does not exist"])
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ConfigError([f"config file {str(p)!r} cannot be read: {err}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError([f"config file {str(p)!r} cannot be read: not UTF-8 text (byte "
                           f"0x{data[err.start]:02x} at offset {err.start}); expected a TOML "
                           "file"]) from None
    return parse_toml(text, source=str(p))


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (dotted keys of every non-table value)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def deepcopy(d):
    """A copy of a raw dict's tables and lists (values are immutable)."""
    if isinstance(d, dict):
        return {k: deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [deepcopy(v) for v in d]
    return d


def to_dict(cfg: Config) -> dict:
    """A TOML-shaped dict of every key (unset optional keys omitted)."""
    out = {}
    for sec in SECTIONS:
        out[sec] = _section_dict(getattr(cfg, sec))
    if cfg.model.layers:  # a layer stack replaces the MLP keys; without them it round-trips
        for k in ("hidden", "activation", "initializer"):
            out["model"].pop(k, None)
    else:
        out["model"].pop("layers", None)
    if cfg.sweep:
        sweep = {}
        for key, values in cfg.sweep:
            node = sweep
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = list(values)
        out["sweep"] = sweep
    return out


def _section_dict(node) -> dict:
    d = {}
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if dataclasses.is_dataclass(v):
            d[f.name] = _section_dict(v)
        elif v is not None:
            d[f.name] = _plain(v)
    return d


def _plain(v):
    """Tuples to lists, recursively (dicts kept): what TOML writes."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf") if v == v else "nan"
    if isinstance(v, str):  # a TOML basic string: escape \, " and control characters
        return '"' + "".join(
            "\\" + ch if ch in '\\"' else
            f"\\u{ord(ch):04X}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch
            for ch in v) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table (the entries of model.layers)
        return "{" + ", ".join(f"{_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(d: dict, _prefix: str = "") -> str:
    """Write a TOML-shaped dict (tables, scalars, lists) as TOML text."""
    lines, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{_key(k)} = {toml_value(v)}")
    out = "\n".join(lines)
    for k, v in tables:
        name = f"{_prefix}.{_key(k)}" if _prefix else _key(k)
        scalars = {kk: vv for kk, vv in v.items() if not isinstance(vv, dict)}
        body = dumps(v, name)
        if scalars or not body:
            out += ("\n\n" if out else "") + f"[{name}]\n" + body
        else:
            out += ("\n\n" if out else "") + body
    return out.strip() + "\n" if _prefix == "" else out


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else f'"{k}"'


def to_toml(cfg: Config) -> str:
    """The resolved config as TOML text (round-trips through :func:`from_dict`)."""
    return dumps(to_dict(cfg))
