"""The command line's argument parser: every command, flag and its help (``fnn --help``)."""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2  # argparse's errors are bad input, as everywhere in fnn (see fnn.cli)


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
    _init_flags(t)
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
    _init_flags(s)
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

    m = sub.add_parser("summary", help="the network's layers (output shape, parameters, "
                       "activation bytes, FLOPs) and the run's totals, without training")
    m.add_argument("config", metavar="CONFIG|RUN_DIR", help="experiment config (TOML) or a "
                   "run directory")
    m.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config key (configs only)")
    m.add_argument("--json", action="store_true", help="machine-readable output")

    _lr_find_parser(sub, common)

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
    gen = sub.add_parser("generate", help="print a continuation sampled from a run trained on "
                         "token data (data.name = text or adder)")
    gen.add_argument("run_dir", metavar="RUN_DIR")
    gen.add_argument("--prompt", default="", metavar="TEXT", help="text to continue (default:"
                     " a newline, or the vocabulary's first character)")
    gen.add_argument("--tokens", type=int, default=200, metavar="N",
                     help="characters to sample (default 200)")
    gen.add_argument("--temperature", type=float, default=1.0, metavar="T",
                     help="divide the logits by T (default 1; 0: greedy)")
    gen.add_argument("--top-k", dest="top_k", type=int, default=0, metavar="K",
                     help="sample among the K most likely characters (default 0: all)")
    gen.add_argument("--seed", type=int, default=0, metavar="S", help="PRNG seed (default 0)")
    gen.add_argument("--member", default=None, metavar="M", help="sweep member: index or label")
    return p


def _export_compare_parsers(sub) -> None:
    x = sub.add_parser("export", help="serialize a trained model (jax.export, StableHLO) for "
                       "use without fnn; writes FILE and FILE.json; or, with --format "
                       "safetensors, its weights")
    x.add_argument("run_dir", metavar="RUN_DIR")
    x.add_argument("--output", metavar="FILE", help="default: RUN_DIR/model.jax "
                   "(RUN_DIR/model-<i>.jax for member i of a sweep)")
    x.add_argument("--member", metavar="M", help="sweep member: index or label")
    x.add_argument("--format", choices=("jax", "safetensors"), default="jax",
                   help="jax: the whole model as jax.export (default); safetensors: the "
                   "parameters and BatchNorm state as named tensors (RUN_DIR/model.safetensors;"
                   " needs the safetensors extra)")
    c = sub.add_parser("compare", help="one metric of several runs and sweep members: a figure "
                       "and a table of final, best and test figures")
    c.add_argument("run_dirs", metavar="RUN_DIR", nargs="+")
    c.add_argument("--metric", metavar="NAME", help="a metrics.csv column (default val_loss)")
    c.add_argument("--out", metavar="FILE", help="the figure (default ./compare.png)")


def _lr_find_parser(sub, common) -> None:
    f = sub.add_parser("lr-find", help="learning-rate range test: the loss over a log-spaced "
                       "ramp of rates, one compiled program; writes lr_find.png and lr_find.csv "
                       "and prints the suggested rate")
    common(f)
    f.add_argument("--min", dest="min_lr", type=float, default=1e-6, metavar="LR",
                   help="the ramp's first rate (default 1e-6)")
    f.add_argument("--max", dest="max_lr", type=float, default=1.0, metavar="LR",
                   help="the ramp's last rate (default 1)")
    f.add_argument("--steps", type=int, default=100, metavar="N",
                   help="mini-batch steps of the ramp (default 100)")
    f.add_argument("--constant", type=int, default=0, metavar="K",
                   help="also train K constant rates log-spaced in [--min, --max] for --steps "
                        "steps each, as one vmapped sweep, drawn on the same axes")
    f.add_argument("--output", "--out", metavar="DIR", default=".", dest="output",
                   help="where lr_find.png and lr_find.csv go (default: the current directory;"
                        " --out is the same flag, as in fnn train)")


def _init_flags(sp) -> None:
    """Fine-tuning: the model.init_* keys as flags (fnn.experiment.init_from)."""
    sp.add_argument("--init-from", dest="init_from", metavar="RUN_DIR",
                    help="start from a finished run's parameters and BatchNorm state "
                    "(model.init_from)")
    sp.add_argument("--layers", dest="init_layers", metavar="all|SPEC",
                    help="the layers --init-from gives: all (default; every layer must fit), "
                    "or indices and slices, e.g. :-1 (all but the output layer), 0,2, 1:3 "
                    "(model.init_layers)")
    sp.add_argument("--init-member", dest="init_member", metavar="M",
                    help="the member of a sweep --init-from takes (index or label; default: "
                    "its best)")


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
