"""Applying a control's plan: write, then read back to verify. Dry run writes nothing. (Plans are the controls'.)

Organisation-level plans run in order and stop at the first failure. Per-object plans (one write per mailbox or
bypass association) carry on past a failed object, so one licence error does not stop the others, and are paced
to stay under Exchange's throttling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared.controls.plans import AUDIT_LOG_ANCHOR, CUSTOMISE, describe
from shared.exchange.client import AUDIT_LOG_ANCHOR_GUID, ExchangeClient, system_anchor
from shared.exchange.errors import (
    ExchangeAuthError,
    ExchangeBadRequest,
    ExchangeDeadlineExceeded,
    ExchangeError,
    ExchangeLicenceError,
    ExchangePermissionError,
)
from shared.model import Action, ControlResult, Outcome, RemediationResult, Status

log = logging.getLogger("mailbox_audit_guard.remediation")

# Warnings that say a write changed nothing because the object already was so (compared lower-cased):
# "...completed successfully but no settings of 'X' have been modified." and "...is already being audited".
NOT_MODIFIED_MARKERS = ("have been modified", "already being audited")
VERIFY_RETRY_SECONDS = 3.0  # replication lag: one more read-back before calling a write failed
ALREADY_CUSTOMISED_MARKER = "already enabled for customization"
MAX_LISTED_FAILURES = 200
LOCK_LOST = "the tenant write lock was lost (another instance may be writing); stopped before the next write"


def apply_plan(
    client: ExchangeClient,
    before: ControlResult,
    plan: list[Action],
    *,
    dry_run: bool,
    read_back: Callable[[], ControlResult],
    reached: Callable[[ControlResult], bool],
    verb: str,
    writes_per_second: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    abort: Callable[[], bool] = lambda: False,
) -> RemediationResult:
    """Run a plan for one control and verify it by reading the control again.

    `reached` says whether a verdict is the state the plan aims for (Compliant for a fix, NonCompliant for a
    revert). The outcome is Applied only when the read-back says so.
    """
    action = describe(plan)
    if before.status is Status.ERROR:
        return RemediationResult(
            before.control_id,
            action,
            Outcome.FAILED,
            before,
            None,
            f"Nothing was written: the current state could not be read. {before.message}",
        )
    if not plan or reached(before):
        return RemediationResult(
            before.control_id,
            "none",
            Outcome.ALREADY_COMPLIANT,
            before,
            before,
            f"Already in the wanted state ({before.actual}); nothing was written.",
        )
    if dry_run:
        targets = [step.target for step in plan if step.target]
        return RemediationResult(
            before.control_id,
            action,
            Outcome.DRY_RUN,
            before,
            None,
            f"Dry run: would {verb} with: {action}. Nothing was written.",
            details={"would_change": targets[:MAX_LISTED_FAILURES]} if targets else {},
        )

    result = RemediationResult(before.control_id, action, Outcome.FAILED, before, None, "")
    anchor = system_anchor(AUDIT_LOG_ANCHOR_GUID, client.tenant_id)
    plan = [_with_anchor(step, anchor) for step in plan]
    if all(step.target for step in plan):
        failure = _run_per_object(client, plan, result, 1.0 / writes_per_second, sleep, abort)
    else:
        failure = _run_in_order(client, plan, result, abort)
    try:
        result.after = read_back()
        if failure is None and result.writes and not reached(result.after):
            sleep(VERIFY_RETRY_SECONDS)  # a read right after a write can still see the old value
            result.after = read_back()
    except ExchangeError as exc:  # read_back normally folds errors into an Error verdict; be safe anyway
        failure = failure or f"the read-back failed: {exc}"
    if failure is None and result.after is not None and reached(result.after):
        result.outcome = Outcome.APPLIED
        result.message = f"Applied and verified by reading back: {result.after.actual}."
    else:
        after_text = result.after.actual if result.after is not None else "unreadable"
        result.message = (
            f"Not verified: {failure} The read-back shows {after_text}."
            if failure
            else f"The write was accepted but the read-back shows {after_text}, not the wanted state."
        )
    return result


def _with_anchor(step: Action, anchor: str) -> Action:
    if step.anchor != AUDIT_LOG_ANCHOR:
        return step
    return Action(step.cmdlet, step.parameters, step.description, anchor=anchor, target=step.target)


def _run_in_order(
    client: ExchangeClient, plan: list[Action], result: RemediationResult, abort: Callable[[], bool]
) -> str | None:
    """Send each step in order; stop at the first failure and return what it was (None when all succeeded)."""
    for step in plan:
        if abort():
            return LOCK_LOST
        try:
            answer = client.invoke(step.cmdlet, step.parameters, anchor=step.anchor)
        except ExchangeBadRequest as exc:
            if step.cmdlet == CUSTOMISE.cmdlet and ALREADY_CUSTOMISED_MARKER in (exc.detail or "").lower():
                # A first run can fail and later report "already done": the read-back decides.
                result.warnings.append(exc.detail or "")
                continue
            log.warning("%s failed (%s)", step.cmdlet, type(exc).__name__)
            return str(exc)
        except ExchangeError as exc:
            log.warning("%s failed (%s)", step.cmdlet, type(exc).__name__)
            return str(exc)
        result.writes.append(step.cmdlet)
        result.warnings.extend(answer.warnings)
    return None


def _run_per_object(
    client: ExchangeClient,
    plan: list[Action],
    result: RemediationResult,
    interval: float,
    sleep: Callable[[float], None],
    abort: Callable[[], bool],
) -> str | None:
    """One write per object, paced; a failed object is recorded and the rest carry on.

    Failures that will fail every other object too (out of time, token refused, role missing, lock lost) stop
    the loop instead: the objects not attempted are counted, never reported as fixed.
    """
    fixed = unchanged = attempted = 0
    failed: list[dict[str, str]] = []
    stopped: str | None = None
    for index, step in enumerate(plan):
        if index:
            if client.run_deadline is not None and time.monotonic() + interval >= client.run_deadline:
                stopped = "the run's time budget ran out"
                break
            sleep(interval)
        if abort():
            stopped = LOCK_LOST
            break
        attempted += 1
        try:
            answer = client.invoke(step.cmdlet, step.parameters, anchor=step.anchor)
        except (ExchangeDeadlineExceeded, ExchangeAuthError, ExchangePermissionError) as exc:
            failed.append({"identity": step.target or "", "reason": exc.summary})
            stopped = exc.summary
            break
        except ExchangeError as exc:
            reason = "licence" if isinstance(exc, ExchangeLicenceError) else (exc.detail or exc.summary)
            if len(failed) < MAX_LISTED_FAILURES:
                failed.append({"identity": step.target or "", "reason": reason})
            # No identity in the log line: logs reach Application Insights; the evidence report names the object.
            log.warning(
                "%s failed for one object (%d of %d): %s", step.cmdlet, index + 1, len(plan), type(exc).__name__
            )
            continue
        result.writes.append(step.cmdlet)
        if _not_modified(answer.warnings):
            unchanged += 1  # Exchange says it already was so: AlreadyCompliant for this object
        else:
            fixed += 1
    failures = attempted - fixed - unchanged
    result.details = {
        "mailboxes_fixed": fixed,
        "already_compliant": unchanged,
        "mailboxes_failed": failed,
        "failed_total": failures,
        "not_attempted": len(plan) - attempted,
    }
    if stopped:
        return f"stopped after {attempted} of {len(plan)} writes: {stopped}."
    if failures:
        licence = sum(1 for entry in failed if entry["reason"] == "licence")
        return (
            f"{failures} of {len(plan)} writes failed"
            f"{f' ({licence} for lack of an Audit Premium licence; not retried)' if licence else ''}."
        )
    return None


def _not_modified(warnings: list[str]) -> bool:
    return any(marker in warning.lower() for warning in warnings for marker in NOT_MODIFIED_MARKERS)
