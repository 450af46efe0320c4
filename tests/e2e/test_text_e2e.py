"""The built-in sequence task end to end through the CLI, at tiny size: train a GPT on the adder
by steps, kill -9 and ``--resume`` to bitwise the uninterrupted run, evaluate the held-out
problems (exact match), generate with a fixed seed twice to the same text, export it and run
the artifact with JAX alone, predict, gradcheck and inspect it; plus a text file the test
writes, trained by an LSTM and sampled through ``RunHandle.generate``."""
from __future__ import annotations

import json
import signal

import pytest

import fnn
from cli_helpers import finish_process as _finish
from cli_helpers import (CONFIGS, assert_bitwise_equal, checkpoint_arrays, final_checkpoint,
                         newest_epoch, read_metrics, read_summary, run_cli, spawn,
                         wait_for_epoch, write_config, write_text_file)

pytestmark = pytest.mark.slow

ROUNDS = 12  # evaluations: 12 x 25 steps
ADDER = f"""
[data]
name = "adder"
digits = 1

[[model.layers]]
type = "embedding"
features = 16

[[model.layers]]
type = "positional_embedding"

[[model.layers]]
type = "repeat"
n = 1
layer = {{ type = "transformer_block", num_heads = 2, mlp_ratio = 2 }}

[optimizer]
name = "adamw"
learning_rate = 3e-3
b2 = 0.99
weight_decay = 0.1
clip_norm = 1.0

[optimizer.schedule]
name = "cosine"
warmup_steps = 10
alpha = 0.1

[training]
iterations = {ROUNDS * 25}
eval_interval = 25
eval_iters = 2
batch_size = 16

[output]
checkpoint_every = 1
progress = false
plots = false
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-e2e")
    write_config(root / "adder.toml", ADDER)
    return root, tmp_path_factory.mktemp("jax-cache")




@pytest.fixture(scope="module")
def adder_run(work):
    """The uninterrupted adder run (RUN_DIR)."""
    root, cache = work
    _finish(root, cache, "train", "adder.toml", "--out", "ref", "--quiet")
    return root / "ref"


def test_adder_trains_resumes_bitwise_evaluates_and_generates(work, adder_run):
    root, cache = work
    ref = adder_run
    assert {"vocab.json", "config.toml", "metrics.csv", "summary.json"} <= {
        p.name for p in ref.iterdir()}
    assert json.loads((ref / "vocab.json").read_text())["chars"] == "0123456789"
    rows = read_metrics(ref / "metrics.csv")
    assert [int(float(r["step"])) for r in rows] == [25 * (i + 1) for i in range(ROUNDS)]
    assert {"val_loss", "val_exact_match"} <= set(rows[0])
    summary = read_summary(ref)
    assert summary["iterations"] == ROUNDS * 25 and summary["epochs_trained"] == ROUNDS
    assert 0.0 <= summary["test_exact_match"] <= 1.0

    # kill -9 a few evaluations in, then --resume: bitwise the uninterrupted run
    ckpts = root / "killed" / "checkpoints"
    train = ("train", "adder.toml", "--out", "killed", "--quiet")
    proc = spawn(train, cwd=root, cache_dir=cache)
    wait_for_epoch(proc, ckpts, 3)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert 3 <= newest_epoch(ckpts) < ROUNDS
    assert not (root / "killed" / "summary.json").exists()
    _finish(root, cache, *train, "--resume")
    assert_bitwise_equal(checkpoint_arrays(final_checkpoint(ckpts)),
                         checkpoint_arrays(final_checkpoint(ref / "checkpoints")),
                         "whole state and history")
    assert (root / "killed" / "metrics.csv").read_bytes() == (ref / "metrics.csv").read_bytes()

    # evaluate: the held-out problems, exact match included
    rc, out, err = run_cli("evaluate", ref, "--json")
    assert rc == 0, err
    ev = json.loads(out)
    assert ev["split"] == "test" and ev["examples"] == 10
    assert abs(ev["exact_match"] - summary["test_exact_match"]) < 1e-6

    # generate: the same seed twice gives the same text; another seed, greedy, bad prompts
    gen = ("generate", ref, "--prompt", "12", "--tokens", "30", "--seed", "7")
    first, second = run_cli(*gen), run_cli(*gen)
    assert first[0] == 0 and first == second, first
    text = first[1].rstrip("\n")
    assert len(text) == 30 and set(text) <= set("0123456789")
    greedy = run_cli("generate", ref, "--prompt", "34", "--tokens", "2", "--temperature", "0")
    assert greedy[0] == 0 and len(greedy[1].strip()) == 2
    for args, expected in [(("--prompt", "1+2"), "--prompt: character '+' (U+002B) at position 1"),
                           (("--top-k", "11"), "--top-k: 11; expected an integer in [0, 10]"),
                           (("--temperature", "-1"), "--temperature: -1.0; expected"),
                           (("--tokens", "0"), "--tokens: 0; expected")]:
        rc, out, err = run_cli("generate", ref, *args)
        assert rc == 2 and out == "" and len(err.splitlines()) == 1, err
        assert err.startswith(f"fnn: error: {expected}"), err


def test_text_file_lstm_run_samples_the_same_text_for_the_same_seed(work, tmp_path):
    root, _ = work
    data = write_text_file(tmp_path / "input.txt")
    rc, out, err = run_cli("train", CONFIGS / "char_lstm.toml", "--set", f"data.path={data}",
                           "--set", "training.iterations=20", "--set", "training.eval_interval=10",
                           "--set", "training.eval_iters=1", "--set",
                           "optimizer.schedule.warmup_steps=5", "--set", "output.plots=false",
                           "--set", "output.progress=false", "--out", tmp_path / "lstm",
                           "--quiet")
    assert rc == 0, err
    run = fnn.load_run(tmp_path / "lstm")
    a = run.generate("to be ", tokens=40, seed=3)
    assert a == run.generate("to be ", tokens=40, seed=3)
    assert a != run.generate("to be ", tokens=40, seed=4)
    assert len(a) == 40 and set(a) <= set(open(data, encoding="utf-8").read())
    assert run.generate("to be ", tokens=5, temperature=0) == \
        run.generate("to be ", tokens=5, temperature=0, seed=9)  # greedy ignores the seed
    with pytest.raises(ValueError, match=r"^--prompt: character 'Q' \(U\+0051\) at position 0"):
        run.generate("Q")


RUN_ARTIFACT = """
import json, sys
import jax, numpy as np
exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
x = np.load(sys.argv[2])["x"]
np.save(sys.argv[3], np.asarray(exported.call(x)))
print(json.dumps({"fnn": any(m == "fnn" or m.startswith("fnn.") for m in sys.modules),
                  "in": str(exported.in_avals[0])}))
"""


def test_adder_exports_token_windows_in_logits_out_and_runs_without_fnn(adder_run, tmp_path):
    import subprocess
    import sys

    import numpy as np

    run = fnn.load_run(adder_run)
    rc, out, err = run_cli("export", adder_run, "--output", tmp_path / "m.jax")
    assert rc == 0, err
    meta = json.loads((tmp_path / "m.jax.json").read_text())
    assert (meta["task"], meta["input_dtype"], meta["input_shape"]) == ("sequence", "int32", [3])
    assert meta["output_kind"] == "logits" and meta["output_shape"] == [3, 10]  # digits = 1: a+b=c in 3 positions
    assert meta["classes"] == list("0123456789")  # the vocabulary: token i is classes[i]

    x = np.array([[1, 2, 3], [9, 9, 1], [0, 0, 0]], np.int32)
    np.savez(tmp_path / "x.npz", x=x)
    proc = subprocess.run([sys.executable, "-c", RUN_ARTIFACT, tmp_path / "m.jax",
                           tmp_path / "x.npz", tmp_path / "z.npy"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts == {"fnn": False, "in": "int32[b,3]"}, facts
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (3, 3, 10)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(p, run.predict(x), atol=1e-6)  # softmax(logits) = predict

    # fnn predict on the artifact and on the run: the same CSV, one row per position
    for source in (tmp_path / "m.jax", adder_run):
        out_csv = tmp_path / f"{source.name}.csv"
        rc, _, err = run_cli("predict", source, tmp_path / "x.npz", "--output", out_csv)
        assert rc == 0, err
        lines = out_csv.read_text().splitlines()
        assert lines[0] == "example,position,token,next,p_next" and len(lines) == 1 + 3 * 3
        row = lines[1].split(",")
        assert row[:3] == ["0", "0", "1"] and row[3] in "0123456789" and 0 < float(row[4]) <= 1
    a, b = ([r.split(",") for r in (tmp_path / f).read_text().splitlines()[1:]]
            for f in ("m.jax.csv", "ref.csv"))
    assert [r[:4] for r in a] == [r[:4] for r in b]  # same predicted tokens
    np.testing.assert_allclose([float(r[4]) for r in a], [float(r[4]) for r in b], atol=1e-5)

    # an id outside the vocabulary is one line naming the file, row and column (not clamped)
    np.savez(tmp_path / "bad.npz", x=np.array([[1, 2, 10]]))
    for source in (tmp_path / "m.jax", adder_run):
        rc, out, err = run_cli("predict", source, tmp_path / "bad.npz",
                               "--output", tmp_path / "bad.csv")
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert err.startswith("fnn: error: INPUT bad.npz: row 0, column 2: 10 is not a token "
                              "id; expected integer token ids in [0, 9]"), err
    assert not (tmp_path / "bad.csv").exists()
    with pytest.raises(ValueError, match=r"row 0, column 0: 1\.5 is not a token id"):
        run.predict(np.array([[1.5, 0, 0]]))


@pytest.mark.parametrize("command", ["gradcheck", "inspect"])
def test_gradcheck_and_inspect_take_token_batches(command):
    """The token windows enter as ids (not floats) and every leaf passes in float64."""
    rc, out, err = run_cli(command, CONFIGS / "adder.toml", "--batch", "4")
    assert rc == 0, err
    if command == "gradcheck":
        # one row per block: the Repeat's two copies (configs/adder.toml: n = 2)
        assert "layer2[0].0.1.qkv.w" in out and "layer2[1].0.1.qkv.w" in out
        assert out.rstrip().splitlines()[-1].startswith("PASS")
    else:
        assert "Repeat" in out and "dtype float32" in out
        assert sum("TransformerBlock" in ln for ln in out.splitlines()[3:]) == 2
