"""One activity-watch run, start to finish: settings, state, feed, detections, re-check, telemetry, flush.

The timer (`activity_watch`) and `python -m shared watch` both come through `run_watch`, so they behave the same;
only the state differs (Table Storage in the app's storage account for the timer, a SQLite file for the command
line). It follows the check run's shape (shared.runtime.service): a refused setting is an Error run that names it,
every run ends in the completion event and a local log line, telemetry trouble never changes the result, and the
re-check of a control that a tampering alert names goes through `service.execute`, the same engine (and, with
AUDIT_MODE=remediate, the same unattended fixes, under the same tenant write lock) as the daily check.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared.activity import history
from shared.activity.detections.base import Alert, Context
from shared.activity.feed import DEFAULT_REQUEST_BUDGET, feed_client_for
from shared.activity.geo import Geolocator, open_geolocator
from shared.activity.ingest import RunBudget
from shared.activity.state import StateError, StateStore
from shared.activity.watch import Recheck, WatchReport, accepted_domain_names, own_app_ids, watch_pass
from shared.config import loader
from shared.config.loader import RunSettings, TelemetrySettings
from shared.config.settings import ConfigError
from shared.controls.registry import UNATTENDED_CONTROLS
from shared.exchange.auth import TokenError, TokenProvider, token_provider_for
from shared.exchange.client import RetryPolicy
from shared.exchange.errors import ExchangeError
from shared.runtime import service, telemetry
from shared.runtime.state import open_store

log = logging.getLogger("mailbox_audit_guard.watch")

# The timer runs every 10 minutes (WATCH_SCHEDULE) inside a 30-minute function timeout: its pass reads the feed for
# at most 8 minutes, the re-check gets what is left of AUDIT_RUN_DEADLINE_SECONDS (default 25 min), so the whole
# invocation ends below the timeout; what was not read is read by the next pass from the checkpoint.
TIMER_PASS_SECONDS = 480.0
MIN_RECHECK_SECONDS = 60.0
PASS_REQUEST_BUDGET = DEFAULT_REQUEST_BUDGET - 100  # the pass stops between requests before the client would refuse
TIMER_CALLER = "timer:activity_watch"
CLI_CALLER = "cli:watch"
QUEUE_CALLER = "queue:tenant_activity_watch"


def run_watch(
    *,
    trigger: str,
    env: Mapping[str, str] | None = None,
    state_path: str | None = None,
    config: RunSettings | ConfigError | None = None,
    pass_seconds: float | None = None,
    tenant_name: str | None = None,
) -> WatchReport:
    """One pass for the configured tenant, reported everywhere it must go. Never raises for a tenant, feed or
    state problem: those make an Error report (with the progress made before them), an exception in telemetry and
    a local log line."""
    started = time.monotonic()
    env = os.environ if env is None else env
    config = loader.try_load(env) if config is None else config
    loaded = config if isinstance(config, RunSettings) else None
    telemetry_settings = loaded.telemetry if loaded else loader.telemetry_for(env)
    telemetry.configure(telemetry_settings)
    report = WatchReport(
        tenant_id=loaded.exchange.tenant_id if loaded else loader.reported_tenant(env),
        trigger=trigger,
        tenant_name=tenant_name,
    )
    try:
        if not isinstance(config, RunSettings):
            raise config
        store = open_store(config, trigger, state_path)
    except (ConfigError, StateError) as exc:
        report.fail(f"the watch could not start: {exc}")
        log.error("Watch %s could not start: %s", report.run_id, exc)
        _record_failure(report, "could not start")
        return _publish(report, telemetry_settings)
    limit = config.exchange.run_deadline_seconds
    seconds = min(limit, pass_seconds or (TIMER_PASS_SECONDS if trigger in ("timer", "queue") else limit))
    with contextlib.closing(store):
        try:
            _watch(report, config, store, seconds, telemetry_settings)
        except StateError as exc:
            report.fail(f"the watch state could not be read or written: {exc}")
            log.error("Watch %s: %s", report.run_id, exc)
            _record_failure(report, "state failed")
        except Exception as exc:  # any other failure is still an Error pass, reported with what it had done
            report.fail(
                f"the watch failed unexpectedly ({type(exc).__name__}); the next pass resumes from the checkpoint"
            )
            log.exception("Watch %s failed unexpectedly", report.run_id)
            _record_failure(report, "failed unexpectedly")
        _remember(report, store)  # after the error is known, so the evidence shows the pass as it ended
    if report.affected:
        remaining = limit - (time.monotonic() - started)
        try:
            _recheck(report, config, max(remaining, MIN_RECHECK_SECONDS))
        except Exception as exc:  # the re-check run has published its own failure; the alerts still stand
            report.fail(f"the re-check of {', '.join(report.affected)} failed ({type(exc).__name__})")
            log.exception("Watch %s: the re-check failed", report.run_id)
    return _publish(report, telemetry_settings)


def _watch(
    report: WatchReport, config: RunSettings, store: StateStore, seconds: float, telemetry_settings: TelemetrySettings
) -> None:
    settings = config.exchange
    try:
        tokens = token_provider_for(settings)
        feed = feed_client_for(
            settings,
            config.feed,
            policy=RetryPolicy(
                deadline_seconds=settings.operation_deadline_seconds,
                backoff_base_seconds=settings.retry_backoff_seconds,
            ),
            run_deadline=time.monotonic() + seconds + 30,  # the pass's own budget stops it first, between requests
        )
    except TokenError as exc:
        report.fail(f"no token could be obtained: {exc}")
        log.error("Watch %s: %s", report.run_id, exc)
        _record_failure(report, "could not start")
        return
    with contextlib.closing(feed), _geolocator(config) as geo:
        own = _own_ids(report, settings.client_id, tokens)  # first: the Exchange client closes the provider
        context = Context(
            policy=config.watch,
            accepted_domains=_accepted_domains(report, config, tokens, seconds),
            own_app_ids=own,
            geo=geo,
            exceptions=config.policy.exceptions,
            min_retention_days=config.policy.min_retention_days,
        )

        def on_alerts(alerts: Sequence[Alert]) -> None:
            for alert in alerts:  # sent as each is claimed: a crash later in the pass cannot lose its event
                log.warning("Watch %s: %s alert %s: %s", report.run_id, alert.severity, alert.id, alert.message)
                telemetry.emit_activity_alert(
                    alert,
                    run_id=report.run_id,
                    tenant_id=report.tenant_id,
                    trigger=report.trigger,
                    include_identities=telemetry_settings.include_identities,
                    pseudonym_key=telemetry_settings.pseudonym_key,
                    tenant_name=report.tenant_name,
                )

        watch_pass(
            report,
            feed,
            store,
            context,
            content_types=config.feed.content_types,
            budget=RunBudget(seconds=seconds, requests=PASS_REQUEST_BUDGET),
            first_lookback=timedelta(hours=config.watch_state.first_lookback_hours),
            on_alerts=on_alerts,
            now=datetime.now(UTC),
        )


def _remember(report: WatchReport, store: StateStore) -> None:
    """Leave the pass's outcome in the state for the evidence report (its failure only costs the report that)."""
    outcome = {
        "run_id": report.run_id,
        "trigger": report.trigger,
        "status": report.status,
        "records_processed": report.records_processed,
        "records_duplicate": report.records_duplicate,
        "records_unparsed": report.records_unparsed,
        "content_blobs": report.content_blobs,
        "alerts": len(report.alerts),
        "gaps": len(report.gaps),
        "feed_lag_minutes": report.feed_lag_minutes,
        "error": report.error,
    }
    try:
        history.record_pass(store, report.tenant_id, outcome, datetime.now(UTC))
    except StateError as exc:
        log.warning("Watch %s: its outcome could not be kept for the evidence report: %s", report.run_id, exc)


def _own_ids(report: WatchReport, client_id: str | None, tokens: TokenProvider) -> frozenset[str]:
    """EXO_CLIENT_ID and the token's app id: this product's own writes are recorded, not alerted."""
    token = None
    try:
        token = tokens.get_token()
    except TokenError as exc:
        report.notes.append(f"The app's own id was taken from EXO_CLIENT_ID only (no token: {exc}).")
    return own_app_ids(client_id, token)


def _accepted_domains(
    report: WatchReport, config: RunSettings, tokens: TokenProvider, seconds: float
) -> frozenset[str]:
    """The tenant's accepted domains, read once per pass; without them mail-forwarding judges every destination
    external and says so (in each alert and here)."""
    client = None
    try:
        client = service.open_client(config.exchange, min(seconds, 120.0), tokens=tokens)
        domains = accepted_domain_names(client.invoke("Get-AcceptedDomain").rows)
        if not domains:
            raise ExchangeError("Get-AcceptedDomain returned no domain", cmdlet="Get-AcceptedDomain")
        return domains
    except (ExchangeError, TokenError) as exc:
        note = (
            "The tenant's accepted domains could not be read (Get-AcceptedDomain); mail-forwarding judged every "
            f"destination as external in this pass: {exc}"
        )
        report.notes.append(note)
        log.warning("Watch %s: %s", report.run_id, note)
        return frozenset()
    finally:
        if client is not None:
            client.close()


@contextlib.contextmanager
def _geolocator(config: RunSettings) -> Iterator[Geolocator]:
    geo = open_geolocator(config.watch.geoip_db)
    try:
        yield geo
    finally:
        close = getattr(geo, "close", None)
        if close is not None:
            close()


def _recheck(report: WatchReport, config: RunSettings, seconds: float) -> None:
    """Re-check the controls the tampering alerts named, through the check run's engine; with AUDIT_MODE=remediate
    the safe ones are fixed unattended first (the others only checked: a person decides)."""
    controls = list(report.affected)
    caller = {"timer": TIMER_CALLER, "queue": QUEUE_CALLER}.get(report.trigger, CLI_CALLER)
    deadline = min(config.exchange.run_deadline_seconds, seconds)
    run_config = replace(config, exchange=replace(config.exchange, run_deadline_seconds=deadline))
    trigger = report.trigger if report.trigger in ("timer", "http", "cli", "queue") else "cli"
    safe = [cid for cid in controls if cid in UNATTENDED_CONTROLS] if config.app.audit_mode == "remediate" else []
    rest = [cid for cid in controls if cid not in safe]
    log.warning("Watch %s: tampering alert(s): re-checking %s", report.run_id, ", ".join(controls))
    if safe:
        run = service.execute(
            "remediate", trigger=trigger, control_ids=safe, caller=caller, also_check=rest, config=run_config
        )
    else:
        run = service.execute("check", trigger=trigger, control_ids=rest, config=run_config)
    report.rechecks = [Recheck(result.control_id, str(result.status)) for result in run.controls]
    report.notes.append(f"Re-check run {run.run_id}: {run.status}.")


def _record_failure(report: WatchReport, what: str) -> None:
    """Send the exception being handled, tagged with the run id. Call only inside an `except` block."""
    telemetry.emit_exception(
        f"Mailbox activity watch {what}", run_id=report.run_id, tenant_id=report.tenant_id, command="watch"
    )


def _publish(report: WatchReport, settings: TelemetrySettings) -> WatchReport:
    """Log the pass locally (always), then send and flush its completion event (bounded)."""
    if report.finished_at is None:
        report.finished_at = datetime.now(UTC)
    level = logging.INFO if report.status == "Clear" else logging.WARNING
    lag = "unknown" if report.feed_lag_minutes is None else f"{report.feed_lag_minutes:g} min"
    log.log(
        level,
        "Mailbox activity watch %s for tenant %s: %s (%d record(s), %d new alert(s), feed lag %s)%s",
        report.run_id,
        report.tenant_id,
        report.status,
        report.records_processed,
        len(report.alerts),
        lag,
        f": {report.error}" if report.error else "",
    )
    try:
        telemetry.emit_activity_watch(report)
    finally:
        telemetry.flush()
    return report
