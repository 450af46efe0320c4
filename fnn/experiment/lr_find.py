"""The learning-rate finder (``fnn lr-find``): Smith's range test as one compiled program.

Starting from a config's initial parameters (``training.seed``), the run's own train step
(:meth:`fnn.engine.Trainer.step_fn`) takes ``steps`` mini-batch steps with the learning rate
ramped log-spaced from ``min_lr`` to ``max_lr``,

    lr_i = min_lr · (max_lr / min_lr)^(i / (steps − 1)),   i = 0 .. steps − 1,

and records each step's training loss (the batch's data loss, before the update with lr_i).
The learning rate is a traced input of each step, scanned over with the batches: the whole
ramp is one ``lax.scan`` in one compiled program. The ★ variant (``constant=K``) adds K runs
of ``steps`` steps at constant rates log-spaced in [min_lr, max_lr] to the same program, as a
``vmap`` over rows of per-step rates (row 0 the ramp), so the K runs cost one compile.

Batches are drawn as training draws them (:func:`fnn.engine.shuffle.epoch_batches`, the key
split of the scanned run): when the ramp fits in one epoch its batches are exactly the first
``steps`` batches of ``fnn train``'s first epoch. Token data (``data.name`` text or adder)
draw random windows from the carried key (:func:`fnn.engine.windows.draw`). The config's
schedule and warmup are set aside (the ramp is the schedule) and so is early stopping.

The suggestion (fastai's "steep" rule):

1. smoothed: an exponential moving average with bias correction, β = 0.98:
   a_i = β·a_{i−1} + (1 − β)·loss_i (a_{−1} = 0), smoothed_i = a_i / (1 − β^(i+1));
2. divergence: points from the first step whose smoothed loss exceeds 4× its running minimum
   (or is not finite) on are not considered;
3. suggestion: lr_j at the steepest descent of the smoothed loss against log lr,
   j = argmin_i (smoothed_{i+1} − smoothed_i) / (ln lr_{i+1} − ln lr_i), over the considered
   points less the first tenth (where the average is still settling) and the last five before
   the divergence, as fastai does (``lrs[n//10:-5]``); none when no slope there is negative.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import warnings
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from fnn.experiment import build as exp
from fnn.experiment import config as config_mod
from fnn.experiment.rundir import UsageError, check_output, write_output

BETA = 0.98            # fastai's smoothing of the recorded loss
DIVERGE_FACTOR = 4.0   # a smoothed loss above 4× its minimum: diverged
MIN_STEPS = 5          # fewer points give no slope worth reading
MAX_CONSTANT = 64      # constant-rate members of the one vmapped program
FILES = ("lr_find.png", "lr_find.csv", "lr_find_constant.csv")
FLAGS = ("--min", "--max", "--steps", "--constant")


class LRFindResult(NamedTuple):
    """What a range test found (float64 NumPy arrays).

    lrs: (steps,) the ramp's rates.  losses: (steps,) the training loss of each step's batch,
    NaN once the NaN guard halted the run.  smoothed: (steps,) their bias-corrected EMA.
    suggestion: the suggested rate (None when the smoothed loss never fell).
    stop: index of the first point not considered (the divergence; ``steps`` if none).
    constant_lrs: (K,) the constant rates (None without ``constant``).
    constant_losses: (K, steps) each constant run's losses (None without ``constant``).
    constant_final: (K,) each constant run's final smoothed loss (NaN where it diverged).
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: Optional[float]
    stop: int
    constant_lrs: Optional[np.ndarray] = None
    constant_losses: Optional[np.ndarray] = None
    constant_final: Optional[np.ndarray] = None


# --------------------------------------------------------------------------------------------
# The rates, the smoothing and the suggestion (host-side NumPy)
# --------------------------------------------------------------------------------------------
def check_args(min_lr, max_lr, steps, constant=0, *, names: Sequence[str] = FLAGS) -> None:
    """One-line UsageErrors (exit 2) for bounds, steps and constant-rate counts.

    Args:
      min_lr, max_lr: finite, positive, min_lr < max_lr.  steps: an integer >= MIN_STEPS.
      constant: 0 (off) or an integer in [2, MAX_CONSTANT].
      names: how the four are named in messages (the CLI's flags by default).
    """
    lo, hi, n_steps, n_const = names
    for name, v in ((lo, min_lr), (hi, max_lr)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
                or v <= 0:
            shown = f"{v:g}" if isinstance(v, numbers.Real) and not isinstance(v, bool) \
                else repr(v)
            raise UsageError(f"lr-find: {name} {shown}; expected a finite learning rate > 0")
    if min_lr >= max_lr:
        raise UsageError(f"lr-find: {lo} {min_lr:g} must be below {hi} {max_lr:g}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < MIN_STEPS:
        raise UsageError(f"lr-find: {n_steps} {steps!r}; expected an integer >= {MIN_STEPS}"
                         " (the slope of the smoothed loss needs a few points)")
    if isinstance(constant, bool) or not isinstance(constant, numbers.Integral) or \
            not (constant == 0 or 2 <= constant <= MAX_CONSTANT):
        raise UsageError(f"lr-find: {n_const} {constant!r}; expected an integer from 2 to "
                         f"{MAX_CONSTANT} (constant rates log-spaced from {lo} to {hi})")


def log_ramp(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """(steps,) float64: lr_i = min_lr·(max_lr/min_lr)^(i/(steps−1)); exactly the bounds at
    both ends."""
    i = np.arange(steps, dtype=np.float64)
    lrs = min_lr * (max_lr / min_lr) ** (i / (steps - 1))
    lrs[0], lrs[-1] = min_lr, max_lr
    return lrs


def smooth(losses, beta: float = BETA) -> np.ndarray:
    """Bias-corrected EMA: a_i = β·a_{i−1} + (1−β)·x_i (a_{−1} = 0); out_i = a_i/(1−β^(i+1)).

    Args:
      losses: (..., steps) values; a non-finite one makes it and every later output NaN.
    Returns:
      float64 of the same shape.
    """
    x = np.asarray(losses, np.float64)
    out = np.full(x.shape, np.nan)
    avg = np.zeros(x.shape[:-1])
    alive = np.ones(x.shape[:-1], bool)
    for i in range(x.shape[-1]):
        alive &= np.isfinite(x[..., i])
        avg = beta * avg + (1.0 - beta) * np.where(alive, x[..., i], 0.0)
        out[..., i] = np.where(alive, avg / (1.0 - beta ** (i + 1)), np.nan)
    return out


def divergence(smoothed: np.ndarray, factor: float = DIVERGE_FACTOR) -> int:
    """The first index whose smoothed loss is not finite or exceeds ``factor``× the minimum
    of the points before and at it (``len(smoothed)`` if none)."""
    best = math.inf
    for i, v in enumerate(np.asarray(smoothed, np.float64)):
        if not math.isfinite(v) or v > factor * best:
            return i
        best = min(best, v)
    return len(smoothed)


def window(steps: int, stop: int) -> tuple[int, int]:
    """The points [first, end) the suggestion reads: fastai's ``[n//10 : -5]`` of the points
    recorded up to and including the divergence (index ``stop``), at least two of them."""
    end = min(steps, stop + 1) - 5
    first = min(steps // 10, max(0, end - 2))
    return first, max(end, min(stop, 2))


def steepest(lrs: np.ndarray, smoothed: np.ndarray, stop: int) -> Optional[float]:
    """fastai's "steep" suggestion: lr_j, j = argmin of the slope of the smoothed loss against
    ln lr over :func:`window`, slope_i = (s_{i+1} − s_i)/(ln lr_{i+1} − ln lr_i); None when no
    slope there is negative (or fewer than two points are left)."""
    first, end = window(len(lrs), stop)
    s = np.asarray(smoothed[first:end], np.float64)
    lr = np.asarray(lrs[first:end], np.float64)
    if s.size < 2 or not np.all(np.isfinite(s)):
        return None
    slope = np.diff(s) / np.diff(np.log(lr))
    j = int(np.argmin(slope))
    return float(lr[j]) if slope[j] < 0 else None


# --------------------------------------------------------------------------------------------
# The program: rows of per-step rates -> per-step losses
# --------------------------------------------------------------------------------------------
def range_config(cfg):
    """``cfg`` for a range test: a constant schedule without warmup (the ramp is the schedule),
    no early stopping, the [sweep] table and training.seeds set aside."""
    for key, value in (("optimizer.schedule.name", "constant"),
                       ("optimizer.schedule.warmup_epochs", 0),
                       ("optimizer.schedule.warmup_steps", 0),
                       ("early_stopping.enabled", False), ("training.seeds", ()),
                       ("sweep", ())):
        cfg = cfg.replace(key, value)
    return cfg


def build(cfg, rows: int, dataset=None):
    """The trainer of :func:`range_config` (``rows`` members for the memory check)."""
    cfg = range_config(cfg)
    dataset = exp.load_dataset(cfg) if dataset is None else dataset
    return exp.build_trainer(cfg, dataset, members=rows)


def _batches(trainer, key, steps: int):
    """(key for the steps, per-step batch selectors: (steps, B) indices or (steps,) keys)."""
    import jax

    from fnn.engine import shuffle

    key, k_draw = jax.random.split(key)
    if trainer.windows is not None:
        return key, jax.random.split(k_draw, steps)
    nb = trainer.batches_per_epoch
    epochs = -(-steps // nb)
    n, b = trainer.num_train, trainer.batch_size
    if epochs == 1:  # the first batches of the training run's first epoch
        return key, shuffle.epoch_batches(k_draw, n, b)[:steps]
    idx = jax.vmap(lambda k: shuffle.epoch_batches(k, n, b))(jax.random.split(k_draw, epochs))
    return key, idx.reshape(epochs * nb, b)[:steps]


def program(trainer, steps: int):
    """The jitted ``losses(state, lrs (M, steps), data) -> (M, steps)``: one ``lax.scan`` of
    the trainer's step over (rate, batch) pairs, vmapped over the M rows of rates; every row
    starts from ``state``. A step after the NaN guard halted its row records NaN."""
    import jax
    import jax.numpy as jnp

    from fnn.engine.windows import draw

    dtype = jnp.dtype(trainer.net.dtype)
    hp = trainer.hparams

    def row(state, key, selectors, lrs, data):
        def body(s, xs):
            lr, sel = xs
            if trainer.windows is not None:
                batch = draw(sel, data.x_train, trainer.batch_size, trainer.windows.block_size)
            else:
                batch = (data.x_train[sel], data.y_train[sel])
            halted = s.halted
            s, m = trainer.step_fn(hp._replace(learning_rate=lr))(s, batch)
            return s, jnp.where(halted, jnp.asarray(jnp.nan, dtype), m["data_loss"])

        _, losses = jax.lax.scan(body, state._replace(key=key), (lrs, selectors))
        return losses

    def lr_range_test(state, lrs, data):
        key, selectors = _batches(trainer, state.key, steps)  # shared by every row
        return jax.vmap(row, in_axes=(None, None, None, 0, None))(state, key, selectors,
                                                                 lrs.astype(dtype), data)

    return jax.jit(lr_range_test)


def schedule_losses(cfg, lrs, *, dataset=None) -> np.ndarray:
    """The training losses of rows of per-step learning rates, each from ``cfg``'s initial
    parameters on the same batches, in one compiled program.

    Args:
      cfg: a validated config.  lrs: (M, steps) positive rates, row m used by run m.
      dataset: the loaded data (default: loaded from ``cfg``).
    Returns:
      float64 (M, steps): loss of step i of run m (NaN after its NaN guard halted it).
    """
    import jax

    lrs = np.atleast_2d(np.asarray(lrs, np.float64))
    trainer = build(cfg, lrs.shape[0], dataset)
    state = trainer.init(jax.random.key(cfg.training.seed))
    out = program(trainer, lrs.shape[1])(state, lrs, trainer.data)
    return np.asarray(jax.device_get(out), np.float64)


# --------------------------------------------------------------------------------------------
# The API and the files
# --------------------------------------------------------------------------------------------
def lr_find(config, *, min_lr: float = 1e-6, max_lr: float = 1.0, steps: int = 100,
            constant: int = 0, overrides: Sequence[str] = (), dataset=None) -> LRFindResult:
    """Smith's learning-rate range test of a config (see the module docstring for the rule).

    Args:
      config: a config file's path or a validated :class:`~fnn.experiment.config.Config`.
      min_lr, max_lr: the ramp's bounds, 0 < min_lr < max_lr.  steps: ramp steps (>= 5).
      constant: K >= 2 also runs K constant rates log-spaced in [min_lr, max_lr] for
        ``steps`` steps each, vmapped in the same program (0: off).
      overrides: ``KEY=VALUE`` strings applied to a config path (``--set``).
      dataset: the loaded data (default: loaded from the config).
    Returns:
      :class:`LRFindResult`.
    Raises:
      ValueError: bad bounds, steps or constant (one line), or a bad config or data.
    """
    check_args(min_lr, max_lr, steps, constant,
               names=("min_lr", "max_lr", "steps", "constant"))
    steps, constant = int(steps), int(constant)
    cfg = config if isinstance(config, config_mod.Config) else \
        config_mod.load(config, list(overrides))
    ramp = log_ramp(float(min_lr), float(max_lr), steps)
    rows = [ramp]
    if constant:
        const = log_ramp(float(min_lr), float(max_lr), constant)
        rows += [np.full(steps, v) for v in const]
    losses = schedule_losses(cfg, np.stack(rows), dataset=dataset)
    smoothed = smooth(losses)
    stop = divergence(smoothed[0])
    result = LRFindResult(ramp, losses[0], smoothed[0], steepest(ramp, smoothed[0], stop), stop)
    if constant:
        result = result._replace(constant_lrs=const, constant_losses=losses[1:],
                                 constant_final=smoothed[1:, -1])
    return result


def output_paths(out_dir, constant: bool) -> list[Path]:
    """The files lr-find writes in ``out_dir``, checked by the output guard
    (:func:`fnn.experiment.rundir.check_output`) before anything runs."""
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise UsageError(f"--output: {str(d)!r} is a file; expected a directory")
    names = FILES if constant else FILES[:2]
    return [check_output(d / name, "--output", own=r"lr_find(_constant)?\.(png|csv)")
            for name in names]


def _csv(header, rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([f"{v:.9g}" for v in r])
    return buf.getvalue().encode("utf-8")


def write_files(result: LRFindResult, out_dir, *, title: str = "") -> list[Path]:
    """lr_find.png (when matplotlib is there), lr_find.csv (lr, loss, smoothed_loss) and,
    with constant rates, lr_find_constant.csv (lr, final_loss, final_smoothed_loss), written
    as one atomic group. Returns the paths written."""
    from fnn.experiment import lr_find_plot

    png, data, const = (output_paths(out_dir, result.constant_lrs is not None) + [None])[:3]
    files = [(data, _csv(("lr", "loss", "smoothed_loss"),
                         zip(result.lrs, result.losses, result.smoothed)))]
    if result.constant_lrs is not None:
        files.append((const, _csv(("lr", "final_loss", "final_smoothed_loss"),
                                  zip(result.constant_lrs, result.constant_losses[:, -1],
                                      result.constant_final))))
    picture = lr_find_plot.png_bytes(result, title=title)
    if picture is None:
        warnings.warn("matplotlib is not installed; lr_find.png not written (the data are in "
                      "lr_find.csv)", stacklevel=2)
    else:
        files.insert(0, (png, picture))
    write_output(files)
    return [p for p, _ in files]


def suggestion_line(result: LRFindResult) -> str:
    """The one line ``fnn lr-find`` prints for the suggestion."""
    if result.suggestion is None:
        return ("suggested learning rate: none (the smoothed loss never fell; lower --min or "
                "raise --steps)")
    return (f"suggested learning rate: {result.suggestion:.1e} (steepest descent of the "
            "smoothed loss)")


def divergence_line(result: LRFindResult) -> str:
    """Where the smoothed loss diverged (or that it did not)."""
    n = len(result.lrs)
    if result.stop >= n:
        return f"divergence: none up to {result.lrs[-1]:.1e} (raise --max to see it)"
    return (f"divergence: the smoothed loss passed {DIVERGE_FACTOR:g}x its minimum at "
            f"{result.lrs[result.stop]:.1e} (step {result.stop + 1} of {n})")
