"""What every command shares: the --json and -v options, diagnostics on stderr, and how a run's result is printed."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.redact import RedactingFilter


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print exactly one JSON document on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")


def log_to_stderr(
    levels: Mapping[str, int], *, handler_level: int = logging.NOTSET, secrets: Iterable[str] = ()
) -> Callable[[], None]:
    """Diagnostics to stderr with tokens and `secrets` masked, and `levels` set on the named loggers ("" is the root).

    Telemetry events are for Application Insights, not the terminal. Returns what undoes both (handler and levels)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(handler_level)
    handler.addFilter(lambda record: not record.name.startswith("mailbox_audit_guard.events"))
    handler.addFilter(RedactingFilter(list(secrets)))
    saved = {name: logging.getLogger(name).level for name in levels}
    root = logging.getLogger()
    root.addHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)

    def restore() -> None:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)

    return restore


def print_result(
    as_json: bool, document: Mapping[str, Any], text: str | None = None, *, error: str | None = None
) -> None:
    """How a run ends: the error (if any) on stderr, then exactly one JSON document on stdout with --json, else the
    text (if any)."""
    if error:
        print(error, file=sys.stderr)
    if as_json:
        print(json.dumps(document, indent=2))
    elif text is not None:
        print(text)
