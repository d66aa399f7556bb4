"""audit-retention-policy end to end against the emulated Security & Compliance endpoint: the CLI's check and
remediate (dry run, apply, read back), the regional redirect and pinning, a missing role, a missing licence."""

from __future__ import annotations

import pytest
import requests

from emulator import Fault
from shared.config.settings import Settings
from shared.controls.audit_retention_policy import POLICY_NAME
from shared.exchange.auth import token_provider_for
from shared.exchange.client import ExchangeClient
from shared.exchange.errors import ExchangeAuthError, ExchangeProtocolError
from shared.runtime.service import open_compliance_client
from tests.integration.helpers import FAST
from tests.support.cli import cli_json, run_cli
from tests.support.tenant import scenario

ON = {"AUDIT_RETENTION_POLICY_CHECK": "true", "REMEDIATION_VERIFY_SECONDS": "0"}
ROLES = ["Exchange Administrator", "Compliance Administrator"]
CONTROL = "audit-retention-policy"


def tenant(policies=(), *, roles=ROLES, premium=True, **compliance):
    return scenario(
        principal={"roles": ["Exchange.ManageAsApp"], "directory_roles": list(roles)},
        compliance={"policies": list(policies), "audit_premium": premium, **compliance},
    )


def policy(name, priority, duration, **extra):
    return {"Name": name, "Priority": priority, "RetentionDuration": duration, **extra}


def run(emu, *args, env=None):
    result = run_cli(emu, *args, "--control", CONTROL, "--json", env={**ON, **(env or {})})
    return result, cli_json(result)


def test_overlapping_policies_with_priorities_decide_the_verdict(start_emulator):
    emu = start_emulator(
        tenant(
            [
                policy("Exchange 1y", 10, "TwelveMonths", RecordTypes=["ExchangeItem", "ExchangeAdmin"]),
                policy("All 10y", 20, "TenYears"),
                policy("Admin short", 5, "ThreeMonths", RecordTypes=["ExchangeAdmin"]),
            ]
        )
    )
    result, document = run(emu, "check")
    [control] = document["controls"]
    assert result.returncode == 1 and control["status"] == "NonCompliant"
    assert "90 days for ExchangeAdmin ('Admin short' ThreeMonths, priority 5)" in control["actual"]
    assert "3650 days for ExchangeItemGroup, ExchangeItemAggregated ('All 10y'" in control["actual"]
    # Read on the Security & Compliance listener only; nothing went to Exchange for it.
    assert [r.cmdlet for r in emu.compliance_invocations()] == ["Get-UnifiedAuditLogRetentionPolicy"]
    assert emu.invocations() == []
    [call] = emu.compliance_invocations()
    assert (
        call.headers["x-anchormailbox"]
        == "UPN:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com"
    )


def test_off_by_default_the_control_is_not_run_and_the_report_says_why(start_emulator):
    emu = start_emulator(tenant())
    result = run_cli(emu, "check", "--json")
    document = cli_json(result)
    assert CONTROL not in [c["id"] for c in document["controls"]]
    [skipped] = [item for item in document["not_run"] if item["id"] == CONTROL]  # (the canary, unset, is too)
    assert "AUDIT_RETENTION_POLICY_CHECK" in skipped["reason"]
    assert emu.compliance_invocations() == []
    text = run_cli(emu, "check").stdout
    assert f"- {CONTROL}: not run: switched off" in text
    # Asked for by name while off: no verdict at all, so the run proves nothing (Error), never Compliant.
    result, document = run(emu, "check", env={"AUDIT_RETENTION_POLICY_CHECK": "false"})
    assert document["controls"] == [] and document["status"] == "Error" and result.returncode == 2


def test_remediate_dry_run_then_apply_then_read_back(start_emulator):
    emu = start_emulator(tenant([policy("Short", 40, "ThreeMonths")]))
    _, dry = run(emu, "remediate", "--dry-run")
    [step] = dry["remediation"]
    assert step["outcome"] == "DryRun" and "-RetentionDuration TwelveMonths -Priority 39" in step["action"]
    assert [r.cmdlet for r in emu.compliance_invocations()] == ["Get-UnifiedAuditLogRetentionPolicy"]

    result, applied = run(emu, "remediate")
    [step] = applied["remediation"]
    assert step["outcome"] == "Applied", step["message"]
    assert result.returncode == 0 and applied["controls"][0]["status"] == "Compliant"
    with emu.lock:
        ours = next(p for p in emu.compliance["policies"] if p["Name"] == POLICY_NAME)
    assert (ours["Priority"], ours["RetentionDuration"], ours["UserIds"]) == (39, "TwelveMonths", [])
    assert ours["RecordTypes"] == ["ExchangeItem", "ExchangeItemGroup", "ExchangeItemAggregated", "ExchangeAdmin"]
    _, again = run(emu, "remediate")
    assert again["remediation"][0]["outcome"] == "AlreadyCompliant"


def test_a_missing_licence_is_reported_as_such_and_nothing_changes(start_emulator):
    emu = start_emulator(tenant(premium=False))
    result, document = run(emu, "remediate")
    [step] = document["remediation"]
    assert step["outcome"] == "Failed" and result.returncode == 1
    assert "Audit (Premium) licence required" in step["message"] and "E5" in step["message"]
    assert len(emu.compliance_invocations("New-UnifiedAuditLogRetentionPolicy")) == 1  # not retried
    with emu.lock:
        assert emu.compliance["policies"] == []


@pytest.mark.parametrize("roles", [["Exchange Administrator"], ["Global Reader"]])
def test_a_missing_role_is_an_error_that_names_it(start_emulator, roles):
    emu = start_emulator(tenant(roles=roles))
    result, document = run(emu, "check")
    [control] = document["controls"]
    assert result.returncode == 2 and control["status"] == "Error"
    assert "Compliance Data Administrator or Compliance Administrator" in control["message"]
    assert "grant-permissions --retention-policy" in control["message"]


def test_the_timer_never_fixes_it_unattended(start_emulator):
    from shared.controls.registry import UNATTENDED_CONTROLS

    assert CONTROL not in UNATTENDED_CONTROLS


# ---- the regional redirect -------------------------------------------------------------------------------------


def global_client(emu, monkeypatch, *, location=None):
    """The client as configured for the real global host, answered in process by the emulator."""
    env = emu.env("secret")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", env["REQUESTS_CA_BUNDLE"])
    settings = Settings.from_env({**env, "IPPS_ENDPOINT": "https://ps.compliance.protection.outlook.com"})
    emu.serve_host("ps.compliance.protection.outlook.com", "compliance")
    emu.serve_host("eur03b.ps.compliance.protection.outlook.com", "compliance")
    if location:
        with emu.lock:
            emu.compliance["redirect_location"] = location
    client = open_compliance_client(settings, None)
    client._session = emu.mount(requests.Session())
    return client


def test_the_first_call_is_redirected_to_the_regional_host_which_is_pinned(start_emulator, monkeypatch):
    emu = start_emulator(tenant([policy("A", 1, "TwelveMonths")]))
    client = global_client(emu, monkeypatch)
    assert client.invoke("Get-UnifiedAuditLogRetentionPolicy").rows[0]["Name"] == "A"
    client.invoke("Get-UnifiedAuditLogRetentionPolicy")
    hosts = [r.host for r in emu.compliance_invocations()]
    assert hosts == ["ps.compliance.protection.outlook.com"] + ["eur03b.ps.compliance.protection.outlook.com"] * 2
    assert client.pinned_host == "eur03b.ps.compliance.protection.outlook.com"


def test_a_location_on_the_admin_host_is_mapped_to_its_region_on_the_compliance_host(start_emulator, monkeypatch):
    emu = start_emulator(tenant())
    client = global_client(emu, monkeypatch, location="https://eur03b.admin.protection.outlook.com:446")
    client.invoke("Get-UnifiedAuditLogRetentionPolicy")
    assert client.pinned_host == "eur03b.ps.compliance.protection.outlook.com"
    assert emu.foreign_requests == []


def test_a_redirect_elsewhere_is_refused_and_names_ipps_endpoint(start_emulator, monkeypatch):
    emu = start_emulator(tenant())
    client = global_client(emu, monkeypatch, location="https://eur03b.evil.example")
    with pytest.raises(Exception, match="IPPS_ENDPOINT"):
        client.invoke("Get-UnifiedAuditLogRetentionPolicy")
    assert [r.host for r in emu.compliance_invocations()] == ["ps.compliance.protection.outlook.com"]


def test_the_compliance_client_refuses_exchange_cmdlets(start_emulator, monkeypatch):
    # Get-AdminAuditLogConfig on IPPS always says False (activity-feed.md §6.6): never sent there.
    emu = start_emulator(tenant())
    client = global_client(emu, monkeypatch)
    with pytest.raises(ExchangeProtocolError, match="does not send Get-AdminAuditLogConfig"):
        client.invoke("Get-AdminAuditLogConfig")
    assert emu.compliance_invocations() == []


def test_a_server_error_is_retried_as_on_exchange(start_emulator):
    emu = start_emulator(tenant())
    emu.add_fault(Fault("status", listener="compliance", status=503, times=1))
    _, document = run(emu, "check")
    assert document["controls"][0]["status"] == "NonCompliant"  # no policy: 180 days < 365
    assert len(emu.compliance_invocations()) == 2


def test_a_token_for_the_exchange_audience_is_refused_there(start_emulator, monkeypatch):
    emu = start_emulator(tenant())
    env = emu.env("secret")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", env["REQUESTS_CA_BUNDLE"])
    settings = Settings.from_env(env)
    client = ExchangeClient(emu.compliance_url, settings.tenant_id, token_provider_for(settings), policy=FAST)
    with pytest.raises(ExchangeAuthError):
        client.invoke("Get-UnifiedAuditLogRetentionPolicy")
