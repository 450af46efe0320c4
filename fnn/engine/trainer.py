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

Batches, padding and early stopping: :mod:`fnn.engine.epoch`, whose module functions (one
epoch, the scan over epochs) this class compiles. The NaN guard (``nan_guard="halt"``, the
default) checks the loss and gradient before each update: a step where either is not finite is
skipped, the run is marked halted at that step with the parameters of the last good step, and
later steps are skipped too (:mod:`fnn.engine.step`).

Steps instead of epochs (:mod:`fnn.engine.windows`): with ``windows=Windows(...)`` the data are
token rows, each "epoch" is a round of ``windows.steps`` steps on random windows drawn from the
carried key, then an evaluation on ``windows.eval_batches`` random validation batches; the
history has one row per evaluation, with the optimizer ``step`` it was taken at.

Traced hyperparameters (what a sweep varies inside one program): :mod:`fnn.engine.hparams`.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn import optim
from fnn.engine import epoch as epoch_mod
from fnn.engine import hparams as hp_mod
from fnn.engine import options
from fnn.engine import parallel
from fnn.nn.precision import check_precision
from fnn.engine.device_data import DeviceData, as_data, check_data
from fnn.engine.evaluation import Evaluator
from fnn.engine.hparams import HParams
from fnn.engine.options import Loop, Monitor, Numerics
from fnn.engine.state import TrainState
from fnn.engine.step import check_drop_rate, train_step_fn
from fnn.engine.windows import Windows
from fnn.nn import losses as losses_mod
from fnn.nn.adapter import as_network, check_manual, num_outputs

Array = jax.Array

OptimizerLike = Union[optim.Optimizer, Callable[[HParams], optim.Optimizer]]


class Trainer:
    """A compiled training run: ``train(key, hparams) -> (state, history)``.

    Args:
      net: a :class:`~fnn.nn.protocol.Network` (:class:`fnn.Sequential`, :func:`fnn.MLP`), or
        an object with ``init(key)`` / ``apply(params, x)`` (wrapped once, here).
      loss: loss name.
      optimizer: an :class:`fnn.optim.Optimizer`, or a factory ``hparams -> Optimizer`` (needed
        to sweep learning_rate / weight_decay: the factory receives traced values).
      data: a dataset with ``x_train, y_train, x_val, y_val`` (x_val may be None: then the
        "validation" metrics are computed on the training split), or a tuple (x, y[, xv, yv]);
        with ``loop.windows``, (train rows, val rows) of int token ids (rows, length).
      loop: a :class:`~fnn.engine.options.Loop`: epochs (rounds, with windows), batch_size,
        accumulate, early_stopping, windows.
      numerics: a :class:`~fnn.engine.options.Numerics`: grad ("manual" | "autodiff"),
        precision ("full" | "bfloat16"), nan_guard ("halt" | "revert" | "off"; see
        :func:`train_step_fn`).
      monitor: a :class:`~fnn.engine.options.Monitor`: progress (None, a callable
        ``(epoch, metrics) -> None`` called from inside the program about
        ``progress_updates`` times per run, or True: a callback whose receiver each
        :meth:`run` names), diagnostics (per-layer statistics in the history,
        :mod:`fnn.analysis.diagnostics`; the trained parameters are unchanged).
      hparams: default :class:`HParams` (learning_rate is ignored by a fixed Optimizer).
      traced: names of hyperparameters passed as traced values. Defaults to learning_rate plus
        every nonzero one; a zero hyperparameter not listed is compiled out.
      augment: on-device augmentation ``(x, *, key) -> x`` (training only) or None.
      mesh: a 1-d ``jax.sharding.Mesh`` (:mod:`fnn.engine.parallel`) or None.
      **fields: any field of the three records as a keyword of its own, the short form:
        ``Trainer(net, "mse", opt, data, epochs=5, batch_size=64, grad="autodiff")``.
    """

    def __init__(self, net, loss, optimizer: OptimizerLike, data, *, loop: Optional[Loop] = None,
                 numerics: Optional[Numerics] = None, monitor: Optional[Monitor] = None,
                 hparams: Optional[HParams] = None, traced: Optional[tuple] = None,
                 augment: Optional[Callable] = None, mesh=None, **fields):
        loop, numerics, monitor = options.resolve(loop, numerics, monitor, fields)
        self.options = (loop, numerics, monitor)
        self.loss = losses_mod.get(loss)
        windows, batch_size = loop.windows, loop.batch_size
        self.windows, self.diagnostics = windows, monitor.diagnostics
        self.grad, self.nan_guard = numerics.grad, numerics.nan_guard
        self.flat_updates = numerics.flat_updates
        if windows is not None:  # token rows: (train rows, val rows)
            data = tuple(data)
            x, xv = data[0], data[-2] if len(data) == 4 else data[1]
            y = yv = np.zeros((0,), np.int32)  # the targets are in the windows
            net = as_network(net, input_shape=(windows.block_size,))
        else:
            x, y, xv, yv = as_data(data)
            # A user network (init / apply only) is wrapped once, its input shape from the data.
            net = as_network(net, x=np.empty((0,) + tuple(np.shape(x))[1:]))
        if self.grad == "manual":
            check_manual(net)
        self.net = net
        self.num_outputs = num_outputs(net)
        if self.diagnostics and not net.param_layers():
            raise ValueError(f"diagnostics: {net.describe()} has no layers to report on;"
                             f" expected an fnn.MLP or fnn.Sequential")
        losses_mod.check_pairing(self.loss, net.output, self.num_outputs)
        if windows is not None:
            self._check_windows(net, windows, x, xv)
        else:
            check_data(net, self.loss, x, y, "train split", batch_size)
            if xv is not None:
                check_data(net, self.loss, xv, yv, "validation split")
        self.has_val = xv is not None
        if xv is None:
            xv, yv = x, y
        self.accumulate = loop.accumulate
        self.precision = check_precision(numerics.precision, net.dtype)
        self.mesh = mesh  # a 1-d jax.sharding.Mesh (see fnn.parallel) or None
        # data parallel: every micro-batch is split over the devices
        parallel.check_divisible(mesh, batch_size=batch_size, members=None,
                                 accumulate=loop.accumulate)
        self._host_data = (x, y, xv, yv)  # placed on the device(s) once, at first use
        self._data = None
        self.epochs, self.batch_size = loop.epochs, batch_size
        if windows is not None:
            self.num_train = batch_size * windows.steps  # windows drawn per round
            self.batches_per_epoch = windows.steps
        else:
            self.num_train = int(np.shape(x)[0])
            self.batches_per_epoch = math.ceil(self.num_train / batch_size)
        self.hparams = HParams() if hparams is None else HParams(*hparams)
        if self.hparams.drop_rate is None:  # the network's own dropout rate (None: per layer)
            self.hparams = self.hparams._replace(drop_rate=net.drop_rate)
        self.traced = hp_mod.check_traced(hp_mod.default_traced(self.hparams) if traced is None
                                          else traced)
        # a traced rate stands for every value it may take (a sweep's)
        check_drop_rate(net, jnp.zeros(()) if "drop_rate" in self.traced
                        else self.hparams.drop_rate)
        self.optimizer = optimizer
        self.early_stopping = early_stopping = loop.early_stopping
        self.augment = augment
        # Whether the program reports progress is fixed when it is traced; who receives the
        # reports is not: the compiled callback forwards to the receiver of the current run().
        self.progress = bool(monitor.progress)
        self._receiver = monitor.progress if callable(monitor.progress) else None
        self.progress_every = max(1, loop.epochs // monitor.progress_updates)
        self.evaluator = Evaluator.of(net, self.loss, y=y,
                                      exact_last=windows.answer_len if windows is not None else 0)
        self.classification = self.evaluator.classification
        self.exact_last = self.evaluator.exact_last
        self.multilabel = self.evaluator.multilabel
        if early_stopping is not None:
            early_stopping.check_task(classification=self.classification, loss=self.loss.name)
        self.plan = epoch_mod.RunPlan(
            net=net, evaluator=self.evaluator, epochs=loop.epochs, batch_size=batch_size,
            num_train=self.num_train, batches_per_epoch=self.batches_per_epoch, windows=windows,
            early_stopping=early_stopping, diagnostics=self.diagnostics, mesh=mesh)
        self._run = jax.jit(self._run_impl, static_argnames=("num_epochs", "batched"),
                            donate_argnums=(0,))
        self._init = jax.jit(self._init_impl, static_argnames=("batched",))
        self._evaluate = jax.jit(self.evaluator.fn)  # compiled once per input shape
        self.trace_count = 0  # incremented each time the run is traced (compiled)

    def _check_windows(self, net, windows: Windows, rows, val_rows) -> None:
        """One-line ValueErrors for token rows that cannot train ``net`` by windows."""
        if tuple(net.input_shape) != (windows.block_size,) or not net.integer_inputs:
            raise ValueError(f"network: {net.describe()}; a step-based run on token windows"
                             f" needs integer inputs of shape ({windows.block_size},) (an"
                             f" Embedding first)")
        out = tuple(net.output_shape)
        if len(out) != 2 or out[0] != windows.block_size:  # one next-token distribution a position
            raise ValueError(f"network: output shape {out}; token windows of"
                             f" {windows.block_size} need a ({windows.block_size}, vocabulary)"
                             f" output, one next-token distribution per position")
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
        """Traced hyperparameters as arrays (shape () or (members,)); the rest as None
        (:func:`fnn.engine.hparams.as_inputs`)."""
        return hp_mod.as_inputs(self.hparams, self.traced, hparams,
                                dtype=jnp.dtype(self.net.dtype), members=members)

    def _resolve(self, hp: HParams) -> HParams:
        """Merge traced values with the static ones (:func:`fnn.engine.hparams.resolve`)."""
        return hp_mod.resolve(self.hparams, hp)

    def make_optimizer(self, hp: HParams) -> optim.Optimizer:
        if isinstance(self.optimizer, optim.Optimizer):
            return self.optimizer
        return self.optimizer(hp)

    def step_fn(self, hp: HParams, optimizer: Optional[optim.Optimizer] = None) -> Callable:
        """The pure train step for hyperparameters ``hp`` (floats or traced); ``optimizer``
        (default: the run's for ``hp``) replaces the run's."""
        optimizer = self.make_optimizer(hp) if optimizer is None else optimizer
        return train_step_fn(
            self.net, self.loss, optimizer, grad=self.grad, l1=hp.l1, l2=hp.l2,
            drop_rate=hp.drop_rate, augment=self.augment, multilabel=self.multilabel,
            diagnostics=self.diagnostics, nan_guard=self.nan_guard, accumulate=self.accumulate,
            precision=self.precision,
        )

    # --- init ----------------------------------------------------------------------------------
    def _init_impl(self, key, hp, start, batched: bool):
        params, net_state = start

        def one(k, h):
            h = self._resolve(h)
            return TrainState.create(self.net, self.make_optimizer(h), key=k, params=params,
                                     net_state=net_state, early_stopping=self.early_stopping)
        if batched:  # ``start`` is shared: every member begins from it
            return jax.vmap(one)(key, hp)
        return one(key, hp)

    def init(self, key: Array, hparams=None, *, params=None, net_state=None) -> TrainState:
        """The first :class:`TrainState` for ``key``.

        Args:
          key: PRNG key (split into the init key and the training key).
          hparams: :class:`HParams` or dict of the traced values; None: the Trainer's.
          params: initial parameters, or a tree with ``None`` subtrees drawn from the key
            (:meth:`TrainState.create`; e.g. ``fnn.experiment.init_from.start``); None: all
            drawn from the key.
          net_state: the network's initial state, completed the same way; None: its own.
        """
        return self._init(self.place(key), self.place(self.hparams_array(hparams)),
                          self._start(params, net_state), batched=False)

    def _start(self, params, net_state):
        """Given initial params / state as arrays on the mesh (replicated)."""
        return self.place((params, net_state))

    def place(self, tree, *, shard: bool = False):
        """Host values -> arrays on the mesh (replicated, or members split); no-op without one."""
        if self.mesh is None:
            return tree
        return jax.tree.map(lambda a: parallel.place(self.mesh, a, shard=shard), tree)

    # --- one epoch ---------------------------------------------------------------------------
    def _epoch(self, state: TrainState, hp: HParams, data: DeviceData, shard_batch: bool = False):
        """One epoch for the traced inputs ``hp`` (:func:`fnn.engine.epoch.epoch`); its steps
        run the optimizer on the raveled leaves when ``Numerics.flat_updates`` says so."""
        hp = self._resolve(hp)
        opt = self.make_optimizer(hp)
        flat = epoch_mod.use_flat(self.flat_updates, opt, state.params)
        step = self.step_fn(hp, optim.flat(opt) if flat else opt)
        return epoch_mod.epoch(self.plan, step, state, data, shard_batch=shard_batch, flat=flat)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The history's metrics, in order (without "trained")."""
        return self.plan.metric_names

    def evaluate_fn(self, params, x, y, net_state=None) -> dict:
        """Loss (and accuracy for classification) of ``params`` on (x, y): evaluation mode (no
        dropout; BatchNorm with the running statistics of ``net_state``). Traceable.
        (:meth:`fnn.engine.evaluation.Evaluator.fn`.)"""
        return self.evaluator.fn(params, x, y, net_state)

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
        return epoch_mod.run_epochs(self.plan, epoch_fn, state, hp, data, num_epochs=num_epochs,
                                    batched=batched,
                                    report=self._report if self.progress else None,
                                    report_every=self.progress_every)

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
        state = self._init(self.place(key), hp, (None, None), batched=False)
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
        parallel.check_divisible(self.mesh, batch_size=self.batch_size, members=members,
                                 accumulate=self.accumulate)
        hp = self.place(self.hparams_array(hparams, members=members), shard=True)
        state = self._init(self.place(keys, shard=True), hp, (None, None), batched=True)
        return self._run(state, hp, self.data, num_epochs=self.epochs, batched=True)

    def init_sweep(self, keys: Array, hparams=None, *, params=None,
                   net_state=None) -> TrainState:
        """The first state of a sweep: one member per key (leading axis), every member from
        the same given ``params`` / ``net_state`` (as in :meth:`init`; None subtrees are drawn
        from each member's key)."""
        members = int(keys.shape[0])
        parallel.check_divisible(self.mesh, batch_size=self.batch_size, members=members,
                                 accumulate=self.accumulate)
        return self._init(self.place(keys, shard=True),
                          self.place(self.hparams_array(hparams, members=members), shard=True),
                          self._start(params, net_state), batched=True)
