"""fnn.checkpoint: bitwise round trips, atomic saves, pruning, corrupt files, mismatch messages."""

import functools
import json
import os
import warnings
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.experiment import checkpoint
from fnn import optim
from fnn.experiment.checkpoint import CheckpointError, CheckpointWarning
from fnn.engine import EarlyStopping, Trainer, TrainState

SIZES = (3, 8, 2)


OPTIMIZERS = {"adam": optim.adam(1e-3), "sgd": optim.sgd(0.1, momentum=0.9)}


@functools.lru_cache(maxsize=None)
def _fresh_state(sizes, dtype, early, members, opt):
    """TrainState.create, vmapped over keys for a sweep. Cached, and variants are derived from
    a few created states, because creating states compiles (slow on a busy CPU)."""
    if not early:
        return _fresh_state(sizes, dtype, True, members, opt)._replace(early=None)
    if members not in (None, 3):  # another sweep size: tile the 3-member state's leaves
        base = _fresh_state(sizes, dtype, True, 3, opt)
        tiled = jax.tree.map(lambda x: jnp.asarray(np.resize(np.asarray(x), (members,) + x.shape[1:])),
                             base._replace(key=None))
        return tiled._replace(key=jax.random.split(jax.random.key(0), members))
    net = fnn.MLP(sizes=sizes, activation="tanh", dtype=dtype)
    es = EarlyStopping()

    def create(k):
        return TrainState.create(net, OPTIMIZERS[opt], key=k, early_stopping=es)

    if members is None:
        return create(jax.random.key(0))
    return jax.vmap(create)(jax.random.split(jax.random.key(0), members))


def make_state(*, sizes=SIZES, dtype="float32", early=True, members=None, opt="adam", seed=0):
    """A TrainState (or a sweep's stacked TrainState) whose every leaf holds distinct values."""
    state = scramble(_fresh_state(tuple(sizes), dtype, early, members, opt), seed)
    key = jax.random.key(seed)
    return state._replace(key=key if members is None else jax.random.split(key, members))


def scramble(state, seed):
    """Replace every non-key leaf by random values of its shape/dtype (with a NaN and a -0.0)."""
    rng = np.random.default_rng(seed + 100)

    def fill(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return x
        dt = np.dtype(x.dtype)
        if dt.kind == "f":
            v = rng.normal(size=x.shape).astype(dt)
            if v.size >= 2:
                v.reshape(-1)[0] = np.nan
                v.reshape(-1)[1] = -0.0
            return jnp.asarray(v)
        if dt.kind == "b":
            return jnp.asarray(rng.integers(0, 2, size=x.shape).astype(bool))
        return jnp.asarray(rng.integers(-5, 1000, size=x.shape).astype(dt))

    return jax.tree.map(fill, state)


def make_history(members=None, epochs=5, dtype=np.float32):
    shape = (epochs,) if members is None else (members, epochs)
    rng = np.random.default_rng(7)
    trained = np.ones(shape, bool)
    trained[..., -2:] = False
    loss = rng.random(shape).astype(dtype)
    loss[~trained] = np.nan
    return {"train_loss": loss, "val_loss": (loss * 2).astype(dtype), "trained": trained}


def leaves_bitwise_equal(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert jax.dtypes.issubdtype(y.dtype, jax.dtypes.prng_key)
            assert str(jax.random.key_impl(x)) == str(jax.random.key_impl(y))
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def message(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("members", [None, 3])
@pytest.mark.parametrize("early", [True, False])
def test_round_trip_bitwise(tmp_path, request, dtype, members, early):
    if dtype == "float64":
        request.getfixturevalue("x64")
    state = make_state(dtype=dtype, early=early, members=members)
    history = make_history(members, dtype=np.dtype(dtype))
    path = checkpoint.save(tmp_path, state, history, epoch=3, config_text="[model]\nsizes = [3, 8, 2]\n",
                           meta={"seeds": [0, 1, 2], "note": "x"})
    assert path == tmp_path / "ckpt-000003.npz"
    assert checkpoint.latest(tmp_path) == path

    template = make_state(dtype=dtype, early=early, members=members, seed=1)
    restored, hist, meta = checkpoint.load(path, template)
    leaves_bitwise_equal(restored, state)
    assert isinstance(restored, TrainState)
    assert set(hist) == set(history)
    for k in history:
        assert hist[k].dtype == history[k].dtype
        assert hist[k].tobytes() == history[k].tobytes()
    assert meta["epoch"] == 3
    assert meta["format_version"] == checkpoint.FORMAT_VERSION == 1
    assert meta["config_text"] == "[model]\nsizes = [3, 8, 2]\n"
    assert meta["meta"] == {"seeds": [0, 1, 2], "note": "x"}
    # the restored key is a usable typed key
    keys = jax.random.split(restored.key if members is None else restored.key[0])
    assert keys.shape == (2,)


def test_entries_named_by_key_path(tmp_path):
    path = checkpoint.save(tmp_path, make_state(), make_history(), epoch=1)
    names = zipfile.ZipFile(path).namelist()
    assert "state.params[1]['w'].npy" in names
    assert "state.opt_state[0].mu[0]['b'].npy" in names
    assert "state.key.npy" in names
    assert "history/train_loss.npy" in names
    assert "__meta__.npy" in names


def test_round_trip_extended_dtypes_and_no_history(tmp_path):
    tree = {"bf16": jnp.asarray([1.5, -2.25, jnp.nan], jnp.bfloat16),
            "f16": jnp.asarray([0.1, 65504.0], jnp.float16),
            "keys": jax.random.split(jax.random.key(3), 4)}
    path = checkpoint.save(tmp_path, tree, None, epoch=0)
    template = {"bf16": jnp.zeros(3, jnp.bfloat16), "f16": jnp.zeros(2, jnp.float16),
                "keys": jax.random.split(jax.random.key(0), 4)}
    restored, hist, meta = checkpoint.load(path, template)
    leaves_bitwise_equal(restored, tree)
    assert hist == {} and meta["meta"] == {}


def test_resume_through_checkpoint_is_bitwise_like_continuing(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    net = fnn.MLP(sizes=(3, 6, 2), activation="tanh", output="softmax")
    trainer = Trainer(net, "categorical_cross_entropy", optim.adam(1e-2), (x, y, x[:16], y[:16]),
                      epochs=4, batch_size=16, early_stopping=EarlyStopping(patience=3))
    state, hist1 = trainer.run(trainer.init(jax.random.key(5)), epochs=2)
    checkpoint.save(tmp_path, state, hist1, epoch=2)
    expected_state, hist2 = trainer.run(state, epochs=2)  # in memory (donates state)

    restored, hist, meta = checkpoint.load(checkpoint.latest(tmp_path),
                                           trainer.init(jax.random.key(99)))
    assert meta["epoch"] == 2 and int(restored.epoch) == 2
    resumed_state, resumed_hist = trainer.run(restored, epochs=2)
    leaves_bitwise_equal(resumed_state, expected_state)
    for k in hist1:
        assert hist[k].tobytes() == np.asarray(hist1[k]).tobytes(), k
        assert np.asarray(resumed_hist[k]).tobytes() == np.asarray(hist2[k]).tobytes(), k


# --------------------------------------------------------------------------------------------
# Atomicity, latest, pruning
# --------------------------------------------------------------------------------------------
def test_crash_in_replace_keeps_previous(tmp_path, monkeypatch):
    state = make_state()
    first = checkpoint.save(tmp_path, state, make_history(), epoch=1)

    def boom(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        checkpoint.save(tmp_path, make_state(seed=3), make_history(), epoch=2)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000001.npz"]
    assert checkpoint.latest(tmp_path) == first
    restored, _, meta = checkpoint.load(first, make_state(seed=1))
    leaves_bitwise_equal(restored, state)
    assert meta["epoch"] == 1


def test_killed_mid_save_leaves_temp_that_latest_removes(tmp_path, monkeypatch):
    """A process killed between writing and renaming leaves a temp file and no cleanup runs."""
    state = make_state()
    first = checkpoint.save(tmp_path, state, make_history(), epoch=1)

    class Killed(BaseException):
        pass

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(os, "unlink", lambda *a, **k: None)  # a dead process cleans nothing
    with pytest.raises(Killed):
        checkpoint.save(tmp_path, make_state(seed=3), make_history(), epoch=2)
    monkeypatch.undo()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != first.name]
    assert len(leftovers) == 1 and leftovers[0].startswith(".ckpt-000002.npz.")
    assert leftovers[0].endswith(".tmp")

    assert checkpoint.latest(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [first.name]
    restored, _, _ = checkpoint.load(first, make_state(seed=1))
    leaves_bitwise_equal(restored, state)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, make_state(), None, epoch=1)

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("no space left on device")

    monkeypatch.setattr(checkpoint.np, "savez", broken_savez)
    with pytest.raises(OSError, match="no space"):
        checkpoint.save(tmp_path, make_state(), None, epoch=2)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-000001.npz"]


@pytest.mark.parametrize("keep, remaining", [
    (1, [5]), (2, [4, 5]), (3, [3, 4, 5]), (None, [1, 2, 3, 4, 5]),
])
def test_keep_prunes_older(tmp_path, keep, remaining):
    state = make_state()
    for epoch in range(1, 6):
        checkpoint.save(tmp_path, state, None, epoch=epoch, keep=keep)
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == [
        checkpoint.filename(e) for e in remaining]


def test_keep_never_removes_newer_epochs(tmp_path):
    state = make_state()
    for epoch in (4, 8):
        checkpoint.save(tmp_path, state, None, epoch=epoch)
    checkpoint.save(tmp_path, state, None, epoch=2, keep=1)
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == [
        "ckpt-000002.npz", "ckpt-000004.npz", "ckpt-000008.npz"]


def test_latest_of_empty_or_missing_directory(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    assert checkpoint.latest(tmp_path / "nope") is None
    assert checkpoint.checkpoints(tmp_path / "nope") == []


def test_latest_orders_by_epoch_number(tmp_path):
    state = make_state()
    for epoch in (9, 10, 1000000):
        checkpoint.save(tmp_path, state, None, epoch=epoch, keep=None)
    assert checkpoint.latest(tmp_path).name == "ckpt-1000000.npz"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_byte", "empty"])
def test_corrupt_newest_is_skipped_with_warning(tmp_path, damage):
    state = make_state()
    first = checkpoint.save(tmp_path, state, make_history(), epoch=1)
    second = checkpoint.save(tmp_path, make_state(seed=2), make_history(), epoch=2)
    data = second.read_bytes()
    if damage == "truncate":
        second.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        second.write_bytes(b"this is not a checkpoint")
    elif damage == "empty":
        second.write_bytes(b"")
    else:  # one flipped bit inside the first array's data: only the CRC catches it
        i = data.index(b"\x93NUMPY") + 200
        second.write_bytes(data[:i] + bytes([data[i] ^ 1]) + data[i + 1:])
    with pytest.warns(CheckpointWarning, match="ckpt-000002.npz"):
        assert checkpoint.latest(tmp_path) == first
    assert second.exists()  # reported, not deleted
    with pytest.raises(CheckpointError, match="ckpt-000002.npz"):
        checkpoint.load(second, make_state())
    restored, _, _ = checkpoint.load(first, make_state(seed=5))
    leaves_bitwise_equal(restored, state)


# --------------------------------------------------------------------------------------------
# Mismatches
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("saved, template, expected", [
    pytest.param(dict(sizes=(3, 8, 10)), dict(sizes=(3, 8, 5)),
                 "leaf .params[1]['b'] has shape (10,), expected (5,) (different architecture",
                 id="architecture"),
    pytest.param(dict(sizes=(3, 64, 2)), dict(sizes=(3, 32, 2)),
                 "leaf .params[0]['b'] has shape (64,), expected (32,)", id="hidden-width"),
    pytest.param(dict(sizes=(3, 8, 2)), dict(sizes=(3, 8, 8, 2)),
                 "leaf .params[2]['b'] is missing (expected shape (2,) float32", id="more-layers"),
    pytest.param(dict(sizes=(3, 8, 8, 2)), dict(sizes=(3, 8, 2)),
                 "leaf .params[2]['b'] (shape (2,) float32) is not in the template",
                 id="fewer-layers"),
    pytest.param(dict(early=True), dict(early=False),
                 "leaf .early.best (shape () float32) is not in the template", id="early-off"),
    pytest.param(dict(early=False), dict(early=True),
                 "leaf .early.best is missing", id="early-on"),
    pytest.param(dict(opt="sgd"), dict(),
                 "leaf .opt_state[0].count is missing", id="optimizer"),
    pytest.param(dict(members=3), dict(members=4),
                 "leaf .step has shape (3,), expected (4,) (different sweep size?)", id="members"),
    pytest.param(dict(), dict(members=2),
                 "leaf .step has shape (), expected (2,)", id="single-vs-sweep"),
])
def test_mismatch_messages(tmp_path, saved, template, expected):
    path = checkpoint.save(tmp_path, make_state(**saved), None, epoch=4)
    with pytest.raises(CheckpointError) as excinfo:
        checkpoint.load(path, make_state(**template))
    text = message(excinfo)
    assert text.startswith("checkpoint ckpt-000004.npz: ")
    assert expected in text


def test_dtype_mismatch_message(tmp_path, x64):
    path = checkpoint.save(tmp_path, make_state(dtype="float64"), None, epoch=4)
    with pytest.raises(CheckpointError) as excinfo:
        checkpoint.load(path, make_state(dtype="float32"))
    assert ("checkpoint ckpt-000004.npz: leaf .params[0]['b'] has dtype float64, expected"
            " float32") in message(excinfo)


def test_key_impl_mismatch(tmp_path):
    tree = {"key": jax.random.key(0, impl="rbg")}
    path = checkpoint.save(tmp_path, tree, None, epoch=1)
    with pytest.raises(CheckpointError) as excinfo:
        checkpoint.load(path, {"key": jax.random.key(0)})
    assert "leaf ['key'] has dtype key<rbg>, expected key<fry>" in message(excinfo)


def _rewrite_meta(path, **changes):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["__meta__"].tobytes().decode())
    header.update(changes)
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("version, expected", [
    (99, "format version 99; this fnn reads version 1 (written by a newer fnn?)"),
    (0, "format version 0; this fnn reads version 1"),
])
def test_wrong_format_version(tmp_path, version, expected):
    path = checkpoint.save(tmp_path, make_state(), None, epoch=4)
    _rewrite_meta(path, format_version=version)
    assert checkpoint.latest(tmp_path) == path  # complete, just another version
    with pytest.raises(CheckpointError) as excinfo:
        checkpoint.load(path, make_state())
    assert expected in message(excinfo)


@pytest.mark.parametrize("kind, expected", [
    ("plain-npz", "not an fnn checkpoint (no __meta__ entry)"),
    ("other-marker", "not an fnn checkpoint (format marker missing)"),
    ("text", "not an fnn checkpoint or truncated"),
    ("missing", "no such file"),
])
def test_not_an_fnn_checkpoint(tmp_path, kind, expected):
    path = tmp_path / "ckpt-000001.npz"
    if kind == "plain-npz":
        np.savez(path, w=np.zeros(3))
    elif kind == "other-marker":
        checkpoint.save(tmp_path, make_state(), None, epoch=1)
        _rewrite_meta(path, format="something-else")
    elif kind == "text":
        path.write_text("step = 3\n")
    with pytest.raises(CheckpointError) as excinfo:
        checkpoint.load(path, make_state())
    assert expected in message(excinfo)
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(epoch=-1), "checkpoint epoch: -1"),
    (dict(epoch=1.5), "checkpoint epoch: 1.5"),
    (dict(epoch=1, keep=0), "checkpoint keep: 0"),
    (dict(epoch=1, meta={"f": object()}), "checkpoint meta: not JSON-serializable"),
    (dict(epoch=1, config_text=None), "checkpoint config_text"),
])
def test_bad_save_arguments_write_nothing(tmp_path, kwargs, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        checkpoint.save(tmp_path / "run", make_state(), None, **kwargs)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("blob", [b"the user's own notes\n", b"", b"PK\x03\x04 torn zip", None])
def test_a_save_never_replaces_what_is_not_a_checkpoint(tmp_path, blob):
    """Found by the --resume fuzz: a damaged file at a checkpoint's name (skipped by ``latest``)
    was overwritten when the resumed run saved that epoch again. It is kept beside it."""
    target = tmp_path / checkpoint.filename(2)
    if blob is not None:
        target.write_bytes(blob)
    else:  # a good checkpoint of the same epoch is replaced, as before
        checkpoint.save(tmp_path, make_state(seed=1), make_history(), epoch=2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        checkpoint.save(tmp_path, make_state(), make_history(), epoch=2)
    kept = tmp_path / (target.name + ".corrupt")
    assert checkpoint.latest(tmp_path) == target
    if blob is None:
        assert not kept.exists() and not [w for w in seen if w.category is CheckpointWarning]
    else:
        assert kept.read_bytes() == blob
        assert [str(w.message) for w in seen if w.category is CheckpointWarning] == [
            f"checkpoint {target.name}: not a readable checkpoint; kept as {kept.name}"]
        checkpoint.save(tmp_path, make_state(), make_history(), epoch=2)  # no second copy
        assert sorted(p.name for p in tmp_path.iterdir()) == [target.name, kept.name]


def test_pruning_deletes_only_checkpoints(tmp_path):
    """``keep``: the oldest of fnn's checkpoints go; a user's file at a checkpoint name stays."""
    checkpoint.save(tmp_path, make_state(), make_history(), epoch=1)
    (tmp_path / checkpoint.filename(2)).write_text("not fnn's\n")
    checkpoint.save(tmp_path, make_state(), make_history(), epoch=3)
    checkpoint.save(tmp_path, make_state(), make_history(), epoch=4, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint.filename(2),
                                                          checkpoint.filename(4)]
