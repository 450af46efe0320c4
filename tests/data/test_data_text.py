"""Token data (fnn/data/text.py) and its step-based training pieces: the vocabulary, the 90/10
split, the adder, one-line errors for bad files, the on-device window sampler, the step
schedule (warmup then cosine to alpha × lr) and the weight-decay mask of a GPT."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import optim
from fnn.data import DataError, text
from fnn.engine import windows as win
from fnn.experiment import build as exp
from fnn.experiment import config as C
from fnn.nn.layers import (LSTM, Dense, Embedding, LayerNorm, PositionalEmbedding, Repeat,
                           TransformerBlock)


def _write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_vocabulary_round_trips_and_names_the_bad_character(tmp_path):
    v = text.Vocabulary.from_text("hello, world")
    assert v.chars == tuple(sorted(set("hello, world"))) and v.size == 9
    ids = v.encode("low")
    assert ids.dtype == np.int32 and v.decode(ids) == "low"
    v.save(tmp_path / "vocab.json")
    assert text.Vocabulary.load(tmp_path / "vocab.json") == v
    with pytest.raises(DataError) as err:
        v.encode("hoZ", field="--prompt")
    assert str(err.value).startswith("--prompt: character 'Z' (U+005A) at position 2")
    _write(tmp_path / "bad.json", "{}")
    with pytest.raises(DataError, match="not an fnn vocabulary file"):
        text.Vocabulary.load(tmp_path / "bad.json")


def test_text_split_is_the_first_90_percent_and_windows_are_consecutive(tmp_path):
    body = "".join(chr(97 + i % 26) for i in range(1000))
    ds = fnn.data.load("text", path=_write(tmp_path / "t.txt", body), block_size=8)
    assert ds.train.shape == (1, 900) and ds.val.shape == (1, 100)
    assert ds.vocab.decode(ds.train[0]) == body[:900]
    assert ds.vocab.decode(ds.val[0]) == body[900:]
    x, y = ds.split("val")
    assert x.shape == (12, 8) == y.shape  # (100 - 1) // 8 windows
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert ds.vocab.decode(x[1]) == body[908:916]


@pytest.mark.parametrize("content,block,expected", [
    (b"", 8, "empty file; expected UTF-8 text"),
    (b"abc\xff\xfedef" * 10, 8, "not UTF-8 (byte 0xff at offset 3)"),
    ("abcdefghij" * 3, 8, "30 characters, shorter than two windows; expected at least 81"),
    ("".join(chr(0x4E00 + i) for i in range(5000)) * 2, 8,
     "a vocabulary of 5000 distinct characters; expected at most 4096"),
])
def test_bad_text_files_are_one_line_errors(tmp_path, content, block, expected):
    path = _write(tmp_path / "t.txt", content)
    with pytest.raises(DataError) as err:
        fnn.data.load("text", path=path, block_size=block)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"path={str(path)!r}: ") and expected in msg, msg


def test_a_text_of_exactly_two_windows_loads(tmp_path):
    # the least the message asks for: 81 characters with block 8, 72 for training and the
    # last 9 for validation; one fewer is refused
    ds = fnn.data.load("text", path=_write(tmp_path / "t.txt", "abc" * 27), block_size=8)
    assert ds.train.shape == (1, 72) and ds.val.shape == (1, 9)
    with pytest.raises(DataError, match="expected at least 81"):
        fnn.data.load("text", path=_write(tmp_path / "u.txt", "ab" * 40), block_size=8)


def test_text_errors_name_the_config_key(tmp_path):
    cfg = C.from_dict({"data": {"name": "text", "path": str(_write(tmp_path / "e.txt", b""))},
                       "model": {"layers": [{"type": "embedding", "features": 4}]},
                       "training": {"iterations": 10, "eval_interval": 5}})
    with pytest.raises(DataError) as err:
        exp.load_dataset(cfg)
    assert str(err.value).startswith("data.path=") and "empty file" in str(err.value)
    with pytest.raises(DataError, match=r"^data\.path: missing; data\.name = 'text'"):
        exp.load_dataset(cfg.replace("data.path", ""))


def test_adder_rows_are_a_b_and_the_reversed_sum():
    ds = text.adder(digits=2)
    assert ds.block_size == 6 and ds.answer_len == 3
    assert (ds.train.shape[0], ds.val.shape[0], ds.test.shape[0]) == (8000, 1000, 1000)
    rows = np.concatenate([ds.train, ds.val, ds.test])
    assert len({tuple(r) for r in rows}) == 10000  # every problem once, none shared by splits
    for r in rows[:50]:
        s = ds.vocab.decode(r)
        a, b, c = int(s[:2]), int(s[2:4]), int(s[4:][::-1])
        assert a + b == c
    x, y = ds.split("test")
    assert x.shape == (1000, 6) and np.array_equal(y[:, :-1], x[:, 1:])
    with pytest.raises(DataError, match=r"^digits=7: expected at most 6"):
        text.adder(digits=7)


@pytest.mark.parametrize("rows_shape,block", [((1, 50), 8), ((40, 7), 6)])
def test_windows_are_drawn_on_the_device_from_the_key(rows_shape, block):
    rows = jnp.asarray(np.arange(np.prod(rows_shape)).reshape(rows_shape), jnp.int32)
    draw = jax.jit(win.draw, static_argnums=(2, 3))
    x, y = draw(jax.random.key(0), rows, 64, block)
    assert x.shape == y.shape == (64, block) and x.dtype == jnp.int32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])              # y is x shifted by one
    np.testing.assert_array_equal(y[:, -1] - x[:, 0], np.full(64, block))  # one window a row
    assert (x[:, 0] % rows_shape[1]) .max() <= rows_shape[1] - block - 1  # never past the end
    x2, _ = draw(jax.random.key(0), rows, 64, block)
    x3, _ = draw(jax.random.key(1), rows, 64, block)
    assert np.array_equal(x, x2) and not np.array_equal(x, x3)
    starts = np.asarray(draw(jax.random.key(2), rows, 4096, block)[0][:, 0]) % rows_shape[1]
    assert set(starts) == set(range(rows_shape[1] - block))          # every start is drawn


def _step_cfg(**training):
    return C.from_dict({"data": {"name": "adder"},
                        "model": {"layers": [{"type": "embedding", "features": 4}]},
                        "optimizer": {"learning_rate": 1e-3,
                                      "schedule": {"name": "cosine", "warmup_steps": 100,
                                                   "alpha": 0.1}},
                        "training": {"iterations": 2000, "eval_interval": 250, **training}})


def test_step_schedule_warms_up_then_decays_to_alpha_at_the_last_iteration():
    sched = exp.build_schedule(_step_cfg(), 1e-3, 250)
    lr = np.asarray([sched(jnp.asarray(s)) for s in (0, 50, 100, 1050, 2000)])
    np.testing.assert_allclose(lr, [0.0, 5e-4, 1e-3, 5.5e-4, 1e-4], rtol=1e-5)


@pytest.mark.parametrize("key,value,expected", [
    ("training.eval_interval", 300, "training.eval_interval: 300; expected a divisor of"
                                    " training.iterations = 2000"),
    ("optimizer.schedule.warmup_steps", 2000, "optimizer.schedule.warmup_steps: 2000; expected"
                                              " fewer than training.iterations = 2000"),
    ("training.iterations", 0, "training.iterations: 0 with data.name = 'adder'; expected a"),
])
def test_step_keys_are_checked_across_keys(key, value, expected):
    raw = C.to_dict(_step_cfg())
    node = raw
    for part in key.split(".")[:-1]:
        node = node[part]
    node[key.split(".")[-1]] = value
    with pytest.raises(C.ConfigError) as err:
        C.from_dict(raw)
    assert any(e.startswith(expected) for e in err.value.errors), err.value.errors


def test_iterations_need_token_data():
    with pytest.raises(C.ConfigError) as err:
        C.from_dict({"data": {"name": "moons"}, "training": {"iterations": 100}})
    assert any(e.startswith("training.iterations: 100 with data.name = 'moons'")
               for e in err.value.errors)


@pytest.mark.slow
def test_weight_decay_reaches_matrices_and_embeddings_only():
    net = fnn.Sequential([Embedding(11, 8), PositionalEmbedding(6),
                          Repeat(TransformerBlock(2, mlp_ratio=2), 2), LSTM(8), LayerNorm(),
                          Dense(11, "softmax")], input_shape=(6,))
    params = net.init(jax.random.key(0))
    mask = optim.weights_only_mask(params)
    decayed = {jax.tree_util.keystr(p) for p, m in jax.tree_util.tree_leaves_with_path(mask) if m}
    kept = {jax.tree_util.keystr(p) for p, m in jax.tree_util.tree_leaves_with_path(mask) if not m}
    # every weight matrix (and the stacked ones of Repeat) and both tables; no bias or norm
    assert {"[0]['w']", "[1]['w']", "[3]['w']", "[5]['w']"} <= decayed
    assert all(k.endswith("['w']") for k in decayed)
    assert all(k.endswith(("['b']", "['scale']", "['bias']")) for k in kept)
    leaves = dict(jax.tree_util.tree_leaves_with_path(params))
    shapes = {jax.tree_util.keystr(p): leaf.shape for p, leaf in leaves.items()}
    assert all(len(shapes[k]) >= 2 for k in decayed)
    # Repeat stacks biases to 2-d: a rank rule would decay them, the mask does not
    assert any(len(shapes[k]) == 2 for k in kept)
    # AdamW: decay moves exactly the masked leaves when the gradient is zero
    opt = optim.adamw(0.1, b2=0.99, weight_decay=0.5, mask=optim.weights_only_mask)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = opt.update(zeros, opt.init(params), params)
    for (path, u), m in zip(jax.tree_util.tree_leaves_with_path(updates), jax.tree.leaves(mask)):
        assert bool(jnp.any(u != 0)) == m, jax.tree_util.keystr(path)
