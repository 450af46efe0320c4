"""The ``memory`` case: where a config's bytes go — XLA's figures per compiled program against
the process's peak RSS.

For each config (configs/fashion_cnn.toml and configs/fashion_mnist.toml by default; few images
and epochs, ``--n-images`` / ``--memory-epochs``), one child process runs ``fnn train CONFIG
--quiet`` in-process (:func:`fnn.cli.main`) with the persistent compilation cache off, so that
every program is compiled in it. Each compilation is recorded as it happens (XLA's
``get_compiled_memory_stats()`` of the loaded executable: argument, output, alias, temporary and
generated-code bytes) together with the process's peak RSS at that moment (``ru_maxrss``). The
result names the largest programs, their sum, and the peak RSS of the whole run, after
``import jax`` and after loading the data, so the peak can be read against its parts.

The PyTorch side of fashion_cnn (``fashion-cnn-torch``, the fashion_cnn case) is run on the same
images and epochs when torch is installed; its peak RSS is the reference of issue 24's target.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchlib.cases import selected, skip
from benchlib.measure import peak_rss_mb
from benchlib.workers import run_worker

MB = 1 << 20


def _rss_mb() -> float:
    """Peak RSS of this process so far (VmHWM). Not ``ru_maxrss``: Linux carries that across
    ``exec``, so a worker launched by a large parent (pytest) would start at the parent's peak."""
    return peak_rss_mb()


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def fnn_memory(spec: dict) -> dict:
    """Worker (child process): one ``fnn train`` with every compilation's memory recorded."""
    t0 = time.perf_counter()
    marks = {"start_peak_rss_mb": _rss_mb()}
    import jax
    from jax._src import compiler

    marks["after_import_jax_peak_rss_mb"] = _rss_mb()
    programs = []
    original = compiler.backend_compile_and_load

    def recording(backend, module, *args, **kwargs):
        exe = original(backend, module, *args, **kwargs)
        name = str(module.operation.attributes["sym_name"]).strip('"')
        row = {"program": name, "peak_rss_mb_before_run": _rss_mb(),
               "rss_mb_now": _current_rss_mb()}
        try:
            st = exe.get_compiled_memory_stats()
            row.update(argument_mb=st.argument_size_in_bytes / MB,
                       output_mb=st.output_size_in_bytes / MB,
                       alias_mb=st.alias_size_in_bytes / MB,
                       temp_mb=st.temp_size_in_bytes / MB,
                       code_mb=st.generated_code_size_in_bytes / MB)
        except Exception as err:  # noqa: BLE001 - a backend without the figures
            row["error"] = f"{type(err).__name__}: {err}"
        programs.append(row)
        return exe

    compiler.backend_compile_and_load = recording
    os.environ["FNN_COMPILATION_CACHE"] = "0"
    from fnn import cli

    with tempfile.TemporaryDirectory(prefix="fnn-bench-mem-") as out:
        argv = ["train", spec["config"], "--out", out + "/run", "--overwrite", "--quiet",
                *[a for s in spec["sets"] for a in ("--set", s)]]
        code = cli.main(argv)
    compiler.backend_compile_and_load = original
    if code != 0:
        raise RuntimeError(f"fnn {' '.join(argv)}: exit {code}")
    big = sorted((p for p in programs if "temp_mb" in p), key=lambda p: -(
        p["argument_mb"] + p["output_mb"] + p["temp_mb"] - p["alias_mb"]))
    return {"wall_s": time.perf_counter() - t0, "programs": big, **marks,
            "jax_version": jax.__version__, "compiled": len(programs),
            "sum_temp_mb": sum(p["temp_mb"] for p in big),
            "largest": big[0]["program"] if big else None,
            "notes": "fnn train " + Path(spec["config"]).name + " " + " ".join(
                f"--set {s}" for s in spec["sets"])}


def case_memory(settings: dict, only: str, log) -> dict:
    m = settings["memory"]
    results = {}
    for config in m["configs"]:
        name = Path(config).stem
        sets = [f"data.n_samples={m['n_samples']}", f"training.epochs={m['epochs']}",
                "output.plots=false"]
        why = selected("fnn-memory", only, settings)
        log(f"  memory: {name} ...")
        r = skip(why) if why else run_worker(
            {"worker": "fnn-memory", "config": config, "sets": sets}, settings, log)
        if r.get("status") == "ok":
            top = r["programs"][0] if r["programs"] else {}
            log(f"    peak RSS {r['peak_rss_mb']:.0f} MB; {r['compiled']} programs; largest "
                f"{top.get('program')}: args {top.get('argument_mb', 0):.0f} MB, temp "
                f"{top.get('temp_mb', 0):.0f} MB")
        results[f"fnn-{name}"] = r
    cnn = next((c for c in m["configs"] if Path(c).stem == "fashion_cnn"), None)
    if cnn is not None:
        why = selected("torch", only, settings)
        if why:
            results["torch-fashion_cnn"] = skip(why)
        else:
            from benchlib.cnn import fashion_cnn_recipe

            recipe = dict(fashion_cnn_recipe(cnn), n_samples=m["n_samples"], epochs=m["epochs"])
            results["torch-fashion_cnn"] = run_worker(
                {"worker": "fashion-cnn-torch", "recipe": recipe, "target": 0.9,
                 "n_samples": m["n_samples"]}, settings, log)
    out = {"config": m, "results": results}
    a, b = results.get("fnn-fashion_cnn", {}), results.get("torch-fashion_cnn", {})
    if a.get("status") == "ok" and b.get("status") == "ok" and b.get("peak_rss_mb"):
        out["cnn_rss_vs_torch"] = a["peak_rss_mb"] / b["peak_rss_mb"]
    return out

