"""Evaluation in chunks sized by the network (fnn.experiment.memory.eval_chunk): a conv net's
evaluation calls take few rows, so their temporaries stay below the training step's; the means
do not depend on the chunking beyond rounding."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import fnn
from fnn.experiment import memory

L = fnn.layers


def _cnn(filters):
    return fnn.Sequential((L.Conv2D(filters, 3, activation="relu"), L.MaxPool2D(2), L.Flatten(),
                           L.Dense(10, activation="softmax")), input_shape=(28, 28, 1))


@pytest.mark.parametrize("net,rows", [
    (fnn.MLP(sizes=(784, 256, 128, 10)), 2048),            # small activations: the cap
    (fnn.MLP(sizes=(2, 32, 32, 2)), 2048),
    # 28·28·f + 14·14·f + 14·14·f + 10 float32 values per image
    (_cnn(32), (32 << 20) // ((28 * 28 * 32 + 2 * 14 * 14 * 32 + 10) * 4)),
    (_cnn(512), (32 << 20) // ((28 * 28 * 512 + 2 * 14 * 14 * 512 + 10) * 4)),
])
def test_eval_chunk_rows_follow_the_activations(net, rows):
    assert memory.eval_chunk(net) == rows
    assert 1 <= memory.eval_chunk(net) <= 2048
    assert memory.eval_chunk(net, cap=7) == min(7, rows)


def test_chunked_evaluation_matches_one_call():
    net = _cnn(4)
    trainer = fnn.Trainer(net, "cross_entropy", fnn.optim.sgd(0.1),
                          (np.zeros((8, 784), np.uint8), np.zeros(8, np.int32)),
                          epochs=1, batch_size=4)
    params = net.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (37, 784), dtype=np.uint8)
    y = rng.integers(0, 10, 37).astype(np.int32)
    whole = trainer.evaluate(params, x, y, chunk=37)
    for chunk in (1, 5, 36):
        part = trainer.evaluate(params, x, y, chunk=chunk)
        assert part["accuracy"] == pytest.approx(whole["accuracy"], abs=1e-7)  # float32 means
        assert part["loss"] == pytest.approx(whole["loss"], rel=1e-5)


@pytest.mark.parametrize("rows", [5, 7, 40])  # 40 val rows: 8 chunks; 5 chunks + 5; one call
def test_in_scan_validation_in_chunks_matches_one_call(monkeypatch, rows):
    from fnn.engine import eval_rows

    net = _cnn(2)
    rng = np.random.default_rng(1)
    data = (rng.integers(0, 256, (16, 784), dtype=np.uint8), rng.integers(0, 10, 16).astype(np.int32),
            rng.integers(0, 256, (40, 784), dtype=np.uint8), rng.integers(0, 10, 40).astype(np.int32))

    def history(chunk_rows):
        per_row = eval_rows.activations_per_example(net) * 4
        monkeypatch.setattr(eval_rows, "EVAL_CHUNK_BYTES", chunk_rows * per_row)
        assert eval_rows.eval_chunk(net, cap=40) == chunk_rows
        tr = fnn.Trainer(net, "cross_entropy", fnn.optim.sgd(0.1), data, epochs=2, batch_size=8)
        return tr.train(jax.random.key(0))[1]

    one, chunked = history(40), history(rows)
    np.testing.assert_array_equal(chunked["train_loss"], one["train_loss"])
    np.testing.assert_allclose(chunked["val_loss"], one["val_loss"], rtol=1e-6)
    np.testing.assert_allclose(chunked["val_accuracy"], one["val_accuracy"], atol=1e-6)
