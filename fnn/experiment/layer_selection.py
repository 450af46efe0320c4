"""Layer selections: ``all``, or indices and slices of a network's layers (``":-1"``,
``"0,2:4"``), as ``model.init_layers`` and ``fnn train --layers`` take them
(:mod:`fnn.experiment.init_from`).

    all       every layer
    i         layer i; negative counts from the end (-1 is the output layer)
    a:b       layers a .. b-1 (a Python slice; either end may be left out or negative)
    i,a:b     the union

The syntax is checked with the config (:func:`spec_error`); the indices against a network when
the run is built (:func:`parse_layers`).
"""

from __future__ import annotations

import re
from typing import Optional

FIELD = "model.init_layers"

_ITEM = re.compile(r"^\s*(-?\d+)?\s*(:)?\s*(-?\d+)?\s*$")


def spec_error(spec) -> Optional[str]:
    """The config error of a layer spec's syntax, or None (ranges are checked at build)."""
    if not isinstance(spec, str) or not spec.strip():
        return f"{FIELD}: {spec!r}; expected 'all' or indices and slices such as ':-1'"
    if spec.strip() == "all":
        return None
    for item in spec.split(","):
        m = _ITEM.match(item)
        if m is None or (m.group(2) is None and m.group(1) is None):
            return (f"{FIELD}: {spec!r}: {item.strip()!r} is not an index or a slice;"
                    f" expected 'all' or e.g. '0', '-1', '1:3', ':-1', '0,2:4'")
    return None


def parse_layers(spec: str, n: int) -> Optional[tuple[int, ...]]:
    """The layer indices a spec names, sorted (None for "all").

    Args:
      spec: "all" or comma-separated indices and slices (see the module docstring).
      n: the number of layers of the config's network.
    Returns:
      None for "all", else sorted unique indices in [0, n).
    Raises:
      ValueError: bad syntax, an index outside the network, or a spec naming no layer.
    """
    err = spec_error(spec)
    if err:
        raise ValueError(err)
    if spec.strip() == "all":
        return None
    out: set[int] = set()
    for item in spec.split(","):
        a, colon, b = _ITEM.match(item).groups()
        if colon is None:
            i = int(a)
            if not -n <= i < n:
                raise ValueError(f"{FIELD}: {spec!r}: layer {i}; the config's network "
                                 f"has {n} layers (0..{n - 1}, or -{n}..-1)")
            out.add(i % n)
        else:
            out.update(range(n)[slice(None if a is None else int(a),
                                      None if b is None else int(b))])
    if not out:
        raise ValueError(f"{FIELD}: {spec!r} names no layer of the config's {n}-layer "
                         f"network")
    return tuple(sorted(out))


def spec_of(indices: list, n: int) -> str:
    """The shortest spec naming sorted ``indices`` of an ``n``-layer network: runs as slices
    (``[0, 1]`` of 3 layers is ":-1"; ``[0, 2, 3]`` of 5 is "0,2:4"); "" for none."""
    parts, k = [], 0
    while k < len(indices):
        j = k
        while j + 1 < len(indices) and indices[j + 1] == indices[j] + 1:
            j += 1
        a, b = indices[k], indices[j] + 1
        if a == b - 1:
            parts.append(str(a))
        else:
            parts.append(f"{a if a else ''}:{'' if b == n else (b - n if b == n - 1 else b)}")
        k = j + 1
    return ",".join(parts)
