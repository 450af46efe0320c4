"""fnn export --format safetensors: named tensors equal to the checkpoint's, readable without fnn,
and a PyTorch model built from them (weights permuted as docs/weights.md says) predicts the same
classes as fnn predict."""
import csv
import json
import sys

import numpy as np
import pytest

import fnn
from cli_helpers import checkpoint_arrays, final_checkpoint, run_cli, write_config

safetensors_numpy = pytest.importorskip("safetensors.numpy")

# A small CNN on the built-in shapes set (16x16 images, 5 classes; no download), with a
# BatchNorm (state tensors) and a Residual (nested names): 400 images, 2 epochs.
CNN = """
[data]
name = "shapes"
n_samples = 400
val_fraction = 0.1

[[model.layers]]
type = "conv2d"
filters = 8
kernel_size = 3
activation = "relu"

[[model.layers]]
type = "batch_norm"

[[model.layers]]
type = "residual"
layers = [{type = "conv2d", filters = 8, kernel_size = 3, activation = "relu"}]

[[model.layers]]
type = "max_pool2d"
pool_size = 2

[[model.layers]]
type = "flatten"

[[model.layers]]
type = "dense"
units = 16
activation = "relu"

[optimizer]
name = "adam"
learning_rate = 0.003

[training]
epochs = 2
batch_size = 32

[output]
progress = false
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    rc, stdout, stderr = run_cli("train", write_config(root / "cnn.toml", CNN), "--out",
                                 root / "run", "--quiet")
    assert rc == 0, stdout + stderr
    return root / "run"


@pytest.mark.slow
def test_tensors_equal_the_checkpoint(run, tmp_path):
    out = tmp_path / "w.safetensors"
    rc, stdout, err = run_cli("export", run, "--format", "safetensors", "--output", out)
    assert rc == 0, err
    assert str(out) in stdout
    tensors = safetensors_numpy.load_file(str(out))
    ckpt = checkpoint_arrays(final_checkpoint(run / "checkpoints"))
    # one entry per parameter and BatchNorm statistic, named by its key path, dotted
    expected = {
        "layers.0.w": "state.params[0]['w']", "layers.0.b": "state.params[0]['b']",
        "layers.1.scale": "state.params[1]['scale']", "layers.1.bias": "state.params[1]['bias']",
        "layers.2.0.w": "state.params[2][0]['w']", "layers.2.0.b": "state.params[2][0]['b']",
        "layers.5.w": "state.params[5]['w']", "layers.5.b": "state.params[5]['b']",
        "layers.6.w": "state.params[6]['w']", "layers.6.b": "state.params[6]['b']",
        "state.1.mean": "state.net_state[1]['mean']", "state.1.var": "state.net_state[1]['var']",
    }
    assert sorted(tensors) == sorted(expected)
    for name, entry in expected.items():
        assert tensors[name].dtype == ckpt[entry].dtype, name
        np.testing.assert_array_equal(tensors[name], ckpt[entry], err_msg=name)
    assert tensors["layers.0.w"].shape == (3, 3, 1, 8)  # HWIO
    assert tensors["layers.6.w"].shape == (16, 5)        # dense (in, out)
    # trained, not initial: the running statistics moved
    assert not np.allclose(tensors["state.1.mean"], 0.0)


def test_metadata_describes_the_model(run, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "w.safetensors"
    assert run_cli("export", run, "--format", "safetensors", "--output", out)[0] == 0
    with safe_open(str(out), "np") as f:
        meta = f.metadata()
    assert meta["format"] == "fnn-weights" and meta["fnn_version"] == fnn.__version__
    assert json.loads(meta["input_shape"]) == [16, 16, 1]
    assert json.loads(meta["classes"]) == ["square", "circle", "triangle", "cross", "ring"]
    assert meta["preprocessing"].endswith("x / 255")
    layers = json.loads(meta["layers"])
    assert [layer["type"] for layer in layers] == ["Conv2D", "BatchNorm", "Residual",
                                                   "MaxPool2D", "Flatten", "Dense", "Dense"]
    assert layers[2]["layers"][0]["filters"] == 8 and layers[6]["activation"] == "softmax"


def test_default_output_in_the_run_directory(run):
    rc, _, err = run_cli("export", run, "--format", "safetensors")
    assert rc == 0, err
    path = run / "model.safetensors"
    try:
        assert set(safetensors_numpy.load_file(str(path))) >= {"layers.0.w", "state.1.var"}
        # a run directory holding the export can still be overwritten (fnn wrote it)
        from fnn.experiment.rundir import foreign_entry
        assert foreign_entry(run) is None
    finally:
        path.unlink()


def test_missing_extra_is_one_line_exit_2_nothing_written(run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    out = tmp_path / "w.safetensors"
    rc, stdout, err = run_cli("export", run, "--format", "safetensors", "--output", out)
    assert rc == 2
    assert err.count("\n") == 1 and "safetensors" in err and "pip install" in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx"], "invalid choice: 'onnx'"),
    (["--member", "3"], "member 3: the run has 1 member"),
])
def test_bad_arguments_are_one_line(run, tmp_path, args, message):
    out = tmp_path / "w.safetensors"
    rc, _, err = run_cli("export", run, "--format", "safetensors", "--output", out, *args)
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_not_a_run_directory(tmp_path):
    rc, _, err = run_cli("export", tmp_path, "--format", "safetensors")
    assert rc == 2 and "is not a run directory" in err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# PyTorch from the file alone
# ---------------------------------------------------------------------------------------------
def _torch_model(torch, layers: list, tensors: dict, prefix: str = "layers", state="state"):
    """A torch.nn.Sequential of the fnn layers ``layers`` (their metadata records), NCHW
    activations, weights taken from ``tensors`` and permuted as docs/weights.md says."""
    nn = torch.nn
    t = lambda name: torch.from_numpy(np.ascontiguousarray(tensors[name]))  # noqa: E731
    acts = {"relu": nn.ReLU, "softmax": lambda: nn.Softmax(dim=1), "identity": nn.Identity}
    mods = []
    for i, rec in enumerate(layers):
        at = f"{prefix}.{i}"
        kind = rec["type"]
        if kind == "Conv2D":
            assert rec["padding"] == "same" and rec["strides"] == [1, 1]
            w = t(f"{at}.w")  # HWIO -> OIHW
            conv = nn.Conv2d(w.shape[2], w.shape[3], tuple(rec["kernel_size"]), padding="same")
            conv.weight.data = w.permute(3, 2, 0, 1).contiguous()
            conv.bias.data = t(f"{at}.b")
            mods += [conv, acts[rec["activation"]]()]
        elif kind == "BatchNorm":
            scale = t(f"{at}.scale")
            bn = nn.BatchNorm2d(scale.shape[0], eps=rec["eps"], momentum=1 - rec["momentum"])
            bn.weight.data, bn.bias.data = scale, t(f"{at}.bias")
            sat = f"{state}.{i}"
            bn.running_mean.data, bn.running_var.data = t(f"{sat}.mean"), t(f"{sat}.var")
            mods.append(bn)
        elif kind == "Residual":
            inner = _torch_model(torch, rec["layers"], tensors, at, f"{state}.{i}")

            class Residual(nn.Module):
                def __init__(self, f):
                    super().__init__()
                    self.f = f

                def forward(self, x):  # Y = X + f(X)
                    return x + self.f(x)

            mods.append(Residual(inner))
        elif kind == "MaxPool2D":
            size = tuple(rec["pool_size"])
            mods.append(nn.MaxPool2d(size, stride=tuple(rec["strides"] or size)))
        elif kind == "Flatten":  # fnn flattens (H, W, C): back to channels-last first
            mods.append(_NHWCFlatten(torch))
        elif kind == "Dense":
            w = t(f"{at}.w")  # (in, out) -> Linear's (out, in)
            lin = nn.Linear(w.shape[0], w.shape[1])
            lin.weight.data, lin.bias.data = w.T.contiguous(), t(f"{at}.b")
            mods += [lin, acts[rec["activation"]]()]
        else:
            raise AssertionError(f"no torch counterpart written for {kind}")
    return nn.Sequential(*mods)


def _NHWCFlatten(torch):
    class NHWCFlatten(torch.nn.Module):
        def forward(self, x):  # (N, C, H, W) -> (N, H·W·C) row-major over (H, W, C)
            return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)

    return NHWCFlatten()


def test_pytorch_model_from_the_file_predicts_like_fnn(run, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors import safe_open

    from fnn.data.shapes import shapes

    out = tmp_path / "w.safetensors"
    assert run_cli("export", run, "--format", "safetensors", "--output", out)[0] == 0
    with safe_open(str(out), "np") as f:
        meta = f.metadata()
    tensors = safetensors_numpy.load_file(str(out))
    model = _torch_model(torch, json.loads(meta["layers"]), tensors).eval()
    x, _ = shapes(n_samples=64, seed=123)  # images fnn never trained on: uint8 (64, 256)
    np.savez(tmp_path / "x.npz", x=x.astype(np.float32))
    rc, _, err = run_cli("predict", run, tmp_path / "x.npz", "--output", tmp_path / "p.csv")
    assert rc == 0, err
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.reader(f))
    fnn_classes = [r[0] for r in rows[1:]]
    fnn_probs = np.asarray([[float(v) for v in r[1:]] for r in rows[1:]])
    h, w, c = json.loads(meta["input_shape"])
    xt = torch.from_numpy(x.astype(np.float32) / 255.0).reshape(-1, h, w, c).permute(0, 3, 1, 2)
    with torch.no_grad():
        probs = model(xt).numpy()
    names = json.loads(meta["classes"])
    assert [names[i] for i in probs.argmax(axis=1)] == fnn_classes
    np.testing.assert_allclose(probs, fnn_probs, atol=1e-4)
