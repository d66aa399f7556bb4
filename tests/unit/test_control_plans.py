"""Every control's fix and revert plan, as pure functions of what was read and the policy."""

from __future__ import annotations

from typing import Any

import pytest

from shared.config.settings import AuditPolicy
from shared.controls.audit_actions import required_actions
from shared.controls.audit_bypass import BypassScan, plan_bypass_fix
from shared.controls.audit_log_search import (
    AdminAuditLogConfig,
    plan_audit_log_search_fix,
    plan_audit_log_search_revert,
)
from shared.controls.mailbox_audit_actions import plan_mailbox_actions_fix
from shared.controls.mailbox_audit_retention import plan_mailbox_retention_fix
from shared.controls.mailbox_scan import MailboxScan
from shared.controls.plans import AUDIT_LOG_ANCHOR, HASHTABLE, describe

CIS = AuditPolicy()


def mailbox(
    upn: str,
    *,
    kind: str = "UserMailbox",
    audit_enabled: bool = True,
    age: str = "90.00:00:00",
    lists: dict[str, list[str]] | None = None,
    default_set: list[str] | None = None,
    premium: bool = True,
) -> dict[str, Any]:
    full = {f"Audit{logon}": sorted(actions) for logon, actions in required_actions("cis", True).items()}
    return {
        "ExternalDirectoryObjectId": f"id-{upn}",
        "Guid": f"guid-{upn}",
        "UserPrincipalName": upn,
        "RecipientTypeDetails": kind,
        "AuditEnabled": audit_enabled,
        **(lists or full),
        "DefaultAuditSet": ["Admin", "Delegate", "Owner"] if default_set is None else default_set,
        "AuditLogAgeLimit": age,
        "PersistedCapabilities": ["M365Auditing"] if premium else [],
    }


def scanned(policy: AuditPolicy, *rows: dict[str, Any]) -> MailboxScan:
    scan = MailboxScan(policy)
    for row in rows:
        scan.add(row)
    return scan


def ual(enabled: Any, dehydrated: Any = False) -> AdminAuditLogConfig:
    return AdminAuditLogConfig(
        ual_enabled=enabled, admin_enabled=True, admin_age_limit="90.00:00:00", is_dehydrated=dehydrated
    )


# -- audit-log-search ------------------------------------------------------------------------------------------


def test_audit_log_search_fix_enables_ingestion_through_the_audit_log_anchor():
    [step] = plan_audit_log_search_fix(ual(False))
    assert (step.cmdlet, step.parameters, step.anchor) == (
        "Set-AdminAuditLogConfig",
        {"UnifiedAuditLogIngestionEnabled": True},
        AUDIT_LOG_ANCHOR,
    )


def test_audit_log_search_fix_is_empty_when_on_and_customises_a_dehydrated_tenant_first():
    assert plan_audit_log_search_fix(ual(True)) == []
    assert [step.cmdlet for step in plan_audit_log_search_fix(ual(False, dehydrated=True))] == [
        "Enable-OrganizationCustomization",
        "Set-AdminAuditLogConfig",
    ]


def test_audit_log_search_revert_switches_ingestion_off():
    [step] = plan_audit_log_search_revert(ual(True))
    assert step.parameters == {"UnifiedAuditLogIngestionEnabled": False}
    assert plan_audit_log_search_revert(ual(False)) == []


def test_an_unreadable_switch_is_never_left_as_is():
    # Only a real boolean equal to the wanted value means "nothing to do"; the engine never plans on an Error.
    assert plan_audit_log_search_fix(ual("True")) != []


# -- audit-bypass ----------------------------------------------------------------------------------------------


def test_bypass_fix_switches_off_each_unexcused_association_by_guid():
    scan = BypassScan(CIS)
    scan.add({"Guid": "g-1", "Name": "svc-backup", "Identity": "svc-backup", "AuditBypassEnabled": True})
    scan.add({"Guid": "g-2", "Name": "alice", "Identity": "alice", "AuditBypassEnabled": False})
    [step] = plan_bypass_fix(scan)
    assert (step.cmdlet, step.parameters, step.target) == (
        "Set-MailboxAuditBypassAssociation",
        {"Identity": "g-1", "AuditBypassEnabled": False},
        "svc-backup",
    )


def test_bypass_fix_uses_the_identity_when_the_guid_is_missing():
    scan = BypassScan(CIS)
    scan.add({"Name": "svc", "Identity": "svc@contoso.com", "AuditBypassEnabled": True})
    assert plan_bypass_fix(scan)[0].parameters["Identity"] == "svc@contoso.com"


# -- mailbox-audit-actions -------------------------------------------------------------------------------------


def test_actions_fix_adds_only_the_missing_actions_as_a_hashtable():
    lists = {f"Audit{logon}": sorted(actions) for logon, actions in required_actions("cis", True).items()}
    lists["AuditOwner"] = [a for a in lists["AuditOwner"] if a not in ("MailboxLogin", "HardDelete")]
    [step] = plan_mailbox_actions_fix(scanned(CIS, mailbox("bob@contoso.com", lists=lists)), CIS)
    assert step.cmdlet == "Set-Mailbox" and step.target == "id-bob@contoso.com"
    assert step.parameters == {
        "Identity": "id-bob@contoso.com",
        "AuditOwner": {"@odata.type": HASHTABLE, "Add": ["HardDelete", "MailboxLogin"]},
    }


def test_actions_fix_switches_auditing_on_where_it_is_off():
    [step] = plan_mailbox_actions_fix(scanned(CIS, mailbox("eve@contoso.com", audit_enabled=False)), CIS)
    assert step.parameters == {"Identity": "id-eve@contoso.com", "AuditEnabled": True}


def test_actions_fix_never_writes_shared_mailboxes_nor_compliant_ones():
    policy = AuditPolicy(include_shared=True)
    scan = scanned(
        policy,
        mailbox("ok@contoso.com"),
        mailbox(
            "desk@contoso.com", kind="SharedMailbox", lists={"AuditAdmin": [], "AuditDelegate": [], "AuditOwner": []}
        ),
    )
    assert scan.action_findings  # the shared mailbox is reported...
    assert plan_mailbox_actions_fix(scan, policy) == []  # ...but never written


def test_actions_fix_never_adds_send_to_the_delegate_list():
    lists = {"AuditAdmin": [], "AuditDelegate": [], "AuditOwner": []}
    scan = scanned(CIS, mailbox("bob@contoso.com", lists=lists))
    scan.action_findings[0]["missing"]["Delegate"].append("Send")  # a baseline that asked for it
    [step] = plan_mailbox_actions_fix(scan, CIS)
    assert "Send" not in step.parameters["AuditDelegate"]["Add"]


def test_microsoft_default_baseline_restores_the_default_audit_set_instead_of_adding_actions():
    policy = AuditPolicy(baseline="microsoft-default")
    [step] = plan_mailbox_actions_fix(scanned(policy, mailbox("bob@contoso.com", default_set=["Admin"])), policy)
    assert step.parameters == {"Identity": "id-bob@contoso.com", "DefaultAuditSet": ["Admin", "Delegate", "Owner"]}


# -- mailbox-audit-retention -----------------------------------------------------------------------------------


@pytest.mark.parametrize("minimum", [90, 180, 365])
def test_retention_fix_sets_the_configured_minimum_on_each_short_mailbox(minimum):
    policy = AuditPolicy(min_retention_days=minimum)
    scan = scanned(
        policy,
        mailbox("short@contoso.com", age="30.00:00:00"),
        mailbox("zero@contoso.com", age="00:00:00"),
        mailbox("long@contoso.com", age="3650.00:00:00"),
    )
    plan = plan_mailbox_retention_fix(scan, policy)
    assert [(step.target, step.parameters["AuditLogAgeLimit"]) for step in plan] == [
        ("id-short@contoso.com", f"{minimum}.00:00:00"),
        ("id-zero@contoso.com", f"{minimum}.00:00:00"),
    ]


# -- describing a plan -----------------------------------------------------------------------------------------


def test_describe_summarises_per_object_plans_and_lists_organisation_steps():
    policy = AuditPolicy()
    retention = plan_mailbox_retention_fix(
        scanned(policy, mailbox("a@x.com", age="1.00:00:00"), mailbox("b@x.com", age="2.00:00:00")), policy
    )
    assert describe(retention) == "2 × Set-Mailbox -AuditLogAgeLimit 90.00:00:00"
    assert describe(plan_audit_log_search_fix(ual(False, dehydrated=True))) == (
        "Enable-OrganizationCustomization (dehydrated tenant); Set-AdminAuditLogConfig "
        "-UnifiedAuditLogIngestionEnabled $true"
    )
    assert describe([]) == "none"
