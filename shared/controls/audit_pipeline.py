"""audit-pipeline: audit records really arrive. A canary write is made, and the activity watch must see its record.

Each check run that includes this control writes one canary to the mailbox AUDIT_CANARY_MAILBOX names (the only
write a check ever makes) and records it in the canary ledger, in the activity watch's state (the key/value area,
keys `canary:<write time>:<nonce>`). The watch (shared.activity.watch) recognises the canary's ExchangeAdmin record
(`Set-Mailbox`, the canary as object, the nonce in `Parameters`) and records when it saw it. The verdict judges the
newest decided canary: one whose record was seen, or whose deadline (write time + AUDIT_CANARY_MAX_DELAY_HOURS) has
passed. Never Compliant without a record actually seen. Not remediable: a missing record is a symptom.

Two ways to write (AUDIT_CANARY_WRITE): `custom-attribute` puts "mailbox-audit-guard canary <nonce>" in a custom
attribute (the Mail Recipients role); `audit-property` carries the nonce in the sub-day part of the canary mailbox's
AuditLogAgeLimit (the Audit Logs role only): its whole days are kept (never below MAILBOX_AUDIT_MIN_RETENTION_DAYS),
so retention is never shortened and neither mailbox-audit-retention nor the audit-tampering detection objects.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.config.settings import AuditPolicy
from shared.controls.base import Control, ReportWording, compliance_frameworks
from shared.controls.mailbox_scan import timespan_days
from shared.controls.reading import RunContext, WatchState, single_row
from shared.exchange.errors import ExchangeError
from shared.model import Action, ControlResult, Status

ID = "audit-pipeline"
LEDGER_PREFIX = "canary:"
LEDGER_KEEP = 60  # canaries kept in the ledger (two months of daily runs); older ones are forgotten
FEED_CONTENT_TYPE = "Audit.Exchange"  # where ExchangeAdmin records are published
CANARY_TEXT = "mailbox-audit-guard canary"
MAILBOX_FIELDS = ("Name", "UserPrincipalName", "PrimarySmtpAddress", "Guid", "ExternalDirectoryObjectId")
SYMPTOM = (
    "A missing canary record is a symptom, not a setting to fix: look at audit-log-search (unified audit log "
    "ingestion), org-audit-enabled, the activity watch's own errors and the Microsoft 365 service health page."
)


# ---- the ledger -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Canary:
    """One canary write: where, what value carries the nonce, when written, when (if ever) its record was seen."""

    nonce: str
    mailbox: str  # as configured (the Identity written)
    names: tuple[str, ...]  # the mailbox's identities, lower-cased: how a record's ObjectId may name it
    parameter: str  # CustomAttributeN or AuditLogAgeLimit
    value: str  # the value written; it carries the nonce
    written: datetime
    seen: datetime | None = None
    record_id: str | None = None
    failed: str | None = None  # the write failed: never judged

    @property
    def key(self) -> str:
        return f"{LEDGER_PREFIX}{self.written.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}:{self.nonce}"

    def deadline(self, max_delay_hours: float) -> datetime:
        return self.written + timedelta(hours=max_delay_hours)

    def latency_minutes(self) -> float | None:
        return None if self.seen is None else round((self.seen - self.written).total_seconds() / 60, 2)

    def as_json(self) -> str:
        return json.dumps(
            {
                "nonce": self.nonce,
                "mailbox": self.mailbox,
                "names": list(self.names),
                "parameter": self.parameter,
                "value": self.value,
                "written": self.written.isoformat(),
                "seen": self.seen.isoformat() if self.seen else None,
                "record_id": self.record_id,
                "failed": self.failed,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Canary | None:
        """A ledger entry, or None when it is not one (an unreadable entry is skipped, never judged)."""
        try:
            data = json.loads(text)
            written = _aware(datetime.fromisoformat(data["written"]))
            seen = _aware(datetime.fromisoformat(data["seen"])) if data.get("seen") else None
            return cls(
                nonce=str(data["nonce"]),
                mailbox=str(data["mailbox"]),
                names=tuple(str(name) for name in data.get("names") or ()),
                parameter=str(data["parameter"]),
                value=str(data["value"]),
                written=written,
                seen=seen,
                record_id=data.get("record_id"),
                failed=data.get("failed"),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive time")
    return moment.astimezone(UTC)


def ledger(state: WatchState, tenant: str) -> list[Canary]:
    """Every readable canary in the ledger, oldest first."""
    entries = (Canary.from_json(text) for text in state.values(tenant, LEDGER_PREFIX).values())
    return sorted((entry for entry in entries if entry is not None), key=lambda canary: canary.written)


def damaged_entries(state: WatchState, tenant: str) -> tuple[str, ...]:
    """The ledger keys whose entry is unreadable: the verdict must not let an older canary stand in for them."""
    return tuple(key for key, text in state.values(tenant, LEDGER_PREFIX).items() if Canary.from_json(text) is None)


def matches(canary: Canary, operation: str, object_id: str, parameter: str | None) -> bool:
    """Is this ExchangeAdmin record (operation, ObjectId, the value of the canary's parameter) the canary's write?

    The nonce decides; the object must name the canary mailbox too (ObjectId ends with one of its names, or is one),
    so a copy of the value on another mailbox is not taken for the canary."""
    if canary.failed or operation.strip().lower() != "set-mailbox" or parameter is None:
        return False
    if not _same_value(canary, parameter):
        return False
    target = object_id.strip().lower()
    return any(target == name or target.endswith("/" + name) or target.endswith("\\" + name) for name in canary.names)


def _same_value(canary: Canary, text: str) -> bool:
    value = text.strip().strip('"')
    if canary.parameter.lower() == "auditlogagelimit":  # "365.04:13:27" however Exchange spells the TimeSpan
        seen, sent = timespan_days(value), timespan_days(canary.value)
        return seen is not None and sent is not None and abs(seen - sent) < 0.5 / 86400
    return canary.nonce in value and CANARY_TEXT in value


def mark_seen(state: WatchState, tenant: str, canary: Canary, seen: datetime, record_id: str) -> Canary:
    """Record that the canary's record was seen (the first sighting stands: a duplicate later changes nothing)."""
    if canary.seen is not None:
        return canary
    updated = replace(canary, seen=seen.astimezone(UTC), record_id=record_id)
    state.put_value(tenant, canary.key, updated.as_json())
    return updated


# ---- the read: one canary write, then the ledger ----------------------------------------------------------------


@dataclass(frozen=True)
class PipelineSnapshot:
    """The ledger as it stands after this run's write, and what the verdict needs to read it."""

    now: datetime
    max_delay_hours: float
    canaries: tuple[Canary, ...] = ()
    problem: str | None = None  # not configured, no state, the state or the canary mailbox unreadable
    write_error: str | None = None  # this run's canary write failed
    written: Canary | None = None  # this run's canary
    feed_read_until: datetime | None = None  # the watch's checkpoint for Audit.Exchange
    unread_blobs: tuple[datetime, ...] = ()  # contentCreated of Audit.Exchange blobs the watch could not read yet
    write_mode: str = "custom-attribute"
    damaged: tuple[str, ...] = ()  # ledger keys whose entry could not be read (each names its write time)


def read_audit_pipeline(context: RunContext) -> PipelineSnapshot:
    """Write this run's canary (the only write a check makes), record it, and read the ledger back."""
    settings = context.policy.canary
    now = datetime.now(UTC)
    base = PipelineSnapshot(now=now, max_delay_hours=settings.max_delay_hours, write_mode=settings.write)
    if settings.mailbox is None:
        return replace(base, problem="AUDIT_CANARY_MAILBOX is not set, so no canary is written and nothing is proven")
    if context.state is None:
        return replace(base, problem=context.state_problem or "the activity watch's state store is not available")
    state, tenant = context.state, context.tenant_id
    try:
        known = ledger(state, tenant)
    except Exception as exc:  # the store's StateError (its message carries no secret)
        return replace(base, problem=f"the canary ledger could not be read: {exc}")
    fields = (*MAILBOX_FIELDS, settings.attribute if settings.write == "custom-attribute" else "AuditLogAgeLimit")
    row = single_row(
        context.client.invoke("Get-Mailbox", {"Identity": settings.mailbox}, select=fields).rows, "Get-Mailbox"
    )
    names = tuple(
        sorted(
            {str(row[name]).strip().lower() for name in MAILBOX_FIELDS if isinstance(row.get(name), str)}
            | {settings.mailbox.strip().lower()}
        )
    )
    if settings.write == "custom-attribute":
        nonce = secrets.token_hex(8)
        parameter, value = settings.attribute, f"{CANARY_TEXT} {nonce}"
    else:
        limit = audit_property_value(row.get("AuditLogAgeLimit"), context.policy.min_retention_days, known)
        if limit is None:
            return replace(base, problem="the canary mailbox's AuditLogAgeLimit is missing or not a TimeSpan")
        parameter, value, nonce = "AuditLogAgeLimit", limit, limit
    canary = Canary(nonce, settings.mailbox, names, parameter, value, now)
    try:
        state.put_value(tenant, canary.key, canary.as_json())  # first: a record that arrives is always recognised
    except Exception as exc:
        return replace(base, problem=f"the canary could not be recorded, so none was written: {exc}")
    write_error = _write(context, canary)
    if write_error is not None:
        canary = replace(canary, failed=write_error)
    try:
        if write_error is not None:
            state.put_value(tenant, canary.key, canary.as_json())
        _forget_old(state, tenant, [*known, canary])
        canaries = tuple(ledger(state, tenant))
        damaged = damaged_entries(state, tenant)
        read_until = state.checkpoint(tenant, FEED_CONTENT_TYPE)
        unread = tuple(blob.created for blob in state.failures(tenant) if blob.content_type == FEED_CONTENT_TYPE)
    except Exception as exc:
        return replace(base, problem=f"the canary ledger could not be read: {exc}", written=canary)
    return replace(
        base,
        canaries=canaries,
        write_error=write_error,
        written=canary,
        feed_read_until=read_until,
        unread_blobs=unread,
        damaged=damaged,
    )


def _write(context: RunContext, canary: Canary) -> str | None:
    """Send the canary write; its error in words, or None when Exchange accepted it."""
    try:
        answer = context.client.invoke("Set-Mailbox", {"Identity": canary.mailbox, canary.parameter: canary.value})
    except ExchangeError as exc:
        return str(exc)
    errors = [warning for warning in answer.warnings if warning.startswith("Exchange reported an error")]
    return errors[0] if errors else None


def audit_property_value(current: Any, min_days: int, known: Sequence[Canary]) -> str | None:
    """An AuditLogAgeLimit that keeps the mailbox's whole days (at least `min_days`) and carries a fresh nonce in
    its hours, minutes and seconds: different from the current value and from every canary still in the ledger."""
    days = timespan_days(current.strip()) if isinstance(current, str) else None
    if days is None:
        return None
    whole = max(math.floor(days), min_days)
    used = {canary.value for canary in known} | {current.strip()}
    while True:
        seconds = secrets.randbelow(86399) + 1
        value = f"{whole}.{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if value not in used:
            return value


def _forget_old(state: WatchState, tenant: str, canaries: Sequence[Canary]) -> None:
    for old in sorted(canaries, key=lambda canary: canary.written)[:-LEDGER_KEEP]:
        state.delete_value(tenant, old.key)


# ---- the verdict ------------------------------------------------------------------------------------------------


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _hours(hours: float) -> str:
    return f"{hours:g} hour{'' if hours == 1 else 's'}"


def evaluate_audit_pipeline(snapshot: PipelineSnapshot, policy: AuditPolicy | None = None) -> ControlResult:
    """The newest decided canary (seen, or past its deadline) decides: seen in time is Compliant, seen late or
    not seen after the deadline is NonCompliant; a failed write, an unreadable feed or no decided canary is Error."""
    hours = snapshot.max_delay_hours
    expected = f"a canary write's audit record seen within {_hours(hours)}"
    details: dict[str, Any] = {
        "max_delay_hours": hours,
        "canary_write": snapshot.write_mode,
        "canaries_in_ledger": len(snapshot.canaries),
        "canary_written_at": _time(snapshot.written.written) if snapshot.written else None,
        "feed_read_until": _time(snapshot.feed_read_until) if snapshot.feed_read_until else None,
    }
    if snapshot.problem:
        message = f"The audit pipeline could not be proven: {snapshot.problem}."
        return ControlResult(ID, Status.ERROR, expected, "unknown", message, details)
    if snapshot.write_error:
        return ControlResult(
            ID,
            Status.ERROR,
            expected,
            "canary write failed",
            f"The canary write (Set-Mailbox -{snapshot.written.parameter if snapshot.written else '?'}) failed, so "
            f"this run proves nothing about the audit pipeline: {snapshot.write_error}",
            details,
        )
    now = snapshot.now
    usable = [canary for canary in snapshot.canaries if canary.failed is None]
    decided = [canary for canary in usable if canary.seen is not None or now >= canary.deadline(hours)]
    if not decided:
        pending = min((canary.deadline(hours) for canary in usable), default=None)
        when = f"; the first will be judged at {_time(pending)}" if pending else ""
        details["proven_at"] = _time(pending) if pending else None
        return ControlResult(
            ID,
            Status.ERROR,
            expected,
            "not yet proven",
            f"Not yet proven: no canary has been seen in the feed or reached its deadline ({_hours(hours)} after "
            f"its write){when}. The activity watch must run meanwhile (it recognises the record).",
            details,
        )
    canary = max(decided, key=lambda item: item.written)
    # Keys sort by write time (`Canary.key`): a damaged entry written after the deciding canary may have been the
    # newer verdict, so nothing older may stand in for it (fail closed).
    if newer := [key for key in snapshot.damaged if key > canary.key]:
        return ControlResult(
            ID,
            Status.ERROR,
            expected,
            "unreadable",
            f"The canary ledger holds {len(newer)} damaged entr{'y' if len(newer) == 1 else 'ies'} newer than the last "
            f"judged canary ({', '.join(newer[:3])}), so the newest result is unknown; remove the damaged entry from "
            "the watch state (the next canaries are judged as usual).",
            details,
        )
    deadline = canary.deadline(hours)
    details |= {
        "judged_canary_written_at": _time(canary.written),
        "deadline": _time(deadline),
        "canary_mailbox": canary.mailbox,
    }
    if canary.seen is not None:
        latency = canary.latency_minutes()
        details |= {"latency_minutes": latency, "seen_at": _time(canary.seen), "record_id": canary.record_id}
        actual = f"record seen {latency:g} min after the write (at {_time(canary.seen)})"
        if canary.seen <= deadline:
            return ControlResult(
                ID,
                Status.COMPLIANT,
                expected,
                actual,
                f"Audit records are arriving: the canary written at {_time(canary.written)} was seen in the "
                f"activity feed {latency:g} minutes later.",
                details,
            )
        return ControlResult(
            ID,
            Status.NON_COMPLIANT,
            expected,
            actual,
            f"Audit records arrive too late: the canary written at {_time(canary.written)} was not in the feed "
            f"after {_hours(hours)}; it arrived {latency:g} minutes after the write. {SYMPTOM}",
            details,
        )
    # Not seen and past its deadline: only NonCompliant if the watch read the feed past the deadline, completely.
    if snapshot.feed_read_until is None or snapshot.feed_read_until < deadline:
        read = _time(snapshot.feed_read_until) if snapshot.feed_read_until else "never"
        return ControlResult(
            ID,
            Status.ERROR,
            expected,
            "feed not read",
            f"The canary written at {_time(canary.written)} has not been seen, but the activity feed "
            f"({FEED_CONTENT_TYPE}) has not been read past its deadline {_time(deadline)} (read until: {read}): "
            "is the activity watch running, and does WATCH_CONTENT_TYPES include Audit.Exchange?",
            details,
        )
    unread = [created for created in snapshot.unread_blobs if created <= deadline]
    if unread:
        details["unread_blobs"] = len(unread)
        return ControlResult(
            ID,
            Status.ERROR,
            expected,
            "feed partly unread",
            f"The canary written at {_time(canary.written)} has not been seen, but {len(unread)} content blob(s) "
            "from before its deadline could not be read yet (the watch retries them); it may be in one of them.",
            details,
        )
    return ControlResult(
        ID,
        Status.NON_COMPLIANT,
        expected,
        "record not seen",
        f"Audit records are not arriving: the canary written at {_time(canary.written)} was not in the feed after "
        f"{_hours(hours)} (the feed was read until {_time(snapshot.feed_read_until)}). {SYMPTOM}",
        details,
    )


def plan_audit_pipeline_fix(snapshot: PipelineSnapshot, policy: AuditPolicy | None = None) -> list[Action]:
    """Nothing to write: a record that does not arrive is a symptom (see SYMPTOM)."""
    return []


def pipeline_measurements(details: Mapping[str, Any]) -> dict[str, float]:
    latency = details.get("latency_minutes")
    return {"canary_latency_minutes": float(latency)} if isinstance(latency, int | float) else {}


FACT_LABELS = {
    "canary_mailbox": "Canary mailbox",
    "canary_write": "Canary write (AUDIT_CANARY_WRITE)",
    "max_delay_hours": "Maximum delay in hours (AUDIT_CANARY_MAX_DELAY_HOURS)",
    "judged_canary_written_at": "Judged canary written at",
    "deadline": "Its deadline",
    "seen_at": "Its record seen at",
    "latency_minutes": "Latency in minutes (seen − written)",
    "record_id": "Audit record id",
    "canary_written_at": "This run's canary written at",
    "proven_at": "First verdict due at",
    "feed_read_until": "Feed (Audit.Exchange) read until",
    "canaries_in_ledger": "Canaries in the ledger",
    "unread_blobs": "Unread content blobs before the deadline",
}


NOT_SET = "AUDIT_CANARY_MAILBOX is not set, so no canary is written and whether audit records arrive is not proven"


def not_run_reason(policy: AuditPolicy) -> str | None:
    """Opt-in: without a canary mailbox there is nothing to write, so the control is not run (and says so)."""
    return NOT_SET if policy.canary.mailbox is None else None


CONTROL = Control(
    id=ID,
    title="Audit records really arrive (canary)",
    question="Does the audit record of a test write (a canary on a set-aside mailbox) appear in the activity feed "
    "in time?",
    expected="a canary write's audit record seen within AUDIT_CANARY_MAX_DELAY_HOURS",
    remediation="None: a symptom. Check audit-log-search, org-audit-enabled and the Microsoft 365 service health page.",
    frameworks=compliance_frameworks("3.1.1", "3.1.1", "MS.SECURITYSUITE.5.1v1"),
    read=read_audit_pipeline,
    evaluate=evaluate_audit_pipeline,
    plan_fix=plan_audit_pipeline_fix,
    safe_unattended=False,  # nothing to fix, and the timer must never try
    remediable=False,
    not_run=not_run_reason,
    measurements=pipeline_measurements,
    wording=ReportWording(
        note="Proven by a canary: each check writes one harmless value to a set-aside mailbox (the only write a "
        "check makes) and the activity watch must see its audit record in the Management Activity feed. A switch "
        "that reads 'on' proves nothing about records arriving; this does. " + SYMPTOM,
        fact_labels=FACT_LABELS,
    ),
)
