"""``fnn.backprop_trace``: the notes' per-layer quantities, their identities, and the summary.

The identities are checked *exactly* (bitwise): the trace is built from the forward caches and
the layers' own backward (``Dense.delta``, ``Dense.backward_from_delta``), and the test recomputes
each right-hand side with the same operations from the trace's own values. Independent checks
(δ(L) from the loss formulas, gradients vs ``jax.grad``) are to rounding in float64.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.nn import activations as acts

# (hidden activations, output, loss, drop_rate)
CASES = [
    (("relu", "relu"), "sigmoid", "mse", 0.0),              # the notes' worked example, deeper
    (("tanh", "sigmoid"), "softmax", "cross_entropy", 0.0),
    (("sigmoid", "leaky_relu"), "sigmoid", "binary_cross_entropy", 0.0),
    (("relu", "tanh"), "softmax", "mse", 0.0),              # softmax's Jacobian-vector product
    (("leaky_relu", "relu"), "identity", "mse", 0.3),       # with dropout masks
    (("tanh", "relu"), "softmax", "cross_entropy", 0.5),
]


def _setup(hidden, output, loss, drop_rate, batch=7, seed=0):
    sizes = (3, 5, 4, 3 if output == "softmax" else 2)
    net = fnn.MLP(sizes=sizes, activation=hidden, output=output, drop_rate=drop_rate,
                  dtype="float64")
    k = jax.random.split(jax.random.key(seed), 4)
    params = net.init(k[0])
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(k[3], p.shape, p.dtype), params)
    x = jax.random.normal(k[1], (batch, sizes[0]), jnp.float64)
    if loss == "cross_entropy":
        y = jax.random.randint(k[2], (batch,), 0, sizes[-1])
    elif loss == "binary_cross_entropy":
        y = jax.random.bernoulli(k[2], 0.5, (batch, sizes[-1])).astype(jnp.float64)
    else:
        y = jax.random.uniform(k[2], (batch, sizes[-1]), jnp.float64)
    key = jax.random.key(seed + 100) if drop_rate > 0 else None
    return net, params, x, y, key


@pytest.mark.parametrize("hidden,output,loss,drop_rate", CASES)
def test_notes_identities_hold_exactly(x64, hidden, output, loss, drop_rate):
    net, params, x, y, key = _setup(hidden, output, loss, drop_rate)
    trace = fnn.backprop_trace(net, loss, params, x, y, key=key)
    # one row per layer of the Sequential: Dense, (Dropout,) Dense, (Dropout,) Dense
    assert len(trace) == len(net.layers) == (5 if drop_rate > 0 else 3)
    assert trace.kinds == tuple(type(layer).__name__ for layer in net.layers)
    dense = [i for i, kind in enumerate(trace.kinds) if kind == "Dense"]
    assert len(dense) == net.num_layers == 3
    for i, t in enumerate(trace):
        if trace.kinds[i] == "Dropout":                                          # X̃ = X ⊙ M
            assert t.mask is not None and t.z is None and t.dw is None
            np.testing.assert_array_equal(t.a, trace[i - 1].a * t.mask)
        else:
            assert t.mask is None
    for l, i in enumerate(dense):
        t, p = trace[i], params[i]
        g = acts.get(net.layers[i].activation)
        x_in = trace.x if i == 0 else trace[i - 1].a                             # A(l−1) ⊙ M(l)
        np.testing.assert_array_equal(t.z, x_in @ p["w"] + p["b"][None, :])   # Z = A W + b
        np.testing.assert_array_equal(t.a, g.fn(t.z))                            # A = g(Z)
        np.testing.assert_array_equal(t.dw, x_in.T @ t.delta)                    # ∂W = Aᵀ δ
        np.testing.assert_array_equal(t.db, jnp.sum(t.delta, axis=0))            # ∂b = Σ δ
        assert t.dw.shape == p["w"].shape and t.db.shape == p["b"].shape
        if l + 1 < len(dense):                                                   # δ recurrence
            j = dense[l + 1]
            grad_a = trace[j].delta @ params[j]["w"].T                           # δ(l+1) W(l+1)ᵀ
            if j - 1 != i:                                                       # a Dropout between
                np.testing.assert_array_equal(trace[j - 1].delta, grad_a)
                grad_a = grad_a * trace[j - 1].mask                              # ⊙ M(l+1)
            np.testing.assert_array_equal(t.delta, grad_a * g.derivative(t.z, t.a))  # ⊙ g'(Z)


@pytest.mark.parametrize("hidden,output,loss,drop_rate", CASES)
def test_output_delta_is_the_loss_formula(x64, hidden, output, loss, drop_rate):
    net, params, x, y, key = _setup(hidden, output, loss, drop_rate)
    trace = fnn.backprop_trace(net, loss, params, x, y, key=key)
    top, n = trace[-1], x.shape[0]
    y_dense = trace.y
    if loss in ("cross_entropy", "binary_cross_entropy"):
        expected = (top.a - y_dense) / n                        # fused δ(L) = (ŷ − y)/N
    else:
        grad_a = 2 * (top.a - y_dense) / n                      # ∇_A MSE = 2(ŷ − y)/N
        if output == "softmax":                                 # Jᵀg = a ⊙ (g − ⟨g, a⟩)
            expected = top.a * (grad_a - jnp.sum(grad_a * top.a, axis=1, keepdims=True))
        else:
            expected = grad_a * acts.get(output).derivative(top.z, top.a)
    np.testing.assert_allclose(top.delta, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("hidden,output,loss,drop_rate", CASES)
def test_gradients_equal_manual_mode_and_autodiff(x64, hidden, output, loss, drop_rate):
    net, params, x, y, key = _setup(hidden, output, loss, drop_rate)
    trace = fnn.backprop_trace(net, loss, params, x, y, key=key)
    value, manual = fnn.loss_and_grad(net, loss, params, x, y, mode="manual", key=key)
    chex.assert_trees_all_equal(trace.grads, manual)
    np.testing.assert_array_equal(trace.loss, value)
    _, auto = fnn.loss_and_grad(net, loss, params, x, y, mode="autodiff", key=key)
    chex.assert_trees_all_close(trace.grads, auto, rtol=1e-10, atol=1e-14)


def test_is_a_pytree_that_jits_and_indexes(x64):
    net, params, x, y, _ = _setup(("relu", "tanh"), "softmax", "cross_entropy", 0.0)
    trace = jax.jit(fnn.backprop_trace, static_argnums=(0, 1))(net, "cross_entropy", params, x, y)
    assert isinstance(trace, fnn.BackpropTrace) and isinstance(trace[0], fnn.LayerTrace)
    shapes = jax.tree.map(jnp.shape, trace)
    assert shapes.layers[0].z == (7, 5) and shapes.layers[0].dw == (3, 5)
    assert shapes.layers[2].db == (3,) and shapes.loss == ()
    assert trace.layers[-1] is trace[-1] and [t.z.shape[1] for t in trace] == [5, 4, 3]
    assert trace.activations == ("relu", "tanh", "softmax")
    assert trace.sizes == ((3,), (5,), (4,), (3,)) and trace.kinds == ("Dense",) * 3
    eager = fnn.backprop_trace(net, "cross_entropy", params, x, y)
    chex.assert_trees_all_close(trace.grads, eager.grads, rtol=1e-12)


def test_summary_table(x64):
    net, params, x, y, key = _setup(("relu", "sigmoid"), "softmax", "cross_entropy", 0.4)
    trace = fnn.backprop_trace(net, "cross_entropy", params, x, y, key=key)
    text = str(trace)
    assert text == trace.summary()
    lines = text.splitlines()
    assert "cross_entropy" in lines[0] and "batch 7" in lines[0]
    assert "network (3,) -> Dense(5, activation='relu') -> Dropout(rate=0.4)" in lines[1]
    header = lines[2].split()
    for col in ("layer", "type", "output", "activation", "|Z|", "|A|", "|delta|", "|dW|", "|db|",
                "slope", "saturated", "dead", "kept"):
        assert col in header
    body = lines[4:9]
    assert [row.split()[0] for row in body] == ["0", "1", "2", "3", "4"]
    assert body[0].split()[1:4] == ["Dense", "5", "relu"] and body[1].split()[1] == "Dropout"
    assert body[4].split()[3] == "softmax"
    rows = trace.rows()
    assert rows[0]["kept"] is None and 0 < rows[1]["kept"] < 1      # layer 2's input dropped
    assert rows[1]["|dW|"] is None and rows[1]["|Z|"] is None       # Dropout: no kernel, no Z
    assert rows[4]["dead"] is None and rows[4]["saturated"] is None  # softmax: no per-unit g'
    assert rows[0]["|dW|"] == pytest.approx(float(jnp.linalg.norm(trace[0].dw)))
    relu_z = np.asarray(trace[0].z)
    assert rows[0]["saturated"] == pytest.approx(np.mean(relu_z <= 0))
    assert rows[0]["dead"] == pytest.approx(np.mean(np.all(relu_z <= 0, axis=0)))


def test_one_example_and_bad_input(x64):
    net, params, x, y, _ = _setup(("relu", "relu"), "sigmoid", "mse", 0.0)
    one = fnn.backprop_trace(net, "mse", params, x[0], y[0])
    assert one[0].z.shape == (1, 5)
    first = fnn.backprop_trace(net, "mse", params, x[:1], y[:1])
    np.testing.assert_allclose(one[0].dw, first[0].dw)
    with pytest.raises(ValueError, match=r"x: shape \(7, 2\); expected a batch of shape \(batch, 3\)"):
        fnn.backprop_trace(net, "mse", params, x[:, :2], y)
    with pytest.raises(ValueError, match="requires a 'softmax' output"):
        fnn.backprop_trace(net, "cross_entropy", params, x, y)
