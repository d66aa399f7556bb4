"""What every detection shares: the alert, the context it judges in, and the shape of a detection.

A detection is a pure function of (a batch of parsed records in event-time order, the baseline, the context) →
(alerts, new values for its own part of the baseline). Adding one: a module here, an entry in registry.py, its id
in shared/config/exception_register.py SUPPORTED_DETECTIONS, a section in docs/detections.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shared.activity.baseline import Baseline
from shared.activity.geo import Geolocator, Location
from shared.activity.records import AuditRecord
from shared.config.exception_register import ExceptionRegister
from shared.config.loader import WatchPolicy

Severity = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")
NON_OWNER_LOGONS = frozenset({1, 2, 6})  # Admin, Delegated, DelegatedAdmin (§2.2)


@dataclass(frozen=True)
class Alert:
    """One alert: who did what to which mailbox, when, from where, which records, and why it fired."""

    id: str  # stable: a hash of the detection and its key (the record ids), so a replay gives the same id
    detection: str
    severity: Severity
    time: datetime
    actor: str
    mailbox: str | None
    operation: str
    client_ip: str | None
    country: str | None
    record_ids: tuple[str, ...]
    message: str
    geo_data_date: str | None = None  # the geolocation data's date, where a country or distance was used
    target: str | None = None  # forwarding destination, trustee, rule name: what an exception may name
    by_product: bool = False  # the product's own write (its app id): recorded, not alerted, unless it weakens auditing

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "detection": self.detection,
            "severity": self.severity,
            "time": self.time.isoformat(),
            "actor": self.actor,
            "mailbox": self.mailbox,
            "operation": self.operation,
            "client_ip": self.client_ip,
            "country": self.country,
            "record_ids": list(self.record_ids),
            "message": self.message,
            "geo_data_date": self.geo_data_date,
            "target": self.target,
            "by_product": self.by_product,
        }


@dataclass(frozen=True)
class Context:
    """What a batch is judged by, besides the records and the baseline."""

    policy: WatchPolicy = field(default_factory=WatchPolicy)
    accepted_domains: frozenset[str] = frozenset()  # the tenant's, lower-cased (Get-AcceptedDomain)
    own_app_ids: frozenset[str] = frozenset()  # the product's app id / principal, lower-cased
    geo: Geolocator | None = None
    exceptions: ExceptionRegister = field(default_factory=ExceptionRegister)
    min_retention_days: int = 90  # MAILBOX_AUDIT_MIN_RETENTION_DAYS: a lower AuditLogAgeLimit is tampering

    def is_own(self, record: AuditRecord) -> bool:
        return bool(self.own_app_ids) and (
            record.app_id.lower() in self.own_app_ids or record.actor in self.own_app_ids
        )

    def locate(self, record: AuditRecord) -> Location | None:
        return self.geo.locate(record.client_ip) if self.geo is not None else None


@dataclass(frozen=True)
class Outcome:
    """A detection's answer: its alerts, and new values for the Baseline fields it owns (by field name)."""

    alerts: tuple[Alert, ...] = ()
    updates: Mapping[str, Any] = field(default_factory=dict)


Evaluate = Callable[[Sequence[AuditRecord], Baseline, Context], Outcome]


@dataclass(frozen=True)
class Detection:
    id: str
    title: str
    severity: Severity  # the usual severity; an alert may be raised or lowered with the reason in its message
    owns: tuple[str, ...]  # the Baseline fields this detection updates
    evaluate: Evaluate


def alert_id(detection: str, keys: Iterable[str]) -> str:
    """Stable id: the same detection over the same records (or key) gives the same id, in any order."""
    digest = hashlib.sha256("\n".join([detection, *sorted(keys)]).encode("utf-8")).hexdigest()
    return f"{detection}:{digest[:24]}"


def make_alert(
    detection: str,
    severity: Severity,
    records: Sequence[AuditRecord],
    context: Context,
    message: str,
    *,
    actor: str | None = None,
    mailbox: str | None = None,
    target: str | None = None,
    country: str | None = None,
    geo_data_date: str | None = None,
    key: Iterable[str] | None = None,
) -> Alert:
    """An alert about `records` (the first names the time, operation and client address)."""
    first = min(records, key=lambda record: (record.creation_time, record.id))
    record_ids = tuple(sorted({record.id for record in records}))
    return Alert(
        id=alert_id(detection, key if key is not None else record_ids),
        detection=detection,
        severity=severity,
        time=first.creation_time,
        actor=actor if actor is not None else first.user_id,
        mailbox=mailbox or None,
        operation=first.operation,
        client_ip=str(first.client) if (first.client.ip or first.client.host) else None,
        country=country,
        record_ids=record_ids,
        message=message,
        geo_data_date=geo_data_date,
        target=target or None,
        by_product=any(context.is_own(record) for record in records),
    )


def admin_records(records: Iterable[AuditRecord], *operations: str) -> Iterable[AuditRecord]:
    """Successful cmdlet records (RecordType 1, or any record carrying parameters) of these operations."""
    wanted = {operation.lower() for operation in operations}
    for record in records:
        if record.operation.lower() in wanted and record.succeeded:
            yield record


def mailbox_of(record: AuditRecord) -> str:
    """The mailbox a cmdlet acted on: -Identity (or -Mailbox), else the record's ObjectId."""
    identity = record.parameter("Identity") or record.parameter("Mailbox") or record.object_id
    return identity.strip()


def owner_of(record: AuditRecord) -> str:
    return record.mailbox_owner_upn.strip().lower()


def is_non_owner(record: AuditRecord) -> bool:
    """A mailbox action by someone other than its owner: a non-owner logon type, or a different user (§3.6)."""
    if record.logon_type in NON_OWNER_LOGONS:
        return True
    owner = owner_of(record)
    return bool(owner) and "@" in record.actor and record.actor != owner
