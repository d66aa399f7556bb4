"""Running `python -m shared ...` against the emulator: in this process (fast), or in a child process (end to end).

`run_cli` runs the `python -m shared` entry point (shared/__main__.py, which calls `shared.cli.main.main()`) in
process, with the argv, environment, working directory and stdout/stderr handling a child would get, and
returns the `CompletedProcess` a child run gives, so a test asserts the same things either way. Exchange
traffic goes through the emulator's in-process transport unless `transport=False` (then over its TLS sockets);
tokens always come from the real socket endpoints. `spawn_cli` runs a real child process: for the end-to-end
tests (marked `e2e`) and anything that needs a process of its own (the telemetry exporter's globals, deadlines
that must be measured from outside).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import runpy
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.tenant import REPO

_LOGGERS = ("", "mailbox_audit_guard", "msal", "azure")  # the loggers the CLI configures


def clean_env() -> dict[str, str]:
    """The parent environment without anything that could point a child at a real tenant or credential."""
    drop = ("EXO_", "IDENTITY_", "MSI_", "AZURE_", "APPLICATIONINSIGHTS_", "REQUESTS_CA_BUNDLE", "OTEL_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def cli_env(
    emu: Any, auth_mode: str = "secret", env: Mapping[str, str] | None = None, *, keep_telemetry: bool = False
) -> dict[str, str]:
    """The environment a CLI run gets: clean, the emulator's settings, telemetry off unless kept, then `env`."""
    child_env = {**clean_env(), **(emu.env(auth_mode) if emu is not None else {})}
    if not keep_telemetry:
        child_env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    child_env.update(env or {})
    return child_env


def spawn_cli(
    emu: Any,
    *args: str,
    auth_mode: str = "secret",
    env: dict[str, str] | None = None,
    timeout: float = 60,
    keep_telemetry: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m shared ...` in a child process against the emulator, as a person would.

    Telemetry is off unless `keep_telemetry` (then `env` should carry the hermetic exporter settings)."""
    return subprocess.run(
        [sys.executable, "-m", "shared", *args],
        cwd=REPO,
        env=cli_env(emu, auth_mode, env, keep_telemetry=keep_telemetry),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_cli(
    emu: Any,
    *args: str,
    auth_mode: str = "secret",
    env: dict[str, str] | None = None,
    timeout: float = 60,
    keep_telemetry: bool = False,
    transport: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the command line in this process, as `spawn_cli` would in a child, and return what a child returns.

    A run that takes longer than `timeout` raises subprocess.TimeoutExpired afterwards (it cannot be cut short
    in process: tests that need that use `spawn_cli`). `keep_telemetry` always spawns a child, because the
    OpenTelemetry exporter is set up once per process."""
    if keep_telemetry:
        return spawn_cli(emu, *args, auth_mode=auth_mode, env=env, timeout=timeout, keep_telemetry=True)
    from shared.runtime import telemetry

    if telemetry._configured_by_us:  # an exporter set up in this process would send this run's events somewhere
        raise RuntimeError("telemetry was configured in the test process; run this CLI test with spawn_cli")
    argv = [str(REPO / "shared" / "__main__.py"), *args]  # sys.argv as `python -m shared` sets it
    stdout, stderr = io.BytesIO(), io.BytesIO()
    started = time.monotonic()
    with _environment(cli_env(emu, auth_mode, env)), _logging_restored(), _sessions(emu if transport else None):
        # What a child's stdio would be with a pipe: UTF-8, strict for stdout, backslashreplace for stderr.
        out = io.TextIOWrapper(stdout, encoding="utf-8", errors="strict", write_through=True)
        err = io.TextIOWrapper(stderr, encoding="utf-8", errors="backslashreplace", write_through=True)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            saved_argv = sys.argv
            sys.argv = argv
            try:
                runpy.run_module("shared", run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exit_:  # argparse: usage errors and --version; as sys.exit() ends a process
                code = 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
                if not isinstance(exit_.code, int | None):
                    print(exit_.code, file=sys.stderr)
            except Exception:  # what the interpreter would do: a traceback on stderr, exit 1
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.argv = saved_argv
            out.flush()
            err.flush()
    elapsed = time.monotonic() - started
    result = subprocess.CompletedProcess(
        [sys.executable, "-m", "shared", *args], code, _text(stdout.getvalue()), _text(stderr.getvalue())
    )
    if elapsed > timeout:
        raise subprocess.TimeoutExpired(result.args, timeout, result.stdout, result.stderr)
    return result


def cli_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The single JSON document a `--json` run prints."""
    return json.loads(result.stdout)


def _text(data: bytes) -> str:
    """Bytes decoded as subprocess.run(text=True) decodes a child's output (universal newlines)."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ and the working directory exactly as a child started with `env` in the repository would see."""
    saved, cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(REPO)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.chdir(cwd)


@contextlib.contextmanager
def _logging_restored() -> Iterator[None]:
    """Undo the handlers and levels the CLI sets on the root logger and its own, as a process exit would."""
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    saved = [(logger, list(logger.handlers), logger.level) for logger in loggers]
    try:
        yield
    finally:
        for logger, handlers, level in saved:
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)


@contextlib.contextmanager
def _sessions(emu: Any) -> Iterator[None]:
    """While running, every Exchange client the service opens answers from `emu` in process (None: sockets)."""
    import shared.activity.feed  # noqa: F401 - imported before the patch, so its `new_session` stays the real one
    from shared.exchange import client as exchange_client

    if emu is None:
        yield
        return
    original = exchange_client.new_session

    def mounted() -> Any:
        return emu.mount(original(), "exchange")

    exchange_client.new_session = mounted
    try:
        yield
    finally:
        exchange_client.new_session = original
