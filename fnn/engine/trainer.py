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

Steps instead of epochs (:mod:`fnn.engine.windows`): with ``windows=Windows(...)`` the data are
token rows, each "epoch" is a round of ``windows.steps`` steps on random windows drawn from the
carried key, then an evaluation on ``windows.eval_batches`` random validation batches; the
history has one row per evaluation, with the optimizer ``step`` it was taken at.

One concept needs the length: the scanned run (epochs of batches, sweeps as vmap, chunks, evaluation) is one program.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn import optim
from fnn.analysis import diagnostics as diag_mod
from fnn.data import prepare_inputs
from fnn.engine import parallel, shuffle
from fnn.engine.device_data import DeviceData, as_data, check_data
from fnn.engine.early_stopping import EarlyStopping
from fnn.engine.evaluation import Evaluator
from fnn.engine.state import HPARAM_NAMES, HParams, TrainState, select
from fnn.engine.step import check_drop_rate, check_nan_guard, train_step_fn
from fnn.engine.windows import Windows, draw
from fnn.nn import losses as losses_mod
from fnn.nn import objective as obj
from fnn.nn.adapter import as_network, check_manual, num_outputs

Array = jax.Array

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
      progress: ``None``/False (silent: the program has no callback), a callable
        ``(epoch, metrics_dict) -> None``, or True (a callback whose receiver each call of
        :meth:`run` names with ``progress=``). It is called from inside the program about
        ``progress_updates`` times per run.
      diagnostics: add per-layer statistics to the history (:mod:`fnn.diagnostics`):
        "grad_norm/layer<l>" and "update_ratio/layer<l>" (means over the epoch's steps),
        "weight_norm/layer<l>", and the activation health on the validation split at epoch
        end, "slope/layer<l>" (mean g'(Z)), "saturated/layer<l>", "dead/layer<l>". The trained
        parameters are unchanged.
      nan_guard: "halt" (default) | "revert" | "off": what a non-finite step does (see
        :func:`train_step_fn`).
      windows: a :class:`~fnn.engine.windows.Windows` for a step-based run on token rows:
        ``data`` is then (train rows, val rows) of int ids (rows, length), ``epochs`` the
        number of rounds (evaluations) and every round ``windows.steps`` steps.
    """

    def __init__(self, net, loss, optimizer: OptimizerLike, data, *, epochs: int,
                 batch_size: int, grad: str = "manual", hparams: Optional[HParams] = None,
                 traced: Optional[tuple] = None, early_stopping: Optional[EarlyStopping] = None,
                 augment: Optional[Callable] = None, progress: Optional[Callable] = None,
                 progress_updates: int = 100, mesh=None, diagnostics: bool = False,
                 nan_guard: str = "halt", windows: Optional[Windows] = None):
        self.loss = losses_mod.get(loss)
        self.diagnostics = bool(diagnostics)
        obj.check_mode(grad)
        self.nan_guard = check_nan_guard(nan_guard)
        self.windows = windows
        if windows is not None:  # token rows: (train rows, val rows)
            data = tuple(data)
            x, xv = data[0], data[-2] if len(data) == 4 else data[1]
            y = yv = np.zeros((0,), np.int32)  # the targets are in the windows
            net = as_network(net, input_shape=(windows.block_size,))
        else:
            x, y, xv, yv = as_data(data)
            # A user network (init / apply only) is wrapped once, its input shape from the data.
            net = as_network(net, x=np.empty((0,) + tuple(np.shape(x))[1:]))
        if grad == "manual":
            check_manual(net)
        self.net = net
        self.num_outputs = num_outputs(net)
        if self.diagnostics and not net.param_layers():
            raise ValueError(f"diagnostics: {net.describe()} has no layers to report on;"
                             f" expected an fnn.MLP or fnn.Sequential")
        losses_mod.check_pairing(self.loss, net.output, self.num_outputs)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"training.epochs: {epochs!r}; expected an integer >= 1")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise ValueError(f"training.batch_size: {batch_size!r}; expected an integer >= 1")
        if windows is not None:
            self._check_windows(net, windows, x, xv, batch_size)
        else:
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
        self.epochs, self.batch_size, self.grad = epochs, batch_size, grad
        if windows is not None:
            self.num_train = batch_size * windows.steps  # windows drawn per round
            self.batches_per_epoch = windows.steps
        else:
            self.num_train = int(np.shape(x)[0])
            self.batches_per_epoch = math.ceil(self.num_train / batch_size)
        self.hparams = HParams() if hparams is None else HParams(*hparams)
        if self.hparams.drop_rate is None:  # the network's own dropout rate (None: per layer)
            self.hparams = self.hparams._replace(drop_rate=net.drop_rate)
        if traced is None:
            traced = ("learning_rate",) + tuple(
                n for n in HPARAM_NAMES[1:] if float(getattr(self.hparams, n) or 0.0) != 0.0
            )
        unknown = set(traced) - set(HPARAM_NAMES)
        if unknown:
            raise ValueError(f"traced: {sorted(unknown)}; expected names from {HPARAM_NAMES}")
        self.traced = tuple(n for n in HPARAM_NAMES if n in traced)
        # a traced rate stands for every value it may take (a sweep's)
        check_drop_rate(net, jnp.zeros(()) if "drop_rate" in self.traced
                        else self.hparams.drop_rate)
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.augment = augment
        # Whether the program reports progress is fixed when it is traced; who receives the
        # reports is not: the compiled callback forwards to the receiver of the current run().
        self.progress = bool(progress)
        self._receiver = progress if callable(progress) else None
        self.progress_every = max(1, epochs // max(1, progress_updates))
        self.evaluator = Evaluator.of(net, self.loss, y=y,
                                      exact_last=windows.answer_len if windows is not None else 0)
        self.classification = self.evaluator.classification
        self.exact_last = self.evaluator.exact_last
        self.multilabel = self.evaluator.multilabel
        if early_stopping is not None:
            early_stopping.check_task(classification=self.classification, loss=self.loss.name)
        self._run = jax.jit(self._run_impl, static_argnames=("num_epochs", "batched"),
                            donate_argnums=(0,))
        self._init = jax.jit(self._init_impl, static_argnames=("batched",))
        self._evaluate = jax.jit(self.evaluator.fn)  # compiled once per input shape
        self.trace_count = 0  # incremented each time the run is traced (compiled)

    def _check_windows(self, net, windows: Windows, rows, val_rows, batch_size) -> None:
        """One-line ValueErrors for token rows that cannot train ``net`` by windows."""
        if tuple(net.input_shape) != (windows.block_size,) or not net.integer_inputs:
            raise ValueError(f"network: {net.describe()}; a step-based run on token windows"
                             f" needs integer inputs of shape ({windows.block_size},) (an"
                             f" Embedding first)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"training.batch_size: {batch_size!r}; expected an integer >= 1")
        windows.check_rows(rows, "train split")
        if val_rows is not None:
            windows.check_rows(val_rows, "validation split")
        vocab = num_outputs(net)
        for name, r in (("train split", rows), ("validation split", val_rows)):
            if r is not None and np.size(r) and (np.min(r) < 0 or np.max(r) >= vocab):
                raise ValueError(f"{name}: token ids in [{np.min(r)}, {np.max(r)}]; expected ids"
                                 f" in [0, {vocab - 1}] for a {vocab}-unit output")

    @property
    def examples_per_epoch(self) -> int:
        """Examples (windows) one epoch (round) trains on."""
        return self.batches_per_epoch * self.batch_size if self.windows is not None \
            else self.num_train

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
                same_none = value is None and getattr(self.hparams, name) is None
                if not same_none and (not isinstance(value, (int, float))
                                      or value != getattr(self.hparams, name)):
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
        return self._init(self.place(key), self.place(self.hparams_array(hparams)),
                          batched=False)

    def place(self, tree, *, shard: bool = False):
        """Host values -> arrays on the mesh (replicated, or members split); no-op without one."""
        if self.mesh is None:
            return tree
        return jax.tree.map(lambda a: parallel.place(self.mesh, a, shard=shard), tree)

    # --- one epoch -----------------------------------------------------------------------------
    def _epoch(self, state: TrainState, hp: HParams, data: DeviceData, shard_batch: bool = False):
        hp = self._resolve(hp)
        step = self.step_fn(hp)
        n, b, nb = self.num_train, self.batch_size, self.batches_per_epoch

        win = self.windows

        def train_epoch(state):
            if win is not None:  # steps on random windows; their keys from the carried key
                key, k_steps, k_eval = jax.random.split(state.key, 3)
                idx = jax.random.split(k_steps, nb)
            else:
                key, k_perm = jax.random.split(state.key)
                perm = shuffle.permutation(k_perm, n)  # no sort: see fnn.shuffle
                pad = nb * b - n
                if pad:
                    perm = jnp.concatenate([perm, perm[:pad]])  # every example at least once
                idx = perm.reshape(nb, b)
            state = state._replace(key=key)

            step_keys = ("data_loss", "loss", "accuracy", "grad_norm")
            if self.diagnostics:
                step_keys += tuple(diag_mod.history_keys(len(self.net.param_layers()),
                                                         diag_mod.STEP_STATS))

            def body(carry, batch_idx):
                s, sums = carry
                if win is not None:
                    batch = draw(batch_idx, data.x_train, b, win.block_size)
                else:
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
            if win is not None:
                val, x_stats = self._evaluate_windows(state.params, data.x_val, k_eval,
                                                      state.net_state)
                train["step"] = state.step.astype(jnp.dtype(self.net.dtype))
            else:
                val = self._evaluate_in_chunks(state.params, data.x_val, data.y_val,
                                               state.net_state)
                x_stats = data.x_val
            epoch = state.epoch + 1
            hist = {**train, **{f"val_{k}": v for k, v in val.items()}}
            if self.diagnostics:  # per-layer: step means, then epoch-end health on val
                hist.update({k: m[k] for k in
                             diag_mod.history_keys(len(self.net.param_layers()),
                                                    diag_mod.STEP_STATS)})
                hist.update(diag_mod.epoch_stats(
                    self.net, state.params,
                    prepare_inputs(x_stats, dtype=jnp.dtype(self.net.dtype),
                                   shape=self.net.input_shape,
                                   keep_integers=self.net.integer_inputs), state.net_state))
            early = state.early
            params, net_state = state.params, state.net_state
            if self.early_stopping is not None:
                early, params = self.early_stopping.update(
                    state.early, hist[self.early_stopping.monitor], epoch, params, net_state)
                net_state = self.early_stopping.restore_state(state.early, early, net_state)
                if self.early_stopping.restore_best:
                    # A run that reaches its last epoch without stopping also ends on its best
                    # epoch's parameters (epoch counts persist across chunks, so this is exact).
                    params = select(epoch == self.epochs, early.best_params, params)
                    net_state = select(epoch == self.epochs, early.best_net_state, net_state)
            state = state._replace(epoch=epoch, params=params, early=early, net_state=net_state)
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
        if self.exact_last:
            names.append("val_exact_match")
        if self.windows is not None:
            names.append("step")
        if self.diagnostics:
            names.extend(diag_mod.history_keys(len(self.net.param_layers())))
        return tuple(names)

    def evaluate_fn(self, params, x, y, net_state=None) -> dict:
        """Loss (and accuracy for classification) of ``params`` on (x, y): evaluation mode (no
        dropout; BatchNorm with the running statistics of ``net_state``). Traceable.
        (:meth:`fnn.engine.evaluation.Evaluator.fn`.)"""
        return self.evaluator.fn(params, x, y, net_state)

    def _evaluate_windows(self, params, rows, key, net_state):
        return self.evaluator.on_windows(params, rows, key, net_state, self.windows,
                                         self.batch_size)

    def _evaluate_in_chunks(self, params, x, y, net_state) -> dict:
        return self.evaluator.in_chunks(params, x, y, net_state)

    def evaluate(self, params, x, y, *, state=None, chunk: int = 2048) -> dict:
        """Host-side evaluation of ``params`` on (x, y): {"loss", "accuracy"?} as floats
        (:meth:`fnn.engine.evaluation.Evaluator.evaluate`, on this trainer's devices).

        Args:
          params: the network's parameters.  x: (N, features) inputs.  y: (N,) labels or
            (N, K) targets.  state: the network's state (None: ``net.init_state()``).
          chunk: rows per compiled call.
        Returns:
          the means over all N rows, as Python floats.
        """
        return self.evaluator.evaluate(params, x, y, state=state, chunk=chunk,
                                       compiled=self._evaluate, place=self.place)

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
            if self.progress:
                epoch = state.epoch[0] if batched else state.epoch
                summary = {k: (jnp.nanmean(v) if batched else v) for k, v in hist.items()
                           if k != "trained"}
                # Only epochs that trained are reported (a stopped run's skipped epochs carry
                # NaN metrics), and the last trained epoch always is (the stop epoch).
                trained = jnp.any(hist["trained"])
                active = ~state.halted
                if state.early is not None:
                    active = active & ~state.early.stopped
                last = trained & ~jnp.any(active)

                def report(_):
                    # Unordered: ordered effects cannot run on more than one device. Under a
                    # mesh the callback runs once, on the mesh's first device (process 0).
                    jax.debug.callback(self._report, epoch, summary, ordered=False)

                jax.lax.cond(trained & ((epoch % self.progress_every == 0)
                                        | (epoch == self.epochs) | last),
                             report, lambda _: None, None)
            return state, hist

        state, hist = jax.lax.scan(body, state, None, length=num_epochs)
        if batched:  # (epochs, members) -> (members, epochs)
            hist = jax.tree.map(lambda h: jnp.swapaxes(h, 0, 1), hist)
        return state, hist

    def _report(self, epoch, metrics) -> None:
        if self._receiver is not None:
            self._receiver(epoch, metrics)

    def run(self, state: TrainState, hparams=None, *, epochs: Optional[int] = None,
            batched: bool = False, progress: Optional[Callable] = None):
        """Continue ``state`` for ``epochs`` epochs (default: all). Donates ``state``.

        Running K epochs and then the rest gives results bitwise equal to one run.
        ``progress``, when given, receives this call's progress reports (a Trainer built with
        ``progress=True`` or a callable; otherwise the program has no callback).

        Returns:
          (state, history) — history maps metric name -> (epochs,) array ((members, epochs)
          when ``batched``), plus "trained" (False for epochs skipped after a stop).
        """
        members = None
        if batched:
            members = int(state.step.shape[0])
        hp = self.place(self.hparams_array(hparams, members=members), shard=batched)
        if progress is not None:
            self._receiver = progress
        return self._run(state, hp, self.data, num_epochs=epochs or self.epochs, batched=batched)

    def train(self, key: Array, hparams=None):
        """A whole run from ``key``: (final TrainState, history of (epochs,) arrays)."""
        hp = self.place(self.hparams_array(hparams))
        state = self._init(self.place(key), hp, batched=False)
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
        hp = self.place(self.hparams_array(hparams, members=members), shard=True)
        state = self._init(self.place(keys, shard=True), hp, batched=True)
        return self._run(state, hp, self.data, num_epochs=self.epochs, batched=True)

    def init_sweep(self, keys: Array, hparams=None) -> TrainState:
        members = int(keys.shape[0])
        parallel.check_divisible(self.mesh, batch_size=self.batch_size, members=members)
        return self._init(self.place(keys, shard=True),
                          self.place(self.hparams_array(hparams, members=members), shard=True),
                          batched=True)
