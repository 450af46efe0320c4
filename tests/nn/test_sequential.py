"""Sequential: shape inference and its one-line errors, the network protocol, random stacks of
layers (manual backward vs jax.grad of the same loss, float64), equivalence with MLP, BatchNorm
state through the container, L1/L2 on nested params."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn.nn import losses, regularizers
from fnn.nn.layers import (Activation, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten,
                           GlobalAvgPool2D, LayerNorm, MaxPool2D, Residual, dropout_mask)
from fnn.nn.sequential import Sequential
from grad_helpers import jit, np_params
from layer_helpers import assert_rel_close, rand_like_tree

CE = losses.get("cross_entropy")


def _random_params(net, seed=0):
    return rand_like_tree(jax.eval_shape(net.init, jax.random.key(0)), np.random.default_rng(seed))


def _manual_and_autodiff(net, loss, params, state, x, y, key=None):
    @jit
    def run(params, state, x, y, key):
        def objective(p):
            y_hat, caches, _ = net.forward_state(p, state, x, key=key)
            return loss.value(net.output_logits(caches), y_hat, y)

        y_hat, caches, _ = net.forward_state(params, state, x, key=key)
        return net.backward(params, caches, loss, y), jax.grad(objective)(params)

    return run(params, state, x, y, key)


# --- shape inference and its errors ----------------------------------------------------------------

SHAPE_ERRORS = [
    ([Residual([Conv2D(8, 3)])], (6, 6, 4),
     r"^layers\[0\] \(Residual\): inner layers\[0\] \(Conv2D\) maps \(6, 6, 4\) to \(6, 6, 8\);"
     r" expected the residual's input shape \(6, 6, 4\)"),
    ([Conv2D(2, 3, padding="valid"), MaxPool2D(3)], (4, 4, 1),
     r"^layers\[1\] \(MaxPool2D\): got input shape \(2, 2, 2\); expected height >= 3 and width >= 3"),
    ([Dense(4, "softmax"), Dense(2)], (3,),
     r"^layers\[0\] \(Dense\): activation 'softmax' is only allowed in the last layer"),
    ([Residual([Activation("softmax")]), Flatten()], (2, 2, 3),
     r"^layers\[0\]\.layers\[0\] \(Activation\): activation 'softmax' is only allowed"),
    ([Flatten(), Conv2D(2, 3)], (5, 5, 1),
     r"^layers\[1\] \(Conv2D\): got input shape \(25,\); expected a 3-d input"),
    (["dense"], (3,), r"^layers\[0\] \(str\): 'dense' is not a layer"),
    ([Residual([MaxPool2D(9)])], (4, 4, 1),
     r"^layers\[0\] \(Residual\): layers\[0\] \(MaxPool2D\): got input shape \(4, 4, 1\)"),
    ([GlobalAvgPool2D()], (4,), r"^layers\[0\] \(GlobalAvgPool2D\): got input shape \(4,\)"),
]


@pytest.mark.parametrize("layers,input_shape,match", SHAPE_ERRORS)
def test_shape_errors_name_index_type_and_shape(layers, input_shape, match):
    with pytest.raises(ValueError, match=match) as info:
        Sequential(layers, input_shape=input_shape)
    assert "\n" not in str(info.value)


# Arguments are checked when the layer is constructed (issue 23), not when the Sequential is
# built: one line naming the argument and its value.
CONSTRUCTOR_ERRORS = [
    (lambda: Dense(0), r"^units: 0; expected a positive integer$"),
    (lambda: Dense(-3), r"^units: -3; expected a positive integer$"),
    (lambda: Dense(2.5), r"^units: 2.5; expected a positive integer$"),
    (lambda: Dense(3, "swish"), r"^activation: unknown activation 'swish'; expected one of"),
    (lambda: Dense(3, initializer="bad"), r"^initializer: unknown initializer 'bad'"),
    (lambda: Conv2D(0), r"^filters: 0; expected a positive integer$"),
    (lambda: Conv2D(2, 0), r"^kernel_size: 0; expected a positive int or a pair of them$"),
    (lambda: Conv2D(2, 3, strides=(1, 0)), r"^strides: \(1, 0\); expected a positive int"),
    (lambda: Conv2D(2, 3, padding="full"), r"^padding: 'full'; expected one of: same, valid$"),
    (lambda: Conv2D(2, 3, activation=["relu"]), r"^activation: unknown activation \['relu'\]"),
    (lambda: MaxPool2D(0), r"^pool_size: 0; expected a positive int or a pair of them$"),
    (lambda: MaxPool2D(2, backward_formulation="x"), r"^backward_formulation: 'x'; expected"),
    (lambda: AvgPool2D(2, strides=-1), r"^strides: -1; expected a positive int"),
    (lambda: Dropout(1.0), r"^rate: 1.0; expected a probability in \[0, 1\)$"),
    (lambda: Dropout(-0.1), r"^rate: -0.1; expected a probability in \[0, 1\)$"),
    (lambda: Dropout(float("nan")), r"^rate: nan; expected a probability"),
    (lambda: BatchNorm(momentum=2), r"^momentum: 2; expected a number in \[0, 1\]$"),
    (lambda: LayerNorm(eps=0), r"^eps: 0; expected a positive finite number$"),
    (lambda: LayerNorm(eps=float("inf")), r"^eps: inf; expected a positive finite number$"),
    (lambda: Activation("nope"), r"^activation: unknown activation 'nope'"),
]


@pytest.mark.parametrize("make,match", CONSTRUCTOR_ERRORS)
def test_layer_arguments_are_checked_at_construction(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def _small_cnn(filters=4):
    return Sequential([Conv2D(filters, 3, activation="relu"), Flatten(), Dense(3)],
                      input_shape=(8, 8, 1))


@pytest.mark.parametrize("params_of,match", [
    # one entry short: apply used to return the Flatten output (2, 256)
    (lambda net: net.init(jax.random.key(0))[:-1],
     r"^params: 2 entries; expected a tuple of 3 entries, one per layer \(none for layers\[2\] "
     r"\(Dense\)\)$"),
    # another network's params: used to run (Conv2D(5) then a (320, 3) Dense) without a word
    (lambda net: _small_cnn(5).init(jax.random.key(1)),
     r"^params\[0\]\['b'\]: shape \(5,\); expected \(4,\) for layers\[0\] \(Conv2D\)$"),
    (lambda net: {"w": 1}, r"^params: a dict; expected a tuple of 3 entries"),
])
def test_apply_refuses_params_that_do_not_fit(params_of, match):
    net = _small_cnn()
    with pytest.raises(ValueError, match=match):
        net.apply(params_of(net), np.zeros((2, 8, 8, 1), np.float32))


def test_apply_refuses_an_empty_batch_in_one_line():
    net = _small_cnn()  # was a ZeroDivisionError from inside JAX
    with pytest.raises(ValueError, match=r"^x: shape \(0, 8, 8, 1\) is an empty batch; expected "
                                         r"at least one example"):
        net.apply(net.init(jax.random.key(0)), np.zeros((0, 8, 8, 1), np.float32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_shape=(0, 3)), r"input_shape: \(0, 3\); expected a tuple of positive ints"),
    (dict(input_shape=(3,), dtype="int32"), r"dtype: 'int32'; expected one of"),
])
def test_bad_container_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Sequential([Dense(2)], **kwargs)


def test_shapes_inferred_params_state_and_description():
    net = Sequential([Conv2D(4, 3, activation="relu"), BatchNorm(), MaxPool2D(2),
                      Residual([Conv2D(4, 3, activation="tanh"), LayerNorm()]), Dropout(0.25),
                      Flatten(), Dense(10, "softmax")], input_shape=(8, 8, 1))
    assert net.shapes == ((8, 8, 1), (8, 8, 4), (8, 8, 4), (4, 4, 4), (4, 4, 4), (4, 4, 4), (64,),
                          (10,))
    assert net.output_shape == (10,) and net.output == "softmax"
    assert net.drop_rate is None and net.dropout_rates() == (0.25,)  # each layer its own rate
    assert net == Sequential(list(net.layers), input_shape=[8, 8, 1]) and hash(net) == hash(
        Sequential(net.layers, input_shape=(8, 8, 1)))
    params = jax.eval_shape(net.init, jax.random.key(0))
    assert params[0]["w"].shape == (3, 3, 1, 4) and params[2] == {} and params[4] == {}
    assert isinstance(params[3], tuple) and params[3][1]["scale"].shape == (4,)
    assert net.param_layers() == ((0, "Conv2D"), (1, "BatchNorm"), (3, "Residual"), (6, "Dense"))
    assert net.num_params() == sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    state = net.init_state()
    assert state[0] == {} and set(state[1]) == {"mean", "var"} and state[3] == ({}, {})
    real = net.init(jax.random.key(1))
    net.check_params(real)
    assert not np.allclose(real[0]["w"].ravel()[:4], real[3][0]["w"].ravel()[:4])
    with pytest.raises(ValueError, match=r"params\[6\]\['w'\]: shape \(64, 9\); expected \(64, 10\)"
                                         r" for layers\[6\] \(Dense\)"):
        net.check_params(real[:6] + ({"w": np.zeros((64, 9)), "b": np.zeros(10)},))
    with pytest.raises(ValueError, match=r"x: shape \(2, 8, 8\); expected a batch of shape"
                                         r" \(batch, 8, 8, 1\)"):
        net.check_input(np.zeros((2, 8, 8)))
    bad = np.zeros((1, 8, 8, 1))
    bad[0, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"x: 1 non-finite value.*first at index \(0, 2, 3, 0\)"):
        net.check_input(bad)


# --- random stacks: manual vs autodiff -------------------------------------------------------------

@st.composite
def stacks(draw):
    h = draw(st.integers(4, 7))
    w = draw(st.integers(4, 7))
    c = draw(st.integers(1, 2))
    shape = (h, w, c)
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "maxpool", "avgpool", "bn", "ln", "residual",
                                     "dropout"]))
        if kind == "conv":
            layer = Conv2D(draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 3, (2, 3)])),
                           draw(st.sampled_from([1, 2])), draw(st.sampled_from(["same", "valid"])),
                           activation=draw(st.sampled_from(["tanh", "sigmoid", "identity"])),
                           formulation=draw(st.sampled_from(["im2col", "xla"])))
        elif kind in ("maxpool", "avgpool"):
            cls = MaxPool2D if kind == "maxpool" else AvgPool2D
            layer = cls(draw(st.sampled_from([2, (2, 1)])), draw(st.sampled_from([None, 1])))
        elif kind == "bn":
            layer = BatchNorm()
        elif kind == "ln":
            layer = LayerNorm()
        elif kind == "dropout":
            layer = Dropout(0.3)
        else:
            layer = Residual([Conv2D(shape[2], 3, activation="tanh"),
                              draw(st.sampled_from([BatchNorm(), LayerNorm()]))])
        try:
            new_shape = layer.output_shape(shape)
        except ValueError:
            continue                                   # too small for it: skip this layer
        layers.append(layer)
        shape = new_shape
    layers.append(draw(st.sampled_from([Flatten(), GlobalAvgPool2D()])))
    if draw(st.booleans()):
        layers.append(Dense(4, "tanh"))
    layers.append(Dense(3, "softmax"))
    return Sequential(layers, input_shape=(h, w, c), dtype="float64")


@settings(max_examples=12)
@given(net=stacks(), seed=st.integers(0, 3))
def test_random_stacks_manual_backward_matches_autodiff(net, seed):
    with jax.enable_x64(True):
        rng = np.random.default_rng(seed)
        params = _random_params(net, seed)
        x = rng.normal(size=(4,) + net.input_shape)
        y = np.eye(3)[rng.integers(0, 3, size=4)]
        manual, auto = _manual_and_autodiff(net, CE, params, net.init_state(), x, y,
                                            key=jax.random.key(seed))
        assert_rel_close(manual, auto)


@pytest.mark.parametrize("training", [True, False])
def test_identity_top_and_vjp(x64, training):
    # no activation on the last layer: the backward starts from ∇_ŷ L (MSE here)
    net = Sequential([Dense(4, "tanh"), BatchNorm()], input_shape=(3,), dtype="float64")
    assert net.output == "identity"
    rng = np.random.default_rng(0)
    params, x, y = _random_params(net), rng.normal(size=(5, 3)), rng.normal(size=(5, 4))
    state = ({}, {"mean": rng.normal(size=4), "var": rng.uniform(0.5, 2, size=4)})
    mse = losses.get("mse")

    @jit
    def run(params):
        def objective(p):
            y_hat, caches, _ = net.forward_state(p, state, x, training=training)
            return mse.value(net.output_logits(caches), y_hat, y)

        y_hat, caches, _ = net.forward_state(params, state, x, training=training)
        g = rng_g
        _, vjp = jax.vjp(lambda p, x: net.forward_state(p, state, x, training=training)[0],
                         params, x)
        return (net.backward(params, caches, mse, y), jax.grad(objective)(params),
                net.vjp(params, caches, g)[:2], vjp(g), net.output_logits(caches), y_hat)

    rng_g = rng.normal(size=(5, 4))
    manual, auto, vjp_manual, vjp_auto, logits, y_hat = run(params)
    assert_rel_close(manual, auto)
    assert_rel_close(vjp_manual, vjp_auto)
    chex.assert_trees_all_equal(logits, y_hat)


# --- Sequential of Dense layers == MLP ------------------------------------------------------------

def test_sequential_of_dense_equals_mlp(x64):
    mlp = fnn.MLP(sizes=(4, 6, 5, 3), activation="tanh", output="softmax", dtype="float64")
    seq = Sequential([Dense(6, "tanh"), Dense(5, "tanh"), Dense(3, "softmax")], input_shape=(4,),
                     dtype="float64")
    params = np_params(mlp, 2)
    seq.check_params(params)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 4)), np.eye(3)[rng.integers(0, 3, size=7)]

    @jit
    def run(params):
        out = []
        for net in (mlp, seq):
            y_hat, caches, state = net.forward_state(params, net.init_state(), x)
            out.append((y_hat, net.output_logits(caches), net.backward(params, caches, CE, y)))
        return out

    (m, s) = run(params)
    chex.assert_trees_all_close(m, s, rtol=1e-13, atol=1e-15)
    chex.assert_trees_all_equal(jax.eval_shape(mlp.init, jax.random.key(0)),
                                jax.eval_shape(seq.init, jax.random.key(0)))
    assert seq.num_params() == mlp.num_params() and seq.param_layers() == mlp.param_layers()


def test_mlp_network_protocol():
    net = fnn.MLP(sizes=(3, 4, 2), output="softmax", drop_rate=0.5)
    assert isinstance(net, Sequential) and isinstance(net, fnn.Network)
    assert net.input_shape == (3,) and net.output_shape == (2,) and net.init_state() == ({},) * 3
    params = np_params(net)
    x = np.ones((2, 3), np.float32)
    y, caches, state = net.forward_state(params, net.init_state(), x, key=jax.random.key(0))
    assert state == ({},) * 3 and caches[1] is not None        # the Dropout layer's mask
    chex.assert_trees_all_equal(y, net.apply(params, x, key=jax.random.key(0)))
    chex.assert_trees_all_equal(net.output_logits(caches), caches[-1].z)
    _, caches, _ = net.forward_state(params, net.init_state(), x, key=jax.random.key(0),
                                     training=False)
    assert caches[1] is None
    assert net.param_layers() == ((0, "Dense"), (2, "Dense"))


# --- state and dropout through the container -------------------------------------------------------

def test_batchnorm_state_through_sequential(x64):
    net = Sequential([BatchNorm(momentum=0.5), Flatten()], input_shape=(2, 2, 3), dtype="float64")
    params = net.init(jax.random.key(0))
    x = np.random.default_rng(0).normal(loc=1.0, size=(6, 2, 2, 3))
    _, _, state = net.forward_state(params, net.init_state(), x)
    state = jax.tree.map(np.asarray, state)
    np.testing.assert_allclose(state[0]["mean"], 0.5 * x.mean(axis=(0, 1, 2)), rtol=1e-12)
    eval_out = net.apply(params, x, state=state)          # no key: running statistics
    want = (x - state[0]["mean"]) / np.sqrt(state[0]["var"] + 1e-5)
    np.testing.assert_allclose(eval_out, want.reshape(6, -1), rtol=1e-10)
    train_out = net.apply(params, x, key=jax.random.key(0), state=state)   # batch statistics
    np.testing.assert_allclose(train_out, net.apply(params, x, key=jax.random.key(1)), rtol=1e-12)


def test_dropout_keys_fold_in_the_layer_index():
    net = Sequential([Dense(5), Dropout(0.5), Residual([Dropout(0.2)]), Dense(3)],
                     input_shape=(4,))
    assert net.drop_rate is None and net.dropout_rates() == (0.5, 0.2)
    assert net.uses_dropout(None) and net.uses_dropout(0.1) and not net.uses_dropout(0.0)
    params, x, key = net.init(jax.random.key(0)), jnp.ones((2, 4)), jax.random.key(7)
    _, caches, _ = net.forward_state(params, net.init_state(), x, key=key)
    sub = jax.random.fold_in(key, 2)
    chex.assert_trees_all_equal(caches.layers[1], dropout_mask(jax.random.fold_in(key, 1), (2, 5),
                                                               0.5, jnp.float32))
    chex.assert_trees_all_equal(caches.layers[2][0], dropout_mask(jax.random.fold_in(sub, 0),
                                                                  (2, 5), 0.2, jnp.float32))
    _, caches, _ = net.forward_state(params, net.init_state(), x, key=key, drop_rate=0.0)
    assert caches.layers[1] is None
    chex.assert_trees_all_equal(net.apply(params, x), net.apply(params, x, state=net.init_state()))


# --- L1 / L2 on every kernel, never on biases or normalization params ------------------------------

def test_penalties_apply_to_every_w_leaf_only(x64):
    net = Sequential([Conv2D(2, 3), BatchNorm(), Residual([Conv2D(2, 1), LayerNorm()]),
                      MaxPool2D(2), Flatten(), Dense(3)], input_shape=(4, 4, 1), dtype="float64")
    params = _random_params(net, 1)
    ws = [params[0]["w"], params[2][0]["w"], params[5]["w"]]
    l1, l2 = 0.3, 0.05
    value = regularizers.penalty(params, l1=l1, l2=l2)
    want = l1 * sum(np.abs(w).sum() for w in ws) + l2 * sum((w ** 2).sum() for w in ws)
    np.testing.assert_allclose(value, want, rtol=1e-12)
    grads = regularizers.penalty_grad(params, l1=l1, l2=l2)
    chex.assert_trees_all_close(grads, jax.grad(lambda p: regularizers.penalty(p, l1=l1, l2=l2))(params),
                                rtol=1e-12)
    for leaf in (grads[0]["b"], grads[1]["scale"], grads[1]["bias"], grads[2][1]["scale"],
                 grads[5]["b"]):
        np.testing.assert_array_equal(leaf, np.zeros_like(leaf))
    assert grads[3] == {} and regularizers.penalty_grad(params) is None
    assert float(regularizers.penalty(({}, {"scale": np.ones(2), "bias": np.ones(2)}), l2=1.0)) == 0.0


class _CountingDense(Dense):
    """A Dense whose ``init`` also returns a state (and which has no ``init_state``)."""

    def init(self, key, input_shape, dtype):
        params, _ = super().init(key, input_shape, dtype)
        return params, {"seen": jnp.full((self.units,), 7.0, dtype)}


def test_init_state_draws_no_parameters(monkeypatch):
    """A stateless layer's state comes from an abstract trace of its ``init``: no random draw
    (no compiled program) runs; a layer whose ``init`` returns a state still gets it."""
    concrete = []
    real_init = Dense.init

    def spy(self, key, input_shape, dtype):
        concrete.append((type(self).__name__, not isinstance(key, jax.core.Tracer)))
        return real_init(self, key, input_shape, dtype)

    monkeypatch.setattr(Dense, "init", spy)
    net = Sequential([Dense(4, activation="relu"), BatchNorm(), _CountingDense(2)],
                     input_shape=(3,))
    state = net.init_state()
    assert ("Dense", True) not in concrete, concrete     # the plain Dense was only traced
    assert state[0] == {} and set(state[1]) == {"mean", "var"}
    chex.assert_trees_all_equal(state[2], {"seen": jnp.full((2,), 7.0, jnp.float32)})
