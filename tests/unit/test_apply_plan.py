"""apply_plan: write, read back, and say honestly what happened. Driven by a stand-in client (no network)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.controls.plans import AUDIT_LOG_ANCHOR, CUSTOMISE
from shared.engine.apply import LOCK_LOST, PROPAGATING, apply_plan, verify_pauses, verify_window
from shared.exchange.client import AUDIT_LOG_ANCHOR_GUID, CmdletResult, system_anchor
from shared.exchange.errors import (
    ExchangeBadRequest,
    ExchangeDeadlineExceeded,
    ExchangeLicenceError,
    ExchangeNotFound,
    ExchangePermissionError,
    TenantDehydrated,
)
from shared.model import Action, ControlResult, Outcome, Status

TENANT = "0b5c1c1e-1111-2222-3333-444455556666"


@dataclass
class StandInClient:
    """Records what would be sent; `answers` maps a target (or cmdlet) to an exception or warnings."""

    answers: dict[str, Any] = field(default_factory=dict)
    sent: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    tenant_id: str = TENANT
    run_deadline: float | None = None

    def invoke(self, cmdlet: str, parameters: dict[str, Any], *, anchor: str | None = None) -> CmdletResult:
        self.sent.append((cmdlet, parameters, anchor))
        answer = self.answers.get(str(parameters.get("Identity")), self.answers.get(cmdlet))
        if isinstance(answer, Exception):
            raise answer
        return CmdletResult(rows=[], warnings=list(answer or []))


def verdict(status: Status, actual: str = "value") -> ControlResult:
    return ControlResult("org-audit-enabled", status, "AuditDisabled = False", actual, "message")


def reads(*results: ControlResult) -> Callable[[], ControlResult]:
    queue = list(results)
    return lambda: queue.pop(0) if len(queue) > 1 else queue[0]


def compliant(result: ControlResult) -> bool:
    return result.status is Status.COMPLIANT


ORG_FIX = [Action("Set-OrganizationConfig", {"AuditDisabled": False}, "Set-OrganizationConfig -AuditDisabled $false")]


@dataclass
class FakeClock:
    """Monotonic time that only moves when the code under test sleeps: polling is tested without waiting."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


ENABLED_AT = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)


def apply(
    client: StandInClient,
    plan: list[Action],
    *,
    before: ControlResult | None = None,
    after: Callable[[], ControlResult] | None = None,
    dry_run: bool = False,
    abort: Callable[[], bool] = lambda: False,
    clock: FakeClock | None = None,
    **options: Any,
) -> Any:
    clock = clock or FakeClock()
    return apply_plan(
        client,
        before or verdict(Status.NON_COMPLIANT),
        plan,
        dry_run=dry_run,  # type: ignore[arg-type]
        read_back=after or reads(verdict(Status.COMPLIANT, "AuditDisabled = False")),
        reached=compliant,
        verb="fix",
        writes_per_second=50,
        sleep=clock.sleep,
        abort=abort,
        clock=clock,
        now=lambda: ENABLED_AT,
        **options,
    )


def test_applied_only_when_the_read_back_shows_the_wanted_state():
    client = StandInClient()
    result = apply(client, ORG_FIX)
    assert result.outcome is Outcome.APPLIED
    assert result.writes == ["Set-OrganizationConfig"]
    assert result.after.actual == "AuditDisabled = False"


def test_a_write_the_read_back_never_shows_is_unverified_after_polling_with_growing_pauses():
    looks = []

    def read_back() -> ControlResult:
        looks.append(1)
        return verdict(Status.NON_COMPLIANT, "AuditDisabled = True")

    client, clock = StandInClient(), FakeClock()
    result = apply(client, ORG_FIX, after=read_back, clock=clock, verify_seconds=120)
    assert result.outcome is Outcome.UNVERIFIED
    assert clock.sleeps == [10, 20, 40, 50]  # reads at 0, 10, 30, 70 and 120 s
    assert len(looks) == 5
    assert len(client.sent) == 1, "never a second write in the same run"
    assert result.after.status is Status.NON_COMPLIANT  # never Compliant: the run's status stays as read back
    assert "not yet verified" in result.message and "AuditDisabled = True" in result.message
    assert result.details == {"verify_seconds": 120.0, "read_backs": 5}


def test_a_late_replica_that_catches_up_on_the_second_look_is_applied():
    clock = FakeClock()
    result = apply(
        StandInClient(), ORG_FIX, after=reads(verdict(Status.NON_COMPLIANT), verdict(Status.COMPLIANT)), clock=clock
    )
    assert result.outcome is Outcome.APPLIED
    assert clock.sleeps == [10]


def test_polling_stops_as_soon_as_the_read_back_shows_the_write():
    clock = FakeClock()
    stale = verdict(Status.NON_COMPLIANT)
    result = apply(StandInClient(), ORG_FIX, after=reads(stale, stale, stale, verdict(Status.COMPLIANT)), clock=clock)
    assert result.outcome is Outcome.APPLIED
    assert clock.sleeps == [10, 20, 40]


def test_the_schedule_grows_and_its_last_pause_is_cut_to_the_window():
    assert verify_pauses(120) == [10, 20, 40, 50]
    assert verify_pauses(300) == [10, 20, 40, 80, 150]
    assert verify_pauses(5) == [5]
    assert verify_pauses(0) == []


def test_the_window_shrinks_when_the_run_deadline_is_near():
    assert verify_window(120, now=0, run_deadline=None) == 120
    assert verify_window(120, now=0, run_deadline=1000) == 120
    assert verify_window(120, now=0, run_deadline=60) == 30  # half of what is left: later controls need time too
    assert verify_window(120, now=100, run_deadline=50) == 0
    clock = FakeClock()
    client = StandInClient(run_deadline=clock.now + 40)
    result = apply(client, ORG_FIX, after=reads(verdict(Status.NON_COMPLIANT)), clock=clock)
    assert clock.sleeps == [10, 10]
    assert result.outcome is Outcome.UNVERIFIED


def test_a_zero_window_reads_back_once_and_says_unverified():
    clock = FakeClock()
    result = apply(StandInClient(), ORG_FIX, after=reads(verdict(Status.NON_COMPLIANT)), clock=clock, verify_seconds=0)
    assert (result.outcome, clock.sleeps) == (Outcome.UNVERIFIED, [])


def not_found_then(*results: ControlResult, times: int = 1) -> Callable[[], ControlResult]:
    queue: list[ControlResult | Exception] = [ExchangeNotFound("object not found", status=404)] * times
    queue += list(results)

    def read_back() -> ControlResult:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return read_back


def test_a_not_found_right_after_the_write_is_lag_not_failure():
    clock = FakeClock()
    result = apply(StandInClient(), ORG_FIX, after=not_found_then(verdict(Status.COMPLIANT), times=2), clock=clock)
    assert result.outcome is Outcome.APPLIED
    assert clock.sleeps == [10, 20]


def test_a_not_found_until_the_window_ends_is_unverified_and_the_value_is_an_error():
    clock = FakeClock()
    result = apply(StandInClient(), ORG_FIX, after=not_found_then(times=99), clock=clock, verify_seconds=30)
    assert result.outcome is Outcome.UNVERIFIED
    assert clock.sleeps == [10, 20]
    assert result.after.status is Status.ERROR  # fail closed: not found is not a value
    assert "replication lag" in result.after.message and "answered not found" in result.message


def test_an_unreadable_read_back_is_failed_at_once_not_polled():
    clock = FakeClock()
    result = apply(StandInClient(), ORG_FIX, after=reads(verdict(Status.ERROR, "unreadable")), clock=clock)
    assert (result.outcome, clock.sleeps) == (Outcome.FAILED, [])


def test_a_failed_write_is_not_polled():
    clock = FakeClock()
    client = StandInClient(answers={"Set-OrganizationConfig": ExchangeBadRequest("bad request", status=400)})
    result = apply(client, ORG_FIX, after=reads(verdict(Status.NON_COMPLIANT)), clock=clock)
    assert (result.outcome, clock.sleeps) == (Outcome.FAILED, [])


def test_after_a_successful_enable_nothing_more_is_written_and_the_fix_is_deferred():
    client, clock = StandInClient(), FakeClock()
    result = apply(client, [CUSTOMISE, *ORG_FIX], after=reads(verdict(Status.NON_COMPLIANT)), clock=clock)
    assert [cmdlet for cmdlet, _, _ in client.sent] == ["Enable-OrganizationCustomization"]
    assert result.outcome is Outcome.DEFERRED
    assert result.writes == ["Enable-OrganizationCustomization"]
    assert PROPAGATING in result.message and "2026-10-01 06:00 UTC" in result.message
    assert result.details["customisation_enabled_at"] == "2026-10-01T06:00:00+00:00"
    assert result.details["retry_after"] == "2026-10-01T07:00:00+00:00"
    assert clock.sleeps == [], "no waiting, no hot retry"


def test_an_org_wide_fix_after_an_enable_earlier_in_the_run_is_deferred_without_a_request():
    client = StandInClient()
    result = apply(client, ORG_FIX, customised_at=ENABLED_AT)
    assert (result.outcome, client.sent) == (Outcome.DEFERRED, [])
    assert "earlier in this run" in result.message


def test_a_dehydrated_refusal_while_isdehydrated_reads_false_is_deferred_not_customised_again():
    refusal = TenantDehydrated("the tenant must be customised first", status=400, detail="first run Enable-...")
    client, clock = StandInClient(answers={"Set-OrganizationConfig": refusal}), FakeClock()
    result = apply(client, ORG_FIX, after=reads(verdict(Status.NON_COMPLIANT)), clock=clock, is_dehydrated=False)
    assert [cmdlet for cmdlet, _, _ in client.sent] == ["Set-OrganizationConfig"]  # once: no hot loop
    assert result.outcome is Outcome.DEFERRED and clock.sleeps == []
    assert "IsDehydrated reads False" in result.message
    assert "without running Enable-OrganizationCustomization again" in result.message
    assert result.details["reason"] == PROPAGATING and "customisation_enabled_at" not in result.details


def test_a_dehydrated_refusal_with_isdehydrated_unknown_is_failed_with_a_hint_for_both_states():
    refusal = TenantDehydrated("the tenant must be customised first", status=400)
    client = StandInClient(answers={"Set-OrganizationConfig": refusal})
    result = apply(client, ORG_FIX, after=reads(verdict(Status.NON_COMPLIANT)), is_dehydrated=None)
    assert result.outcome is Outcome.FAILED
    assert "remediation does this" not in result.message
    assert "once it reads False, wait" in result.message


def test_nothing_is_written_when_the_state_could_not_be_read():
    client = StandInClient()
    result = apply(client, ORG_FIX, before=verdict(Status.ERROR, "unreadable"))
    assert (result.outcome, client.sent) == (Outcome.FAILED, [])
    assert result.message.startswith("Nothing was written")


def test_already_compliant_and_dry_run_write_nothing():
    client = StandInClient()
    assert apply(client, [], before=verdict(Status.COMPLIANT)).outcome is Outcome.ALREADY_COMPLIANT
    dry = apply(client, ORG_FIX, dry_run=True)
    assert dry.outcome is Outcome.DRY_RUN and "would fix" in dry.message
    assert client.sent == []


def test_the_audit_log_anchor_marker_becomes_the_tenants_arbitration_mailbox():
    client = StandInClient()
    apply(
        client,
        [
            Action(
                "Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True}, "enable", anchor=AUDIT_LOG_ANCHOR
            )
        ],
    )
    assert client.sent[0][2] == system_anchor(AUDIT_LOG_ANCHOR_GUID, TENANT)


def test_an_ordered_plan_stops_at_the_first_failure():
    client = StandInClient(answers={"Enable-OrganizationCustomization": ExchangePermissionError("denied", status=403)})
    result = apply(client, [CUSTOMISE, *ORG_FIX], after=reads(verdict(Status.NON_COMPLIANT)))
    assert [cmdlet for cmdlet, _, _ in client.sent] == ["Enable-OrganizationCustomization"]
    assert result.outcome is Outcome.FAILED and "denied" in result.message


def test_already_customised_is_not_a_failure_the_read_back_decides():
    error = ExchangeBadRequest("bad request", detail="Organization is already enabled for customization.")
    client = StandInClient(answers={"Enable-OrganizationCustomization": error})
    result = apply(client, [CUSTOMISE, *ORG_FIX])
    assert result.outcome is Outcome.APPLIED
    assert result.writes == ["Set-OrganizationConfig"]


def per_mailbox(*targets: str) -> list[Action]:
    return [
        Action("Set-Mailbox", {"Identity": target, "AuditLogAgeLimit": "90.00:00:00"}, "retention", target=target)
        for target in targets
    ]


def test_per_object_plans_carry_on_past_a_licence_error_and_count_each_outcome():
    client = StandInClient(
        answers={
            "b": ExchangeLicenceError("licence", detail="needs E5"),
            "c": ["... no settings of 'c' have been modified."],
        }
    )
    result = apply(client, per_mailbox("a", "b", "c", "d"), after=reads(verdict(Status.NON_COMPLIANT)))
    assert len(client.sent) == 4
    assert result.details["mailboxes_fixed"] == 2
    assert result.details["already_compliant"] == 1
    assert result.details["mailboxes_failed"] == [{"identity": "b", "reason": "licence"}]
    assert result.outcome is Outcome.FAILED
    assert "1 of 4 writes failed (1 for lack of an Audit Premium licence" in result.message


@pytest.mark.parametrize("error", [ExchangeDeadlineExceeded("out of time"), ExchangePermissionError("no role")])
def test_per_object_plans_stop_on_failures_that_would_fail_every_other_object(error):
    client = StandInClient(answers={"b": error})
    result = apply(client, per_mailbox("a", "b", "c"), after=reads(verdict(Status.NON_COMPLIANT)))
    assert [parameters["Identity"] for _, parameters, _ in client.sent] == ["a", "b"]
    assert result.details["not_attempted"] == 1
    assert result.outcome is Outcome.FAILED and "stopped after 2 of 3 writes" in result.message


def test_a_lost_write_lock_stops_before_the_next_write():
    calls = []

    def lost() -> bool:
        calls.append(1)
        return len(calls) > 1

    client = StandInClient()
    result = apply(client, per_mailbox("a", "b", "c"), abort=lost, after=reads(verdict(Status.NON_COMPLIANT)))
    assert len(client.sent) == 1
    assert LOCK_LOST in result.message and result.outcome is Outcome.FAILED


def test_a_run_deadline_already_reached_sends_only_the_first_write():
    client = StandInClient(run_deadline=0.0)  # monotonic time is always past 0
    result = apply(client, per_mailbox("a", "b"), after=reads(verdict(Status.NON_COMPLIANT)))
    assert len(client.sent) == 1
    assert "time budget ran out" in result.message


def test_a_write_that_runs_into_the_run_deadline_says_the_time_budget_ran_out():
    clock = FakeClock(now=1000.0)
    client = StandInClient(run_deadline=1000.05, answers={"b": ExchangeDeadlineExceeded("gave up")})

    def oversleep(seconds: float) -> None:  # a loaded machine: the pace check passed, the pause ran past the deadline
        clock.now += seconds + 0.05

    result = apply_plan(
        client,
        verdict(Status.NON_COMPLIANT),
        per_mailbox("a", "b", "c"),
        dry_run=False,
        read_back=reads(verdict(Status.NON_COMPLIANT)),
        reached=compliant,
        verb="fix",
        writes_per_second=50,
        sleep=oversleep,
        clock=clock,
    )
    assert "time budget ran out" in result.message and result.details["not_attempted"] == 1
