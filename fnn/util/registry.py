"""Name lookup shared by the activation, loss and initializer registries."""

from __future__ import annotations

from typing import Mapping, TypeVar

T = TypeVar("T")


def canonical(kind: str, name, table: Mapping[str, T], aliases: Mapping[str, str]) -> str:
    """The registry key of ``name`` (resolving aliases).

    Raises:
      ValueError: ``unknown <kind> <name>; expected one of: ...`` (every valid name, sorted).
    """
    key = aliases.get(name, name) if isinstance(name, str) else name
    if not isinstance(key, str) or key not in table:
        valid = ", ".join(sorted([*table, *aliases]))
        raise ValueError(f"unknown {kind} {name!r}; expected one of: {valid}")
    return key


def lookup(kind: str, name, table: Mapping[str, T], aliases: Mapping[str, str]) -> T:
    """``table[canonical(kind, name, table, aliases)]``."""
    return table[canonical(kind, name, table, aliases)]


def table(kind: str, names, entries: Mapping[str, T]) -> dict[str, T]:
    """The registry of ``names`` (the list importable without JAX): ``entries``, checked.

    Args:
      kind: "activation", "loss", ... for the message.  names: the registry's names, in order.
      entries: ``{name: implementation}``.
    Returns:
      ``dict(entries)``.
    Raises:
      RuntimeError: at import, when ``entries`` has other names than ``names`` (an
        implementation added without its name in the list, or the reverse).
    """
    if tuple(entries) != tuple(names):
        raise RuntimeError(f"{kind} registry {list(entries)} differs from its list of names "
                           f"{list(names)}; add the name to both")
    return dict(entries)
