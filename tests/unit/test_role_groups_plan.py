"""The role-group plan (shared/graph/role_groups_plan.py) and the role table per cmdlet (shared/exchange/roles.py)."""

from __future__ import annotations

from shared.exchange.errors import ErrorInfo, ExchangePermissionError, classify_error
from shared.exchange.roles import missing_role_hint, needed_roles
from shared.graph.role_groups_plan import (
    COMPLIANCE,
    App,
    ExchangeState,
    GroupState,
    Use,
    is_member,
    plan_role_groups,
    role_group,
)

APP = App("aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002", "id-mag")
POINTER = {"AppId": APP.app_id, "ObjectId": APP.object_id, "Identity": APP.object_id}
CHECK = "Mailbox Audit Guard (check)"
REMEDIATE = "Mailbox Audit Guard (remediate)"
RETENTION = "Mailbox Audit Guard (retention policies)"
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


def test_the_compliance_group_is_one_for_both_uses_without_a_customisation_step():
    fresh = ExchangeState(False, None, {RETENTION: None})
    plans = [plan_role_groups(APP, fresh, use, endpoint=COMPLIANCE) for use in Use]
    assert plans[0].group == plans[1].group and plans[0].group.roles == ("Organization Configuration",)
    assert [s.cmdlet for s in plans[0].steps] == ["New-ServicePrincipal", "New-RoleGroup"]
    assert plans[0].steps[1].parameters["Members"] == [APP.object_id]
    notes = " ".join(plans[1].notes)
    assert "can also create, change and delete audit retention policies" in notes
    assert "Mail Recipients" not in notes  # the canary concerns Exchange only
    # The canary's need never reaches this side, and a dehydrated flag asks for no customisation here.
    canary = plan_role_groups(APP, fresh, Use.REMEDIATE, endpoint=COMPLIANCE, canary_needs_mail_recipients=True)
    assert canary.group.roles == ("Organization Configuration",)
    dehydrated = plan_role_groups(APP, ExchangeState(True, None, {RETENTION: None}), Use.CHECK, endpoint=COMPLIANCE)
    assert "Enable-OrganizationCustomization" not in [s.cmdlet for s in dehydrated.steps]
    assert not any("few hours" in note for note in dehydrated.notes)


def test_a_completed_compliance_group_is_left_alone_and_an_incomplete_one_completed():
    member = {"Identity": APP.object_id}
    done = ExchangeState(False, POINTER, {RETENTION: GroupState(("organization configuration",), (member,))})
    assert plan_role_groups(APP, done, Use.CHECK, endpoint=COMPLIANCE).missing == ()
    partial = ExchangeState(False, POINTER, {RETENTION: GroupState(("View-Only Audit Logs",), ())})
    plan = plan_role_groups(APP, partial, Use.CHECK, endpoint=COMPLIANCE)
    assert [(s.cmdlet, s.parameters.get("Role")) for s in plan.missing] == [
        ("New-ManagementRoleAssignment", "Organization Configuration"),
        ("Add-RoleGroupMember", None),
    ]
    assert any("also holds View-Only Audit Logs, more than audit-retention-policy needs" in n for n in plan.notes)


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


def test_a_retention_403_names_the_purview_role_and_both_ways_to_grant_it():
    error = classify_error(
        403, ErrorInfo(), cmdlet="Get-UnifiedAuditLogRetentionPolicy", request_id=None, retry_after=None
    )
    assert isinstance(error, ExchangePermissionError)
    text = f"{error} {error.hint}"
    assert "Purview role Organization Configuration is missing" in text
    assert "--exchange-roles check --retention-policy" in text and "Compliance Data Administrator" in text


def test_a_member_that_only_shares_the_apps_display_name_is_not_the_app():
    namesake = GroupState(("View-Only Configuration",), ({"Name": APP.display_name, "Identity": "someone-else"},))
    assert not is_member(namesake, APP, POINTER)
    assert is_member(GroupState((), ({"ExternalDirectoryObjectId": APP.object_id},)), APP, POINTER)
