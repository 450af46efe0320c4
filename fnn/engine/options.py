"""The Trainer's constructor arguments, grouped into three typed records.

A :class:`~fnn.engine.trainer.Trainer` is built from a network, a loss, an optimizer, data and

* :class:`Loop`: what one run iterates: epochs, the batch size, gradient accumulation, early
  stopping, and token windows for a step-based run;
* :class:`Numerics`: how a step computes: the gradient mode, mixed precision, the NaN guard;
* :class:`Monitor`: what a run reports: progress callbacks and per-layer diagnostics;

plus the hyperparameters (:class:`fnn.engine.hparams.HParams` and the traced names), the
augmentation and the device mesh. Each record validates its own fields when it is made, so a
bad value is one line naming the config field, before anything is compiled::

    Trainer(net, "cross_entropy", opt, data, loop=Loop(epochs=5, batch_size=64),
            numerics=Numerics(precision="bfloat16"))

Every field may also be given as a keyword of the Trainer itself, the short form the README
uses (``Trainer(net, "mse", opt, data, epochs=5, batch_size=64)``); :func:`resolve` folds those
into the records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from fnn.engine.accumulate import check_accumulate
from fnn.engine.early_stopping import EarlyStopping
from fnn.engine.epoch import check_flat_updates
from fnn.engine.step import check_nan_guard
from fnn.engine.windows import Windows
from fnn.nn import objective as obj
from fnn.nn.precision import check_precision_name


def _check_count(field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field}: {value!r}; expected an integer >= 1")
    return value


@dataclass(frozen=True)
class Loop:
    """What one run iterates.

    Attributes:
      epochs: epochs per run (static); with ``windows``, the number of rounds (evaluations).
      batch_size: B rows per optimizer step (static).
      accumulate: K micro-batches of B / K rows summed into each update (K divides B).
      early_stopping: an :class:`EarlyStopping`, or None.
      windows: a :class:`Windows` for a step-based run on token rows, or None.
    """

    epochs: int
    batch_size: int
    accumulate: int = 1
    early_stopping: Optional[EarlyStopping] = None
    windows: Optional[Windows] = None

    def __post_init__(self):
        _check_count("training.epochs", self.epochs)
        _check_count("training.batch_size", self.batch_size)
        check_accumulate(self.accumulate, self.batch_size)


@dataclass(frozen=True)
class Numerics:
    """How a train step computes.

    Attributes:
      grad: "manual" (the hand-written backward) or "autodiff" (``jax.grad``).
      precision: "full" or "bfloat16" (bf16 forward and backward over float32 masters).
      nan_guard: "halt" | "revert" | "off": what a step with a non-finite loss or gradient does.
      flat_updates: "off" | "on" | "auto": inside the scanned loop, run an element-wise
        optimizer on all parameter leaves raveled into one vector (:func:`fnn.optim.flat`):
        fewer kernels per step, and for a small network a faster step (2-16-16-2: 1.2–2×). "off"
        (default): per leaf; "on": whenever the optimizer is element-wise; "auto": that, for
        networks of at most :data:`fnn.engine.epoch.FLAT_MAX_ENTRIES` parameters (on a
        784-512-512-10 MLP the flat update is 3.7× slower). Not bitwise the per-leaf run:
        XLA:CPU contracts ``a*x + b*y`` into a fused multiply-add, and which product it
        contracts depends on the kernel the expression lands in, so entries can differ in the
        last bit (and then drift apart as rounding does).
    """

    grad: str = "manual"
    precision: str = "full"
    nan_guard: str = "halt"
    flat_updates: str = "off"

    def __post_init__(self):
        obj.check_mode(self.grad)
        check_nan_guard(self.nan_guard)
        check_flat_updates(self.flat_updates)
        check_precision_name(self.precision)  # against the network's dtype: in the Trainer


@dataclass(frozen=True)
class Monitor:
    """What a run reports while it trains.

    Attributes:
      progress: None/False (the program has no callback), a callable
        ``(epoch, metrics) -> None``, or True (a callback whose receiver each ``run`` names).
      progress_updates: about how many reports per run.
      diagnostics: per-layer statistics in the history (:mod:`fnn.analysis.diagnostics`; layer l
        is ``fnn.diagnostics.rows(net)[l - 1]``, a Repeat's copies one l each).
    """

    progress: Union[None, bool, Callable[[int, dict], Any]] = None
    progress_updates: int = 100
    diagnostics: bool = False

    def __post_init__(self):
        _check_count("progress_updates", self.progress_updates)
        object.__setattr__(self, "diagnostics", bool(self.diagnostics))


RECORDS = {"loop": Loop, "numerics": Numerics, "monitor": Monitor}


def resolve(loop: Optional[Loop], numerics: Optional[Numerics], monitor: Optional[Monitor],
            flat: dict) -> tuple[Loop, Numerics, Monitor]:
    """The three records from the given ones and the Trainer's flat keywords.

    Args:
      loop, numerics, monitor: records, or None (then built from ``flat`` and the defaults).
      flat: keywords naming fields of the records (``epochs=5``, ``grad="autodiff"``, ...).
    Returns:
      (Loop, Numerics, Monitor).
    Raises:
      TypeError: a keyword that is no record's field, or a field given both ways.
    """
    given = {"loop": loop, "numerics": numerics, "monitor": monitor}
    owner = {f.name: name for name, cls in RECORDS.items() for f in dataclasses.fields(cls)}
    unknown = sorted(set(flat) - set(owner))
    if unknown:
        raise TypeError(f"Trainer: unexpected keyword {unknown[0]!r}; expected one of"
                        f" {', '.join(sorted(owner))}, or the records loop=, numerics=, monitor=")
    out = {}
    for name, cls in RECORDS.items():
        mine = {k: v for k, v in flat.items() if owner[k] == name}
        record = given[name]
        if record is None:
            if name == "loop" and not {"epochs", "batch_size"} <= set(mine):
                missing = sorted({"epochs", "batch_size"} - set(mine))
                raise TypeError(f"Trainer: missing {missing[0]!r}; give loop=Loop(epochs=...,"
                                f" batch_size=...) or the keywords epochs= and batch_size=")
            out[name] = cls(**mine)
        elif not isinstance(record, cls):
            raise TypeError(f"Trainer: {name}={record!r}; expected a {cls.__name__}")
        elif mine:
            raise TypeError(f"Trainer: {sorted(mine)[0]!r} given twice: as a keyword and in"
                            f" {name}=; give it in one place")
        else:
            out[name] = record
    return out["loop"], out["numerics"], out["monitor"]
