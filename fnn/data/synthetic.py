"""Synthetic datasets, generated on the host with NumPy, deterministic from an integer seed.

Every generator has the signature ``gen(*, n_samples, noise, seed, **extra) -> (x, y)`` with
``x`` float32 ``(n_samples, features)`` and ``y`` int32 ``(n_samples,)`` class ids (classification)
or float32 ``(n_samples, 1)`` targets (regression). Classes are balanced: class c gets
``n // k + (c < n % k)`` examples. Rows are shuffled (except xor, which cycles through its corners).
``noise`` is the standard deviation of Gaussian noise added to every feature (classification) or to
the target (regression). Data is drawn from ``numpy.random.default_rng([0, seed])``.

=============  =====  ============================================================================
name           task   definition
=============  =====  ============================================================================
xor            2 cls  corners c = (0,0),(0,1),(1,0),(1,1) cycled, label = c0 XOR c1, x = c + noise.
                      The default ``n_samples=4, noise=0`` is exactly the notes' truth table.
moons          2 cls  t ~ U(0, pi); class 0: (cos t, sin t); class 1: (1 - cos t, 1/2 - sin t).
circles        2 cls  t ~ U(0, 2 pi); class 0: (cos t, sin t); class 1: factor * (cos t, sin t).
spirals        k cls  arm c: t ~ U(0,1), r = 0.1 + 0.9 t, a = 2 pi (c/k + turns t), x = r (cos a, sin a).
blobs          k cls  centers ~ U(-10, 10)^num_features; x = center_c + noise * N(0, I).
sine           reg    x ~ U(-pi, pi) (1 feature), y = sin x + noise.
polynomial     reg    x ~ U(-1, 1)^d, y = 1 + sum_i (-1)^i x_i + (1/d) sum_{i<=j} x_i x_j
                      - 1/2 sum_i x_i^3 + noise.
=============  =====  ============================================================================
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from fnn.data import names
from fnn.util import registry

GEN_STREAM = 0  # seed-sequence prefix of synthetic generation (splits use 1)

XOR_POINTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=np.float32)
XOR_LABELS = np.array([0, 1, 1, 0], dtype=np.int32)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([GEN_STREAM, int(seed)])


def class_counts(n: int, k: int) -> np.ndarray:
    """Balanced class sizes: ``(k,)`` int64 summing to n, differing by at most 1."""
    return np.array([n // k + (1 if c < n % k else 0) for c in range(k)], dtype=np.int64)


def _finish(rng, parts_x, parts_y, noise: float, shuffle: bool = True):
    x = np.concatenate(parts_x, axis=0).astype(np.float64)
    y = np.concatenate(parts_y, axis=0).astype(np.int32)
    if noise > 0:
        x = x + noise * rng.standard_normal(x.shape)
    if shuffle:
        p = rng.permutation(x.shape[0])
        x, y = x[p], y[p]
    return x.astype(np.float32), y


def xor(*, n_samples: int = 4, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """XOR: the four corners of the unit square, cycled, with optional Gaussian noise.

    Args:
      n_samples: number of points (>= 4); point i is corner ``i % 4``.
      noise: std of Gaussian noise added to the coordinates.
      seed: integer seed (only matters when ``noise > 0``).

    Returns:
      ``x`` float32 ``(n_samples, 2)``, ``y`` int32 ``(n_samples,)``; with the defaults exactly
      ``[(0,0),(0,1),(1,0),(1,1)] -> [0,1,1,0]``.
    """
    rng = _rng(seed)
    idx = np.arange(n_samples) % 4
    x = XOR_POINTS[idx].astype(np.float64)
    if noise > 0:
        x = x + noise * rng.standard_normal(x.shape)
    return x.astype(np.float32), XOR_LABELS[idx].copy()


def moons(*, n_samples: int = 1000, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles.

    Args:
      n_samples: number of points; noise: std of the coordinate noise; seed: integer seed.

    Returns:
      ``x`` float32 ``(n_samples, 2)``, ``y`` int32 ``(n_samples,)`` in {0, 1}.
    """
    rng = _rng(seed)
    n0, n1 = class_counts(n_samples, 2)
    t0, t1 = rng.uniform(0.0, np.pi, n0), rng.uniform(0.0, np.pi, n1)
    a = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    b = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    return _finish(rng, [a, b], [np.zeros(n0), np.ones(n1)], noise)


def circles(
    *, n_samples: int = 1000, noise: float = 0.05, seed: int = 0, factor: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: class 0 of radius 1, class 1 of radius ``factor``.

    Args:
      n_samples: number of points; noise: std of the coordinate noise; seed: integer seed;
      factor: inner radius, in (0, 1).

    Returns:
      ``x`` float32 ``(n_samples, 2)``, ``y`` int32 ``(n_samples,)`` in {0, 1}.
    """
    rng = _rng(seed)
    n0, n1 = class_counts(n_samples, 2)
    t0, t1 = rng.uniform(0.0, 2 * np.pi, n0), rng.uniform(0.0, 2 * np.pi, n1)
    a = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    b = factor * np.stack([np.cos(t1), np.sin(t1)], axis=1)
    return _finish(rng, [a, b], [np.zeros(n0), np.ones(n1)], noise)


def spirals(
    *, n_samples: int = 1000, noise: float = 0.05, seed: int = 0, num_classes: int = 3, turns: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """k interleaved spiral arms, one per class.

    Args:
      n_samples: number of points; noise: std of the coordinate noise; seed: integer seed;
      num_classes: number of arms k (>= 2); turns: turns each arm makes.

    Returns:
      ``x`` float32 ``(n_samples, 2)``, ``y`` int32 ``(n_samples,)`` in ``[0, k)``.
    """
    rng = _rng(seed)
    xs, ys = [], []
    for c, m in enumerate(class_counts(n_samples, num_classes)):
        t = rng.uniform(0.0, 1.0, m)
        r = 0.1 + 0.9 * t
        a = 2 * np.pi * (c / num_classes + turns * t)
        xs.append(np.stack([r * np.cos(a), r * np.sin(a)], axis=1))
        ys.append(np.full(m, c))
    return _finish(rng, xs, ys, noise)


def blobs(
    *, n_samples: int = 1000, noise: float = 1.0, seed: int = 0, num_classes: int = 3, num_features: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian blobs, one per class, around centers drawn from the seed.

    Args:
      n_samples: number of points; noise: std of each blob; seed: integer seed;
      num_classes: number of blobs k (>= 2); num_features: dimension d.

    Returns:
      ``x`` float32 ``(n_samples, d)``, ``y`` int32 ``(n_samples,)`` in ``[0, k)``.
    """
    rng = _rng(seed)
    centers = rng.uniform(-10.0, 10.0, (num_classes, num_features))
    counts = class_counts(n_samples, num_classes)
    xs = [np.repeat(centers[c][None, :], m, axis=0) for c, m in enumerate(counts)]
    ys = [np.full(m, c) for c, m in enumerate(counts)]
    return _finish(rng, xs, ys, noise)


def sine(*, n_samples: int = 1000, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sine regression: ``y = sin(x) + noise * N(0, 1)``, ``x ~ U(-pi, pi)``.

    Args:
      n_samples: number of points; noise: std of the target noise; seed: integer seed.

    Returns:
      ``x`` float32 ``(n_samples, 1)``, ``y`` float32 ``(n_samples, 1)``.
    """
    rng = _rng(seed)
    x = rng.uniform(-np.pi, np.pi, (n_samples, 1))
    y = np.sin(x) + noise * rng.standard_normal((n_samples, 1))
    return x.astype(np.float32), y.astype(np.float32)


def polynomial_target(x: np.ndarray) -> np.ndarray:
    """The noiseless polynomial of :func:`polynomial`.

    Args:
      x: ``(batch, d)``.

    Returns:
      ``(batch, 1)``: ``1 + sum_i (-1)^i x_i + (1/d) sum_{i<=j} x_i x_j - 1/2 sum_i x_i^3``.
    """
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[1]
    signs = np.where(np.arange(d) % 2 == 0, 1.0, -1.0)
    linear = x @ signs
    pairs = 0.5 * (x.sum(axis=1) ** 2 + (x**2).sum(axis=1))  # sum_{i<=j} x_i x_j
    cubic = (x**3).sum(axis=1)
    return (1.0 + linear + pairs / d - 0.5 * cubic)[:, None]


def polynomial(
    *, n_samples: int = 1000, noise: float = 0.1, seed: int = 0, num_features: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Multivariate cubic polynomial regression (formula in :func:`polynomial_target`).

    Args:
      n_samples: number of points; noise: std of the target noise; seed: integer seed;
      num_features: input dimension d.

    Returns:
      ``x`` float32 ``(n_samples, d)`` in ``[-1, 1]``, ``y`` float32 ``(n_samples, 1)``.
    """
    rng = _rng(seed)
    x = rng.uniform(-1.0, 1.0, (n_samples, num_features))
    y = polynomial_target(x) + noise * rng.standard_normal((n_samples, 1))
    return x.astype(np.float32), y.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """How :func:`fnn.data.load` builds one synthetic set.

    Attributes:
      fn: the generator.
      task: "classification" or "regression".
      options: accepted options with their defaults (generator options and split options).
    """

    fn: Callable[..., tuple[np.ndarray, np.ndarray]]
    task: str
    options: dict[str, Any]

    def num_classes(self, opts: dict[str, Any]) -> int | None:
        if self.task == "regression":
            return None
        return int(opts.get("num_classes", 2))


# the one list is fnn.data.names (tasks and default options, read by the config checks)
_GENERATORS: dict[str, Callable] = registry.table("synthetic dataset", tuple(names.SYNTHETIC_SETS), {
    "xor": xor, "moons": moons, "circles": circles, "spirals": spirals, "blobs": blobs,
    "sine": sine, "polynomial": polynomial})

SYNTHETIC: dict[str, SyntheticSpec] = {
    name: SyntheticSpec(_GENERATORS[name], task, dict(options))
    for name, (task, options) in names.SYNTHETIC_SETS.items()}
