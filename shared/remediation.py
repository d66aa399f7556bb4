"""Remediation: plans are pure; applying them writes, then reads back to verify. Dry run writes nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.collect import OrgConfig
from shared.exchange import ExchangeClient
from shared.exchange_errors import ExchangeBadRequest, ExchangeError
from shared.models import Action, ControlResult, Outcome, RemediationResult, Status

log = logging.getLogger("mailbox_audit_guard.remediation")

NOT_MODIFIED_MARKER = "have been modified"  # "...completed successfully but no settings of 'X' have been modified."
ALREADY_CUSTOMISED_MARKER = "already enabled for customization"

CUSTOMISE = Action("Enable-OrganizationCustomization", {}, "Enable-OrganizationCustomization (dehydrated tenant)")


# -- plans (pure) -------------------------------------------------------------------------------------------------

def plan_org_audit_fix(config: OrgConfig) -> list[Action]:
    """Turn audit-by-default on; a dehydrated tenant needs customisation first."""
    if config.audit_disabled is False:
        return []
    write = Action("Set-OrganizationConfig", {"AuditDisabled": False}, "Set-OrganizationConfig -AuditDisabled $false")
    return [*_customise_first(config), write]


def plan_org_audit_revert(config: OrgConfig) -> list[Action]:
    """The original script's -Revert: switch audit-by-default OFF. Dangerous; callers guard it."""
    if config.audit_disabled is True:
        return []
    write = Action("Set-OrganizationConfig", {"AuditDisabled": True}, "Set-OrganizationConfig -AuditDisabled $true")
    return [*_customise_first(config), write]


def _customise_first(config: OrgConfig) -> list[Action]:
    return [CUSTOMISE] if config.is_dehydrated is True else []


# -- apply and verify (I/O) ---------------------------------------------------------------------------------------

def apply_plan(client: ExchangeClient, before: ControlResult, plan: list[Action], *, dry_run: bool,
               read_back: Callable[[], ControlResult], reached: Callable[[ControlResult], bool],
               verb: str) -> RemediationResult:
    """Run a plan for one control and verify it by reading the control again.

    `reached` says whether a verdict is the state the plan aims for (Compliant for a fix, NonCompliant for a
    revert). The outcome is Applied only when the read-back says so.
    """
    action = "; ".join(step.description for step in plan) or "none"
    if before.status is Status.ERROR:
        return RemediationResult(before.control_id, action, Outcome.FAILED, before, None,
                                 f"Nothing was written: the current state could not be read. {before.message}")
    if not plan or reached(before):
        return RemediationResult(before.control_id, "none", Outcome.ALREADY_COMPLIANT, before, before,
                                 f"Already in the wanted state ({before.actual}); nothing was written.")
    if dry_run:
        return RemediationResult(before.control_id, action, Outcome.DRY_RUN, before, None,
                                 f"Dry run: would {verb} with: {action}. Nothing was written.")

    result = RemediationResult(before.control_id, action, Outcome.FAILED, before, None, "")
    failure = _run_steps(client, plan, result)
    try:
        result.after = read_back()
    except ExchangeError as exc:  # read_back normally folds errors into an Error verdict; be safe anyway
        result.after = None
        failure = failure or f"the read-back failed: {exc}"
    if failure is None and result.after is not None and reached(result.after):
        result.outcome = Outcome.APPLIED
        result.message = f"Applied and verified by reading back: {result.after.actual}."
    else:
        after_text = result.after.actual if result.after is not None else "unreadable"
        result.message = (f"Not verified: {failure}" if failure else
                          f"The write was accepted but the read-back shows {after_text}, not the wanted state.")
    return result


def _run_steps(client: ExchangeClient, plan: list[Action], result: RemediationResult) -> str | None:
    """Send each step in order; stop at the first failure and return what it was (None when all succeeded)."""
    for step in plan:
        try:
            answer = client.invoke(step.cmdlet, step.parameters, anchor=step.anchor)
        except ExchangeBadRequest as exc:
            if step.cmdlet == CUSTOMISE.cmdlet and ALREADY_CUSTOMISED_MARKER in (exc.detail or "").lower():
                # A first run can fail and later report "already done": the read-back decides.
                result.warnings.append(exc.detail or "")
                continue
            log.warning("%s failed: %s", step.cmdlet, exc)
            return str(exc)
        except ExchangeError as exc:
            log.warning("%s failed: %s", step.cmdlet, exc)
            return str(exc)
        result.writes.append(step.cmdlet)
        result.warnings.extend(answer.warnings)
        if any(NOT_MODIFIED_MARKER in warning for warning in answer.warnings):
            log.info("%s: Exchange reports nothing was modified", step.cmdlet)
    return None
