"""The only module that knows Application Insights: the telemetry contract of docs/telemetry.md.

Events leave as log records on the `mailbox_audit_guard.events` logger with the exporter's custom-event marker,
so they land in `customEvents`. Exporting never holds a run up for long and never changes its result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Mapping

from shared import __version__
from shared.activity.detections.base import Alert
from shared.activity.watch import WatchReport
from shared.config.loader import TelemetrySettings, telemetry_for
from shared.controls.registry import BY_ID
from shared.model import RunReport

LOGGER_NAME = "mailbox_audit_guard"
events = logging.getLogger(f"{LOGGER_NAME}.events")
# Contract events are INFO records: pin the level so no logging configuration can silently drop them.
events.setLevel(logging.INFO)
log = logging.getLogger(f"{LOGGER_NAME}.telemetry")

CHECK_COMPLETED = "MailboxAuditCheckCompleted"
CONTROL_RESULT = "MailboxAuditControlResult"
REMEDIATION = "MailboxAuditRemediation"
ACTIVITY_ALERT = "MailboxActivityAlert"
WATCH_COMPLETED = "MailboxActivityWatchCompleted"
TENANT_EXPECTED = "MailboxAuditTenantExpected"  # the dispatcher: this registered tenant's run is due
MESSAGE_REJECTED = "MailboxAuditQueueMessageRejected"  # a queue message that names no tenant of the register
TENANT_POISONED = "MailboxAuditTenantPoisoned"  # a tenant's run failed on its last delivery: to the poison queue
ERROR_DIMENSION_CHARS = 1000
FLUSH_TIMEOUT_SECONDS = 4.0
SAMPLE_SIZE = 10
EXPORT_READ_TIMEOUT_SECONDS = 5

_configure_lock = threading.Lock()
_configured_by_us = False
_flush_worker: threading.Thread | None = None


def worker_configures_telemetry(env: Mapping[str, str]) -> bool:
    """In Azure the Functions worker sets the exporter up itself when this app setting is true."""
    return telemetry_for(env).worker_exports


def configure(settings: TelemetrySettings | Mapping[str, str] | None = None) -> bool:
    """Set up exporting once per process, unless the worker does; True when telemetry will be exported.

    Never both: with PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true the worker owns the OpenTelemetry globals.
    """
    global _configured_by_us  # noqa: PLW0603 - the OpenTelemetry globals are per process too
    if not isinstance(settings, TelemetrySettings):
        settings = telemetry_for(os.environ if settings is None else settings)
    if settings.worker_exports:
        return True
    connection_string = settings.connection_string
    if not connection_string:
        return False
    with _configure_lock:
        if not _configured_by_us:
            from azure.monitor.opentelemetry import configure_azure_monitor

            options: dict[str, object] = {}
            if settings.storage_directory:
                options["storage_directory"] = settings.storage_directory
            configure_azure_monitor(
                connection_string=connection_string,
                logger_name=LOGGER_NAME,
                sampling_ratio=1.0,  # every run is evidence: never sample it away
                enable_live_metrics=False,
                enable_performance_counters=False,
                read_timeout=EXPORT_READ_TIMEOUT_SECONDS,  # a hanging ingestion endpoint must not hang the run
                **options,
            )
            _configured_by_us = True
    return True


def pseudonymise(identity: str, tenant_id: str, key: str | None) -> str:
    """A stable stand-in for a mailbox identity: HMAC-SHA256, scoped to the tenant.

    With TELEMETRY_PSEUDONYM_KEY set (e.g. a Key Vault reference) it cannot be reversed by guessing addresses;
    without it the tenant id is the key, which keeps pseudonyms stable but lets someone who can guess an address
    confirm it. The evidence report, in the customer's own storage, keeps the real names.
    """
    # surrogatepass: Exchange's UTF-16 names can hold a lone surrogate; strict UTF-8 raised and failed the whole run
    # after its checks were done (found by tests/hardening). Same for a key decoded from non-UTF-8 environment bytes.
    secret = (key or tenant_id).encode("utf-8", "surrogatepass")
    digest = hmac.new(
        secret, f"{tenant_id}:{identity.lower()}".encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()
    return f"mbx-{digest[:16]}"


def _event(name: str, dimensions: Mapping[str, object], measurements: Mapping[str, float] | None = None) -> None:
    extra: dict[str, object] = {"microsoft.custom_event.name": name}
    extra.update({key: "" if value is None else str(value) for key, value in dimensions.items()})
    if measurements:
        extra["microsoft.custom_measurements"] = json.dumps(dict(measurements))
    events.info(name, extra=extra)


def run_measurements(report: RunReport) -> dict[str, float]:
    """The counts the contract puts on MailboxAuditCheckCompleted: each control's, the first to report one wins."""
    counts: dict[str, float] = {}
    for result in report.controls:
        if (control := BY_ID.get(result.control_id)) is not None:
            for name, value in control.measurements(result.details).items():
                counts.setdefault(name, value)
    return counts


def findings_sample(details: Mapping[str, object], tenant_id: str, *, include_identities: bool, key: str | None) -> str:
    """Up to SAMPLE_SIZE affected mailboxes or accounts, pseudonymised unless real names were asked for."""
    findings = details.get("findings")
    if not isinstance(findings, list):
        return ""
    names = []
    for finding in findings[:SAMPLE_SIZE]:
        identity = str(finding.get("upn") or finding.get("identity") or "") if isinstance(finding, dict) else ""
        if identity:
            names.append(identity if include_identities else pseudonymise(identity, tenant_id, key))
    return ",".join(names)


def emit_run(report: RunReport, *, include_identities: bool = False, pseudonym_key: str | None = None) -> None:
    """Send one run's events: a result per control, one per remediation, and the completion event last."""
    common = {"run_id": report.run_id, "tenant_id": report.tenant_id, "tenant_name": report.tenant_name}
    for result in report.controls:
        control = BY_ID.get(result.control_id)
        _event(
            CONTROL_RESULT,
            {
                **common,
                "control_id": result.control_id,
                "status": result.status,
                "expected": result.expected,
                "actual": result.actual,
                "frameworks": control.frameworks_compact if control else "",
                "trigger": report.trigger,
                "findings_sample": findings_sample(
                    result.details, report.tenant_id, include_identities=include_identities, key=pseudonym_key
                ),
            },
        )
    for step in report.remediation:
        _event(
            REMEDIATION,
            {
                **common,
                "control_id": step.control_id,
                "action": step.action,
                "outcome": step.outcome,
                "caller": report.caller or "",
                "before": step.before.actual,
                "after": step.after.actual if step.after else "unreadable",
                "command": report.command,
                "trigger": report.trigger,
            },
        )
    duration = (report.finished_at - report.started_at).total_seconds() if report.finished_at else 0.0
    _event(
        CHECK_COMPLETED,
        {
            **common,
            "status": report.status,
            "failed_controls": ",".join(report.failed_controls),
            "trigger": report.trigger,
            "tool_version": report.tool_version,
            "command": report.command,
        },
        {"controls_checked": len(report.controls), "duration_seconds": round(duration, 3), **run_measurements(report)},
    )


def emit_activity_alert(
    alert: Alert,
    *,
    run_id: str,
    tenant_id: str,
    trigger: str,
    include_identities: bool = False,
    pseudonym_key: str | None = None,
    tenant_name: str | None = None,
) -> None:
    """One new alert of the activity watch (sent once: the alert id was claimed in the watch state)."""

    def identity(name: str | None) -> str:
        if not name:
            return ""
        return name if include_identities else pseudonymise(name, tenant_id, pseudonym_key)

    _event(
        ACTIVITY_ALERT,
        {
            "run_id": run_id,
            "tenant_id": tenant_id,
            "tenant_name": tenant_name,
            "alert_id": alert.id,
            "detection": alert.detection,
            "severity": alert.severity,
            "actor": identity(alert.actor),
            "mailbox": identity(alert.mailbox),
            "operation": alert.operation,
            "country": alert.country or "",
            "record_time": alert.time.isoformat(),
            "trigger": trigger,
        },
    )


def emit_activity_watch(report: WatchReport) -> None:
    """The completion event of one watch pass: its status, counts, gaps and the feed's lag."""
    measurements: dict[str, float] = {
        "records_processed": report.records_processed,
        "records_duplicate": report.records_duplicate,
        "records_unparsed": report.records_unparsed,
        "content_blobs": report.content_blobs,
        "failed_blobs": report.failed_blobs,
        "alerts": len(report.alerts),
        "gaps": len(report.gaps),
        "duration_seconds": round(report.duration_seconds, 3),
    }
    if report.feed_lag_minutes is not None:  # absent until the watch has seen a record
        measurements["feed_lag_minutes"] = report.feed_lag_minutes
    _event(
        WATCH_COMPLETED,
        {
            "run_id": report.run_id,
            "tenant_id": report.tenant_id,
            "tenant_name": report.tenant_name,
            "status": report.status,
            "trigger": report.trigger,
            "tool_version": __version__,
            "error": (report.error or "")[:ERROR_DIMENSION_CHARS],
        },
        measurements,
    )


def emit_fanout(name: str, dimensions: Mapping[str, object]) -> None:
    """One event of the queue fan-out (TENANT_EXPECTED, MESSAGE_REJECTED, TENANT_POISONED; docs/telemetry.md)."""
    _event(name, dimensions)


def emit_exception(message: str, *, run_id: str, tenant_id: str | None, command: str) -> None:
    """Record the exception being handled, with the run id and command the alert rules join on (check-failed for
    the check commands, watch-failed for `watch`). Call inside `except`."""
    events.exception(message, extra={"run_id": run_id, "tenant_id": tenant_id or "", "command": command})


def flush(timeout_seconds: float = FLUSH_TIMEOUT_SECONDS) -> bool:
    """Push buffered telemetry out, waiting at most `timeout_seconds`; False when it did not finish in time.

    The SDK's own flush ignores its timeout, so it runs on a daemon thread that we stop waiting for. What does
    not get out stays in the exporter's offline storage and is re-sent by a later run.
    """
    from opentelemetry import metrics, trace
    from opentelemetry._logs import get_logger_provider

    def run() -> None:
        for provider in (trace.get_tracer_provider(), get_logger_provider(), metrics.get_meter_provider()):
            force_flush = getattr(provider, "force_flush", None)
            if force_flush is not None:
                try:
                    force_flush()
                except Exception:  # telemetry must never break the run
                    log.warning("telemetry flush failed", exc_info=True)

    global _flush_worker  # noqa: PLW0603 - one flush at a time per process
    if _flush_worker is not None and _flush_worker.is_alive():
        log.warning("The previous telemetry flush is still waiting on ingestion; not starting another.")
        return False
    worker = threading.Thread(target=run, name="telemetry-flush", daemon=True)
    _flush_worker = worker
    worker.start()
    worker.join(timeout_seconds)
    if worker.is_alive():
        log.warning(
            "Telemetry export did not finish within %.0f s (ingestion down or slow); the run's result "
            "stands and unsent data stays in offline storage.",
            timeout_seconds,
        )
        return False
    return True
