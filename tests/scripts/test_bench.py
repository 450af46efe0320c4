"""Smoke tests of the benchmark, ``python scripts/bench.py`` (modules in scripts/benchlib/).

Tiny sizes, fnn-only contestants: they check that the command runs and that bench.json and
bench.md have their structure. They never assert a timing (benchmarks live in scripts/).
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from benchlib import cases, report, settings, workers  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_script", SCRIPTS / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

TINY = ["--quick", "--samples", "256", "--repeats", "1", "--members", "2"]


def _run(tmp_path, *argv):
    args = bench.build_parser().parse_args([*argv, "--out", str(tmp_path / "out")])
    lines = []
    results = bench.run(args, log=lines.append)
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    md = (tmp_path / "out" / "bench.md").read_text()
    return results, saved, md, lines


def _check_timed(r):
    assert r["status"] == "ok", r
    assert len(r["times_s"]) >= 1 and all(t > 0 for t in r["times_s"])
    assert r["median_s"] > 0 and r["first_call_s"] > 0


@pytest.mark.slow
def test_fnn_only_cases_in_process(tmp_path):
    results, saved, md, lines = _run(tmp_path, *TINY, "--only", "fnn", "--in-process",
                                     "--cases", "large,tiny,util,sweep", "--skip", "fnn-fashion-seq")
    assert saved["tag"] == settings.RESULT_TAG
    assert set(saved) >= {"settings", "environment", "cases", "targets"}
    env = saved["environment"]
    assert env["threads"] >= 1 and env["versions"]["jax"] and env["cpu"]
    assert set(saved["cases"]) == {"large", "tiny", "util", "sweep"}
    for name in ("large", "tiny"):
        res = saved["cases"][name]["results"]
        assert list(res) == list(settings.MLP_CONTESTANTS)
        for c in ("fnn-scan", "fnn-scan-autodiff", "fnn-loop"):
            _check_timed(res[c])
            assert res[c]["samples_per_s"] > 0 and res[c]["steps"] == -(-256 // saved["cases"][name]["config"]["batch"])
            assert res[c]["final_loss"] > 0
        assert res["fnn-scan"]["fnn_speedup"] == pytest.approx(1.0)
        for c in ("torch", "torch-fused", "torch-compile", "flax"):  # peers are listed, not run
            assert res[c] == {"status": "skipped", "reason": "excluded by --only fnn"}
    util = saved["cases"]["util"]
    assert util["results"]["xla-matmul"]["step_gemms"]["gflops"] > 0
    assert util["utilization"]["fnn-scan (interleaved)"]["utilization_nominal"] > 0
    sweep = saved["cases"]["sweep"]
    assert sweep["results"]["fnn-sweep"]["members"] == 2 and sweep["wall_ratio"] > 0
    assert sweep["results"]["fnn-sweep-split"]["status"] == "skipped"  # its devices need a child
    names = [t["target"] for t in saved["targets"]]
    assert len(names) == 24 and len(set(names)) == 24  # every target listed once, met or not
    status = {t["target"]: t["status"] for t in saved["targets"]}
    assert status["large: fnn ≥ 1.8× PyTorch eager samples/s"] == "n/a"  # no peer ran
    assert status["large: manual grads ≤ 0.8× autodiff time"] in ("met", "missed")
    # Markdown: the header, the targets table and one table per case, rows for every contestant
    assert md.startswith("# fnn benchmark results")
    for heading in ("## Targets", "## Large MLP: 784-64-64-10", "## Tiny MLP: 2-16-16-2",
                    "## Utilization (large MLP)", "## Sweep scaling"):
        assert heading in md
    for title in ("fnn scanned run (manual grads)", "PyTorch eager (Adam default)",
                  "Flax linen + optax jitted step loop", "fnn Trainer.sweep"):
        assert title in md
    assert "skipped: excluded by --only fnn" in md
    n = None
    for line in md.splitlines():  # every table row has as many cells as its header row
        if not line.startswith("|"):
            n = None
        elif n is None:
            n = line.count("|")
        else:
            assert line.count("|") == n, line
    assert any("samples/s" in l for l in lines)


@pytest.mark.slow
def test_child_process_worker_reports_memory(tmp_path):
    """The default mode: each contestant in its own pinned child process."""
    _, saved, _, _ = _run(tmp_path, *TINY, "--only", "fnn", "--cases", "util")
    r = saved["cases"]["util"]["results"]["xla-matmul"]
    assert r["status"] == "ok", r
    assert r["peak_rss_mb"] > 10 and r["cpus"]


@pytest.mark.slow
def test_sweep_split_over_cpu_devices_in_child_processes(tmp_path):
    """The -split contestants: each child starts with two CPU devices and shards the members."""
    _, saved, md, _ = _run(tmp_path, *TINY, "--only", "fnn", "--cases", "sweep",
                           "--fashion-members", "2", "--n-images", "192")
    c = saved["cases"]["sweep"]
    split, fsplit = c["results"]["fnn-sweep-split"], c["results"]["fnn-fashion-sweep-split"]
    _check_timed(split)
    _check_timed(fsplit)
    assert "split over 2 CPU devices" in split["notes"] and "split over 2" in fsplit["notes"]
    assert c["fashion_split_throughput_ratio"] > 0 and c["split_wall_ratio"] > 0
    assert "members split over the CPU devices" in md


def test_missing_peer_is_skipped_with_reason(monkeypatch):
    real = workers.importlib.util.find_spec
    monkeypatch.setattr(workers.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    why = cases.selected("torch", "all")
    assert why == "torch is not installed (pip install 'fnn[bench]')"
    assert cases.selected("fnn-scan", "all") is None
    assert cases.selected("fnn-scan", "peers") == "excluded by --only peers"


def test_fashion_recipe_of_the_shipped_config():
    r = cases.fashion_recipe(str(ROOT / "configs" / "fashion_mnist.toml"))
    assert r["hidden"] and all(isinstance(h, int) and h > 0 for h in r["hidden"])
    assert r["optimizer"] == "adam" and r["schedule"] in ("constant", "cosine")
    assert r["batch_size"] >= 1 and r["epochs"] >= 1 and 0 <= r["drop_rate"] < 1


def test_fashion_recipe_reads_every_field(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[data]\nname = "fashion_mnist"\nval_fraction = 0.2\nseed = 3\n'
                 '[model]\nhidden = [64, 32]\n[optimizer]\nname = "adam"\nlearning_rate = 0.002\n'
                 '[optimizer.schedule]\nname = "cosine"\n[regularization]\ndrop_rate = 0.3\n'
                 '[training]\nepochs = 7\nbatch_size = 64\n'
                 '[early_stopping]\nenabled = true\nmonitor = "val_accuracy"\npatience = 4\n')
    r = cases.fashion_recipe(str(p))
    assert r["hidden"] == [64, 32] and r["learning_rate"] == 0.002 and r["schedule"] == "cosine"
    assert r["drop_rate"] == 0.3 and r["epochs"] == 7 and r["batch_size"] == 64
    assert r["val_fraction"] == 0.2 and r["data_seed"] == 3
    assert r["early_stopping"] == {"monitor": "val_accuracy", "patience": 4, "min_delta": 0.0,
                                   "restore_best": True}


def test_fashion_recipe_refuses_what_peers_cannot_mirror(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[data]\nname = "fashion_mnist"\n[optimizer]\nname = "lion"\n')
    with pytest.raises(ValueError, match="optimizer.name"):
        cases.fashion_recipe(str(p))


def test_markdown_and_targets_from_synthetic_results():
    ok = {"status": "ok", "times_s": [1.0, 1.2], "median_s": 1.1, "first_call_s": 2.0,
          "samples_per_epoch": 1000, "peak_rss_mb": 100.0, "final_loss": 2.3}
    large = {"fnn-scan": dict(ok, samples_per_s=2000.0, median_s=0.5),
             "fnn-scan-autodiff": dict(ok, samples_per_s=1000.0, median_s=1.0),
             "torch": dict(ok, samples_per_s=1000.0), "flax": {"status": "failed", "reason": "boom"}}
    for r in large.values():
        if r["status"] == "ok":
            r["train_gflops_nominal"] = 1.0
    synthetic = {
        "large": {"config": {"sizes": [4, 8, 2], "batch": 2, "samples": 10}, "results": large},
        "sweep": {"config": {"members": 16, "samples": 10}, "wall_ratio": 5.0,
                  "results": {"fnn-train": dict(ok, members=1, samples_per_s=1.0)}},
        "startup": {"speedup": 2.5, "results": {"cold": dict(ok, notes="c"), "warm": dict(ok, notes="w")}},
    }
    targets = {t["target"]: t for t in report.evaluate_targets(synthetic)}
    assert targets["large: fnn ≥ 1.8× PyTorch eager samples/s"]["status"] == "met"
    assert targets["large: fnn ≥ 1.8× PyTorch eager samples/s"]["measured"] == "2.00×"
    assert targets["large: manual grads ≤ 0.8× autodiff time"]["status"] == "met"
    assert targets["large: fnn ≥ 1.0× Flax+optax"]["status"] == "n/a"
    assert targets["sweep: 16 members ≤ 4× one member (wall)"]["status"] == "missed"
    assert targets["startup: warm ≥ 2× faster than cold"]["status"] == "met"
    mlpc = "fashion: ≥ 10× faster to 0.885 than MLPClassifier"
    assert targets[mlpc]["status"] == "n/a" and "not run" in targets[mlpc]["note"]
    skipped = {"fashion": {"results": {"sklearn": {"status": "skipped",
                                                   "reason": "excluded by --skip"}}}}
    note = {t["target"]: t for t in report.evaluate_targets(skipped)}[mlpc]["note"]
    assert note == "MLPClassifier skipped: excluded by --skip"  # not "did not reach 0.885"
    results = {"environment": {"date": "d", "cpu": "cpu", "cpu_flags": ["avx2"], "threads": 2,
                               "python": "3", "versions": {"jax": "0"}, "thread_policy": "p",
                               "load_avg_start": [0, 0, 0], "load_avg_end": [0, 0, 0]},
               "cases": synthetic, "targets": list(targets.values())}
    md = report.render_markdown(results)
    assert "failed: boom" in md and "Cold ÷ warm: **2.50×**" in md and "Sweep ÷ one member: **5.00×**" in md


def test_script_parses_and_rejects_unknown_case(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--help"])
    assert exc.value.code == 0
    assert "--only" in capsys.readouterr().out
    assert bench.main(["--cases", "nope", "--out", str(tmp_path)]) == 2
    assert "--cases: unknown ['nope']" in capsys.readouterr().err


def test_script_imports_neither_fnn_nor_jax(tmp_path):
    """--help from another directory, through runpy: the parent never loads a framework."""
    code = ("import runpy, sys; sys.argv = ['bench.py', '--help']\n"
            "try:\n    runpy.run_path(%r, run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('jax' in sys.modules, 'fnn' in sys.modules)") % str(SCRIPTS / "bench.py")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "--cases" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_library_does_not_know_the_benchmark():
    """fnn.cli neither imports the benchmark nor offers `fnn bench`."""
    code = ("import sys, fnn.cli; p = fnn.cli.build_parser()\n"
            "print(sorted(m for m in sys.modules if m == 'fnn.bench' or m.split('.')[0] in ('benchlib', 'bench')),"
            " 'bench' in fnn.cli.COMMANDS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[] False"
    assert not (ROOT / "fnn" / "bench.py").exists()


# --- the CNN, Fashion-MNIST CNN and sweep cases, the GPU check ----------------------------------
from benchlib import cnn, inputs  # noqa: E402

QUICK_CNN = ["--quick", "--threads", "1", "--repeats", "1", "--cnn-steps", "2", "--in-process",
             "--no-torch-compile"]


def test_cnn_torch_weights_compute_the_same_function():
    """HWIO -> OIHW and the first dense layer's rows from NHWC to NCHW flatten order: the torch
    layout gives the same pre-activations as fnn's (NumPy reference of both flatten orders)."""
    np = pytest.importorskip("numpy")
    cfg = dict(settings.settings_from_args(bench.build_parser().parse_args(["--quick"]))["cnn"])
    params = inputs.cnn_params(cfg, 0)
    tp = inputs.cnn_params_to_torch(cfg, params)
    shapes, (h, w, c) = inputs.cnn_shapes(cfg)
    assert [p[0].shape for p in params] == shapes
    assert tp[0][0].shape == (cfg["filters"][0], 1, 3, 3)  # OIHW
    a = np.random.default_rng(0).standard_normal((5, h, w, c)).astype(np.float32)  # NHWC maps
    fnn_z = a.reshape(5, -1) @ params[2][0]  # fnn: flatten NHWC, (in, out)
    torch_z = a.transpose(0, 3, 1, 2).reshape(5, -1) @ tp[2][0].T  # torch: flatten NCHW, (out, in)
    np.testing.assert_allclose(fnn_z, torch_z, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(tp[0][0][:, :, 1, 2], params[0][0][1, 2].T)


def test_skip_and_torch_compile_flags():
    s = settings.settings_from_args(bench.build_parser().parse_args(
        ["--skip", "fnn-hybrid,sklearn", "--no-torch-compile"]))
    assert cases.selected("fnn-hybrid", "all", s) == "excluded by --skip"
    assert cases.selected("torch-compile", "all", s) == "excluded by --no-torch-compile"
    assert cases.selected("fnn-manual", "all", s) is None
    assert set(settings.CASES) >= {"cnn", "fashion_cnn", "sweep"}


def test_script_rejects_unknown_skip(tmp_path, capsys):
    assert bench.main(["--skip", "nope", "--cases", "cnn", "--out", str(tmp_path)]) == 2
    assert "--skip: unknown ['nope']" in capsys.readouterr().err


def test_fashion_cnn_recipe_of_the_shipped_config(tmp_path):
    r = cnn.fashion_cnn_recipe(str(ROOT / "configs" / "fashion_cnn.toml"))
    types = [l["type"] for l in r["layers"]]
    assert types == ["conv2d", "max_pool2d", "conv2d", "max_pool2d", "dropout", "flatten", "dense",
                     "dropout"]
    assert [l.get("filters") for l in r["layers"] if l["type"] == "conv2d"] == [32, 64]
    assert r["batch_size"] == 128 and r["optimizer"] == "adam" and r["val_fraction"] == 0.05
    assert r["early_stopping"]["monitor"] == "val_accuracy" and r["early_stopping"]["restore_best"]
    p = tmp_path / "c.toml"
    p.write_text('[data]\nname = "fashion_mnist"\n[[model.layers]]\ntype = "batch_norm"\n')
    with pytest.raises(ValueError, match=r"model.layers\[0\] \(batch_norm\)"):
        cnn.fashion_cnn_recipe(str(p))


def test_cnn_and_fashion_cnn_markdown_from_synthetic_results():
    ok = {"status": "ok", "times_s": [0.2, 0.3], "median_s": 0.25, "first_call_s": 1.0,
          "first_losses": [2.3, 2.2], "first_loss_diff": [0.0, 1e-7]}
    synthetic = {
        "cnn": {"config": {"filters": [32, 64], "dense": 128, "classes": 10, "batch": 128, "steps": 2,
                           "repeats": 2}, "loss_reference": "torch",
                "results": {"fnn-manual": dict(ok, formulation="im2col", samples_per_s=1200.0,
                                               vs_torch=1.2, compile_s=3.0),
                            "torch": dict(ok, samples_per_s=1000.0, vs_torch=1.0),
                            "torch-compile": {"status": "skipped", "reason": "excluded by --no-torch-compile"}}},
        "fashion_cnn": {"config": {"config": "configs/fashion_cnn.toml", "n_samples": None},
                        "wall_ratio": 0.8, "test_accuracy_diff": -0.002,
                        "results": {"fnn-cli": {"status": "ok", "wall_s": 80.0, "final_test_accuracy": 0.91},
                                    "torch": {"status": "ok", "wall_s": 100.0, "final_test_accuracy": 0.912}}},
        "sweep": {"config": {"members": 16, "samples": 10, "fashion": {"config": "f.toml", "members": 16,
                                                                       "epochs": 1}},
                  "fashion_throughput_ratio": 0.95,
                  "results": {"fnn-fashion-sweep": dict(ok, members=16, samples_per_s=5.0)}},
    }
    targets = {t["target"]: t for t in report.evaluate_targets(synthetic)}
    assert targets["cnn: fnn ≥ 1.0× PyTorch eager samples/s"]["status"] == "met"
    assert targets["fashion_cnn: fnn train wall ≤ 1.0× PyTorch eager (same recipe)"]["status"] == "met"
    assert targets["fashion_cnn: test accuracy ≥ PyTorch's − 0.005"]["measured"] == "-0.0020"
    key = "sweep: 16-member Fashion-MNIST MLP sweep ≥ 0.9× the member-samples/s of 16 runs in a row"
    assert targets[key]["status"] == "met"
    results = {"environment": {"date": "d", "cpu": "cpu", "cpu_flags": [], "threads": 2, "python": "3",
                               "versions": {}, "thread_policy": "p", "load_avg_start": [0, 0, 0]},
               "cases": synthetic, "targets": list(targets.values())}
    md = report.render_markdown(results)
    assert "## CNN: conv 32-64" in md and "PyTorch eager (SGD)" in md and "1.20×" in md
    assert "skipped: excluded by --no-torch-compile" in md
    assert "fnn ÷ PyTorch wall: **0.80×**" in md and "Sweep ÷ runs in a row (member-samples/s): **0.95×**" in md


@pytest.mark.slow
def test_cnn_case_same_first_loss_as_torch(tmp_path):
    pytest.importorskip("torch")
    _, saved, md, _ = _run(tmp_path, *QUICK_CNN, "--cases", "cnn", "--skip", "fnn-im2col,fnn-hybrid")
    c = saved["cases"]["cnn"]
    res = c["results"]
    assert list(res) == list(settings.CNN_FNN_CONTESTANTS + settings.CNN_TORCH_CONTESTANTS)
    for name in ("fnn-manual", "fnn-xla", "fnn-autodiff", "torch"):
        _check_timed(res[name])
        assert res[name]["samples_per_s"] > 0 and res[name]["vs_torch"] > 0
    assert res["fnn-manual"]["compile_s"] > 0 and res["fnn-xla"]["formulation"] == "xla"
    assert res["fnn-manual"]["formulation"] == "im2col"  # auto on CPU
    assert res["torch"]["vs_torch"] == pytest.approx(1.0)
    assert res["fnn-hybrid"] == {"status": "skipped", "reason": "excluded by --skip"}
    assert res["torch-compile"]["reason"] == "excluded by --no-torch-compile"
    assert c["loss_reference"] == "torch"
    assert c["first_loss_max_abs_diff"] < 1e-4 and c["second_loss_max_abs_diff"] < 1e-4
    assert "## CNN:" in md


@pytest.mark.slow
def test_fashion_cnn_case_quick(tmp_path):
    pytest.importorskip("torch")
    _, saved, md, _ = _run(tmp_path, "--quick", "--threads", "1", "--in-process", "--cases",
                           "fashion_cnn", "--n-images", "192", "--fashion-cnn-epochs", "1")
    c = saved["cases"]["fashion_cnn"]
    fnn_r, torch_r = c["results"]["fnn-cli"], c["results"]["torch"]
    assert fnn_r["status"] == "ok", fnn_r
    assert torch_r["status"] == "ok", torch_r
    assert fnn_r["epochs"] == 1 and torch_r["epochs"] == 1 and fnn_r["peak_rss_mb"] > 10
    assert 0 <= fnn_r["final_test_accuracy"] <= 1 and 0 <= torch_r["final_test_accuracy"] <= 1
    assert c["wall_ratio"] > 0 and abs(c["test_accuracy_diff"]) <= 1
    assert "--set data.n_samples=192" in fnn_r["notes"]
    assert "## Fashion-MNIST CNN" in md


@pytest.mark.slow
def test_sweep_case_fashion_members(tmp_path):
    _, saved, md, _ = _run(tmp_path, *TINY, "--only", "fnn", "--in-process", "--threads", "1",
                           "--cases", "sweep", "--fashion-members", "2", "--n-images", "192")
    c = saved["cases"]["sweep"]
    seq, swp = c["results"]["fnn-fashion-seq"], c["results"]["fnn-fashion-sweep"]
    _check_timed(seq)
    _check_timed(swp)
    assert seq["members"] == swp["members"] == 2 and seq["samples_per_epoch"] == swp["samples_per_epoch"]
    assert c["fashion_throughput_ratio"] > 0 and c["wall_ratio"] > 0
    assert "Sweep ÷ runs in a row" in md


@pytest.mark.slow
def test_gpu_check_smoke_on_cpu(tmp_path):
    """scripts/gpu_check.sh --smoke: every step on CPU at tiny sizes; the summary printed last."""
    pytest.importorskip("torch")
    env = dict(__import__("os").environ, OUT=str(tmp_path / "g"))
    p = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh"), "--smoke"], capture_output=True,
                       text=True, cwd=tmp_path, env=env, timeout=480)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    out = p.stdout.strip().splitlines()
    assert out[0].startswith("gpu_check: device=cpu smoke=1")
    assert any(l.startswith("# fnn GPU check (SMOKE RUN") for l in out)
    assert out[-1].startswith("Tables: ")
    summary = (tmp_path / "g" / "summary.md").read_text()
    for t in ("large MLP", "CNN", "tiny MLP", "sweep", "Fashion-MNIST MLP config", "Fashion-MNIST CNN"):
        assert t in summary
    assert "| n/a |" not in summary.split("Fashion-MNIST CNN")[0].split("tiny MLP")[0]  # large, CNN measured
    for sub in ("bench", "configs"):
        assert json.loads((tmp_path / "g" / sub / "bench.json").read_text())["cases"]
    # fnn's side of both shipped configs trained (a stand-in progress bar once crashed it)
    configs = json.loads((tmp_path / "g" / "configs" / "bench.json").read_text())["cases"]
    for case in ("fashion", "fashion_cnn"):
        mine = {n: r for n, r in configs[case]["results"].items() if n.startswith("fnn")}
        assert mine and all(r["status"] == "ok" for r in mine.values()), (case, mine)
    # the GPT case: the gpu recipe at the tiny shapes on CPU, and its anchor on a tiny text
    seq = json.loads((tmp_path / "g" / "sequence" / "sequence.json").read_text())
    assert (seq["recipe"], seq["device"], seq["quick"]) == ("gpu", "cpu", True)
    gpt = seq["results"]["gpt"]
    assert gpt["shape"]["dropout"] == 0.2
    assert set(gpt["tokens_per_s"]) == {"fnn-manual", "fnn-autodiff", "torch-eager"}
    assert all(v > 0 for v in gpt["tokens_per_s"].values())
    a = seq["anchor"]
    assert a["status"] == "ok" and a["config"] == "configs/shakespeare_char.toml"
    assert a["iterations"] == 4 and a["capped"] is False and a["device"] == "cpu"
    assert 0 < a["fnn_val_loss"] < 10 and 0 < a["torch_val_loss"] < 10
    rows = {r.split(" | ")[0].lstrip("| "): r.split(" | ") for r in summary.splitlines()
            if r.startswith("| GPT")}
    step = rows["GPT step (nanoGPT Shakespeare recipe): fnn tokens/s ≥ 1.0× PyTorch eager (report)"]
    assert step[1] == f"{gpt['ratio_to_torch_eager']['fnn-manual']:.2f}×" and step[2] in ("met", "missed")
    vs_torch = rows["GPT anchor: fnn val loss within 0.03 of PyTorch's (same recipe, text, weights)"]
    assert vs_torch[1] == f"{a['val_loss_difference']:+.4f}" and vs_torch[2] in ("met", "missed")
    assert f"fnn {a['fnn_val_loss']:.4f}, PyTorch {a['torch_val_loss']:.4f} after 4 iterations" in vs_torch[3]
    vs_nanogpt = rows["GPT anchor: fnn val loss ≤ nanoGPT's 1.4697 + 0.03 (5,000 iterations)"]
    assert vs_nanogpt[2] == "n/a" and "not comparable: 4 iterations" in vs_nanogpt[3]


def _gpu_summary(out, sequence: dict | None) -> str:
    """scripts/gpu_summary.py on a DIR that holds only DIR/sequence/sequence.json (or nothing)."""
    if sequence is not None:
        (out / "sequence").mkdir(parents=True)
        (out / "sequence" / "sequence.json").write_text(json.dumps(sequence))
    out.mkdir(exist_ok=True)
    p = subprocess.run([sys.executable, str(SCRIPTS / "gpu_summary.py"), str(out), "0", "1"],
                       capture_output=True, text=True)
    assert p.returncode == 1, p.stderr  # no bench.json: the summary is written, the exit is 1
    return (out / "summary.md").read_text()


def _gpt_row(summary: str, start: str) -> list[str]:
    return next(r for r in summary.splitlines() if r.startswith(f"| {start}")).split(" | ")


def test_gpu_summary_gpt_case_without_text_and_capped(tmp_path):
    """Without the text the anchor's rows say why; a capped anchor is judged against PyTorch
    but not against nanoGPT's 5,000-iteration figure; the whole recipe is judged against both."""
    timing = {"tokens_per_s": {"fnn-manual": 3e5, "fnn-autodiff": 2e5, "torch-eager": 4e5,
                               "torch-compile": 5e5},
              "ratio_to_torch_eager": {"fnn-manual": 0.75, "fnn-autodiff": 0.5, "torch-eager": 1.0,
                                       "torch-compile": 1.25}, "skipped": {}}
    seq = {"recipe": "gpu", "device": "gpu", "quick": False, "results": {"gpt": timing}}
    summary = _gpu_summary(tmp_path / "a", seq)
    step = _gpt_row(summary, "GPT step")
    assert step[1:3] == ["0.75×", "missed"]
    assert "fnn 300,000 tokens/s, PyTorch eager 400,000; jax.grad 0.50×; torch.compile: 0.60×" in step[3]
    for name in ("GPT anchor: fnn val loss within", "GPT anchor: fnn val loss ≤ nanoGPT"):
        row = _gpt_row(summary, name)
        assert row[1:] == ["—", "n/a", "not run: no text at .gpu_data/shakespeare.txt |"]
    anchor = {"status": "ok", "quick": False, "iterations": 2500, "requested_iterations": 5000,
              "capped": True, "characters": 1115394, "fnn_val_loss": 1.52, "torch_val_loss": 1.50,
              "val_loss_difference": 0.02, "fnn_cli_wall_s": 90.0, "torch_train_wall_s": 60.0,
              "wall_ratio_fnn_over_torch": 1.5}
    summary = _gpu_summary(tmp_path / "b", {**seq, "anchor": anchor})
    vs_torch = _gpt_row(summary, "GPT anchor: fnn val loss within")
    assert vs_torch[1:3] == ["+0.0200", "met"]
    assert "after 2,500 iterations (capped from 5,000 to fit the time" in vs_torch[3]
    vs_nanogpt = _gpt_row(summary, "GPT anchor: fnn val loss ≤ nanoGPT")
    assert vs_nanogpt[1:3] == ["1.5200", "n/a"] and "not comparable" in vs_nanogpt[3]
    whole = {**anchor, "iterations": 5000, "capped": False, "fnn_val_loss": 1.51,
             "val_loss_difference": -0.04}
    summary = _gpu_summary(tmp_path / "c", {**seq, "anchor": whole})
    assert _gpt_row(summary, "GPT anchor: fnn val loss within")[1:3] == ["-0.0400", "missed"]
    vs_nanogpt = _gpt_row(summary, "GPT anchor: fnn val loss ≤ nanoGPT")
    assert vs_nanogpt[1:3] == ["1.5100", "missed"] and "+0.0403 vs nanoGPT" in vs_nanogpt[3]
    killed = {"status": "unfinished", "reason": "the anchor of 2500 iterations started and did not end"}
    summary = _gpu_summary(tmp_path / "d", {**seq, "anchor": killed})
    assert "not run: unfinished: the anchor of 2500" in _gpt_row(summary, "GPT anchor: fnn val loss within")[3]
    summary = _gpu_summary(tmp_path / "e", None)
    assert _gpt_row(summary, "GPT step")[1:3] == ["—", "n/a"]
    assert "the GPT case did not run" in _gpt_row(summary, "GPT anchor: fnn val loss ≤")[3]


@pytest.mark.slow
def test_startup_case_smoke(tmp_path):
    """The startup case in smoke mode: --help, train --help and a config error answer without
    JAX (exit 0, 0, 2); a cold and a warm quickstart print the summary before they end."""
    results, saved, md, _ = _run(tmp_path, "--quick", "--cases", "startup",
                                 "--startup-config", str(ROOT / "configs" / "quickstart.toml"))
    res = saved["cases"]["startup"]["results"]
    assert [res[c]["exit_status"] for c in ("help", "train-help", "config-error")] == [0, 0, 2]
    assert not any(res[c]["imports_jax"] for c in ("help", "train-help", "config-error"))
    for c in ("cold", "warm"):
        assert res[c]["status"] == "ok", res[c]
        assert 0 < res[c]["summary_median_s"] <= res[c]["median_s"]
        assert "decision_boundary.png" in res[c]["pictures"]
    targets = {t["target"]: t for t in saved["targets"]}
    assert targets["startup: fnn --help ≤ 0.3 s without importing JAX"]["value"] > 0
    assert "## Start-up" in md and "summary printed at" in md


@pytest.mark.slow
def test_memory_case_smoke(tmp_path):
    """The memory case in smoke mode: every compiled program's XLA figures and the peak RSS of
    each config's run (fnn side; PyTorch's is skipped when torch is absent)."""
    results, saved, md, _ = _run(tmp_path, "--quick", "--only", "fnn", "--cases", "memory")
    res = saved["cases"]["memory"]["results"]
    for name in ("fnn-fashion_cnn", "fnn-fashion_mnist"):
        r = res[name]
        assert r["status"] == "ok", r
        assert r["compiled"] >= len(r["programs"]) >= 1
        assert any(p["program"] == "jit__run_impl" for p in r["programs"])
        assert all(p["temp_mb"] >= 0 and p["argument_mb"] >= 0 for p in r["programs"])
        assert r["peak_rss_mb"] >= r["after_import_jax_peak_rss_mb"] > 0
    assert res["torch-fashion_cnn"]["status"] == "skipped"
    assert "## Memory" in md and "temporaries MB" in md


@pytest.mark.slow
def test_precision_bench_quick(tmp_path):
    """scripts/bench_precision.py --quick times both precisions of every case and writes the
    ratio table."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location(
        "bench_precision", Path(__file__).resolve().parents[2] / "scripts" / "bench_precision.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--repeats", "1", "--steps", "1", "--out", str(tmp_path)]) == 0
    got = json.loads((tmp_path / "precision.json").read_text())["results"]
    assert sorted(got) == ["cnn", "gpt", "mlp"]
    for r in got.values():
        assert r["ms_per_step"]["full"] > 0 and r["ms_per_step"]["bfloat16"] > 0
        assert r["ratio_bf16_over_f32"] > 0
    assert "| cnn |" in (tmp_path / "precision.md").read_text()


@pytest.mark.slow
def test_sequence_bench_quick_copies_the_weights_into_pytorch(tmp_path):
    """scripts/bench_sequence.py --quick: every contestant of the GPT and LSTM cases starts from
    the same weights, so their first-step losses agree (the PyTorch models are the same
    networks); the table has one row per contestant."""
    import importlib.util
    import json

    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location(
        "bench_sequence", Path(__file__).resolve().parents[2] / "scripts" / "bench_sequence.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--repeats", "1", "--steps", "1", "--no-torch-compile",
                     "--out", str(tmp_path)]) == 0
    got = json.loads((tmp_path / "sequence.json").read_text())["results"]
    assert sorted(got) == ["gpt", "lstm"]
    for r in got.values():
        losses = r["first_step_loss"]
        assert set(losses) == {"fnn-manual", "fnn-autodiff", "torch-eager"}, losses
        assert max(losses.values()) - min(losses.values()) < 1e-5, losses
        assert r["ratio_to_torch_eager"]["torch-eager"] == 1.0
        assert r["skipped"] == {"torch-compile": "excluded by --no-torch-compile"}
    md = (tmp_path / "sequence.md").read_text()
    assert "| lstm | fnn-manual |" in md and "skipped: excluded by --no-torch-compile" in md


# --- the GPU recipe of the sequence bench (configs/shakespeare_char.toml) ------------------------
from benchlib import sequence_anchor, sequence_models  # noqa: E402


@pytest.mark.slow  # builds the torch GPT: the full suite checks it
def test_shakespeare_char_config_is_nanogpts_recipe_and_the_bench_gpu_recipe(tmp_path):
    """The shipped config builds nanoGPT's Shakespeare model (6 blocks of 6 heads, 384 dims,
    block 256, dropout 0.2) and recipe; bench_sequence's ``gpu`` recipe has the same sizes, and
    its fnn network is the config's, drawing the same initial weights from the same key."""
    import jax
    import numpy as np

    from cli_helpers import write_text_file
    from fnn.experiment import build
    from fnn.experiment import config as C
    from fnn.nn import layers as L

    text = write_text_file(tmp_path / "input.txt", 20000)
    cfg = C.load(ROOT / "configs" / "shakespeare_char.toml", [f"data.path={text}"])
    data = build.load_dataset(cfg)
    net = build.build_net(cfg, data)
    emb, pos, drop, rep, ln, head = net.layers
    assert isinstance(emb, L.Embedding) and emb.features == 384
    assert isinstance(pos, L.PositionalEmbedding) and pos.max_len == 256
    assert isinstance(drop, L.Dropout) and drop.rate == 0.2
    assert isinstance(rep, L.Repeat) and rep.n == 6
    block = rep.layer
    assert isinstance(block, L.TransformerBlock)
    assert (block.num_heads, block.mlp_ratio, block.dropout) == (6, 4, 0.2)
    assert isinstance(ln, L.LayerNorm) and isinstance(head, L.Dense)
    assert net.input_shape == (256,) and net.output_shape == (256, data.vocab.size)
    params = net.init(jax.random.key(cfg.training.seed))
    assert params[3][0][1]["qkv"]["w"].shape == (6, 384, 3 * 384)  # stacked over the 6 blocks
    assert params[3][1][1]["fc"]["w"].shape == (6, 384, 4 * 384)
    t = cfg.training
    assert (t.batch_size, t.iterations, t.eval_interval, t.eval_iters) == (64, 5000, 250, 200)
    o = cfg.optimizer
    assert (o.name, o.learning_rate, o.b2, o.weight_decay, o.clip_norm) == ("adamw", 1e-3, 0.99, 0.1, 1.0)
    assert (o.schedule.name, o.schedule.warmup_steps, o.schedule.alpha) == ("cosine", 100, 0.1)

    r = sequence_models.shapes(False, "gpu")
    assert r["config"] == "shakespeare_char.toml" and (r["t"], r["b"]) == (256, 64)
    assert r["gpt"] == dict(d=384, heads=6, depth=6, dropout=0.2)
    assert (r["iterations"], r["eval_interval"], r["eval_iters"]) == (5000, 250, 200)
    assert (r["lr"], r["lr_min"], r["warmup"]) == (1e-3, 1e-4, 100)
    bench_net = sequence_models.fnn_net("gpt", r, data.vocab.size)
    assert bench_net.layers == net.layers
    same = jax.tree.map(np.array_equal, bench_net.init(jax.random.key(1337)), params)
    assert all(jax.tree.leaves(same))
    # the anchor's --quick run: the config shrunk by --set to the tiny shapes, still the bench's net
    q = sequence_models.shapes(True, "gpu")
    small = C.load(ROOT / "configs" / "shakespeare_char.toml",
                   [f"data.path={text}", f"data.block_size={q['t']}",
                    sequence_models.fnn_layers_override(q)])
    small_net = build.build_net(small, build.load_dataset(small))
    assert small_net.layers == sequence_models.fnn_net("gpt", q, data.vocab.size).layers
    assert small_net.input_shape == (q["t"],)


@pytest.mark.slow  # builds the torch GPT: the full suite checks it
def test_torch_gpt_with_dropout_holds_fnns_weights():
    """At the gpu recipe (dropout 0.2, its Dropout layer shifting fnn's parameter list), the
    PyTorch GPT in eval mode computes fnn's function: the same probabilities."""
    torch = pytest.importorskip("torch")
    import jax
    import numpy as np

    s = sequence_models.shapes(True, "gpu")
    net = sequence_models.fnn_net("gpt", s)
    params = net.init(jax.random.key(3))
    x = np.random.default_rng(0).integers(0, sequence_models.V, (3, s["t"])).astype(np.int32)
    want = np.asarray(net.apply(params, x))
    model = sequence_models.torch_model("gpt", s, params).eval()
    assert isinstance(model.drop, torch.nn.Dropout) and model.h[0].p == 0.2
    with torch.no_grad():
        got = torch.softmax(model(torch.tensor(x, dtype=torch.long)), -1).numpy()
    np.testing.assert_allclose(got, want, atol=2e-6)
    model.train()  # and dropout is live in training mode
    with torch.no_grad():
        a, b = (model(torch.tensor(x, dtype=torch.long)) for _ in range(2))
    assert not torch.equal(a, b)


def test_anchor_iterations_fit_the_budget():
    """--budget: the whole recipe when it fits, else the most whole evaluation intervals (250
    steps) whose estimate fits, 0 when none does; no budget or no GPT timing: as asked."""
    s = sequence_models.shapes(False, "gpu")
    timing = {"ms_per_step": {"fnn-manual": 30.0, "torch-eager": 20.0},
              "first_call_s": {"fnn-manual": 5.0}}
    fit = sequence_anchor.fit_iterations
    assert fit(s, 5000, None, timing) == 5000 and fit(s, 5000, 100.0, None) == 5000
    whole = sequence_anchor.estimate_s(s, 5000, timing)
    assert fit(s, 5000, whole + 1, timing) == 5000
    n = fit(s, 5000, 180.0, timing)
    assert 0 < n < 5000 and n % 250 == 0
    assert sequence_anchor.estimate_s(s, n, timing) <= 180.0 < sequence_anchor.estimate_s(s, n + 250, timing)
    assert fit(s, 5000, 35.0, timing) == 0  # start-up and compilation alone pass 35 s
    assert sequence_anchor.eval_interval(s, 2500) == 250 and sequence_anchor.eval_interval(s, 4) == 4
