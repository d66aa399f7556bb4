"""The daily timer function against the emulator, with the real exporter posting to a local ingestion endpoint."""

from __future__ import annotations

import time

import pytest

from emulator import Fault
from shared import __version__
from shared.controls.registry import IMPLEMENTED_CONTROLS, OPT_IN_CONTROLS
from tests.functions.harness import events, exceptions, run_timer
from tests.support.tenant import TENANT_ID, scenario

pytestmark = pytest.mark.e2e  # every test here invokes a function in a child process (harness.py)

COMPLETED_DIMENSIONS = {"run_id", "tenant_id", "status", "failed_controls", "trigger", "tool_version", "command"}
CONTROL_DIMENSIONS = {"run_id", "tenant_id", "control_id", "status", "expected", "actual", "frameworks", "trigger"}
REMEDIATION_DIMENSIONS = {
    "run_id",
    "tenant_id",
    "control_id",
    "action",
    "outcome",
    "caller",
    "before",
    "after",
    "command",
    "trigger",
}


# What a timer run checks with the default settings: every control but the opt-in ones (audit-retention-policy,
# audit-pipeline without AUDIT_CANARY_MAILBOX).
DEFAULT_CONTROLS = tuple(cid for cid in IMPLEMENTED_CONTROLS if cid not in OPT_IN_CONTROLS)
ALL_CONTROLS = ",".join(DEFAULT_CONTROLS)


def only(found, control_id):
    [match] = [event for event in found if event["properties"]["control_id"] == control_id]
    return match


@pytest.mark.parametrize(
    ("tenant", "status", "failed"),
    [
        (scenario(), "Compliant", ""),
        (scenario(organization_config={"AuditDisabled": True}), "NonCompliant", "org-audit-enabled"),
        (scenario(principal={"roles": ["Exchange.ManageAsApp"], "directory_roles": []}), "Error", ALL_CONTROLS),
    ],
)
def test_every_run_sends_the_contract_events(start_emulator, tenant, status, failed):
    emu = start_emulator(tenant)
    result = run_timer(emu)
    assert result.returncode == 0, result.stderr

    [completed] = events(emu, "MailboxAuditCheckCompleted")
    props = completed["properties"]
    assert set(props) >= COMPLETED_DIMENSIONS
    assert all(isinstance(value, str) for value in props.values())
    assert (props["status"], props["failed_controls"], props["trigger"], props["command"]) == (
        status,
        failed,
        "timer",
        "check",
    )
    assert props["tenant_id"] == TENANT_ID and props["tool_version"] == __version__
    assert completed["measurements"]["controls_checked"] == len(DEFAULT_CONTROLS)
    assert completed["measurements"]["duration_seconds"] >= 0

    control = only(events(emu, "MailboxAuditControlResult"), "org-audit-enabled")
    assert set(control["properties"]) >= CONTROL_DIMENSIONS
    assert control["properties"]["run_id"] == props["run_id"]
    assert control["properties"]["control_id"] == "org-audit-enabled"
    assert control["properties"]["status"] == status
    assert control["properties"]["expected"] == "AuditDisabled = False"
    assert "CIS-v7:6.1.1" in control["properties"]["frameworks"]
    assert events(emu, "MailboxAuditRemediation") == []


def test_an_error_run_also_sends_an_exception_with_the_run_id_when_it_cannot_start(start_emulator):
    emu = start_emulator()
    result = run_timer(emu, EXO_TENANT_ID="not-a-guid")
    assert result.returncode == 0, result.stderr
    [completed] = events(emu, "MailboxAuditCheckCompleted")
    assert completed["properties"]["status"] == "Error"
    [exception] = exceptions(emu)
    assert exception["properties"]["run_id"] == completed["properties"]["run_id"]
    assert emu.invocations() == []


def test_remediate_mode_fixes_unattended_and_records_who(start_emulator):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True}))
    assert run_timer(emu, AUDIT_MODE="remediate").returncode == 0
    assert emu.tenant.organization_config["AuditDisabled"] is False
    step = only(events(emu, "MailboxAuditRemediation"), "org-audit-enabled")
    props = step["properties"]
    assert set(props) >= REMEDIATION_DIMENSIONS
    assert (props["outcome"], props["caller"], props["command"]) == ("Applied", "timer:daily_audit_check", "remediate")
    assert (props["before"], props["after"]) == ("AuditDisabled = True", "AuditDisabled = False")
    [completed] = events(emu, "MailboxAuditCheckCompleted")
    assert completed["properties"]["status"] == "Compliant"


def test_bad_audit_mode_is_an_error_run_not_a_silent_check(start_emulator):
    emu = start_emulator()
    run_timer(emu, AUDIT_MODE="fix-everything")
    [completed] = events(emu, "MailboxAuditCheckCompleted")
    assert completed["properties"]["status"] == "Error"


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", listener="ingestion", status=503, times=-1),
        Fault("hang", listener="ingestion", times=-1, seconds=60),
    ],
)
def test_ingestion_down_or_hanging_does_not_change_the_result_or_hold_the_run(start_emulator, fault):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True}))
    emu.add_fault(fault)
    started = time.monotonic()
    result = run_timer(emu, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 20, f"the invocation was held up {elapsed:.1f} s by telemetry"
    # The run is still logged locally with its verdict.
    assert "NonCompliant" in result.stderr


def test_default_telemetry_carries_no_token_or_secret(start_emulator):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True}))
    run_timer(emu, AUDIT_MODE="remediate", auth_mode="secret")
    tokens = {r.headers["authorization"][7:] for r in emu.requests if "authorization" in r.headers}
    sent = repr(emu.telemetry)
    for secret in tokens | {emu.client_secret, emu.identity_header}:
        assert secret not in sent


def test_mailbox_counts_arrive_as_measurements_and_identities_are_pseudonymised(start_emulator):
    emu = start_emulator("emulator/scenarios/noncompliant.json")
    assert run_timer(emu).returncode == 0
    [completed] = events(emu, "MailboxAuditCheckCompleted")
    measurements = completed["measurements"]
    assert measurements["mailboxes_scanned"] == 5  # four user mailboxes and one shared
    assert measurements["mailboxes_noncompliant"] == 3
    assert measurements["bypass_entries_enabled"] == 1
    actions = only(events(emu, "MailboxAuditControlResult"), "mailbox-audit-actions")
    sample = actions["properties"]["findings_sample"].split(",")
    assert len(sample) == 3 and all(name.startswith("mbx-") for name in sample)
    assert "@contoso.com" not in repr(emu.telemetry)


def test_real_names_only_when_asked(start_emulator):
    emu = start_emulator("emulator/scenarios/noncompliant.json")
    run_timer(emu, TELEMETRY_INCLUDE_IDENTITIES="true")
    actions = only(events(emu, "MailboxAuditControlResult"), "mailbox-audit-actions")
    assert "bob@contoso.com" in actions["properties"]["findings_sample"]


def test_remediate_mode_still_checks_and_reports_every_control(start_emulator):
    emu = start_emulator("emulator/scenarios/noncompliant.json")
    assert run_timer(emu, AUDIT_MODE="remediate", MAILBOX_REMEDIATION_WRITES_PER_SECOND="50").returncode == 0
    [completed] = events(emu, "MailboxAuditCheckCompleted")
    assert completed["measurements"]["controls_checked"] == len(DEFAULT_CONTROLS)
    # Fixed unattended: org, audit log search, retention. Only checked (a person decides): bypass and actions.
    assert completed["properties"]["status"] == "NonCompliant"
    assert set(completed["properties"]["failed_controls"].split(",")) == {"audit-bypass", "mailbox-audit-actions"}
    fixed = {e["properties"]["control_id"] for e in events(emu, "MailboxAuditRemediation")}
    assert fixed == {"org-audit-enabled", "audit-log-search", "mailbox-audit-retention"}


def test_the_opt_in_retention_policy_control_reaches_telemetry_when_switched_on(start_emulator):
    emu = start_emulator(
        scenario(
            principal={
                "roles": ["Exchange.ManageAsApp"],
                "directory_roles": ["Global Reader", "Compliance Administrator"],
            }
        )
    )
    assert run_timer(emu, AUDIT_RETENTION_POLICY_CHECK="true").returncode == 0
    [completed] = events(emu, "MailboxAuditCheckCompleted")
    # Every control but the canary (no AUDIT_CANARY_MAILBOX here).
    assert completed["measurements"]["controls_checked"] == len(IMPLEMENTED_CONTROLS) - 1
    assert "audit-retention-policy" in completed["properties"]["failed_controls"]  # no policy: 180 < 365 days
    control = only(events(emu, "MailboxAuditControlResult"), "audit-retention-policy")
    assert control["properties"]["status"] == "NonCompliant"
    assert "CISA:MS.SECURITYSUITE.5.2v1" in control["properties"]["frameworks"]
    assert events(emu, "MailboxAuditRemediation") == []
