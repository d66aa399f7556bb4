"""The role-group plan (shared/graph/role_groups_plan.py) and the role table per cmdlet (shared/exchange/roles.py)."""

from __future__ import annotations

from shared.exchange.errors import ErrorInfo, ExchangePermissionError, classify_error
from shared.exchange.roles import missing_role_hint, needed_roles
from shared.graph.role_groups_plan import (
    App,
    ExchangeState,
    GroupState,
    Use,
    plan_role_groups,
    role_group,
)

APP = App("aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002", "id-mag")
POINTER = {"AppId": APP.app_id, "ObjectId": APP.object_id, "Identity": APP.object_id}
CHECK = "Mailbox Audit Guard (check)"
REMEDIATE = "Mailbox Audit Guard (remediate)"
ALL_REMEDIATE = ("View-Only Configuration", "View-Only Recipients", "Audit Logs", "Organization Configuration")


def state(groups=None, *, pointer=POINTER, dehydrated=False) -> ExchangeState:
    return ExchangeState(dehydrated, pointer, {CHECK: None, REMEDIATE: None, **(groups or {})})


def test_a_fresh_tenant_gets_the_pointer_and_one_group_with_the_app_as_member():
    plan = plan_role_groups(APP, state(pointer=None), Use.CHECK)
    assert [s.cmdlet for s in plan.missing] == ["New-ServicePrincipal", "New-RoleGroup"]
    new_sp, new_group = plan.missing
    assert new_sp.parameters == {"AppId": APP.app_id, "ObjectId": APP.object_id, "DisplayName": "id-mag"}
    assert new_group.parameters["Roles"] == ["View-Only Configuration", "View-Only Recipients"]
    assert new_group.parameters["Members"] == [APP.object_id]


def test_a_second_run_finds_everything_in_place():
    member = {"Identity": APP.object_id, "Name": APP.object_id}
    done = state({REMEDIATE: GroupState(ALL_REMEDIATE, (member,))})
    plan = plan_role_groups(APP, done, Use.REMEDIATE)
    assert plan.missing == ()
    assert plan.group.roles == ALL_REMEDIATE


def test_an_existing_group_gets_only_its_missing_roles_and_the_member():
    partial = state({REMEDIATE: GroupState(("View-Only Configuration", "audit logs"), ())})
    plan = plan_role_groups(APP, partial, Use.REMEDIATE)
    assert [(s.cmdlet, s.parameters.get("Role")) for s in plan.missing] == [
        ("New-ManagementRoleAssignment", "View-Only Recipients"),
        ("New-ManagementRoleAssignment", "Organization Configuration"),
        ("Add-RoleGroupMember", None),
    ]


def test_a_dehydrated_tenant_is_customised_first_with_the_note_that_it_takes_hours():
    plan = plan_role_groups(APP, state(dehydrated=True), Use.CHECK)
    assert plan.missing[0].cmdlet == "Enable-OrganizationCustomization"
    assert any("few hours" in note for note in plan.notes)


def test_mail_recipients_only_when_the_canary_write_needs_it():
    assert "Mail Recipients" not in role_group("exchange", Use.REMEDIATE).roles
    assert "Mail Recipients" in role_group("exchange", Use.REMEDIATE, canary_needs_mail_recipients=True).roles
    assert "Mail Recipients" not in role_group("exchange", Use.CHECK, canary_needs_mail_recipients=True).roles


def test_extra_roles_and_membership_of_the_other_group_are_reported_not_removed():
    member = {"ExternalDirectoryObjectId": APP.object_id}
    found = state({CHECK: GroupState(("View-Only Configuration", "View-Only Recipients", "Audit Logs"), (member,))})
    plan = plan_role_groups(APP, found, Use.CHECK)
    assert plan.missing == ()
    assert any("also holds Audit Logs" in note for note in plan.notes)
    switched = plan_role_groups(APP, found, Use.REMEDIATE)
    assert any(f'also a member of "{CHECK}"' in note for note in switched.notes)


def test_roles_per_cmdlet_and_parameter_with_confidence():
    [org] = needed_roles("Set-OrganizationConfig", ["AuditDisabled"])
    assert (org.role, org.confidence) == ("Organization Configuration", "[S]")
    roles = needed_roles("Set-Mailbox", ["Identity", "AuditOwner", "CustomAttribute15"])
    assert [(n.role, n.parameter) for n in roles] == [
        ("Audit Logs", "AuditOwner"),
        ("Mail Recipients", "CustomAttribute15"),
    ]
    assert needed_roles("Get-Mailbox")[0].role == "View-Only Recipients"
    assert needed_roles("Get-Nothing") == []


def test_a_403_names_the_role_for_the_cmdlet_and_parameters_sent():
    error = classify_error(
        403, ErrorInfo(), cmdlet="Set-Mailbox", request_id=None, retry_after=None, parameters=["Identity", "AuditAdmin"]
    )
    assert isinstance(error, ExchangePermissionError)
    assert '"Audit Logs" (for Set-Mailbox -AuditAdmin' in str(error)
    assert "Get-ManagementRole -Cmdlet Set-Mailbox -CmdletParameters AuditAdmin" in str(error)
    assert "--exchange-roles remediate" in str(error) and "Exchange Administrator" in str(error)
    assert "--exchange-roles check" in (missing_role_hint("Get-AcceptedDomain") or "")
    unknown = classify_error(403, ErrorInfo(), cmdlet="Get-Nothing", request_id=None, retry_after=None)
    assert unknown.role is None and "Exchange Administrator" in str(unknown)  # type: ignore[attr-defined]
