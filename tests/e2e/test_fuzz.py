"""Fuzzing the CLI's boundaries (issues 17 and 23): generated configs, ``--set`` strings, CSV/NPZ/IDX
files, layer stacks, corrupted run directories, damaged runs to ``fnn compare``, inputs to
``fnn predict`` on runs and exported models, run in-process through ``fnn.cli.main``; and
multi-device runs, in a child with four CPU devices (``fuzz_devices_worker.py``).

The property, for every input: the exit status is 0, 1 or 2 (3 is a bug: an internal error);
no traceback reaches stderr; exit 2 means one message on stderr (one line, or ConfigError's
"N problems:" followed by one indented line per problem; "fnn: warning:" / "fnn: note:" lines
may precede it) and no new file anywhere under the example's directory.

Hypothesis runs derandomized (tests/conftest.py). Examples per test: $FNN_FUZZ_EXAMPLES
(default 12, about a minute in all on 2 cores). Most inputs fail validation before anything is
compiled; the valid ones train 1 epoch of a tiny network. Locally, for the issue's campaign:

    FNN_FUZZ_EXAMPLES=1000 python -m pytest tests/e2e/test_fuzz.py -q
"""
from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import run_cli_in
from fnn.experiment import config as C

# The fuzz campaigns (generated inputs through the CLI) run in the full suite (CI), not in
# the quick `-m "not slow"` run
pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FNN_FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

BASE = {"data": {"name": "moons", "n_samples": 24},
        "model": {"hidden": [2]},
        "training": {"epochs": 1, "batch_size": 8},
        "output": {"plots": False, "progress": False, "dir": "runs"}}


# ---------------------------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------------------------
def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _one_message(lines: list[str]) -> bool:
    if len(lines) == 1:
        return True
    # ConfigError's documented exception: "N problems: <the first, complete> (all N below)",
    # then one indented line per problem
    return bool(lines) and " problems: " in lines[0] and lines[0].endswith("below)") and all(
        ln.startswith("  ") for ln in lines[1:])


def check(root: Path, *argv) -> int:
    """Run ``fnn ARGV`` with cwd ``root`` and assert the property; returns the exit status."""
    before = _snapshot(root)
    rc, out, err = run_cli_in(root, *argv)
    assert rc in (0, 1, 2), f"exit {rc}: {err}"
    assert "Traceback" not in err, err
    if rc == 2:
        lines = [ln for ln in err.splitlines()
                 if ln.strip() and not ln.startswith(("fnn: warning:", "fnn: note:"))]
        assert _one_message(lines), err
        assert lines[0].startswith("fnn: error: "), err
        new = _snapshot(root) - before
        assert not new, f"exit 2 wrote {sorted(new)}: {err}"
    return rc


class Workdir:
    """A fresh directory per example (hypothesis does not reset function-scoped fixtures)."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="fnn-fuzz-"))
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Values a careless or hostile user writes
# ---------------------------------------------------------------------------------------------
_ints = st.one_of(st.integers(-3, 70), st.sampled_from(
    [2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63)]))
_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, 1.0, 1e-300, 1e300]))
_strings = st.one_of(st.sampled_from(["", ".", "..", "../x", "a/b", "relu", "sgd", "csv",
                                      "float64", "a\x00b", "nan", "ü", " "]),
                     st.text(max_size=12))
_scalars = st.one_of(_ints, _floats, _strings, st.booleans())
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "name", "x"]), inner,
                                                 max_size=2)), max_leaves=6)
_keys = st.sampled_from(sorted(C.all_keys()) + ["data.nme", "model", "sweep.training.epochs",
                                                "training", "zzz.top", "sweep"])


def _put(raw: dict, dotted: str, value) -> None:
    node = raw
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = node[p] = {}
        node = nxt
    node[parts[-1]] = value


def _toml(raw) -> str:
    try:
        return C.dumps(raw)
    except (TypeError, ValueError, RecursionError):
        return "x = 1\n"


# ---------------------------------------------------------------------------------------------
# Configs and --set strings
# ---------------------------------------------------------------------------------------------
@FUZZ
@given(edits=st.lists(st.tuples(_keys, _values), min_size=1, max_size=3),
       garbage=st.one_of(st.none(), st.text(max_size=40), st.sampled_from(
           ["[data\n", "a = [" * 600, "x = {" * 50, "\x00", "[[data]]\nname='moons'\n",
            "data = 1\n"])),
       depth=st.sampled_from([0, 0, 0, 40, 1000]))
def test_fuzz_configs(edits, garbage, depth):
    raw = C.deepcopy(BASE)
    for key, value in edits:
        _put(raw, key, value)
    text = _toml(raw)
    if garbage is not None:
        text = garbage if len(garbage) % 2 else text + "\n" + garbage
    if depth:
        text += "\n[model]\nextra = " + "[" * depth + "]" * depth + "\n"
    with Workdir() as root:
        (root / "c.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
        check(root, "train", "c.toml")


_set_items = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", _keys, st.one_of(
        st.text(max_size=20), st.sampled_from(["[" * 1000, "1e999", "nan", '"a\\u0000b"',
                                               "99999999999999999999999", "[1,", "{a=1}",
                                               '"../up"', "-0", "true"]))),
    st.text(max_size=30))


@FUZZ
@given(items=st.lists(_set_items, min_size=1, max_size=3),
       grid=st.one_of(st.none(), st.builds(lambda k, v: f"{k}={v}", _keys, st.text(max_size=15))))
def test_fuzz_set_and_grid_strings(items, grid):
    with Workdir() as root:
        (root / "c.toml").write_text(C.dumps(BASE))
        args = ["sweep" if grid else "train", "c.toml"]
        for item in items:
            args += ["--set", item]
        if grid:
            args += ["--grid", grid]
        check(root, *args)


# ---------------------------------------------------------------------------------------------
# Data files
# ---------------------------------------------------------------------------------------------
_cells = st.one_of(st.integers(-2, 3).map(str), st.sampled_from(
    ["nan", "inf", "", "x", "1e400", "0.5", "99", "1" * 20, "a,b", '"q"', "\x00"]))


@FUZZ
@given(header=st.lists(st.sampled_from(["a", "b", "y", "", "a "]), min_size=0, max_size=4),
       rows=st.lists(st.lists(_cells, min_size=1, max_size=4), max_size=12),
       tail=st.sampled_from(["", "\n", "\xff", "x" * 140_000]), target=st.sampled_from(["", "y", "q"]))
def test_fuzz_csv_files(header, rows, tail, target):
    text = ",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    with Workdir() as root:
        (root / "d.csv").write_bytes(text.encode("utf-8", "surrogatepass") + tail.encode("latin-1"))
        raw = C.deepcopy(BASE)
        raw["data"] = {"name": "csv", "path": "d.csv", "target": target}
        (root / "c.toml").write_text(C.dumps(raw))
        check(root, "train", "c.toml")


_dtypes = st.sampled_from(["<f4", "<f8", "<i8", "<u8", "|u1", "<c16", "<U3", "<M8[s]", "|b1"])


def _npz_bytes(arrays: dict, truncate: int | None, huge: bool) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, a in arrays.items():
            member = io.BytesIO()
            if huge and name == "x":
                np.lib.format.write_array_header_1_0(
                    member, {"descr": a.dtype.str, "fortran_order": False, "shape": (2 * 10**11,)})
                member.write(b"\0" * 32)
            else:
                np.save(member, a)
            z.writestr(f"{name}.npy", member.getvalue())
    data = buf.getvalue()
    return data[:truncate] if truncate is not None else data


@FUZZ
@given(n=st.integers(0, 6), width=st.integers(0, 3), xd=_dtypes, yd=_dtypes,
       labels=st.lists(st.sampled_from([0, 1, 2, 99, 10**9, 2**40, -1]), min_size=1, max_size=6),
       truncate=st.one_of(st.none(), st.integers(0, 300)), huge=st.booleans(),
       extra=st.sampled_from([None, "classes", "x_val", "junk"]))
def test_fuzz_npz_files(n, width, xd, yd, labels, truncate, huge, extra):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, width))
    y = np.resize(np.array(labels, dtype=np.int64), n)
    with np.errstate(all="ignore"):
        arrays = {"x": x.astype(xd) if "U" not in xd else x.astype(str).astype(xd),
                  "y": y.astype(yd) if "U" not in yd else y.astype(str).astype(yd)}
    if extra:
        arrays[extra] = arrays["x"][:1]
    with Workdir() as root:
        (root / "d.npz").write_bytes(_npz_bytes(arrays, truncate, huge))
        raw = C.deepcopy(BASE)
        raw["data"] = {"name": "npz", "path": "d.npz"}
        (root / "c.toml").write_text(C.dumps(raw))
        check(root, "train", "c.toml")


@FUZZ
@given(code=st.sampled_from([0x08, 0x09, 0x0D, 0x77]), ndim=st.integers(0, 4),
       count=st.sampled_from([0, 1, 3, 0xFFFFFFFF]), side=st.sampled_from([28, 0, 2]),
       data_len=st.integers(0, 3000), gz=st.booleans(), which=st.sampled_from(["img", "lab"]))
def test_fuzz_idx_files(code, ndim, count, side, data_len, gz, which):
    from data_helpers import write_tiny_mnist

    with Workdir() as root:
        files = write_tiny_mnist(root / "mnist", n_train=3, n_test=2)
        dims = [count] + [side] * max(ndim - 1, 0)
        blob = bytes([0, 0, code, ndim]) + struct.pack(f">{ndim}I", *dims[:ndim]) + \
            bytes(data_len)
        target = files["train_images" if which == "img" else "train_labels"]
        target.write_bytes(gzip.compress(blob) if gz else blob)
        raw = C.deepcopy(BASE)
        raw["data"] = {"name": "mnist", "path": "mnist"}
        (root / "c.toml").write_text(C.dumps(raw))
        check(root, "train", "c.toml")


# ---------------------------------------------------------------------------------------------
# Corrupted run directories
# ---------------------------------------------------------------------------------------------
_RUN: dict = {}


def _a_run() -> Path:
    """One finished tiny run (trained once per session), copied for each example."""
    if "dir" not in _RUN:
        root = Path(tempfile.mkdtemp(prefix="fnn-fuzz-run-"))
        (root / "c.toml").write_text(C.dumps(BASE))
        rc = check(root, "train", "c.toml", "--out", "run")
        assert rc == 0
        _RUN["dir"] = root
    return _RUN["dir"]


@FUZZ
@given(victim=st.sampled_from(["config.toml", "summary.json", "metrics.csv", "checkpoints",
                               "ckpt"]),
       how=st.sampled_from(["delete", "truncate", "garbage", "binary", "empty"]),
       command=st.sampled_from(["evaluate", "resume", "predict"]))
def test_fuzz_corrupted_run_directories(victim, how, command):
    src = _a_run()
    with Workdir() as root:
        shutil.copytree(src / "run", root / "run")
        shutil.copy(src / "c.toml", root / "c.toml")
        if victim == "ckpt":
            paths = sorted((root / "run" / "checkpoints").glob("*"))
        else:
            paths = [root / "run" / victim]
        for p in paths:
            if how == "delete" or p.is_dir():
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            elif how == "truncate":
                p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)])
            elif how == "garbage":
                p.write_text("[[[ not what fnn wrote")
            elif how == "binary":
                p.write_bytes(b"\xff\xfe\x00\x01" * 8)
            else:
                p.write_bytes(b"")
        if command == "evaluate":
            check(root, "evaluate", "run")
        elif command == "resume":
            check(root, "train", "c.toml", "--out", "run", "--resume")
        else:
            (root / "in.csv").write_text("x0,x1\n0.1,0.2\n")
            check(root, "predict", "run", "in.csv", "--output", "p.csv")


@pytest.fixture(scope="module", autouse=True)
def _cleanup_the_shared_run():
    yield
    if "dir" in _RUN:
        shutil.rmtree(_RUN.pop("dir"), ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Layer stacks: any model.layers a user might write, on tabular, image and token data
# ---------------------------------------------------------------------------------------------
from fnn.experiment.layer_specs import SPECS  # noqa: E402

# values each field accepts (mostly), so that a fair share of the stacks build and train
_GOOD = {"units": [1, 2, 4], "filters": [1, 2, 4], "features": [2, 4], "num_heads": [1, 2],
         "kernel_size": [1, 2, 3], "pool_size": [1, 2], "strides": [1, 2], "padding": ["same",
         "valid"], "activation": ["relu", "tanh", "gelu"], "name": ["relu", "tanh"],
         "rate": [0.0, 0.5], "dropout": [0.0, 0.1], "momentum": [0.9], "eps": [1e-5],
         "return_sequences": [True, False], "mlp_ratio": [1, 2], "vocab_size": [4, 16],
         "max_len": [4, 16], "n": [1, 2], "initializer": ["he_normal", "glorot_uniform"]}


def _spec_layer(inner):
    """One ``model.layers`` entry: a real type with its fields (mostly good values, sometimes a
    hostile one, a missing required field or an unknown field), or a type that does not exist."""
    def build(draw):
        kind = draw(st.sampled_from([*SPECS, *SPECS, "bogus", "Dense", ""]))
        spec = {"type": kind}
        for name, (_, required) in SPECS.get(kind, ("", {}))[1].items():
            if name == "layer":
                spec[name] = draw(inner)
            elif name == "layers":
                spec[name] = draw(st.lists(inner, max_size=2))
            elif required or draw(st.booleans()):
                if draw(st.integers(0, 9)) == 0:
                    if required and draw(st.booleans()):
                        continue  # a required field left out
                    spec[name] = draw(_scalars)
                else:
                    spec[name] = draw(st.sampled_from(_GOOD.get(name, [1])))
        if draw(st.integers(0, 9)) == 0:
            spec[draw(st.sampled_from(["bogus", "unit", "filter"]))] = draw(_scalars)
        return spec
    return st.composite(lambda draw: build(draw))()


_leaf_layer = _spec_layer(st.just({"type": "dense", "units": 2}))
_layer = st.one_of(_leaf_layer, _spec_layer(_leaf_layer))
_DATA = {"tabular": {"name": "moons", "n_samples": 24},
         "images": {"name": "shapes", "n_samples": 24},
         "tokens": {"name": "adder", "digits": 1}}
_FIRST = {"tabular": [], "images": [{"type": "conv2d", "filters": 2}],  # a start that fits
          "tokens": [{"type": "embedding", "features": 4}]}


@FUZZ
@given(layers=st.lists(_layer, max_size=4), data=st.sampled_from(sorted(_DATA)),
       fitted=st.booleans())
def test_fuzz_layer_stacks(layers, data, fitted):
    raw = C.deepcopy(BASE)
    raw["data"] = dict(_DATA[data])
    raw["model"] = {"layers": (_FIRST[data] if fitted else []) + layers}
    if data == "tokens":  # token data train for a number of steps
        raw["training"] = {"iterations": 2, "eval_interval": 2, "batch_size": 4}
    with Workdir() as root:
        (root / "c.toml").write_text(_toml(raw))
        check(root, "train", "c.toml")


# ---------------------------------------------------------------------------------------------
# Reading runs back: compare on damaged files, predict through a run and its exported artifact
# ---------------------------------------------------------------------------------------------
_bytes = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                   st.sampled_from([b"", b"epoch,val_loss\n", b"epoch,val_loss\n1,nan\n2,x\n",
                                    b"{}", b'{"members": 3}', b"[]", b"\xff\xfe"]))


@FUZZ
@given(victim=st.sampled_from(["metrics.csv", "summary.json", "config.toml"]), blob=_bytes,
       metric=st.sampled_from(["val_loss", "train_loss", "nope", ""]),
       out=st.sampled_from(["c.png", "c.pdf", "c.svg", "c", "run/metrics.csv", "."]))
def test_fuzz_compare(victim, blob, metric, out):
    src = _a_run()
    with Workdir() as root:
        shutil.copytree(src / "run", root / "a")
        shutil.copytree(src / "run", root / "b")
        (root / "b" / victim).write_bytes(blob)
        argv = ["compare", "a", "b", "--out", out] + (["--metric", metric] if metric else [])
        check(root, *argv)


_ARTIFACT: dict = {}


def _an_artifact() -> Path:
    """The tiny run exported once per session (``fnn export``)."""
    if "dir" not in _ARTIFACT:
        src = _a_run()
        assert check(src, "export", "run", "--output", "m.jax") == 0
        _ARTIFACT["dir"] = src
    return _ARTIFACT["dir"]


@FUZZ
@given(target=st.sampled_from(["run", "m.jax"]),
       kind=st.sampled_from(["csv", "npz"]), n=st.integers(0, 4), width=st.integers(0, 4),
       dtype=_dtypes, cells=st.lists(_cells, min_size=1, max_size=8),
       member=st.sampled_from([None, "0", "1", "x", "-1"]))
def test_fuzz_predict_on_runs_and_artifacts(target, kind, n, width, dtype, cells, member):
    src = _an_artifact()
    with Workdir() as root:
        shutil.copytree(src / "run", root / "run")
        for p in src.glob("m.jax*"):
            shutil.copy(p, root / p.name)
        if kind == "csv":
            header = ",".join(f"x{j}" for j in range(width))
            rows = [",".join(np.resize(np.array(cells, dtype=object), width)) for _ in range(n)]
            (root / "in.csv").write_text(header + "\n" + "\n".join(rows) + "\n",
                                         encoding="utf-8", errors="surrogatepass")
        else:
            x = np.random.default_rng(0).normal(size=(n, width))
            with np.errstate(all="ignore"):
                a = x.astype(str).astype(dtype) if "U" in dtype else x.astype(dtype)
            (root / "in.npz").write_bytes(_npz_bytes({"x": a}, None, False))
        argv = ["predict", target, f"in.{kind}", "--output", "p.csv"]
        check(root, *argv, *(["--member", member] if member else []))


# ---------------------------------------------------------------------------------------------
# Multi-device runs: device counts, batch sizes, members and accumulation that may not divide
# ---------------------------------------------------------------------------------------------
def test_fuzz_multi_device_runs(tmp_path):
    """The property over runs on four CPU devices: parallel.devices (also more than exist or
    negative), batch sizes and member counts the devices do not divide, accumulation, the
    members' split over host devices. In a child process (the device count is fixed when JAX
    starts): tests/e2e/fuzz_devices_worker.py."""
    import subprocess
    import sys

    from cli_helpers import subprocess_env

    env = subprocess_env(tmp_path / "cache")
    env["XLA_FLAGS"] = (os.environ.get("FNN_ORIGINAL_XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=4").strip()
    env["FNN_FUZZ_EXAMPLES"] = str(EXAMPLES)
    worker = Path(__file__).with_name("fuzz_devices_worker.py")
    proc = subprocess.run([sys.executable, str(worker)], env=env, capture_output=True, text=True,
                          timeout=3000)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert f"examples {EXAMPLES}" in proc.stdout, proc.stdout
