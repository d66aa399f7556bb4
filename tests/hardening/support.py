"""Helpers shared by the hardening tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hypothesis import Phase, settings
from hypothesis import strategies as st

EXPLORE_FACTOR = 10


def fuzz(examples: int, *, shrink: bool = True) -> settings:
    """Settings for one property: `examples` derandomized examples in CI; more, and random, when exploring.

    `shrink=False` for properties whose every example runs a child process: shrinking a failure would re-run it
    hundreds of times (minutes); the failing example is then reported as it was drawn."""
    profile = os.environ.get("HARDENING_PROFILE", "hardening")
    factor = EXPLORE_FACTOR if profile == "hardening-explore" else 1
    phases = list(Phase) if shrink else [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(settings.get_profile(profile), max_examples=examples * factor, phases=phases)


def nested(depth: int, inner: bytes = b"1", *, kind: str = "list") -> bytes:
    """`depth` levels of JSON arrays (or objects) around `inner`: what a hostile client sends to exhaust a parser."""
    if kind == "list":
        return b"[" * depth + inner + b"]" * depth
    return b'{"a":' * depth + inner + b"}" * depth


def at_stack_depth(frames: int, call: Callable[..., Any], *args: Any) -> Any:
    """Call `call(*args)` from `frames` extra Python frames deep, as a worker thread's deeper stack would."""
    if frames <= 0:
        return call(*args)
    return at_stack_depth(frames - 1, call, *args)


# Any JSON value, small: what a hostile or broken producer puts where a string, list or boolean belongs.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)

# Text an attacker or a careless paste puts into a setting, a register entry or a mailbox name. (Never /dev/zero
# in-process: were the register's bounded read to regress, the test process would eat all memory; see
# test_hostile_settings for the capped child-process check.)
HOSTILE_TEXT = (
    "' -or Name -like '*",
    "x' -or '1'='1",
    "-or $true",
    "$true",
    "$null",
    "{}",
    "${env:EXO_CLIENT_SECRET}",
    "$(Get-Mailbox)",
    "`$x",
    '"; Remove-Mailbox -Identity *; "',
    "*",
    "%",
    "a\x00b",
    "\x00",
    "line1\nline2",
    "\r\n",
    "Zoë-Ødegård",
    "משתמש-בדיקה",
    "\u202egnp.exe",
    "😀",
    "ｔｒｕｅ",
    " ",
    "\t",
    "null",
    "None",
    "-1",
    "0",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "1_000",
    "١٢",
    "0x10",
    "../../etc/passwd",
    "/dev/null",
    "C:\\Windows\\System32",
    "https://evil.example",
    "http://127.0.0.1",
    "x" * 100_000,
)
