"""``fnn export --format safetensors``: a trained model's weights in the safetensors format.

The file holds every parameter and every BatchNorm running statistic of one member as a named
tensor, readable by the ``safetensors`` package in any framework
(``safetensors.numpy.load_file(path)``, ``safetensors.torch.load_file(path)``, ...). Names are
the key paths of fnn's parameter and state trees, dotted:

    layers.<i>.<name>        parameter ``name`` of layer i          (params[i][name])
    layers.<i>.<j>.<name>    inner layer j of a Residual at i      (params[i][j][name])
    state.<i>.mean / .var    BatchNorm i's running mean / variance (net_state[i][...])

Layouts (arrays are stored exactly as fnn holds them; nothing is transposed):

    Dense      w (in, out), b (out,)            Z = X W + b          torch Linear: weight = w.T
    Conv2D     w (kh, kw, C_in, C_out) HWIO,    cross-correlation,   torch Conv2d: weight =
               b (C_out,)                       NHWC activations     w.transpose(3, 2, 0, 1) (OIHW)
    BatchNorm  scale γ (C,), bias β (C,)        Y = γ X̂ + β;  state mean (C,), var (C,) (biased),
               and eps, momentum in the metadata (momentum is the weight of the *old* value,
               Keras' convention; torch's momentum is 1 − it)
    LayerNorm  scale γ (C,), bias β (C,)        over the last axis
    Flatten    row-major over (H, W, C): a framework with NCHW activations must permute to NHWC
               before flattening (or reorder the next Dense kernel's rows)
    LSTM       w (D + H, 4H) = [W_x; W_h], gates i, f, g, o along the last axis (PyTorch's
               order): torch weight_ih_l0 = w[:D].T, weight_hh_l0 = w[D:].T, bias_ih_l0 = b
    attention  qkv.w (D, 3D): Q, K, V in that order along the last axis

The file's metadata (``safetensors.safe_open(path, "np").metadata()``, strings) holds
``format`` ("fnn-weights"), ``format_version``, ``network`` (the one-line description),
``layers`` (JSON: each layer's name, type and fields), ``input_shape``, ``dtype``, ``task``,
``classes``, ``output_activation``, ``preprocessing`` and the fnn version. See
docs/weights.md for rebuilding a model elsewhere.

``safetensors`` is an optional extra (``pip install 'fnn[weights]'``); without it the export is
one line (exit status 2) and nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional, Union

import jax
import numpy as np

from fnn.experiment.members import RunDirError

FORMAT = "fnn-weights"
FORMATS = ("jax", "safetensors")
EXTENSION = ".safetensors"


class MissingExtra(ValueError):
    """An optional dependency is not installed (one line; exit status 2)."""


def require_safetensors():
    """The ``safetensors.numpy`` module. Raises MissingExtra (one line) when it is absent."""
    try:
        import safetensors.numpy as st
    except ImportError:
        raise MissingExtra("--format safetensors: the safetensors package is not installed; "
                           "pip install 'fnn[weights]' (or pip install safetensors)") from None
    return st


def _key(entry) -> str:
    if isinstance(entry, jax.tree_util.SequenceKey):
        return str(entry.idx)
    if isinstance(entry, jax.tree_util.DictKey):
        return str(entry.key)
    if isinstance(entry, jax.tree_util.GetAttrKey):
        return str(entry.name)
    return str(entry).strip(".[]'\"")


def named_arrays(tree, prefix: str) -> dict[str, np.ndarray]:
    """{"<prefix>.<i>.<name>": array} for every leaf of ``tree`` (its key path, dotted).

    Args:
      tree: a params or state pytree (tuples and dicts of arrays); None gives {}.
      prefix: "layers" or "state".
    Returns:
      host NumPy arrays (C-contiguous), in tree order.
    """
    if tree is None:
        return {}
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = ".".join([prefix, *(_key(p) for p in path)])
        out[name] = np.ascontiguousarray(np.asarray(jax.device_get(leaf)))
    return out


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return layer_record(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return repr(value)


def layer_record(layer) -> dict:
    """{"type": class name, field: value, ...} of a layer (a Residual's layers nested)."""
    rec = {"type": type(layer).__name__}
    if dataclasses.is_dataclass(layer):
        for f in dataclasses.fields(layer):
            if f.init and f.repr:
                rec[f.name] = _jsonable(getattr(layer, f.name))
    return rec


def tensors_and_metadata(handle) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(name -> array, metadata) of a :class:`fnn.experiment.handle.RunHandle`."""
    from fnn.experiment.export import output_kind, preprocessing_text
    from fnn.version import __version__

    tensors = {**named_arrays(handle.params, "layers"),
               **named_arrays(handle.net_state, "state")}
    bad = [n for n, a in tensors.items() if a.dtype.kind not in "fiub"]
    if bad:
        raise RunDirError(f"{bad[0]}: dtype {tensors[bad[0]].dtype} has no safetensors type")
    net, spec = handle.net, handle.spec
    layers = getattr(net, "layers", None)
    meta = {
        "format": FORMAT, "format_version": "1", "fnn_version": __version__,
        "network": net.describe() if callable(getattr(net, "describe", None)) else repr(net),
        "input_shape": json.dumps(list(handle.input_shape)), "dtype": str(net.dtype),
        "task": handle.task, "classes": json.dumps(handle.classes or []),
        "output_activation": str(net.output),
        "output_kind": output_kind(handle.task, net.output, int(np.prod(net.output_shape))),
        "preprocessing": preprocessing_text(spec),
        "member": str(handle.member), "member_label": handle.label,
        "layout": "Dense w (in, out); Conv2D w (kh, kw, in, out) HWIO; NHWC activations; "
                  "Flatten row-major over (H, W, C); see docs/weights.md",
    }
    if layers is not None:
        meta["layers"] = json.dumps([{"name": f"layers.{i}", **layer_record(layer)}
                                     for i, layer in enumerate(layers)])
    if spec.x_mean is not None:
        meta["x_mean"] = json.dumps(np.asarray(spec.x_mean, np.float64).ravel().tolist())
        meta["x_std"] = json.dumps(np.asarray(spec.x_std, np.float64).ravel().tolist())
    return tensors, meta


def default_output(run_dir, member: Optional[int], members: int) -> Path:
    """``RUN_DIR/model.safetensors``; ``RUN_DIR/model-<i>.safetensors`` for member i of a sweep."""
    from fnn.experiment import export

    return export.default_output(run_dir, member, members, extension=EXTENSION)


def export_weights(run_dir, output=None, *, member: Union[int, str, None] = None) -> Path:
    """Write one member's parameters and network state of ``run_dir`` as safetensors.

    Everything (the extra, the run directory, the member, the output path) is checked and the
    file's bytes are made before anything is written; the write is atomic.

    Args:
      run_dir: a finished run directory.  output: the file (default :func:`default_output`).
      member: a sweep member's index or label (None for a single run).
    Returns:
      the path written.
    Raises:
      MissingExtra: safetensors is not installed.  ValueError (RunDirError,
        CheckpointError, UsageError): not a run directory, no such member, an output that is a
        directory or a file of a run directory.  fnn.util.fileio.WriteError: a failed write.
    """
    from fnn.experiment import export
    from fnn.experiment.rundir import write_output

    st = require_safetensors()
    h, out, _ = export.handle_and_output(run_dir, output, member, extension=EXTENSION,
                                         sidecar=False)
    tensors, meta = tensors_and_metadata(h)
    data = st.save(tensors, metadata=meta)
    write_output([(out, data)])
    return out
