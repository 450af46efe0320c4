"""On-device augmentation and input preparation: shapes, identities, determinism, jit/vmap safety."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.data import Augment, augment, prepare_inputs
from fnn.data.augmentation import hflip, rotate, translate

SHAPE = (28, 28)


def _batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(0.0, 1.0, (n, 784)).astype(np.float32))


CONFIGS = [
    Augment(),
    Augment(noise_std=0.1),
    Augment(translate=2, image_shape=SHAPE),
    Augment(hflip=True, image_shape=SHAPE),
    Augment(rotate_deg=15.0, image_shape=SHAPE),
    Augment(noise_std=0.05, translate=3, hflip=True, rotate_deg=10.0, image_shape=SHAPE),
]
CIDS = ["off", "noise", "translate", "hflip", "rotate", "all"]


@pytest.mark.parametrize("cfg", CONFIGS, ids=CIDS)
def test_shape_dtype_and_determinism_per_key(cfg):
    x = _batch()
    k = jax.random.key(0)
    a = cfg(x, key=k)
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(a, cfg(x, key=k))
    np.testing.assert_array_equal(a, augment(x, key=k, cfg=cfg))
    if cfg.enabled:
        assert not np.array_equal(a, cfg(x, key=jax.random.key(1)))
        assert not np.array_equal(a, x)


@pytest.mark.parametrize("cfg", CONFIGS, ids=CIDS)
def test_evaluation_path_applies_nothing(cfg):
    x = _batch()
    assert cfg(x, key=jax.random.key(0), train=False) is x
    assert augment(x, key=jax.random.key(0), cfg=cfg, train=False) is x


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[-1]], ids=["off", "all"])
def test_jit_and_vmap_over_keys(cfg):
    xs = jnp.stack([_batch(8, s) for s in range(3)])  # (3, 8, 784)
    keys = jax.random.split(jax.random.key(7), 3)
    out = jax.vmap(jax.jit(lambda x, k: cfg(x, key=k)))(xs, keys)
    assert out.shape == xs.shape
    for i in range(3):
        np.testing.assert_allclose(out[i], cfg(xs[i], key=keys[i]), rtol=1e-5, atol=1e-5)


def test_config_is_hashable_for_static_use():
    cfg = CONFIGS[-1]
    twin = Augment(noise_std=0.05, translate=3, hflip=True, rotate_deg=10.0, image_shape=[28, 28])
    assert cfg == twin and hash(cfg) == hash(twin)
    assert len({cfg, twin, CONFIGS[0]}) == 2


def test_zero_strength_is_identity():
    x = _batch()
    zero = Augment(noise_std=0.0, translate=0, hflip=False, rotate_deg=0.0, image_shape=SHAPE)
    assert not zero.enabled
    assert zero(x, key=jax.random.key(0)) is x
    np.testing.assert_array_equal(jax.jit(lambda v, k: zero(v, key=k))(x, jax.random.key(0)), x)


def test_rotation_by_zero_is_exact_identity():
    x = _batch() * 3.0 - 1.5
    out = rotate(x, jnp.zeros((8,), jnp.float32), image_shape=SHAPE)
    assert np.array_equal(np.asarray(out).view(np.uint32), np.asarray(x).view(np.uint32))
    jitted = jax.jit(lambda v, a: rotate(v, a, image_shape=SHAPE))(x, jnp.zeros((8,), jnp.float32))
    assert np.array_equal(np.asarray(jitted).view(np.uint32), np.asarray(x).view(np.uint32))
    # Mixed batch: only the zero-angle rows are untouched.
    angles = jnp.array([0.0, 30.0, 0.0, -30.0, 0.0, 5.0, 0.0, 90.0], jnp.float32)
    mixed = np.asarray(rotate(x, angles, image_shape=SHAPE))
    zero_rows = np.asarray(angles) == 0
    assert np.array_equal(mixed[zero_rows], np.asarray(x)[zero_rows])
    assert not np.array_equal(mixed[~zero_rows], np.asarray(x)[~zero_rows])


def test_translation_by_zero_is_exact_identity():
    x = _batch()
    out = translate(x, jnp.zeros((8, 2), jnp.int32), image_shape=SHAPE)
    assert np.array_equal(np.asarray(out), np.asarray(x))
    u8 = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 784), dtype=np.uint8))
    assert np.array_equal(np.asarray(translate(u8, jnp.zeros((8, 2), jnp.int32), image_shape=SHAPE)), np.asarray(u8))


@pytest.mark.parametrize("dy,dx", [(1, 0), (0, -2), (3, 3), (-4, 1)])
def test_translation_shifts_with_zero_fill(dy, dx):
    img = np.arange(1, 785, dtype=np.float32).reshape(28, 28)
    out = np.asarray(translate(jnp.asarray(img.reshape(1, 784)), jnp.array([[dy, dx]], jnp.int32),
                               image_shape=SHAPE)).reshape(28, 28)
    expected = np.zeros_like(img)
    src = img[max(0, -dy):28 - max(0, dy), max(0, -dx):28 - max(0, dx)]
    expected[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    np.testing.assert_array_equal(out, expected)


def test_hflip_is_an_involution_and_mirrors():
    x = _batch()
    flags = jnp.array([True, False] * 4)
    once = hflip(x, flags, image_shape=SHAPE)
    np.testing.assert_array_equal(hflip(once, flags, image_shape=SHAPE), x)
    imgs = np.asarray(x).reshape(8, 28, 28)
    np.testing.assert_array_equal(np.asarray(once).reshape(8, 28, 28)[0], imgs[0, :, ::-1])
    np.testing.assert_array_equal(np.asarray(once).reshape(8, 28, 28)[1], imgs[1])
    cfg = Augment(hflip=True, image_shape=SHAPE)
    k = jax.random.key(3)
    np.testing.assert_array_equal(cfg(cfg(x, key=k), key=k), x)


def test_rotation_direction_and_quarter_turn():
    img = np.zeros((28, 28), np.float32)
    img[2:6, 12:16] = 1.0  # a block near the top edge
    out = np.asarray(rotate(jnp.asarray(img.reshape(1, 784)), jnp.array([90.0], jnp.float32),
                            image_shape=SHAPE)).reshape(28, 28)
    np.testing.assert_allclose(out, np.rot90(img), atol=1e-4)  # counter-clockwise as displayed
    # Small rotations keep the mass near the original and sample from inside the image.
    small = np.asarray(rotate(jnp.asarray(img.reshape(1, 784)), jnp.array([5.0], jnp.float32),
                              image_shape=SHAPE))
    assert abs(small.sum() - img.sum()) < 0.2 * img.sum()


def test_noise_statistics():
    x = jnp.zeros((64, 784), jnp.float32)
    out = np.asarray(Augment(noise_std=0.5)(x, key=jax.random.key(0)))
    assert abs(out.mean()) < 0.01 and abs(out.std() - 0.5) < 0.01


def test_each_kind_uses_its_own_key_stream():
    # Turning rotation on does not change the flip decisions (keys are split the same way).
    x = _batch()
    k = jax.random.key(11)
    flipped = Augment(hflip=True, image_shape=SHAPE)(x, key=k)
    both = Augment(hflip=True, rotate_deg=1e-30, image_shape=SHAPE)(x, key=k)  # angle rounds to ~0
    np.testing.assert_allclose(both, flipped, atol=1e-6)


def test_prepare_inputs():
    u8 = np.array([[0, 128, 255]] * 2, np.uint8)
    out = prepare_inputs(jnp.asarray(u8))
    assert out.dtype == jnp.float32 and out.shape == (2, 3)
    np.testing.assert_allclose(out, u8.astype(np.float32) / 255.0)
    assert float(out.max()) == 1.0 and float(out.min()) == 0.0
    imgs = np.zeros((5, 28, 28), np.uint8)
    assert jax.jit(prepare_inputs)(jnp.asarray(imgs)).shape == (5, 784)
    f = jnp.ones((3, 4), jnp.float32)
    assert prepare_inputs(f) is f
    assert prepare_inputs(f, dtype=jnp.bfloat16).dtype == jnp.bfloat16
    # Then augmentation on the prepared floats inside one jitted step.
    cfg = Augment(noise_std=0.1, rotate_deg=10.0, translate=1, image_shape=SHAPE)
    step = jax.jit(lambda xb, k: cfg(prepare_inputs(xb), key=k))
    assert step(jnp.asarray(imgs.reshape(5, 784)), jax.random.key(0)).dtype == jnp.float32


BAD_CONFIGS = [
    (dict(noise_std=-1.0), "Augment.noise_std=-1.0"),
    (dict(noise_std=float("inf")), "Augment.noise_std=inf"),
    (dict(translate=-1, image_shape=SHAPE), "Augment.translate=-1"),
    (dict(translate=1.5, image_shape=SHAPE), "Augment.translate=1.5"),
    (dict(translate=28, image_shape=SHAPE), "fewer pixels than the image side"),
    (dict(hflip=1, image_shape=SHAPE), "Augment.hflip=1"),
    (dict(rotate_deg=200.0, image_shape=SHAPE), "Augment.rotate_deg=200.0"),
    (dict(translate=2), "Augment.image_shape=None: translate, hflip and rotate_deg need the image shape"),
    (dict(hflip=True, image_shape=(28,)), "Augment.image_shape=(28,)"),
]


@pytest.mark.parametrize("kwargs,fragment", BAD_CONFIGS, ids=[f"bad{i}" for i in range(len(BAD_CONFIGS))])
def test_bad_configs(kwargs, fragment):
    with pytest.raises(ValueError, match=None) as exc:
        Augment(**kwargs)
    assert fragment in str(exc.value)


def test_bad_inputs():
    cfg = Augment(rotate_deg=5.0, image_shape=SHAPE)
    with pytest.raises(ValueError, match=r"expected \(batch, 784\)"):
        cfg(jnp.zeros((2, 100), jnp.float32), key=jax.random.key(0))
    with pytest.raises(TypeError, match="call prepare_inputs first"):
        cfg(jnp.zeros((2, 784), jnp.uint8), key=jax.random.key(0))
    # Flips and shifts work on uint8 directly.
    u8 = jnp.zeros((2, 784), jnp.uint8)
    assert Augment(hflip=True, translate=2, image_shape=SHAPE)(u8, key=jax.random.key(0)).dtype == jnp.uint8
    # A list image_shape is normalized to a tuple (hashable).
    assert Augment(hflip=True, image_shape=[28, 28]).image_shape == (28, 28)


def test_prepare_inputs_follows_a_float64_network(x64):
    """Issue 23: prepare_inputs returned float32 for a float64 network (x64 on)."""
    import fnn
    from fnn.nn import layers as L

    net = fnn.Sequential([L.Conv2D(2, 3, activation="relu"), L.Flatten(),
                          L.Dense(3, activation="softmax")], input_shape=(6, 6, 1),
                         dtype="float64")
    u8 = np.random.default_rng(0).integers(0, 256, (4, 36)).astype(np.uint8)
    x = prepare_inputs(jnp.asarray(u8), shape=net.input_shape)
    assert x.dtype == jnp.float64 and x.shape == (4, 6, 6, 1)
    assert net.apply(net.init(jax.random.key(0)), x).dtype == jnp.float64
    assert prepare_inputs(jnp.asarray(u8), dtype=jnp.float32).dtype == jnp.float32
