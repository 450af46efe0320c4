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

ROOT = Path(__file__).resolve().parents[1]
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
                                     "--cases", "large,tiny,util,sweep")
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
        for c in ("torch", "torch-fused", "flax"):  # peers are listed, not run
            assert res[c] == {"status": "skipped", "reason": "excluded by --only fnn"}
    util = saved["cases"]["util"]
    assert util["results"]["xla-matmul"]["step_gemms"]["gflops"] > 0
    assert util["utilization"]["fnn-scan (interleaved)"]["utilization_nominal"] > 0
    sweep = saved["cases"]["sweep"]
    assert sweep["results"]["fnn-sweep"]["members"] == 2 and sweep["wall_ratio"] > 0
    names = [t["target"] for t in saved["targets"]]
    assert len(names) == 12 and len(set(names)) == 12
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
