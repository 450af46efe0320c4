"""The train step, ``step(state, batch) -> (state, metrics)``, and its NaN guard.

The step is exactly the body of the scanned run (:class:`fnn.engine.Trainer`);
:func:`make_train_step` jits the same function for a user's own Python loop. It knows the network
only through the network protocol (:mod:`fnn.nn.protocol`): the manual gradient is the network's
own backward, the autodiff gradient ``jax.grad`` of its forward.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from fnn import optim
from fnn.analysis import diagnostics as diag_mod
from fnn.data import prepare_inputs
from fnn.engine import metrics as metrics_mod
from fnn.engine.accumulate import evaluate_accumulated
from fnn.engine.state import TrainState
from fnn.nn import losses as losses_mod
from fnn.nn import objective as obj
from fnn.nn import precision as precision_mod
from fnn.nn.adapter import as_network, check_manual, num_outputs

Array = jax.Array


def is_on(value) -> bool:
    """Whether a hyperparameter is switched on: traced, or a nonzero Python number."""
    return isinstance(value, jax.Array) or float(value) != 0.0


# --------------------------------------------------------------------------------------------
# The train step
# --------------------------------------------------------------------------------------------
NAN_GUARDS = ("halt", "revert", "off")


def check_drop_rate(net, drop_rate) -> None:
    """A dropout rate (a nonzero number, or traced) for a network that draws no masks would be
    ignored: refuse it in one line instead."""
    if drop_rate is None or net.uses_dropout(drop_rate):
        return
    if isinstance(drop_rate, jax.Array) or float(drop_rate) != 0.0:
        shown = "a traced value" if isinstance(drop_rate, jax.Array) else repr(drop_rate)
        raise ValueError(f"drop_rate: {shown}; {net.describe()} has no Dropout layer for it to"
                         f" set (build the MLP with drop_rate > 0, or add fnn.layers.Dropout)")


def check_nan_guard(nan_guard) -> str:
    """Validate ``nan_guard`` (one of :data:`NAN_GUARDS`)."""
    if nan_guard not in NAN_GUARDS:
        raise ValueError(f"training.nan_guard: {nan_guard!r}; expected one of {NAN_GUARDS}")
    return nan_guard


def train_step_fn(net, loss, optimizer: optim.Optimizer, *, grad: str = "manual",
                  l1=0.0, l2=0.0, drop_rate=None, augment: Optional[Callable] = None,
                  multilabel: Optional[bool] = None, diagnostics: bool = False,
                  nan_guard: str = "halt", input_shape: Optional[tuple] = None,
                  accumulate: int = 1, precision: str = "full") -> Callable:
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
      input_shape: one example's shape, for a user network (``init``/``apply`` only) that does
        not say it; it is wrapped into a :class:`~fnn.nn.protocol.Network` here, once.
      accumulate: K, the micro-batches whose mean gradient makes one update (K divides the
        batch; :mod:`fnn.engine.accumulate`). 1: the whole batch at once.
      precision: "full" (compute in the parameters' dtype) or "bfloat16": mixed precision,
        the forward and backward in bfloat16 on float32 master parameters, the loss and the
        update in float32 (:mod:`fnn.nn.precision`).
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
          (2-16-16-2, batch 32: 0.83× the epoch time of "halt", before the flat optimizer
          update, ``Numerics.flat_updates``); on a 784-512-512-10 MLP it is
          1.10× *slower*: without the conditional around the update XLA fuses it less well.
    Returns:
      ``step(state, (x, y))`` with x (B, features) float or uint8 images, y labels (B,) or
      targets (B, K); metrics {"loss", "data_loss", "accuracy", "grad_norm", "finite"}.
    """
    loss = losses_mod.get(loss)
    obj.check_mode(grad)
    check_nan_guard(nan_guard)
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ValueError(f"training.accumulate: {accumulate!r}; expected an integer >= 1")
    net = as_network(net, input_shape=input_shape)  # a user network is wrapped here, once
    if grad == "manual":
        check_manual(net)
    precision_mod.check_precision(precision, net.dtype)
    compute = precision_mod.compute_dtype(precision)
    if compute is not None:
        net.replace(dtype=compute.name)  # a user network cannot: one line, here
    rate = net.drop_rate if drop_rate is None else drop_rate
    check_drop_rate(net, rate)
    dropout = net.uses_dropout(rate)
    k = num_outputs(net)
    losses_mod.check_pairing(loss, net.output, k)
    dtype = jnp.dtype(net.dtype)
    ml = (loss.name == "binary_cross_entropy" and k > 1) if multilabel is None else multilabel

    def all_finite(tree) -> Array:
        # One reduction per leaf: a sum is finite only if every entry is (barring overflow).
        return jnp.isfinite(sum(jnp.sum(leaf) for leaf in jax.tree.leaves(tree)))

    def step(state: TrainState, batch) -> tuple[TrainState, dict]:
        x, y = batch
        if dropout or augment is not None:  # the key advances only when a step consumes it
            key, k_drop, k_aug = jax.random.split(state.key, 3)
        else:
            key = k_drop = k_aug = state.key
        ids = net.integer_inputs  # token ids stay ids (the network's own declaration)
        x = prepare_inputs(x, dtype=dtype, keep_integers=ids)  # flat: augmentation's layout
        if augment is not None:
            x = augment(x, key=k_aug)
        x = prepare_inputs(x, shape=net.input_shape, keep_integers=ids)
        y = losses_mod.prepare_targets(loss, y, k, dtype, output_shape=net.output_shape)
        if accumulate == 1:
            out = obj.evaluate(net, loss, state.params, x, y, mode=grad,
                               key=k_drop if dropout else None, l1=l1, l2=l2, drop_rate=rate,
                               state=state.net_state, compute=compute)
        else:  # K micro-batches, one update (the batch size was checked to divide by K)
            if x.shape[0] % accumulate:
                raise ValueError(f"training.accumulate: {accumulate}; expected a divisor of "
                                 f"the batch size {x.shape[0]}")
            out, y = evaluate_accumulated(
                lambda p, xm, ym, km, s: obj.evaluate(
                    net, loss, p, xm, ym, mode=grad, key=km, l1=l1, l2=l2, drop_rate=rate,
                    state=s, compute=compute),
                state.params, x, y, k=accumulate, key=k_drop if dropout else None,
                state=state.net_state)
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
        # The network's state (BatchNorm statistics) moves with the parameters: a skipped step
        # keeps the old one.
        net_state = jax.tree.map(lambda n, o: jnp.where(ok, n, o), out.state, state.net_state)
        new_state = state._replace(
            step=state.step + ok.astype(jnp.int32),
            params=params,
            opt_state=opt_state,
            net_state=net_state,
            key=key,
            halted=state.halted | halt,
            halted_step=jnp.where(halt, state.step, state.halted_step).astype(jnp.int32),
        )
        metrics = {
            "loss": out.loss,
            "data_loss": out.data_loss,
            "accuracy": metrics_mod.accuracy(out.y_hat, y, multilabel=ml),
            "grad_norm": jnp.sqrt(grad_sq),
            "finite": finite,
        }
        if diagnostics:
            # The barrier keeps XLA from fusing the statistics into the update's kernels, so
            # switching diagnostics on cannot change how the parameters are computed.
            observed = jax.lax.optimization_barrier((out.grads, updates, state.params))
            metrics.update(diag_mod.step_stats(*observed, net=net))
        return new_state, metrics

    return step


def make_train_step(net, loss, optimizer: optim.Optimizer, *, grad: str = "manual",
                    l1=0.0, l2=0.0, drop_rate=None, augment=None, donate: bool = False,
                    diagnostics: bool = False, nan_guard: str = "halt",
                    input_shape: Optional[tuple] = None, accumulate: int = 1,
                    precision: str = "full") -> Callable:
    """A jitted ``step(state, batch) -> (state, metrics)`` for a user's own Python loop.

    The same function is the body of the scanned run (:class:`Trainer`), so a Python loop over
    it visits exactly the states of the scan.

    Args:
      net: a :class:`~fnn.nn.protocol.Network` (:class:`fnn.Sequential`, :class:`fnn.MLP`) or a
        user network with ``init``/``apply`` (then ``input_shape`` unless it has one).
      loss: loss name.  optimizer: :class:`fnn.optim.Optimizer`.
      grad: "manual" | "autodiff".  l1, l2: weight penalties.  drop_rate: dropout override.
      augment: optional on-device augmentation ``(x, *, key) -> x``.
      donate: donate the input state's buffers (faster; the old state must not be reused).
      diagnostics: add per-layer gradient norms and update ratios to the metrics.
      nan_guard: "halt" | "revert" | "off" (see :func:`train_step_fn`).
      accumulate: K micro-batches per update (see :func:`train_step_fn`).
      precision: "full" | "bfloat16" (mixed precision; see :func:`train_step_fn`).
    Returns:
      jitted ``step(state, (x, y)) -> (state, metrics)``.
    """
    step = train_step_fn(net, loss, optimizer, grad=grad, l1=l1, l2=l2, drop_rate=drop_rate,
                         augment=augment, diagnostics=diagnostics, nan_guard=nan_guard,
                         input_shape=input_shape, accumulate=accumulate, precision=precision)
    return jax.jit(step, donate_argnums=(0,) if donate else ())
