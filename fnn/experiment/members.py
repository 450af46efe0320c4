"""The trained members of a finished run directory: network, parameters and preprocessing.

A run is one member, or a sweep of members trained in groups (one compiled program each, see
:func:`fnn.experiment.build.plan`). Members are numbered in the order of ``summary.json`` and
``metrics.csv``: group by group, each group's members in order; each has a label
("optimizer.learning_rate=0.001 training.seed=0", or "0" for a single run).

This module reads only what training wrote: ``config.toml``, ``preprocessing.json`` (else the
dataset is loaded once to derive it, for runs written before that file existed) and the newest
checkpoint of the member's group, of which only the parameters (and network state, if any) are
restored, so no optimizer, trainer or data is built. It is below the runner (which calls
:mod:`fnn.experiment.model_report` at its report step) and below the public handle.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.experiment import build as exp
from fnn.experiment import checkpoint
from fnn.experiment import rundir
from fnn.experiment.rundir import CONFIG_FILE, UsageError, checkpoint_dir
from fnn.experiment import config as config_mod
from fnn.experiment import preprocessing

PARAMS_PATH = ".params"          # the TrainState fields holding what a trained model needs
NET_STATE_PATH = ".net_state"    # (BatchNorm statistics; absent for networks without state)


# Not a (finished) run directory, or no such member: the one error class of a run directory
# (:class:`fnn.experiment.rundir.UsageError`, exit status 2 in the CLI), under the name the runs
# side has always raised.
RunDirError = UsageError


@dataclasses.dataclass(frozen=True)
class MemberRef:
    """Where a member lives: flat ``index``, ``label``, its group ``group_index`` and position
    ``position`` in that group, and its sweep index ``sweep_index`` (into
    :func:`fnn.experiment.config.sweep_members`)."""

    index: int
    label: str
    group_index: int
    position: int
    sweep_index: int


def read_config(run_dir):
    """The resolved config of ``run_dir``. Raises RunDirError when it holds no run."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir() or not path.is_file():
        raise RunDirError(f"{str(run_dir)!r} is not a run directory (no {CONFIG_FILE})")
    return rundir.read_config(run_dir)  # a binary or unreadable file: one line naming it


def member_refs(groups) -> list[MemberRef]:
    """Every member of the planned ``groups``, in summary order."""
    refs = []
    for gi, g in enumerate(groups):
        for j, (label, s) in enumerate(zip(g.labels, g.members)):
            refs.append(MemberRef(len(refs), str(label) if len(g.labels) > 1 or
                                  len(groups) > 1 else "0", gi, j, int(s)))
    return refs


def find_member(refs: list[MemberRef], member: Union[int, str, None], run_dir) -> MemberRef:
    """The member named by index or label; ``None`` is allowed for a single run only."""
    labels = ", ".join(repr(r.label) for r in refs[:6]) + (", ..." if len(refs) > 6 else "")
    if member is None:
        if len(refs) == 1:
            return refs[0]
        raise RunDirError(f"{str(run_dir)!r} is a sweep of {len(refs)} members; pick one with "
                          f"--member / member= (an index 0..{len(refs) - 1} or a label: {labels})")
    if isinstance(member, (int, np.integer)) and not isinstance(member, bool) or (
            isinstance(member, str) and member.strip().isdigit()):
        i = int(member)
        if 0 <= i < len(refs):
            return refs[i]
        raise RunDirError(f"member {i}: the run has {len(refs)} member"
                          f"{'s' if len(refs) > 1 else ''} (0..{len(refs) - 1})")
    for r in refs:
        if r.label == member:
            return r
    raise RunDirError(f"member {member!r}: no member has that label; expected an index "
                      f"0..{len(refs) - 1} or one of {labels}")


def member_config(cfg, groups, ref: MemberRef):
    """The config one member trained with: its group's config with its swept values set."""
    gcfg = groups[ref.group_index].config
    for key, value in config_mod.sweep_members(cfg)[ref.sweep_index].items():
        gcfg = gcfg.replace(key, value)
    return gcfg


def data_specs(run_dir, cfg, groups, dataset=None) -> list[preprocessing.DataSpec]:
    """One DataSpec per group: from ``preprocessing.json``, else from the data (loaded here
    unless ``dataset``, the base config's, is given)."""
    specs = preprocessing.read(run_dir)
    if specs is not None:
        if len(specs) != len(groups):
            raise RunDirError(f"{Path(run_dir) / preprocessing.FILE}: {len(specs)} groups; the "
                              f"config plans {len(groups)}")
        return specs
    out = []
    for g in groups:
        ds = dataset if dataset is not None and g.config.data == cfg.data else \
            exp.load_dataset(g.config)
        out.append(preprocessing.from_dataset(ds))
    return out


def checkpoint_path(run_dir, group_index: int, num_groups: int) -> Path:
    """The newest checkpoint of a group (the layout of :func:`fnn.experiment.rundir.checkpoint_dir`).
    Raises RunDirError if none."""
    d = checkpoint_dir(Path(run_dir), group_index, num_groups)
    path = checkpoint.latest(d)
    if path is None:
        raise RunDirError(f"{str(run_dir)!r}: no checkpoint in {d} (training not finished?)")
    return path


def input_shape(net, spec: preprocessing.DataSpec) -> tuple:
    """One example's network input shape: ``net.input_shape``, else ``(F,)``."""
    shape = getattr(net, "input_shape", None)
    return tuple(int(s) for s in shape) if shape else (int(spec.num_features),)


def load_group(run_dir, cfg, groups, group_index: int, spec) -> tuple[Any, Any, Any]:
    """(net, params, net_state) of one group, stacked over its members when it has several.

    Raises:
      RunDirError / CheckpointError: no checkpoint, or one that does not fit the config.
    """
    g = groups[group_index]
    net = exp.build_net(g.config, spec)
    path = checkpoint_path(run_dir, group_index, len(groups))
    n = len(g.members)

    def template(tree):
        shapes = jax.eval_shape(lambda: tree())
        if n == 1:
            return shapes
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct((n, *s.shape), s.dtype), shapes)

    params = checkpoint.load_subtree(path, template(lambda: net.init(jax.random.key(0))),
                                     prefix=PARAMS_PATH)
    state = None
    init_state = getattr(net, "init_state", None)
    if callable(init_state) and jax.tree.leaves(init_state()) and \
            checkpoint.has_subtree(path, NET_STATE_PATH):
        state = checkpoint.load_subtree(path, template(init_state), prefix=NET_STATE_PATH)
    return net, params, state


def check_outputs(net, spec, run_dir) -> None:
    """RunDirError unless the data's classes (``preprocessing.json``) name the network's
    outputs: one per class, or one sigmoid unit for two classes."""
    outputs = int(net.output_shape[-1]) if getattr(net, "output_shape", None) else None
    if outputs is None or spec.task != "classification":
        return
    k = len(spec.class_names)
    if outputs != k and not (outputs == 1 and k == 2):
        raise RunDirError(f"{Path(run_dir) / preprocessing.FILE}: {k} classes for a network of "
                          f"{outputs} outputs; expected {outputs} (the file does not belong to "
                          "this run)")


def select(tree, position: int, members: int):
    """Member ``position`` of a tree stacked over ``members`` (the tree itself when 1)."""
    if tree is None or members == 1:
        return tree
    return jax.tree.map(lambda a: a[position], tree)


def prediction_fn(net, spec, *, logits: bool = False) -> Callable:
    """``f(params, net_state, x) -> y``: raw inputs (batch, *input_shape) to network outputs,
    with :func:`fnn.experiment.preprocessing.prepare` applied. Pure and traceable.

    With ``logits``, y is Z(L), the output activation's input (``net.output_logits``): what a
    sequence model's export returns, (batch, T, V)."""
    shape = input_shape(net, spec)
    dtype = jnp.dtype(net.dtype)

    def f(params, net_state, x):
        b = x.shape[0]
        z = preprocessing.prepare(spec, x.reshape((b, int(spec.num_features))), dtype)
        z = z.reshape((b, *shape))
        if logits:
            state = net.init_state() if net_state is None else net_state
            return net.output_logits(net.forward_state(params, state, z, training=False)[1])
        if net_state is None:
            return net.apply(params, z)
        return net.apply(params, z, state=net_state)

    return f


def check_inputs(x, shape: tuple, what: str = "x", *, image_shape=None) -> np.ndarray:
    """``x`` as a (batch, *shape) array: :func:`fnn.data.validate.conform_inputs` (one rule)."""
    from fnn.data.validate import conform_inputs

    return conform_inputs(x, shape, what, image_shape=image_shape)


def apply_chunked(fn, params, net_state, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """``fn(params, net_state, x)`` over row chunks (bounded device memory), as NumPy.

    Every call has one shape, so a jitted ``fn`` compiles once: ``min(chunk, rows)`` rows, the
    last chunk padded with zero rows whose outputs are dropped."""
    dtype = jnp.int32 if x.dtype == np.int32 else jnp.float32  # token ids stay ids
    n = x.shape[0]
    size = max(1, min(chunk, n))
    outs = []
    for i in range(0, n, size):
        part = x[i:i + size]
        rows = part.shape[0]
        if rows < size:
            part = np.concatenate([part, np.zeros((size - rows, *part.shape[1:]), part.dtype)])
        outs.append(np.asarray(fn(params, net_state, jnp.asarray(part, dtype)))[:rows])
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def class_ids(y_hat: np.ndarray) -> np.ndarray:
    """Predicted class ids: argmax of k outputs, or p > 0.5 for one sigmoid unit."""
    return (y_hat[:, 0] > 0.5).astype(np.int64) if y_hat.shape[1] == 1 else \
        np.argmax(y_hat, axis=1)


def class_probabilities(y_hat: np.ndarray) -> np.ndarray:
    """(batch, k) class probabilities: [1 - p, p] for one sigmoid unit."""
    return np.concatenate([1 - y_hat, y_hat], axis=1) if y_hat.shape[1] == 1 else y_hat

