"""One epoch and a whole run as module functions: ``lax.scan`` over epochs of ``lax.scan`` over
train steps.

:class:`RunPlan` holds what does not change during a run (the network, its evaluator, the batch
layout, early stopping, diagnostics); :func:`epoch` maps ``(state, data)`` to the next state and
the epoch's metrics, given the train step (:func:`fnn.engine.step.train_step_fn`);
:func:`run_epochs` scans it, reporting progress from inside the program. The
:class:`~fnn.engine.trainer.Trainer` builds the plan and the step and compiles these.

Batches when ``batch_size`` does not divide N: each epoch uses ceil(N / B) batches; the
permutation of all N examples is padded with its own first ``pad`` entries, so every example is
seen at least once per epoch and ``pad = ceil(N/B)·B − N`` examples twice. Every batch has
exactly B rows, so the loss of each step is the exact batch mean.

Early stopping is decided inside the compiled loop; when it stops, or reaches its last epoch,
the best parameters are restored (``restore_best``), and every later epoch is skipped by
``lax.cond`` (under a sweep's vmap the cond becomes a select: later epochs are computed and
discarded, member by member).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from fnn import optim
from fnn.analysis import diagnostics as diag_mod
from fnn.data import prepare_inputs
from fnn.engine import parallel, shuffle
from fnn.engine.device_data import DeviceData
from fnn.engine.early_stopping import EarlyStopping
from fnn.engine.evaluation import Evaluator
from fnn.engine.state import TrainState, select
from fnn.engine.windows import Windows, draw

STEP_KEYS = ("data_loss", "loss", "accuracy", "grad_norm")  # step metrics averaged per epoch
FLAT_UPDATES = ("off", "on", "auto")
FLAT_MAX_ENTRIES = 1 << 14  # "auto": flat updates up to this many parameters


def check_flat_updates(value) -> str:
    """Validate ``flat_updates`` (one of :data:`FLAT_UPDATES`)."""
    if value not in FLAT_UPDATES:
        raise ValueError(f"flat_updates: {value!r}; expected one of {FLAT_UPDATES}")
    return value


def use_flat(setting: str, optimizer, params) -> bool:
    """Whether the scanned loop runs ``optimizer`` on the raveled leaves (:func:`fnn.optim.flat`).

    Args:
      setting: "off" | "on" | "auto" (``Numerics.flat_updates``).
      optimizer: the run's :class:`fnn.optim.Optimizer`.  params: the parameter pytree (its
        shapes; one member's in a sweep).
    Returns:
      a Python bool: never for an optimizer that is not element-wise or parameters of mixed
      dtypes; for "auto" only up to :data:`FLAT_MAX_ENTRIES` parameters (measured epoch time,
      flat against per leaf, Adam: 2-16-16-2 batch 32 0.5–0.85×, 784-64-64-10 batch 128 1.00×,
      784-512-512-10 batch 128 3.7×).
    """
    if check_flat_updates(setting) == "off" or not optim.can_flatten(optimizer, params):
        return False
    entries = sum(int(x.size) for x in jax.tree.leaves(params))
    return setting == "on" or entries <= FLAT_MAX_ENTRIES


@dataclass(frozen=True, eq=False)
class RunPlan:
    """What an epoch needs that does not change during a run.

    Attributes:
      net: the :class:`~fnn.nn.protocol.Network`.  evaluator: its :class:`Evaluator`.
      epochs: epochs of the whole run (the last one restores the best parameters).
      batch_size: B.  num_train: N, training rows (by-example runs).
      batches_per_epoch: ceil(N / B), or the steps of a round (by windows).
      windows: a :class:`Windows` for a step-based run on token rows, or None.
      early_stopping: an :class:`EarlyStopping` or None.
      diagnostics: add the per-layer statistics to each epoch's metrics.
      mesh: a 1-d device mesh (data or sweep parallel) or None.
    """

    net: object
    evaluator: Evaluator
    epochs: int
    batch_size: int
    num_train: int
    batches_per_epoch: int
    windows: Optional[Windows] = None
    early_stopping: Optional[EarlyStopping] = None
    diagnostics: bool = False
    mesh: object = None

    @property
    def dtype(self):
        """The network's float dtype (the metrics' dtype)."""
        return jnp.dtype(self.net.dtype)

    def step_keys(self) -> tuple[str, ...]:
        """The step metrics summed over an epoch (diagnostics add one per layer)."""
        keys = STEP_KEYS
        if self.diagnostics:
            keys += tuple(diag_mod.history_keys(len(diag_mod.rows(self.net)),
                                                diag_mod.STEP_STATS))
        return keys

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The history's metrics, in order (without "trained")."""
        names = ["train_loss", "train_objective", "train_accuracy", "grad_norm", "val_loss"]
        if self.evaluator.classification:
            names.append("val_accuracy")
        if self.evaluator.exact_last:
            names.append("val_exact_match")
        if self.windows is not None:
            names.append("step")
        if self.diagnostics:
            names.extend(diag_mod.history_keys(len(diag_mod.rows(self.net))))
        return tuple(names)


def _batch_indices(plan: RunPlan, state: TrainState):
    """(new key, the epoch's batch indices (nb, B) or window keys (nb,), evaluation key)."""
    if plan.windows is not None:  # steps on random windows; their keys from the carried key
        key, k_steps, k_eval = jax.random.split(state.key, 3)
        return key, jax.random.split(k_steps, plan.batches_per_epoch), k_eval
    n, b, nb = plan.num_train, plan.batch_size, plan.batches_per_epoch
    key, k_perm = jax.random.split(state.key)
    perm = shuffle.permutation(k_perm, n)  # no sort: see fnn.shuffle
    pad = nb * b - n
    if pad:
        perm = jnp.concatenate([perm, perm[:pad]])  # every example at least once
    return key, perm.reshape(nb, b), None


def _train_epoch(plan: RunPlan, step: Callable, state: TrainState, data: DeviceData,
                 shard_batch: bool, flat: bool):
    """The epoch's steps, its evaluation, early stopping: ``(state, metrics)``."""
    net, win, b, nb = plan.net, plan.windows, plan.batch_size, plan.batches_per_epoch
    key, idx, k_eval = _batch_indices(plan, state)
    state = state._replace(key=key)
    step_keys = plan.step_keys()
    like = state.opt_state
    if flat:  # the steps run fnn.optim.flat(optimizer): its state inside the scan only
        state = state._replace(opt_state=optim.ravel_state(like, state.params))

    def body(carry, batch_idx):
        s, sums = carry
        if win is not None:
            batch = draw(batch_idx, data.x_train, b, win.block_size)
        else:
            batch = (data.x_train[batch_idx], data.y_train[batch_idx])
        if shard_batch:  # data parallel: split the batch rows over the mesh
            batch = parallel.constrain(batch, plan.mesh, shard=True)
        s, m = step(s, batch)
        # Running sums in the carry (not per-step outputs stacked by the scan): the epoch means
        # below cost no per-step writes.
        return (s, {k: sums[k] + m[k] for k in step_keys}), None

    zeros = {k: jnp.zeros((), plan.dtype) for k in step_keys}
    (state, sums), _ = jax.lax.scan(body, (state, zeros), idx)
    if flat:
        state = state._replace(opt_state=optim.unravel_state(state.opt_state, like,
                                                              state.params))
    m = {k: v / nb for k, v in sums.items()}  # means over the epoch's steps
    train = {
        "train_loss": m["data_loss"],
        "train_objective": m["loss"],
        "train_accuracy": m["accuracy"],
        "grad_norm": m["grad_norm"],
    }
    if win is not None:
        val, x_stats = plan.evaluator.on_windows(state.params, data.x_val, k_eval,
                                                 state.net_state, win, b)
        train["step"] = state.step.astype(plan.dtype)
    else:
        val = plan.evaluator.in_chunks(state.params, data.x_val, data.y_val, state.net_state)
        x_stats = data.x_val
    epoch_no = state.epoch + 1
    hist = {**train, **{f"val_{k}": v for k, v in val.items()}}
    if plan.diagnostics:  # per-layer: step means, then epoch-end health on val
        hist.update({k: m[k] for k in diag_mod.history_keys(len(diag_mod.rows(net)),
                                                            diag_mod.STEP_STATS)})
        hist.update(diag_mod.epoch_stats(
            net, state.params,
            prepare_inputs(x_stats, dtype=plan.dtype, shape=net.input_shape,
                           keep_integers=net.integer_inputs), state.net_state))
    early, params, net_state = state.early, state.params, state.net_state
    es = plan.early_stopping
    if es is not None:
        early, params = es.update(state.early, hist[es.monitor], epoch_no, params, net_state)
        net_state = es.restore_state(state.early, early, net_state)
        if es.restore_best:
            # A run that reaches its last epoch without stopping also ends on its best epoch's
            # parameters (epoch counts persist across chunks, so this is exact).
            params = select(epoch_no == plan.epochs, early.best_params, params)
            net_state = select(epoch_no == plan.epochs, early.best_net_state, net_state)
    state = state._replace(epoch=epoch_no, params=params, early=early, net_state=net_state)
    return state, {**hist, "trained": jnp.asarray(True)}


def active(state: TrainState):
    """Whether a run still trains: neither halted by the NaN guard nor stopped early."""
    on = ~state.halted
    if state.early is not None:
        on = on & ~state.early.stopped
    return on


def epoch(plan: RunPlan, step: Callable, state: TrainState, data: DeviceData, *,
          shard_batch: bool = False, flat: bool = False):
    """One epoch: ``(state, metrics)``, or a skipped one (NaN metrics) once the run stopped.

    Args:
      plan: the run's :class:`RunPlan`.  step: ``step(state, batch) -> (state, metrics)``.
      state: the carry.  data: the device arrays.
      shard_batch: constrain each batch's rows to be split over ``plan.mesh`` (data parallel).
      flat: ``step``'s optimizer is :func:`fnn.optim.flat` of the one that made
        ``state.opt_state``: the state is raveled (:func:`fnn.optim.ravel_state`) before the
        steps' scan and unraveled after it, so the carried state stays per leaf.
    Returns:
      ``(state, {metric: () array, "trained": bool})``.
    """
    def skip_epoch(state):
        nan = jnp.asarray(jnp.nan, plan.dtype)
        return state._replace(epoch=state.epoch + 1), {
            **{k: nan for k in plan.metric_names}, "trained": jnp.asarray(False)}

    return jax.lax.cond(active(state),
                        lambda s: _train_epoch(plan, step, s, data, shard_batch, flat),
                        skip_epoch, state)


def run_epochs(plan: RunPlan, epoch_fn: Callable, state: TrainState, hp, data: DeviceData, *,
               num_epochs: int, batched: bool, report: Optional[Callable] = None,
               report_every: int = 1):
    """``num_epochs`` epochs of ``epoch_fn(state, hp, data)`` as one ``lax.scan``.

    Args:
      plan: the run's :class:`RunPlan`.  epoch_fn: one epoch (vmapped over members if batched).
      state: the carry (a leading members axis if ``batched``).  hp: the traced inputs.
      num_epochs: epochs to run (static).  batched: a sweep (members split over the mesh).
      report: a host callback ``(epoch, metrics)`` called from inside the program every
        ``report_every`` epochs, at the last epoch and at the epoch a run stopped; None: none.
    Returns:
      ``(state, history)``: metric -> (epochs,) array, or (members, epochs) when batched.
    """
    def body(state, _):
        # sweep parallel: members split over the mesh; data parallel: state replicated
        state = parallel.constrain(state, plan.mesh, shard=batched)
        state, hist = epoch_fn(state, hp, data)
        if report is not None:
            epoch_no = state.epoch[0] if batched else state.epoch
            summary = {k: (jnp.nanmean(v) if batched else v) for k, v in hist.items()
                       if k != "trained"}
            # Only epochs that trained are reported (a stopped run's skipped epochs carry NaN
            # metrics), and the last trained epoch always is (the stop epoch).
            trained = jnp.any(hist["trained"])
            last = trained & ~jnp.any(active(state))

            def send(_):
                # Unordered: ordered effects cannot run on more than one device. Under a mesh
                # the callback runs once, on the mesh's first device (process 0).
                jax.debug.callback(report, epoch_no, summary, ordered=False)

            jax.lax.cond(trained & ((epoch_no % report_every == 0)
                                    | (epoch_no == plan.epochs) | last),
                         send, lambda _: None, None)
        return state, hist

    state, hist = jax.lax.scan(body, state, None, length=num_epochs)
    if batched:  # (epochs, members) -> (members, epochs)
        hist = jax.tree.map(lambda h: jnp.swapaxes(h, 0, 1), hist)
    return state, hist
