"""Fine-tuning: a run that starts from a finished run's parameters and BatchNorm state.

    fnn train CONFIG --init-from RUN_DIR                 # every layer; all must fit
    fnn train CONFIG --init-from RUN_DIR --layers :-1    # all but the output layer (new head)

    [model]                                              # the same in a config
    init_from = "runs/fashion_cnn"
    init_layers = ":-1"

A layer spec (``all``, or indices and slices such as ``:-1``; grammar in
:mod:`fnn.experiment.layer_selection`) names layers of the *config's* network by position, and
the run's layer at the same position gives each; ``all`` needs both networks to have the same
number of layers.

A layer "fits" when its parameters and its state (BatchNorm's running mean and variance) have
the structure and shapes of the run's layer at that position; values are cast to the config's
dtype. Layers that are not named, and the optimizer state, start fresh from ``training.seed``;
every member of a sweep starts from the same given layers. From a sweep the run takes the
member ``model.init_member`` names, by default its best one (``early_stopping.monitor``, the
member ``misclassified.png`` shows).

Errors are one line naming the key, the value and what was expected (the first layer that
does not fit, an index outside the network, a directory that is not a finished run); they come
while the run is built, before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Optional

from fnn.experiment.layer_selection import FIELD as LAYERS_FIELD
from fnn.experiment.layer_selection import parse_layers, spec_of

FIELD = "model.init_from"
MEMBER_FIELD = "model.init_member"

class Start(NamedTuple):
    """What a run starts from: partial trees for :meth:`fnn.Trainer.init` and their source.

    params / net_state: tuples, one entry per layer: the run's subtree for a given layer,
    None for one drawn from the key.  run_dir: the source.  member: its label.
    layers: the indices given (those with parameters or state).
    """

    params: tuple
    net_state: tuple
    run_dir: str
    member: str
    layers: tuple

    def record(self) -> dict:
        """What ``summary.json`` records under ``init_from``."""
        return {"run_dir": self.run_dir, "member": self.member, "layers": list(self.layers)}

    def describe(self) -> str:
        """``init: layers 0, 1, 2 of runs/a`` (one line for the terminal)."""
        who = f" (member {self.member!r})" if self.member not in ("", "0") else ""
        taken = ", ".join(map(str, self.layers)) or "none (no layer has parameters)"
        return f"init: layers {taken} from {self.run_dir}{who}; the rest from training.seed"


def _leaves(tree) -> str:
    import jax

    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    if not flat:
        return "no parameters"
    return ", ".join(f"{jax.tree_util.keystr(p).strip('[]').replace('][', '.')} "
                     f"{tuple(leaf.shape)}".replace("'", "") for p, leaf in flat)


def _fits(a, b) -> bool:
    import jax

    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(tuple(x.shape) == tuple(y.shape)
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def pick_member(run_dir: Path, cfg, member: str) -> Optional[str]:
    """The member to take from a run: ``member`` if given, a sweep's best one, or None (a
    single run)."""
    from fnn.experiment import build as exp
    from fnn.experiment import members as members_mod
    from fnn.experiment.results import best_position

    if member:
        return member
    refs = members_mod.member_refs(exp.plan(cfg))
    if len(refs) == 1:
        return None
    path = run_dir / "summary.json"
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("members") or []
    except (OSError, ValueError):
        entries = []
    if len(entries) != len(refs):
        raise ValueError(f"{FIELD}: {str(run_dir)!r} is a sweep of {len(refs)} members without"
                         f" a finished summary.json; name one with {MEMBER_FIELD} (an index"
                         f" 0..{len(refs) - 1} or a label)")
    return refs[best_position(entries, list(range(len(refs))),
                              cfg.early_stopping.monitor)].label


def load(run_dir, net, *, layers: str = "all", member: str = "") -> Start:
    """The :class:`Start` of ``net`` from a finished run.

    Args:
      run_dir: a run directory written by ``fnn train`` / ``fnn sweep``.
      net: the network to start (a :class:`fnn.Sequential`).
      layers: a layer spec (module docstring).
      member: a sweep's member (index or label); "" for its best.
    Returns:
      a :class:`Start` for :meth:`fnn.Trainer.init` (``params=start.params,
      net_state=start.net_state``).
    Raises:
      ValueError: one line: not a run directory, a bad spec, the first layer that does not fit.
    """
    import jax

    from fnn.experiment import handle, members as members_mod

    shown = str(run_dir)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{FIELD}: {shown!r} is not a directory; expected a finished run "
                         f"directory")
    try:
        saved = members_mod.read_config(run_dir)
        chosen = pick_member(run_dir, saved, member)
        src = handle.load_run(run_dir, member=chosen)
    except ValueError as err:
        msg = " ".join(str(err).split())
        named = msg.startswith(repr(shown)) or msg.startswith(repr(str(run_dir)))
        raise ValueError(f"{FIELD}: {msg}" if named else f"{FIELD}: {shown!r}: {msg}") from None
    dst_layers = getattr(net, "layers", None)
    src_layers = getattr(src.net, "layers", None)
    if dst_layers is None or src_layers is None:
        raise ValueError(f"{FIELD}: {shown!r}: starting from a run needs layered networks "
                         f"(fnn.Sequential); got {net.describe()}")
    n, m = len(dst_layers), len(src_layers)
    picked = parse_layers(layers, n)
    if picked is None and n != m:
        raise ValueError(f"{FIELD}: {shown!r}: the run's network has {m} layers, the config's "
                         f"{n}; {LAYERS_FIELD} = 'all' needs the same stack (name the layers to "
                         f"take, e.g. --layers :-1)")
    want_p = jax.eval_shape(net.init, jax.random.key(0))
    want_s = jax.eval_shape(net.init_state)
    params, state, taken = [None] * n, [None] * n, []
    for i in (range(n) if picked is None else picked):
        what = f"layers[{i}] ({type(dst_layers[i]).__name__})"
        if i >= m:
            raise ValueError(f"{FIELD}: {shown!r}: {what}: the run's network has only {m} "
                             f"layers; take fewer with --layers")
        sp = src.params[i]
        ss = {} if src.net_state is None else src.net_state[i]  # None: no layer has state
        if not _fits(sp, want_p[i]) or not _fits(ss, want_s[i]) and jax.tree.leaves(ss):
            rest = [str(j) for j in (range(n) if picked is None else picked) if j != i]
            hint = spec_of([int(j) for j in rest], n)
            raise ValueError(
                f"{FIELD}: {shown!r}: {what} does not fit: the run's "
                f"{type(src_layers[i]).__name__} has {_leaves(sp)}; the config's needs "
                f"{_leaves(want_p[i])}; leave it out with --layers"
                + (f" (e.g. --layers {hint})" if hint else ""))
        if jax.tree.leaves(sp) or jax.tree.leaves(ss):
            params[i], state[i] = sp, ss
            taken.append(i)
    return Start(tuple(params), tuple(state), str(run_dir), src.label, tuple(taken))


def for_config(cfg, net) -> Optional[Start]:
    """The config's :class:`Start` (``model.init_from``), or None when it has none."""
    m = cfg.model
    if not m.init_from:
        return None
    return load(m.init_from, net, layers=m.init_layers, member=m.init_member)
