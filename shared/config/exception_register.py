"""The written-exception register (AUDIT_EXCEPTIONS_FILE): CIS allows audit bypass only with a written exception.

Each entry: {"control": "audit-bypass", "identity": ..., "reason": ..., "approved_by": ..., "expires": "YYYY-MM-DD"}.
A second kind suppresses an activity-watch detection (docs/detections.md): {"detection": "send-as", "actor": ...,
"mailbox": ..., "target": ..., "reason": ..., "approved_by": ..., "expires": ...}, with at least one of actor,
mailbox and target; every one given must match the alert. An expired, incomplete or malformed entry does not count
and is reported; a file that is not a JSON list of objects is a configuration error.
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
# The activity watch's detection ids (shared/activity/detections/registry.py; a test keeps the two equal: the
# register is read below the layer that defines them).
SUPPORTED_DETECTIONS = (
    "audit-tampering",
    "mailbox-permission",
    "mail-forwarding",
    "inbox-rule-evasion",
    "send-as",
    "non-owner-access",
    "mass-delete",
    "mailbox-export",
    "unusual-location",
    "impossible-travel",
)
DETECTION_REQUIRED_FIELDS = ("detection", "reason", "approved_by", "expires")
DETECTION_SCOPE_FIELDS = ("actor", "mailbox", "target")
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
class DetectionException:
    """A written exception to an activity-watch detection: each scope field given (lower-cased) must match."""

    detection: str
    actor: str | None
    mailbox: str | None
    target: str | None
    reason: str
    approved_by: str
    expires: date

    def matches(self, detection: str, actor: str | None, mailbox: str | None, target: str | None) -> bool:
        if detection != self.detection:
            return False
        pairs = ((self.actor, actor), (self.mailbox, mailbox), (self.target, target))
        return all(wanted is None or (value or "").strip().lower() == wanted for wanted, value in pairs)

    def as_dict(self) -> dict[str, str]:
        scope = {name: value for name, value in self._scope().items() if value is not None}
        return {
            "detection": self.detection,
            **scope,
            "reason": self.reason,
            "approved_by": self.approved_by,
            "expires": self.expires.isoformat(),
        }

    def _scope(self) -> dict[str, str | None]:
        return {"actor": self.actor, "mailbox": self.mailbox, "target": self.target}


@dataclass(frozen=True)
class ExceptionRegister:
    """Valid entries by (control, lower-cased identity), the detection exceptions, and the entries refused with why."""

    valid: dict[tuple[str, str], WrittenException] = field(default_factory=dict)
    rejected: tuple[dict[str, Any], ...] = ()
    detections: tuple[DetectionException, ...] = ()

    def find(self, control: str, *identities: str | None) -> WrittenException | None:
        for identity in identities:
            if identity and (entry := self.valid.get((control, identity.strip().lower()))):
                return entry
        return None

    def suppressing(
        self, detection: str, actor: str | None, mailbox: str | None, target: str | None
    ) -> DetectionException | None:
        """The first valid detection exception that covers this alert, or None."""
        for entry in self.detections:
            if entry.matches(detection, actor, mailbox, target):
                return entry
        return None


def parse_register(document: Any, today: date) -> ExceptionRegister:
    """Validate the parsed JSON; raise ExceptionFileError when it is not a list of objects."""
    if not isinstance(document, list):
        raise ExceptionFileError("must be a JSON list of exception objects")
    valid: dict[tuple[str, str], WrittenException] = {}
    detections: list[DetectionException] = []
    rejected: list[dict[str, Any]] = []
    for index, entry in enumerate(document):
        if not isinstance(entry, dict):
            raise ExceptionFileError(f"entry {index} is not a JSON object")
        if "detection" in entry:
            problem = _detection_problem(entry, today)
            if problem:
                rejected.append({"entry": _printable(entry), "problem": problem})
            else:
                detections.append(_detection_exception(entry))
            continue
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
    return ExceptionRegister(valid, tuple(rejected), tuple(detections))


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
    return _expiry_problem(entry, today)


def _detection_problem(entry: dict[str, Any], today: date) -> str | None:
    """The same rules as a control exception: complete, bounded, a real date, not expired; plus a known detection
    and at least one scope field (an exception that names nobody would silence a detection for everyone)."""
    if "control" in entry:
        return "names both a control and a detection: write two entries"
    missing = [
        name for name in DETECTION_REQUIRED_FIELDS if not isinstance(entry.get(name), str) or not entry[name].strip()
    ]
    if missing:
        return f"missing or empty: {', '.join(missing)}"
    scope = {name: entry[name] for name in DETECTION_SCOPE_FIELDS if name in entry}
    if any(not isinstance(value, str) or not value.strip() for value in scope.values()):
        return f"{', '.join(DETECTION_SCOPE_FIELDS)} must be non-empty text when given"
    if not scope:
        return f"names none of {', '.join(DETECTION_SCOPE_FIELDS)}: it would silence the detection for everyone"
    if any(len(entry[name]) > MAX_FIELD_LENGTH for name in (*DETECTION_REQUIRED_FIELDS, *scope)):
        return f"a field is longer than {MAX_FIELD_LENGTH} characters"
    if entry["detection"] not in SUPPORTED_DETECTIONS:
        return f"detection {entry['detection']!r} is not one of {', '.join(SUPPORTED_DETECTIONS)}"
    return _expiry_problem(entry, today)


def _detection_exception(entry: dict[str, Any]) -> DetectionException:
    def scope(name: str) -> str | None:
        value = entry.get(name)
        return value.strip().lower() if isinstance(value, str) else None

    return DetectionException(
        entry["detection"],
        scope("actor"),
        scope("mailbox"),
        scope("target"),
        entry["reason"].strip(),
        entry["approved_by"].strip(),
        date.fromisoformat(entry["expires"]),
    )


def _expiry_problem(entry: dict[str, Any], today: date) -> str | None:
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
