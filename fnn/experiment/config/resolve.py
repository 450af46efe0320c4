"""Defaults that depend on the task, and what the config alone can tell about the data.

Contract: :func:`resolved_loss` and :func:`resolved_output` give the loss and output
activation a run uses (registry names, aliases resolved). An empty ``loss.name`` means
cross_entropy for classification and mse for regression; for ``csv``/``npz`` data the task is
read from the file's targets (:func:`fnn.data.peek_targets`, cached per file version), so a
regression CSV trains with mse. :func:`data_facts` gives (task, classes, rows) where they are
known without loading the features, for the cross-checks and the notes; :func:`notes` lists
the readings of a config a user should be told about (one line each).
"""

from __future__ import annotations

import functools
import os
import stat
from typing import NamedTuple, Optional

from fnn.data.names import SYNTHETIC_SETS
from fnn.nn import names
from fnn.experiment.config.schema import Config

IMAGE_FACTS = {"fashion_mnist": (10, 60000), "mnist": (10, 60000)}


class DataFacts(NamedTuple):
    """What is known of a config's data before it is loaded (None: unknown)."""

    task: Optional[str]
    num_classes: Optional[int]
    rows: Optional[int]


@functools.lru_cache(maxsize=32)
def _peek(kind: str, path: str, target: str, num_classes, stamp) -> DataFacts:
    from fnn.data.peek import peek_targets
    from fnn.data.validate import DataError

    try:
        task, k, rows = peek_targets(kind, path, target=target or None, num_classes=num_classes)
    except (DataError, OSError, ValueError):
        return DataFacts(None, None, None)  # the real load reports the problem
    return DataFacts(task, k, rows)


def data_facts(cfg: Config) -> DataFacts:
    """(task, num_classes, rows) of the configured data, each None where not known."""
    d = cfg.data
    if d.name in SYNTHETIC_SETS:
        task, options = SYNTHETIC_SETS[d.name]
        rows = d.n_samples if d.n_samples is not None else options.get("n_samples")
        k = None
        if task == "classification":
            k = d.num_classes or options.get("num_classes") or 2
        return DataFacts(task, k, rows)
    if d.name in IMAGE_FACTS:
        k, rows = IMAGE_FACTS[d.name]
        return DataFacts("classification", k, rows)
    if d.name in ("csv", "npz") and d.path:
        try:
            st = os.stat(d.path)
        except (OSError, ValueError):
            return DataFacts(None, None, None)
        if not stat.S_ISREG(st.st_mode):  # /dev/zero: read by the loader, which refuses it
            return DataFacts(None, None, None)
        return _peek(d.name, d.path, d.target, d.num_classes, (st.st_mtime_ns, st.st_size))
    return DataFacts(None, None, None)


def resolved_loss(cfg: Config) -> str:
    """The loss name, defaulting by task: cross_entropy (classification) or mse (regression)."""
    if cfg.loss.name:
        return names.loss(cfg.loss.name)
    if cfg.data.name in ("sine", "polynomial"):
        return "mse"
    if cfg.data.name in ("csv", "npz") and data_facts(cfg).task == "regression":
        return "mse"
    return "cross_entropy"


def resolved_output(cfg: Config) -> str:
    """The output activation, defaulting from the loss."""
    if cfg.model.output:
        return names.activation(cfg.model.output)
    return {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(
        resolved_loss(cfg), "identity")


def notes(cfg: Config) -> list[str]:
    """Readings of the config a user should be told about, one line each."""
    out = []
    facts = data_facts(cfg)
    k = facts.num_classes
    if resolved_loss(cfg) == "binary_cross_entropy" and facts.task == "classification" and \
            k is not None and k > 2:
        out.append(f"loss.name = 'binary_cross_entropy' with {k} classes: trained as {k} "
                   "independent sigmoid units, one per class (one-vs-rest, multi-label reading);"
                   " for one class per example use loss.name = 'cross_entropy'")
    return out
