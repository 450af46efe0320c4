"""On-device input preparation and data augmentation, in pure ``jax.numpy``.

Everything here is meant to run inside the compiled training step: shapes and options are static,
per-example random parameters are drawn from the step's PRNG key, and every function is safe under
``jit`` and ``vmap`` (and under strict dtype / rank promotion).

Images travel as flattened rows ``(batch, H*W)``. The intended order inside a train step is::

    aug = Augment(translate=2, rotate_deg=10.0, image_shape=dataset.image_shape)  # static, hashable
    x = prepare_inputs(batch_x)              # uint8 (batch, 784) -> float32 in [0, 1]
    x = aug(x, key=k_aug)                    # training only; evaluation never calls it

Augmentations (each off by default; all per example):

* Gaussian input noise: ``x + noise_std * N(0, 1)``;
* translation by integers ``(dy, dx)`` drawn uniformly from ``[-translate, translate]``, zero fill;
* horizontal flip with probability 1/2;
* rotation about the image center by an angle drawn uniformly from ``[-rotate_deg, rotate_deg]``
  degrees, bilinear sampling, zero fill.

Geometric ones are applied in the order flip, rotate, translate, then noise. A disabled augmentation
is skipped statically, and an example whose drawn shift/angle is 0 is returned bit for bit.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp


def prepare_inputs(x: jax.Array, *, dtype=None, shape=None, keep_integers: bool = False) -> jax.Array:
    """Turn a batch of stored inputs into network inputs (call it inside the train/eval step).

    Integer inputs (uint8 images) are scaled to ``[0, 1]``: ``x / 255``, in ``dtype`` or else
    JAX's default float (float32; float64 with ``jax_enable_x64``, as a float64 network needs).
    Float inputs are returned unchanged (cast to ``dtype`` when given). The example axes are then flattened, or, with
    ``shape``, laid out as one example of the network's input shape (row-major: an (N, H, W)
    image batch becomes (N, H, W, 1) for a network whose input_shape is (H, W, 1)).

    Args:
      x: ``(batch, features)``, ``(batch, H, W)`` or ``(batch, H, W, C)``; uint8 or float.
      dtype: float dtype of the result (pass ``net.dtype``); default JAX's default float for
        integer inputs, unchanged for floats.
      shape: one example's shape as the network takes it (``net.input_shape``), or None.
      keep_integers: integer inputs are ids the network takes as they are (its
        ``integer_inputs``: token ids): returned as int32, neither scaled nor cast.

    Returns:
      ``(batch, prod(trailing dims))``, or ``(batch, *shape)``, float array (int32 ids with
      ``keep_integers``).
    """
    x = jnp.asarray(x)
    if shape is not None:
        shape = tuple(shape)
        if tuple(x.shape[1:]) != shape:
            x = x.reshape((x.shape[0],) + shape)
    elif x.ndim > 2:  # (batch, H, W) images -> (batch, H*W)
        x = x.reshape(x.shape[0], -1)
    if keep_integers and jnp.issubdtype(x.dtype, jnp.integer):
        return x.astype(jnp.int32)
    if jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_:
        dt = jnp.result_type(float) if dtype is None else dtype
        return x.astype(dt) * jnp.asarray(1.0 / 255.0, dtype=dt)
    return x if dtype is None else x.astype(dtype)


def _as_images(x: jax.Array, image_shape: tuple[int, int]) -> jax.Array:
    h, w = image_shape
    if x.ndim != 2 or x.shape[1] != h * w:
        raise ValueError(f"augment: inputs of shape {x.shape}; expected (batch, {h * w}) for image_shape={image_shape}")
    return x.reshape(x.shape[0], h, w)


@functools.partial(jax.jit, static_argnames="image_shape")
def hflip(x: jax.Array, flags: jax.Array, *, image_shape: tuple[int, int]) -> jax.Array:
    """Mirror left-right the images whose flag is set (an involution for fixed flags).

    Args:
      x: flattened images ``(batch, H*W)``, any dtype.
      flags: bool ``(batch,)``.
      image_shape: ``(H, W)``.

    Returns:
      ``(batch, H*W)``, same dtype.
    """
    img = _as_images(x, image_shape)
    out = jnp.where(flags[:, None, None], img[:, :, ::-1], img)
    return out.reshape(x.shape)


@functools.partial(jax.jit, static_argnames="image_shape")
def translate(x: jax.Array, shifts: jax.Array, *, image_shape: tuple[int, int]) -> jax.Array:
    """Shift each image by whole pixels, filling with zeros.

    ``out[b, i, j] = img[b, i - dy_b, j - dx_b]`` where that pixel exists, else 0.

    Args:
      x: flattened images ``(batch, H*W)``, any dtype.
      shifts: int32 ``(batch, 2)`` of ``(dy, dx)``; positive moves down / right.
      image_shape: ``(H, W)``.

    Returns:
      ``(batch, H*W)``, same dtype; exactly ``x`` where the shift is (0, 0).
    """
    h, w = image_shape
    img = _as_images(x, image_shape)
    rows = jnp.arange(h, dtype=jnp.int32)[None, :] - shifts[:, 0:1]  # (batch, H)
    cols = jnp.arange(w, dtype=jnp.int32)[None, :] - shifts[:, 1:2]  # (batch, W)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    rc = jnp.clip(rows, 0, h - 1)
    cc = jnp.clip(cols, 0, w - 1)
    gathered = jax.vmap(lambda im, r, c: im[r[:, None], c[None, :]])(img, rc, cc)
    out = jnp.where(valid, gathered, jnp.zeros((), dtype=x.dtype))
    return out.reshape(x.shape)


@functools.partial(jax.jit, static_argnames="image_shape")
def rotate(x: jax.Array, angles_deg: jax.Array, *, image_shape: tuple[int, int]) -> jax.Array:
    """Rotate each image about its center by bilinear sampling, filling with zeros.

    Output pixel ``(i, j)`` samples the input at ``c + R(-angle) ((i, j) - c)``, with
    ``c = ((H-1)/2, (W-1)/2)``; a positive angle turns the content counter-clockwise as displayed
    (row 0 at the top).

    Args:
      x: flattened float images ``(batch, H*W)``.
      angles_deg: float ``(batch,)`` angles in degrees.
      image_shape: ``(H, W)``.

    Returns:
      ``(batch, H*W)``, same dtype; exactly ``x`` where the angle is 0.
    """
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"rotate: inputs of dtype {x.dtype}; expected floats (call prepare_inputs first)")
    h, w = image_shape
    dt = x.dtype
    img = _as_images(x, image_shape)
    theta = angles_deg.astype(dt) * jnp.asarray(math.pi / 180.0, dtype=dt)
    cos, sin = jnp.cos(theta)[:, None, None], jnp.sin(theta)[:, None, None]  # (batch, 1, 1)
    ci = jnp.asarray((h - 1) / 2.0, dtype=dt)
    cj = jnp.asarray((w - 1) / 2.0, dtype=dt)
    ii = jnp.arange(h, dtype=dt)[None, :, None] - ci  # (1, H, 1)
    jj = jnp.arange(w, dtype=dt)[None, None, :] - cj  # (1, 1, W)
    # Inverse map: with x = dj and y = -di (rows point down), p_src = R(-angle) p_out gives
    # di_src = cos*di + sin*dj and dj_src = -sin*di + cos*dj.
    src_i = ci + cos * ii + sin * jj  # (batch, H, W)
    src_j = cj - sin * ii + cos * jj
    i0f, j0f = jnp.floor(src_i), jnp.floor(src_j)
    fi, fj = src_i - i0f, src_j - j0f
    i0, j0 = i0f.astype(jnp.int32), j0f.astype(jnp.int32)

    def tap(di: int, dj: int) -> jax.Array:
        r, c = i0 + di, j0 + dj
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        v = jax.vmap(lambda im, rr, cc: im[rr, cc])(img, jnp.clip(r, 0, h - 1), jnp.clip(c, 0, w - 1))
        return jnp.where(ok, v, jnp.zeros((), dtype=dt))

    one = jnp.ones((), dtype=dt)
    out = ((one - fi) * (one - fj)) * tap(0, 0) + ((one - fi) * fj) * tap(0, 1) \
        + (fi * (one - fj)) * tap(1, 0) + (fi * fj) * tap(1, 1)
    out = jnp.where((theta == 0)[:, None, None], img, out)
    return out.reshape(x.shape)


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training-time augmentation of a batch of flattened inputs; hashable, so it can be closed
    over or passed as a static argument of a jitted step.

    Attributes:
      noise_std: std of additive Gaussian noise (0 = off).
      translate: maximum shift in pixels, per axis (0 = off).
      hflip: mirror left-right with probability 1/2.
      rotate_deg: maximum rotation angle in degrees (0 = off).
      image_shape: ``(H, W)`` of the flattened images; needed by translate, hflip and rotate.
    """

    noise_std: float = 0.0
    translate: int = 0
    hflip: bool = False
    rotate_deg: float = 0.0
    image_shape: tuple[int, int] | None = None

    def __post_init__(self):
        def bad(field, expected):
            raise ValueError(f"Augment.{field}={getattr(self, field)!r}: expected {expected}")

        ns = self.noise_std
        if isinstance(ns, bool) or not isinstance(ns, (int, float)) or not (0.0 <= ns < math.inf):
            bad("noise_std", "a finite number >= 0")
        if isinstance(self.translate, bool) or not isinstance(self.translate, int) or self.translate < 0:
            bad("translate", "an integer >= 0 (pixels)")
        if not isinstance(self.hflip, bool):
            bad("hflip", "true or false")
        rd = self.rotate_deg
        if isinstance(rd, bool) or not isinstance(rd, (int, float)) or not (0.0 <= rd <= 180.0):
            bad("rotate_deg", "a number of degrees in [0, 180]")
        object.__setattr__(self, "noise_std", float(ns))
        object.__setattr__(self, "rotate_deg", float(rd))
        if self.image_shape is not None:
            s = self.image_shape
            if (not isinstance(s, (tuple, list)) or len(s) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in s)):
                bad("image_shape", "None or (height, width) with positive integers")
            object.__setattr__(self, "image_shape", (int(s[0]), int(s[1])))
        if self.geometric and self.image_shape is None:
            raise ValueError(
                "Augment.image_shape=None: translate, hflip and rotate_deg need the image shape, e.g. (28, 28)"
            )
        if self.translate and self.image_shape and self.translate >= min(self.image_shape):
            bad("translate", f"fewer pixels than the image side ({min(self.image_shape)})")

    @property
    def geometric(self) -> bool:
        """Whether a geometric augmentation (translate, hflip, rotate) is on."""
        return bool(self.translate or self.hflip or self.rotate_deg)

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is on."""
        return bool(self.noise_std or self.geometric)

    def __call__(self, x: jax.Array, *, key: jax.Array, train: bool = True) -> jax.Array:
        """Augment a batch.

        Args:
          x: inputs ``(batch, features)``; float (noise and rotation need floats), e.g. the output of
            :func:`prepare_inputs`; ``features == H*W`` for the geometric augmentations.
          key: PRNG key of this step (``jax.random.key``); split internally into one key for the
            geometric parameters and one for the noise.
          train: a Python bool; ``False`` returns ``x`` untouched (evaluation).

        Returns:
          ``(batch, features)``, same dtype as ``x``.
        """
        if not train or not self.enabled:
            return x
        if x.ndim != 2:
            raise ValueError(f"augment: inputs of shape {x.shape}; expected (batch, features)")
        if (self.noise_std or self.rotate_deg) and not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"augment: inputs of dtype {x.dtype}; noise_std and rotate_deg need floats (call prepare_inputs first)"
            )
        return _apply(self, x, key)


@functools.partial(jax.jit, static_argnums=0)
def _apply(cfg: Augment, x: jax.Array, key: jax.Array) -> jax.Array:
    """The enabled augmentations of ``cfg`` on ``x`` (batch, features); one compiled program per
    (cfg, shape, dtype), inlined when called from inside a jitted step."""
    n = x.shape[0]
    k_params, k_noise = jax.random.split(key)
    # One uniform draw per example for all geometric parameters (columns: flip, angle, dy, dx), so
    # turning one augmentation on or off never changes the draws of another.
    u = jax.random.uniform(k_params, (n, 4), dtype=jnp.float32)
    if cfg.hflip:
        x = hflip(x, u[:, 0] < jnp.float32(0.5), image_shape=cfg.image_shape)
    if cfg.rotate_deg:
        angles = (u[:, 1] * jnp.float32(2.0) - jnp.float32(1.0)) * jnp.float32(cfg.rotate_deg)
        x = rotate(x, angles.astype(x.dtype), image_shape=cfg.image_shape)
    if cfg.translate:
        t = cfg.translate
        shifts = jnp.floor(u[:, 2:4] * jnp.float32(2 * t + 1)).astype(jnp.int32) - jnp.int32(t)
        x = translate(x, jnp.clip(shifts, -t, t), image_shape=cfg.image_shape)
    if cfg.noise_std:
        x = x + jnp.asarray(cfg.noise_std, dtype=x.dtype) * jax.random.normal(k_noise, x.shape, dtype=x.dtype)
    return x


def augment(x: jax.Array, *, key: jax.Array, cfg: Augment, train: bool = True) -> jax.Array:
    """Functional form of :meth:`Augment.__call__`: ``cfg(x, key=key, train=train)``.

    Args:
      x: inputs ``(batch, features)``; key: PRNG key; cfg: the augmentation settings;
      train: False returns ``x`` untouched.

    Returns:
      ``(batch, features)``, same dtype as ``x``.
    """
    return cfg(x, key=key, train=train)
