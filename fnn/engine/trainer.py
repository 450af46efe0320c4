"""The training engine: a jitted train step, and a whole run as one scanned XLA program.

Structure (imitating purejaxrl's "a run is a function of a key", without its positional state):

* :class:`TrainState` is exactly the carry of the scans: step, epoch, params, optimizer state,
  PRNG key, the NaN guard and the early-stopping state.
* ``train_step(state, batch) -> (state, metrics)`` is exactly the body of the inner scan;
  :func:`make_train_step` jits that same function for users' own Python loops.
* A run is ``lax.scan`` over epochs of ``lax.scan`` over mini-batches. Each epoch draws a
  permutation from the carried key inside the program (:func:`fnn.shuffle.permutation`, a
  keyed Feistel permutation: no sort); data are device arrays passed in once.
  Batch GD, SGD and mini-batch GD differ only in ``batch_size``.
* Evaluation on the validation split runs inside the program at the end of every epoch, and
  the history (per-epoch metrics) is stacked by the scan.
* Sweeps: the epoch function is ``vmap``-ped over members (seeds and traced hyperparameters);
  the epoch loop and the progress callback stay outside the vmap, so there is one bar.

Batches when ``batch_size`` does not divide N: each epoch uses ceil(N / B) batches; the
permutation of all N examples is padded with its own first ``pad`` entries, so **every example
is seen at least once per epoch** and ``pad = ceil(N/B)·B − N`` examples twice. Every batch has
exactly B rows, so the loss of each step is the exact batch mean.

Early stopping (monitor val_loss or val_accuracy, patience, min_delta) is decided inside the
compiled loop. When it stops — or reaches its last epoch — the best parameters are restored
(``restore_best``); after a stop every later
epoch is skipped by ``lax.cond`` (under a sweep's vmap the cond becomes a select: later epochs
are computed and discarded, member by member). The NaN guard (``nan_guard="halt"``, the
default) checks the loss and gradient before each update: a step where either is not finite is
skipped, the run is marked halted at that step with the parameters of the last good step, and
later steps are skipped too. Parameters made non-finite by the update itself (an inf learning
rate) halt the run as well; ``nan_guard="revert"`` also rolls those back, at a cost in speed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.analysis import diagnostics as diag_mod
from fnn.nn import losses as losses_mod
from fnn.engine import metrics as metrics_mod
from fnn.nn import objective as obj
from fnn import optim
from fnn.engine import parallel, shuffle
from fnn.nn.mlp import MLP

Array = jax.Array
PyTree = Any

HPARAM_NAMES = ("learning_rate", "weight_decay", "l1", "l2", "drop_rate")


class HParams(NamedTuple):
    """Hyperparameters that may be traced (so a sweep over them is a vmap, not a recompile).

    Each field is a Python float or a scalar array (or, in a sweep, a (members,) array).
    ``drop_rate=None`` means the network's own ``net.drop_rate`` (resolved by :class:`Trainer`).
    """

    learning_rate: Any = 1e-3
    weight_decay: Any = 0.0
    l1: Any = 0.0
    l2: Any = 0.0
    drop_rate: Any = None


class EarlyStopState(NamedTuple):
    """Early-stopping carry: best monitored value and epoch, best params, patience counter."""

    best: Array
    best_epoch: Array
    best_params: PyTree
    wait: Array
    stopped: Array
    stop_epoch: Array


class TrainState(NamedTuple):
    """The whole training state — exactly the carry of the scans.

    step: int32, optimizer updates applied.   epoch: int32, epochs completed.
    params: the network's parameter pytree.   opt_state: the optimizer's state.
    key: PRNG key, split for every permutation, dropout mask and augmentation.
    halted: bool, a non-finite loss, gradient or update was met (see ``nan_guard``).
    halted_step: int32 index of the step that halted the run, or -1.
    early: :class:`EarlyStopState`, or None when early stopping is off.
    """

    step: Array
    epoch: Array
    params: PyTree
    opt_state: PyTree
    key: Array
    halted: Array
    halted_step: Array
    early: Optional[EarlyStopState] = None

    @classmethod
    def create(cls, net: MLP, optimizer: optim.Optimizer, *, key: Array, params=None,
               early_stopping: Optional["EarlyStopping"] = None) -> "TrainState":
        """The first state of a run.

        Args:
          net: the network description.
          optimizer: an :class:`fnn.optim.Optimizer`.
          key: PRNG key; split into the init key and the training key.
          params: initial parameters; ``None`` initializes them from the key.
          early_stopping: an :class:`EarlyStopping` to carry its state, or None.
        Returns:
          a :class:`TrainState` at step 0.
        """
        init_key, train_key = jax.random.split(key)
        if params is None:
            params = net.init(init_key)
        early = None
        if early_stopping is not None:
            dtype = params[0]["w"].dtype
            worst = jnp.asarray(jnp.inf if early_stopping.mode == "min" else -jnp.inf, dtype)
            # A copy, not an alias: Trainer.run donates the state, and a buffer donated twice
            # (params and best_params) is an error.
            early = EarlyStopState(
                best=worst, best_epoch=jnp.asarray(-1, jnp.int32),
                best_params=jax.tree.map(jnp.copy, params),
                wait=jnp.asarray(0, jnp.int32), stopped=jnp.asarray(False),
                stop_epoch=jnp.asarray(-1, jnp.int32),
            )
        return cls(
            step=jnp.asarray(0, jnp.int32), epoch=jnp.asarray(0, jnp.int32), params=params,
            opt_state=optimizer.init(params), key=train_key, halted=jnp.asarray(False),
            halted_step=jnp.asarray(-1, jnp.int32), early=early,
        )


@dataclass(frozen=True)
class EarlyStopping:
    """Early stopping on a validation metric, decided inside the compiled loop.

    Attributes:
      monitor: "val_loss" (minimized) or "val_accuracy" (maximized).
      patience: epochs without improvement before stopping (≥ 1).
      min_delta: an improvement must beat the best by more than this (≥ 0).
      restore_best: restore the best epoch's params when stopping, and at the end of a run
        that did not stop.
    """

    monitor: str = "val_loss"
    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self):
        if self.monitor not in ("val_loss", "val_accuracy"):
            raise ValueError(
                f"early_stopping.monitor: {self.monitor!r}; expected 'val_loss' or 'val_accuracy'"
            )
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"early_stopping.patience: {self.patience!r}; expected an integer >= 1")
        if not isinstance(self.min_delta, (int, float)) or self.min_delta < 0:
            raise ValueError(f"early_stopping.min_delta: {self.min_delta!r}; expected a number >= 0")

    @property
    def mode(self) -> str:
        return "min" if self.monitor == "val_loss" else "max"

    def update(self, es: EarlyStopState, value: Array, epoch: Array, params: PyTree):
        """One epoch of early stopping. Returns (new EarlyStopState, params to continue with)."""
        delta = jnp.asarray(self.min_delta, es.best.dtype)
        value = value.astype(es.best.dtype)
        improved = (value < es.best - delta) if self.mode == "min" else (value > es.best + delta)
        improved = improved & jnp.isfinite(value)
        best = jnp.where(improved, value, es.best)
        best_epoch = jnp.where(improved, epoch, es.best_epoch)
        best_params = _select(improved, params, es.best_params)
        wait = jnp.where(improved, 0, es.wait + 1).astype(jnp.int32)
        stop_now = (wait >= self.patience) & ~es.stopped
        if self.restore_best:
            params = _select(stop_now, best_params, params)
        new = EarlyStopState(best, best_epoch, best_params, wait, es.stopped | stop_now,
                             jnp.where(stop_now, epoch, es.stop_epoch).astype(jnp.int32))
        return new, params


def _select(pred: Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _is_on(value) -> bool:
    """Whether a hyperparameter is switched on: traced, or a nonzero Python number."""
    return isinstance(value, jax.Array) or float(value) != 0.0


# --------------------------------------------------------------------------------------------
# The train step
# --------------------------------------------------------------------------------------------
NAN_GUARDS = ("halt", "revert", "off")


def check_nan_guard(nan_guard) -> str:
    """Validate ``nan_guard`` (one of :data:`NAN_GUARDS`)."""
    if nan_guard not in NAN_GUARDS:
        raise ValueError(f"training.nan_guard: {nan_guard!r}; expected one of {NAN_GUARDS}")
    return nan_guard


def train_step_fn(net: MLP, loss, optimizer: optim.Optimizer, *, grad: str = "manual",
                  l1=0.0, l2=0.0, drop_rate=None, augment: Optional[Callable] = None,
                  multilabel: Optional[bool] = None, diagnostics: bool = False,
                  nan_guard: str = "halt") -> Callable:
    """The pure (un-jitted) train step: ``step(state, batch) -> (state, metrics)``.

    Args:
      net, loss, optimizer: the network, loss name and :class:`fnn.optim.Optimizer`.
      grad: "manual" (the notes' backprop) or "autodiff" (``jax.grad``).
      l1, l2: weight penalties (floats or traced scalars).
      drop_rate: dropout rate override (float or traced); ``None`` uses ``net.drop_rate``.
      augment: optional ``augment(x, *, key) -> x`` applied to float inputs in training only.
      multilabel: accuracy per unit (default: binary cross-entropy with K > 1).
      diagnostics: also return per-layer "grad_norm/layer<l>" and "update_ratio/layer<l>"
        (:func:`fnn.diagnostics.step_stats`); the state is unaffected.
      nan_guard: what a non-finite step does (see :data:`NAN_GUARDS`):

        * ``"halt"`` (default): the loss and ‖g‖² are checked *before* the update; a step that
          fails is skipped (parameters and optimizer state stay those of the last good step)
          and the run halts. The new parameters are checked after the update too (one sum);
          if only they are non-finite (an inf/NaN learning rate, an overflowing update) the run
          halts with them as they are. Costs about 1 % of a large MLP's step.
        * ``"revert"``: as "halt", and non-finite new parameters are also reverted to the last
          good step. Keeping the old state alive until the check stops XLA from updating the
          parameters and moments in place: about 15 % slower on a 784-512-512-10 MLP.
        * ``"off"``: no checks, the run never halts (the "finite" metric is still reported).
          Faster only for tiny networks, where a step is dominated by per-kernel overhead
          (2-16-16-2, batch 32: 0.83× the epoch time of "halt"); on a 784-512-512-10 MLP it is
          1.10× *slower*: without the conditional around the update XLA fuses it less well.
    Returns:
      ``step(state, (x, y))`` with x (B, features) float or uint8 images, y labels (B,) or
      targets (B, K); metrics {"loss", "data_loss", "accuracy", "grad_norm", "finite"}.
    """
    loss = losses_mod.get(loss)
    obj.check_mode(grad)
    check_nan_guard(nan_guard)
    losses_mod.check_pairing(loss, net.output, net.sizes[-1])
    rate = net.drop_rate if drop_rate is None else drop_rate
    dropout = _is_on(rate) and net.num_layers > 1
    if multilabel is None:
        multilabel = loss.name == "binary_cross_entropy" and net.sizes[-1] > 1
    dtype = jnp.dtype(net.dtype)

    def all_finite(tree) -> Array:
        # One reduction per leaf: a sum is finite only if every entry is (barring overflow).
        return jnp.isfinite(sum(jnp.sum(leaf) for leaf in jax.tree.leaves(tree)))

    def step(state: TrainState, batch) -> tuple[TrainState, dict]:
        x, y = batch
        if dropout or augment is not None:  # the key advances only when a step consumes it
            key, k_drop, k_aug = jax.random.split(state.key, 3)
        else:
            key = k_drop = k_aug = state.key
        x = metrics_mod.as_inputs(x, dtype)
        if augment is not None:
            x = augment(x, key=k_aug)
        y = losses_mod.prepare_targets(loss, y, net.sizes[-1], dtype)
        out = obj.evaluate(net, loss, state.params, x, y, mode=grad,
                           key=k_drop if dropout else None, l1=l1, l2=l2, drop_rate=rate)
        # ‖g‖² (the grad_norm metric) is finite only if every gradient entry is, so this one
        # reduction is also the guard's gradient check.
        grad_sq = sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(out.grads))
        finite_pre = jnp.isfinite(out.loss) & jnp.isfinite(grad_sq)

        def apply(_):
            u, o = optimizer.update(out.grads, state.opt_state, state.params)
            return optim.apply_updates(state.params, u), o, u

        def keep(_):
            return state.params, state.opt_state, jax.tree.map(jnp.zeros_like, state.params)

        if nan_guard == "off":
            params, opt_state, updates = apply(None)
            finite = finite_pre & all_finite(params)
            ok = jnp.asarray(True)
            halt = jnp.asarray(False)
        else:
            ok_pre = finite_pre & ~state.halted
            # lax.cond, not a select: the common step runs the update in place, and only a
            # skipped step pays for keeping the old state.
            new_params, new_opt, updates = jax.lax.cond(ok_pre, apply, keep, None)
            ok_post = all_finite(new_params)
            if nan_guard == "revert":  # keeps the old state alive until here: no in-place update
                params, opt_state = jax.lax.cond(
                    ok_post, lambda _: (new_params, new_opt),
                    lambda _: (state.params, state.opt_state), None)
                ok = ok_pre & ok_post
            else:  # "halt": a non-finite update halts the run; its parameters stay as computed
                params, opt_state = new_params, new_opt
                ok = ok_pre
            finite = finite_pre & ok_post
            halt = ~finite & ~state.halted
        new_state = state._replace(
            step=state.step + ok.astype(jnp.int32),
            params=params,
            opt_state=opt_state,
            key=key,
            halted=state.halted | halt,
            halted_step=jnp.where(halt, state.step, state.halted_step).astype(jnp.int32),
        )
        metrics = {
            "loss": out.loss,
            "data_loss": out.data_loss,
            "accuracy": metrics_mod.accuracy(out.y_hat, y, multilabel=multilabel),
            "grad_norm": jnp.sqrt(grad_sq),
            "finite": finite,
        }
        if diagnostics:
            # The barrier keeps XLA from fusing the statistics into the update's kernels, so
            # switching diagnostics on cannot change how the parameters are computed.
            observed = jax.lax.optimization_barrier((out.grads, updates, state.params))
            metrics.update(diag_mod.step_stats(*observed))
        return new_state, metrics

    return step


def make_train_step(net: MLP, loss, optimizer: optim.Optimizer, *, grad: str = "manual",
                    l1=0.0, l2=0.0, drop_rate=None, augment=None, donate: bool = False,
                    diagnostics: bool = False, nan_guard: str = "halt") -> Callable:
    """A jitted ``step(state, batch) -> (state, metrics)`` for a user's own Python loop.

    The same function is the body of the scanned run (:class:`Trainer`), so a Python loop over
    it visits exactly the states of the scan.

    Args:
      net: :class:`fnn.MLP`.  loss: loss name.  optimizer: :class:`fnn.optim.Optimizer`.
      grad: "manual" | "autodiff".  l1, l2: weight penalties.  drop_rate: dropout override.
      augment: optional on-device augmentation ``(x, *, key) -> x``.
      donate: donate the input state's buffers (faster; the old state must not be reused).
      diagnostics: add per-layer gradient norms and update ratios to the metrics.
      nan_guard: "halt" | "revert" | "off" (see :func:`train_step_fn`).
    Returns:
      jitted ``step(state, (x, y)) -> (state, metrics)``.
    """
    step = train_step_fn(net, loss, optimizer, grad=grad, l1=l1, l2=l2, drop_rate=drop_rate,
                         augment=augment, diagnostics=diagnostics, nan_guard=nan_guard)
    return jax.jit(step, donate_argnums=(0,) if donate else ())


# --------------------------------------------------------------------------------------------
# Data on the device
# --------------------------------------------------------------------------------------------
class DeviceData(NamedTuple):
    """Arrays placed on the device once. y are labels (N,) or targets (N, K)."""

    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array


def _as_data(data) -> tuple[np.ndarray, ...]:
    """Accept a :class:`fnn.data` dataset, a DeviceData, or a tuple (x, y[, x_val, y_val])."""
    if hasattr(data, "x_train"):
        return data.x_train, data.y_train, getattr(data, "x_val", None), getattr(data, "y_val", None)
    data = tuple(data)
    if len(data) == 2:
        return data[0], data[1], None, None
    if len(data) == 4:
        return data
    raise ValueError(f"data: a tuple of {len(data)} arrays; expected (x, y) or (x, y, x_val, y_val)")


def check_data(net: MLP, loss, x, y, name: str, batch_size: Optional[int] = None) -> None:
    """One-line ValueErrors for data that cannot train ``net`` with ``loss``."""
    shape = tuple(np.shape(x))
    if len(shape) != 2 or shape[0] == 0:
        raise ValueError(f"{name}: x of shape {shape}; expected a non-empty (examples, features)")
    if shape[1] != net.sizes[0]:
        raise ValueError(
            f"{name}: x has {shape[1]} features; model.sizes[0] is {net.sizes[0]} (layer 1 expects"
            f" inputs of width {net.sizes[0]})"
        )
    if np.shape(y)[:1] != shape[:1]:
        raise ValueError(f"{name}: {np.shape(y)[0] if np.ndim(y) else 0} targets for {shape[0]} examples")
    if batch_size is not None and (batch_size < 1 or batch_size > shape[0]):
        raise ValueError(
            f"training.batch_size: {batch_size}; expected 1 <= batch_size <= {shape[0]} (the"
            f" number of training examples)"
        )
    xa = np.asarray(x)
    if xa.dtype.kind == "f":
        bad = ~np.isfinite(xa)
        if bad.any():
            raise ValueError(
                f"{name}: {int(bad.sum())} non-finite feature value(s), first at index"
                f" {tuple(int(i) for i in np.argwhere(bad)[0])}; expected finite features"
            )
    loss = losses_mod.get(loss)
    y_check = jnp.asarray(np.asarray(y))
    try:
        losses_mod.prepare_targets(loss, y_check, net.sizes[-1], jnp.float32)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


# --------------------------------------------------------------------------------------------
# The scanned run
# --------------------------------------------------------------------------------------------
OptimizerLike = Union[optim.Optimizer, Callable[[HParams], optim.Optimizer]]


class Trainer:
    """A compiled training run: ``train(key, hparams) -> (state, history)``.

    Args:
      net: :class:`fnn.MLP`.  loss: loss name.
      optimizer: an :class:`fnn.optim.Optimizer`, or a factory ``hparams -> Optimizer`` (needed
        to sweep learning_rate / weight_decay: the factory receives traced values).
      data: a dataset with ``x_train, y_train, x_val, y_val`` (x_val may be None: then the
        "validation" metrics are computed on the training split), or a tuple (x, y[, xv, yv]).
      epochs: epochs per run (static).  batch_size: B (static).
      grad: "manual" | "autodiff".
      hparams: default :class:`HParams` (learning_rate is ignored by a fixed Optimizer).
      traced: names of hyperparameters passed as traced values. Defaults to learning_rate plus
        every nonzero one; a zero hyperparameter not listed is compiled out.
      early_stopping: :class:`EarlyStopping` or None.
      augment: on-device augmentation ``(x, *, key) -> x`` (training only) or None.
      progress: ``None`` (silent) or a callable ``(epoch, metrics_dict) -> None`` called from
        inside the program about ``progress_updates`` times per run (see :class:`ProgressBar`).
      diagnostics: add per-layer statistics to the history (:mod:`fnn.diagnostics`):
        "grad_norm/layer<l>" and "update_ratio/layer<l>" (means over the epoch's steps),
        "weight_norm/layer<l>", and the activation health on the validation split at epoch
        end, "slope/layer<l>" (mean g'(Z)), "saturated/layer<l>", "dead/layer<l>". The trained
        parameters are unchanged.
      nan_guard: "halt" (default) | "revert" | "off": what a non-finite step does (see
        :func:`train_step_fn`).
    """

    def __init__(self, net: MLP, loss, optimizer: OptimizerLike, data, *, epochs: int,
                 batch_size: int, grad: str = "manual", hparams: Optional[HParams] = None,
                 traced: Optional[tuple] = None, early_stopping: Optional[EarlyStopping] = None,
                 augment: Optional[Callable] = None, progress: Optional[Callable] = None,
                 progress_updates: int = 100, mesh=None, diagnostics: bool = False,
                 nan_guard: str = "halt"):
        self.net, self.loss = net, losses_mod.get(loss)
        self.diagnostics = bool(diagnostics)
        obj.check_mode(grad)
        self.nan_guard = check_nan_guard(nan_guard)
        losses_mod.check_pairing(self.loss, net.output, net.sizes[-1])
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"training.epochs: {epochs!r}; expected an integer >= 1")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise ValueError(f"training.batch_size: {batch_size!r}; expected an integer >= 1")
        x, y, xv, yv = _as_data(data)
        check_data(net, self.loss, x, y, "train split", batch_size)
        if xv is not None:
            check_data(net, self.loss, xv, yv, "validation split")
        self.has_val = xv is not None
        if xv is None:
            xv, yv = x, y
        self.mesh = mesh  # a 1-d jax.sharding.Mesh (see fnn.parallel) or None
        parallel.check_divisible(mesh, batch_size=batch_size, members=None)
        self._host_data = (x, y, xv, yv)  # placed on the device(s) once, at first use
        self._data = None
        self.num_train = int(np.shape(x)[0])
        self.epochs, self.batch_size, self.grad = epochs, batch_size, grad
        self.batches_per_epoch = math.ceil(self.num_train / batch_size)
        self.hparams = HParams() if hparams is None else HParams(*hparams)
        if self.hparams.drop_rate is None:  # the network's own dropout rate
            self.hparams = self.hparams._replace(drop_rate=net.drop_rate)
        if traced is None:
            traced = ("learning_rate",) + tuple(
                n for n in HPARAM_NAMES[1:] if float(getattr(self.hparams, n)) != 0.0
            )
        unknown = set(traced) - set(HPARAM_NAMES)
        if unknown:
            raise ValueError(f"traced: {sorted(unknown)}; expected names from {HPARAM_NAMES}")
        self.traced = tuple(n for n in HPARAM_NAMES if n in traced)
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.augment = augment
        self.progress = progress
        self.progress_every = max(1, epochs // max(1, progress_updates))
        self.classification = self.loss.classification or _integer_labels(y)
        self.multilabel = self.loss.name == "binary_cross_entropy" and net.sizes[-1] > 1
        if (early_stopping is not None and early_stopping.monitor == "val_accuracy"
                and not self.classification):
            raise ValueError(
                f"early_stopping.monitor: 'val_accuracy' needs a classification task (loss"
                f" {self.loss.name!r} with non-integer targets has no accuracy); use 'val_loss'"
            )
        self._run = jax.jit(self._run_impl, static_argnames=("num_epochs", "batched"),
                            donate_argnums=(0,))
        self._init = jax.jit(self._init_impl, static_argnames=("batched",))
        self._evaluate = jax.jit(self.evaluate_fn)  # compiled once per input shape
        self.trace_count = 0  # incremented each time the run is traced (compiled)

    @property
    def data(self) -> DeviceData:
        """The training and validation arrays on the device(s), placed once on first use."""
        if self._data is None:
            self._data = DeviceData(*(parallel.place(self.mesh, np.asarray(a))
                                      for a in self._host_data))
            self._host_data = None
        return self._data

    # --- hyperparameters -----------------------------------------------------------------------
    def hparams_array(self, hparams=None, *, members: Optional[int] = None) -> HParams:
        """Traced hyperparameters as arrays (shape () or (members,)); the rest as None."""
        hp = self.hparams if hparams is None else hparams
        if isinstance(hp, dict):
            unknown = set(hp) - set(HPARAM_NAMES)
            if unknown:
                raise ValueError(f"hparams: unknown {sorted(unknown)}; expected {HPARAM_NAMES}")
            hp = self.hparams._replace(**hp)
        if hp.drop_rate is None:
            hp = hp._replace(drop_rate=self.hparams.drop_rate)
        dtype = jnp.dtype(self.net.dtype)
        out = {}
        for name in HPARAM_NAMES:
            value = getattr(hp, name)
            if name in self.traced:
                arr = jnp.asarray(value, dtype)
                if members is not None:
                    arr = jnp.broadcast_to(arr, (members,))
                out[name] = arr
            else:
                if not isinstance(value, (int, float)) or value != getattr(self.hparams, name):
                    raise ValueError(
                        f"hparams.{name}: {value!r} differs from the compiled value"
                        f" {getattr(self.hparams, name)!r}; list it in traced= to vary it"
                    )
                out[name] = None
        return HParams(**out)

    def _resolve(self, hp: HParams) -> HParams:
        """Merge traced values with the static ones."""
        return HParams(*(t if t is not None else getattr(self.hparams, n)
                         for n, t in zip(HPARAM_NAMES, hp)))

    def make_optimizer(self, hp: HParams) -> optim.Optimizer:
        if isinstance(self.optimizer, optim.Optimizer):
            return self.optimizer
        return self.optimizer(hp)

    def step_fn(self, hp: HParams) -> Callable:
        """The pure train step for hyperparameters ``hp`` (floats or traced)."""
        return train_step_fn(
            self.net, self.loss, self.make_optimizer(hp), grad=self.grad, l1=hp.l1, l2=hp.l2,
            drop_rate=hp.drop_rate, augment=self.augment, multilabel=self.multilabel,
            diagnostics=self.diagnostics, nan_guard=self.nan_guard,
        )

    # --- init ----------------------------------------------------------------------------------
    def _init_impl(self, key, hp, batched: bool):
        def one(k, h):
            h = self._resolve(h)
            return TrainState.create(self.net, self.make_optimizer(h), key=k,
                                     early_stopping=self.early_stopping)
        if batched:
            return jax.vmap(one)(key, hp)
        return one(key, hp)

    def init(self, key: Array, hparams=None) -> TrainState:
        """The first :class:`TrainState` for ``key`` (params from the key)."""
        return self._init(self._place(key), self._place(self.hparams_array(hparams)),
                          batched=False)

    def _place(self, tree, *, shard: bool = False):
        """Host values -> arrays on the mesh (replicated, or members split); no-op without one."""
        if self.mesh is None:
            return tree
        return jax.tree.map(lambda a: parallel.place(self.mesh, a, shard=shard), tree)

    # --- one epoch -----------------------------------------------------------------------------
    def _epoch(self, state: TrainState, hp: HParams, data: DeviceData, shard_batch: bool = False):
        hp = self._resolve(hp)
        step = self.step_fn(hp)
        n, b, nb = self.num_train, self.batch_size, self.batches_per_epoch

        def train_epoch(state):
            key, k_perm = jax.random.split(state.key)
            perm = shuffle.permutation(k_perm, n)  # no sort: see fnn.shuffle
            pad = nb * b - n
            if pad:
                perm = jnp.concatenate([perm, perm[:pad]])  # every example at least once
            idx = perm.reshape(nb, b)
            state = state._replace(key=key)

            step_keys = ("data_loss", "loss", "accuracy", "grad_norm")
            if self.diagnostics:
                step_keys += tuple(diag_mod.history_keys(self.net.num_layers,
                                                         diag_mod.STEP_STATS))

            def body(carry, batch_idx):
                s, sums = carry
                batch = (data.x_train[batch_idx], data.y_train[batch_idx])
                if shard_batch:  # data parallel: split the batch rows over the mesh
                    batch = parallel.constrain(batch, self.mesh, shard=True)
                s, m = step(s, batch)
                # Running sums in the carry (not per-step outputs stacked by the scan): the
                # epoch means below cost no per-step writes.
                return (s, {k: sums[k] + m[k] for k in step_keys}), None

            zeros = {k: jnp.zeros((), jnp.dtype(self.net.dtype)) for k in step_keys}
            (state, sums), _ = jax.lax.scan(body, (state, zeros), idx)
            m = {k: v / nb for k, v in sums.items()}  # means over the epoch's steps
            train = {
                "train_loss": m["data_loss"],
                "train_objective": m["loss"],
                "train_accuracy": m["accuracy"],
                "grad_norm": m["grad_norm"],
            }
            val = self.evaluate_fn(state.params, data.x_val, data.y_val)
            epoch = state.epoch + 1
            hist = {**train, **{f"val_{k}": v for k, v in val.items()}}
            if self.diagnostics:  # per-layer: step means, then epoch-end health on val
                hist.update({k: m[k] for k in
                             diag_mod.history_keys(self.net.num_layers, diag_mod.STEP_STATS)})
                hist.update(diag_mod.epoch_stats(
                    self.net, state.params,
                    metrics_mod.as_inputs(data.x_val, jnp.dtype(self.net.dtype))))
            early = state.early
            params = state.params
            if self.early_stopping is not None:
                early, params = self.early_stopping.update(
                    early, hist[self.early_stopping.monitor], epoch, params)
                if self.early_stopping.restore_best:
                    # A run that reaches its last epoch without stopping also ends on its best
                    # epoch's parameters (epoch counts persist across chunks, so this is exact).
                    params = _select(epoch == self.epochs, early.best_params, params)
            state = state._replace(epoch=epoch, params=params, early=early)
            return state, {**hist, "trained": jnp.asarray(True)}

        def skip_epoch(state):
            nan = jnp.asarray(jnp.nan, jnp.dtype(self.net.dtype))
            return state._replace(epoch=state.epoch + 1), {
                **{k: nan for k in self.metric_names}, "trained": jnp.asarray(False)}

        active = ~state.halted
        if state.early is not None:
            active = active & ~state.early.stopped
        return jax.lax.cond(active, train_epoch, skip_epoch, state)

    @property
    def metric_names(self) -> tuple[str, ...]:
        names = ["train_loss", "train_objective", "train_accuracy", "grad_norm", "val_loss"]
        if self.classification:
            names.append("val_accuracy")
        if self.diagnostics:
            names.extend(diag_mod.history_keys(self.net.num_layers))
        return tuple(names)

    def evaluate_fn(self, params, x, y) -> dict:
        """Loss (and accuracy for classification) of ``params`` on (x, y), no dropout. Traceable."""
        dtype = jnp.dtype(self.net.dtype)
        xf = metrics_mod.as_inputs(x, dtype)
        yd = losses_mod.prepare_targets(self.loss, y, self.net.sizes[-1], dtype)
        y_hat, caches = self.net.forward(params, xf)
        out = {"loss": self.loss.value(caches[-1].z, y_hat, yd)}
        if self.classification:
            out["accuracy"] = metrics_mod.accuracy(y_hat, yd, multilabel=self.multilabel)
        return out

    def evaluate(self, params, x, y, *, chunk: int = 2048) -> dict:
        """Host-side evaluation of ``params`` on (x, y): {"loss", "accuracy"?} as floats.

        Args:
          params: the network's parameters.  x: (N, features) inputs.  y: (N,) labels or
            (N, K) targets.
          chunk: rows per compiled call. Means over chunks are combined weighted by rows, so
            the device holds one chunk's activations at a time (Fashion-MNIST's 10,000 test
            images at once would add ~40 MB to the run's peak memory); at most two shapes
            compile (a full chunk and the remainder).
        Returns:
          the means over all N rows, as Python floats.
        """
        check_data(self.net, self.loss, x, y, "evaluation data")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk: {chunk!r}; expected an integer >= 1")
        x, y = np.asarray(x), np.asarray(y)
        n = x.shape[0]
        # Dispatch every chunk first (no host sync in between), then read the means back.
        outs = [(min(chunk, n - start),
                 self._evaluate(params, *self._place((x[start:start + chunk],
                                                      y[start:start + chunk]))))
                for start in range(0, n, chunk)]
        # The chunks' means weighted by their rows, summed in float64.
        return {k: sum(rows * float(out[k]) for rows, out in outs) / n for k in outs[0][1]}

    # --- the run -------------------------------------------------------------------------------
    def _run_impl(self, state, hp, data, *, num_epochs: int, batched: bool):
        self.trace_count += 1
        if batched:
            epoch_fn = jax.vmap(self._epoch, in_axes=(0, 0, None))
        else:
            epoch_fn = functools.partial(self._epoch, shard_batch=self.mesh is not None)

        def body(state, _):
            # sweep parallel: members split over the mesh; data parallel: state replicated
            state = parallel.constrain(state, self.mesh, shard=batched)
            state, hist = epoch_fn(state, hp, data)
            if self.progress is not None:
                epoch = state.epoch[0] if batched else state.epoch
                summary = {k: (jnp.nanmean(v) if batched else v) for k, v in hist.items()
                           if k != "trained"}

                def report(_):
                    jax.debug.callback(self.progress, epoch, summary, ordered=True)

                jax.lax.cond((epoch % self.progress_every == 0) | (epoch == self.epochs),
                             report, lambda _: None, None)
            return state, hist

        state, hist = jax.lax.scan(body, state, None, length=num_epochs)
        if batched:  # (epochs, members) -> (members, epochs)
            hist = jax.tree.map(lambda h: jnp.swapaxes(h, 0, 1), hist)
        return state, hist

    def run(self, state: TrainState, hparams=None, *, epochs: Optional[int] = None,
            batched: bool = False):
        """Continue ``state`` for ``epochs`` epochs (default: all). Donates ``state``.

        Running K epochs and then the rest gives results bitwise equal to one run.

        Returns:
          (state, history) — history maps metric name -> (epochs,) array ((members, epochs)
          when ``batched``), plus "trained" (False for epochs skipped after a stop).
        """
        members = None
        if batched:
            members = int(state.step.shape[0])
        hp = self._place(self.hparams_array(hparams, members=members), shard=batched)
        return self._run(state, hp, self.data, num_epochs=epochs or self.epochs, batched=batched)

    def train(self, key: Array, hparams=None):
        """A whole run from ``key``: (final TrainState, history of (epochs,) arrays)."""
        hp = self._place(self.hparams_array(hparams))
        state = self._init(self._place(key), hp, batched=False)
        return self._run(state, hp, self.data, num_epochs=self.epochs, batched=False)

    def sweep(self, keys: Array, hparams=None):
        """Train many members in one program: vmap over keys and traced hyperparameters.

        Args:
          keys: (members,) PRNG keys, e.g. ``jax.random.split(key, M)`` or one per seed.
          hparams: :class:`HParams` or dict; traced fields may be (members,) arrays.
        Returns:
          (TrainState with a leading members axis, history of (members, epochs) arrays).
        """
        members = int(keys.shape[0])
        parallel.check_divisible(self.mesh, batch_size=self.batch_size, members=members)
        hp = self._place(self.hparams_array(hparams, members=members), shard=True)
        state = self._init(self._place(keys, shard=True), hp, batched=True)
        return self._run(state, hp, self.data, num_epochs=self.epochs, batched=True)

    def init_sweep(self, keys: Array, hparams=None) -> TrainState:
        members = int(keys.shape[0])
        parallel.check_divisible(self.mesh, batch_size=self.batch_size, members=members)
        return self._init(self._place(keys, shard=True),
                          self._place(self.hparams_array(hparams, members=members), shard=True),
                          batched=True)


def _integer_labels(y) -> bool:
    return np.ndim(y) == 1 and np.asarray(y).dtype.kind in "iu"


def summarize(state: TrainState, history: dict) -> dict:
    """Host-side summary of one run: final/best metrics, best and stop epochs, halted."""
    hist = {k: np.asarray(v) for k, v in history.items()}
    trained = hist.get("trained", np.ones_like(next(iter(hist.values())), bool)).astype(bool)
    last = int(np.nonzero(trained)[0][-1]) if trained.any() else -1
    out = {"epochs_trained": int(trained.sum()), "steps": int(state.step)}
    for k, v in hist.items():
        if k != "trained" and last >= 0:
            out[f"final_{k}"] = float(v[last])
    out["halted"] = bool(state.halted)
    out["halted_step"] = int(state.halted_step) if bool(state.halted) else None
    # False only when an update itself made the parameters non-finite under nan_guard="halt"
    # (or anything under "off"): a caller must not use them.
    out["params_finite"] = bool(all(np.isfinite(np.asarray(leaf)).all()
                                    for leaf in jax.tree.leaves(state.params)))
    if state.early is not None:
        out["best_epoch"] = int(state.early.best_epoch)
        out["best_value"] = float(state.early.best)
        out["stopped_early"] = bool(state.early.stopped)
        out["stop_epoch"] = int(state.early.stop_epoch) if bool(state.early.stopped) else None
    return out


def members_summary(states: TrainState, history: dict) -> list[dict]:
    """:func:`summarize` for each member of a sweep."""
    n = int(states.step.shape[0])
    return [summarize(jax.tree.map(lambda a: a[i], states),
                      {k: v[i] for k, v in history.items()}) for i in range(n)]
