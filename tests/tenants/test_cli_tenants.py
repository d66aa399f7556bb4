"""`--tenant ID` and `check --all-tenants` against the emulated tenant, with real token libraries: each tenant
runs with its own settings; one tenant's bad credentials or bad register entry never change another's verdict."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import cli_json, run_cli, spawn_cli
from tests.support.tenant import TENANT_ID, scenario

UNKNOWN = "99999999-9999-9999-9999-999999999999"  # not a tenant of the emulator: its token is refused
RETENTION_90 = scenario(
    mailboxes=[
        {
            "Name": "alice",
            "UserPrincipalName": "alice@contoso.com",
            "RecipientTypeDetails": "UserMailbox",
            "AuditLogAgeLimit": "90.00:00:00",
        }
    ]
)
RETENTION = ("--control", "mailbox-audit-retention")


def register(tmp_path, *entries):
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(list(entries)))
    return {"AUDIT_TENANTS_FILE": str(path)}


def contoso(**fields):
    return {"tenant_id": TENANT_ID, "organization": "contoso.onmicrosoft.com", **fields}


def test_tenant_runs_with_that_tenants_policy_overrides(start_emulator, tmp_path):
    emu = start_emulator(RETENTION_90)
    strict = register(tmp_path, contoso(display_name="Contoso", settings={"MAILBOX_AUDIT_MIN_RETENTION_DAYS": 180}))
    plain = run_cli(emu, "check", *RETENTION, "--json")
    assert plain.returncode == 0, plain.stdout
    result = run_cli(emu, "check", *RETENTION, "--tenant", TENANT_ID, "--json", env=strict)
    assert result.returncode == 1, result.stdout
    document = cli_json(result)
    assert (document["tenant_id"], document["tenant_name"]) == (TENANT_ID, "Contoso")
    assert document["controls"][0]["status"] == "NonCompliant"


def test_tenant_not_in_the_register_or_refused_is_an_error_and_nothing_is_sent(start_emulator, tmp_path):
    emu = start_emulator()
    env = register(tmp_path, contoso(), {"tenant_id": UNKNOWN, "organization": "bad domain"})
    for tenant, said in ((UNKNOWN, "tenant 2: organization"), ("12345678-1234-1234-1234-123456789012", "not in")):
        result = run_cli(emu, "check", "--tenant", tenant, "--json", env=env)
        assert result.returncode == 2
        assert said in cli_json(result)["error"]
    assert not [r for r in emu.requests if r.listener == "exchange"]
    missing = run_cli(emu, "check", "--tenant", TENANT_ID)
    assert missing.returncode == 2 and "AUDIT_TENANTS_FILE" in missing.stderr


def test_all_tenants_prints_each_tenant_and_a_summary_and_exits_with_the_worst(start_emulator, tmp_path):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True}))
    env = register(
        tmp_path,
        contoso(display_name="Contoso"),
        {"tenant_id": UNKNOWN, "organization": "fabrikam.onmicrosoft.com", "display_name": "Fabrikam"},
        {"tenant_id": "not-a-guid", "organization": "x.onmicrosoft.com"},
    )
    args = ("check", "--all-tenants", "--parallel", "2", "--control", "org-audit-enabled")
    text = run_cli(emu, *args, env=env)
    assert text.returncode == 2
    assert f"tenant {TENANT_ID} (contoso.onmicrosoft.com) · Contoso" in text.stdout
    assert f"tenant {UNKNOWN} · Fabrikam" in text.stdout
    assert "refused: tenant 3: tenant_id" in text.stdout
    assert "Overall: Error (1 NonCompliant, 2 Error; exit code 2)" in text.stdout

    document = cli_json(run_cli(emu, *args, "--json", env=env))
    by_tenant = {t["tenant_id"]: t for t in document["tenants"]}
    assert document["exit_code"] == 2 and len(document["tenants"]) == 3
    # Contoso's verdict is its own: Fabrikam's refused token did not turn it into an Error.
    assert by_tenant[TENANT_ID]["status"] == "NonCompliant"
    assert by_tenant[TENANT_ID]["run"]["controls"][0]["actual"] == "AuditDisabled = True"
    assert by_tenant[UNKNOWN]["status"] == "Error"
    assert by_tenant[None]["register_entry"] == {
        "position": 3,
        "field": "tenant_id",
        "problem": by_tenant[None]["register_entry"]["problem"],
        "tenant_id": None,
    }


def test_all_tenants_of_compliant_tenants_exits_zero(start_emulator, tmp_path):
    emu = start_emulator()
    result = run_cli(emu, "check", "--all-tenants", "--control", "org-audit-enabled", env=register(tmp_path, contoso()))
    assert result.returncode == 0, result.stdout
    assert "Overall: Compliant (1 Compliant; exit code 0)" in result.stdout


@pytest.mark.e2e
def test_watch_and_remediate_take_the_tenant_too(start_emulator, tmp_path):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True}))
    env = register(tmp_path, contoso(display_name="Contoso"))
    fix = spawn_cli(emu, "remediate", "--tenant", TENANT_ID, "--control", "org-audit-enabled", "--json", env=env)
    assert fix.returncode == 0, fix.stderr
    assert cli_json(fix)["tenant_name"] == "Contoso"
    watch = spawn_cli(emu, "watch", "--tenant", TENANT_ID, "--state", str(tmp_path / "w.sqlite3"), "--json", env=env)
    assert watch.returncode in (0, 1), watch.stderr
    assert cli_json(watch)["tenant_id"] == TENANT_ID
    revert = spawn_cli(emu, "revert", "--tenant", TENANT_ID, "--confirm", UNKNOWN, env=env)
    assert revert.returncode == 2 and "--confirm must name" in revert.stderr
