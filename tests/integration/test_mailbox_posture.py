"""The four posture controls beyond the org switch, end to end against the emulated tenant."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from shared.controls.audit_actions import required_actions
from tests.support.cli import cli_json, run_cli
from tests.support.tenant import TENANT_ID, scenario

CIS = {f"Audit{logon}": sorted(actions) for logon, actions in required_actions("cis", premium=True).items()}
CIS_V4_E3 = {f"Audit{logon}": sorted(actions) for logon, actions in required_actions("cis-v4", premium=False).items()}
GOOD = {**CIS, "AuditLogAgeLimit": "180.00:00:00"}
FAST = {"MAILBOX_REMEDIATION_WRITES_PER_SECOND": "50"}


def check(emu, control, *extra, env=None):
    result = run_cli(emu, "check", "--control", control, "--json", *extra, env={**FAST, **(env or {})})
    document = cli_json(result)
    [found] = document["controls"]
    return result.returncode, found


def mailbox(name, kind="UserMailbox", **fields):
    return {"Name": name, "UserPrincipalName": f"{name}@contoso.com", "RecipientTypeDetails": kind, **GOOD, **fields}


# -- audit-log-search ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "code", "status"), [(True, 0, "Compliant"), (False, 1, "NonCompliant")])
def test_audit_log_search_is_read_on_the_exchange_endpoint(start_emulator, value, code, status):
    emu = start_emulator(scenario(admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": value}))
    assert check(emu, "audit-log-search")[0] == code
    assert check(emu, "audit-log-search")[1]["status"] == status
    assert emu.invocations("Get-AdminAuditLogConfig")[0].path.startswith(f"/adminapi/beta/{TENANT_ID}/")


def test_audit_log_search_fix_uses_the_audit_log_anchor_and_customises_a_dehydrated_tenant(start_emulator):
    emu = start_emulator(
        scenario(
            organization_config={"IsDehydrated": True},
            admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": False},
            customisation_delay_seconds=600,
        )
    )
    result = run_cli(emu, "remediate", "--control", "audit-log-search", "--json")
    assert result.returncode == 1, result.stdout
    assert cli_json(result)["remediation"][0]["outcome"] == "Deferred"
    assert [c.cmdlet for c in emu.writes()] == ["Enable-OrganizationCustomization"]
    with emu.lock:
        emu.tenant.customisation_pending_until = 0.0  # an hour later
    result = run_cli(emu, "remediate", "--control", "audit-log-search", "--json")
    assert result.returncode == 0, result.stdout
    assert [c.cmdlet for c in emu.writes()] == ["Enable-OrganizationCustomization", "Set-AdminAuditLogConfig"]
    anchor = emu.invocations("Set-AdminAuditLogConfig")[0].headers["x-anchormailbox"]
    assert anchor == f"APP:SystemMailbox{{8cc370d3-822a-4ab8-a926-bb94bd0641a9}}@{TENANT_ID}"
    assert emu.tenant.admin_audit_log_config["UnifiedAuditLogIngestionEnabled"] is True


# -- audit-bypass --------------------------------------------------------------------------------------------------


def exceptions_file(tmp_path, entries):
    path = tmp_path / "exceptions.json"
    path.write_text(json.dumps(entries))
    return {"AUDIT_EXCEPTIONS_FILE": str(path)}


def exception(identity, expires=None, **overrides):
    entry = {
        "control": "audit-bypass",
        "identity": identity,
        "reason": "backup agent, vendor requirement",
        "approved_by": "CISO, change 4711",
        "expires": expires or (date.today() + timedelta(days=30)).isoformat(),
    }
    return {**entry, **overrides}


BYPASS = scenario(
    bypass_associations=[
        {"Name": "svc-backup", "AuditBypassEnabled": True},
        {"Name": "svc-archive", "AuditBypassEnabled": False},
    ]
)


def test_an_enabled_bypass_without_exception_is_a_finding(start_emulator):
    code, control = check(start_emulator(BYPASS), "audit-bypass")
    assert (code, control["status"]) == (1, "NonCompliant")
    assert [f["identity"] for f in control["details"]["findings"]] == ["svc-backup"]
    assert control["details"]["associations_total"] == 2


def test_a_valid_written_exception_excuses_the_bypass_and_is_reported(start_emulator, tmp_path):
    code, control = check(
        start_emulator(BYPASS), "audit-bypass", env=exceptions_file(tmp_path, [exception("SVC-BACKUP")])
    )
    assert (code, control["status"]) == (0, "Compliant")
    [used] = control["details"]["exceptions_used"]
    assert used["approved_by"] == "CISO, change 4711"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (exception("svc-backup", expires="2020-01-01"), "expired"),
        (exception("svc-backup", approved_by=""), "approved_by"),
        (exception("svc-backup", expires="next year"), "not a date"),
        (exception("svc-backup", control="org-audit-enabled"), "does not take exceptions"),
    ],
)
def test_expired_or_incomplete_exceptions_do_not_count_and_say_why(start_emulator, tmp_path, entry, problem):
    code, control = check(start_emulator(BYPASS), "audit-bypass", env=exceptions_file(tmp_path, [entry]))
    assert (code, control["status"]) == (1, "NonCompliant")
    [rejected] = control["details"]["exceptions_rejected"]
    assert problem in rejected["problem"]


@pytest.mark.parametrize("content", ["{not json", '{"control": "audit-bypass"}', "[1, 2]"])
def test_a_malformed_exceptions_file_is_a_configuration_error(start_emulator, tmp_path, content):
    path = tmp_path / "exceptions.json"
    path.write_text(content)
    emu = start_emulator(BYPASS)
    result = run_cli(emu, "check", "--json", env={"AUDIT_EXCEPTIONS_FILE": str(path)})
    assert result.returncode == 2
    assert "AUDIT_EXCEPTIONS_FILE" in cli_json(result)["controls"][0]["message"]
    assert emu.invocations() == []


def test_bypass_entries_past_the_first_thousand_are_found(start_emulator):
    emu = start_emulator(scenario(generate_bypass_associations={"count": 2500, "enabled_every": 1201}))
    code, control = check(emu, "audit-bypass")
    assert code == 1
    assert control["details"]["associations_total"] == 2500
    assert sorted(f["identity"] for f in control["details"]["findings"]) == [
        "bypass-000000",
        "bypass-001201",
        "bypass-002402",
    ]
    assert len(emu.invocations("Get-MailboxAuditBypassAssociation")) == 3


def test_bypass_remediation_spares_excepted_accounts(start_emulator, tmp_path):
    emu = start_emulator(
        scenario(
            bypass_associations=[
                {"Name": "svc-backup", "AuditBypassEnabled": True},
                {"Name": "svc-crm", "AuditBypassEnabled": True},
            ]
        )
    )
    result = run_cli(
        emu,
        "remediate",
        "--control",
        "audit-bypass",
        "--json",
        env={**FAST, **exceptions_file(tmp_path, [exception("svc-backup")])},
    )
    assert result.returncode == 0, result.stdout
    state = {b["Name"]: b["AuditBypassEnabled"] for b in emu.tenant.bypass_associations}
    assert state == {"svc-backup": True, "svc-crm": False}


# -- mailbox-audit-actions -----------------------------------------------------------------------------------------


def test_only_user_mailboxes_are_judged_and_resource_mailboxes_ignored(start_emulator):
    emu = start_emulator(
        scenario(
            mailboxes=[
                mailbox("ann"),
                mailbox("shared1", "SharedMailbox", AuditOwner=["Update"]),
                mailbox("room1", "RoomMailbox", AuditOwner=[], AuditLogAgeLimit="00:00:00"),
            ]
        )
    )
    code, control = check(emu, "mailbox-audit-actions")
    assert (code, control["status"]) == (0, "Compliant")
    assert control["details"]["mailboxes_scanned"] == 1
    code, control = check(emu, "mailbox-audit-actions", env={"MAILBOX_AUDIT_INCLUDE_SHARED": "true"})
    assert code == 0  # shared mailboxes are report-only
    [finding] = control["details"]["findings"]
    assert (finding["upn"], finding["report_only"]) == ("shared1@contoso.com", True)


def test_missing_actions_are_listed_per_logon_type_and_frozen_lists_reported(start_emulator):
    emu = start_emulator(
        scenario(
            mailboxes=[
                mailbox("ann"),
                mailbox(
                    "bob",
                    AuditOwner=sorted(set(CIS["AuditOwner"]) - {"MailboxLogin", "Move"}),
                    DefaultAuditSet=["Admin", "Delegate"],
                ),
            ]
        )
    )
    code, control = check(emu, "mailbox-audit-actions")
    assert (code, control["status"]) == (1, "NonCompliant")
    [finding] = control["details"]["findings"]
    assert finding["upn"] == "bob@contoso.com"
    assert finding["missing"] == {"Owner": ["MailboxLogin", "Move"]}
    assert finding["frozen"] == ["Owner"]
    assert control["details"]["mailboxes_noncompliant"] == 1


def test_cis_v4_picks_e3_or_e5_lists_by_the_mailbox_licence(start_emulator):
    emu = start_emulator(
        scenario(
            mailboxes=[
                mailbox("e3user", **CIS_V4_E3, PersistedCapabilities=[]),
                mailbox("e5user", **CIS_V4_E3, PersistedCapabilities=["M365Auditing"]),
            ]
        )
    )
    _, v4 = check(emu, "mailbox-audit-actions", env={"MAILBOX_AUDIT_BASELINE": "cis-v4"})
    assert [f["upn"] for f in v4["details"]["findings"]] == ["e5user@contoso.com"]
    assert "MailItemsAccessed" in v4["details"]["findings"][0]["missing"]["Owner"]
    _, cis = check(emu, "mailbox-audit-actions")
    assert sorted(f["upn"] for f in cis["details"]["findings"]) == ["e3user@contoso.com", "e5user@contoso.com"]
    assert v4["details"]["baseline"] == "cis-v4" and cis["details"]["baseline"] == "cis"


def test_microsoft_default_baseline_judges_default_audit_set_only(start_emulator):
    emu = start_emulator(
        scenario(mailboxes=[mailbox("managed", AuditOwner=["Update"]), mailbox("frozen", DefaultAuditSet=["Admin"])])
    )
    _, control = check(emu, "mailbox-audit-actions", env={"MAILBOX_AUDIT_BASELINE": "microsoft-default"})
    [finding] = control["details"]["findings"]
    assert finding["upn"] == "frozen@contoso.com" and finding["frozen"] == ["Delegate", "Owner"]


def test_mailboxes_past_the_first_thousand_are_judged(start_emulator):
    template = {**GOOD, "Name": "user{i:05d}"}
    emu = start_emulator(
        scenario(
            generate_mailboxes={
                "count": 2300,
                "template": template,
                "variants": [
                    {"every": 2300, "offset": 2100, "set": {"AuditAdmin": ["Update"]}},
                    {"every": 2300, "offset": 1500, "set": {"AuditLogAgeLimit": "00:00:00"}},
                ],
            }
        )
    )
    _, actions = check(emu, "mailbox-audit-actions")
    assert [f["upn"].split("@")[0] for f in actions["details"]["findings"]] == ["user02100"]
    assert actions["details"]["mailboxes_scanned"] == 2300
    _, retention = check(emu, "mailbox-audit-retention")
    [finding] = retention["details"]["findings"]
    assert finding["upn"].startswith("user01500") and finding["tampering"] is True


def test_unreadable_audit_properties_make_the_control_an_error(start_emulator):
    emu = start_emulator(scenario(mailboxes=[mailbox("ann")]))
    with emu.lock:
        emu.tenant.mailboxes[0]["AuditOwner"] = "not-a-list"
    code, control = check(emu, "mailbox-audit-actions")
    assert (code, control["status"]) == (2, "Error")


# -- mailbox-audit-retention ---------------------------------------------------------------------------------------


def test_retention_below_the_minimum_and_zero_are_findings_for_users_and_shared(start_emulator):
    emu = start_emulator(
        scenario(
            mailboxes=[
                mailbox("ann"),
                mailbox("bob", AuditLogAgeLimit="30.00:00:00"),
                mailbox("helpdesk", "SharedMailbox", AuditLogAgeLimit="00:00:00"),
            ]
        )
    )
    code, control = check(emu, "mailbox-audit-retention")
    assert code == 1
    findings = {f["upn"]: f for f in control["details"]["findings"]}
    assert set(findings) == {"bob@contoso.com", "helpdesk@contoso.com"}
    assert findings["helpdesk@contoso.com"]["tampering"] is True
    assert "anti-forensics" in control["message"]
    code, control = check(emu, "mailbox-audit-retention", env={"MAILBOX_AUDIT_MIN_RETENTION_DAYS": "180"})
    assert len(control["details"]["findings"]) == 2  # ann has exactly 180 days: not below


# -- remediation of everything -------------------------------------------------------------------------------------


def test_remediating_everything_leaves_a_clean_recheck(start_emulator):
    emu = start_emulator("emulator/scenarios/noncompliant.json")
    result = run_cli(emu, "remediate", "--json", env=FAST)
    assert result.returncode == 0, result.stdout
    assert {step["outcome"] for step in cli_json(result)["remediation"]} == {"Applied"}
    recheck = run_cli(emu, "check", "--json")
    assert recheck.returncode == 0
    assert {c["status"] for c in cli_json(recheck)["controls"]} == {"Compliant"}
    again = run_cli(emu, "remediate", "--json", env=FAST)
    assert {step["outcome"] for step in cli_json(again)["remediation"]} == {"AlreadyCompliant"}


def test_a_licence_error_on_one_mailbox_does_not_stop_the_others(start_emulator):
    lacking = {**GOOD, "AuditOwner": sorted(set(CIS["AuditOwner"]) - {"MailItemsAccessed", "Move"})}
    emu = start_emulator(
        scenario(
            licence_gate=True,
            mailboxes=[
                mailbox("e3user", **lacking, PersistedCapabilities=[]),
                mailbox("e5user", **lacking, PersistedCapabilities=["M365Auditing"]),
            ],
        )
    )
    result = run_cli(emu, "remediate", "--control", "mailbox-audit-actions", "--json", env=FAST)
    assert result.returncode == 1
    [step] = cli_json(result)["remediation"]
    assert step["outcome"] == "Failed"
    assert step["details"]["mailboxes_fixed"] == 1
    [failed] = step["details"]["mailboxes_failed"]
    assert failed["reason"] == "licence"
    e5 = next(m for m in emu.tenant.mailboxes if m["Name"] == "e5user")
    assert {"MailItemsAccessed", "Move"} <= set(e5["AuditOwner"])
    assert len(emu.invocations("Set-Mailbox")) == 2  # the licence error was not retried


def test_actions_remediation_adds_only_what_is_missing(start_emulator):
    emu = start_emulator(scenario(mailboxes=[mailbox("bob", AuditOwner=["Update", "Custom1"])]))
    run_cli(emu, "remediate", "--control", "mailbox-audit-actions", env=FAST)
    [write] = emu.invocations("Set-Mailbox")
    parameters = write.body["CmdletInput"]["Parameters"]
    assert set(parameters) == {"Identity", "AuditOwner"}
    assert parameters["AuditOwner"]["@odata.type"] == "#Exchange.GenericHashTable"
    assert "Update" not in parameters["AuditOwner"]["Add"]
    assert "Custom1" in emu.tenant.mailboxes[0]["AuditOwner"]  # extra actions are kept
