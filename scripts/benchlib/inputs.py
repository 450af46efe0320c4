"""What every contestant of a case shares: the data, the initial weights, the batch order.

All NumPy (imported inside the functions), so that no framework is loaded before a worker asks.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def mlp_data(cfg: dict, seed: int, val_samples: int):
    """Random features (N, in) float32 ~ N(0, 1) and labels (N,) int32, plus a small val set."""
    import numpy as np

    rng = np.random.default_rng([seed, 1])
    n, fin, k = cfg["samples"], cfg["sizes"][0], cfg["sizes"][-1]
    x = rng.standard_normal((n, fin), dtype=np.float32)
    y = rng.integers(0, k, n).astype(np.int32)
    xv = rng.standard_normal((val_samples, fin), dtype=np.float32)
    yv = rng.integers(0, k, val_samples).astype(np.int32)
    return x, y, xv, yv


def init_params(sizes, seed: int):
    """fnn's default initialization drawn with NumPy: He-normal N(0, 2/fan_in) for the ReLU
    layers, Glorot-uniform U(±√(6/(fan_in+fan_out))) for the (softmax) output layer, zero biases.

    Returns: list of (w (in, out) float32, b (out,) float32).
    """
    import numpy as np

    rng = np.random.default_rng([seed, 2])
    out = []
    for l in range(len(sizes) - 1):
        fi, fo = sizes[l], sizes[l + 1]
        if l < len(sizes) - 2:
            w = rng.standard_normal((fi, fo)) * math.sqrt(2.0 / fi)
        else:
            r = math.sqrt(6.0 / (fi + fo))
            w = rng.uniform(-r, r, (fi, fo))
        out.append((w.astype(np.float32), np.zeros((fo,), np.float32)))
    return out


def cnn_shapes(cfg: dict):
    """The CNN's parameter shapes in fnn's layout: conv (kh, kw, C, F) HWIO kernels, then the
    dense layers (in, out); and the spatial size after the two 2x2 pools (28 -> 14 -> 7)."""
    h, w, c = cfg["input_shape"]
    k, shapes = cfg["kernel"], []
    for f in cfg["filters"]:
        shapes.append((k, k, c, f))
        c, h, w = f, h // cfg["pool"], w // cfg["pool"]
    flat = h * w * c
    shapes += [(flat, cfg["dense"]), (cfg["dense"], cfg["classes"])]
    return shapes, (h, w, c)


def cnn_params(cfg: dict, seed: int):
    """fnn's default initialization of the CNN, drawn with NumPy: He-normal N(0, 2/fan_in) for
    the ReLU conv and dense layers (a conv's fan_in = kh·kw·C, as fnn's Conv2D), Glorot-uniform
    for the softmax output, zero biases. Returns a list of (w, b) in fnn's layout."""
    import numpy as np

    rng = np.random.default_rng([seed, 6])
    shapes, _ = cnn_shapes(cfg)
    out = []
    for l, shape in enumerate(shapes):
        fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
        if l < len(shapes) - 1:
            w = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
        else:
            r = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-r, r, shape)
        out.append((w.astype(np.float32), np.zeros((fan_out,), np.float32)))
    return out


def cnn_params_to_torch(cfg: dict, params):
    """fnn's CNN parameters in PyTorch's layout, computing the same function: conv kernels HWIO
    -> OIHW; dense (in, out) -> (out, in); and the first dense layer's input rows reordered from
    fnn's NHWC flatten order (h, w, c) to PyTorch's NCHW order (c, h, w)."""
    import numpy as np

    _, (h, w, c) = cnn_shapes(cfg)
    nconv = len(cfg["filters"])
    out = []
    for l, (wt, b) in enumerate(params):
        if l < nconv:
            t = wt.transpose(3, 2, 0, 1)
        elif l == nconv:
            t = wt.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1).T
        else:
            t = wt.T
        out.append((np.ascontiguousarray(t), b.copy()))
    return out


def cnn_data(cfg: dict, seed: int):
    """``distinct_batches`` random batches, cycled by the step loop: x (B, N, H, W, C) float32
    ~ N(0, 1) in fnn's NHWC layout, y (B, N) int32 labels."""
    import numpy as np

    rng = np.random.default_rng([seed, 7])
    nb, n = cfg["distinct_batches"], cfg["batch"]
    x = rng.standard_normal((nb, n, *cfg["input_shape"]), dtype=np.float32)
    y = rng.integers(0, cfg["classes"], (nb, n)).astype(np.int32)
    return x, y


def epoch_order(n: int, batch: int, seed: int, epoch: int):
    """The epoch's permutation padded with its own first entries: (batches, batch) int32."""
    import numpy as np

    nb = -(-n // batch)
    perm = np.random.default_rng([seed, 3, epoch]).permutation(n)
    pad = nb * batch - n
    if pad:
        perm = np.concatenate([perm, perm[:pad]])
    return perm.reshape(nb, batch).astype(np.int32)


def host_batches(x, y, order):
    """The epoch's batches as NumPy views of one per-epoch gather (as PyTorch's loop does with
    ``x[idx]``); each step hands its view to the jitted function, as the README's loop does."""
    xs, ys = x[order], y[order]
    return [(xs[i], ys[i]) for i in range(order.shape[0])]


def fashion_arrays(val_fraction: float = 0.1, seed: int = 0, n_samples=None):
    """Fashion-MNIST from the same files and with the same split as fnn.data.load, NumPy only
    (no jax import in the peers' processes). ``n_samples`` keeps the first n training and the
    first n test images, as the config's ``data.n_samples``. Returns uint8 images (N, 784) and
    int labels."""
    import gzip

    import numpy as np

    dirs = []
    if os.environ.get("FNN_DATA_DIR"):
        dirs.append(Path(os.environ["FNN_DATA_DIR"]) / "fashion_mnist")
    dirs += [Path.home() / ".cache" / "fnn" / "fashion_mnist", Path("/usr/share/datasets/fashion-mnist")]
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")

    def find(d, name):
        for cand in (d / (name + ".gz"), d / name):
            if cand.is_file():
                return cand
        return None

    for d in dirs:
        paths = [find(d, n) for n in names]
        if all(paths):
            break
    else:
        raise FileNotFoundError("Fashion-MNIST files not found in " + ", ".join(map(str, dirs)))

    def read(path):
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        ndim = raw[3]
        shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
        arr = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)
        return arr.reshape(shape[0], -1) if ndim > 1 else arr

    x, y, xt, yt = (read(p) for p in paths)
    if n_samples is not None:
        x, y, xt, yt = x[:n_samples], y[:n_samples], xt[:n_samples], yt[:n_samples]
    n = x.shape[0]
    n_val = max(1, int(round(val_fraction * n)))
    perm = np.random.default_rng([1, int(seed)]).permutation(n)  # fnn.data.splits.SPLIT_STREAM = 1
    val, train = perm[:n_val], perm[n_val:]
    return x[train], y[train].astype(np.int64), x[val], y[val].astype(np.int64), xt, yt.astype(np.int64)
