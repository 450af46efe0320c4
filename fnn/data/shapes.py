"""A built-in synthetic image set: small drawn shapes, one class per shape, no download.

Each example is a ``size × size`` grey image (uint8, stored flat as ``(size·size,)`` like the
MNIST-format sets) of one shape drawn at a random centre and size, with a random brightness and
additive pixel noise:

    class 0 "square" (filled)   1 "circle" (filled)   2 "triangle" (filled, apex up)
    class 3 "cross" (a plus sign of two bars)         4 "ring" (an unfilled circle)

Classes are balanced, and everything is a deterministic function of ``seed``. Small
convolutional networks reach high accuracy in seconds (the shapes differ in local structure —
corners, curvature, holes — which is what convolutions and pooling see), while a linear model
does markedly worse: a quick, download-free CNN example and test set.
"""
from __future__ import annotations

import numpy as np

CLASSES = ("square", "circle", "triangle", "cross", "ring")


def _masks(size: int, cy: np.ndarray, cx: np.ndarray, r: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Boolean masks (n, size, size) of each example's shape (vectorized over examples)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dy = yy[None] - cy[:, None, None]
    dx = xx[None] - cx[:, None, None]
    rr = r[:, None, None]
    dist = np.sqrt(dx * dx + dy * dy)
    square = (np.abs(dx) <= rr) & (np.abs(dy) <= rr)
    circle = dist <= rr
    # apex at (cy - r), base at (cy + r): |dx| <= (dy + r) / 2
    triangle = (dy >= -rr) & (dy <= rr) & (np.abs(dx) <= (dy + rr) / 2)
    bar = np.maximum(rr / 3.0, 1.0)
    cross = ((np.abs(dx) <= bar) & (np.abs(dy) <= rr)) | ((np.abs(dy) <= bar) & (np.abs(dx) <= rr))
    ring = (dist <= rr) & (dist >= rr - np.maximum(rr / 2.5, 1.2))
    stack = np.stack([square, circle, triangle, cross, ring])  # (classes, n, size, size)
    return stack[kind, np.arange(kind.shape[0])]


def shapes(*, n_samples: int = 1000, noise: float = 0.1, seed: int = 0,
           image_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Draw the shapes set.

    Args:
      n_samples: number of images (classes balanced: counts differ by at most one).
      noise: standard deviation of the additive pixel noise, as a fraction of full scale.
      seed: the generator's seed.
      image_size: side of the square images (>= 8).
    Returns:
      (x uint8 (n_samples, image_size²), y int32 (n_samples,) in [0, 5)).
    """
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    y = np.arange(n_samples) % k
    rng.shuffle(y)
    s = float(image_size)
    r = rng.uniform(0.18 * s, 0.32 * s, n_samples).astype(np.float32)
    cy = rng.uniform(r, s - 1 - r).astype(np.float32)
    cx = rng.uniform(r, s - 1 - r).astype(np.float32)
    mask = _masks(image_size, cy, cx, r, y)
    level = rng.uniform(0.6, 1.0, (n_samples, 1, 1)).astype(np.float32)
    img = mask * level + noise * rng.standard_normal(mask.shape).astype(np.float32)
    x = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return x.reshape(n_samples, image_size * image_size), y.astype(np.int32)
