"""Mixed precision by accident is refused: parameters of another float dtype than the network's."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import fnn


def test_float64_params_in_a_float32_network_are_refused(x64):
    net = fnn.MLP(sizes=(2, 4, 2), output="softmax")
    params = jax.tree.map(lambda a: a.astype(jnp.float64), net.init(jax.random.key(0)))
    with pytest.raises(ValueError, match=r"params\[0\]\['b'\]: dtype float64; the network's dtype"
                                         r" is float32") as err:
        fnn.loss_and_grad(net, "cross_entropy", params, jnp.ones((3, 2)), jnp.array([0, 1, 0]))
    assert "\n" not in str(err.value)
    # the remedy the message names works
    net64 = net.replace(dtype="float64")
    loss, grads = fnn.loss_and_grad(net64, "cross_entropy", params, jnp.ones((3, 2)),
                                    jnp.array([0, 1, 0]))
    assert loss.dtype == jnp.float64 and grads[0]["w"].dtype == jnp.float64
