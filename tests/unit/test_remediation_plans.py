"""Remediation plans are pure: what would be written for each starting state."""

from shared.controls.org_audit_enabled import plan_org_audit_fix, plan_org_audit_revert
from shared.controls.org_config import OrgConfig


def org(audit_disabled, dehydrated=False):
    return OrgConfig(name="contoso", audit_disabled=audit_disabled, is_dehydrated=dehydrated)


def test_compliant_tenant_needs_no_write():
    assert plan_org_audit_fix(org(False)) == []


def test_fix_sets_audit_disabled_false():
    plan = plan_org_audit_fix(org(True))
    assert [(a.cmdlet, a.parameters) for a in plan] == [("Set-OrganizationConfig", {"AuditDisabled": False})]


def test_dehydrated_tenant_is_customised_first():
    plan = plan_org_audit_fix(org(True, dehydrated=True))
    assert [a.cmdlet for a in plan] == ["Enable-OrganizationCustomization", "Set-OrganizationConfig"]


def test_revert_switches_auditing_off_and_is_empty_when_already_off():
    assert [(a.cmdlet, a.parameters) for a in plan_org_audit_revert(org(False))] == [
        ("Set-OrganizationConfig", {"AuditDisabled": True})
    ]
    assert plan_org_audit_revert(org(True)) == []
