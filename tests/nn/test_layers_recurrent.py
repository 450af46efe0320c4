"""LSTM and SimpleRNN: manual reverse-scan backward vs jax.vjp (float64, 1e-9) over random sizes
and lengths, both output modes; the forward against a NumPy loop and against torch.nn.LSTM on
copied weights; central differences; one-line errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.nn.layers import LSTM, SimpleRNN
from fnn.nn.sequential import Sequential
from grad_helpers import jit
from layer_helpers import central_difference_check, check_layer, rand_like_tree


@settings(max_examples=8)
@given(units=st.integers(1, 4), features=st.integers(1, 3), time=st.integers(1, 5),
       batch=st.integers(1, 2), seq=st.booleans(), seed=st.integers(0, 99))
def test_lstm_backward_matches_autodiff(units, features, time, batch, seq, seed):
    with jax.enable_x64(True):
        check_layer(LSTM(units, return_sequences=seq), (time, features), seed=seed, batch=batch)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "identity"])
@pytest.mark.parametrize("seq", [True, False])
def test_simple_rnn_backward_matches_autodiff(x64, activation, seq):
    check_layer(SimpleRNN(3, activation, return_sequences=seq), (4, 2), seed=5, batch=2)


def numpy_lstm(w, b, x, units):
    """A loop over time, gates i, f, g, o in that order."""
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    bsz, t, d = x.shape
    h, c, out = np.zeros((bsz, units)), np.zeros((bsz, units)), []
    for s in range(t):
        a = np.concatenate([x[:, s], h], axis=1) @ w + b
        i, f, g, o = np.split(a, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("units,features,time", [(3, 2, 5), (1, 4, 2), (5, 1, 1)])
def test_lstm_forward_matches_a_numpy_loop(x64, units, features, time):
    layer = LSTM(units)
    rng = np.random.default_rng(units)
    params = rand_like_tree(layer.init(jax.random.key(0), (time, features), jnp.float64)[0], rng)
    x = rng.normal(size=(2, time, features))
    y = jit(lambda p, x: layer.forward(p, {}, x)[0])(params, x)
    want = numpy_lstm(np.asarray(params["w"]), np.asarray(params["b"]), x, units)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    last = jit(lambda p, x: LSTM(units, return_sequences=False).forward(p, {}, x)[0])(params, x)
    np.testing.assert_allclose(last, want[:, -1], rtol=1e-12, atol=1e-12)


def test_lstm_matches_torch_on_copied_weights(x64):
    torch = pytest.importorskip("torch")
    d, h, t, bsz = 3, 4, 6, 2
    ref = torch.nn.LSTM(d, h, batch_first=True).double()
    x = np.random.default_rng(0).normal(size=(bsz, t, d))
    with torch.no_grad():
        want, (h_n, _) = ref(torch.from_numpy(x))
    w_ih, w_hh = ref.weight_ih_l0.detach().numpy(), ref.weight_hh_l0.detach().numpy()
    params = {"w": jnp.asarray(np.concatenate([w_ih.T, w_hh.T], axis=0)),
              "b": jnp.asarray((ref.bias_ih_l0 + ref.bias_hh_l0).detach().numpy())}
    assert params["w"].shape == (d + h, 4 * h)
    y = LSTM(h).forward(params, {}, jnp.asarray(x))[0]
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-10, atol=1e-12)
    last = LSTM(h, return_sequences=False).forward(params, {}, jnp.asarray(x))[0]
    np.testing.assert_allclose(last, h_n[0].numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layer", [LSTM(3), SimpleRNN(2, return_sequences=False)])
def test_recurrent_central_differences(x64, layer):
    rng = np.random.default_rng(9)
    params = rand_like_tree(layer.init(jax.random.key(0), (4, 2), jnp.float64)[0], rng)
    x = rng.normal(size=(2, 4, 2))
    w = rng.normal(size=(2,) + layer.output_shape((4, 2)))

    @jit
    def f(p):
        return jnp.sum(w * layer.forward(p, {}, x)[0])

    @jit
    def manual(p):
        _, cache, _ = layer.forward(p, {}, x)
        return layer.backward(p, cache, jnp.asarray(w))[0]

    central_difference_check(f, params, manual(params))


def test_params_layout_and_output_shapes():
    params, state = LSTM(5).init(jax.random.key(0), (7, 3), jnp.float32)
    assert params["w"].shape == (8, 20) and params["b"].shape == (20,) and state == {}
    assert float(jnp.max(jnp.abs(params["w"]))) <= 1 / np.sqrt(5)
    assert SimpleRNN(4).init(jax.random.key(0), (7, 3), jnp.float32)[0]["w"].shape == (7, 4)
    assert LSTM(5).output_shape((7, 3)) == (7, 5)
    assert LSTM(5, return_sequences=False).output_shape((7, 3)) == (5,)


@pytest.mark.parametrize("make,match", [
    (lambda: LSTM(0), r"^units: 0; expected a positive integer$"),
    (lambda: LSTM(3, return_sequences="no"), r"^return_sequences: 'no'; expected True or False$"),
    (lambda: SimpleRNN(3, "softmax"), r"^activation: 'softmax'; expected an element-wise"),
    (lambda: SimpleRNN(3, "swish"), r"^unknown activation 'swish'"),
    (lambda: Sequential([LSTM(3)], input_shape=(4,)),
     r"^layers\[0\] \(LSTM\): got input shape \(4,\); expected a 2-d input \(time, features\)$"),
])
def test_construction_and_shape_errors_are_one_line(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)
