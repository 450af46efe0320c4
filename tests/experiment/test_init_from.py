"""Fine-tuning in Python: ``Trainer.init(params=, net_state=)`` with drawn subtrees, the layer
selection grammar, and :func:`fnn.experiment.init_from.load` from finished runs (parameters,
BatchNorm state, a sweep's best member) with its one-line errors."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from cli_helpers import BLOBS_TOML, CONFIGS, run_cli, shrink_args, write_config
from fnn.engine.state import fill
from fnn.experiment import init_from
from fnn.experiment.layer_selection import parse_layers, spec_error, spec_of
from fnn.nn import layers as L
from model_runs import trained

BN_CNN = """
[data]
name = "shapes"
n_samples = 200
val_fraction = 0.2
[[model.layers]]
type = "conv2d"
filters = 4
kernel_size = 3
[[model.layers]]
type = "batch_norm"
[[model.layers]]
type = "activation"
name = "relu"
[[model.layers]]
type = "flatten"
[optimizer]
name = "adam"
learning_rate = 0.01
[training]
epochs = 2
batch_size = 50
[output]
progress = false
plots = false
"""


def _data(n=64, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, n)


# --- the engine: given subtrees, the rest drawn from the key ------------------------------------
@pytest.mark.parametrize("given_layers", [(0,), (1,), (0, 1)])
def test_trainer_init_takes_given_layers_and_draws_the_rest(given_layers):
    net = fnn.MLP([4, 8, 3], output="softmax")
    tr = fnn.Trainer(net, "cross_entropy", fnn.optim.adam(1e-2), _data(), epochs=1,
                     batch_size=16)
    fresh = tr.init(jax.random.key(0))
    src = net.init(jax.random.key(7))
    partial = tuple(src[i] if i in given_layers else None for i in range(2))
    state = tr.init(jax.random.key(0), params=partial)
    for i in range(2):
        chex.assert_trees_all_equal(state.params[i], src[i] if i in given_layers
                                    else fresh.params[i])
    chex.assert_trees_all_equal(state.key, fresh.key)  # the training key is the same
    chex.assert_trees_all_equal(state.opt_state, tr.init(jax.random.key(0), params=state.params
                                                         ).opt_state)


def test_a_sweep_starts_every_member_from_the_given_layers():
    net = fnn.MLP([4, 8, 3], output="softmax")
    tr = fnn.Trainer(net, "cross_entropy", fnn.optim.adam(1e-2), _data(), epochs=1,
                     batch_size=16)
    src = net.init(jax.random.key(7))
    state = tr.init_sweep(jax.random.split(jax.random.key(0), 3), params=(src[0], None))
    for m in range(3):
        chex.assert_trees_all_equal(jax.tree.map(lambda a: a[m], state.params[0]), src[0])
    assert not np.array_equal(state.params[1]["w"][0], state.params[1]["w"][1])


def test_given_values_are_cast_to_the_network_dtype():
    with jax.enable_x64(True):
        net = fnn.MLP([4, 8, 3], output="softmax")  # float32
        src = jax.tree.map(lambda a: a.astype(jnp.float64), net.init(jax.random.key(1)))
        out = fill(src, net.init(jax.random.key(0)))
        assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(out))
        chex.assert_trees_all_close(out, src, atol=1e-7)


@pytest.mark.parametrize("given_tree,match", [
    (({"w": jnp.zeros((4, 9)), "b": jnp.zeros(9)}, None), r"params\[0\]\['b'\]: shape \(9,\);"
     r" the network's is \(8,\)"),
    (({"w": jnp.zeros((4, 8))}, None), "params: the given tree's structure differs"),
    ((None,), "params: the given tree's structure differs"),
    ((jnp.zeros(3), None), r"params\[0\]: an array; the network has a subtree there"),
])
def test_a_given_tree_that_does_not_fit_is_one_line(given_tree, match):
    net = fnn.MLP([4, 8, 3])
    with pytest.raises(ValueError, match=match) as err:
        fill(given_tree, net.init(jax.random.key(0)))
    assert "\n" not in str(err.value)


# --- the layer selection grammar -----------------------------------------------------------------
@pytest.mark.parametrize("spec,n,expected", [
    ("all", 3, None), (" all ", 3, None), ("0", 3, (0,)), ("-1", 3, (2,)), (":-1", 3, (0, 1)),
    ("1:", 3, (1, 2)), ("0,2", 3, (0, 2)), ("0,0:2", 3, (0, 1)), ("-3:", 3, (0, 1, 2)),
    ("0:100", 3, (0, 1, 2)), (" 1 : 2 ", 3, (1,)),
])
def test_layer_specs(spec, n, expected):
    assert spec_error(spec) is None
    assert parse_layers(spec, n) == expected


@pytest.mark.parametrize("spec,n,match", [
    ("5", 3, r"model.init_layers: '5': layer 5; the config's network has 3 layers \(0..2, or"
             r" -3..-1\)"),
    ("-4", 3, "layer -4"),
    ("", 3, "model.init_layers: ''; expected 'all'"),
    ("a", 3, "'a' is not an index or a slice"),
    ("1:2:3", 3, "'1:2:3' is not an index or a slice"),
    ("0,,1", 3, "'' is not an index"),
    ("2:1", 3, "names no layer"),
])
def test_bad_layer_specs_are_one_line(spec, n, match):
    with pytest.raises(ValueError, match=match):
        parse_layers(spec, n)


@given(st.integers(1, 12).flatmap(
    lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), min_size=1))))
def test_spec_of_names_exactly_the_layers(case):
    n, picked = case
    spec = spec_of(sorted(picked), n)
    assert spec_error(spec) is None
    assert parse_layers(spec, n) == tuple(sorted(picked))


# --- from a finished run -------------------------------------------------------------------------
def _net(cfg_path, *overrides):
    from fnn.experiment import build as exp
    from fnn.experiment import config as config_mod

    cfg = config_mod.load(cfg_path, list(overrides))
    return exp.build_net(cfg, exp.load_dataset(cfg))


def test_all_layers_of_a_run_are_its_parameters():
    run = trained("quickstart")
    start = init_from.load(run, _net(CONFIGS / "quickstart.toml"))
    handle = fnn.load_run(run)
    chex.assert_trees_all_equal(start.params, tuple(handle.params))
    assert start.layers == (0, 1, 2) and start.member == "0"
    assert start.record() == {"run_dir": str(run), "member": "0", "layers": [0, 1, 2]}


def test_a_new_head_takes_all_but_the_output_layer(tmp_path):
    """3 classes -> 5 classes: the hidden layers come from the run, the output layer is drawn."""
    src_cfg = write_config(tmp_path / "blobs.toml", BLOBS_TOML)
    rc, out, err = run_cli("train", src_cfg, "--out", tmp_path / "src", "--quiet")
    assert rc == 0, out + err
    net5 = _net(src_cfg, "data.num_classes=5")
    with pytest.raises(ValueError, match=r"model.init_from: '.*src': layers\[2\] \(Dense\) does "
                       r"not fit: the run's Dense has b \(3,\), w \(16, 3\); the config's needs "
                       r"b \(5,\), w \(16, 5\); leave it out with --layers \(e.g. --layers :-1\)"):
        init_from.load(tmp_path / "src", net5)
    start = init_from.load(tmp_path / "src", net5, layers=":-1")
    src = fnn.load_run(tmp_path / "src")
    assert start.layers == (0, 1) and start.params[2] is None
    chex.assert_trees_all_equal(start.params[:2], tuple(src.params[:2]))


def test_batchnorm_state_comes_with_the_parameters(tmp_path):
    cfg = write_config(tmp_path / "bn.toml", BN_CNN)
    rc, out, err = run_cli("train", cfg, "--out", tmp_path / "src", "--quiet")
    assert rc == 0, out + err
    src = fnn.load_run(tmp_path / "src")
    net = _net(cfg)
    start = init_from.load(tmp_path / "src", net)
    assert isinstance(net.layers[1], L.BatchNorm)
    assert start.layers == (0, 1, 4)  # activation and flatten hold nothing
    chex.assert_trees_all_equal(start.net_state[1], src.net_state[1])
    assert not np.allclose(np.asarray(src.net_state[1]["var"]), 1.0)  # trained statistics
    from fnn.experiment import build as exp
    from fnn.experiment import config as config_mod

    c = config_mod.load(cfg)
    trainer = exp.build_trainer(c, exp.load_dataset(c))
    state = trainer.init(jax.random.key(0), params=start.params, net_state=start.net_state)
    chex.assert_trees_all_equal(state.net_state, src.net_state)
    chex.assert_trees_all_equal(state.params, tuple(src.params))


def test_a_sweep_gives_its_best_member_or_the_one_named():
    run = trained("optimizers")
    summary = fnn.load_run(run, member=0).summary  # a member's view of summary.json
    assert summary
    import json

    entries = json.loads((run / "summary.json").read_text())["members"]
    losses = [m["best_val_loss"] for m in entries]
    net = fnn.load_run(run, member=0).net
    best = init_from.load(run, net)
    assert best.member == entries[int(np.argmin(losses))]["member"]
    chex.assert_trees_all_equal(best.params, tuple(fnn.load_run(run, member=best.member).params))
    named = init_from.load(run, net, member="3")
    assert named.member == entries[3]["member"]
    with pytest.raises(ValueError, match=r"model.init_from: .*member 99: the run has 6 members"):
        init_from.load(run, net, member="99")


@pytest.mark.parametrize("make,match", [
    (lambda tmp: tmp / "missing", r"model.init_from: '.*missing' is not a directory; expected a "
                                  r"finished run directory"),
    (lambda tmp: tmp, r"^model.init_from: '[^']*' is not a run directory \(no config.toml\)$"),
])
def test_a_source_that_is_not_a_run_is_one_line(tmp_path, make, match):
    with pytest.raises(ValueError, match=match) as err:
        init_from.load(make(tmp_path), _net(CONFIGS / "quickstart.toml"))
    assert "\n" not in str(err.value)


def test_all_needs_the_same_stack():
    net = _net(CONFIGS / "quickstart.toml", "model.hidden=[32, 32, 32]")
    with pytest.raises(ValueError, match=r"the run's network has 3 layers, the config's 4; "
                       r"model.init_layers = 'all' needs the same stack"):
        init_from.load(trained("quickstart"), net)
    with pytest.raises(ValueError, match=r"layers\[3\] \(Dense\): the run's network has only 3"):
        init_from.load(trained("quickstart"), net, layers="3")


def test_the_runner_takes_init_from_as_a_keyword(tmp_path):
    from fnn.experiment import config as config_mod
    from fnn.experiment import runner

    src = trained("quickstart")
    sets = shrink_args("quickstart")[1::2]  # the KEY=VALUE after each --set
    cfg = config_mod.load(CONFIGS / "quickstart.toml", sets)
    summary = runner.run(cfg, out=tmp_path / "ft", quiet=True, init_from=src, layers=":-1")
    assert summary["init_from"] == {"run_dir": str(src), "member": "0", "layers": [0, 1]}
    saved = config_mod.load(tmp_path / "ft" / "config.toml")
    assert saved.model.init_from == str(src) and saved.model.init_layers == ":-1"
    with pytest.raises(config_mod.ConfigError, match="model.init_layers: 'x'"):
        runner.run(cfg, out=tmp_path / "bad", quiet=True, init_from=src, layers="x")
    assert not (tmp_path / "bad").exists()
