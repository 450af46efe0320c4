"""The declared network protocol: the engine and the analysis need a :class:`fnn.Network` and
nothing more.

``Softmax regression`` below implements exactly the protocol's members (with its hand-written
backward, ∂L/∂W = Xᵀ (ŷ − y)/N), and refuses any other attribute: training it through the
Trainer and ``make_train_step``, tracing it and gradchecking it would fail on the first probe
of a name the protocol does not declare.
"""
from __future__ import annotations

import ast
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.nn.protocol import LayerView, Network

PROTOCOL_MEMBERS = {name for name in dir(Network) if not name.startswith("_")} | set(
    Network.__annotations__)


class SoftmaxRegression:
    """ŷ = softmax(X W + b): the protocol's members, and nothing else."""

    dtype = "float32"
    output = "softmax"
    drop_rate = 0.0
    manual_backward = True
    integer_inputs = False  # float features, not token ids

    def __init__(self, features: int, classes: int):
        self.input_shape, self.output_shape = (features,), (classes,)

    def __getattribute__(self, name):
        if not name.startswith("__") and name not in PROTOCOL_MEMBERS:
            raise AssertionError(f"the engine asked the network for {name!r}, which the Network"
                                 f" protocol does not declare")
        return object.__getattribute__(self, name)

    def init(self, key):
        w = 0.1 * jax.random.normal(key, self.input_shape + self.output_shape)
        return ({"w": w, "b": jnp.zeros(self.output_shape)},)

    def init_state(self):
        return ()

    def forward_state(self, params, state, x, *, key=None, drop_rate=None, training=True):
        z = x @ params[0]["w"] + params[0]["b"][None, :]
        y = jax.nn.softmax(z)
        return y, (x, z, y), state

    def apply(self, params, x, *, key=None, drop_rate=None, state=None):
        return self.forward_state(params, (), x)[0]

    def output_logits(self, caches):
        return caches[1]

    def backward_deltas(self, params, caches, loss, y):
        x, _, y_hat = caches
        delta = (y_hat - y) / x.shape[0]  # fused softmax + cross-entropy: δ = (ŷ − y)/N
        return ({"w": x.T @ delta, "b": jnp.sum(delta, axis=0)},), (delta,)

    def backward(self, params, caches, loss, y):
        return self.backward_deltas(params, caches, loss, y)[0]

    def vjp(self, params, caches, grad_out):
        raise NotImplementedError

    def uses_dropout(self, drop_rate):
        return False

    def param_layers(self):
        return ((0, "Linear"),)

    def layer_views(self, caches):
        x, z, y = caches
        return (LayerView("Linear", "softmax", z, y, None, self.output_shape),)

    def kink_patterns(self, caches):
        return []

    def check_input(self, x):
        if tuple(np.shape(x))[1:] != self.input_shape:
            raise ValueError(f"x: shape {np.shape(x)}; expected (batch, {self.input_shape[0]})")

    def check_params(self, params):
        pass

    def unrolled(self, params):
        return self, params, None  # one linear map: no blocks to unroll

    def replace(self, **changes):
        new = SoftmaxRegression(*self.input_shape, *self.output_shape)
        object.__setattr__(new, "dtype", changes.get("dtype", self.dtype))
        return new

    def describe(self):
        return f"SoftmaxRegression{self.input_shape} -> {self.output_shape}"


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
    return x, y


def test_the_minimal_network_is_a_network_and_fnns_containers_are_too():
    assert isinstance(SoftmaxRegression(3, 3), Network)
    assert isinstance(fnn.MLP((3, 4, 2)), fnn.Network)
    assert isinstance(fnn.Sequential([fnn.layers.Dense(2)], input_shape=(3,)), fnn.Network)
    assert not isinstance(object(), Network)


@pytest.mark.parametrize("grad", ["manual", "autodiff"])
def test_a_network_with_only_the_protocol_trains(grad):
    x, y = _data()
    net = SoftmaxRegression(3, 3)
    trainer = fnn.Trainer(net, "cross_entropy", fnn.optim.sgd(0.5), (x, y), epochs=20,
                          batch_size=16, grad=grad, diagnostics=True)
    state, hist = trainer.train(jax.random.key(0))
    assert hist["train_loss"][-1] < 0.7 * hist["train_loss"][0]
    assert np.isfinite(np.asarray(hist["grad_norm/layer1"])).all()
    step = fnn.make_train_step(net, "cross_entropy", fnn.optim.sgd(0.5), grad=grad)
    s0 = fnn.TrainState.create(net, fnn.optim.sgd(0.5), key=jax.random.key(0))
    s1, m = step(s0, (x[:16], y[:16]))
    assert float(m["loss"]) > 0 and int(s1.step) == 1


def test_manual_and_autodiff_agree_and_the_analysis_runs(x64):
    x, y = _data(8)
    net = SoftmaxRegression(3, 3).replace(dtype="float64")
    params = jax.tree.map(lambda a: a.astype(jnp.float64), net.init(jax.random.key(1)))
    x = x.astype(np.float64)
    _, gm = fnn.loss_and_grad(net, "cross_entropy", params, x, y, mode="manual")
    _, ga = fnn.loss_and_grad(net, "cross_entropy", params, x, y, mode="autodiff")
    chex.assert_trees_all_close(gm, ga, rtol=1e-12)
    trace = fnn.backprop_trace(net, "cross_entropy", params, x, y)
    assert trace.kinds == ("Linear",) and "Linear" in str(trace)
    report = fnn.gradcheck(net, "cross_entropy", params, x, y)
    assert report.passed


def test_a_user_network_is_wrapped_into_a_network_once():
    class Linear:  # init / apply only
        def init(self, key):
            return {"w": jnp.zeros((3, 3))}

        def apply(self, params, x, *, key=None):
            return x @ params["w"]

    from fnn.nn.adapter import AutodiffNetwork, as_network

    wrapped = as_network(Linear(), input_shape=(3,))
    assert isinstance(wrapped, AutodiffNetwork) and isinstance(wrapped, Network)
    assert as_network(wrapped) is wrapped and not wrapped.manual_backward
    with pytest.raises(ValueError, match="grad: 'manual' needs a network with a hand-written"):
        fnn.make_train_step(Linear(), "mse", fnn.optim.sgd(0.1), input_shape=(3,))
    with pytest.raises(ValueError, match="the input shape of Linear is unknown"):
        fnn.make_train_step(Linear(), "mse", fnn.optim.sgd(0.1), grad="autodiff")


ENGINE_AND_ANALYSIS = [p for folder in ("engine", "analysis")
                       for p in sorted((Path(fnn.__file__).parent / folder).glob("*.py"))]


@pytest.mark.parametrize("path", ENGINE_AND_ANALYSIS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_engine_and_analysis_do_not_probe_networks_or_layers(path):
    """No hasattr/getattr on a network, a layer or a cache: they call the protocol."""
    probes = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("hasattr", "getattr") and node.args):
            target = ast.unparse(node.args[0])
            if any(word in target for word in ("net", "layer", "cache", "wrapped")):
                probes.append(f"{node.lineno}: {ast.unparse(node)}")
    assert not probes, probes
