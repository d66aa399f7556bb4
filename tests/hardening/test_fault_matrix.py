"""The fault matrix: every way Exchange, the token service or ingestion is known to fail, through the CLI and the
daily timer. Whatever fails, the verdict is Error (never Compliant), the exit code 2, the message says what happened
and what to do, and the run ends within its time budget. Recoverable faults give the true verdict.

The CLI runs in process (`run_cli`); the cases where a timeout or deadline decides the outcome, and the timer,
run as real child processes (`spawn_cli`, the function harness) and are marked e2e.
"""

from __future__ import annotations

import base64
import gzip
import time

import pytest

from emulator import Fault
from tests.functions.harness import events, run_timer
from tests.support.cli import cli_json, run_cli, spawn_cli
from tests.support.tenant import scenario

NON_COMPLIANT = scenario(
    organization_config={"AuditDisabled": True},
    mailboxes=[{"Name": "ann"}],
    generate_bypass_associations={"count": 1500, "enabled_every": 0},
)
# Short budgets keep the matrix fast; the budget checks below still prove the bounds hold.
TIMING = {
    "EXO_RETRY_BACKOFF_SECONDS": "0.05",
    "EXO_OPERATION_DEADLINE_SECONDS": "4",
    "AUDIT_RUN_DEADLINE_SECONDS": "40",
    "MAILBOX_REMEDIATION_WRITES_PER_SECOND": "50",
    "REMEDIATION_VERIFY_SECONDS": "0.5",
}
RUN_BUDGET = 40 + 15  # run deadline, plus one token fetch that may already be under way, plus start-up

ALWAYS = -1
FAILING = {
    "429 storm with Retry-After": (
        Fault("status", status=429, headers={"Retry-After": "0.5"}, times=ALWAYS),
        "throttl",
    ),
    "429 storm without Retry-After": (Fault("status", status=429, times=ALWAYS), "throttl"),
    "absurd Retry-After": (Fault("status", status=429, headers={"Retry-After": "86400"}, times=ALWAYS), "gave up"),
    "500": (Fault("status", status=500, body="envelope", times=ALWAYS), "500"),
    "502": (Fault("status", status=502, body="html", times=ALWAYS), "502"),
    "503": (Fault("status", status=503, body="empty", times=ALWAYS), "503"),
    "504": (Fault("status", status=504, body="garbage", times=ALWAYS), "504"),
    "slower than the timeout": (Fault("delay", seconds=30, times=ALWAYS), "no answer"),
    "reset mid-body": (Fault("reset", times=ALWAYS), "connection failed"),
    "truncated JSON": (Fault("status", status=200, body="truncated_json", times=ALWAYS), "not JSON"),
    "HTML 200": (Fault("status", status=200, body="html", times=ALWAYS), "not JSON"),
    "empty 200": (Fault("status", status=200, body="empty", times=ALWAYS), "not JSON"),
    "NUL-byte 403": (Fault("status", status=403, body="nul", times=ALWAYS), "Exchange Administrator"),
    "401 always": (Fault("status", status=401, times=ALWAYS), "Exchange.ManageAsApp"),
    "token endpoint down": (Fault("status", listener="token", status=503, times=ALWAYS), "login service"),
    "token endpoint garbage": (Fault("garbage_token", listener="token", body="garbage", times=ALWAYS), "login service"),
    "token endpoint slow": (Fault("delay", listener="token", seconds=40, times=ALWAYS), "login service"),
}
PAGING = {
    "nextLink to another host": (
        Fault("foreign_next_link", cmdlet="Get-MailboxAuditBypassAssociation", times=ALWAYS),
        "refused to follow",
    ),
    "nextLink loop": (
        Fault("loop_next_link", cmdlet="Get-MailboxAuditBypassAssociation", page=1, times=ALWAYS),
        "loop",
    ),
    "cursor expires twice": (
        Fault("expire_cursor", cmdlet="Get-MailboxAuditBypassAssociation", times=ALWAYS),
        "cursor",
    ),
}
# Where a timeout or a deadline decides the outcome: measured on a real process, from the outside.
PROCESS_LEVEL = frozenset(
    {"429 storm with Retry-After", "absurd Retry-After", "slower than the timeout", "token endpoint slow"}
)
RECOVERABLE = {
    "401 once (token refresh)": Fault("status", status=401, times=1),
    "cursor expires once": Fault("expire_cursor", cmdlet="Get-MailboxAuditBypassAssociation", times=1),
    "two 429s with Retry-After": Fault("status", status=429, headers={"Retry-After": "0.2"}, times=2),
    "one 503": Fault("status", status=503, times=1),
    "one reset": Fault("reset", times=1),
}


def cli_check(emu, *, spawn=False, **env):
    started = time.monotonic()
    run = spawn_cli if spawn else run_cli
    result = run(emu, "check", "--json", env={**TIMING, **env}, timeout=120)
    return result, cli_json(result), time.monotonic() - started


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.e2e) if name in PROCESS_LEVEL else name for name in sorted(FAILING)]
)
def test_cli_fails_closed_when_everything_fails(start_emulator, name):
    fault, hint = FAILING[name]
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(fault)
    result, document, elapsed = cli_check(emu, spawn=name in PROCESS_LEVEL)
    assert result.returncode == 2, result.stdout
    assert document["status"] == "Error"
    assert {control["status"] for control in document["controls"]} == {"Error"}
    assert all(hint.lower() in control["message"].lower() for control in document["controls"]), [
        c["message"] for c in document["controls"]
    ]
    assert elapsed < RUN_BUDGET
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", sorted(PAGING))
def test_cli_fails_closed_when_paging_goes_wrong(start_emulator, name):
    fault, hint = PAGING[name]
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(fault)
    result, document, _ = cli_check(emu)
    assert result.returncode == 2
    controls = {control["id"]: control for control in document["controls"]}
    assert controls["audit-bypass"]["status"] == "Error"
    assert hint in controls["audit-bypass"]["message"]
    assert emu.foreign_requests == []
    # The other controls were still read and judged truthfully.
    assert controls["org-audit-enabled"]["status"] == "NonCompliant"


@pytest.mark.parametrize("name", sorted(RECOVERABLE))
def test_recoverable_faults_give_the_true_verdict(start_emulator, name):
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(RECOVERABLE[name])
    result, document, _ = cli_check(emu)
    assert result.returncode == 1, result.stdout
    assert {c["id"]: c["status"] for c in document["controls"]}["org-audit-enabled"] == "NonCompliant"
    assert emu.fired_faults


TIMER_FAULTS = {
    **{name: FAILING[name][0] for name in ("503", "NUL-byte 403", "truncated JSON")},
    # The timer runs with the managed identity, so its token comes from the MSI endpoint.
    "managed identity endpoint down": Fault("status", listener="msi", status=503, times=ALWAYS),
    "managed identity endpoint garbage": Fault("garbage_token", listener="msi", body="html", times=ALWAYS),
}


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(TIMER_FAULTS))
def test_timer_fails_closed_and_says_so_in_telemetry(start_emulator, name):
    fault = TIMER_FAULTS[name]
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(fault)
    started = time.monotonic()
    assert run_timer(emu, **TIMING, timeout=120).returncode == 0
    assert time.monotonic() - started < RUN_BUDGET
    [completed] = events(emu, "MailboxAuditCheckCompleted")
    assert completed["properties"]["status"] == "Error"
    assert {e["properties"]["status"] for e in events(emu, "MailboxAuditControlResult")} == {"Error"}


@pytest.mark.e2e
def test_the_run_deadline_cuts_a_slow_tenant_short(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(Fault("delay", seconds=1.5, times=ALWAYS))
    result, document, elapsed = cli_check(emu, spawn=True, AUDIT_RUN_DEADLINE_SECONDS="5")
    assert result.returncode == 2
    assert elapsed < 5 + 10
    statuses = [control["status"] for control in document["controls"]]
    assert "Error" in statuses
    assert any("time budget" in control["message"] for control in document["controls"])


def test_multi_control_remediation_reports_every_control_truthfully(start_emulator):
    emu = start_emulator(
        scenario(
            organization_config={"AuditDisabled": True},
            admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": False},
            mailboxes=[{"Name": "eve", "AuditLogAgeLimit": "00:00:00"}],
        )
    )
    emu.add_fault(Fault("status", cmdlet="Set-AdminAuditLogConfig", status=503, times=ALWAYS))
    emu.add_fault(Fault("ignore_writes", cmdlet="Set-Mailbox", times=ALWAYS))
    result = run_cli(emu, "remediate", "--json", env=TIMING, timeout=120)
    document = cli_json(result)
    outcomes = {step["control_id"]: step for step in document["remediation"]}
    assert outcomes["org-audit-enabled"]["outcome"] == "Applied"
    assert outcomes["audit-log-search"]["outcome"] == "Failed"
    assert "503" in outcomes["audit-log-search"]["message"]
    # The write "did not stick": accepted, never shown by the read-back. Unverified, never Compliant.
    assert outcomes["mailbox-audit-retention"]["outcome"] == "Unverified"
    assert outcomes["mailbox-audit-retention"]["after"]["status"] == "NonCompliant"
    assert outcomes["audit-bypass"]["outcome"] == "AlreadyCompliant"
    # What the answer says is what the tenant holds.
    assert emu.tenant.organization_config["AuditDisabled"] is False
    assert emu.tenant.admin_audit_log_config["UnifiedAuditLogIngestionEnabled"] is False
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("name", "fault", "hint"),
    [
        ("deeply nested JSON", Fault("status", status=200, body="raw", raw="[" * 200_000, times=ALWAYS), "not JSON"),
        (
            "gzip bomb",
            Fault(
                "status",
                status=200,
                body="raw",
                times=ALWAYS,
                headers={"Content-Encoding": "gzip"},
                raw_base64=base64.b64encode(gzip.compress(b"\0" * (80 * 2**20))).decode(),
            ),
            "inflates",
        ),
    ],
)
def test_hostile_answers_are_errors_not_crashes(start_emulator, name, fault, hint):
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(fault)
    result, document, _ = cli_check(emu)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert all(hint in control["message"] for control in document["controls"]), name


@pytest.mark.e2e
def test_per_mailbox_remediation_stops_at_the_run_deadline(start_emulator):
    emu = start_emulator(scenario(generate_mailboxes={"count": 300, "template": {"AuditLogAgeLimit": "30.00:00:00"}}))
    started = time.monotonic()
    result = spawn_cli(
        emu,
        "remediate",
        "--control",
        "mailbox-audit-retention",
        "--json",
        timeout=120,
        env={**TIMING, "AUDIT_RUN_DEADLINE_SECONDS": "6", "MAILBOX_REMEDIATION_WRITES_PER_SECOND": "5"},
    )
    elapsed = time.monotonic() - started
    [step] = cli_json(result)["remediation"]
    assert step["outcome"] == "Failed"
    assert "time budget" in step["message"]
    assert step["details"]["not_attempted"] > 0
    assert step["details"]["mailboxes_fixed"] == len(emu.invocations("Set-Mailbox"))
    assert elapsed < 6 + 15
    # Whatever was read back is what the exit code says: still NonCompliant (1), or unknown (2) if no time was left.
    assert result.returncode == (1 if step["after"] and step["after"]["status"] == "NonCompliant" else 2)
