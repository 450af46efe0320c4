"""The commands of the command line, each a thin function of its parsed arguments.

Each ``cmd_*`` loads and validates its input through the experiment layer, does one thing and
returns an exit status; errors are raised (:func:`fnn.cli.main` turns them into one line).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path


EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPT = 0, 1, 2, 130


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
                      ("coordinator", "parallel.coordinator"),
                      ("init_from", "model.init_from"), ("init_layers", "model.init_layers"),
                      ("init_member", "model.init_member")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    path = args.config
    if os.path.isdir(path) and hasattr(args, "resume"):  # train / sweep: a run directory
        path = _run_dir_config(args)
        cfg = config_mod.load(path, overrides)
        return dataclasses.replace(cfg, source=_original_source(args.config) or cfg.source)
    return config_mod.load(path, overrides)


def _run_dir_config(args) -> str:
    """``--resume RUN_DIR``: the run's own config.toml, the run continued in place."""
    from fnn.experiment.rundir import CONFIG_FILE, UsageError, real_path

    run_dir = args.config
    if not args.resume:
        raise UsageError(f"CONFIG: {run_dir!r} is a run directory; pass --resume to continue "
                         f"it, or its {CONFIG_FILE} to train the config anew elsewhere (--out)")
    if args.out and real_path(Path(args.out)) != real_path(Path(run_dir)):
        raise UsageError(f"--out: {args.out!r}; --resume {run_dir!r} continues that run in "
                         f"place (leave --out out)")
    args.out = run_dir
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise UsageError(f"--resume: {run_dir!r} holds no run to resume (no {CONFIG_FILE})")
    return path


def _original_source(run_dir: str):
    """The config file a run was trained from (summary.json's ``config``), for its titles."""
    try:
        with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as f:
            source = json.load(f).get("config")
    except (OSError, ValueError, AttributeError):
        return None
    return source if isinstance(source, str) and source else None


def cmd_train(args) -> int:
    cfg = _load_config(args)  # a bad config is reported before JAX is imported

    from fnn.experiment import runner

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

    cfg = _load_config(args)
    most = min(config_mod.MAX_SEEDS, config_mod.SEED_MAX + 1 - cfg.training.seed)
    if args.seeds is not None and not 1 <= args.seeds <= most:
        raise config_mod.ConfigError([f"--seeds: {config_mod.short_int(args.seeds)}; expected an "
                                      f"integer >= 1 and at most {most} (each seed is a member "
                                      "of one vmapped program; seeds stay below 2**32)"])
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
    from fnn.experiment import runner

    _setup_jax(cfg)
    summary = runner.run(cfg, out=args.out, overwrite=args.overwrite, resume=args.resume,
                         quiet=args.quiet)
    return _status(summary, args.quiet)


def cmd_gradcheck(args) -> int:
    from fnn.experiment import config as config_mod

    cfg = _load_config(args)
    if args.batch < 1:
        raise config_mod.ConfigError([f"--batch: {args.batch}; expected an integer >= 1"])
    import fnn
    from fnn.experiment import build as exp

    fb = exp.first_batch(cfg, args.batch)
    net, n = fb.net, fb.x.shape[0]
    report = fnn.gradcheck(net, fb.loss, fb.params, fb.x, fb.y, key=fb.drop_key, l1=fb.l1,
                           l2=fb.l2, drop_rate=fb.drop_rate)
    if args.json:
        print(report.to_json())
    else:
        print(f"gradcheck: {cfg.source}  network {net.describe()}  "
              f"loss {config_mod.resolved_loss(cfg)}  batch {n}  float64")
        print(report)
    return EXIT_OK if report.passed else EXIT_FAIL


def cmd_inspect(args) -> int:
    """One forward + backward pass of the configured network on the first --batch training
    examples, at its initial parameters (training.seed): :func:`fnn.backprop_trace`'s table."""
    from fnn.experiment import config as config_mod

    cfg = _load_config(args)
    if args.batch < 1:
        raise config_mod.ConfigError([f"--batch: {args.batch}; expected an integer >= 1"])
    import fnn
    from fnn.experiment import build as exp

    if cfg.sweep:
        print("fnn inspect: the [sweep] table is ignored; this is the config's base network "
              "(pick a member with --set KEY=VALUE)", file=sys.stderr)
    fb = exp.first_batch(cfg, args.batch)
    net, loss, n = fb.net, fb.loss, fb.x.shape[0]
    trace = fnn.backprop_trace(net, loss, fb.params, fb.x, fb.y, key=fb.drop_key,
                               drop_rate=fb.drop_rate)
    if args.json:
        network = {"network": net.describe(), "shapes": [list(s) for s in trace.sizes],
                   "activations": list(trace.activations)}
        print(json.dumps({"config": cfg.source, **network, "loss": loss,
                          "loss_value": float(trace.loss), "batch": n,
                          "layers": trace.rows()}, indent=2))
    else:
        print(f"inspect: {cfg.source}  initial parameters (training.seed = {cfg.training.seed})"
              f"  first {n} training examples")
        print(trace)
    return EXIT_OK


def cmd_summary(args) -> int:
    """:meth:`fnn.Sequential.summary` of the config's (or run directory's) network, with its
    optimizer and batch size; nothing is trained."""
    from fnn.experiment import model_summary

    cfg, items = model_summary.for_source(args.config, args.overrides)
    if args.json:
        rows = [{"group": title, **s.to_dict()} for title, s in items]
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=2))
    else:
        print(model_summary.banner(cfg))
        print(model_summary.text(items))
    return EXIT_OK


def cmd_lr_find(args) -> int:
    """Smith's range test of the config (:mod:`fnn.experiment.lr_find`): every check, then one
    compiled program, then lr_find.png and lr_find.csv in --output."""
    from fnn.experiment import lr_find as lr_mod

    lr_mod.check_args(args.min_lr, args.max_lr, args.steps, args.constant)
    cfg = _load_config(args)
    if cfg.sweep or cfg.training.seeds:
        print("fnn lr-find: the [sweep] table and training.seeds are ignored; this is the "
              "config's base network (pick a member with --set KEY=VALUE)", file=sys.stderr)
    lr_mod.output_paths(args.output, bool(args.constant))  # refused before anything runs
    _setup_jax(cfg)
    result = lr_mod.lr_find(cfg, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps,
                            constant=args.constant)
    print(f"lr-find: {cfg.source}  {args.steps} steps from {args.min_lr:g} to {args.max_lr:g}"
          f" (log-spaced)  {cfg.optimizer.name}  batch {cfg.training.batch_size}")
    print(lr_mod.suggestion_line(result))
    print(lr_mod.divergence_line(result))
    title = (f"learning-rate range test: {Path(cfg.source).name} ({cfg.optimizer.name}, "
             f"batch {cfg.training.batch_size}, {args.steps} steps)")
    written = lr_mod.write_files(result, args.output, title=title)
    print("wrote " + ", ".join(str(p) for p in written))
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from fnn.experiment import build as exp
    from fnn.experiment import handle
    from fnn.util.table import format_table
    from fnn.experiment.rundir import UsageError

    labels = handle.member_labels(args.run_dir)
    datasets = {}  # one load per distinct data section (a sweep's members share theirs)
    rows, split = [], args.split
    for i, label in enumerate(labels):
        h = handle.load_run(args.run_dir, member=i if len(labels) > 1 else None)
        key = repr(h.config.data)
        if key not in datasets:
            datasets[key] = exp.load_dataset(h.config)
        dataset = datasets[key]
        if split is None:
            split = ("test" if dataset.split("test") is not None else
                     "val" if dataset.split("val") is not None else "train")
        if dataset.split(split) is None:
            raise UsageError(f"--split {split}: dataset {h.config.data.name!r} has no {split}"
                             " split")
        m = h.evaluate(split, dataset=dataset)
        rows.append({"member": label, "split": split, **m})
    if args.json:
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=2))
    else:
        cols = ["member", "split", "examples"] + [k for k in ("loss", "accuracy", "exact_match")
                                                   if k in rows[0]]
        print(format_table(rows, cols))
    return EXIT_OK


def cmd_predict(args) -> int:
    from fnn.experiment import predict

    out = predict.predict_file(args.run_dir, args.input, args.output, member=args.member)
    print(f"predictions written to {out}")
    return EXIT_OK


def cmd_export(args) -> int:
    from fnn.experiment import export

    if getattr(args, "format", "jax") == "safetensors":
        from fnn.experiment import weights

        out = weights.export_weights(args.run_dir, args.output, member=args.member)
        print(f"weights written to {out} (safetensors; names and layouts in docs/weights.md);"
              f" load them with safetensors.numpy.load_file({str(out)!r})")
        return EXIT_OK
    out = export.export_run(args.run_dir, args.output, member=args.member)
    print(f"exported to {out} (metadata: {out}.json); load it with only JAX: "
          f"jax.export.deserialize(open({str(out)!r}, 'rb').read()).call(x)")
    return EXIT_OK


def cmd_generate(args) -> int:
    from fnn.experiment import handle as handle_mod

    h = handle_mod.load_run(args.run_dir, member=args.member)
    print(h.generate(args.prompt, tokens=args.tokens, temperature=args.temperature,
                     top_k=args.top_k, seed=args.seed))
    return EXIT_OK


def cmd_compare(args) -> int:
    from fnn.experiment import compare

    text, path = compare.compare(args.run_dirs, metric=args.metric, out=args.out)
    print(text)
    print(f"figure: {path}" if path else "note: matplotlib is not installed; no figure")
    return EXIT_OK


COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "gradcheck": cmd_gradcheck,
            "inspect": cmd_inspect, "summary": cmd_summary, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "export": cmd_export, "compare": cmd_compare, "generate": cmd_generate,
            "lr-find": cmd_lr_find}
