"""The written-exception register (AUDIT_EXCEPTIONS_FILE): CIS allows audit bypass only with a written exception.

Each entry: {"control": "audit-bypass", "identity": ..., "reason": ..., "approved_by": ..., "expires": "YYYY-MM-DD"}.
An expired, incomplete or malformed entry does not count and is reported; a file that is not a JSON list of
objects is a configuration error.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

SUPPORTED_CONTROLS = ("audit-bypass",)
REQUIRED_FIELDS = ("control", "identity", "reason", "approved_by", "expires")
MAX_FILE_BYTES = 1024 * 1024
MAX_FIELD_LENGTH = 1024


class ExceptionFileError(ValueError):
    """The register file as a whole is unusable."""


@dataclass(frozen=True)
class WrittenException:
    control: str
    identity: str
    reason: str
    approved_by: str
    expires: date

    def as_dict(self) -> dict[str, str]:
        return {
            "identity": self.identity,
            "reason": self.reason,
            "approved_by": self.approved_by,
            "expires": self.expires.isoformat(),
        }


@dataclass(frozen=True)
class ExceptionRegister:
    """Valid entries by (control, lower-cased identity), and the entries that were refused with why."""

    valid: dict[tuple[str, str], WrittenException] = field(default_factory=dict)
    rejected: tuple[dict[str, Any], ...] = ()

    def find(self, control: str, *identities: str | None) -> WrittenException | None:
        for identity in identities:
            if identity and (entry := self.valid.get((control, identity.strip().lower()))):
                return entry
        return None


def parse_register(document: Any, today: date) -> ExceptionRegister:
    """Validate the parsed JSON; raise ExceptionFileError when it is not a list of objects."""
    if not isinstance(document, list):
        raise ExceptionFileError("must be a JSON list of exception objects")
    valid: dict[tuple[str, str], WrittenException] = {}
    rejected: list[dict[str, Any]] = []
    for index, entry in enumerate(document):
        if not isinstance(entry, dict):
            raise ExceptionFileError(f"entry {index} is not a JSON object")
        problem = _problem(entry, today)
        if problem:
            rejected.append({"entry": _printable(entry), "problem": problem})
            continue
        exception = WrittenException(
            entry["control"],
            entry["identity"].strip(),
            entry["reason"].strip(),
            entry["approved_by"].strip(),
            date.fromisoformat(entry["expires"]),
        )
        valid[(exception.control, exception.identity.lower())] = exception
    return ExceptionRegister(valid, tuple(rejected))


def load_register(path: str | Path, today: date) -> ExceptionRegister:
    """Read and validate the register file."""
    file = Path(path)
    try:
        # Only a regular file, and never more than the limit: /dev/zero or /dev/stdin read forever and a FIFO blocks
        # on open (found by tests/hardening; the size check alone trusted st_size, which is 0 for those).
        if not stat.S_ISREG(file.stat().st_mode):
            raise ExceptionFileError("is not a regular file")
        with file.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ExceptionFileError(f"is larger than {MAX_FILE_BYTES} bytes")
        document = json.loads(data.decode("utf-8-sig"))  # -sig: Windows editors often save with a BOM
    except ExceptionFileError:
        raise  # a ValueError too: without this it was reported as "is not valid JSON", hiding the real reason
    except OSError as exc:
        raise ExceptionFileError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ExceptionFileError("is not valid JSON") from None
    return parse_register(document, today)


def _problem(entry: dict[str, Any], today: date) -> str | None:
    missing = [name for name in REQUIRED_FIELDS if not isinstance(entry.get(name), str) or not entry[name].strip()]
    if missing:
        return f"missing or empty: {', '.join(missing)}"
    if any(len(entry[name]) > MAX_FIELD_LENGTH for name in REQUIRED_FIELDS):
        return f"a field is longer than {MAX_FIELD_LENGTH} characters"
    if entry["control"] not in SUPPORTED_CONTROLS:
        return f"control {entry['control']!r} does not take exceptions (only {', '.join(SUPPORTED_CONTROLS)})"
    try:
        expires = date.fromisoformat(entry["expires"])
    except ValueError:
        return "expires is not a date (YYYY-MM-DD)"
    if len(entry["expires"]) != 10:
        return "expires is not a date (YYYY-MM-DD)"
    if expires < today:
        return f"expired on {expires.isoformat()}"
    return None


def _printable(entry: dict[str, Any]) -> dict[str, str]:
    """A bounded copy of a refused entry for the report (hostile files must not blow it up)."""
    return {str(key)[:64]: str(value)[:200] for key, value in list(entry.items())[:10]}
