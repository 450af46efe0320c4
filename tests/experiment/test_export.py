"""fnn export: the serialized jax.export model runs without fnn and equals fnn predict."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import fnn
from cli_helpers import run_cli
from model_runs import fashion_test_images, trained

# Loads and calls the exported model in a process where `import fnn` fails.
NO_FNN = r"""
import sys
sys.modules["fnn"] = None
try:
    import fnn
except ImportError:
    pass
else:
    raise SystemExit("fnn was importable")
import jax, numpy as np
exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
x = np.load(sys.argv[2])["x"]
out = {f"b{n}": np.asarray(exported.call(x[:n])) for n in map(int, sys.argv[4:])}
np.savez(sys.argv[3], **out)
"""


def _read_probs(path: Path) -> np.ndarray:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return np.asarray([[float(v) for v in r[1:]] for r in rows[1:]])


def _inputs(name: str, n: int) -> np.ndarray:
    if name == "fashion_mnist":
        return fashion_test_images(n)
    return np.random.default_rng(0).normal(0.5, 1.0, size=(n, 2)).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart", "fashion_mnist"])
def test_round_trip_without_fnn_equals_fnn_predict(name, tmp_path):
    run = trained(name)
    model = tmp_path / "model.jax"
    rc, out, err = run_cli("export", run, "--output", model)
    assert rc == 0, err
    meta = json.loads((tmp_path / "model.jax.json").read_text())
    shape = [784] if name == "fashion_mnist" else [2]
    assert meta["input_shape"] == shape and meta["input_dtype"] == "float32"
    assert meta["output_kind"] == "probabilities" and meta["batch"] == "symbolic"
    assert meta["fnn_version"] == fnn.__version__ and meta["jax_version"] == jax.__version__
    assert len(meta["classes"]) == (10 if name == "fashion_mnist" else 2)
    x = _inputs(name, 9)
    np.savez(tmp_path / "x.npz", x=x)
    proc = subprocess.run([sys.executable, "-c", NO_FNN, str(model), str(tmp_path / "x.npz"),
                           str(tmp_path / "y.npz"), "1", "9"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "y.npz") as z:
        b1, b9 = z["b1"], z["b9"]
    assert b1.shape == (1, len(meta["classes"])) and b9.shape == (9, len(meta["classes"]))
    rc, _, err = run_cli("predict", run, tmp_path / "x.npz", "--output", tmp_path / "run.csv")
    assert rc == 0, err
    rc, _, err = run_cli("predict", model, tmp_path / "x.npz", "--output", tmp_path / "file.csv")
    assert rc == 0, err
    by_run, by_file = _read_probs(tmp_path / "run.csv"), _read_probs(tmp_path / "file.csv")
    np.testing.assert_allclose(b9, by_run, atol=1e-6)
    np.testing.assert_allclose(b9, by_file, atol=1e-6)
    np.testing.assert_allclose(b1, b9[:1], atol=1e-6)
    np.testing.assert_allclose(b9, fnn.load_run(run).predict(x), atol=1e-6)
    assert (tmp_path / "run.csv").read_text() == (tmp_path / "file.csv").read_text()


@pytest.mark.slow
def test_default_output_and_sweep_member(tmp_path):
    import shutil

    run = tmp_path / "opt"
    shutil.copytree(trained("optimizers"), run)
    rc, _, err = run_cli("export", run)
    assert rc == 2 and "sweep of 6 members" in err and "\n" not in err.strip()
    assert not list(run.glob("model*"))
    rc, out, err = run_cli("export", run, "--member", "optimizer.name=adam training.seed=1")
    assert rc == 0, err
    assert (run / "model-5.jax").is_file() and (run / "model-5.jax.json").is_file()
    meta = json.loads((run / "model-5.jax.json").read_text())
    assert meta["member"] == 5 and meta["member_label"] == "optimizer.name=adam training.seed=1"


def _one_line_exit_2(rc, err):
    assert rc == 2, err
    assert err.startswith("fnn: error: ") and err.strip().count("\n") == 0, err


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    run = trained("quickstart")
    model = tmp_path / "m.jax"
    assert run_cli("export", run, "--output", model)[0] == 0
    np.savez(tmp_path / "x3.npz", x=np.zeros((4, 3), np.float32))
    np.savez(tmp_path / "x2.npz", x=np.zeros((4, 2), np.float32))
    corrupt = tmp_path / "corrupt.jax"
    corrupt.write_bytes(model.read_bytes()[:200])
    (tmp_path / "corrupt.jax.json").write_text((tmp_path / "m.jax.json").read_text())
    garbage = tmp_path / "garbage.jax"
    garbage.write_bytes(b"not a model")
    meta = json.loads((tmp_path / "m.jax.json").read_text())
    del meta["sha256"]
    (tmp_path / "garbage.jax.json").write_text(json.dumps(meta))
    lonely = tmp_path / "lonely.jax"
    lonely.write_bytes(model.read_bytes())
    out = tmp_path / "p.csv"
    cases = [
        (("export", tmp_path / "nowhere", "--output", tmp_path / "e.jax"), "not a run directory"),
        (("export", tmp_path, "--output", tmp_path / "e.jax"), "not a run directory"),
        (("predict", run, tmp_path / "x3.npz", "--output", out), "the model expects (examples, 2)"),
        (("predict", model, tmp_path / "x3.npz", "--output", out), "the model expects (examples, 2)"),
        (("predict", corrupt, tmp_path / "x2.npz", "--output", out), "corrupt"),
        (("predict", garbage, tmp_path / "x2.npz", "--output", out), "not a serialized jax.export"),
        (("predict", lonely, tmp_path / "x2.npz", "--output", out), "no lonely.jax.json"),
        (("predict", tmp_path / "nowhere", tmp_path / "x2.npz", "--output", out),
         "neither a run directory nor an exported model"),
    ]
    for argv, message in cases:
        rc, _, err = run_cli(*argv)
        _one_line_exit_2(rc, err)
        assert message in err, (argv, err)
    assert not out.exists() and not (tmp_path / "e.jax").exists()
    assert not (tmp_path / "e.jax.json").exists()


@pytest.mark.slow
def test_an_image_model_takes_its_own_input_shape_everywhere(tmp_path):
    """Issue 23: after `fnn export` of shapes_cnn, x of shape (n, 16, 16, 1) was refused ("the
    model expects (examples, 256)"). (n, 16, 16, 1), (n, 16, 16) and flat (n, 256) are accepted
    by the exported model, by fnn predict RUN_DIR and by RunHandle.predict, with equal outputs;
    channels-first (n, 1, 16, 16) of the same size is refused in one line, not reshaped."""
    run = trained("shapes_cnn")
    model = tmp_path / "model.jax"
    rc, _, err = run_cli("export", run, "--output", model)
    assert rc == 0, err
    assert json.loads((tmp_path / "model.jax.json").read_text())["input_shape"] == [16, 16, 1]
    images = np.random.default_rng(0).integers(0, 256, (7, 16, 16, 1)).astype(np.float32)
    layouts = {"nhwc": images, "nhw": images[..., 0], "flat": images.reshape(7, 256)}
    handle = fnn.load_run(run)
    reference = handle.predict(images)
    assert reference.shape == (7, 5)
    for name, x in layouts.items():
        np.savez(tmp_path / f"{name}.npz", x=x)
        np.testing.assert_allclose(handle.predict(x), reference, atol=1e-6, err_msg=name)
        for source in (run, model):
            out = tmp_path / f"{name}-{Path(source).name}.csv"
            rc, _, err = run_cli("predict", source, tmp_path / f"{name}.npz", "--output", out)
            assert rc == 0, (name, source, err)
            np.testing.assert_allclose(_read_probs(out), reference, atol=1e-5, err_msg=name)
    nchw = np.moveaxis(images, -1, 1)  # (7, 1, 16, 16): 256 values per example too
    np.savez(tmp_path / "nchw.npz", x=nchw)
    with pytest.raises(ValueError, match=r"^x: inputs of shape \(7, 1, 16, 16\); the model "
                       r"expects \(examples, 16, 16, 1\), \(examples, 16, 16\) or flat "
                       r"\(examples, 256\) \(channels first\?"):
        handle.predict(nchw)
    for source in (run, model):
        out = tmp_path / "nchw.csv"
        rc, _, err = run_cli("predict", source, tmp_path / "nchw.npz", "--output", out)
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert "INPUT nchw.npz: inputs of shape (7, 1, 16, 16); the model expects" in err, err
        assert not out.exists()
