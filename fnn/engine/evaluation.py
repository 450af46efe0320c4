"""Evaluation of trained parameters: the loss and the task's metrics, in evaluation mode.

An :class:`Evaluator` holds what evaluation needs of a run — the network, the loss and which
metrics the task has — and nothing of training, so a finished run is evaluated without building
a trainer (:meth:`fnn.RunHandle.evaluate`). The :class:`~fnn.engine.Trainer` evaluates its
validation split through one, inside the scanned run.

Means over row chunks are weighted by rows: mean = Σ_chunks rows_c · mean_c / N.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.data import prepare_inputs
from fnn.engine import metrics as metrics_mod
from fnn.engine.device_data import check_data
from fnn.engine.eval_rows import eval_chunk
from fnn.engine.windows import Windows, draw
from fnn.nn import losses as losses_mod
from fnn.nn.adapter import as_network, num_outputs

Array = jax.Array


def integer_labels(y) -> bool:
    """Whether ``y`` holds class ids (1-d integers), which makes a task a classification."""
    return np.ndim(y) == 1 and np.asarray(y).dtype.kind in "iu"


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluator:
    """Loss and metrics of a network's parameters.

    Attributes:
      net: a :class:`fnn.Network`.  loss: a :class:`fnn.nn.losses.Loss`.
      classification: report accuracy.  multilabel: accuracy per sigmoid unit.
      exact_last: > 0: report exact match over the last ``exact_last`` positions of a sequence
        (the answer of a built-in task, :func:`fnn.engine.metrics.exact_match`).
    """

    net: object
    loss: losses_mod.Loss
    classification: bool
    multilabel: bool = False
    exact_last: int = 0

    @classmethod
    def of(cls, net, loss, *, y=None, exact_last: int = 0) -> "Evaluator":
        """The evaluator of ``net`` under loss (name or Loss); ``y``: labels that may make the
        task a classification (integer class ids)."""
        loss = losses_mod.get(loss)
        net = as_network(net)
        multi = loss.name == "binary_cross_entropy" and num_outputs(net) > 1
        return cls(net, loss, loss.classification or (y is not None and integer_labels(y)),
                   multi, int(exact_last))

    @property
    def num_outputs(self) -> int:
        return num_outputs(self.net)

    def fn(self, params, x: Array, y: Array, net_state=None) -> dict:
        """{"loss", "accuracy"?, "exact_match"?} of ``params`` on (x, y): no dropout, BatchNorm
        with the running statistics of ``net_state`` (None: ``net.init_state()``). Traceable.

        Args: x (N, *input_shape) raw inputs; y (N,) labels, (N, K) targets or (N, T) tokens.
        """
        net = self.net
        dtype = jnp.dtype(net.dtype)
        net_state = net.init_state() if net_state is None else net_state
        xf = prepare_inputs(x, dtype=dtype, shape=net.input_shape,
                            keep_integers=net.integer_inputs)
        yd = losses_mod.prepare_targets(self.loss, y, self.num_outputs, dtype,
                                        output_shape=net.output_shape)
        y_hat, caches, _ = net.forward_state(params, net_state, xf, training=False)
        out = {"loss": self.loss.value(net.output_logits(caches), y_hat, yd)}
        if self.classification:
            out["accuracy"] = metrics_mod.accuracy(y_hat, yd, multilabel=self.multilabel)
        if self.exact_last:
            out["exact_match"] = metrics_mod.exact_match(y_hat, yd, last=self.exact_last)
        return out

    def in_chunks(self, params, x: Array, y: Array, net_state) -> dict:
        """:meth:`fn` over row chunks of :func:`eval_chunk` rows (a ``lax.scan``), the means
        weighted by rows; one call when all rows fit. Traceable."""
        n = x.shape[0]
        c = eval_chunk(self.net, cap=n)
        k, r = divmod(n, c)
        if k == 1 and r == 0:
            return self.fn(params, x, y, net_state)

        def body(acc, i):
            xs, ys = (jax.lax.dynamic_slice_in_dim(a, i * c, c) for a in (x, y))
            out = self.fn(params, xs, ys, net_state)
            return {m: acc[m] + out[m] * c for m in acc}, None

        shapes = jax.eval_shape(self.fn, params, x[:c], y[:c], net_state)
        acc, _ = jax.lax.scan(body, {m: jnp.zeros(s.shape, s.dtype) for m, s in shapes.items()},
                              jnp.arange(k))
        if r:  # the remainder rows: one more call of their own shape
            tail = self.fn(params, x[k * c:], y[k * c:], net_state)
            acc = {m: acc[m] + tail[m] * r for m in acc}
        return {m: v / n for m, v in acc.items()}  # mean = Σ_chunks rows × mean / n

    def on_windows(self, params, rows: Array, key: Array, net_state, windows: Windows,
                   batch_size: int):
        """:meth:`fn` on ``windows.eval_batches`` random batches of ``batch_size`` windows of
        token ``rows`` drawn from ``key`` (a ``lax.scan``), averaged; and the first batch's
        inputs. Traceable."""
        keys = jax.random.split(key, windows.eval_batches)

        def body(acc, k):
            out = self.fn(params, *draw(k, rows, batch_size, windows.block_size), net_state)
            return {m: acc[m] + out[m] for m in acc}, None

        x0, y0 = draw(keys[0], rows, batch_size, windows.block_size)
        shapes = jax.eval_shape(self.fn, params, x0, y0, net_state)
        acc, _ = jax.lax.scan(body, {m: jnp.zeros(s.shape, s.dtype) for m, s in shapes.items()},
                              keys)
        return {m: v / windows.eval_batches for m, v in acc.items()}, x0

    def evaluate(self, params, x, y, *, state=None, chunk: int = 2048,
                 compiled: Optional[Callable] = None, place: Callable = lambda t: t) -> dict:
        """Host-side evaluation of ``params`` on (x, y), one chunk of rows per compiled call.

        Args:
          params: the network's parameters.  x: (N, *input_shape) inputs.  y: (N,) labels,
            (N, K) targets or (N, T) tokens.
          state: the network's state (BatchNorm's running statistics); None for
            ``net.init_state()``.
          chunk: rows per compiled call: the device holds one chunk's activations at a time,
            and at most two shapes compile (a full chunk and the remainder).
          compiled: ``jax.jit(self.fn)`` to reuse (a trainer keeps one); None: compile here.
          place: puts a tuple of host arrays on the device(s) (a trainer's mesh).
        Returns:
          the means over all N rows, as Python floats.
        Raises:
          ValueError: data that do not fit the network, or a bad chunk (one line).
        """
        check_data(self.net, self.loss, x, y, "evaluation data")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk: {chunk!r}; expected an integer >= 1")
        fn = jax.jit(self.fn) if compiled is None else compiled
        x, y = np.asarray(x), np.asarray(y)
        n = x.shape[0]
        # One chunk at a time: chunks dispatched together run concurrently on XLA:CPU, and
        # their temporaries coexist (fashion_cnn: +318 MB of peak RSS for 14 chunks).
        outs = []
        for start in range(0, n, chunk):
            out = fn(params, *place((x[start:start + chunk], y[start:start + chunk])), state)
            outs.append((min(chunk, n - start), jax.block_until_ready(out)))
        # The chunks' means weighted by their rows, summed in float64.
        return {k: sum(rows * float(out[k]) for rows, out in outs) / n for k in outs[0][1]}
