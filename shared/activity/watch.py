"""One watch pass for one tenant: the feed through the ingest pass into the detections, each alert reported once.

    feed blobs ─ ingest.run_pass (checkpoint, de-dup) ─ on_records: parse ─ load baselines ─ evaluate_batch
               ─ save baselines ─ claim alerts (the store's once-only claim) ─ new alerts ─ `on_alerts`

Per batch (one blob's new records): the records are parsed (an unusable one is counted in `records_unparsed` and
never stops the pass), the baselines of the users and forwarding destinations the batch names are loaded
(shared.activity.shards), every detection judges the batch, the baselines are saved, then the alert ids are claimed
in the state. Only a claim that is new is reported: a later pass over the same records (an overlap, a duplicate
blob, a restart after a crash before the blob was marked processed) finds the ids claimed and reports nothing.

An `audit-tampering` alert names the controls it weakened (`affected_controls`), so the caller can re-check them
at once. This module does no I/O itself: the feed, the store and the context are passed in
(shared.runtime.watch wires them up from the settings).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared.activity import history, shards
from shared.activity.detections.audit_tampering import AUDIT_LISTS
from shared.activity.detections.audit_tampering import ID as TAMPERING
from shared.activity.detections.base import Alert, Context
from shared.activity.detections.evaluate import evaluate_batch
from shared.activity.ingest import ContentRefLike, FeedSource, PassResult, RunBudget, run_pass
from shared.activity.records import AuditRecord, Unparsed, parse_record
from shared.activity.state import Gap, StateStore, encode_time
from shared.controls import audit_pipeline
from shared.jwt_claims import unverified_claims

WatchStatus = Literal["Clear", "Alerts", "Error"]
EXIT_CODES: dict[WatchStatus, int] = {"Clear": 0, "Alerts": 1, "Error": 2}
# Which control an audit-tampering write weakened (shared/controls/registry.py ids), by cmdlet and parameter.
_ORG_CONTROLS = {
    "set-organizationconfig": "org-audit-enabled",
    "set-adminauditlogconfig": "audit-log-search",
    "set-mailboxauditbypassassociation": "audit-bypass",
}
_MAILBOX_CMDLETS = frozenset({"set-mailbox", "set-mailuser", "set-remotemailbox"})
_MAILBOX_PARAMETERS = {
    "auditenabled": "mailbox-audit-actions",
    "auditlogagelimit": "mailbox-audit-retention",
    **{name.lower(): "mailbox-audit-actions" for name in AUDIT_LISTS},
}


def affected_controls(record: AuditRecord) -> set[str]:
    """The controls a tampering record may have weakened (empty for any other record)."""
    operation = record.operation.lower()
    if operation in _ORG_CONTROLS:
        return {_ORG_CONTROLS[operation]}
    if operation in _MAILBOX_CMDLETS:
        return {control for name, control in _MAILBOX_PARAMETERS.items() if record.has_parameter(name)}
    return set()


@dataclass(frozen=True)
class Recheck:
    """A control re-checked because of a tampering alert, and its status after any unattended fix."""

    id: str
    status: str

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "status": self.status}


@dataclass
class WatchReport:
    """What one pass found; `as_json` is the documented `python -m shared watch --json` document."""

    tenant_id: str
    trigger: str = "cli"
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    records_processed: int = 0
    records_duplicate: int = 0
    records_unparsed: int = 0
    content_blobs: int = 0
    failed_blobs: int = 0
    alerts: list[Alert] = field(default_factory=list)
    rechecks: list[Recheck] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    feed_lag_minutes: float | None = None
    error: str | None = None
    affected: dict[str, None] = field(default_factory=dict)  # controls to re-check, in the order alerts named them
    notes: list[str] = field(default_factory=list)  # for the reader of the text output (not in the JSON)
    canaries_seen: list[str] = field(default_factory=list)  # audit-pipeline canary records recognised (record ids)
    tenant_name: str | None = None  # the tenants register's name for the tenant (None: single-tenant settings)

    @property
    def status(self) -> WatchStatus:
        if self.error:
            return "Error"
        return "Alerts" if self.alerts else "Clear"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def duration_seconds(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return max(0.0, (end - self.started_at).total_seconds())

    def fail(self, message: str) -> None:
        """Record an error (several join); the progress made before it stays in the report."""
        self.error = f"{self.error}; {message}" if self.error else message

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "status": self.status,
            "records_processed": self.records_processed,
            "records_duplicate": self.records_duplicate,
            "records_unparsed": self.records_unparsed,
            "content_blobs": self.content_blobs,
            "alerts": [alert_json(alert) for alert in self.alerts],
            "rechecks": [recheck.as_json() for recheck in self.rechecks],
            "gaps": [gap_json(gap) for gap in self.gaps],
            "feed_lag_minutes": self.feed_lag_minutes,
            "error": self.error,
        }


ALERT_FIELDS = (
    "id",
    "detection",
    "severity",
    "time",
    "actor",
    "mailbox",
    "operation",
    "client_ip",
    "country",
    "record_ids",
    "message",
)


def alert_json(alert: Alert) -> dict[str, Any]:
    document = alert.as_json()
    return {name: document[name] for name in ALERT_FIELDS}


def gap_json(gap: Gap) -> dict[str, Any]:
    return {
        "content_type": gap.content_type,
        "reason": gap.reason,
        "start": encode_time(gap.start),
        "end": encode_time(gap.end),
        "content_id": gap.content_id,
        "message": gap.message,
    }


AlertSink = Callable[[Sequence[Alert]], None]


class _Batches:
    """The ingest pass's `on_records`: parse, judge against the stored baselines, claim, hand on the new alerts."""

    def __init__(
        self, tenant: str, store: StateStore, context: Context, report: WatchReport, on_alerts: AlertSink, now: datetime
    ) -> None:
        self.tenant, self.store, self.context, self.report = tenant, store, context, report
        self.on_alerts, self.now = on_alerts, now
        self.shards = shards.ShardCache()  # this pass's baseline documents: each actor read once, not per blob
        self.canaries: list[audit_pipeline.Canary] | None = None  # the ledger's unseen canaries, read once per pass

    def __call__(self, raw: Sequence[Mapping[str, Any]]) -> None:
        records: list[AuditRecord] = []
        for item in raw:
            parsed = parse_record(item)
            if isinstance(parsed, Unparsed):
                self.report.records_unparsed += 1
            else:
                records.append(parsed)
        if not records:
            return
        self._recognise_canaries(records)
        loaded = shards.load(self.store, self.tenant, shards.keys_for(records), self.shards)
        evaluation = evaluate_batch(records, loaded.baseline, self.context)
        shards.save(self.store, self.tenant, loaded, evaluation.baseline, self.shards)
        if not evaluation.alerts:
            return
        claimed = self.store.claim_alerts(self.tenant, [alert.id for alert in evaluation.alerts], self.now)
        new = [alert for alert in evaluation.alerts if alert.id in claimed]
        if not new:
            return
        history.record_alerts(self.store, self.tenant, new, self.now)  # for the evidence report's activity section
        by_id = {record.id: record for record in records}
        for alert in new:
            if alert.detection == TAMPERING:
                for record_id in alert.record_ids:
                    if (record := by_id.get(record_id)) is not None:
                        self.report.affected.update(dict.fromkeys(sorted(affected_controls(record))))
        self.report.alerts.extend(new)
        self.on_alerts(new)

    def _recognise_canaries(self, records: Sequence[AuditRecord]) -> None:
        """Record when the audit-pipeline canary's ExchangeAdmin record was seen (it still goes to the detections,
        which leave it alone: a custom attribute is none of theirs, and the audit-property canary keeps the days)."""
        admin = [record for record in records if record.operation.lower() == "set-mailbox" and record.succeeded]
        if not admin:
            return
        if self.canaries is None:
            ledger = audit_pipeline.ledger(self.store, self.tenant)
            self.canaries = [canary for canary in ledger if canary.seen is None and canary.failed is None]
        for record in admin:
            for canary in self.canaries:
                value = record.parameter(canary.parameter)
                if audit_pipeline.matches(canary, record.operation, record.object_id, value):
                    audit_pipeline.mark_seen(self.store, self.tenant, canary, self.now, record.id)
                    self.canaries.remove(canary)
                    self.report.canaries_seen.append(record.id)
                    break


def watch_pass[RefT: ContentRefLike](
    report: WatchReport,
    feed: FeedSource[RefT],
    store: StateStore,
    context: Context,
    *,
    content_types: Sequence[str],
    budget: RunBudget,
    first_lookback: timedelta,
    on_alerts: AlertSink = lambda alerts: None,
    now: datetime | None = None,
) -> PassResult:
    """One ingest pass with the detections behind it, filling `report` as it goes (so an exception leaves the
    progress made in it). Store errors (StateError) propagate, as from the ingest pass."""
    now = now or datetime.now(UTC)
    batches = _Batches(report.tenant_id, store, context, report, on_alerts, now)
    result = run_pass(
        report.tenant_id,
        feed,
        store,
        batches,
        content_types=content_types,
        budget=budget,
        now=now,
        first_lookback=first_lookback,
    )
    report.records_processed += result.records_processed
    report.records_duplicate += result.records_duplicate
    report.content_blobs += result.content_blobs
    report.failed_blobs = len(result.failed_blobs)
    report.gaps.extend(result.gaps)
    report.feed_lag_minutes = result.feed_lag_minutes
    for error in result.errors:
        report.fail(error)
    if result.failed_blobs:
        names = ", ".join(f"{blob.content_type} {blob.content_id} ({blob.attempts}x)" for blob in result.failed_blobs)
        report.fail(
            f"{len(result.failed_blobs)} content blob(s) could not be read and are retried by the next pass: "
            f"{names[:600]}; last error: {result.failed_blobs[-1].last_error}"
        )
    if report.canaries_seen:
        report.notes.append(f"audit-pipeline canary record(s) seen: {', '.join(report.canaries_seen)}.")
    if result.budget_exhausted:
        report.notes.append(
            f"The pass stopped at its budget ({result.requests} feed requests); the next pass resumes from the "
            "checkpoint."
        )
    if result.subscriptions_started:
        report.notes.append(
            f"Subscription(s) started: {', '.join(result.subscriptions_started)} (the feed may take up to 12 hours "
            "to deliver the first content)."
        )
    return result


def own_app_ids(client_id: str | None, token: str | None) -> frozenset[str]:
    """The product's own identities as audit records name them: the configured client id and the token's
    `appid`/`azp`/`oid` (read without verification: only to recognise our own writes, never to trust a caller)."""
    found = {client_id.strip().lower()} if client_id and client_id.strip() else set()
    for name, value in unverified_claims(token or "").items():
        if name in ("appid", "azp", "oid") and isinstance(value, str) and value.strip():
            found.add(value.strip().lower())
    return frozenset(found)


def accepted_domain_names(rows: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The domains of `Get-AcceptedDomain` rows (DomainName, else Name), lower-cased."""
    names = set()
    for row in rows:
        value = row.get("DomainName") or row.get("Name")
        if isinstance(value, str) and value.strip():
            names.add(value.strip().lower())
    return frozenset(names)
