"""Validation of one config value against its schema field.

Contract: :func:`check_value` takes a dotted key, a raw (TOML-shaped) value and the field's
schema metadata, and returns ``(normalized value, None)`` or ``(None, one error line)``. The
line starts with the full key and says what was expected. It never raises for any value a
TOML file or ``--set`` can produce (huge integers, NaN, NUL characters, nested lists).
"""

from __future__ import annotations

import dataclasses
import math

from fnn.experiment.config.errors import describe, short_int, suggest


def _component_error(key: str, value: str):
    """A run name must be exactly one path component (or empty: the default)."""
    if value in (".", "..") or "/" in value or "\\" in value:
        return (f"{key}: {value!r}; expected one directory name (no '/', '\\', '.' or '..'), "
                "the run is written to output.dir/<name>")
    if value != value.strip() and not value.strip():
        return f"{key}: {value!r} is blank; expected a directory name (or \"\" for the default)"
    return None


def check_value(key: str, value, f: dataclasses.Field):
    """Validate and normalize one value for the field ``f`` at dotted ``key``.

    Returns:
      (normalized value, error line or None).
    """
    m = f.metadata
    typ = m["type"]
    optional = typ.endswith("?")
    typ = typ.rstrip("?")

    def bad(expected):
        return None, f"{key}: {describe(value)}; expected {expected}"

    def check_range(v):
        lo, hi = m["min"], m["max"]
        shown = short_int(v) if isinstance(v, int) else repr(v)
        if lo is not None and (v < lo or (m["min_open"] and v == lo)):
            return f"{key}: {shown} out of range; expected {'>' if m['min_open'] else '>='} {lo}"
        if hi is not None and (v > hi or (m["max_open"] and v == hi)):
            return f"{key}: {shown} out of range; expected {'<' if m['max_open'] else '<='} {hi}"
        if isinstance(v, float) and not math.isfinite(v):
            return f"{key}: {v!r}; expected a finite number"
        return None

    def check_choice(v):
        choices = m["choices"]
        if choices and v not in choices:
            shown = ", ".join(repr(c) for c in choices if c != "")
            return f"{key}: {v!r} is not valid{suggest(v, choices)}; expected one of: {shown}"
        return None

    def check_text(v):
        if "\x00" in v:
            return f"{key}: {v!r} contains a NUL character (\\x00); expected text without it"
        if m.get("component"):
            return _component_error(key, v)
        return check_choice(v)

    if optional and value is None:
        return None, None
    if typ == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return bad("an integer")
        return value, check_range(value)
    if typ == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad("a number")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the float range
            return None, f"{key}: {short_int(value)} out of range; expected a finite number"
        return number, check_range(number)
    if typ == "bool":
        if not isinstance(value, bool):
            return bad("true or false")
        return value, None
    if typ == "str":
        if not isinstance(value, str):
            return bad("a string")
        return value, check_text(value)
    if typ == "int_list":
        if not isinstance(value, (list, tuple)) or any(
                isinstance(v, bool) or not isinstance(v, int) for v in value):
            return bad("a list of integers, e.g. [64, 64]")
        if m.get("max_len") is not None and len(value) > m["max_len"]:
            return None, f"{key}: {len(value)} values; expected at most {m['max_len']}"
        for v in value:
            err = check_range(v)
            if err:
                return None, err
        return tuple(value), None
    if typ == "str_or_list":
        if isinstance(value, str):
            return value, check_text(value)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            for v in value:
                err = check_text(v)
                if err:
                    return None, err
            return tuple(value), None
        return bad("a name or a list of names")
    if typ == "layers":  # [[model.layers]]: each table checked by its layer type
        from fnn.experiment import layer_specs

        layers, errors = layer_specs.check(value, key)
        return (layers, None) if not errors else (None, errors[0])
    raise AssertionError(f"unknown schema type {typ}")  # pragma: no cover
