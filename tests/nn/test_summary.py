"""net.summary(): counts against jax.tree sizes, FLOPs against XLA's cost analysis, and the
fnn summary / fnn train CLI."""
import json
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
import fnn.nn.layers as L
from cli_helpers import CONFIGS, run_cli, write_config
from fnn import optim
from fnn.nn.summary import compiled_flops, xla_flops

NETS = {
    # configs/shapes_cnn.toml's network
    "shapes_cnn": lambda: fnn.Sequential(
        [L.Conv2D(16, 3, activation="relu"), L.MaxPool2D(2), L.Conv2D(32, 3, activation="relu"),
         L.MaxPool2D(2), L.Flatten(), L.Dense(64, activation="relu"),
         L.Dense(5, activation="softmax")], input_shape=(16, 16, 1)),
    "dense_stack": lambda: fnn.Sequential(
        [L.Dense(32, activation="tanh"), L.Dropout(0.2), L.Dense(32, activation="sigmoid"),
         L.Dense(16, activation="leaky_relu"), L.Dense(3, activation="softmax")],
        input_shape=(10,)),
    "residual_bn": lambda: fnn.Sequential(
        [L.Conv2D(8, 3, activation="relu"), L.Residual([L.Conv2D(8, 3, activation="relu"),
                                                        L.BatchNorm()]),
         L.MaxPool2D(2), L.Flatten(), L.Dense(4, activation="softmax")], input_shape=(12, 12, 3)),
    "pools_strides": lambda: fnn.Sequential(
        [L.Conv2D(8, 3, activation="relu"), L.BatchNorm(), L.AvgPool2D(2),
         L.Conv2D(6, 3, strides=2, padding="valid", activation="sigmoid"), L.GlobalAvgPool2D(),
         L.Dense(4)], input_shape=(12, 12, 3)),
    "layer_norm": lambda: fnn.Sequential(
        [L.Dense(16), L.LayerNorm(), L.Activation("relu"),
         L.Residual([L.Dense(16, activation="relu"), L.LayerNorm()]),
         L.Dense(2, activation="sigmoid")], input_shape=(8,)),
}
# Where XLA:CPU's optimized program does the model's arithmetic once. In the others it fuses a
# producer (the conv's patch GEMM and its activation) into several consumers and recomputes it:
# "pools_strides" compiles to 2.0x its arithmetic, "layer_norm" to 1.1x. There the reference is
# the program before optimization (the arithmetic the layers ask for).
COMPILED_MATCHES = ("shapes_cnn", "dense_stack", "residual_bn")


def _sizes(tree):
    leaves = jax.tree.leaves(tree)
    return sum(int(np.size(x)) for x in leaves), sum(int(x.nbytes) for x in leaves)


def _forward(net):
    return jax.jit(lambda p, s, x: net.apply(p, x, state=s))


def _lowered(net, batch):
    p = jax.eval_shape(net.init, jax.random.key(0))
    s = jax.eval_shape(net.init_state)
    return _forward(net).lower(p, s, jax.ShapeDtypeStruct((batch, *net.input_shape),
                                                          jnp.float32))


@pytest.mark.parametrize("name", sorted(NETS))
def test_counts_equal_the_trees(name):
    net = NETS[name]()
    opt = optim.adam(1e-3)
    s = net.summary(optimizer=opt, batch_size=16)
    params = net.init(jax.random.key(0))
    count, nbytes = _sizes(params)
    assert s.params == count == net.num_params() and s.param_bytes == nbytes
    assert s.state_bytes == _sizes(net.init_state())[1]
    assert s.optimizer_state_bytes == _sizes(opt.init(params))[1]
    top = [r for r in s.rows if r.depth == 0]
    assert len(top) == len(net.layers)
    for i, r in enumerate(top):
        assert r.params == _sizes(params[i])[0], r
        assert r.output_shape == net.shapes[i + 1]
        assert r.activation_bytes == math.prod(net.shapes[i + 1]) * 4
    assert sum(r.params for r in top) == count
    assert s.train_step_flops == 3 * 16 * s.forward_flops


@pytest.mark.parametrize("name", sorted(NETS))
def test_forward_flops_within_10_percent_of_xla(name):
    net = NETS[name]()
    s = net.summary()
    lowered = _lowered(net, 1)
    before = lowered.cost_analysis()
    before = before[0] if isinstance(before, (list, tuple)) else before
    assert s.forward_flops == pytest.approx(before["flops"], rel=0.10)
    if name in COMPILED_MATCHES:
        assert s.forward_flops == pytest.approx(compiled_flops(lowered.compile()), rel=0.10)
        per_example = compiled_flops(_lowered(net, 8).compile()) / 8
        assert s.forward_flops == pytest.approx(per_example, rel=0.10)


@pytest.mark.parametrize("layer, shape", [
    (L.Dense(10), (64,)), (L.Dense(10, activation="relu"), (64,)),
    (L.Dense(10, activation="sigmoid"), (64,)), (L.Dense(10, activation="tanh"), (64,)),
    (L.Dense(10, activation="softmax"), (64,)), (L.Dense(10, activation="leaky_relu"), (64,)),
    (L.Conv2D(8, 3, activation="relu"), (16, 16, 1)), (L.Conv2D(8, 3), (16, 16, 4)),
    (L.Conv2D(8, (3, 1), strides=2, padding="valid"), (16, 16, 4)),
    (L.MaxPool2D(2), (16, 16, 8)), (L.MaxPool2D(3, strides=1), (9, 9, 2)),
    (L.AvgPool2D(2), (16, 16, 8)), (L.GlobalAvgPool2D(), (4, 4, 8)),
    (L.BatchNorm(), (8, 8, 4)), (L.BatchNorm(), (32,)), (L.LayerNorm(), (32,)),
    (L.LayerNorm(), (4, 4, 8)), (L.Flatten(), (4, 4, 2)), (L.Activation("relu"), (32,)),
    (L.Activation("sigmoid"), (32,)),
])
def test_each_layer_formula_matches_xla(layer, shape):
    """The formula beside each layer family against XLA's count of that layer's forward."""
    p, s = jax.eval_shape(lambda: layer.init(jax.random.key(0), shape, jnp.float32))
    want = xla_flops(layer, shape, p, s, jnp.float32)
    assert layer.flops(shape) == pytest.approx(want, rel=0.10, abs=10)


@jax.tree_util.register_static
@dataclass(frozen=True)
class Square:
    """A user's layer without a flops method: Y = X ⊙ X."""

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def init(self, key, input_shape, dtype):
        return {}, {}

    def forward(self, params, state, x, *, key=None, training=False, drop_rate=None):
        return x * x, x, state

    def backward(self, params, cache, grad_out):
        return {}, 2 * cache * grad_out  # ∂(x²)/∂x = 2x


def test_a_layer_without_flops_gets_xlas_figure():
    net = fnn.Sequential([L.Dense(6), Square(), L.Residual([Square(), L.Dense(6)])],
                         input_shape=(4,))
    s = net.summary()
    by_path = {r.path: r for r in s.rows}
    assert by_path["1"].flops_from == "xla" and by_path["1"].flops == 6  # one multiply each
    assert by_path["2.0"].flops_from == "xla" and by_path["2.0"].flops == 6
    assert by_path["2"].flops_from == "formula"
    # a container: its own addition plus its inner rows
    assert by_path["2"].flops == 6 + by_path["2.0"].flops + by_path["2.1"].flops
    assert "* FLOPs from XLA's cost analysis" in str(s)


def test_table_indents_inner_layers_and_ends_with_totals():
    s = NETS["residual_bn"]().summary(optimizer=optim.sgd(0.1), batch_size=4)
    lines = str(s).splitlines()
    paths = [r.path for r in s.rows]
    assert paths == ["0", "1", "1.0", "1.1", "2", "3", "4"]
    inner = next(line for line in lines if "BatchNorm()" in line)
    outer = next(line for line in lines if line.startswith("1 "))
    assert inner.startswith("  1.1") and "Residual" in outer
    assert lines[-4].startswith("parameters: ") and "network state: 64 B" in lines[-4]
    assert lines[-3] == "optimizer state: 0 B"  # plain SGD keeps no state
    assert lines[-2].startswith("forward: ") and lines[-1].startswith("training step (batch 4)")
    assert json.loads(json.dumps(s.to_dict()))["rows"][2]["path"] == "1.0"


@pytest.mark.parametrize("batch", [0, -1, 2.5, True])
def test_bad_batch_size(batch):
    with pytest.raises(ValueError, match=r"^batch_size: .*; expected a positive integer"):
        NETS["dense_stack"]().summary(batch_size=batch)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
SMALL = ["--set", "data.n_samples=200", "--set", "training.epochs=1", "--set",
         "output.progress=false"]


def test_fnn_summary_of_a_config():
    rc, out, err = run_cli("summary", CONFIGS / "shapes_cnn.toml")
    assert rc == 0, err
    net = NETS["shapes_cnn"]()
    s = net.summary(optimizer=optim.adam(3e-3), batch_size=64)
    assert out.splitlines()[0].startswith("summary: ") and str(s) in out
    assert f"parameters: {net.num_params():,}" in out
    rc, out, err = run_cli("summary", CONFIGS / "shapes_cnn.toml", "--json", "--set",
                           "training.batch_size=8")
    assert rc == 0, err
    d = json.loads(out)
    assert d["params"] == net.num_params() and d["batch_size"] == 8
    assert d["forward_flops"] == s.forward_flops and len(d["rows"]) == len(net.layers)


@pytest.mark.slow
def test_fnn_train_prints_it_unless_quiet_and_summary_of_a_run_dir(tmp_path):
    out = tmp_path / "run"
    rc, stdout, err = run_cli("train", CONFIGS / "shapes_cnn.toml", "--out", out, *SMALL)
    assert rc == 0, err
    table = stdout.index("output shape")
    assert table < stdout.index("run directory:") and "parameters: 37,957" in stdout
    rc, from_dir, err = run_cli("summary", out)
    assert rc == 0, err
    rc, from_cfg, err = run_cli("summary", CONFIGS / "shapes_cnn.toml", *SMALL)
    assert from_dir.splitlines()[1:] == from_cfg.splitlines()[1:]
    rc, stdout, err = run_cli("train", CONFIGS / "shapes_cnn.toml", "--out", out, "--quiet",
                              "--overwrite", *SMALL)
    assert rc == 0 and stdout == "", stdout + err


@pytest.mark.parametrize("args, message", [
    (["nope.toml"], "nope.toml"),
    (["{tmp}"], "is not a run directory"),
    (["{run}", "--set", "training.epochs=3"], "--set applies to a config file"),
    (["{cfg}", "--set", "model.layers=[{type='dense', units=0}]"], "model.layers[0]"),
])
def test_fnn_summary_errors_are_one_line(tmp_path, args, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text((CONFIGS / "shapes_cnn.toml").read_text())
    cfg = write_config(tmp_path / "c.toml", (CONFIGS / "shapes_cnn.toml").read_text())
    places = {"{tmp}": str(tmp_path / "empty"), "{run}": str(run), "{cfg}": str(cfg)}
    args = [places.get(a, a) for a in args]
    (tmp_path / "empty").mkdir()
    rc, out, err = run_cli("summary", *args)
    assert rc == 2 and message in err and err.count("\n") == 1, err
