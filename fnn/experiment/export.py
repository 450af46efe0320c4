"""``fnn export``: a trained model as a serialized ``jax.export.Exported`` (StableHLO).

The file holds exactly ``jax.export.export(jax.jit(f))(x_spec).serialize()`` where ``f`` maps
raw float32 inputs ``(batch, *input_shape)`` to the network's outputs (for a sequence model:
int32 token windows ``(batch, T)`` to logits ``(batch, T, V)``), with the trained
parameters and the training-time preprocessing (1/255 for uint8 images, the standardization
statistics) folded in as constants, and ``batch`` a symbolic dimension. Loading needs only JAX::

    exported = jax.export.deserialize(open("model.jax", "rb").read())
    y = exported.call(x)          # x: float32 (batch, *input_shape)

Beside it, ``FILE.json`` says what the function expects and returns: input shape and dtype,
output kind and shape, class names, the platforms it was lowered for, the file's SHA-256
(``sha256``), the SHA-256 of the metadata's own fields (``metadata_sha256``), and the fnn and
JAX versions. :func:`load` checks both hashes and every field it uses against the model itself
(input and output shapes, task, classes), so an edited or corrupted pair is a one-line
:class:`ArtifactError`, never a crash at call time.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np


FORMAT = "fnn-export"
DEFAULT_NAME = "model.jax"
PLATFORMS = ("cpu", "cuda")  # lowered for both: the file runs on either


TASKS = ("classification", "regression", "sequence")
INPUT_DTYPES = ("float32", "int32")  # int32: a sequence model's token ids
HASHES = ("sha256", "metadata_sha256")


class ArtifactError(ValueError):
    """An exported file that cannot be read (one line; exit status 2)."""


def metadata_hash(meta: dict) -> str:
    """SHA-256 of the metadata's fields (all but the two hashes), as canonical JSON."""
    fields = {k: v for k, v in meta.items() if k not in HASHES}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def default_output(run_dir, member: Optional[int], members: int, *,
                   extension: str = ".jax") -> Path:
    """``RUN_DIR/model.jax``; ``RUN_DIR/model-<i>.jax`` for member i of a sweep (``extension``
    ``.safetensors`` for the weights)."""
    name = "model" + extension if members == 1 else f"model-{member}{extension}"
    return Path(run_dir) / name


def handle_and_output(run_dir, output, member, *, extension: str, sidecar: bool):
    """(run handle of ``member``, output path) of an export, every check done first.

    The output (default :func:`default_output`) and its ``.json`` sidecar, when ``sidecar``,
    may not be a directory nor any other file of a run directory
    (:func:`fnn.experiment.rundir.check_output`); inside a run directory only this export's
    own files (``model[-<i>]<extension>``) may be replaced.

    Returns:
      (handle, output path, the paths it writes).
    """
    from fnn.experiment import handle as handle_mod
    from fnn.experiment.rundir import check_output

    own = r"model(-\d+)?" + re.escape(extension)
    if output:  # the path first: a mistyped --output is refused before the run is read
        check_output(output, "--output", own=own)
    labels = handle_mod.member_labels(run_dir)
    h = handle_mod.load_run(run_dir, member=member)
    out = Path(output) if output else default_output(run_dir, h.member, len(labels),
                                                      extension=extension)
    check_output(out, "--output", own=own)
    paths = [out]
    if sidecar:
        paths.append(check_output(Path(str(out) + ".json"), "--output", own=own + r"\.json"))
    return h, out, paths


def output_kind(task: str, output: str, units: int) -> str:
    """What the outputs mean: "probabilities" (softmax over classes), "probability" (one
    sigmoid unit: P(class 1)), "independent_probabilities" (sigmoid units), "scores"
    (other classification outputs), "logits" (a sequence model's Z(L) (T, V) per example:
    softmax over the last axis gives the next token's probabilities) or "regression"."""
    if task == "sequence":
        return "logits"
    if task != "classification":
        return "regression"
    if output == "softmax":
        return "probabilities"
    if output == "sigmoid":
        return "probability" if units == 1 else "independent_probabilities"
    return "scores"


def preprocessing_text(spec) -> str:
    """What is applied to raw inputs before the network, in words (for the metadata)."""
    if spec.raw_dtype == "uint8":
        return "round, clip to [0, 255], x / 255"
    return "(x - mean) / std" if spec.x_mean is not None else "none"


def export_handle(handle, *, platforms=PLATFORMS) -> tuple[bytes, dict]:
    """(serialized Exported, metadata dict) of a :class:`fnn.experiment.handle.RunHandle`."""
    from fnn.version import __version__

    shape = tuple(handle.input_shape)
    tokens = bool(handle.net.integer_inputs)  # int32 token windows in, logits out
    in_dtype = "int32" if tokens else "float32"
    dims = jax.export.symbolic_shape(", ".join(["b", *map(str, shape)]))
    x_spec = jax.ShapeDtypeStruct(dims, jnp.dtype(in_dtype))
    exported = jax.export.export(jax.jit(handle.prediction_fn(logits=tokens)),
                                 platforms=platforms)(x_spec)
    data = exported.serialize()
    out_shape = [int(d) for d in exported.out_avals[0].shape[1:]]
    classes = (handle.vocabulary if tokens else handle.classes) or None
    meta = {
        "format": FORMAT, "format_version": 1,
        "input_shape": list(shape), "input_dtype": in_dtype, "batch": "symbolic",
        "output_shape": out_shape, "output_dtype": str(exported.out_avals[0].dtype),
        "output_kind": output_kind(handle.task, handle.net.output, out_shape[-1]),
        "output_activation": handle.net.output,
        "task": handle.task, "classes": classes,
        "preprocessing": preprocessing_text(handle.spec),
        "dataset": handle.spec.name, "run_dir": str(handle.run_dir.resolve()),
        "member": handle.member, "member_label": handle.label,
        "platforms": list(exported.platforms), "sha256": hashlib.sha256(data).hexdigest(),
        "fnn_version": __version__, "jax_version": jax.__version__,
        "load": "jax.export.deserialize(open(FILE, 'rb').read()).call(x)",
    }
    meta["metadata_sha256"] = metadata_hash(meta)
    return data, meta


def export_run(run_dir, output=None, *, member: Union[int, str, None] = None) -> Path:
    """Export one member of ``run_dir`` to ``output`` (default :func:`default_output`) and
    ``output + ".json"``. Everything is checked and serialized before either file is written,
    and the two are written as one atomic step (a full disk leaves neither).

    Returns:
      the path of the exported file.
    Raises:
      ValueError: not a run directory, no checkpoint, no such member, an output that is a
        directory or a file of a run directory (one line).
      fnn.util.fileio.WriteError: a file could not be written (one line naming it).
    """
    from fnn.experiment.rundir import write_output

    h, out, (_, meta_path) = handle_and_output(run_dir, output, member, extension=".jax",
                                               sidecar=True)
    data, meta = export_handle(h)
    text = json.dumps(meta, indent=2) + "\n"
    write_output([(out, data), (meta_path, text.encode("utf-8"))])  # both or neither
    return out


def load(path) -> tuple["jax.export.Exported", dict]:
    """(Exported, metadata) of an exported file and its ``.json``.

    Raises:
      ArtifactError: missing or corrupt file or metadata, or a checksum mismatch (one line).
    """
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{str(p)!r}: no such exported model")
    meta_path = Path(str(p) + ".json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{p.name}: no {meta_path.name} beside it (written by fnn export)"
                            ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{meta_path.name}: unreadable ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{meta_path.name}: not an fnn export metadata file")
    data = p.read_bytes()
    for key in HASHES:
        if key in meta and not (isinstance(meta[key], str) and meta[key]):
            raise ArtifactError(f"{meta_path.name}: {key} is {_shown(meta[key])}; expected the "
                                "hex digest fnn export wrote")
    if meta.get("sha256") and hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise ArtifactError(f"{p.name}: corrupt (its SHA-256 differs from {meta_path.name})")
    if meta.get("metadata_sha256") and metadata_hash(meta) != meta["metadata_sha256"]:
        raise ArtifactError(f"{meta_path.name}: edited or corrupt (its fields' SHA-256 differs "
                            "from its metadata_sha256); export the model again")
    try:
        exported = jax.export.deserialize(bytearray(data))
    except Exception as err:  # flatbuffers raise assorted types on garbage
        reason = (str(err).splitlines() or [""])[0][:80] or type(err).__name__
        raise ArtifactError(f"{p.name}: not a serialized jax.export model ({reason})") from None
    _parse_module(exported, p.name)
    check_metadata(meta, exported, meta_path.name)
    return exported, meta


def _shown(v, missing: bool = False) -> str:
    if missing:
        return "missing"
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_module(exported, name: str) -> None:
    """Parse the StableHLO module now (a bit flip fails here, not at call time); MLIR's own
    diagnostics, which it writes to file descriptor 2, are kept off the terminal."""
    import os
    import tempfile

    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            try:
                exported.mlir_module()
                err = None
            except Exception as e:  # noqa: BLE001 - MLIR/XLA raise assorted types
                err = e
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if err is not None:
            sink.seek(0)
            said = sink.read().decode("utf-8", "replace").strip().splitlines()
            why = (said[0] if said else (str(err).splitlines() or [type(err).__name__])[0])
            raise ArtifactError(f"{name}: corrupt model (its StableHLO does not parse: "
                                f"{why[:100]})")


def check_metadata(meta: dict, exported, name: str = "metadata") -> None:
    """The fields :func:`call` and ``fnn predict`` use, checked against the model itself.

    Raises:
      ArtifactError: ``input_shape`` not a list of positive ints or not the model's input,
        ``task`` not classification / regression, ``classes`` not a list of names, one per
        output (two for one sigmoid unit) (one line).
    """
    shape = meta.get("input_shape")
    if not (isinstance(shape, list) and shape and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)):
        raise ArtifactError(f"{name}: input_shape is {_shown(shape, 'input_shape' not in meta)}; expected a list of "
                            "positive integers such as [16, 16, 1]")
    model_in = [int(d) for d in exported.in_avals[0].shape[1:]]
    if shape != model_in:
        raise ArtifactError(f"{name}: input_shape {shape} differs from the model's input "
                            f"{model_in}")
    in_dtype, model_dtype = meta.get("input_dtype"), str(exported.in_avals[0].dtype)
    if in_dtype not in INPUT_DTYPES or in_dtype != model_dtype:
        raise ArtifactError(f"{name}: input_dtype is {_shown(in_dtype, 'input_dtype' not in meta)}; "
                            f"expected the model's input dtype {model_dtype!r}")
    task = meta.get("task")
    if task not in TASKS:
        raise ArtifactError(f"{name}: task is {_shown(task, 'task' not in meta)}; expected one of: "
                            f"{', '.join(TASKS)}")
    outputs = int(exported.out_avals[0].shape[-1])
    classes = meta.get("classes")
    if task in ("classification", "sequence") and classes is not None:
        want = 2 if outputs == 1 and task == "classification" else outputs
        what = "tokens" if task == "sequence" else "class names"
        if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
            raise ArtifactError(f"{name}: classes is {_shown(classes)}; expected a list of "
                                f"{want} {what}")
        if len(classes) != want:
            raise ArtifactError(f"{name}: {len(classes)} class name(s) for a model of {outputs} "
                                f"output(s); expected {want} names")


def call(exported, meta: dict, x: np.ndarray) -> np.ndarray:
    """``exported.call(x)`` as NumPy, on inputs (n, *input_shape), (n, H, W) or flat (n, F)
    (:func:`fnn.data.validate.conform_inputs`), cast to float32; a sequence model's token ids
    (n, T) are checked against the vocabulary (:func:`fnn.data.validate.token_ids`) and
    passed as int32."""
    from fnn.data.validate import conform_inputs, token_ids

    x = conform_inputs(x, tuple(meta["input_shape"]))
    if meta.get("input_dtype") == "int32":
        x = token_ids(x, int(exported.out_avals[0].shape[-1]))
    try:
        return np.asarray(exported.call(jnp.asarray(x, meta.get("input_dtype", "float32"))))
    except Exception as err:  # noqa: BLE001 - a corrupt module can still fail to compile
        if not type(err).__name__.endswith("RuntimeError"):
            raise
        why = (str(err).strip().splitlines() or [type(err).__name__])[0][:100]
        raise ArtifactError(f"the exported model cannot run ({why}); export it again") from None
