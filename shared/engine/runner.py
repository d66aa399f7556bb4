"""Runs check / remediate / revert for one tenant over the registered controls.

The CLI and the Azure Functions call these (through `service`); they own no logic of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.config.settings import AuditPolicy
from shared.controls.plans import PlanRefused
from shared.controls.reading import RunContext, WatchState
from shared.controls.registry import BY_ID
from shared.engine.apply import apply_plan
from shared.exchange.client import ExchangeClient
from shared.exchange.compliance import ComplianceConnection
from shared.exchange.errors import ExchangeError, ExchangeNotFound
from shared.model import ControlResult, Outcome, RemediationResult, RunReport, Status

log = logging.getLogger("mailbox_audit_guard.engine")


def _read_and_evaluate(context: RunContext, control_id: str, *, lag: bool = False) -> tuple[Any, ControlResult]:
    """Read one control and judge it; any failure to read becomes an Error verdict (fail closed).

    `lag`: a read-back right after a write, where a not-found is replication lag: it is raised for the caller."""
    control = BY_ID[control_id]
    try:
        snapshot = control.read(context)
        return snapshot, control.evaluate(snapshot, context.policy)
    except ExchangeError as exc:
        if lag and isinstance(exc, ExchangeNotFound):
            raise
        log.warning("%s: could not read (%s, HTTP %s)", control_id, type(exc).__name__, exc.status or "-")
        return None, control.error(str(exc))
    except Exception as exc:  # a bug or an answer nobody foresaw: this control is unknown, the others still run
        log.exception("%s: unexpected failure while reading or judging", control_id)
        return None, control.error(f"unexpected {type(exc).__name__} while reading the value")


def runnable(control_ids: Sequence[str], policy: AuditPolicy, report: RunReport) -> list[str]:
    """The controls this policy runs; each opt-in control it leaves out goes into `report.not_run`, with why."""
    chosen = []
    for control_id in control_ids:
        opt_in = BY_ID[control_id].not_run
        reason = opt_in(policy) if opt_in is not None else None
        if reason is None:
            chosen.append(control_id)
        else:
            report.not_run[control_id] = reason
    return chosen


def run_check(
    client: ExchangeClient,
    tenant_id: str,
    control_ids: Sequence[str],
    *,
    policy: AuditPolicy,
    trigger: str = "cli",
    report: RunReport | None = None,
    compliance: ComplianceConnection | None = None,
    state: WatchState | None = None,
    state_problem: str | None = None,
) -> RunReport:
    """Check each control; the overall status is the worst of them. `compliance`: the run's Security &
    Compliance connection, for the controls that read there; `state`: the activity watch's store, for the controls
    that need it (audit-pipeline); `state_problem` says why there is none."""
    report = report or RunReport(command="check", tenant_id=tenant_id, trigger=trigger)
    context = RunContext(
        client, policy, compliance=compliance, tenant_id=tenant_id, state=state, state_problem=state_problem
    )
    for control_id in runnable(control_ids, policy, report):
        snapshot, result = _read_and_evaluate(context, control_id)
        report.organization = report.organization or getattr(snapshot, "name", None)
        report.controls.append(result)
    return _finish(report, client, compliance)


def run_remediation(
    client: ExchangeClient,
    tenant_id: str,
    control_ids: Sequence[str],
    *,
    policy: AuditPolicy,
    dry_run: bool,
    trigger: str = "cli",
    caller: str | None = None,
    revert: bool = False,
    report: RunReport | None = None,
    abort: Callable[[], bool] = lambda: False,
    compliance: ComplianceConnection | None = None,
) -> RunReport:
    """Fix (or, with revert=True, switch off) each control: plan, write unless dry run, read back.

    `abort` says the write lock was lost: no further write may be sent.
    """
    command = "revert" if revert else "remediate"
    report = report or RunReport(command=command, tenant_id=tenant_id, trigger=trigger, dry_run=dry_run, caller=caller)
    context = RunContext(client, policy, compliance=compliance)
    customised_at: datetime | None = None  # Enable-OrganizationCustomization succeeded in this run
    for control_id in runnable(control_ids, policy, report):
        control = BY_ID[control_id]
        snapshot, before = _read_and_evaluate(context, control_id)
        report.organization = report.organization or getattr(snapshot, "name", None)
        planner = control.plan_revert if revert else control.plan_fix
        assert planner is not None, f"{control_id} has no revert"
        try:
            plan = planner(snapshot, policy) if before.status is not Status.ERROR else []
        except PlanRefused as exc:  # the planner saw no safe write: nothing is sent, and it says why
            report.remediation.append(
                RemediationResult(control_id, "none", Outcome.FAILED, before, before, f"Nothing was written: {exc}")
            )
            report.controls.append(before)
            continue
        # The read succeeded unless it is an Error, so the control's client is open; an Error writes nothing.
        writer = context.client_for(control.endpoint) if before.status is not Status.ERROR else client

        def read_back(cid: str = control_id) -> ControlResult:
            context.cache.clear()  # the writes changed the tenant: read it afresh
            return _read_and_evaluate(context, cid, lag=True)[1]

        outcome = apply_plan(
            writer,
            before,
            plan,
            dry_run=dry_run,
            read_back=read_back,
            reached=_reverted if revert else _compliant,
            verb="revert" if revert else "fix",
            writes_per_second=policy.writes_per_second,
            abort=abort,
            verify_seconds=policy.verify_seconds,
            is_dehydrated=getattr(snapshot, "is_dehydrated", None),
            customised_at=customised_at,
        )
        if "customisation_enabled_at" in outcome.details and customised_at is None:
            customised_at = datetime.fromisoformat(outcome.details["customisation_enabled_at"])
        # Only ids and outcomes: logs reach Application Insights, and messages can name mailboxes.
        log_level = logging.INFO if outcome.outcome.done else logging.WARNING
        log.log(log_level, "%s %s: %s (%d writes)", command, control_id, outcome.outcome, len(outcome.writes))
        report.remediation.append(outcome)
        report.controls.append(outcome.after or before)
    return _finish(report, client, compliance)


def _compliant(result: ControlResult) -> bool:
    return result.status is Status.COMPLIANT


def _reverted(result: ControlResult) -> bool:
    return result.status is Status.NON_COMPLIANT


def _finish(report: RunReport, client: ExchangeClient, compliance: ComplianceConnection | None = None) -> RunReport:
    report.finished_at = datetime.now(UTC)
    report.requests_sent = client.requests_sent + (compliance.requests_sent if compliance is not None else 0)
    return report
