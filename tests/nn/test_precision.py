"""Mixed precision in the objective (``evaluate(..., compute=jnp.bfloat16)``): the network runs in
bfloat16, the loss and the gradients come back in float32, and both gradient modes agree with
the float32 gradient to bfloat16's rounding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from markers import slow_cases

from fnn import MLP, Sequential
from fnn.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Embedding,
    Flatten,
    LayerNorm,
    LSTM,
    MaxPool2D,
    PositionalEmbedding,
    TransformerBlock,
)
from fnn.nn import losses as losses_mod
from fnn.nn import objective as obj
from fnn.nn.names import DTYPES
from fnn.nn.precision import cast_floats, check_dtype, check_precision

NETS = {
    "mlp": lambda: MLP([6, 32, 16, 4], activation="relu", output="softmax"),
    "cnn_bn": lambda: Sequential([Conv2D(8, 3, activation="relu"), BatchNorm(), MaxPool2D(2),
                                  Flatten(), Dense(4, activation="softmax")],
                                 input_shape=(8, 8, 1)),
    "gpt": lambda: Sequential([Embedding(11, 16), PositionalEmbedding(6), TransformerBlock(2),
                               LayerNorm(), Dense(11, activation="softmax")], input_shape=(6,)),
    "lstm": lambda: Sequential([Embedding(11, 8), LSTM(16), Dense(11, activation="softmax")],
                               input_shape=(6,)),
}


def batch(net, rng, b=16):
    if net.integer_inputs:
        x = jnp.asarray(rng.integers(0, 11, (b, 6)), jnp.int32)
        y = jnp.asarray(rng.integers(0, 11, (b, 6)), jnp.int32)
    else:
        x = jnp.asarray(rng.normal(size=(b,) + net.input_shape), jnp.float32)
        y = jnp.asarray(rng.integers(0, 4, b), jnp.int32)
    loss = losses_mod.get("cross_entropy")
    k = net.output_shape[-1]
    return x, losses_mod.prepare_targets(loss, y, k, jnp.float32, output_shape=net.output_shape)


def rel_err(a, b):
    a, b = (np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in jax.tree.leaves(t)])
            for t in (a, b))
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("mode", slow_cases(["manual", "autodiff"], slow={"autodiff"}))
@pytest.mark.parametrize("kind", slow_cases(list(NETS), slow={"gpt", "cnn_bn", "lstm"}))
def test_bf16_gradients_are_float32_and_close_to_the_float32_ones(kind, mode):
    net = NETS[kind]()
    params = net.init(jax.random.key(0))
    x, y = batch(net, np.random.default_rng(0))
    full = obj.evaluate(net, "cross_entropy", params, x, y, mode=mode, l2=1e-3)
    mixed = obj.evaluate(net, "cross_entropy", params, x, y, mode=mode, l2=1e-3,
                         compute=jnp.bfloat16)
    for tree in (mixed.grads, mixed.state):
        assert {leaf.dtype for leaf in jax.tree.leaves(tree)} <= {jnp.dtype("float32")}
    assert mixed.loss.dtype == mixed.data_loss.dtype == mixed.y_hat.dtype == jnp.float32
    # bfloat16 keeps 8 significant bits (relative rounding 2^-9 ≈ 0.2 %): a few % over a chain
    assert rel_err(mixed.grads, full.grads) < 0.05
    assert abs(float(mixed.loss) - float(full.loss)) < 0.02 * abs(float(full.loss))
    # and they are not the float32 numbers: the network really ran in bfloat16
    assert rel_err(mixed.grads, full.grads) > 1e-5


@pytest.mark.parametrize("kind", slow_cases(list(NETS), slow={"gpt", "cnn_bn"}))
def test_manual_and_autodiff_agree_in_bf16(kind):
    net = NETS[kind]()
    params = net.init(jax.random.key(1))
    x, y = batch(net, np.random.default_rng(1))
    man = obj.evaluate(net, "cross_entropy", params, x, y, mode="manual", compute=jnp.bfloat16)
    auto = obj.evaluate(net, "cross_entropy", params, x, y, mode="autodiff",
                        compute=jnp.bfloat16)
    assert rel_err(man.grads, auto.grads) < 0.05
    np.testing.assert_allclose(man.loss, auto.loss, rtol=1e-6)  # one forward, one f32 loss


@pytest.mark.parametrize("mode", ["manual", "autodiff"])
def test_the_forward_and_backward_products_run_in_bfloat16(mode):
    """Every matrix product and convolution of the mixed objective takes bfloat16 operands."""
    net = NETS["cnn_bn"]()
    params = net.init(jax.random.key(0))
    x, y = batch(net, np.random.default_rng(0))

    def f(p):
        return obj.evaluate(net, "cross_entropy", p, x, y, mode=mode, state=net.init_state(),
                            compute=jnp.bfloat16).grads

    eqns = [e for e in jax.make_jaxpr(f)(params).jaxpr.eqns]
    products = [e for e in _all_eqns(eqns) if e.primitive.name in ("dot_general",
                                                                     "conv_general_dilated")]
    assert len(products) >= 5  # 2 forward; backward: both weight gradients, the dense input's
    for e in products:
        assert all(v.aval.dtype == jnp.bfloat16 for v in e.invars), e


def _all_eqns(eqns):
    for e in eqns:
        yield e
        for sub in jax.core.subjaxprs(e) if hasattr(jax.core, "subjaxprs") else ():
            yield from _all_eqns(sub.eqns)
        for p in e.params.values():
            inner = getattr(p, "jaxpr", None)
            if inner is not None and hasattr(inner, "eqns"):
                yield from _all_eqns(inner.eqns)


def test_batchnorm_statistics_stay_float32():
    net = NETS["cnn_bn"]()
    params = net.init(jax.random.key(0))
    x, y = batch(net, np.random.default_rng(0))
    out = obj.evaluate(net, "cross_entropy", params, x, y, compute=jnp.bfloat16)
    full = obj.evaluate(net, "cross_entropy", params, x, y)
    for a, b in zip(jax.tree.leaves(out.state), jax.tree.leaves(full.state)):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-3)


def test_one_list_of_dtypes():
    """Sequential and the config's model.dtype accept the same names (fnn.nn.names.DTYPES)."""
    from fnn.experiment.config.schema import ModelConfig
    import dataclasses

    spec = {f.name: f for f in dataclasses.fields(ModelConfig)}["dtype"].metadata
    assert tuple(spec["choices"]) == DTYPES
    for name in DTYPES:
        assert Sequential([Dense(2)], input_shape=(3,), dtype=name).dtype == check_dtype(name)
    with pytest.raises(ValueError, match=r"^dtype: 'int8'; expected one of: float32, float64, "
                                         r"bfloat16, float16$"):
        Sequential([Dense(2)], input_shape=(3,), dtype="int8")


@pytest.mark.parametrize("precision,dtype,match", [
    ("float16", "float32", r"^precision: 'float16'; expected one of: full, bfloat16 "),
    ("bfloat16", "float64", r"^precision: 'bfloat16' with parameters in float64; expected "
                            r"float32 master"),
])
def test_bad_precision_is_one_line(precision, dtype, match):
    with pytest.raises(ValueError, match=match):
        check_precision(precision, dtype)


def test_cast_floats_leaves_integers_alone():
    tree = {"w": jnp.ones(3), "ids": jnp.arange(3), "none": None}
    out = cast_floats(tree, jnp.bfloat16)
    assert out["w"].dtype == jnp.bfloat16 and out["ids"].dtype == jnp.int32
    assert out["none"] is None
