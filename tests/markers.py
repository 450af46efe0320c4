"""Parametrize lists with some cases marked slow (run in the full suite, not in the quick
``pytest -m "not slow"`` a developer runs before each commit).

    @pytest.mark.parametrize("kind", slow_cases(["mlp", "gpt"], slow={"gpt"}))
    @pytest.mark.parametrize("name,make", slow_cases(NETS, slow={"gpt"}))   # tuples: key = first
"""
from __future__ import annotations

import pytest


def slow_cases(values, slow) -> list:
    """``values`` with each case whose key (the value, or its first item if it is a tuple) is in
    ``slow`` wrapped as ``pytest.param(..., marks=pytest.mark.slow)``."""
    slow = set(slow)
    out, seen = [], set()
    for v in values:
        key = v[0] if isinstance(v, tuple) else v
        seen.add(key)
        if key in slow:
            out.append(pytest.param(*(v if isinstance(v, tuple) else (v,)), marks=pytest.mark.slow))
        else:
            out.append(v)
    if slow - seen:
        raise ValueError(f"slow_cases: {sorted(slow - seen)} are not among the cases")
    return out
