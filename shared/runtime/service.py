"""One run, start to finish: settings, token, Exchange client, engine, telemetry, flush.

The timer, the HTTP function and the CLI all come through `execute`, so they behave the same.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from shared.activity.state import StateError, StateStore
from shared.config import loader
from shared.config.loader import RunSettings, StorageSettings, TelemetrySettings
from shared.config.settings import ConfigError, Settings
from shared.controls.registry import (
    CANARY_CONTROL,
    IMPLEMENTED_CONTROLS,
    NOT_REMEDIABLE,
    UNATTENDED_CONTROLS,
    error_result,
)
from shared.engine.runner import run_check, run_remediation
from shared.evidence import archive
from shared.evidence.document import exit_code, run_document
from shared.exchange.auth import TokenError, TokenProvider, token_provider_for
from shared.exchange.client import ExchangeClient, RetryPolicy
from shared.exchange.compliance import (
    COMPLIANCE_CMDLETS,
    ComplianceConnection,
    compliance_anchor,
    compliance_client,
)
from shared.exchange.errors import ComplianceUnavailable
from shared.model import RunReport, Status
from shared.runtime import telemetry
from shared.runtime.state import CLOUD_TRIGGERS, activity_section, open_store
from shared.runtime.tenant_lock import TenantLockError, TenantWriteLock

log = logging.getLogger("mailbox_audit_guard.service")


LOCK_WAIT_SECONDS = 90.0  # a concurrent remediation of the same tenant usually ends well within this


# An HTTP-triggered function must answer within 230 s; leave room for the answer and the telemetry flush.
HTTP_RUN_DEADLINE_SECONDS = 200.0


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        deadline_seconds=settings.operation_deadline_seconds, backoff_base_seconds=settings.retry_backoff_seconds
    )


def open_compliance_client(settings: Settings, run_deadline: float | None) -> ExchangeClient:
    """The Security & Compliance client: the Exchange client on the IPPS host, with its own token scope (the
    global host's audience, also after the regional redirect), anchor and cmdlets; the run's deadline."""
    url = settings.compliance_url
    if url is None:
        raise ComplianceUnavailable(
            f"no Security & Compliance host is known for the {settings.cloud.name} cloud", cmdlet=None
        )
    scope = settings.cloud.compliance_scope or f"{url}/.default"
    return compliance_client(
        url,
        settings.tenant_id,
        token_provider_for(settings, scope),
        anchor=compliance_anchor(settings.organization, settings.tenant_id),
        cmdlets=COMPLIANCE_CMDLETS,
        policy=retry_policy(settings),
        run_deadline=run_deadline,
    )


def open_client(
    settings: Settings, run_seconds: float | None = None, *, tokens: TokenProvider | None = None
) -> ExchangeClient:
    """An Exchange client for the configured tenant (may raise TokenError for an unreadable certificate).

    `tokens`: a provider the caller holds (the watch reads its own app id from the token); else one is made."""
    policy = retry_policy(settings)
    budget = min(settings.run_deadline_seconds, run_seconds or settings.run_deadline_seconds)
    return ExchangeClient(
        settings.exchange_url,
        settings.tenant_id,
        tokens or token_provider_for(settings),
        policy=policy,
        run_deadline=time.monotonic() + budget,
    )


def execute(
    command: str,
    *,
    trigger: str,
    env: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    control_ids: Sequence[str] | None = None,
    dry_run: bool = False,
    caller: str | None = None,
    also_check: Sequence[str] = (),
    config: RunSettings | ConfigError | None = None,
    with_activity: bool = False,
    state_path: str | None = None,
    tenant_name: str | None = None,
) -> RunReport:
    """Run check / remediate / revert for the configured tenant and report it everywhere it must go.

    Never raises for a tenant or service problem: those become Error verdicts, an exception in telemetry,
    and a local log line. Telemetry trouble never changes the result. `also_check` controls are only checked
    (after the remediation), so an unattended run still reports every control. `config`: the run's settings (or
    their refusal) when the caller has loaded them already; otherwise they are loaded from `env` here.
    `with_activity`: add the activity watch's health and recent alerts from its state (`state_path` for the CLI)
    to the evidence, when the watch has left a state. `tenant_name`: the tenants register's name for the tenant.
    """
    env = os.environ if env is None else env
    config = loader.try_load(env, exchange=settings) if config is None else config
    loaded = config if isinstance(config, RunSettings) else None
    # A refused run is still exported, logged and archived, as far as those settings are usable themselves.
    telemetry_settings = loaded.telemetry if loaded else loader.telemetry_for(env)
    storage = loaded.storage if loaded else loader.storage_for(env)
    controls = tuple(control_ids or IMPLEMENTED_CONTROLS)  # an opt-in control switched off lands in `not_run`
    if command != "check":  # nothing to write for a symptom: such a control is only checked
        also_check = (*also_check, *(cid for cid in controls if cid in NOT_REMEDIABLE))
        controls = tuple(cid for cid in controls if cid not in NOT_REMEDIABLE)
    checked_only = tuple(dict.fromkeys(cid for cid in also_check if cid not in controls))
    telemetry.configure(telemetry_settings)
    report = RunReport(
        command=command,
        tenant_id=loaded.exchange.tenant_id if loaded else loader.reported_tenant(env),
        trigger=trigger,
        dry_run=dry_run,
        caller=caller,
        permission_model=loaded.exchange.permission_model if loaded else None,
        tenant_name=tenant_name,
    )
    if dry_run and CANARY_CONTROL in checked_only:  # the canary is a write; a dry run writes nothing
        checked_only = tuple(cid for cid in checked_only if cid != CANARY_CONTROL)
        report.not_run[CANARY_CONTROL] = "a dry run writes nothing, and the canary is a write"
    try:
        if not isinstance(config, RunSettings):
            raise config  # any bad setting fails the run visibly, each named
        settings, policy = config.exchange, config.policy
        client = open_client(settings, HTTP_RUN_DEADLINE_SECONDS if trigger == "http" else None)
    except (ConfigError, TokenError) as exc:
        report.controls = [error_result(control_id, str(exc)) for control_id in controls + checked_only]
        log.error("Run %s could not start: %s", report.run_id, exc)
        _record_failure(report, "run could not start")
        return _publish(report, telemetry_settings, storage)
    exchange = client
    compliance = ComplianceConnection(lambda: open_compliance_client(settings, exchange.run_deadline))
    state, state_problem = _state_for(config, trigger, state_path, (*controls, *checked_only))
    # The checks of this run (all of them, or those only checked after a remediation) share one set of arguments.
    check = functools.partial(
        run_check,
        client,
        settings.tenant_id,
        policy=policy,
        trigger=trigger,
        compliance=compliance,
        state=state,
        state_problem=state_problem,
    )
    try:
        if command == "check":
            report = check(controls, report=report)
        else:
            blob_service = archive.blob_service(config.storage, retry_total=1) if trigger != "cli" else None
            try:
                with TenantWriteLock(settings.tenant_id, blob_service, wait_seconds=LOCK_WAIT_SECONDS) as lock:
                    report = run_remediation(
                        client,
                        settings.tenant_id,
                        controls,
                        policy=policy,
                        dry_run=dry_run,
                        trigger=trigger,
                        caller=caller,
                        revert=command == "revert",
                        report=report,
                        abort=lock.lost.is_set,
                        compliance=compliance,
                    )
            finally:
                if blob_service is not None:
                    blob_service.close()
            if checked_only:
                report = check(checked_only, report=report)
    except (TenantLockError, archive.ArchiveError) as exc:
        report.controls = [
            error_result(control_id, f"nothing was written: {exc}") for control_id in controls + checked_only
        ]
        log.error("Run %s: %s", report.run_id, exc)
        _record_failure(report, "could not take the tenant write lock")
    except Exception:
        _record_failure(report, "run failed unexpectedly")
        _publish(report, telemetry_settings, storage)
        raise
    finally:
        client.close()
        compliance.close()
        if state is not None:
            state.close()
    if with_activity:
        report.activity = activity_section(config, trigger, state_path)
    order = {control_id: index for index, control_id in enumerate(IMPLEMENTED_CONTROLS)}
    report.not_run = dict(sorted(report.not_run.items(), key=lambda item: order.get(item[0], len(order))))
    return _publish(report, telemetry_settings, storage)


def _state_for(
    config: RunSettings, trigger: str, state_path: str | None, controls: Sequence[str]
) -> tuple[StateStore | None, str | None]:
    """The watch's store when the run includes the canary control (else none is opened), or why it cannot be."""
    if CANARY_CONTROL not in controls or config.policy.canary.mailbox is None:
        return None, None
    try:
        return open_store(config, trigger, state_path), None
    except StateError as exc:
        log.error("The activity watch's state could not be opened for %s: %s", CANARY_CONTROL, exc)
        return None, f"the activity watch's state could not be opened: {exc}"


def daily_run(
    env: Mapping[str, str] | None = None,
    *,
    config: RunSettings | ConfigError | None = None,
    trigger: str = "timer",
    tenant_name: str | None = None,
) -> RunReport:
    """The timer's job: check every control; with AUDIT_MODE=remediate, fix what is safe unattended.

    Never a revert. An invalid AUDIT_MODE (or any bad setting) makes an Error run that names it. `config`: one
    tenant's settings of the register (the queue-triggered run, `trigger` "queue"), else loaded from `env`.
    """
    env = os.environ if env is None else env
    config = loader.try_load(env) if config is None else config
    if isinstance(config, RunSettings) and config.app.audit_mode == "remediate":
        safe = list(UNATTENDED_CONTROLS)
        rest = [cid for cid in IMPLEMENTED_CONTROLS if cid not in safe]
        return execute(
            "remediate",
            trigger=trigger,
            env=env,
            control_ids=safe,
            caller="timer:daily_audit_check" if trigger == "timer" else "queue:tenant_audit_check",
            also_check=rest,
            config=config,
            with_activity=True,
            tenant_name=tenant_name,
        )
    return execute("check", trigger=trigger, env=env, config=config, with_activity=True, tenant_name=tenant_name)


def archive_run(report: RunReport, storage: StorageSettings) -> list[str]:
    """Keep the run's evidence (JSON, HTML, Markdown) in the function app's storage account, write-once.

    The history then outlives Application Insights retention. A failure is logged and sent as an exception
    (so the check-failed alert fires); it never changes the run's verdict.
    """
    try:
        blob_service = archive.blob_service(storage, retry_total=1)  # one retry: never hold the run long
        if blob_service is None:
            log.info("No storage account configured (AzureWebJobsStorage): evidence not archived.")
            return []
        with blob_service:
            names = archive.archive_evidence(
                run_document(report, exit_code(report)), container=storage.container, blob_service=blob_service
            )
    except archive.ArchiveError as exc:
        log.error("Evidence of run %s could not be archived: %s", report.run_id, exc)
        _record_failure(report, "evidence could not be archived")
        return []
    log.info("Evidence of run %s archived: %s", report.run_id, ", ".join(names))
    return names


def _record_failure(report: RunReport, what: str) -> None:
    """Send the exception being handled, tagged with the run id. Call only inside an `except` block."""
    telemetry.emit_exception(
        f"Mailbox audit {report.command} {what}",
        run_id=report.run_id,
        tenant_id=report.tenant_id,
        command=report.command,
    )


def _publish(report: RunReport, settings: TelemetrySettings, storage: StorageSettings | None) -> RunReport:
    """Log the run locally (always), then send and flush its telemetry (bounded)."""
    if report.finished_at is None:
        report.finished_at = datetime.now(UTC)
    level = logging.INFO if report.status is Status.COMPLIANT else logging.WARNING
    log.log(
        level,
        "Mailbox audit %s %s for tenant %s: %s%s",
        report.command,
        report.run_id,
        report.tenant_id,
        report.status,
        f" (failed: {', '.join(report.failed_controls)})" if report.failed_controls else "",
    )
    # The Function App archives its runs; the CLI writes its evidence where the person asks (`report --out`).
    if report.trigger in CLOUD_TRIGGERS and storage is not None:  # None: the storage settings are refused
        archive_run(report, storage)
    try:
        telemetry.emit_run(report, include_identities=settings.include_identities, pseudonym_key=settings.pseudonym_key)
    finally:
        telemetry.flush()
    return report
