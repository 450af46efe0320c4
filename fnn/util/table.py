"""A plain aligned text table for the terminal (results, gradcheck and backprop-trace tables)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _is_number(v: Any) -> bool:
    if isinstance(v, bool) or isinstance(v, np.bool_):
        return False
    return isinstance(v, (int, float, np.integer, np.floating))


def _format_value(v: Any, floatfmt: str) -> str:
    if v is None:
        return "-"
    if hasattr(v, "__array__") and not isinstance(v, np.generic) and np.ndim(v) == 0:
        v = np.asarray(v)[()]
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return format(float(v), floatfmt)
    return str(v)


def format_table(rows: list[dict], columns: list[str], *, floatfmt: str = ".4g") -> str:
    """A plain aligned text table: header, a rule of dashes, one line per row.

    Numeric columns are right-aligned, others left-aligned; columns are separated by two
    spaces. Floats use ``floatfmt``; ints as is; None and missing keys as ``-``.

    Args:
      rows: one dict per row.
      columns: the keys to show, in order (also the header).
      floatfmt: a format spec for floats, e.g. ".4g" or ".3f".
    Returns:
      the table as a string without a trailing newline.
    """
    cells = [[_format_value(row.get(col), floatfmt) for col in columns] for row in rows]
    numeric = []
    for j, col in enumerate(columns):
        values = [row.get(col) for row in rows]
        values = [np.asarray(v)[()] if hasattr(v, "__array__") and np.ndim(v) == 0 else v
                  for v in values if v is not None]
        numeric.append(bool(values) and all(_is_number(v) for v in values))
    widths = [max([len(str(col))] + [len(r[j]) for r in cells]) for j, col in enumerate(columns)]

    def line(items):
        return "  ".join(s.rjust(w) if num else s.ljust(w)
                         for s, w, num in zip(items, widths, numeric)).rstrip()

    out = [line([str(c) for c in columns]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)
