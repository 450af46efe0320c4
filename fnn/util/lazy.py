"""A package's public names imported on first use (PEP 562), so that importing it is cheap.

The facade ``fnn`` and the packages whose modules need JAX (``fnn.optim``, ``fnn.engine``) list
their names with :func:`exports`; ``import fnn.optim`` then loads nothing, and
``fnn.optim.adam`` or ``from fnn.optim import adam`` imports :mod:`fnn.optim.aliases` at that
moment. This is what lets the command line and the config checks run without importing JAX.
"""

from __future__ import annotations

import importlib
from typing import Callable


def exports(package: str, table: dict[str, tuple[str, ...]]) -> tuple[Callable, Callable]:
    """The module-level ``__getattr__`` and ``__dir__`` of a package with lazy names.

    Args:
      package: the package's ``__name__``.
      table: ``{module: (name, ...)}``, the names each module of the package provides.
    Returns:
      ``(__getattr__, __dir__)``. ``__getattr__(name)`` imports the module that provides
      ``name`` (or, failing that, the submodule ``package.name``) and caches the value in the
      package's namespace; other names raise ``AttributeError`` as a module would.
    """
    where = {name: module for module, names in table.items() for name in names}
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
        else:
            try:
                value = importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as err:
                if err.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
