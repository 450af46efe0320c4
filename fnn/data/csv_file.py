"""Reading a user's CSV file (``load("csv", path=..., target=...)``) with every check it needs.

The first row is a header of unique column names; the target column is chosen by name (default:
the last column; a list of names gives a multi-output regression target); every other column is a
feature and must be numeric. Blank lines are skipped. Targets follow :mod:`fnn.data.tabular`'s
rules.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from fnn.data.tabular import TabularData, check_task, encode_targets, regular_file
from fnn.data.validate import DataError, to_float32


def _csv_error(where: str, line: int, e: Exception) -> DataError:
    text = str(e)
    if "field larger than field limit" in text:
        return DataError(f"{where}: line {line}: not readable as CSV (a field longer than "
                         f"{csv.field_size_limit()} characters, the csv module's limit)")
    if "NUL" in text:
        return DataError(f"{where}: line {line}: not readable as CSV (a NUL character); expected a text file")
    if isinstance(e, UnicodeDecodeError):
        return DataError(f"{where}: not readable as CSV (not UTF-8 text: byte 0x{e.object[e.start]:02x} "
                         f"at offset {e.start}); expected a text file")
    return DataError(f"{where}: line {line}: not readable as CSV ({text.splitlines()[0] if text else e!r})")


def csv_rows(path: Path, where: str, delimiter: str) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the non-blank data rows and each row's file line (1-based)."""
    regular_file(path, "csv")
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise DataError(f"path={str(path)!r}: cannot open the csv file ({e.strerror or e})") from None
    with f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise DataError(f"{where}: empty; expected a header row of column names")
            header = [h.strip() for h in header]
            if "" in header:
                raise DataError(f"{where}: header column {header.index('') + 1} has no name")
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise DataError(f"{where}: duplicate column name(s) {', '.join(map(repr, dup))} in the header")
            rows, lines = [], []
            for row in reader:
                if not row or all(c.strip() == "" for c in row):
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{where}: line {reader.line_num} has {len(row)} field(s), expected {len(header)} (as in the header)"
                    )
                rows.append(row)
                lines.append(reader.line_num)
        except (csv.Error, UnicodeDecodeError) as e:
            raise _csv_error(where, max(reader.line_num, 1), e) from None
    if not rows:
        raise DataError(f"{where}: no data rows after the header; expected at least one example")
    return header, rows, lines


def read_csv(
    path: str | os.PathLike,
    *,
    target: str | Sequence[str] | None = None,
    delimiter: str = ",",
    task: str = "auto",
    num_classes: int | None = None,
) -> TabularData:
    """Read a CSV file with a header into features and targets.

    Args:
      path: the file (UTF-8, optional BOM).
      target: target column name, a list of names (multi-output regression) or None (last column).
      delimiter: field separator.
      task: "auto", "classification" or "regression" (see the module docstring).
      num_classes: declared number of classes (classification with integer labels).

    Returns:
      :class:`TabularData` with ``x`` float32 ``(n, columns - targets)``.

    Raises:
      DataError: missing/empty file, bad header, unknown target, ragged rows, a non-numeric feature
        (the message names the first offending column, line and value), bad labels.
    """
    path = Path(path)
    task = check_task(task)
    where = f"csv file {str(path)!r}"
    header, rows, lines = csv_rows(path, where, delimiter)
    if target is None:
        targets = [header[-1]]
    elif isinstance(target, str):
        targets = [target]
    else:
        targets = list(target)
    for t in targets:
        if t not in header:
            raise DataError(f"target={t!r}: no such column in {where}; columns are {', '.join(header)}")
    if len(targets) > 1 and task == "classification":
        raise DataError(f"target={targets!r}: several target columns need task='regression'")
    t_idx = [header.index(t) for t in targets]
    f_idx = [j for j in range(len(header)) if j not in t_idx]
    if not f_idx:
        raise DataError(f"{where}: only the target column(s); expected at least one feature column")
    cells = np.array(rows, dtype=object)
    try:
        x = np.array(cells[:, f_idx].astype(str), dtype=np.float64)
    except ValueError:
        x = None
    if x is None:
        _raise_not_numeric(rows, f_idx, header, lines, where,
                           "expected numeric features (only the target may hold text)")
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"{where}: column {header[f_idx[c]]!r}, line {lines[r]}: value {rows[r][f_idx[c]]!r} is not finite "
            f"({int(bad.sum())} NaN/inf feature value(s)); expected finite numbers"
        )
    raw_y = cells[:, t_idx]
    if len(targets) == 1:
        col = raw_y[:, 0].astype(str)
        stripped = np.char.strip(col)
        empty = stripped == ""
        if empty.any():
            r = int(np.argmax(empty))
            raise DataError(f"{where}: column {targets[0]!r}, line {lines[r]}: missing target value")
        try:
            y_raw = np.array(stripped, dtype=np.float64)
        except ValueError:
            if task == "regression":
                for r, v in enumerate(stripped.tolist()):
                    try:
                        float(v)
                    except ValueError:
                        raise DataError(
                            f"{where}: column {targets[0]!r}, line {lines[r]}: value {v!r} is not numeric; "
                            "expected numbers for task='regression'"
                        ) from None
            y_raw = stripped
    else:
        try:
            y_raw = np.array(raw_y.astype(str), dtype=np.float64)
        except ValueError:
            _raise_not_numeric(rows, t_idx, header, lines, where,
                               "expected numbers for a multi-column regression target")
            raise
    (y,), task, k, classes = encode_targets([y_raw], task=task, num_classes=num_classes, where=where,
                                             names=[f"column {targets[0]!r}" if len(targets) == 1 else "target"],
                                             parsed_text=True, lines=[lines])
    return TabularData(x=to_float32(x, f"{where}: features"), y=y, task=task, num_classes=k,
                       classes=classes)


def _raise_not_numeric(rows, cols, header, lines, where: str, expected: str) -> None:
    """One line naming the first cell of ``cols`` that is not a number (returns if none is)."""
    for r, row in enumerate(rows):
        for j in cols:
            try:
                float(row[j])
            except ValueError:
                raise DataError(f"{where}: column {header[j]!r}, line {lines[r]}: value {row[j]!r} "
                                f"is not numeric; {expected}") from None
