"""Parameter binding the way PowerShell does it for our cmdlets: names, booleans, TimeSpans, lists, hashtables."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from . import errors

HASHTABLE_TYPE = "#Exchange.GenericHashTable"
# Common parameters every cmdlet accepts; they change nothing here.
COMMON = frozenset({"confirm", "erroraction", "warningaction", "verbose", "debug", "force"})

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})$")


def bind(params: dict[str, Any], allowed: Iterable[str], *, open_ended: bool = False) -> dict[str, Any]:
    """Map case-insensitive parameter names to their canonical spelling; unknown names fail like PowerShell.

    `open_ended` keeps unknown names as given (Set-OrganizationConfig stores whatever it receives).
    """
    canonical = {name.lower(): name for name in allowed}
    bound: dict[str, Any] = {}
    for name, value in params.items():
        key = name.lower()
        if key in canonical:
            bound[canonical[key]] = value
        elif key in COMMON:
            continue
        elif open_ended:
            bound[name] = value
        else:
            raise errors.unknown_parameter(name)
    return bound


def to_bool(parameter: str, value: Any) -> bool:
    """Booleans, and the strings/numbers PowerShell would convert ("True", "$false", 0, 1)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower().lstrip("$") in ("true", "false"):
        return value.strip().lower().lstrip("$") == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise errors.conversion(parameter, value, "System.Boolean")


def to_timespan(parameter: str, value: Any) -> str:
    """`d.hh:mm:ss` or `hh:mm:ss`, normalised to how Exchange prints it ("90.00:00:00", "00:00:00")."""
    match = _TIMESPAN.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise errors.conversion(parameter, value, "Microsoft.Exchange.Data.EnhancedTimeSpan")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if hours > 23 or minutes > 59 or seconds > 59 or days > 24855:
        raise errors.conversion(parameter, value, "Microsoft.Exchange.Data.EnhancedTimeSpan")
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}.{clock}" if days else clock


def to_strings(parameter: str, value: Any) -> list[str]:
    """A multi-valued parameter: a JSON array of strings, or one string (comma-separated values allowed)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    raise errors.conversion(parameter, value, "Microsoft.Exchange.Data.MultiValuedProperty")


def hashtable(parameter: str, value: dict[str, Any]) -> tuple[list[str], list[str]]:
    """A `@{Add=...; Remove=...}` argument, which must carry the GenericHashTable annotation over REST."""
    if value.get("@odata.type") != HASHTABLE_TYPE:
        raise errors.conversion(
            parameter,
            "System.Collections.Hashtable",
            "Microsoft.Exchange.Data.MultiValuedProperty",
            f'the object is missing "@odata.type": "{HASHTABLE_TYPE}"',
        )
    add: list[str] = []
    remove: list[str] = []
    for key, items in value.items():
        if key == "@odata.type":
            continue
        if key.lower() == "add":
            add = to_strings(parameter, items)
        elif key.lower() == "remove":
            remove = to_strings(parameter, items)
        else:
            raise errors.binding(
                f"Cannot process argument transformation on parameter '{parameter}'. "
                f"The hashtable key '{key}' is not valid. Valid keys are: Add, Remove."
            )
    return add, remove


def result_size(value: Any) -> int | None:
    """ResultSize: "Unlimited" (None) or a positive number; Exchange's default is 1000."""
    if value is None:
        return 1000
    if isinstance(value, str) and value.strip().lower() == "unlimited":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1:
        raise errors.conversion("ResultSize", value, "Microsoft.Exchange.Data.Unlimited`1[System.UInt32]")
    return number
