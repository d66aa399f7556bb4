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


# A short verify window: the emulator's stale reads are counted, not timed, so a second look is enough.
VERIFY = {"REMEDIATION_VERIFY_SECONDS": "0.5"}


def test_dehydrated_tenant_is_customised_then_the_fix_is_deferred_to_the_next_run(start_emulator):
    emu = start_emulator(
        scenario(organization_config={"AuditDisabled": True, "IsDehydrated": True}, customisation_delay_seconds=600)
    )
    result = run_cli(emu, "remediate", *ORG, "--json")
    assert result.returncode == 1, result.stdout  # the read-back is still NonCompliant
    [step] = cli_json(result)["remediation"]
    assert step["outcome"] == "Deferred"
    assert "customisation propagating, up to 60 min" in step["message"]
    assert step["details"]["customisation_enabled_at"] and step["details"]["retry_after"]
    assert [call.cmdlet for call in emu.writes()] == ["Enable-OrganizationCustomization"]  # no write after it

    # Within the hour: IsDehydrated already reads False, the write is still refused; no Enable again, no loop.
    emu.reset_log()
    result = run_cli(emu, "remediate", *ORG, "--json")
    [step] = cli_json(result)["remediation"]
    assert (result.returncode, step["outcome"]) == (1, "Deferred")
    assert "IsDehydrated reads False" in step["message"] and "remediation does this" not in step["message"]
    assert [call.cmdlet for call in emu.writes()] == ["Set-OrganizationConfig"]

    with emu.lock:
        emu.tenant.customisation_pending_until = 0.0  # the customisation has propagated
    emu.reset_log()
    result = run_cli(emu, "remediate", *ORG, "--json")
    assert result.returncode == 0, result.stdout
    assert cli_json(result)["remediation"][0]["outcome"] == "Applied"
    assert [call.cmdlet for call in emu.writes()] == ["Set-OrganizationConfig"]
    text = run_cli(emu, "check", *ORG)
    assert text.returncode == 0


def test_both_org_switches_in_a_dehydrated_tenant_wait_after_one_enable(start_emulator):
    emu = start_emulator(
        scenario(
            organization_config={"AuditDisabled": True, "IsDehydrated": True},
            admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": False},
            customisation_delay_seconds=600,
        )
    )
    result = run_cli(emu, "remediate", *ORG, "--control", "audit-log-search")
    assert result.returncode == 1
    assert [call.cmdlet for call in emu.writes()] == ["Enable-OrganizationCustomization"]
    assert result.stdout.count(": Deferred ·") == 2
    assert "Deferred: not done yet, not failed" in result.stdout


def test_a_write_that_does_not_stick_is_unverified_never_compliant_and_not_written_twice(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(Fault("ignore_writes", cmdlet="Set-OrganizationConfig", times=-1))
    result = run_cli(emu, "remediate", *ORG, "--json", env=VERIFY)
    assert result.returncode == 1  # the status is the read-back's: NonCompliant
    document = cli_json(result)
    step = document["remediation"][0]
    assert step["outcome"] == "Unverified"
    assert step["after"]["status"] == "NonCompliant"
    assert "not yet verified" in step["message"]
    assert document["status"] == "NonCompliant"
    assert len(emu.invocations("Set-OrganizationConfig")) == 1
    assert len(emu.invocations("Get-OrganizationConfig")) >= 3  # before, then polled


@pytest.mark.parametrize("not_found", [False, True])
def test_a_stale_read_back_that_catches_up_within_the_window_is_applied(start_emulator, not_found):
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(Fault("stale_reads", cmdlet="Set-OrganizationConfig", reads=1, not_found=not_found))
    result = run_cli(emu, "remediate", *ORG, "--json", env=VERIFY)
    assert result.returncode == 0, result.stdout
    assert cli_json(result)["remediation"][0]["outcome"] == "Applied"
    assert len(emu.invocations("Set-OrganizationConfig")) == 1


def test_an_unverified_write_is_verified_by_the_next_run_without_writing_again(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    emu.add_fault(Fault("stale_reads", cmdlet="Set-OrganizationConfig", reads=1))
    first = run_cli(emu, "remediate", *ORG, "--json", env={"REMEDIATION_VERIFY_SECONDS": "0"})
    assert (first.returncode, cli_json(first)["remediation"][0]["outcome"]) == (1, "Unverified")
    second = run_cli(emu, "remediate", *ORG, "--json", env=VERIFY)
    assert second.returncode == 0
    assert cli_json(second)["remediation"][0]["outcome"] == "AlreadyCompliant"
    assert len(emu.invocations("Set-OrganizationConfig")) == 1


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
    result = run_cli(emu, "revert", *ORG, "--confirm", TENANT_ID, "--json", env=VERIFY)
    assert result.returncode == 2
    assert cli_json(result)["remediation"][0]["outcome"] == "Unverified"


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
