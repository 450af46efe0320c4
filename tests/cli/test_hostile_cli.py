"""Issue 17, the CLI's last line of defence: a bug is one line with exit 3 and its traceback in
a log file; a warning is one line without Python's source echo."""
from __future__ import annotations

import warnings

import pytest

from cli_helpers import run_cli, write_config
from fnn import cli


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FNN_DEBUG", raising=False)
    return tmp_path / "cache"


def test_an_unexpected_exception_is_one_line_exit_3_with_the_traceback_in_a_file(
        cache, tmp_path, monkeypatch):
    def broken(args):
        raise KeyError("a bug deep inside\nover two lines")

    monkeypatch.setitem(cli.COMMANDS, "train", broken)
    rc, out, err = run_cli("train", tmp_path / "any.toml")
    lines = err.strip().splitlines()
    assert rc == 3 and len(lines) == 1, err
    assert lines[0].startswith("fnn: internal error: KeyError: ") and lines[0].endswith(
        "please report"), lines[0]
    assert "Traceback" not in err
    logs = list((cache / "crash").glob("*.log"))
    assert len(logs) == 1 and str(logs[0]) in lines[0]
    text = logs[0].read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text


def test_fnn_debug_lets_the_traceback_through(cache, tmp_path, monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "train", lambda args: 1 / 0)
    monkeypatch.setenv("FNN_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        run_cli("train", tmp_path / "any.toml")


def test_a_warning_is_one_line_without_the_source_echo(cache, tmp_path, monkeypatch):
    def warns_then_fails(args):
        warnings.warn("skipping corrupt checkpoint ckpt-3.npz\n(bad zip)", UserWarning)
        raise ValueError("the error line")

    monkeypatch.setitem(cli.COMMANDS, "train", warns_then_fails)
    rc, out, err = run_cli("train", tmp_path / "any.toml")
    assert rc == 2
    # a warning followed by an error is one message (issue 23), not two
    assert err.splitlines() == ["fnn: error: the error line (after the warning: skipping corrupt "
                                "checkpoint ckpt-3.npz (bad zip))"], err


def test_a_warning_before_output_is_printed_first(cache, tmp_path, monkeypatch):
    def warns_then_prints(args):
        warnings.warn("first", UserWarning)
        print("the table")
        warnings.warn("later", UserWarning)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "train", warns_then_prints)
    rc, out, err = run_cli("train", tmp_path / "any.toml")
    assert rc == 0 and out == "the table\n"
    assert err.splitlines() == ["fnn: warning: first", "fnn: warning: later"], err


def test_a_warning_before_an_internal_error_keeps_its_line(cache, tmp_path, monkeypatch):
    def warns_then_crashes(args):
        warnings.warn("careful", UserWarning)
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.COMMANDS, "train", warns_then_crashes)
    rc, out, err = run_cli("train", tmp_path / "any.toml")
    assert rc == 3
    assert err.splitlines()[0] == "fnn: warning: careful"
    assert err.splitlines()[1].startswith("fnn: internal error: RuntimeError: boom")


def test_the_warning_formatter_is_restored(cache, tmp_path):
    before = warnings.showwarning
    run_cli("train", write_config(tmp_path / "bad.toml", "[data]\nname = 1\n"))
    assert warnings.showwarning is before


def test_an_error_raised_inside_jax_is_a_bug_exit_3_not_bad_input(cache, tmp_path, monkeypatch):
    """Issue 23: JAX's "ordered effects are not supported for more than 1 device" (a
    ValueError from inside JAX) exited 2, "bad input". Any error JAX or XLA raise is fnn's bug."""
    import jax
    import jax.numpy as jnp

    def misuses_jax(args):
        return jax.jit(lambda x: jnp.linspace(0.0, x, -1))(1.0)  # ValueError inside JAX

    monkeypatch.setitem(cli.COMMANDS, "train", misuses_jax)
    filtering = jax.config.jax_traceback_filtering
    rc, out, err = run_cli("train", tmp_path / "any.toml")
    lines = err.strip().splitlines()
    assert rc == 3 and len(lines) == 1, err
    assert lines[0].startswith("fnn: internal error: ValueError: "), lines[0]
    assert jax.config.jax_traceback_filtering == filtering  # restored after the command
    # fnn's own bad-input errors, raised while JAX traces, stay exit 2
    def bad_input_while_tracing(args):
        def f(x):
            raise ValueError("layer 0 (Dense): input (3,); expected (2,)")
        return jax.jit(f)(1.0)

    monkeypatch.setitem(cli.COMMANDS, "train", bad_input_while_tracing)
    rc, out, err = run_cli("train", tmp_path / "any.toml")
    assert rc == 2 and err.strip() == "fnn: error: layer 0 (Dense): input (3,); expected (2,)", err
