"""The README's table of config keys, generated from the schema.

Contract: :func:`markdown_table` renders every key of :func:`~.schema.all_keys` with its default
and help text; ``scripts/update_readme.py`` writes it between the README's markers and
``tests/e2e/test_readme.py`` fails when the two differ.
"""

from __future__ import annotations

import dataclasses

from fnn.experiment.config.schema import all_keys
from fnn.experiment.config.tomlio import toml_value


def markdown_table() -> str:
    """Every config key with its default and meaning, as a Markdown table (for the README)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, f in all_keys().items():
        if f.metadata.get("required"):
            default = "(required)"
        else:
            d = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            default = "(unset)" if d is None else f"`{toml_value(list(d) if isinstance(d, tuple) else d)}`"
        meaning = f.metadata["help"].replace("|", "\\|")
        rows.append(f"| `{key}` | {default} | {meaning} |")
    rows.append("| `sweep.<key>` | | a list of values for any key above: `fnn sweep` (and "
                "`fnn train`) run the grid; traced keys share one compiled program |")
    return "\n".join(rows)
