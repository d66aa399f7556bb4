"""`python -m shared watch` against the emulated tenant: the Management Activity API serves the scenario's records and
the ExchangeAdmin records of the emulated Exchange's own writes, real tokens, real TLS, a real SQLite state file.

The product runs as its managed identity; the "attacker" writes through the emulated Exchange with the app
registration's secret, another app id, so its writes are not the product's own.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from emulator import Fault
from tests.emulator.support import Exo
from tests.functions.harness import HERMETIC_TELEMETRY, events, exceptions
from tests.support.cli import cli_json, run_cli, spawn_cli
from tests.support.tenant import REPO, TENANT_ID, scenario

FIXTURES = REPO.parent / "shared" / "fixtures"
AS_PRODUCT = "managed_identity"
ALERT_FIELDS = {
    "id",
    "detection",
    "severity",
    "time",
    "actor",
    "mailbox",
    "operation",
    "client_ip",
    "country",
    "record_ids",
    "message",
}
REPORT_FIELDS = {
    "tenant_id",
    "status",
    "records_processed",
    "records_duplicate",
    "records_unparsed",
    "content_blobs",
    "alerts",
    "rechecks",
    "gaps",
    "feed_lag_minutes",
    "error",
}
OBJECT_PREFIX = "EURPR02A001.prod.outlook.com/Microsoft Exchange Hosted Organizations/contoso.onmicrosoft.com"
ANN = {"Name": "ann", "UserPrincipalName": "ann@contoso.com"}


def tenant(**overrides: Any) -> dict[str, Any]:
    overrides.setdefault("mailboxes", [ANN])
    return scenario(**overrides)


def admin_record(minutes_ago: int, operation: str, parameters: dict[str, str], *, name: str, **fields: Any) -> dict:
    """An ExchangeAdmin record by a person, with the emulator's time templates."""
    return {
        "CreationTime": f"{{{{now-{minutes_ago}m}}}}",
        "Id": f"{{{{id:{name}}}}}",
        "RecordType": 1,
        "Operation": operation,
        "OrganizationId": "{{tenant}}",
        "ResultStatus": "True",
        "UserType": 2,
        "UserId": "mallory@contoso.com",
        "UserKey": "10032001AAAA0001",
        "Workload": "Exchange",
        "ClientIP": "[81.2.69.142]:51044",
        "ObjectId": f"{OBJECT_PREFIX}/{name}",
        "Parameters": [{"Name": key, "Value": value} for key, value in parameters.items()],
        **fields,
    }


def watch(emu: Any, state: Path, *args: str, **env: str) -> Any:
    return run_cli(emu, "watch", "--json", "--state", str(state), *args, auth_mode=AS_PRODUCT, env=env)


def settle() -> None:
    """Listings take whole seconds (`endTime` has no fraction): a blob of this second is listed from the next."""
    time.sleep(1.1)


def test_a_tampering_write_is_caught_in_one_pass_rechecked_and_reported_once(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state = tmp_path / "watch.sqlite3"
    assert watch(emu, state).returncode == 0  # first pass: subscriptions started, nothing yet
    Exo(emu).ok("Set-OrganizationConfig", {"AuditDisabled": True})
    settle()

    first = watch(emu, state)
    assert first.returncode == 1, first.stderr
    document = cli_json(first)
    assert set(document) == REPORT_FIELDS
    assert (document["status"], document["tenant_id"], document["error"]) == ("Alerts", TENANT_ID, None)
    [alert] = document["alerts"]
    assert set(alert) == ALERT_FIELDS
    assert (alert["detection"], alert["severity"], alert["operation"]) == (
        "audit-tampering",
        "high",
        "Set-OrganizationConfig",
    )
    assert alert["actor"] == emu.client_id  # the app that wrote it, not the product
    assert "AuditDisabled True" in alert["message"] and "this product" not in alert["message"]
    [record] = emu.activity.admin_records
    assert alert["record_ids"] == [record["Id"]]
    # Re-checked at once through the engine; AUDIT_MODE=report: nothing written, the finding stands.
    assert document["rechecks"] == [{"id": "org-audit-enabled", "status": "NonCompliant"}]
    assert emu.tenant.organization_config["AuditDisabled"] is True
    assert emu.invocations("Set-OrganizationConfig") == [emu.invocations("Set-OrganizationConfig")[0]]  # the attack

    settle()
    again = watch(emu, state)
    assert again.returncode == 0, again.stderr
    assert cli_json(again)["alerts"] == [] and cli_json(again)["rechecks"] == []


def test_with_audit_mode_remediate_auditing_is_back_on_within_the_pass(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state = tmp_path / "watch.sqlite3"
    watch(emu, state)
    Exo(emu).ok("Set-OrganizationConfig", {"AuditDisabled": True})
    settle()
    result = watch(emu, state, AUDIT_MODE="remediate")
    assert result.returncode == 1, result.stderr
    document = cli_json(result)
    assert [a["detection"] for a in document["alerts"]] == ["audit-tampering"]
    assert document["rechecks"] == [{"id": "org-audit-enabled", "status": "Compliant"}]
    assert emu.tenant.organization_config["AuditDisabled"] is False
    fix = emu.invocations("Set-OrganizationConfig")[-1]
    assert fix.body["CmdletInput"]["Parameters"] == {"AuditDisabled": False}

    settle()  # the fix's own ExchangeAdmin record arrives: the product's write, restoring auditing, is no alert
    after = watch(emu, state, AUDIT_MODE="remediate")
    assert after.returncode == 0, after.stderr
    assert cli_json(after)["records_processed"] == 1 and cli_json(after)["alerts"] == []


@pytest.mark.parametrize(
    ("cmdlet", "parameters", "control", "fixed"),
    [
        ("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": False}, "audit-log-search", True),
        (
            "Set-Mailbox",
            {"Identity": "ann@contoso.com", "AuditLogAgeLimit": "7.00:00:00"},
            "mailbox-audit-retention",
            True,
        ),
        # Not safe unattended (a person decides): re-checked, never fixed by the watch.
        (
            "Set-MailboxAuditBypassAssociation",
            {"Identity": "svc-backup", "AuditBypassEnabled": True},
            "audit-bypass",
            False,
        ),
    ],
)
def test_each_tampering_write_rechecks_its_own_control(start_emulator, tmp_path, cmdlet, parameters, control, fixed):
    emu = start_emulator(tenant(bypass_associations=[{"Name": "svc-backup", "AuditBypassEnabled": False}]))
    state = tmp_path / "watch.sqlite3"
    watch(emu, state)
    Exo(emu).ok(cmdlet, parameters)
    settle()
    document = cli_json(watch(emu, state, AUDIT_MODE="remediate"))
    assert [a["operation"] for a in document["alerts"]] == [cmdlet]
    assert document["rechecks"] == [{"id": control, "status": "Compliant" if fixed else "NonCompliant"}]
    writes = [call.cmdlet for call in emu.invocations() if call.cmdlet.startswith("Set-")]
    assert writes == ([cmdlet, cmdlet] if fixed else [cmdlet])


@pytest.mark.e2e
def test_a_restart_with_the_same_state_loses_nothing_and_doubles_nothing(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state = tmp_path / "watch.sqlite3"
    args = ("watch", "--json", "--state", str(state))
    assert spawn_cli(emu, *args, auth_mode=AS_PRODUCT).returncode == 0
    Exo(emu).ok("Set-OrganizationConfig", {"AuditDisabled": True})
    settle()
    first = spawn_cli(emu, *args, auth_mode=AS_PRODUCT)
    assert first.returncode == 1, first.stderr
    [caught] = cli_json(first)["alerts"]

    # Meanwhile: the same record again in a new blob (the feed re-delivers by design) and one new write.
    [record] = emu.activity.admin_records
    emu.activity.add_blob("Audit.Exchange", [record])
    Exo(emu).ok("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": False})
    settle()
    second = spawn_cli(emu, *args, auth_mode=AS_PRODUCT)  # a new process on the same state file
    assert second.returncode == 1, second.stderr
    document = cli_json(second)
    assert [a["operation"] for a in document["alerts"]] == ["Set-AdminAuditLogConfig"]
    assert caught["id"] not in {a["id"] for a in document["alerts"]}
    assert (document["records_processed"], document["records_duplicate"], document["content_blobs"]) == (1, 1, 2)

    settle()
    third = spawn_cli(emu, *args, auth_mode=AS_PRODUCT)
    assert third.returncode == 0 and cli_json(third)["alerts"] == []


def fixture_records() -> list[dict[str, Any]]:
    """The shared fixtures' service noise (relative time templates, expanded by the emulator)."""
    found = []
    for path in sorted((FIXTURES / "watch").glob("*.json")):
        found.extend(json.loads(path.read_text(encoding="utf-8")))
    return found


def test_the_fixtures_service_noise_is_clear(start_emulator, tmp_path):
    records = fixture_records()
    assert len(records) >= 5
    emu = start_emulator(tenant(audit_records=records))
    result = watch(emu, tmp_path / "watch.sqlite3")
    assert result.returncode == 0, result.stdout
    document = cli_json(result)
    assert document["status"] == "Clear" and document["alerts"] == [] and document["error"] is None
    assert document["records_processed"] == len({record["Id"].lower() for record in records})
    assert document["records_unparsed"] == 0 and document["content_blobs"] >= 1
    assert 0 <= document["feed_lag_minutes"] < 60


def test_a_feed_outage_is_exit_2_and_keeps_the_progress_made(start_emulator, tmp_path):
    grant = {"Identity": "ann@contoso.com", "User": "mallory@contoso.com", "AccessRights": "FullAccess"}
    records = [
        admin_record(50, "Add-MailboxPermission", grant, name="grant-1", _blob="first"),
        admin_record(20, "Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": "False"}, name="ual-off"),
    ]
    emu = start_emulator(tenant(audit_records=records))
    state = tmp_path / "watch.sqlite3"
    emu.add_fault(Fault("status", listener="manage", cmdlet="blob", status=503, after=1, times=-1))
    outage = watch(emu, state)
    assert outage.returncode == 2, outage.stdout
    document = cli_json(outage)
    assert document["status"] == "Error" and "retried by the next pass" in document["error"]
    assert [a["detection"] for a in document["alerts"]] == ["mailbox-permission"]  # read before the outage: kept
    assert document["records_processed"] == 1 and document["content_blobs"] == 1

    emu.clear_faults()
    back = watch(emu, state)
    assert back.returncode == 1, back.stdout
    document = cli_json(back)
    assert [a["detection"] for a in document["alerts"]] == ["audit-tampering"]  # nothing lost, nothing twice
    assert document["records_processed"] == 1 and document["error"] is None


def test_a_listing_outage_is_exit_2_naming_it(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    emu.add_fault(Fault("status", listener="manage", cmdlet="content", status=500, times=-1))
    result = watch(emu, tmp_path / "watch.sqlite3")
    assert result.returncode == 2
    document = cli_json(result)
    assert document["status"] == "Error" and "listing" in document["error"] and "AF50000" in document["error"]


def forwarding(to: str) -> dict[str, Any]:
    return admin_record(10, "Set-Mailbox", {"Identity": "ann@contoso.com", "ForwardingSmtpAddress": to}, name=to)


def test_forwarding_is_judged_by_the_tenants_accepted_domains(start_emulator, tmp_path):
    emu = start_emulator(
        tenant(
            accepted_domains=["contoso.onmicrosoft.com", "contoso.com"],
            audit_records=[forwarding("smtp:bob@contoso.com"), forwarding("smtp:drop@evil.example")],
        )
    )
    document = cli_json(watch(emu, tmp_path / "watch.sqlite3"))
    [alert] = document["alerts"]
    assert alert["detection"] == "mail-forwarding" and "drop@evil.example" in alert["message"]
    assert "not known" not in alert["message"]
    assert [call.cmdlet for call in emu.invocations()] == ["Get-AcceptedDomain"]  # once per pass, read only


def test_without_accepted_domains_forwarding_judges_every_domain_external_and_says_so(start_emulator, tmp_path):
    emu = start_emulator(tenant(audit_records=[forwarding("smtp:bob@contoso.com")]))
    emu.add_fault(Fault("status", cmdlet="Get-AcceptedDomain", status=403, times=-1))
    result = run_cli(emu, "watch", "--state", str(tmp_path / "w.sqlite3"), auth_mode=AS_PRODUCT)
    assert result.returncode == 1, result.stdout
    assert "accepted domains could not be read" in result.stdout
    assert "mail-forwarding" in result.stdout and "not known" in result.stdout


def test_text_output_reads_as_a_report(start_emulator, tmp_path):
    emu = start_emulator(tenant(audit_records=[forwarding("smtp:drop@evil.example")]))
    result = run_cli(emu, "watch", "--state", str(tmp_path / "w.sqlite3"), auth_mode=AS_PRODUCT)
    assert result.returncode == 1
    assert "New alerts (1):" in result.stdout and "[medium] mail-forwarding" in result.stdout
    assert "Overall: Alerts (exit code 1)" in result.stdout


def test_a_bad_setting_is_an_error_document_naming_it(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    result = watch(emu, tmp_path / "w.sqlite3", WATCH_CONTENT_TYPES="Audit.Everything")
    assert result.returncode == 2
    document = cli_json(result)
    assert set(document) == REPORT_FIELDS
    assert document["status"] == "Error" and "WATCH_CONTENT_TYPES" in document["error"]
    assert [r for r in emu.requests if r.listener == "manage"] == []


def test_an_unusable_state_file_is_exit_2(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state = tmp_path / "not-sqlite"
    state.write_text("this is not a database" * 100)
    result = watch(emu, state)
    assert result.returncode == 2
    assert "not a usable SQLite database" in cli_json(result)["error"]


@pytest.mark.e2e
def test_the_watch_events_reach_application_insights(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state = tmp_path / "watch.sqlite3"
    env = {**HERMETIC_TELEMETRY, "TELEMETRY_STORAGE_DIRECTORY": tempfile.mkdtemp(prefix="mag-telemetry-")}
    args = ("watch", "--json", "--state", str(state))
    spawn_cli(emu, *args, auth_mode=AS_PRODUCT, env=env, keep_telemetry=True)
    Exo(emu).ok("Set-OrganizationConfig", {"AuditDisabled": True})
    settle()
    result = spawn_cli(emu, *args, auth_mode=AS_PRODUCT, env=env, keep_telemetry=True)
    assert result.returncode == 1, result.stderr
    [caught] = cli_json(result)["alerts"]

    [alert] = events(emu, "MailboxActivityAlert")
    props = alert["properties"]
    assert set(props) >= {
        "run_id",
        "tenant_id",
        "alert_id",
        "detection",
        "severity",
        "actor",
        "mailbox",
        "operation",
        "country",
        "record_time",
        "trigger",
    }
    assert (props["alert_id"], props["detection"], props["severity"], props["trigger"]) == (
        caught["id"],
        "audit-tampering",
        "high",
        "cli",
    )
    assert props["actor"].startswith("mbx-") and emu.client_id not in repr(emu.telemetry)  # pseudonymised
    completed = events(emu, "MailboxActivityWatchCompleted")
    assert len(completed) == 2
    last = next(event for event in completed if event["properties"]["run_id"] == props["run_id"])
    assert set(last["properties"]) >= {"run_id", "tenant_id", "status", "trigger", "tool_version", "error"}
    assert (last["properties"]["status"], last["properties"]["error"]) == ("Alerts", "")
    measurements = last["measurements"]
    assert set(measurements) >= {
        "records_processed",
        "records_duplicate",
        "records_unparsed",
        "content_blobs",
        "failed_blobs",
        "alerts",
        "gaps",
        "feed_lag_minutes",
        "duration_seconds",
    }
    assert (measurements["records_processed"], measurements["alerts"], measurements["failed_blobs"]) == (1, 1, 0)
    # The re-check is a check run of its own, with the usual events.
    [check] = events(emu, "MailboxAuditCheckCompleted")
    assert (check["properties"]["status"], check["properties"]["failed_controls"]) == (
        "NonCompliant",
        "org-audit-enabled",
    )
    assert exceptions(emu) == []


@pytest.mark.e2e
def test_a_failed_watch_sends_an_exception_with_its_run_id(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state = tmp_path / "not-sqlite"
    state.write_text("garbage" * 100)
    env = {**HERMETIC_TELEMETRY, "TELEMETRY_STORAGE_DIRECTORY": tempfile.mkdtemp(prefix="mag-telemetry-")}
    result = spawn_cli(emu, "watch", "--state", str(state), auth_mode=AS_PRODUCT, env=env, keep_telemetry=True)
    assert result.returncode == 2
    [completed] = events(emu, "MailboxActivityWatchCompleted")
    assert completed["properties"]["status"] == "Error" and "SQLite" in completed["properties"]["error"]
    [exception] = exceptions(emu)
    assert exception["properties"]["run_id"] == completed["properties"]["run_id"]


def test_the_evidence_report_shows_the_watchs_health_and_the_alert_it_raised(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state, out = tmp_path / "watch.sqlite3", tmp_path / "evidence.json"
    watch(emu, state)
    Exo(emu).ok("Set-OrganizationConfig", {"AuditDisabled": True})
    settle()
    [raised] = cli_json(watch(emu, state))["alerts"]

    result = run_cli(emu, "report", "--format", "json", "--out", str(out), "--state", str(state), auth_mode=AS_PRODUCT)
    assert result.returncode == 1, result.stderr  # the check's verdict: org auditing is off
    activity = json.loads(out.read_text(encoding="utf-8"))["activity"]
    assert activity["source"] == str(state)
    assert (activity["health"], activity["health_reasons"]) == ("OK", [])
    assert (activity["last_pass"]["status"], activity["last_pass"]["alerts"]) == ("Alerts", 1)
    [reported] = activity["alerts"]
    assert {key: reported[key] for key in raised} == raised  # what the watch printed, kept for the evidence
    assert [feed["content_type"] for feed in activity["feeds"]] == ["Audit.Exchange", "Audit.AzureActiveDirectory"]
    assert all(feed["listed_until"] for feed in activity["feeds"])


def test_a_report_without_a_watch_state_has_no_activity_section_and_creates_none(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state, out = tmp_path / "never-watched.sqlite3", tmp_path / "evidence.json"
    result = run_cli(emu, "report", "--format", "json", "--out", str(out), "--state", str(state))
    assert result.returncode == 1, result.stderr  # the check's verdict (the scenario's mailbox lacks actions)
    assert "activity" not in json.loads(out.read_text(encoding="utf-8"))
    assert not state.exists()
