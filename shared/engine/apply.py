"""Applying a control's plan: write, then read back to verify. Dry run writes nothing. (Plans are the controls'.)

Organisation-level plans run in order and stop at the first failure. Per-object plans (one write per mailbox or
bypass association) carry on past a failed object, so one licence error does not stop the others, and are paced
to stay under Exchange's throttling.

Exchange can show the old value (or answer not found) for minutes after a write that succeeded, so the read-back is
polled with growing pauses for up to `verify_seconds` (never more than half of what the run has left); a write it
never shows within that window is `Unverified`, not written again in this run, and read again by the next run.
A dehydrated tenant takes organisation-wide writes only up to about 60 minutes after Enable-OrganizationCustomization:
after a successful Enable nothing more is written in this run, and a write refused as dehydrated while IsDehydrated
already reads False is that same propagation; both are `Deferred`, never retried in the same run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from shared.controls.plans import AUDIT_LOG_ANCHOR, CUSTOMISE, describe
from shared.exchange.client import AUDIT_LOG_ANCHOR_GUID, ExchangeClient, system_anchor
from shared.exchange.errors import (
    ExchangeAuthError,
    ExchangeBadRequest,
    ExchangeDeadlineExceeded,
    ExchangeError,
    ExchangeLicenceError,
    ExchangeNotFound,
    ExchangePermissionError,
    TenantDehydrated,
)
from shared.model import Action, ControlResult, Outcome, RemediationResult, Status

log = logging.getLogger("mailbox_audit_guard.remediation")

# Warnings that say a write changed nothing because the object already was so (compared lower-cased):
# "...completed successfully but no settings of 'X' have been modified." and "...is already being audited".
NOT_MODIFIED_MARKERS = ("have been modified", "already being audited")
VERIFY_FIRST_PAUSE_SECONDS = 10.0  # then 20, 40, 80 ...: a read right after a write can still see the old value
PROPAGATION = timedelta(minutes=60)  # Microsoft: allow 60 minutes after Enable-OrganizationCustomization
PROPAGATING = "customisation propagating, up to 60 min"
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
    verify_seconds: float = 120.0,
    is_dehydrated: object = None,
    customised_at: datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RemediationResult:
    """Run a plan for one control and verify it by reading the control again.

    `reached` says whether a verdict is the state the plan aims for (Compliant for a fix, NonCompliant for a
    revert). The outcome is Applied only when the read-back says so. `read_back` may raise ExchangeNotFound (lag).
    `is_dehydrated`: IsDehydrated as the plan saw it; `customised_at`: when Enable-OrganizationCustomization
    succeeded earlier in this run (then no organisation-wide write is sent). `clock`/`now`: for tests.
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

    org_wide = not all(step.target for step in plan)
    if org_wide and customised_at is not None:
        # Enable-OrganizationCustomization succeeded earlier in this run: Exchange would refuse this write.
        return RemediationResult(
            before.control_id,
            action,
            Outcome.DEFERRED,
            before,
            before,
            f"Deferred ({PROPAGATING}): Enable-OrganizationCustomization succeeded earlier in this run, at "
            f"{_utc(customised_at)}, so {action} was not sent. {_next_run(customised_at)}",
            details=_deferred_details(customised_at, now()),
        )

    result = RemediationResult(before.control_id, action, Outcome.FAILED, before, None, "")
    anchor = system_anchor(AUDIT_LOG_ANCHOR_GUID, client.tenant_id)
    plan = [_with_anchor(step, anchor) for step in plan]
    if not org_wide:
        failure = _run_per_object(client, plan, result, 1.0 / writes_per_second, sleep, abort, clock)
    else:
        failure = _run_in_order(client, plan, result, abort, is_dehydrated, now)
    if result.outcome is Outcome.DEFERRED:
        try:  # show the state as it is now; nothing more is written in this run
            result.after = read_back()
        except ExchangeError:
            result.after = None
        return result
    not_found: ExchangeNotFound | None = None
    looks = 0
    started = clock()
    try:
        result.after, not_found = _read(read_back)
        looks = 1
        if failure is None and result.writes and _lagging(result.after, not_found, reached):
            window = verify_window(verify_seconds, started, client.run_deadline)
            pause = VERIFY_FIRST_PAUSE_SECONDS
            while _lagging(result.after, not_found, reached):
                left = started + window - clock()
                if left <= 0:
                    break
                sleep(min(pause, left))  # a read right after a write can still see the old value, or 404
                pause *= 2
                result.after, not_found = _read(read_back)
                looks += 1
    except ExchangeError as exc:  # read_back normally folds errors into an Error verdict; be safe anyway
        failure = failure or f"the read-back failed: {exc}"
    if not_found is not None:
        result.after = _unreadable(before, f"{not_found} (right after a write this is usually replication lag)")
    if failure is None and result.after is not None and reached(result.after):
        result.outcome = Outcome.APPLIED
        result.message = f"Applied and verified by reading back: {result.after.actual}."
    elif failure is None and result.writes and (not_found is not None or _lagging(result.after, None, reached)):
        result.outcome = Outcome.UNVERIFIED
        shown = "answered not found" if not_found is not None else f"still shows {_actual(result.after)}"
        result.details["verify_seconds"] = round(clock() - started, 1)
        result.details["read_backs"] = looks
        result.message = (
            f"Applied, not yet verified: Exchange accepted the write, but the read-back {shown} after "
            f"{clock() - started:.0f} s ({looks} read{'s' if looks != 1 else ''}); Exchange can take minutes to "
            "show a change. Nothing more was written in this run; the next run reads it again and writes only if "
            "it still differs."
        )
    else:
        after_text = _actual(result.after)
        result.message = (
            f"Not verified: {failure} The read-back shows {after_text}."
            if failure
            else f"The write was accepted but the read-back shows {after_text}, not the wanted state."
        )
    return result


def verify_window(verify_seconds: float, now: float, run_deadline: float | None) -> float:
    """How long to keep reading back: the setting, but never more than half of what the run has left (the
    read-backs themselves and the controls after this one need the rest)."""
    window = max(0.0, verify_seconds)
    if run_deadline is not None:
        window = min(window, max(0.0, (run_deadline - now) / 2))
    return window


def verify_pauses(window: float, first: float = VERIFY_FIRST_PAUSE_SECONDS) -> list[float]:
    """The pauses between read-backs when each read takes no time: 10, 20, 40 ... s, the last one cut to fit."""
    pauses: list[float] = []
    total, pause = 0.0, first
    while window - total > 0:
        pauses.append(min(pause, window - total))
        total += pauses[-1]
        pause *= 2
    return pauses


def _read(read_back: Callable[[], ControlResult]) -> tuple[ControlResult | None, ExchangeNotFound | None]:
    """One read-back; a not-found right after a write is lag, kept apart from other failures."""
    try:
        return read_back(), None
    except ExchangeNotFound as exc:
        return None, exc


def _lagging(
    after: ControlResult | None, not_found: ExchangeNotFound | None, reached: Callable[[ControlResult], bool]
) -> bool:
    """Could the read-back still catch up? A not-found, or a readable value that is not (yet) the wanted one; an
    unreadable value (Error) is not lag."""
    if not_found is not None:
        return True
    return after is not None and after.status is not Status.ERROR and not reached(after)


def _actual(after: ControlResult | None) -> str:
    return after.actual if after is not None else "unreadable"


def _unreadable(before: ControlResult, reason: str) -> ControlResult:
    """Fail closed, as `Control.error` words it: a value that could not be read is an Error."""
    return ControlResult(
        before.control_id,
        Status.ERROR,
        before.expected,
        "unreadable",
        f"Could not read the value, so compliance is unknown: {reason}",
    )


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _next_run(customised_at: datetime) -> str:
    return (
        f"Exchange refuses organisation-wide writes until the customisation has propagated; the next run after "
        f"{_utc(customised_at + PROPAGATION)} writes it (Enable-OrganizationCustomization is not run again)."
    )


def _deferred_details(customised_at: datetime | None, deferred_at: datetime) -> dict[str, str]:
    details = {"deferred_at": deferred_at.astimezone(UTC).isoformat(), "reason": PROPAGATING}
    if customised_at is not None:
        details["customisation_enabled_at"] = customised_at.astimezone(UTC).isoformat()
        details["retry_after"] = (customised_at + PROPAGATION).astimezone(UTC).isoformat()
    return details


def _with_anchor(step: Action, anchor: str) -> Action:
    if step.anchor != AUDIT_LOG_ANCHOR:
        return step
    return Action(step.cmdlet, step.parameters, step.description, anchor=anchor, target=step.target)


def _run_in_order(
    client: ExchangeClient,
    plan: list[Action],
    result: RemediationResult,
    abort: Callable[[], bool],
    is_dehydrated: object,
    now: Callable[[], datetime],
) -> str | None:
    """Send each step in order; stop at the first failure and return what it was (None when all succeeded, or
    when the result became Deferred: customisation enabled now, or still propagating)."""
    customised_before = is_dehydrated is False  # IsDehydrated already read False: Enable ran in an earlier run
    for step in plan:
        if abort():
            return LOCK_LOST
        try:
            answer = client.invoke(step.cmdlet, step.parameters, anchor=step.anchor)
        except TenantDehydrated as exc:
            if step.cmdlet != CUSTOMISE.cmdlet and customised_before:
                # IsDehydrated reads False (or Exchange said "already enabled"), yet the write is refused as
                # dehydrated: the customisation is still propagating. Not retried now; never Enable again.
                log.warning("%s refused: customisation still propagating", step.cmdlet)
                result.outcome = Outcome.DEFERRED
                result.details = _deferred_details(None, now())
                result.message = (
                    f"Deferred ({PROPAGATING}): Exchange still refuses {step.cmdlet} as in a dehydrated tenant "
                    "although customisation is already enabled (IsDehydrated reads False). This follows "
                    "Enable-OrganizationCustomization for up to 60 minutes; it was not retried in this run, and the "
                    "next run writes again without running Enable-OrganizationCustomization again. "
                    f"Exchange said: {exc.detail or exc.summary}"
                )
                return None
            log.warning("%s failed (%s)", step.cmdlet, type(exc).__name__)
            return str(exc)
        except ExchangeBadRequest as exc:
            if step.cmdlet == CUSTOMISE.cmdlet and ALREADY_CUSTOMISED_MARKER in (exc.detail or "").lower():
                # A first run can fail and later report "already done": the read-back decides.
                result.warnings.append(exc.detail or "")
                customised_before = True
                continue
            log.warning("%s failed (%s)", step.cmdlet, type(exc).__name__)
            return str(exc)
        except ExchangeError as exc:
            log.warning("%s failed (%s)", step.cmdlet, type(exc).__name__)
            return str(exc)
        result.writes.append(step.cmdlet)
        result.warnings.extend(answer.warnings)
        if step.cmdlet == CUSTOMISE.cmdlet and step is not plan[-1]:
            # Exchange refuses organisation-wide writes for up to 60 minutes after this: stop here, no hot retry.
            enabled_at = now()
            rest = "; ".join(later.description for later in plan[plan.index(step) + 1 :])
            result.outcome = Outcome.DEFERRED
            result.details = _deferred_details(enabled_at, enabled_at)
            result.message = (
                f"Deferred ({PROPAGATING}): Enable-OrganizationCustomization succeeded at {_utc(enabled_at)}; "
                f"{rest} was not sent in this run. {_next_run(enabled_at)}"
            )
            return None
    return None


def _run_per_object(
    client: ExchangeClient,
    plan: list[Action],
    result: RemediationResult,
    interval: float,
    sleep: Callable[[float], None],
    abort: Callable[[], bool],
    clock: Callable[[], float] = time.monotonic,
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
            if client.run_deadline is not None and clock() + interval >= client.run_deadline:
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
            if isinstance(exc, ExchangePermissionError) and exc.role:
                stopped = f"{exc.summary}. {exc.role}"  # the run stops here: say which Exchange role is missing
            deadline = client.run_deadline
            if isinstance(exc, ExchangeDeadlineExceeded) and deadline is not None and clock() >= deadline:
                stopped = f"the run's time budget ran out ({exc.summary})"  # the pace check passed, the request not
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
