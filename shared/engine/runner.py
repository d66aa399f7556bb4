"""Wires controls to their reads, checks and plans, and runs check / remediate / revert for one tenant.

The CLI and the Azure Functions call these (through `service`); they own no logic of their own.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared import __version__
from shared.config.settings import AuditPolicy
from shared.controls import bypass_checks, checks, collect, mailbox_checks
from shared.controls.catalogue import CATALOGUE
from shared.controls.collect import RunContext
from shared.engine import apply as remediation
from shared.exchange.client import ExchangeClient
from shared.exchange.errors import ExchangeError
from shared.model import Action, ControlResult, Outcome, RemediationResult, Status, worst

log = logging.getLogger("mailbox_audit_guard.engine")


@dataclass(frozen=True)
class ControlHandlers:
    """How one control is read, judged, fixed and (optionally) reverted."""

    read: Callable[[RunContext], Any]
    evaluate: Callable[[Any, AuditPolicy], ControlResult]
    plan_fix: Callable[[Any, AuditPolicy], list[Action]]
    plan_revert: Callable[[Any, AuditPolicy], list[Action]] | None = None
    # May the daily timer fix it without a person asking? Not for changes with trade-offs: adding actions
    # freezes DefaultAuditSet, and removing a bypass may break a deliberate (if unwritten) exemption.
    safe_unattended: bool = True


HANDLERS: dict[str, ControlHandlers] = {
    "org-audit-enabled": ControlHandlers(
        read=collect.read_org_config,
        evaluate=lambda snapshot, _policy: checks.evaluate_org_audit(snapshot),
        plan_fix=remediation.plan_org_audit_fix,
        plan_revert=remediation.plan_org_audit_revert,
    ),
    "audit-log-search": ControlHandlers(
        read=collect.read_admin_audit_log_config,
        evaluate=lambda snapshot, _policy: checks.evaluate_audit_log_search(snapshot),
        plan_fix=remediation.plan_audit_log_search_fix,
        plan_revert=remediation.plan_audit_log_search_revert,
    ),
    "audit-bypass": ControlHandlers(
        read=collect.read_bypass_scan,
        evaluate=bypass_checks.evaluate_bypass,
        plan_fix=remediation.plan_bypass_fix,
        safe_unattended=False,
    ),
    "mailbox-audit-actions": ControlHandlers(
        read=collect.read_mailbox_scan,
        evaluate=mailbox_checks.evaluate_mailbox_actions,
        plan_fix=remediation.plan_mailbox_actions_fix,
        safe_unattended=False,
    ),
    "mailbox-audit-retention": ControlHandlers(
        read=collect.read_mailbox_scan,
        evaluate=mailbox_checks.evaluate_mailbox_retention,
        plan_fix=remediation.plan_mailbox_retention_fix,
    ),
}
IMPLEMENTED_CONTROLS: tuple[str, ...] = tuple(control_id for control_id in CATALOGUE if control_id in HANDLERS)
REVERTIBLE_CONTROLS: tuple[str, ...] = tuple(cid for cid in IMPLEMENTED_CONTROLS if HANDLERS[cid].plan_revert)


@dataclass
class RunReport:
    """Everything one run found and did: the source of the CLI output, the evidence report and telemetry."""

    command: str
    tenant_id: str
    trigger: str = "cli"
    organization: str | None = None
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    dry_run: bool = False
    caller: str | None = None
    controls: list[ControlResult] = field(default_factory=list)
    remediation: list[RemediationResult] = field(default_factory=list)
    requests_sent: int = 0
    tool_version: str = __version__

    @property
    def status(self) -> Status:
        return worst([result.status for result in self.controls])

    @property
    def failed_controls(self) -> list[str]:
        return [result.control_id for result in self.controls if result.status is not Status.COMPLIANT]


def _read_and_evaluate(context: RunContext, control_id: str) -> tuple[Any, ControlResult]:
    """Read one control and judge it; any failure to read becomes an Error verdict (fail closed)."""
    handlers = HANDLERS[control_id]
    try:
        snapshot = handlers.read(context)
        return snapshot, handlers.evaluate(snapshot, context.policy)
    except ExchangeError as exc:
        log.warning("%s: could not read (%s, HTTP %s)", control_id, type(exc).__name__, exc.status or "-")
        return None, checks.error_result(control_id, str(exc))
    except Exception as exc:  # a bug or an answer nobody foresaw: this control is unknown, the others still run
        log.exception("%s: unexpected failure while reading or judging", control_id)
        return None, checks.error_result(control_id, f"unexpected {type(exc).__name__} while reading the value")


def run_check(client: ExchangeClient, tenant_id: str, control_ids: Sequence[str], *, policy: AuditPolicy,
              trigger: str = "cli", report: RunReport | None = None) -> RunReport:
    """Check each control; the overall status is the worst of them."""
    report = report or RunReport(command="check", tenant_id=tenant_id, trigger=trigger)
    context = RunContext(client, policy)
    for control_id in control_ids:
        snapshot, result = _read_and_evaluate(context, control_id)
        report.organization = report.organization or getattr(snapshot, "name", None)
        report.controls.append(result)
    return _finish(report, client)


def run_remediation(client: ExchangeClient, tenant_id: str, control_ids: Sequence[str], *, policy: AuditPolicy,
                    dry_run: bool, trigger: str = "cli", caller: str | None = None, revert: bool = False,
                    report: RunReport | None = None, abort: Callable[[], bool] = lambda: False) -> RunReport:
    """Fix (or, with revert=True, switch off) each control: plan, write unless dry run, read back.

    `abort` says the write lock was lost: no further write may be sent.
    """
    command = "revert" if revert else "remediate"
    report = report or RunReport(command=command, tenant_id=tenant_id, trigger=trigger, dry_run=dry_run,
                                 caller=caller)
    context = RunContext(client, policy)
    for control_id in control_ids:
        handlers = HANDLERS[control_id]
        snapshot, before = _read_and_evaluate(context, control_id)
        report.organization = report.organization or getattr(snapshot, "name", None)
        planner = handlers.plan_revert if revert else handlers.plan_fix
        assert planner is not None, f"{control_id} has no revert"
        plan = planner(snapshot, policy) if before.status is not Status.ERROR else []

        def read_back(cid: str = control_id) -> ControlResult:
            context.cache.clear()  # the writes changed the tenant: read it afresh
            return _read_and_evaluate(context, cid)[1]

        outcome = remediation.apply_plan(
            client, before, plan, dry_run=dry_run, read_back=read_back,
            reached=_reverted if revert else _compliant, verb="revert" if revert else "fix",
            writes_per_second=policy.writes_per_second, abort=abort)
        # Only ids and outcomes: logs reach Application Insights, and messages can name mailboxes.
        log_level = logging.WARNING if outcome.outcome is Outcome.FAILED else logging.INFO
        log.log(log_level, "%s %s: %s (%d writes)", command, control_id, outcome.outcome, len(outcome.writes))
        report.remediation.append(outcome)
        report.controls.append(outcome.after or before)
    return _finish(report, client)


def _compliant(result: ControlResult) -> bool:
    return result.status is Status.COMPLIANT


def _reverted(result: ControlResult) -> bool:
    return result.status is Status.NON_COMPLIANT


def _finish(report: RunReport, client: ExchangeClient) -> RunReport:
    report.finished_at = datetime.now(UTC)
    report.requests_sent = client.requests_sent
    return report
