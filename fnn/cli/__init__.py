"""The ``fnn`` command line (also ``python -m fnn``).

    fnn train CONFIG [--set k=v ...] [--out DIR] [--resume] [--overwrite] [--quiet]
    fnn sweep CONFIG --grid optimizer.learning_rate=1e-3,3e-3 [--seeds N] [--set ...] [--out DIR]
    fnn gradcheck CONFIG [--set ...] [--json]
    fnn inspect CONFIG [--set ...] [--batch N] [--json]
    fnn summary CONFIG|RUN_DIR [--set ...] [--json]
    fnn evaluate RUN_DIR [--split test|val|train] [--json]
    fnn predict RUN_DIR|MODEL.jax INPUT.{csv,npz} [--output FILE] [--member M]
    fnn export RUN_DIR [--output FILE] [--member M] [--format jax|safetensors]
    fnn compare RUN_DIR [RUN_DIR ...] [--metric NAME] [--out FILE]
    fnn generate RUN_DIR [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]
    fnn lr-find CONFIG [--min 1e-6] [--max 1] [--steps 100] [--constant K] [--set ...]
                [--output DIR]

Exit status: 0 success; 1 training failure (a run halted on a non-finite loss, gradient or
update; gradcheck out of tolerance) or a write that failed for lack of space or an I/O error
(one line naming the file); 2 bad input (config, data, arguments) with a one-line
message and no traceback; 3 internal error, including any error JAX or XLA raise (one line;
the traceback in a log file under $FNN_CACHE_DIR/crash, default ~/.cache/fnn/crash); 130 on Ctrl-C after saving a checkpoint; 143 on SIGTERM
(raised as :class:`Terminated`, so that every temporary file is removed on the way out).

The parser is in :mod:`fnn.cli.parser`, the commands in :mod:`fnn.cli.commands`; this module
is the entry point: exit statuses, one-line errors, crash logs, and the dispatch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


from fnn.cli.commands import (EXIT_FAIL, EXIT_INTERRUPT, EXIT_OK, EXIT_USAGE, cmd_compare,
                              cmd_evaluate, cmd_export, cmd_generate, cmd_gradcheck, cmd_inspect,
                              cmd_lr_find, cmd_predict,
                              cmd_summary, cmd_sweep, cmd_train, parse_grid)
from fnn.cli.parser import build_parser
from fnn.util.allocator import retain_freed_memory
from fnn.version import __version__

COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "gradcheck": cmd_gradcheck,
            "inspect": cmd_inspect, "summary": cmd_summary, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "export": cmd_export, "compare": cmd_compare, "generate": cmd_generate,
            "lr-find": cmd_lr_find}


EXIT_INTERNAL = 3
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks (temp files) run."""


def _on_sigterm(signum, frame):
    raise Terminated("terminated (SIGTERM)")


def _sigterm_raises():
    """Install :func:`_on_sigterm` for SIGTERM (main thread only); returns the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def _wants_float64(args) -> bool:
    """Whether the command's config (or run directory) asks for model.dtype = "float64".

    Read from the raw TOML before any command runs, so that x64 is on before JAX creates an
    array; a config that cannot be read is left to the command to report.
    """
    from fnn.experiment import config as config_mod

    try:
        if getattr(args, "config", None) and Path(args.config).is_dir():  # fnn summary RUN_DIR
            raw = config_mod.read_raw(Path(args.config, "config.toml"))
        elif getattr(args, "config", None):
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


class _Pending:
    """Warnings held back until the command writes anything (or ends), so that a warning and
    the error that follows it print as one message (``fnn: error: ... (after the warning:
    ...)``) rather than two. A command's first output (the progress bar, a table) flushes them,
    so a run's warnings still come before its output."""

    def __init__(self):
        self.lines: list = []  # (kind, text)
        self.stream = None

    def show(self, message, category, filename, lineno, file=None, line=None):
        """``warnings.showwarning``: one line, without the source line Python would echo."""
        kind = "note" if category.__name__ == "ConfigNotice" else "warning"
        self.lines.append((kind, " ".join(str(message).split())))
        if self.stream is None:
            self.flush()

    def flush(self) -> None:
        lines, self.lines = self.lines, []
        for kind, text in lines:
            print(f"fnn: {kind}: {text}", file=self.stream or sys.stderr)

    def fold(self, msg: str) -> str:
        """``msg`` (an error) with the held warnings folded into its first line."""
        lines, self.lines = self.lines, []
        if not lines:
            return msg
        first, _, rest = msg.partition("\n")
        said = "; ".join(f"{text}" for _, text in lines)
        kind = "note" if all(k == "note" for k, _ in lines) else "warning"
        return f"{first} (after the {kind}{'s' if len(lines) > 1 else ''}: {said})" + (
            f"\n{rest}" if rest else "")


class _FlushFirst:
    """A stream that flushes the held warnings before its first write."""

    def __init__(self, stream, pending: _Pending):
        self._stream, self._pending = stream, pending

    def write(self, text):
        if self._pending.lines:
            self._pending.flush()
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


_PENDING = _Pending()


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line on stderr (held until the command's first output)."""
    _PENDING.show(message, category, filename, lineno, file, line)


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
            path.write_text(f"fnn {__version__} {' '.join(sys.argv)}\n{text}", encoding="utf-8")
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
    import signal

    retain_freed_memory()  # before XLA starts its threads: see fnn.util.allocator
    args = build_parser().parse_args(argv)
    old_sigterm = _sigterm_raises()
    try:
        return _main(args)
    except Terminated:
        print("fnn: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        if old_sigterm is not None:
            signal.signal(signal.SIGTERM, old_sigterm)


def _main(args) -> int:
    import warnings

    out, err = sys.stdout, sys.stderr
    _PENDING.lines, _PENDING.stream = [], err
    sys.stdout, sys.stderr = _FlushFirst(out, _PENDING), _FlushFirst(err, _PENDING)
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
            sys.stdout, sys.stderr = out, err
            _PENDING.flush()
            _PENDING.stream = None
            if x64 is not None:
                import jax

                jax.config.update("jax_enable_x64", x64)


def raised_inside_jax(err: BaseException) -> bool:
    """Whether ``err`` was raised by JAX's or XLA's own code (fnn's misuse of them: a bug).

    fnn checks bad input before anything is compiled, so a ValueError that JAX raises (say,
    "ordered effects are not supported for more than 1 device") is fnn's bug, not the user's.
    Read from the innermost frame of the traceback, which :func:`_dispatch` keeps unfiltered.
    """
    tb, last = err.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    if last is None or "jax" not in sys.modules:
        return False
    import jax

    roots = [Path(jax.__file__).resolve().parent]
    if "jaxlib" in sys.modules and getattr(sys.modules["jaxlib"], "__file__", None):
        roots.append(Path(sys.modules["jaxlib"].__file__).resolve().parent)
    where = Path(last.tb_frame.f_code.co_filename).resolve()
    return any(where.is_relative_to(root) for root in roots)


def _dispatch(args) -> int:
    # JAX's internal frames stay in tracebacks: they tell its errors from fnn's (exit 3, not 2).
    # Without importing JAX (a config error must not wait for it): the environment variable is
    # what JAX reads when it is first imported; a JAX already imported is set directly.
    jax = sys.modules.get("jax")
    saved_env = os.environ.get("JAX_TRACEBACK_FILTERING")
    saved = jax.config.jax_traceback_filtering if jax is not None else None
    if jax is not None:
        jax.config.update("jax_traceback_filtering", "off")
    else:
        os.environ["JAX_TRACEBACK_FILTERING"] = "off"
    try:
        return _run_command(args)
    finally:
        if saved_env is None:
            os.environ.pop("JAX_TRACEBACK_FILTERING", None)
        else:
            os.environ["JAX_TRACEBACK_FILTERING"] = saved_env
        if "jax" in sys.modules:
            sys.modules["jax"].config.update("jax_traceback_filtering",
                                             saved if saved is not None else (saved_env or "auto"))


def _run_command(args) -> int:
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("fnn: aborted", file=sys.stderr)
        return EXIT_INTERRUPT
    except (ValueError, OSError) as err:  # ConfigError, DataError, CheckpointError, UsageError
        from fnn.util.fileio import WriteError

        if os.environ.get("FNN_DEBUG"):
            raise
        if isinstance(err, WriteError) and err.resource:  # disk full: the run failed
            print(f"fnn: error: {err}", file=sys.stderr)
            return EXIT_FAIL
        if raised_inside_jax(err):
            return _internal_error(err)
        msg = _PENDING.fold(str(err).strip() or type(err).__name__)
        print(f"fnn: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # noqa: BLE001 - a bug: one line, the traceback in a file
        from fnn.experiment.chunks import Interrupted  # here, not above: it imports JAX

        if isinstance(err, Interrupted):  # Ctrl-C honoured after saving a checkpoint
            print(f"fnn: {err}", file=sys.stderr)
            return EXIT_INTERRUPT
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
