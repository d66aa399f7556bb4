"""apply_plan: write, read back, and say honestly what happened. Driven by a stand-in client (no network)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.controls.plans import AUDIT_LOG_ANCHOR, CUSTOMISE
from shared.engine.apply import LOCK_LOST, apply_plan
from shared.exchange.client import AUDIT_LOG_ANCHOR_GUID, CmdletResult, system_anchor
from shared.exchange.errors import (
    ExchangeBadRequest,
    ExchangeDeadlineExceeded,
    ExchangeLicenceError,
    ExchangePermissionError,
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


def apply(
    client: StandInClient,
    plan: list[Action],
    *,
    before: ControlResult | None = None,
    after: Callable[[], ControlResult] | None = None,
    dry_run: bool = False,
    abort: Callable[[], bool] = lambda: False,
) -> Any:
    return apply_plan(
        client,
        before or verdict(Status.NON_COMPLIANT),
        plan,
        dry_run=dry_run,  # type: ignore[arg-type]
        read_back=after or reads(verdict(Status.COMPLIANT, "AuditDisabled = False")),
        reached=compliant,
        verb="fix",
        writes_per_second=50,
        sleep=lambda _s: None,
        abort=abort,
    )


def test_applied_only_when_the_read_back_shows_the_wanted_state():
    client = StandInClient()
    result = apply(client, ORG_FIX)
    assert result.outcome is Outcome.APPLIED
    assert result.writes == ["Set-OrganizationConfig"]
    assert result.after.actual == "AuditDisabled = False"


def test_a_write_the_read_back_does_not_show_is_failed_after_one_more_look():
    looks = []

    def read_back() -> ControlResult:
        looks.append(1)
        return verdict(Status.NON_COMPLIANT, "AuditDisabled = True")

    result = apply(StandInClient(), ORG_FIX, after=read_back)
    assert result.outcome is Outcome.FAILED
    assert len(looks) == 2  # replication lag: one more read before calling it failed
    assert "read-back shows AuditDisabled = True" in result.message


def test_a_late_replica_that_catches_up_on_the_second_look_is_applied():
    result = apply(StandInClient(), ORG_FIX, after=reads(verdict(Status.NON_COMPLIANT), verdict(Status.COMPLIANT)))
    assert result.outcome is Outcome.APPLIED


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
