"""The config layer's error type and the two helpers every config message uses.

Contract: a :class:`ConfigError` carries ``errors``, one line per problem, each starting with
the full dotted key (or ``--set KEY`` / ``config file 'PATH'``); ``source`` is the file the
problems were found in. ``str(err)`` is the single line for one problem; for several it is
the one documented exception to one-line errors: a first line complete on its own (``N
problems: <the first> (all N below)``), then one indented line per problem.
"""

from __future__ import annotations

import difflib


class ConfigError(ValueError):
    """One or more config problems; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str], source: str = ""):
        self.errors = list(errors)
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.errors) == 1:
            msg = f"{where}{self.errors[0]}"
        else:
            msg = (f"{where}{len(self.errors)} problems: {self.errors[0]} (all"
                   f" {len(self.errors)} below)\n  " + "\n  ".join(self.errors))
        super().__init__(msg)


def suggest(word: str, options) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or ``""``."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def short_int(v: int) -> str:
    """An integer as text; one of 31 digits or more as ``(an integer of N digits)``."""
    if -10**30 < v < 10**30:
        return str(v)
    return f"{'-' if v < 0 else ''}(an integer of {len(str(abs(v)))} digits)" if \
        v.bit_length() < 14000 else f"(an integer of about {int(v.bit_length() * 0.30103)} digits)"


def describe(value) -> str:
    """``repr`` plus the type name, shortened to keep a message on one readable line."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = short_int(value)
    else:
        try:
            text = repr(value)
        except ValueError:  # a container of integers beyond str()'s digit limit
            text = f"<{type(value).__name__}>"
    if len(text) > 80:
        text = text[:60] + "..." + text[-10:]
    return f"{text} ({type(value).__name__})"
