"""grant-permissions --exchange-roles against the emulated Exchange RBAC: a real delegated sign-in.

The administrator signs in through azure-identity's AzureCliCredential, whose `az` is a stand-in on PATH that
gets a delegated token (password grant) for a scenario administrator from the emulated Entra ID (the `grant`
fixture, tests/support/admin_sign_in.py); the same credential serves Graph and Exchange. Then the app's own runs
(`check`, `remediate`, `diagnose`, with the managed identity) meet the emulator's role checks per cmdlet and
parameter.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.helpers import bearer_tokens
from tests.support.cli import cli_json, run_cli
from tests.support.tenant import scenario

NOBODY = {"roles": [], "directory_roles": [], "activity_roles": []}
CHECK_ROLES = ["View-Only Configuration", "View-Only Recipients"]
ORG = ("--control", "org-audit-enabled")
ROLE_GROUP_MODEL = {"EXO_PERMISSION_MODEL": "role-group"}


def changes(emu: Any) -> list[str]:
    """The Exchange cmdlets sent that are not reads."""
    return [r.cmdlet or "?" for r in emu.invocations() if not (r.cmdlet or "").startswith("Get-")]


def app_run(emu: Any, *args: str) -> Any:
    return run_cli(emu, *args, auth_mode="managed_identity")


def test_check_group_lets_the_app_check_and_a_second_grant_changes_nothing(start_emulator, grant):
    emu = start_emulator(scenario(principal=NOBODY, organization_config={"AuditDisabled": True}))
    assert app_run(emu, "check", *ORG).returncode == 2  # no access at all yet: Error, never a verdict

    first = grant(emu, "--exchange-roles", "--json")
    assert first.code == 0, first.err
    document = first.document
    assert document["permission_model"] == "role-group" and document["directory_role"] is None
    assert [a["name"] for a in document["assignments"]] == ["Exchange.ManageAsApp", "ActivityFeed.Read"]
    assert first.steps() == [
        ("Enable-OrganizationCustomization", "AlreadyInPlace"),
        ("New-ServicePrincipal", "Done"),
        ("New-RoleGroup", "Done"),
    ]
    assert document["exchange_roles"]["role_group"] == {"name": "Mailbox Audit Guard (check)", "roles": CHECK_ROLES}
    assert document["exchange_roles"]["signed_in"] == emu.admin_upn
    with emu.lock:
        [group] = [g for g in emu.tenant.rbac.role_groups if g["Name"] == "Mailbox Audit Guard (check)"]
        assert group["Roles"] == CHECK_ROLES and group["Members"] == [emu.managed_identity_principal_id]
        assert emu.tenant.principal["directory_roles"] == []  # no Entra role was assigned
    [new_sp] = emu.invocations("New-ServicePrincipal")
    assert new_sp.body["CmdletInput"]["Parameters"]["AppId"] == emu.managed_identity_client_id
    assert new_sp.headers["x-anchormailbox"] == f"UPN:{emu.admin_upn}"

    # The check role group is enough to check; the evidence states the declared permission model.
    checked = run_cli(emu, "check", *ORG, "--json", auth_mode="managed_identity", env=ROLE_GROUP_MODEL)
    assert checked.returncode == 1, checked.stderr
    assert cli_json(checked)["controls"][0]["status"] == "NonCompliant"
    assert cli_json(checked)["permission_model"]["model"] == "role-group"

    emu.reset_log()
    second = grant(emu, "--exchange-roles", "check")
    assert second.code == 0, second.err
    assert "Exchange: everything was already in place; nothing was changed." in second.out
    assert changes(emu) == [] and emu.graph_writes() == []
    tokens = bearer_tokens(emu)
    assert tokens and not any(t in first.out + first.err + second.out + second.err for t in tokens)


def test_remediate_with_only_the_check_group_names_the_missing_role_then_the_remediate_group_fixes(
    start_emulator, grant
):
    emu = start_emulator(
        scenario(
            principal={**NOBODY, "roles": ["Exchange.ManageAsApp"]},
            organization_config={"AuditDisabled": True},
            exchange_rbac={"app_roles": CHECK_ROLES},
        )
    )
    refused = app_run(emu, "remediate", *ORG, "--json")
    assert refused.returncode == 1, refused.stdout  # still NonCompliant: the write was refused
    [step] = cli_json(refused)["remediation"]
    assert step["outcome"] == "Failed"
    assert "--exchange-roles remediate" in step["message"]
    assert '"Organization Configuration" (for Set-OrganizationConfig, [S])' in step["message"]
    assert "Get-ManagementRole -Cmdlet Set-OrganizationConfig" in step["message"]

    granted = grant(emu, "--exchange-roles", "remediate", "--json")
    assert granted.code == 0, granted.err
    assert granted.steps()[-1] == ("New-RoleGroup", "Done")
    notes = " ".join(granted.document["exchange_roles"]["notes"])
    assert "Mail Recipients is not included" in notes
    fixed = app_run(emu, "remediate", *ORG, "--json")
    assert fixed.returncode == 0, fixed.stdout
    assert cli_json(fixed)["remediation"][0]["outcome"] == "Applied"


def test_a_mailbox_audit_write_without_audit_logs_names_that_role_per_parameter(start_emulator):
    emu = start_emulator(
        scenario(
            principal={**NOBODY, "roles": ["Exchange.ManageAsApp"]},
            mailboxes=[{"UserPrincipalName": "ann@contoso.onmicrosoft.com", "AuditOwner": []}],
            exchange_rbac={"app_roles": CHECK_ROLES},
        )
    )
    result = app_run(emu, "remediate", "--control", "mailbox-audit-actions", "--json")
    assert result.returncode == 1, result.stdout
    text = json.dumps(cli_json(result)["remediation"])
    assert '\\"Audit Logs\\" (for Set-Mailbox -Audit' in text
    assert emu.invocations("Set-Mailbox") and all(r.status == 403 for r in emu.invocations("Set-Mailbox"))


def test_dry_run_shows_the_plan_and_changes_nothing(start_emulator, grant):
    emu = start_emulator(scenario(principal=NOBODY))
    run = grant(emu, "--exchange-roles", "remediate", "--dry-run", "--json")
    assert run.code == 0, run.err
    assert run.steps() == [
        ("Enable-OrganizationCustomization", "AlreadyInPlace"),
        ("New-ServicePrincipal", "Planned"),
        ("New-RoleGroup", "Planned"),
    ]
    assert {a["outcome"] for a in run.document["assignments"]} == {"Planned"}
    assert changes(emu) == [] and emu.graph_writes() == []
    with emu.lock:
        assert emu.tenant.rbac.service_principals == []


def test_an_administrator_without_exchange_rights_gets_a_clear_error_and_nothing_is_created(start_emulator, grant):
    emu = start_emulator(scenario(principal=NOBODY))
    emu.admin(emu.admin_upn)["directory_roles"] = ["Global Reader"]
    run = grant(emu, "--exchange-roles")
    assert run.code == 2
    assert "Not allowed to run New-ServicePrincipal in Exchange Online (HTTP 403)" in run.err
    assert "Exchange Administrator" in run.err and "Role Management" in run.err
    assert changes(emu) == ["New-ServicePrincipal"]  # refused; nothing after it was sent
    with emu.lock:
        assert emu.tenant.rbac.service_principals == []


def test_a_dehydrated_tenant_is_customised_first_and_the_role_group_waits_for_it(start_emulator, grant):
    emu = start_emulator(
        scenario(principal=NOBODY, organization_config={"IsDehydrated": True}, customisation_delay_seconds=600)
    )
    first = grant(emu, "--exchange-roles", "--json")
    assert first.code == 2
    assert first.steps() == [
        ("Enable-OrganizationCustomization", "Done"),
        ("New-ServicePrincipal", "Done"),
        ("New-RoleGroup", "Deferred"),
    ]
    assert "can take up to a few hours" in " ".join(first.document["exchange_roles"]["notes"])
    assert "Run this command again later" in first.err

    with emu.lock:
        emu.tenant.customisation_pending_until = 0.0  # the customisation has propagated
    emu.reset_log()
    second = grant(emu, "--exchange-roles", "--json")
    assert second.code == 0, second.err
    assert second.steps() == [
        ("Enable-OrganizationCustomization", "AlreadyInPlace"),
        ("New-ServicePrincipal", "AlreadyInPlace"),
        ("New-RoleGroup", "Done"),
    ]
    assert changes(emu) == ["New-RoleGroup"]


def test_an_existing_group_is_completed_role_by_role_and_member(start_emulator, grant):
    emu = start_emulator(
        scenario(
            principal=NOBODY,
            exchange_rbac={
                "role_groups": [{"Name": "Mailbox Audit Guard (remediate)", "Roles": ["View-Only Configuration"]}]
            },
        )
    )
    run = grant(emu, "--exchange-roles", "remediate", "--json")
    assert run.code == 0, run.err
    assert changes(emu) == [
        "New-ServicePrincipal",
        "New-ManagementRoleAssignment",
        "New-ManagementRoleAssignment",
        "New-ManagementRoleAssignment",
        "Add-RoleGroupMember",
    ]
    with emu.lock:
        [group] = [g for g in emu.tenant.rbac.role_groups if g["Name"] == "Mailbox Audit Guard (remediate)"]
        assert sorted(group["Roles"]) == [
            "Audit Logs",
            "Organization Configuration",
            "View-Only Configuration",
            "View-Only Recipients",
        ]


def test_diagnose_names_the_role_a_read_lacks(start_emulator):
    emu = start_emulator(
        scenario(
            principal={**NOBODY, "roles": ["Exchange.ManageAsApp"]},
            exchange_rbac={"app_roles": ["View-Only Configuration"]},
        )
    )
    result = app_run(emu, "diagnose")
    assert '"View-Only Recipients" (for Get-Mailbox, [C])' in result.stdout + result.stderr


def test_read_only_and_exchange_roles_together_are_refused_before_anything_is_sent(start_emulator, grant):
    emu = start_emulator(scenario(principal=NOBODY))
    run = grant(emu, "--exchange-roles", "--read-only")
    assert run.code == 2 and "--exchange-roles check" in run.err
    assert emu.graph_requests == [] and emu.invocations() == []


@pytest.mark.parametrize(
    ("canary", "mail_recipients"),
    [
        ({"AUDIT_CANARY_MAILBOX": "canary@contoso.onmicrosoft.com"}, True),  # custom-attribute, the default
        ({"AUDIT_CANARY_MAILBOX": "canary@contoso.onmicrosoft.com", "AUDIT_CANARY_WRITE": "audit-property"}, False),
        ({"AUDIT_CANARY_WRITE": "custom-attribute"}, False),  # no canary mailbox: no canary at all
    ],
)
def test_the_remediate_group_gains_mail_recipients_only_for_a_custom_attribute_canary(
    start_emulator, grant, canary, mail_recipients
):
    emu = start_emulator(scenario(principal=NOBODY))
    run = grant(emu, "--exchange-roles", "remediate", "--json", env=canary)
    assert run.code == 0, run.err
    with emu.lock:
        [group] = [g for g in emu.tenant.rbac.role_groups if g["Name"] == "Mailbox Audit Guard (remediate)"]
    assert ("Mail Recipients" in group["Roles"]) is mail_recipients
    assert ("Mail Recipients" in run.document["exchange_roles"]["role_group"]["roles"]) is mail_recipients
    notes = " ".join(run.document["exchange_roles"]["notes"])
    assert ("Mail Recipients is not included" in notes) is not mail_recipients


def test_a_custom_attribute_canary_write_is_allowed_by_the_group_the_grant_made(start_emulator, grant):
    emu = start_emulator(scenario(principal=NOBODY))
    grant(emu, "--exchange-roles", "remediate", env={"AUDIT_CANARY_MAILBOX": "canary@contoso.onmicrosoft.com"})
    with emu.lock:
        assert emu.tenant.rbac.app_allowed(emu.managed_identity_client_id, "Set-Mailbox", ["CustomAttribute15"])


def test_an_unreadable_canary_setting_is_refused_before_anything_is_sent(start_emulator, grant):
    emu = start_emulator(scenario(principal=NOBODY))
    run = grant(emu, "--exchange-roles", "remediate", env={"AUDIT_CANARY_WRITE": "both"})
    assert run.code == 2 and "AUDIT_CANARY_WRITE: must be one of" in run.err
    assert emu.graph_requests == [] and emu.invocations() == []
