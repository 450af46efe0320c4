"""The Trainer's arguments as records (fnn.engine.options): Loop, Numerics, Monitor."""
import dataclasses

import chex
import jax
import numpy as np
import pytest

import fnn
from fnn import optim
from fnn.engine import EarlyStopping, Loop, Monitor, Numerics, Trainer


def _data(n=24):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x.sum(1) > 0).astype(np.int32)


@pytest.mark.parametrize("make, message", [
    (lambda: Loop(epochs=0, batch_size=4), "training.epochs: 0; expected an integer >= 1"),
    (lambda: Loop(epochs=True, batch_size=4), "training.epochs: True; expected an integer"),
    (lambda: Loop(epochs=2, batch_size=2.0), "training.batch_size: 2.0; expected an integer"),
    (lambda: Loop(epochs=2, batch_size=8, accumulate=3), "training.accumulate: 3"),
    (lambda: Numerics(grad="numeric"), "'numeric'"),
    (lambda: Numerics(precision="float16"), "precision: 'float16'; expected one of"),
    (lambda: Numerics(nan_guard="skip"), "training.nan_guard: 'skip'"),
    (lambda: Monitor(progress_updates=0), "progress_updates: 0; expected an integer >= 1"),
])
def test_records_refuse_bad_fields_in_one_line(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_records_are_frozen_and_carry_the_defaults():
    loop = Loop(epochs=3, batch_size=8)
    assert (loop.accumulate, loop.early_stopping, loop.windows) == (1, None, None)
    assert Numerics() == Numerics(grad="manual", precision="full", nan_guard="halt")
    assert Monitor() == Monitor(progress=None, progress_updates=100, diagnostics=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loop.epochs = 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=2, batch_size=8, epoch=3), "unexpected keyword 'epoch'"),
    (dict(batch_size=8), "missing 'epochs'"),
    (dict(loop=Loop(epochs=2, batch_size=8), epochs=3), "'epochs' given twice"),
    (dict(epochs=2, batch_size=8, numerics=Numerics(), grad="autodiff"), "'grad' given twice"),
    (dict(loop=(2, 8)), "loop=(2, 8); expected a Loop"),
])
def test_trainer_refuses_mixed_or_unknown_arguments(kwargs, message):
    net = fnn.MLP([3, 4, 2], "relu", output="softmax")
    with pytest.raises(TypeError, match=None) as err:
        Trainer(net, "cross_entropy", optim.sgd(0.1), _data(), **kwargs)
    assert message in str(err.value)


def test_records_and_keywords_build_the_same_run():
    """Trainer(loop=Loop(...), numerics=..., monitor=...) trains bitwise like the short form."""
    net = fnn.MLP([3, 4, 2], "tanh", output="softmax")
    x, y = _data()
    stop = EarlyStopping(patience=5)
    short = Trainer(net, "cross_entropy", optim.adam(0.01), (x, y, x, y), epochs=3,
                    batch_size=8, accumulate=2, early_stopping=stop, grad="autodiff",
                    nan_guard="revert", diagnostics=True)
    grouped = Trainer(net, "cross_entropy", optim.adam(0.01), (x, y, x, y),
                      loop=Loop(epochs=3, batch_size=8, accumulate=2, early_stopping=stop),
                      numerics=Numerics(grad="autodiff", nan_guard="revert"),
                      monitor=Monitor(diagnostics=True))
    assert short.options == grouped.options
    (s1, h1), (s2, h2) = short.train(jax.random.key(0)), grouped.train(jax.random.key(0))
    chex.assert_trees_all_equal(s1.params, s2.params)
    chex.assert_trees_all_equal(h1, h2)
    assert "grad_norm/layer1" in h1 and short.accumulate == 2 and short.grad == "autodiff"
