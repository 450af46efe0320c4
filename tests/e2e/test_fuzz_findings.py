"""What the fuzzer of issue 23 found, one test per finding: each was an exit 3 (an internal
error), silent nonsense, or an unbounded size. Every bad input here must be one line with exit
status 2 (``fnn: error: ...``), no traceback, and nothing written.

The runs are tiny (a 2-unit MLP on 24 moons, a 2-filter CNN on 60 shapes, one epoch each),
trained once per module.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_cli
from fnn.experiment import config as C

TINY = {"data": {"name": "moons", "n_samples": 24},
        "model": {"hidden": [2]},
        "training": {"epochs": 1, "batch_size": 8},
        "output": {"plots": False, "progress": False, "dir": "runs"}}
CNN = {"data": {"name": "shapes", "n_samples": 60},
       "model": {"layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3},
                            {"type": "max_pool2d", "pool_size": 4}, {"type": "flatten"}]},
       "training": {"epochs": 1, "batch_size": 16},
       "output": {"plots": False, "progress": False, "dir": "runs"}}


def cli(root: Path, *argv) -> tuple[int, str, str]:
    old = os.getcwd()
    os.chdir(root)
    try:
        return run_cli(*argv)
    finally:
        os.chdir(old)


def one_line_error(root: Path, *argv) -> str:
    """Run ``fnn ARGV`` expecting exit 2 with one line and no new file; returns the message."""
    before = {str(p) for p in root.rglob("*")}
    rc, out, err = cli(root, *argv)
    assert rc == 2, (rc, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("fnn: error: "), err
    assert {str(p) for p in root.rglob("*")} == before, err
    return err.strip()[len("fnn: error: "):]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A trained tiny MLP run ``tiny``, a CNN run ``cnn`` and its export ``m.jax``."""
    root = tmp_path_factory.mktemp("findings")
    (root / "tiny.toml").write_text(C.dumps(TINY))
    (root / "cnn.toml").write_text(C.dumps(CNN))
    for name in ("tiny", "cnn"):
        rc, _, err = cli(root, "train", f"{name}.toml", "--out", name)
        assert rc == 0, err
    rc, _, err = cli(root, "export", "cnn", "--output", "m.jax")
    assert rc == 0, err
    np.savez(root / "x.npz", x=np.random.default_rng(0).random((3, 16, 16, 1), np.float32))
    return root


@pytest.fixture
def work(runs, tmp_path):
    """A copy of the module's runs in a fresh directory."""
    for p in runs.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy)(p, tmp_path / p.name)
    return tmp_path


# --- configs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("layers,fragment", [
    ([{"type": ["conv2d"]}], "model.layers[0].type: ['conv2d'] is not a layer type"),
    ([{"type": {"a": 1}}], "model.layers[0].type: {'a': 1} is not a layer type"),
    ([{"type": "dense", "units": 2}] * 101, "model.layers: 101 layers; expected at most 100"),
    ([{"type": "residual", "layers": [{"type": "dense", "units": 2}] * 60}] * 2,
     "model.layers: 122 layers; expected at most 100"),
    ([{"type": "dense", "units": 2**20}], "model.layers[0].units: 1048576; expected an integer"
                                          " in [1, 65536]"),
])
def test_bad_layer_stacks_are_one_line(tmp_path, layers, fragment):
    raw = C.deepcopy(TINY)
    raw["model"] = {"layers": layers}
    (tmp_path / "c.toml").write_text(C.dumps(raw))
    assert fragment in one_line_error(tmp_path, "train", "c.toml")


@pytest.mark.parametrize("layers", [
    [{"type": "embedding", "features": 4}, {"type": "embedding", "features": 4}],  # (T, 4, 4)
    [{"type": "embedding", "features": 4}, {"type": "lstm", "units": 3,
                                            "return_sequences": False}],        # (V,) alone
])
def test_a_token_stack_without_one_output_per_position_is_refused_before_writing(tmp_path,
                                                                                  layers):
    """Found by the layer-stack fuzz: on token windows, a stack whose output is not (T, V) got
    through to the first step, after the run directory was written (exit 2 with files)."""
    raw = C.deepcopy(TINY)
    raw["data"] = {"name": "adder", "digits": 1}
    raw["model"] = {"layers": layers}
    raw["training"] = {"iterations": 2, "eval_interval": 2, "batch_size": 4}
    (tmp_path / "c.toml").write_text(C.dumps(raw))
    msg = one_line_error(tmp_path, "train", "c.toml")
    assert "need a (3, vocabulary) output, one next-token distribution per position" in msg, msg


@pytest.mark.parametrize("edit,fragment", [
    ({"model": {"hidden": [2] * 101}}, "model.hidden: 101 values; expected at most 100"),
    ({"model": {"hidden": [2**20]}}, "model.hidden: 1048576 out of range; expected <= 65536"),
    ({"training": {"seeds": list(range(1001))}},
     "training.seeds: 1001 values; expected at most 1000"),
    ({"model": {"layers": [{"type": "conv2d", "filters": 2, "kernel_size": 4096}]},
      "data": {"name": "shapes", "n_samples": 60}},
     "kernel_size: 4096x4096 for input shape (16, 16, 1); expected at most 31x31"),
    ({"model": {"layers": [{"type": "conv2d", "filters": 4096}, {"type": "flatten"},
                           {"type": "dense", "units": 1024}]},
      "data": {"name": "shapes", "n_samples": 60}},
     "model: 1,073,788,933 parameters; expected at most 2**28 = 268,435,456"),
])
def test_sizes_that_cannot_be_useful_are_refused(tmp_path, edit, fragment):
    raw = C.deepcopy(TINY)
    for section, values in edit.items():
        raw[section] = values if section != "training" else {**raw[section], **values}
    (tmp_path / "c.toml").write_text(C.dumps(raw))
    assert fragment in one_line_error(tmp_path, "train", "c.toml")


@pytest.mark.parametrize("argv,fragment", [
    (["--seeds", "5000"], "--seeds: 5000; expected an integer >= 1 and at most 1000"),
    (["--grid", "optimizer.learning_rate=" + ",".join(f"{i + 1}e-3" for i in range(80)),
      "--grid", "training.batch_size=" + ",".join(str(i + 1) for i in range(60))],
     "sweep: 80 x 60 x 1 seed(s) = 4800 members; expected at most 4096"),
])
def test_sweeps_too_large_are_refused(tmp_path, argv, fragment):
    (tmp_path / "c.toml").write_text(C.dumps(TINY))
    assert fragment in one_line_error(tmp_path, "sweep", "c.toml", *argv)


def test_a_sweep_over_model_layers_trains_each_stack(tmp_path):
    (tmp_path / "c.toml").write_text(C.dumps({**TINY, "model": {}}))
    rc, out, err = cli(tmp_path, "sweep", "c.toml", "--out", "s", "--grid",
                       'model.layers=[{type="dense",units=2}],[{type="dense",units=3}]')
    assert rc == 0, err  # was exit 3: unhashable dict
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert [m["member"] for m in summary["members"]] == [
        "model.layers=dense(units=2)", "model.layers=dense(units=3)"]


@pytest.mark.parametrize("path", ["/dev/zero", "fifo"])
def test_a_data_path_that_is_not_a_regular_file(tmp_path, path):
    if path == "fifo":
        os.mkfifo(tmp_path / "fifo")
    raw = C.deepcopy(TINY)
    raw["data"] = {"name": "csv", "path": path, "target": "y"}
    (tmp_path / "c.toml").write_text(C.dumps(raw))
    before = {p.name for p in tmp_path.iterdir()}
    rc, _, err = cli(tmp_path, "train", "c.toml")  # was a MemoryError (exit 3)
    assert rc == 2 and "is not a file" in err and len(err.splitlines()) == 1, err
    assert {p.name for p in tmp_path.iterdir()} == before


def test_the_data_loader_itself_refuses_a_device(tmp_path):
    from fnn.data.csv_file import read_csv
    from fnn.data.validate import DataError

    with pytest.raises(DataError, match=r"'/dev/zero': a device, FIFO or socket, not a regular"):
        read_csv("/dev/zero")


@pytest.mark.parametrize("column,loss", [("a", "cross_entropy"), ("y", "mse")])
def test_a_value_beyond_float32_is_one_line_without_numpy_warnings(tmp_path, column, loss):
    rows = [{"a": 1, "b": 2, "y": i % 2} for i in range(8)]
    rows[3][column] = "3.5e38"
    text = "a,b,y\n" + "".join(f"{r['a']},{r['b']},{r['y']}\n" for r in rows)
    (tmp_path / "d.csv").write_text(text)
    raw = C.deepcopy(TINY)
    raw["data"] = {"name": "csv", "path": "d.csv", "target": "y"}
    raw["loss"] = {"name": loss}
    (tmp_path / "c.toml").write_text(C.dumps(raw))
    msg = one_line_error(tmp_path, "train", "c.toml")
    assert "value 3.5e+38 at row 3" in msg and "beyond the float32 range" in msg, msg
    assert "overflow" not in msg


# --- exported models ---------------------------------------------------------------------------
def _edit_sidecar(root: Path, edit, *, keep_hash: bool) -> None:
    path = root / "m.jax.json"
    meta = json.loads(path.read_text())
    edit(meta)
    if not keep_hash:
        meta.pop("metadata_sha256", None)
    path.write_text(json.dumps(meta))


SIDECAR_EDITS = [
    (lambda m: m.pop("input_shape"), "m.jax.json: input_shape is missing; expected a list of"),
    (lambda m: m.update(input_shape=None), "m.jax.json: input_shape is null; expected a list"),
    (lambda m: m.update(input_shape="abc"), 'm.jax.json: input_shape is "abc"; expected a list'),
    # was JAX's "Rank mismatch for args[0]", without the file named
    (lambda m: m.update(input_shape=[256]),
     "m.jax.json: input_shape [256] differs from the model's input [16, 16, 1]"),
    (lambda m: m.pop("task"), "m.jax.json: task is missing; expected one of: classification"),
    (lambda m: m.update(task=None), "m.jax.json: task is null; expected one of"),
    (lambda m: m.update(task="abc"), 'm.jax.json: task is "abc"; expected one of'),
    (lambda m: m.update(classes=["a"]), "m.jax.json: 1 class name(s) for a model of 5 output(s)"),
    (lambda m: m.update(classes=[1, 2, 3, 4, 5]), "m.jax.json: classes is [1, 2, 3, 4, 5]"),
    (lambda m: m.update(sha256=5), "m.jax.json: sha256 is 5; expected the hex digest"),
]


@pytest.mark.parametrize("edit,fragment", SIDECAR_EDITS)
def test_an_edited_sidecar_is_one_line(work, edit, fragment):
    _edit_sidecar(work, edit, keep_hash=False)  # was exit 3 (KeyError, TypeError, IndexError)
    assert fragment in one_line_error(work, "predict", "m.jax", "x.npz", "--output", "p.csv")


@pytest.mark.parametrize("edit,_", SIDECAR_EDITS[:8])
def test_the_hash_covers_the_sidecars_fields(work, edit, _):
    _edit_sidecar(work, edit, keep_hash=True)
    assert "m.jax.json: edited or corrupt (its fields' SHA-256 differs" in one_line_error(
        work, "predict", "m.jax", "x.npz", "--output", "p.csv")


def test_a_corrupt_module_without_a_hash_fails_at_load(work):
    data = bytearray((work / "m.jax").read_bytes())
    at = data.find(b"ML\xefR")  # the MLIR bytecode's magic number
    data[at + 3] ^= 0x01
    (work / "m.jax").write_bytes(bytes(data))
    _edit_sidecar(work, lambda m: m.pop("sha256"), keep_hash=False)
    msg = one_line_error(work, "predict", "m.jax", "x.npz", "--output", "p.csv")
    assert msg.startswith("m.jax: corrupt model (its StableHLO does not parse"), msg


def test_an_untouched_export_still_predicts(work):
    rc, _, err = cli(work, "predict", "m.jax", "x.npz", "--output", "p.csv")
    assert rc == 0, err
    assert len((work / "p.csv").read_text().splitlines()) == 4


# --- predict inputs ----------------------------------------------------------------------------
def test_an_empty_input_is_one_line(work):
    np.savez(work / "x0.npz", x=np.zeros((0, 2), np.float32))  # was an IndexError (exit 3)
    assert "INPUT x0.npz: shape (0, 2) holds no examples" in one_line_error(
        work, "predict", "tiny", "x0.npz", "--output", "p.csv")


def test_a_headerless_csv_keeps_its_first_row(work):
    (work / "in.csv").write_text("0.1,0.2\n0.3,0.4\n")
    rc, _, err = cli(work, "predict", "tiny", "in.csv", "--output", "p.csv")
    assert rc == 0, err
    assert len((work / "p.csv").read_text().splitlines()) == 3  # a header and two predictions


def test_a_value_beyond_float32_in_predict_inputs(work):
    (work / "in.csv").write_text("a,b\n3.5e38,1\n")
    assert "beyond the float32 range" in one_line_error(work, "predict", "tiny", "in.csv",
                                                         "--output", "p.csv")


def test_preprocessing_classes_must_match_the_network(work):
    import fnn

    path = work / "tiny" / "preprocessing.json"
    raw = json.loads(path.read_text())
    raw["groups"][0]["classes"] = ["a", "b", "c"]
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"preprocessing.json: classes \['a', 'b', 'c'\]; "
                                         r"expected 2 class names"):
        fnn.load_run(work / "tiny")


# --- compare -----------------------------------------------------------------------------------
COMPARE_DAMAGE = [
    ("metrics.csv", lambda t: t[:t.index("\n") + 10],  # cut inside the first row
     "metrics.csv': line 2 has fewer fields than the header"),
    ("metrics.csv", lambda t: "\n".join(",".join(ln.split(",")[:1] + ln.split(",")[2:])
                                        for ln in t.splitlines()), "no 'epoch' column"),
    ("metrics.csv", lambda t: t.replace("\n0,1,", "\n0,x,", 1), "holds a value that is not a"),
    ("metrics.csv", lambda t: t.splitlines()[0] + "\n", "metrics.csv': no rows"),
    ("summary.json", lambda t: "[1, 2]", "summary.json': a JSON list; expected the object"),
    ("summary.json", lambda t: '{"members": 5}', "'members' is not a list of objects"),
]


@pytest.mark.parametrize("name,damage,fragment", COMPARE_DAMAGE)
def test_compare_on_damaged_run_files(work, name, damage, fragment):
    path = work / "tiny" / name
    path.write_text(damage(path.read_text()))  # were exit 3: KeyError, AttributeError
    assert fragment in one_line_error(work, "compare", "tiny", "--out", "c.png")
