"""grant-permissions --exchange-roles --retention-policy: the Security & Compliance role group, end to end.

The administrator signs in through the real AzureCliCredential (the `grant` fixture), the grant registers the app
on the emulated S&C endpoint with its own pointer and role group ("Organization Configuration"), and then the
app's own `check` / `remediate` of audit-retention-policy (managed identity, no Entra role at all) meet the
emulator's S&C role check.
"""

from __future__ import annotations

from typing import Any

from tests.integration.helpers import bearer_tokens
from tests.support.cli import cli_json, run_cli
from tests.support.tenant import scenario

NOBODY = {"roles": [], "directory_roles": [], "activity_roles": []}
GROUP = "Mailbox Audit Guard (retention policies)"
RETENTION = ("--control", "audit-retention-policy", "--json")
ON = {"AUDIT_RETENTION_POLICY_CHECK": "true", "REMEDIATION_VERIFY_SECONDS": "0", "EXO_PERMISSION_MODEL": "role-group"}


def tenant(admin_roles: tuple[str, ...] = ("Global Administrator",)) -> dict[str, Any]:
    """No Entra role for the app; an administrator who may manage role groups on both sides (Global
    Administrator: Purview Role Management comes with it, Exchange Administrator alone does not give it)."""
    admin = {"upn": "admin@contoso.onmicrosoft.com", "directory_roles": list(admin_roles)}
    return scenario(principal=NOBODY, exchange_rbac={"admins": [admin]})


def compliance_changes(emu: Any) -> list[str]:
    """The Security & Compliance cmdlets sent that are not reads."""
    return [r.cmdlet or "?" for r in emu.compliance_invocations() if not (r.cmdlet or "").startswith("Get-")]


def exchange_changes(emu: Any) -> list[str]:
    return [r.cmdlet or "?" for r in emu.invocations() if not (r.cmdlet or "").startswith("Get-")]


def app_run(emu: Any, command: str) -> Any:
    result = run_cli(emu, command, *RETENTION, auth_mode="managed_identity", env=ON)
    return result, cli_json(result)


def test_the_role_group_lets_the_app_check_and_fix_retention_without_an_entra_role(start_emulator, grant):
    emu = start_emulator(tenant())
    first = grant(emu, "--exchange-roles", "remediate", "--retention-policy", "--json")
    assert first.code == 0, first.err
    document = first.document
    # Graph: app roles only; neither Exchange Administrator nor Compliance Data Administrator.
    assert [a["name"] for a in document["assignments"]] == ["Exchange.ManageAsApp", "ActivityFeed.Read"]
    assert first.steps("compliance_roles") == [("New-ServicePrincipal", "Done"), ("New-RoleGroup", "Done")]
    part = document["compliance_roles"]
    assert part["role_group"] == {"name": GROUP, "roles": ["Organization Configuration"]}
    assert part["endpoint"] == emu.compliance_url and part["signed_in"] == "admin@contoso.onmicrosoft.com"
    assert "can also create, change and delete audit retention policies" in " ".join(part["notes"])
    assert first.steps()[-1] == ("New-RoleGroup", "Done")  # the Exchange group beside it
    with emu.lock:
        [group] = [g for g in emu.compliance_rbac.role_groups if g["Name"] == GROUP]
        assert group["Roles"] == ["Organization Configuration"]
        assert group["Members"] == [emu.managed_identity_principal_id]
        [pointer] = emu.compliance_rbac.service_principals
        assert pointer["AppId"] == emu.managed_identity_client_id
        assert GROUP not in [g["Name"] for g in emu.tenant.rbac.role_groups]  # each side has its own store
        assert emu.tenant.principal["directory_roles"] == []
    [new_sp] = emu.compliance_invocations("New-ServicePrincipal")
    assert new_sp.headers["x-anchormailbox"] == "UPN:admin@contoso.onmicrosoft.com"

    # As the app, with only the role groups: the check reads (no policy: 180 days < 365), the remediation writes.
    result, checked = app_run(emu, "check")
    assert result.returncode == 1, result.stderr
    assert checked["controls"][0]["status"] == "NonCompliant"
    result, fixed = app_run(emu, "remediate")
    assert result.returncode == 0, result.stdout
    assert fixed["remediation"][0]["outcome"] == "Applied"

    emu.reset_log()
    second = grant(emu, "--exchange-roles", "remediate", "--retention-policy")
    assert second.code == 0, second.err
    assert f'Security & Compliance role group "{GROUP}" for remediate via {emu.compliance_url}' in second.out
    assert "Security & Compliance: everything was already in place; nothing was changed." in second.out
    assert compliance_changes(emu) == [] and exchange_changes(emu) == [] and emu.graph_writes() == []
    tokens = bearer_tokens(emu)
    assert tokens and not any(t in first.out + first.err + second.out + second.err for t in tokens)


def test_dry_run_plans_both_groups_and_writes_nothing(start_emulator, grant):
    emu = start_emulator(tenant())
    run = grant(emu, "--exchange-roles", "check", "--retention-policy", "--dry-run", "--json")
    assert run.code == 0, run.err
    assert run.steps("compliance_roles") == [("New-ServicePrincipal", "Planned"), ("New-RoleGroup", "Planned")]
    assert run.steps()[-1] == ("New-RoleGroup", "Planned")
    assert compliance_changes(emu) == [] and exchange_changes(emu) == [] and emu.graph_writes() == []
    with emu.lock:
        assert emu.compliance_rbac.service_principals == []
        assert GROUP not in [g["Name"] for g in emu.compliance_rbac.role_groups]


def test_without_the_compliance_group_the_check_names_the_purview_role(start_emulator, grant):
    emu = start_emulator(tenant())
    granted = grant(emu, "--exchange-roles", "remediate", "--json")  # no --retention-policy
    assert granted.code == 0, granted.err
    assert granted.document["compliance_roles"] is None and emu.compliance_invocations() == []
    result, document = app_run(emu, "check")
    [control] = document["controls"]
    assert result.returncode == 2 and control["status"] == "Error"
    assert "Purview role Organization Configuration is missing" in control["message"]
    assert "--exchange-roles check --retention-policy" in control["message"]
    assert [r.status for r in emu.compliance_invocations()] == [403]


def test_an_exchange_administrator_cannot_create_the_compliance_group_and_is_told_who_can(start_emulator, grant):
    emu = start_emulator(tenant(("Exchange Administrator",)))
    run = grant(emu, "--exchange-roles", "check", "--retention-policy", "--json")
    assert run.code == 2
    assert run.document["exchange_roles"]["error"] is None  # the Exchange side was granted
    assert "Not allowed to read the service principals in Security & Compliance (HTTP 403)" in run.err
    assert "Global Administrator" in run.err and "Organization Management" in run.err
    assert compliance_changes(emu) == []
    with emu.lock:
        assert emu.compliance_rbac.service_principals == []
