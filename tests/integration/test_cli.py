"""The command line against the emulated tenant with real token libraries: in process (`run_cli`), and for each
command path once as a real child process (`spawn_cli`, marked e2e)."""

from __future__ import annotations

import pytest

from emulator import Fault
from tests.integration.helpers import bearer_tokens
from tests.support.cli import cli_json, run_cli, spawn_cli
from tests.support.tenant import TENANT_ID, scenario, tenant_traffic

NON_COMPLIANT = scenario(organization_config={"AuditDisabled": True})
ORG = ("--control", "org-audit-enabled")


@pytest.mark.e2e
@pytest.mark.parametrize("auth_mode", ["managed_identity", "certificate", "secret"])
def test_check_reports_each_state_with_the_original_exit_codes(start_emulator, auth_mode):
    emu = start_emulator(NON_COMPLIANT)
    result = spawn_cli(emu, "check", *ORG, "--json", auth_mode=auth_mode)
    assert result.returncode == 1, result.stderr
    document = cli_json(result)
    assert document["status"] == "NonCompliant"
    assert document["tenant_id"] == TENANT_ID
    [control] = document["controls"]
    assert (control["id"], control["status"], control["actual"]) == (
        "org-audit-enabled",
        "NonCompliant",
        "AuditDisabled = True",
    )
    assert control["frameworks"]["CIS-v7"] == "6.1.1"
    with emu.lock:
        emu.tenant.organization_config["AuditDisabled"] = False
    assert spawn_cli(emu, "check", *ORG, auth_mode=auth_mode).returncode == 0


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args", [("check", *ORG, "--json"), ("remediate", "--dry-run", "--json"), ("check", "--control", "bogus")]
)
def test_an_in_process_run_gives_what_a_child_process_gives(start_emulator, args):
    """The premise of run_cli: same exit code, same verdicts, same usage errors as `python -m shared`."""
    emu = start_emulator(NON_COMPLIANT)
    child, in_process = spawn_cli(emu, *args), run_cli(emu, *args)
    assert in_process.returncode == child.returncode
    if "--json" in args:

        def verdicts(result):
            document = cli_json(result)
            return (
                document["status"],
                [(c["id"], c["status"], c["actual"]) for c in document["controls"]],
                [(s["control_id"], s["outcome"]) for s in document.get("remediation", [])],
            )

        assert verdicts(in_process) == verdicts(child)
    else:
        assert in_process.stderr == child.stderr and in_process.stdout == child.stdout == ""


def test_text_output_is_a_readable_table(start_emulator):
    result = run_cli(start_emulator(NON_COMPLIANT), "check", *ORG)
    assert result.returncode == 1
    assert "org-audit-enabled" in result.stdout and "NonCompliant" in result.stdout
    assert "Overall: NonCompliant (exit code 1)" in result.stdout


@pytest.mark.e2e
def test_remediate_fixes_verifies_and_is_idempotent(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    first = spawn_cli(emu, "remediate", *ORG, "--json")
    assert first.returncode == 0, first.stderr
    [step] = cli_json(first)["remediation"]
    assert step["outcome"] == "Applied"
    assert step["before"]["actual"] == "AuditDisabled = True" and step["after"]["actual"] == "AuditDisabled = False"
    assert emu.tenant.organization_config["AuditDisabled"] is False
    calls = [call.cmdlet for call in emu.invocations()]
    assert calls == ["Get-OrganizationConfig", "Set-OrganizationConfig", "Get-OrganizationConfig"]
    assert emu.invocations("Set-OrganizationConfig")[0].body["CmdletInput"]["Parameters"] == {"AuditDisabled": False}

    second = spawn_cli(emu, "remediate", *ORG, "--json")
    assert second.returncode == 0
    assert cli_json(second)["remediation"][0]["outcome"] == "AlreadyCompliant"
    assert len(emu.invocations("Set-OrganizationConfig")) == 1


def test_dry_run_writes_nothing(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    result = run_cli(emu, "remediate", *ORG, "--dry-run", "--json")
    assert result.returncode == 1
    assert cli_json(result)["remediation"][0]["outcome"] == "DryRun"
    assert emu.writes() == []
    assert emu.tenant.organization_config["AuditDisabled"] is True


def test_dehydrated_tenant_is_customised_before_the_write(start_emulator):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True, "IsDehydrated": True}))
    result = run_cli(emu, "remediate", *ORG, "--json")
    assert result.returncode == 0, result.stdout
    assert [call.cmdlet for call in emu.writes()] == ["Enable-OrganizationCustomization", "Set-OrganizationConfig"]


def test_a_write_that_does_not_stick_is_reported_as_failed(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(Fault("ignore_writes", cmdlet="Set-OrganizationConfig", times=-1))
    result = run_cli(emu, "remediate", *ORG, "--json")
    assert result.returncode == 1
    step = cli_json(result)["remediation"][0]
    assert step["outcome"] == "Failed"
    assert "read-back" in step["message"]


def test_revert_needs_the_tenant_id_confirmed_and_sends_nothing_otherwise(start_emulator):
    emu = start_emulator()
    result = run_cli(emu, "revert", *ORG, "--confirm", "11111111-1111-1111-1111-111111111111")
    assert result.returncode == 2
    assert "--confirm" in result.stderr
    assert tenant_traffic(emu) == []


@pytest.mark.e2e
def test_revert_switches_auditing_off_with_a_loud_warning(start_emulator):
    emu = start_emulator()
    result = spawn_cli(emu, "revert", *ORG, "--confirm", TENANT_ID.upper(), "--json")
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "OFF" in result.stderr
    assert emu.tenant.organization_config["AuditDisabled"] is True
    assert cli_json(result)["remediation"][0]["outcome"] == "Applied"


def test_revert_that_cannot_be_verified_exits_2(start_emulator):
    emu = start_emulator()
    emu.add_fault(Fault("ignore_writes", cmdlet="Set-OrganizationConfig", times=-1))
    assert run_cli(emu, "revert", *ORG, "--confirm", TENANT_ID).returncode == 2


def test_configuration_error_exits_2_naming_the_variable_and_sends_nothing(start_emulator):
    emu = start_emulator()
    result = run_cli(emu, "check", *ORG, "--json", env={"EXO_ENDPOINT": "http://example.com"})
    assert result.returncode == 2
    assert "EXO_ENDPOINT" in result.stderr
    assert cli_json(result)["status"] == "Error"
    assert tenant_traffic(emu) == []


@pytest.mark.parametrize(
    ("tenant", "fault", "hint"),
    [
        (
            scenario(principal={"roles": [], "directory_roles": ["Exchange Administrator"]}),
            None,
            "Exchange.ManageAsApp",
        ),
        (
            scenario(principal={"roles": ["Exchange.ManageAsApp"], "directory_roles": []}),
            None,
            "Exchange Administrator",
        ),
        (scenario(), Fault("status", cmdlet="Get-OrganizationConfig", status=200, body="garbage"), "not JSON"),
        (scenario(), Fault("status", cmdlet="Get-OrganizationConfig", status=503, times=-1), "503"),
    ],
)
def test_unreadable_state_is_an_error_never_compliant(start_emulator, tenant, fault, hint):
    emu = start_emulator(tenant)
    if fault:
        emu.add_fault(fault)
    result = run_cli(emu, "check", *ORG, "--json", env={"EXO_RETRY_BACKOFF_SECONDS": "0.05"})
    assert result.returncode == 2
    document = cli_json(result)
    assert document["status"] == "Error"
    assert document["controls"][0]["status"] == "Error"
    assert hint in document["controls"][0]["message"]


def test_token_endpoint_refusal_is_an_error_with_a_hint(start_emulator):
    emu = start_emulator()
    result = run_cli(emu, "check", *ORG, "--json", env={"EXO_CLIENT_SECRET": "wrong-secret-value"})
    assert result.returncode == 2
    message = cli_json(result)["controls"][0]["message"]
    assert "invalid_client" in message and "EXO_CLIENT_ID" in message
    assert "wrong-secret-value" not in result.stdout + result.stderr


@pytest.mark.parametrize("auth_mode", ["managed_identity", "certificate", "secret"])
def test_no_token_or_secret_appears_in_any_output(start_emulator, auth_mode):
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(Fault("status", cmdlet="Get-OrganizationConfig", status=401))  # forces a token refresh
    outputs = []
    for args in (("check", "-v"), ("remediate", "--dry-run", "-v"), ("remediate", "-v", "--json")):
        result = run_cli(emu, *args, *ORG, auth_mode=auth_mode)
        outputs.append(result.stdout + result.stderr)
    secrets = bearer_tokens(emu) | {emu.client_secret, emu.identity_header}
    assert len(bearer_tokens(emu)) >= 2
    for output in outputs:
        for secret in secrets:
            assert secret not in output
