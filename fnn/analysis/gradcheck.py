"""Manual gradients vs ``jax.grad`` vs central finite differences, per parameter leaf.

Everything runs in float64 (x64 is enabled for the duration of the check and the network,
parameters and data are cast). For each leaf the report gives, for manual vs autodiff (every
coordinate) and manual vs finite differences (a sampled subset of coordinates):

* max absolute error      max |a − b|
* max relative error      max |a − b| / max(|a|, |b|)   (CS231n form; 0 where both are 0)
* norm-relative error     ‖a − b‖ / max(‖a‖, ‖b‖)

Central differences: ∂L/∂θ_i ≈ (L(θ + εe_i) − L(θ − εe_i)) / 2ε. A coordinate is skipped when the
perturbation moves any ReLU-family pre-activation across its kink (the sign pattern of Z at θ ± ε
differs from that at θ) or changes which entry of a max-pool window is its maximum: there the
function is not differentiable and the difference quotient measures a jump, not a derivative.
A leaf whose every sampled coordinate is skipped (a first-layer conv bias at 0 where input
patches are all zero: Z = b = 0 exactly) is probed again at a moved point θ + Δ (Δ small and
random, :data:`MOVE_SCALE` of each leaf's scale, up to :data:`MOVE_TRIES` times); its report
says so. A leaf that still has no checked coordinate is shown as "skipped (kinks)" and fails
the check: an unchecked gradient is never reported as a match.
Dropout masks are fixed by the given key.

Any fnn network works: :class:`fnn.MLP` and :class:`fnn.Sequential` (every leaf, a Residual's
nested tuples included, named ``layer<i>.<key>...`` by its path in the params tree). A network
with BatchNorm is checked in training mode from ``net.init_state()``: the objective is that of
the batch statistics (the gradient ``loss_and_grad`` returns), and the finite differences
perturb it through the batch mean and variance too.

The check passes when every leaf's norm-relative error is within ``tol_autodiff`` (manual vs
jax.grad) and ``tol_fd`` (manual vs finite differences), and every non-empty leaf had at least
one finite-difference coordinate checked. A leaf whose gradients all have norms
below :data:`ZERO_FLOOR` times the largest leaf's (zero up to rounding: a conv bias right before
a BatchNorm, which removes it) has relative errors 0.

Max-pool ties: where a window holds several equal maxima (a BatchNorm of ReLU zeros before a
max-pool makes them exactly equal), the function is not differentiable; the manual backward
sends δ to the first maximum and ``jax.grad`` may pick another, so the two legitimately differ.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from fnn.nn import losses as losses_mod
from fnn.nn import objective as obj
from fnn.nn.adapter import as_network

Array = jax.Array

#: Relative to the largest leaf's gradient norm: below it a leaf's gradient counts as zero.
ZERO_FLOOR = 1e-9
#: A moved probe point: θ + Δ with Δ ~ MOVE_SCALE · max(rms(leaf), 1e-2) · N(0, 1) per leaf.
MOVE_SCALE = 1e-2
MOVE_TRIES = 3


@dataclass(frozen=True)
class ErrorStats:
    """max_abs, max_rel (CS231n) and norm_rel errors between two gradient arrays."""

    max_abs: float
    max_rel: float
    norm_rel: float

    @staticmethod
    def between(a, b, floor: float = 0.0) -> "ErrorStats":
        """Errors of a vs b; when both norms are at most ``floor`` (a gradient that is zero up
        to rounding, e.g. a conv bias before BatchNorm) the relative errors are 0."""
        a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
        if a.size == 0:
            return ErrorStats(0.0, 0.0, 0.0)
        if max(np.linalg.norm(a), np.linalg.norm(b)) <= floor:
            return ErrorStats(float(np.abs(a - b).max()), 0.0, 0.0)
        diff = np.abs(a - b)
        scale = np.maximum(np.abs(a), np.abs(b))
        rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        norm = max(na, nb)
        return ErrorStats(
            float(diff.max()), float(rel.max()),
            float(np.linalg.norm(a - b) / norm) if norm > 0 else 0.0,
        )


@dataclass(frozen=True)
class LeafReport:
    """One parameter leaf: its path, shape, gradient norm and the two comparisons."""

    path: str
    shape: tuple
    grad_norm: float
    vs_autodiff: ErrorStats
    vs_fd: ErrorStats
    fd_checked: int
    fd_skipped: int
    fd_moved: bool = False  # the finite differences were taken at a moved probe point

    @property
    def fd_unchecked(self) -> bool:
        """Every finite-difference coordinate was skipped: the leaf was not checked."""
        return self.fd_checked == 0 and int(np.prod(self.shape)) > 0


@dataclass(frozen=True)
class GradcheckReport:
    """Per-leaf errors, tolerances and the overall verdict. ``print(report)`` shows a table."""

    leaves: tuple
    loss: float
    tol_autodiff: float
    tol_fd: float
    fd_eps: float
    passed: bool = field(init=False)

    def __post_init__(self):
        ok = all(
            l.vs_autodiff.norm_rel <= self.tol_autodiff and l.vs_fd.norm_rel <= self.tol_fd
            and not l.fd_unchecked for l in self.leaves
        )
        object.__setattr__(self, "passed", bool(ok))

    @property
    def worst_autodiff(self) -> ErrorStats:
        return _worst([l.vs_autodiff for l in self.leaves])

    @property
    def worst_fd(self) -> ErrorStats:
        return _worst([l.vs_fd for l in self.leaves])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["leaves"] = [asdict(l) for l in self.leaves]
        d["passed"] = self.passed
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        pw = max([14] + [len(l.path) + 1 for l in self.leaves])
        sw = max([12] + [len(str(l.shape)) + 1 for l in self.leaves])
        head = (f"{'leaf':<{pw}}{'shape':<{sw}}{'|grad|':>10}  {'manual vs jax.grad':^31}  "
                f"{'manual vs finite diff':^38}")
        sub = (f"{'':<{pw}}{'':<{sw}}{'':>10}  {'max abs':>9} {'max rel':>9} {'norm rel':>9}  "
               f"{'max abs':>9} {'max rel':>9} {'norm rel':>9} {'coords':>6}")
        lines = [head, sub, "-" * len(sub)]
        for l in self.leaves:
            a, f = l.vs_autodiff, l.vs_fd
            fd = (f"{'skipped (kinks)':>29}" if l.fd_unchecked else
                  f"{f.max_abs:>9.1e} {f.max_rel:>9.1e} {f.norm_rel:>9.1e}")
            lines.append(
                f"{l.path:<{pw}}{str(l.shape):<{sw}}{l.grad_norm:>10.3e}  {a.max_abs:>9.1e} "
                f"{a.max_rel:>9.1e} {a.norm_rel:>9.1e}  {fd} {l.fd_checked:>6}"
                + (" (moved)" if l.fd_moved else "")
            )
        moved = [l.path for l in self.leaves if l.fd_moved]
        if moved:
            lines.append(f"(moved): every coordinate of {', '.join(moved)} crossed a kink at the "
                         "probe point; its finite differences were taken at a moved point")
        unchecked = [l.path for l in self.leaves if l.fd_unchecked]
        if unchecked:
            lines.append(f"not checked by finite differences (every coordinate at a kink, also "
                         f"at moved points): {', '.join(unchecked)}")
        skipped = sum(l.fd_skipped for l in self.leaves)
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"{verdict}: norm-relative error tolerance {self.tol_autodiff:.0e} (jax.grad), "
            f"{self.tol_fd:.0e} (finite differences, eps={self.fd_eps:.0e}"
            + (f", {skipped} coordinates at a ReLU kink skipped" if skipped else "") + ")"
        )
        return "\n".join(lines)


def _worst(stats) -> ErrorStats:
    if not stats:
        return ErrorStats(0.0, 0.0, 0.0)
    return ErrorStats(max(s.max_abs for s in stats), max(s.max_rel for s in stats),
                      max(s.norm_rel for s in stats))


def _leaf_paths(params, blocks=None) -> list[str]:
    """``layer<i>.<key>`` per leaf, in ``jax.tree.leaves`` order (a Residual's inner entries
    add their index: ``layer3.0.w``; copy j of a Repeat at layer i: ``layer2[j].0.1.qkv.w``).
    blocks: :meth:`~fnn.nn.protocol.Network.unrolled`'s, or None."""
    out = []
    for path, _ in jax.tree_util.tree_leaves_with_path(params):
        parts = [str(getattr(k, "idx", getattr(k, "key", k))) for k in path]
        head = f"layer{parts[0]}"
        if blocks is not None:
            i, j = blocks[int(parts[0])]
            head = f"layer{i}" if j is None else f"layer{i}[{j}]"
        out.append(".".join([head] + parts[1:]))
    return out


def gradcheck(net, loss, params, x, y, *, key=None, l1=0.0, l2=0.0, drop_rate=None,
              num_coords=24, fd_eps=1e-6, tol_autodiff=1e-8, tol_fd=1e-6, seed=0,
              backward=None) -> GradcheckReport:
    """Compare manual, autodiff and finite-difference gradients in float64.

    Args:
      net: :class:`fnn.MLP` or :class:`fnn.Sequential` (it needs ``replace(dtype=)``).
      loss: loss name.  params: from ``net.init`` (any float dtype).
      x: (batch, *net.input_shape).  y: labels (batch,) or targets (batch, K).
      key: dropout key (fixes the masks); None for no dropout.
      l1, l2, drop_rate: as in :func:`fnn.loss_and_grad`.
      num_coords: finite-difference coordinates sampled per leaf (all, if the leaf is smaller).
      fd_eps: the central-difference step ε.
      tol_autodiff, tol_fd: norm-relative tolerances for the verdict.
      seed: NumPy seed for the coordinate sample.
      backward: test hook — a replacement for the manual gradient function
        ``(net, loss, params, x, y) -> grads`` (float64 inputs), to show a broken gradient fails.
    Returns:
      :class:`GradcheckReport`: one row per parameter leaf; a Repeat's stacked leaves give one
      row per copy (``layer2[0].0.1.qkv.w``, ``layer2[1]...``: :meth:`Network.unrolled`).
    """
    loss = losses_mod.get(loss)
    net = as_network(net, params=params, x=x, mode="manual")
    net, params, blocks = net.unrolled(params)  # a Repeat's copies: one row each
    with jax.enable_x64(True):
        net64 = net.replace(dtype="float64")
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        net64.check_params(p64)
        x_np = np.asarray(x)
        ids = net64.integer_inputs and x_np.dtype.kind in "iu"  # token ids stay ids
        x64 = jnp.asarray(x_np, jnp.int32 if ids else jnp.float64)
        y_np = np.asarray(y)
        y_in = jnp.asarray(y_np if y_np.dtype.kind in "iu" else y_np.astype(np.float64))
        xb, yb, _ = obj.prepare_batch(net64, loss, x64, y_in)
        kw = dict(key=key, l1=l1, l2=l2, drop_rate=drop_rate)

        leaves = jax.tree.leaves(p64)
        flat0, unravel = ravel_pytree(p64)
        rng = np.random.default_rng(seed)
        samples = []
        for leaf in leaves:  # ravel_pytree orders leaves as jax.tree.leaves does
            n = leaf.size
            idx = np.arange(n) if n <= num_coords else np.sort(rng.choice(n, num_coords, replace=False))
            samples.append(idx)
        starts = np.cumsum([0] + [leaf.size for leaf in leaves[:-1]])
        coords = np.concatenate([st + idx for st, idx in zip(starts, samples)]).astype(np.int32)

        def f_and_pattern(p):
            _, caches, _ = net64.forward_state(p, net64.init_state(), xb, key=key,
                                               drop_rate=drop_rate)
            val = obj.objective(net64, loss, p, xb, yb, **kw)[0]
            return val, net64.kink_patterns(caches)

        @jax.jit
        def compute(flat, coords):
            # One program: both gradients, and the central differences coordinate by
            # coordinate (lax.map: two forward passes at a time, memory independent of size).
            p = unravel(flat)
            if backward is None:
                manual = obj.evaluate(net64, loss, p, xb, yb, mode="manual", **kw)
                value, g_manual = manual.loss, manual.grads
            else:
                value = obj.objective(net64, loss, p, xb, yb, **kw)[0]
                g_manual = backward(net64, loss, p, xb, yb)
            g_auto = obj.evaluate(net64, loss, p, xb, yb, mode="autodiff", **kw).grads
            base = f_and_pattern(p)[1]

            def one(i):
                fp, pp = f_and_pattern(unravel(flat.at[i].add(fd_eps)))
                fm, pm = f_and_pattern(unravel(flat.at[i].add(-fd_eps)))
                same = jnp.array(True)
                for b, a1, a2 in zip(base, pp, pm):  # no ReLU crossed its kink
                    same = same & jnp.all(a1 == b) & jnp.all(a2 == b)
                return (fp - fm) / (2 * fd_eps), same

            fd, ok = jax.lax.map(one, coords)
            return value, g_manual, g_auto, fd, ok

        value, g_manual, g_auto, fd_all, ok_all = compute(flat0, jnp.asarray(coords))
        fd_all, ok_all = np.asarray(fd_all), np.asarray(ok_all)
        manual_leaves = jax.tree.leaves(g_manual)
        auto_leaves = jax.tree.leaves(g_auto)
        # Per leaf: (manual gradient, finite differences, ok mask, moved?) at the point used.
        probes = []
        pos = 0
        for li, idx in enumerate(samples):
            probes.append((np.asarray(manual_leaves[li]).ravel(), fd_all[pos:pos + len(idx)],
                           ok_all[pos:pos + len(idx)], False))
            pos += len(idx)
        for _ in range(MOVE_TRIES):  # leaves with every coordinate at a kink: move the point
            stuck = [li for li, (_, _, ok, _) in enumerate(probes) if ok.size and not ok.any()]
            if not stuck:
                break
            move = ravel_pytree([
                MOVE_SCALE * max(float(np.sqrt(np.mean(np.square(np.asarray(l))))) if l.size
                                 else 0.0, 1e-2) * rng.standard_normal(l.shape) for l in leaves])[0]
            _, gm, _, fd_m, ok_m = compute(flat0 + move, jnp.asarray(coords))
            gm_leaves, fd_m, ok_m = jax.tree.leaves(gm), np.asarray(fd_m), np.asarray(ok_m)
            for li in stuck:
                lo = int(sum(len(i) for i in samples[:li]))
                hi = lo + len(samples[li])
                if ok_m[lo:hi].any():
                    probes[li] = (np.asarray(gm_leaves[li]).ravel(), fd_m[lo:hi], ok_m[lo:hi], True)
        # A leaf whose gradient is zero up to rounding (all norms below ZERO_FLOOR times the
        # largest leaf's) has nothing to compare: its relative errors count as 0.
        floor = ZERO_FLOOR * max([float(np.linalg.norm(np.asarray(g))) for g in auto_leaves]
                                 + [0.0])
        reports = []
        for li, (path, leaf) in enumerate(zip(_leaf_paths(p64, blocks), leaves)):
            idx = samples[li]
            man, fd, ok, moved = probes[li]
            reports.append(LeafReport(
                path=path,
                shape=tuple(leaf.shape),
                grad_norm=float(np.linalg.norm(np.asarray(manual_leaves[li]))),
                vs_autodiff=ErrorStats.between(manual_leaves[li], auto_leaves[li], floor),
                vs_fd=ErrorStats.between(man[idx][ok], fd[ok], floor),
                fd_checked=int(ok.sum()),
                fd_skipped=int((~ok).sum()),
                fd_moved=moved,
            ))
        return GradcheckReport(tuple(reports), float(value), tol_autodiff, tol_fd, fd_eps)
