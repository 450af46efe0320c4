"""The ``fnn`` command line (also ``python -m fnn``).

    fnn train CONFIG [--set k=v ...] [--out DIR] [--resume] [--overwrite] [--quiet]
    fnn sweep CONFIG --grid optimizer.learning_rate=1e-3,3e-3 [--seeds N] [--set ...] [--out DIR]
    fnn gradcheck CONFIG [--set ...] [--json]
    fnn inspect CONFIG [--set ...] [--batch N] [--json]
    fnn evaluate RUN_DIR [--split test|val|train] [--json]
    fnn predict RUN_DIR|MODEL.jax INPUT.{csv,npz} [--output FILE] [--member M]
    fnn export RUN_DIR [--output FILE] [--member M]
    fnn compare RUN_DIR [RUN_DIR ...] [--metric NAME] [--out FILE]

Exit status: 0 success; 1 training failure (a run halted on a non-finite loss, gradient or
update; gradcheck out of tolerance); 2 bad input (config, data, arguments) with a one-line
message and no traceback; 3 internal error (one line; the traceback in a log file
under $FNN_CACHE_DIR/crash, default ~/.cache/fnn/crash); 130 on Ctrl-C after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPT = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line (usage folded in), exit 2
        usage = " ".join(self.format_usage().split())
        print(f"fnn: error: {' '.join(str(message).split())} ({usage})", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fnn", description="Functional neural networks on JAX: train, sweep, "
                "check gradients, evaluate and predict from TOML configs.")
    p.add_argument("--version", action="version", version=f"fnn {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def common(sp, config=True):
        if config:
            sp.add_argument("config", metavar="CONFIG", help="experiment config (TOML)")
            sp.add_argument("--set", dest="overrides", action="append", default=[],
                            metavar="KEY=VALUE", help="override a config key, e.g. "
                            "optimizer.learning_rate=3e-3 (repeatable)")

    t = sub.add_parser("train", help="train a config; writes a run directory")
    common(t)
    t.add_argument("--out", metavar="DIR", help="run directory (default: output.dir/<name>)")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace a non-empty run directory")
    t.add_argument("--quiet", action="store_true", help="print nothing but errors")
    _parallel_flags(t)

    s = sub.add_parser("sweep", help="train a grid of hyperparameters x seeds in one vmapped run")
    common(s)
    s.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="values of one key (repeatable; default: the config's [sweep] table)")
    s.add_argument("--seeds", type=int, metavar="N", help="train each point with N seeds "
                   "(training.seed .. seed+N-1)")
    s.add_argument("--out", metavar="DIR")
    s.add_argument("--resume", action="store_true")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--quiet", action="store_true")
    _parallel_flags(s)

    g = sub.add_parser("gradcheck", help="manual vs jax.grad vs finite differences, per layer")
    common(g)
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("--batch", type=int, default=32, metavar="N", help="examples in the batch")

    i = sub.add_parser("inspect", help="backprop trace of one batch: Z, A, delta, dW, db and "
                       "dead / saturated units per layer")
    common(i)
    i.add_argument("--batch", type=int, default=32, metavar="N", help="examples in the batch")
    i.add_argument("--json", action="store_true", help="machine-readable output")

    e = sub.add_parser("evaluate", help="metrics of a finished run's model")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--split", choices=("test", "val", "train"), default=None,
                   help="default: test, else val, else train")
    e.add_argument("--json", action="store_true")

    r = sub.add_parser("predict", help="write predictions of a finished run's model")
    r.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, or a model written by "
                   "fnn export")
    r.add_argument("input", metavar="INPUT", help="a .csv (header, numeric) or .npz (array x)")
    r.add_argument("--output", metavar="FILE", help="default: <INPUT stem>.predictions.csv")
    r.add_argument("--member", default="0", metavar="M", help="sweep member: index or label "
                   "(default 0)")
    _export_compare_parsers(sub)
    return p


def _export_compare_parsers(sub) -> None:
    x = sub.add_parser("export", help="serialize a trained model (jax.export, StableHLO) for "
                       "use without fnn; writes FILE and FILE.json")
    x.add_argument("run_dir", metavar="RUN_DIR")
    x.add_argument("--output", metavar="FILE", help="default: RUN_DIR/model.jax "
                   "(RUN_DIR/model-<i>.jax for member i of a sweep)")
    x.add_argument("--member", metavar="M", help="sweep member: index or label")
    c = sub.add_parser("compare", help="one metric of several runs and sweep members: a figure "
                       "and a table of final, best and test figures")
    c.add_argument("run_dirs", metavar="RUN_DIR", nargs="+")
    c.add_argument("--metric", metavar="NAME", help="a metrics.csv column (default val_loss)")
    c.add_argument("--out", metavar="FILE", help="the figure (default ./compare.png)")


def _parallel_flags(sp) -> None:
    sp.add_argument("--process-id", type=int, metavar="I",
                    help="multi-process runs: this process's index (= parallel.process_id)")
    sp.add_argument("--num-processes", type=int, metavar="N",
                    help="multi-process runs: number of processes (= parallel.num_processes)")
    sp.add_argument("--coordinator", metavar="HOST:PORT",
                    help="multi-process runs: address of process 0 (= parallel.coordinator)")


def _version() -> str:
    from fnn.version import __version__

    return __version__


def _setup_jax(cfg=None) -> None:
    """The persistent compilation cache for CLI runs (``output.compilation_cache``)."""
    import jax

    if os.environ.get("FNN_COMPILATION_CACHE", "1") == "0":
        return
    if cfg is not None and not cfg.output.compilation_cache:
        return
    cache = Path(os.environ.get("FNN_CACHE_DIR", Path.home() / ".cache" / "fnn")) / "jax"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache))
        # Every program, however small: a warm run then compiles nothing (the ~10 small
        # programs of a quickstart run cost ~0.2 s to compile, each below 0.2 s).
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    except OSError:  # read-only home: run without the cache
        pass


def _load_config(args):
    from fnn.experiment import config as config_mod

    overrides = list(args.overrides)
    for flag, key in (("process_id", "parallel.process_id"),
                      ("num_processes", "parallel.num_processes"),
                      ("coordinator", "parallel.coordinator")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    return config_mod.load(args.config, overrides)


def cmd_train(args) -> int:
    from fnn.experiment import runner

    cfg = _load_config(args)
    _setup_jax(cfg)
    summary = runner.run(cfg, out=args.out, overwrite=args.overwrite, resume=args.resume,
                         quiet=args.quiet)
    return _status(summary, args.quiet)


def _status(summary, quiet) -> int:
    halted = [m for m in summary["members"] if m.get("halted")]
    if halted and len(halted) == len(summary["members"]):
        first = halted[0]
        if first.get("params_finite", True):
            kept = "parameters kept from the last good step"
        else:
            kept = ("the update made the parameters non-finite (a non-finite learning rate?); "
                    "training.nan_guard = \"revert\" keeps the last good ones")
        print(f"fnn: training halted on a non-finite loss, gradient or update at step "
              f"{first.get('halted_step')} (member {first['member']}); {kept}", file=sys.stderr)
        return EXIT_FAIL
    if halted and not quiet:
        print(f"fnn: {len(halted)} of {len(summary['members'])} members halted on a non-finite "
              "loss, gradient or update", file=sys.stderr)
    return EXIT_OK


def parse_grid(items, cfg):
    """``["optimizer.learning_rate=1e-3,3e-3"]`` -> ((key, (values...)),) validated by the schema."""
    from fnn.experiment import config as config_mod

    raw = {}
    for item in items:
        if "=" not in item:
            raise config_mod.ConfigError([f"--grid {item!r}: expected KEY=V1,V2,..."])
        key, _, values = item.partition("=")
        parsed = []
        for text in _split_values(values):
            _, v = config_mod.parse_override(f"{key}={text}")
            parsed.append(v)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = parsed
    base = config_mod.to_dict(cfg)
    base["sweep"] = raw
    return config_mod.from_dict(base, source=cfg.source).sweep


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets/quotes: "a,[1,2],b" -> ["a", "[1,2]", "b"]."""
    out, depth, cur, quote = [], 0, "", None
    for ch in text:
        if quote:
            cur += ch
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
            cur += ch
        elif ch == "[":
            depth += 1
            cur += ch
        elif ch == "]":
            depth -= 1
            cur += ch
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def cmd_sweep(args) -> int:
    from fnn.experiment import config as config_mod
    from fnn.experiment import runner

    cfg = _load_config(args)
    if args.seeds is not None and not 1 <= args.seeds <= min(
            100_000, config_mod.SEED_MAX + 1 - cfg.training.seed):
        raise config_mod.ConfigError([f"--seeds: {config_mod.short_int(args.seeds)}; expected an "
                                      "integer >= 1 and at most 100000 (seeds stay below 2**32)"])
    grid = parse_grid(args.grid, cfg) if args.grid else None
    if grid is None and not cfg.sweep and not args.seeds and not cfg.training.seeds:
        raise config_mod.ConfigError(["fnn sweep: nothing to sweep; give --grid KEY=V1,V2 or "
                                      "--seeds N, or a [sweep] table in the config"])
    # --grid and --seeds become part of the resolved config (config.toml), so that evaluate,
    # predict and --resume rebuild the same members from the run directory alone.
    if grid is not None:
        cfg = dataclasses.replace(cfg, sweep=tuple(grid))
    if args.seeds is not None:
        cfg = cfg.replace("training.seeds",
                          tuple(range(cfg.training.seed, cfg.training.seed + args.seeds)))
    _setup_jax(cfg)
    summary = runner.run(cfg, out=args.out, overwrite=args.overwrite, resume=args.resume,
                         quiet=args.quiet)
    return _status(summary, args.quiet)


def cmd_gradcheck(args) -> int:
    import jax
    import numpy as np

    import fnn
    from fnn.experiment import config as config_mod
    from fnn.experiment import build as exp

    cfg = _load_config(args)
    if args.batch < 1:
        raise config_mod.ConfigError([f"--batch: {args.batch}; expected an integer >= 1"])
    fb = exp.first_batch(cfg, args.batch)
    net, n = fb.net, fb.x.shape[0]
    report = fnn.gradcheck(net, fb.loss, fb.params, fb.x, fb.y, key=fb.drop_key, l1=fb.l1,
                           l2=fb.l2, drop_rate=fb.drop_rate)
    if args.json:
        print(report.to_json())
    else:
        print(f"gradcheck: {cfg.source}  network {net.sizes}  activations {net.activations}  "
              f"loss {config_mod.resolved_loss(cfg)}  batch {n}  float64")
        print(report)
    return EXIT_OK if report.passed else EXIT_FAIL


def cmd_inspect(args) -> int:
    """One forward + backward pass of the configured network on the first --batch training
    examples, at its initial parameters (training.seed): :func:`fnn.backprop_trace`'s table."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import fnn
    from fnn.experiment import config as config_mod
    from fnn.experiment import build as exp

    cfg = _load_config(args)
    if args.batch < 1:
        raise config_mod.ConfigError([f"--batch: {args.batch}; expected an integer >= 1"])
    if cfg.sweep:
        print("fnn inspect: the [sweep] table is ignored; this is the config's base network "
              "(pick a member with --set KEY=VALUE)", file=sys.stderr)
    fb = exp.first_batch(cfg, args.batch)
    net, loss, n = fb.net, fb.loss, fb.x.shape[0]
    trace = fnn.backprop_trace(net, loss, fb.params, fb.x, fb.y, key=fb.drop_key,
                               drop_rate=fb.drop_rate)
    if args.json:
        print(json.dumps({"config": cfg.source, "sizes": list(net.sizes),
                          "activations": list(net.activations), "loss": loss,
                          "loss_value": float(trace.loss), "batch": n,
                          "layers": trace.rows()}, indent=2))
    else:
        print(f"inspect: {cfg.source}  initial parameters (training.seed = {cfg.training.seed})"
              f"  first {n} training examples")
        print(trace)
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from fnn.experiment import report as report_mod
    from fnn.experiment import runner

    cfg, dataset, loaded = runner.load_run(args.run_dir)
    split = args.split
    if split is None:
        split = "test" if dataset.x_test is not None else "val" if dataset.x_val is not None else "train"
    arrays = dataset.split(split)
    if arrays is None:
        raise runner.UsageError(f"--split {split}: dataset {cfg.data.name!r} has no {split} split")
    rows = []
    for g, trainer, state in loaded:
        batched = len(g.members) > 1
        for j, label in enumerate(g.labels):
            params = runner.member_of(state, j, batched).params
            m = trainer.evaluate(params, *arrays)
            rows.append({"member": label, "split": split, "examples": int(arrays[0].shape[0]),
                         **{k: v for k, v in m.items()}})
    if args.json:
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=2))
    else:
        cols = ["member", "split", "examples"] + [k for k in ("loss", "accuracy") if k in rows[0]]
        print(report_mod.format_table(rows, cols))
    return EXIT_OK


def cmd_predict(args) -> int:
    from fnn.experiment import predict

    out = predict.predict_file(args.run_dir, args.input, args.output, member=args.member)
    print(f"predictions written to {out}")
    return EXIT_OK


def cmd_export(args) -> int:
    from fnn.experiment import export

    out = export.export_run(args.run_dir, args.output, member=args.member)
    print(f"exported to {out} (metadata: {out}.json); load it with only JAX: "
          f"jax.export.deserialize(open({str(out)!r}, 'rb').read()).call(x)")
    return EXIT_OK


def cmd_compare(args) -> int:
    from fnn.experiment import compare

    text, path = compare.compare(args.run_dirs, metric=args.metric, out=args.out)
    print(text)
    print(f"figure: {path}" if path else "note: matplotlib is not installed; no figure")
    return EXIT_OK


COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "gradcheck": cmd_gradcheck,
            "inspect": cmd_inspect, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "export": cmd_export, "compare": cmd_compare}


def _limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas (default 8 per core) before XLA starts its threads.

    XLA's worker threads otherwise each grow an arena; on the Fashion-MNIST config this cuts
    peak resident memory by ~80 MB (734 -> 656 MB). ``FNN_MALLOC_ARENAS=0`` leaves glibc alone.
    """
    n = os.environ.get("FNN_MALLOC_ARENAS", "2")
    if not n.isdigit() or n == "0" or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-8, int(n))  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc
        pass


EXIT_INTERNAL = 3


def _wants_float64(args) -> bool:
    """Whether the command's config (or run directory) asks for model.dtype = "float64".

    Read from the raw TOML before any command runs, so that x64 is on before JAX creates an
    array; a config that cannot be read is left to the command to report.
    """
    from fnn.experiment import config as config_mod

    try:
        if getattr(args, "config", None):
            raw = config_mod.apply_overrides(config_mod.read_raw(args.config),
                                             getattr(args, "overrides", []))
        elif getattr(args, "run_dir", None) and Path(args.run_dir, "config.toml").is_file():
            raw = config_mod.read_raw(Path(args.run_dir, "config.toml"))
        else:
            return False
    except (ValueError, OSError):
        return False
    values = [raw.get("model", {}).get("dtype") if isinstance(raw.get("model"), dict) else None]
    sweep = raw.get("sweep")
    if isinstance(sweep, dict) and isinstance(sweep.get("model"), dict):
        grid = sweep["model"].get("dtype")
        values += grid if isinstance(grid, list) else [grid]
    for grid in getattr(args, "grid", None) or []:
        key, _, text = grid.partition("=")
        if key.strip() == "model.dtype":
            values += [v.strip().strip("\"'") for v in text.split(",")]
    return "float64" in values


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line on stderr, without the source line Python would echo."""
    kind = "note" if category.__name__ == "ConfigNotice" else "warning"
    text = " ".join(str(message).split())
    print(f"fnn: {kind}: {text}", file=sys.stderr if file is None else file)


def crash_dir() -> Path:
    """Where an internal error's traceback goes: $FNN_CACHE_DIR/crash (~/.cache/fnn/crash)."""
    return Path(os.environ.get("FNN_CACHE_DIR", Path.home() / ".cache" / "fnn")) / "crash"


def _internal_error(err: BaseException) -> int:
    """One line for a bug, the traceback in a log file; exit status 3."""
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    where = "not written"
    for base in (crash_dir(), Path(tempfile.gettempdir()) / "fnn-crash"):
        try:
            base.mkdir(parents=True, exist_ok=True)
            path = base / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text(f"fnn {_version()} {' '.join(sys.argv)}\n{text}", encoding="utf-8")
            where = str(path)
            break
        except OSError:
            continue
    msg = " ".join(str(err).split())
    if len(msg) > 300:
        msg = msg[:300] + "..."
    print(f"fnn: internal error: {type(err).__name__}: {msg} (traceback in {where}), please "
          "report", file=sys.stderr)
    return EXIT_INTERNAL


def main(argv=None) -> int:
    """Entry point: parse arguments, run the command, map errors to exit statuses.

    0 success, 1 training failure, 2 bad input (one line, no traceback), 3 internal error (one
    line; the traceback in a file under :func:`crash_dir`), 130 interrupted. Warnings print as
    one line each. ``FNN_DEBUG=1`` lets every exception through with its traceback.
    """
    import warnings

    _limit_malloc_arenas()
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        warnings.simplefilter("always", UserWarning)
        x64 = None
        try:
            if _wants_float64(args):
                import jax

                x64 = bool(jax.config.jax_enable_x64)
                jax.config.update("jax_enable_x64", True)  # model.dtype = "float64" is honoured
            return _dispatch(args)
        finally:
            if x64 is not None:
                import jax

                jax.config.update("jax_enable_x64", x64)


def _dispatch(args) -> int:
    from fnn.experiment import runner

    try:
        return COMMANDS[args.command](args)
    except runner.Interrupted as err:
        print(f"fnn: {err}", file=sys.stderr)
        return EXIT_INTERRUPT
    except KeyboardInterrupt:
        print("fnn: aborted", file=sys.stderr)
        return EXIT_INTERRUPT
    except (ValueError, OSError) as err:  # ConfigError, DataError, CheckpointError, UsageError
        if os.environ.get("FNN_DEBUG"):
            raise
        msg = str(err).strip() or type(err).__name__
        print(f"fnn: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # noqa: BLE001 - a bug: one line, the traceback in a file
        if os.environ.get("FNN_DEBUG"):
            raise
        if "RESOURCE_EXHAUSTED" in str(err):  # past the memory estimate (a raised limit)
            first = str(err).strip().splitlines()[0]
            print(f"fnn: error: out of memory while training ({first}); lower the batch size or"
                  " the network, or check training.memory_limit_gb", file=sys.stderr)
            return EXIT_FAIL
        return _internal_error(err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
