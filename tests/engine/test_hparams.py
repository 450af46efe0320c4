"""The traced hyperparameters: one pytree, one default rule, one resolver, one config table."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from fnn.engine import hparams as hp_mod
from fnn.engine.hparams import HPARAM_NAMES, HParams
from fnn.experiment.config import TRACED_KEYS


def test_config_table_feeds_every_field_once():
    assert sorted(TRACED_KEYS.values()) == sorted(HPARAM_NAMES)
    assert HParams._fields == HPARAM_NAMES


@pytest.mark.parametrize("hp, want", [
    (HParams(), ("learning_rate",)),
    (HParams(l2=1e-4), ("learning_rate", "l2")),
    (HParams(weight_decay=0.1, drop_rate=0.5), ("learning_rate", "weight_decay", "drop_rate")),
    (HParams(l1=0.0, drop_rate=None), ("learning_rate",)),
])
def test_default_traced_is_the_rate_and_every_nonzero_one(hp, want):
    assert hp_mod.default_traced(hp) == want


@pytest.mark.parametrize("varied, want", [
    ((), None),
    (("l2",), ("learning_rate", "l2")),
    (("drop_rate", "learning_rate"), ("learning_rate", "drop_rate")),
])
def test_traced_for_adds_what_a_sweep_varies(varied, want):
    assert hp_mod.traced_for(HParams(), varied) == want


def test_unknown_traced_name_is_one_line():
    with pytest.raises(ValueError, match=r"^traced: \['lr'\]; expected names from") as e:
        hp_mod.check_traced(("lr",))
    assert "\n" not in str(e.value)


def test_inputs_resolve_back_to_the_values():
    compiled = HParams(learning_rate=0.1, l2=0.01, drop_rate=0.0)
    traced = ("learning_rate", "l2")
    inputs = hp_mod.as_inputs(compiled, traced, {"learning_rate": 0.5}, dtype=jnp.float32,
                              members=3)
    assert inputs.weight_decay is None and inputs.drop_rate is None
    np.testing.assert_array_equal(inputs.learning_rate, np.full(3, 0.5, np.float32))
    np.testing.assert_array_equal(inputs.l2, np.full(3, 0.01, np.float32))
    merged = hp_mod.resolve(compiled, inputs)
    assert merged.weight_decay == 0.0 and merged.drop_rate == 0.0
    assert merged.learning_rate is inputs.learning_rate


@pytest.mark.parametrize("given, match", [
    ({"l1": 0.1}, r"^hparams\.l1: 0\.1 differs from the compiled value 0\.0; list it in traced="),
    ({"momentum": 0.9}, r"^hparams: unknown \['momentum'\]"),
])
def test_untraced_or_unknown_values_are_refused(given, match):
    with pytest.raises(ValueError, match=match):
        hp_mod.as_inputs(HParams(), ("learning_rate",), given, dtype=jnp.float32)
